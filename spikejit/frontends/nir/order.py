"""The DFS back-edge rule that turns NIR cycles into delayed edges, and the print order.

NIR edges carry no delay; ``nir-euler-v1`` breaks every cycle without a ``Delay`` node by
a one-step delay on its *back edges*: a depth-first search from the Input nodes in
sorted-name order, visiting successors in sorted-name order, delays an edge ``u -> v``
found while ``v`` is on the DFS stack.

Both directions of the NIR frontend run the same function, :func:`dfs_rule`: the importer
to derive the delays, the exporter to check that the file it writes will give back exactly
the delays of its IR graph (and to route any other delayed edge through a ``Delay`` node).

Some edges are not same-step dependencies, and the search does not follow them:

* edges with a fixed delay of one step or more (folded ``Delay`` nodes of spikejit files);
* edges into a node that never reads its input of the same step (a ``Delay`` node whose
  every delay is at least one step: a *barrier*).

Their targets are visited later, as extra roots, in the order they were met. So a cycle
through a ``Delay`` node is never broken again, and for graphs without ``Delay`` nodes the
search is exactly the rule above. A cycle that would need a back edge through a zero-step
``Delay`` node, or through an edge fixed at delay 0, is reported as a violation.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Edge:
    """An edge of the flat graph; ``delay`` is ``None`` while the rule decides it."""

    src: str
    dst: str
    delay: int | None = None


@dataclass(frozen=True)
class Violation:
    """A back edge that may not be delayed: its cycle is same-step.

    Attributes:
        edge: Index of the edge in the edge list.
        cycle: The node ids of the cycle, starting and ending at the edge's target.
        reason: Why the edge cannot carry the delay.
    """

    edge: int
    cycle: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class DfsResult:
    """What :func:`dfs_rule` found.

    Attributes:
        back: Indices of edges (with ``delay=None``) that get a one-step delay.
        preorder: Visited nodes in discovery order (every node after one of its producers).
        rank: Node id -> position in the reverse post-order of its own DFS tree, trees in
            discovery order (a readable order; the tie-break of :func:`print_order`).
        unreached: Nodes no Input reaches, in the given node order.
        violations: Back edges that close same-step cycles the rule may not break.
    """

    back: frozenset[int]
    preorder: tuple[str, ...]
    rank: dict[str, int]
    unreached: tuple[str, ...]
    violations: tuple[Violation, ...]


def dfs_rule(nodes: Sequence[str], inputs: Collection[str], edges: Sequence[Edge], *,
             barriers: Collection[str] = (), zero_delays: Collection[str] = ()) -> DfsResult:
    """Run the DFS back-edge rule.

    Args:
        nodes: All node ids.
        inputs: Ids of the top-level Input nodes (the roots, taken in sorted order).
        edges: The edges; ``delay=None`` ones are classified, fixed ones are kept.
        barriers: Nodes that do not read their input of the same step (positive delays).
        zero_delays: ``Delay`` nodes with a zero-step element: a cycle through them is a
            same-step cycle, never broken.

    Returns:
        The classification, orders and problems (see :class:`DfsResult`).
    """
    barrier = set(barriers)
    succ: dict[str, list[tuple[str, int]]] = {n: [] for n in nodes}
    for i, e in enumerate(edges):
        succ.setdefault(e.src, []).append((e.dst, i))
    for lst in succ.values():
        lst.sort()
    state: dict[str, int] = {}  # 1: on the stack, 2: finished
    back: set[int] = set()
    violations: list[Violation] = []
    preorder: list[str] = []
    rank: dict[str, int] = {}
    roots = deque(sorted(inputs))
    while roots:
        root = roots.popleft()
        if root in state:
            continue
        post: list[str] = []
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        state[root] = 1
        preorder.append(root)
        while stack:
            node, pos = stack[-1]
            out = succ.get(node, [])
            if pos == len(out):
                stack.pop()
                path.pop()
                state[node] = 2
                post.append(node)
                continue
            stack[-1] = (node, pos + 1)
            dst, i = out[pos]
            e = edges[i]
            if (e.delay is not None and e.delay > 0) or dst in barrier:
                if dst not in state:
                    roots.append(dst)  # not a same-step dependency: visit it later
                continue
            seen = state.get(dst)
            if seen is None:
                state[dst] = 1
                stack.append((dst, 0))
                path.append(dst)
                preorder.append(dst)
            elif seen == 1:
                cycle = (*path[path.index(dst):], dst)
                if e.delay == 0:
                    violations.append(Violation(i, cycle, "the edge has a fixed delay of 0"))
                elif any(n in zero_delays for n in cycle):
                    violations.append(Violation(i, cycle, "the cycle goes through a Delay node "
                                                         "with a delay of 0 steps"))
                else:
                    back.add(i)
        base = len(rank)
        for k, n in enumerate(reversed(post)):
            rank[n] = base + k
    unreached = tuple(n for n in nodes if n not in state)
    return DfsResult(frozenset(back), tuple(preorder), rank, unreached, tuple(violations))


def print_order(nodes: Sequence[str], same_step: Sequence[tuple[str, str]],
                rank: dict[str, int]) -> list[str]:
    """A topological order of the same-step edges, ties broken by ``rank`` (then by the
    given node order): each DFS tree in reverse post-order, trees in discovery order,
    moved only where a same-step edge from a later tree requires it."""
    position = {n: i for i, n in enumerate(nodes)}
    key = {n: (rank.get(n, len(rank) + position[n]), position[n]) for n in nodes}
    waiting = {n: 0 for n in nodes}
    users: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in same_step:
        if a != b:
            waiting[b] += 1
            users[a].append(b)
    ready = [(key[n], n) for n in nodes if waiting[n] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        for u in users[n]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (key[u], u))
    if len(order) != len(nodes):  # a same-step cycle: the verifier names it; keep all nodes
        placed = set(order)
        order += [n for n in nodes if n not in placed]
    return order
