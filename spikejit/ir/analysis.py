"""Graph analyses shared by the verifier, the interpreter, passes and the lowering.

The key fact: a node's output at step ``t`` depends on the operands it reads with delay 0,
unless the op itself only looks into the past (a ``snn.delay`` whose every delay is >= 1).
These *same-step* dependencies must form a DAG; its topological order is a valid order to
evaluate one time step.
"""

from __future__ import annotations

import heapq

from spikejit.ir.graph import Graph


def same_step_deps(graph: Graph, node_id: str) -> tuple[str, ...]:
    """Producers whose step-``t`` output ``node_id`` needs to compute its own step-``t``
    output (duplicates removed, operand order kept)."""
    node = graph.node(node_id)
    if not node.op.depends_same_step():
        return ()
    seen: dict[str, None] = {}
    for u in node.inputs:
        if u.delay == 0:
            seen.setdefault(u.node)
    return tuple(seen)


def same_step_cycle(graph: Graph) -> list[str] | None:
    """A cycle of same-step dependencies as a list of node ids, or ``None`` if there is none.

    Operands naming missing nodes are ignored here (the verifier reports them first).
    """
    color: dict[str, int] = {}
    for root in (n.id for n in graph.nodes):
        if root in color:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            nid, i = stack.pop()
            if i == 0:
                color[nid] = 1
                path.append(nid)
            deps = [d for d in same_step_deps(graph, nid) if d in graph]
            if i < len(deps):
                stack.append((nid, i + 1))
                dep = deps[i]
                state = color.get(dep, 0)
                if state == 1:
                    return [*path[path.index(dep):], dep]
                if state == 0:
                    stack.append((dep, 0))
            else:
                color[nid] = 2
                path.pop()
    return None


def step_order(graph: Graph) -> tuple[str, ...]:
    """Node ids in an order that respects same-step dependencies; ties go to print order.

    Deterministic (a heap keyed by print position), so the interpreter sums and evaluates
    in the same order every time. Raises ``ValueError`` on a same-step cycle (the verifier
    reports that properly before anyone asks for an order).
    """
    position = {n.id: i for i, n in enumerate(graph.nodes)}
    waiting = {n.id: set(same_step_deps(graph, n.id)) for n in graph.nodes}
    dependents: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for nid, deps in waiting.items():
        for d in deps:
            dependents[d].append(nid)
    ready = [position[nid] for nid, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        nid = graph.nodes[heapq.heappop(ready)].id
        order.append(nid)
        for user in dependents[nid]:
            waiting[user].discard(nid)
            if not waiting[user]:
                heapq.heappush(ready, position[user])
    if len(order) != len(graph.nodes):
        raise ValueError("same-step dependencies form a cycle")
    return tuple(order)


def reaches_output(graph: Graph) -> set[str]:
    """Ids of nodes from which some ``io.output`` is reachable (through any edge)."""
    live: set[str] = set()
    frontier = list(graph.outputs)
    while frontier:
        nid = frontier.pop()
        if nid in live or nid not in graph:
            continue
        live.add(nid)
        frontier.extend(u.node for u in graph.node(nid).inputs)
    return live


def reachable_from_inputs(graph: Graph) -> set[str]:
    """Ids of nodes reachable from some ``io.input`` (through any edge)."""
    seen: set[str] = set()
    frontier = list(graph.inputs)
    while frontier:
        nid = frontier.pop()
        if nid in seen:
            continue
        seen.add(nid)
        frontier.extend(user for user, _ in graph.users.get(nid, ()))
    return seen


def param_nbytes(graph: Graph) -> int:
    """Bytes of every parameter array the graph needs: the user's and the derived ones
    (from the declared types; for the size limit, :mod:`spikejit.limits`)."""
    user = sum(ref.type.nbytes for ref in graph.user_param_refs().values())
    return user + sum(d.type.nbytes for d in graph.derived)
