"""``schedule``: decide which nodes run layerwise and which run stepwise, and in what order.

The graph (every edge, delayed ones included) is condensed into its strongly connected
components (SCCs). A node on no cycle only needs its producers *complete*, so it can run
**layerwise**: once over the whole time axis (a synapse as one matmul/conv over ``T*B``
rows, a neuron as a scan of its elementwise update). The nodes of a cyclic SCC (a
recurrent loop, or a node reading itself) feed each other step by step, so they run
**stepwise**: one ``lax.scan`` over time, in :func:`spikejit.ir.analysis.step_order`
restricted to the SCC (the DFS rule of ``nir-euler-v1``: same-step edges first).

Options:

* ``mode``: ``auto`` (default; layerwise where legal, stepwise for cyclic SCCs),
  ``layerwise`` (every node layerwise; a cycle is a :class:`ScheduleError` naming it) or
  ``stepwise`` (the whole graph in one scan, in step order).
* ``order``: ``dfs`` (default) or ``jacobi``. Jacobi rewrites every same-step edge *inside a
  cyclic SCC* into a one-step-delayed edge (``%a`` becomes ``%a[t-1]``), so all nodes of a
  component read only the previous step and are independent within a step. This changes
  what the graph computes (it is a different discretisation), which is why the pass
  rewrites the uses instead of hiding it in the lowering: the IR, the reference
  interpreter and the state format all see the delays.
* ``parallel``: ``auto`` (default), ``off`` or ``on``. With ``on`` every node of a
  layerwise segment whose dynamics are reset-free and linear (``snn.i``, ``snn.li``,
  ``snn.cuba_li``, the synaptic current of ``snn.cuba_lif``, and the ``layer.*`` ops of
  these neurons; :func:`spikejit.ir.schedule.linear_states`) is named in the segment's
  ``parallel(...)`` list, and the lowering runs its recurrence over time as an
  associative scan (:mod:`spikejit.lowering.parallel_scan`; the same values up to float
  rounding). Whether it pays depends on the JAX backend, which this JAX-free pass does not
  know: ``compile`` turns ``auto`` into ``on`` or ``off``
  (:func:`spikejit.lowering.parallel_scan.resolve_parallel`); in a pipeline run by itself
  ``auto`` is ``off``. Stepwise segments never run a node in parallel.

Segments follow a topological order of the condensation; ties prefer continuing the
current kind of segment (fewer, longer segments), then the earliest node in print order.
Consecutive layerwise nodes form one layerwise segment and consecutive cyclic SCCs one
stepwise segment.

Pre: typed, verified graph. Post: the same graph (or, with ``order=jacobi``, its jacobi
rewrite) with ``graph.schedule`` set; it verifies, and all three modes compute the same.
"""

from __future__ import annotations

import heapq

import networkx as nx

from spikejit.errors import PassError, ScheduleError
from spikejit.ir.analysis import step_order
from spikejit.ir.graph import Graph, Use
from spikejit.ir.names import format_name
from spikejit.ir.schedule import STEP_ORDERS, Schedule, Segment, linear_states
from spikejit.passes.base import Pass

MODES: tuple[str, ...] = ("auto", "layerwise", "stepwise")
ORDERS: tuple[str, ...] = STEP_ORDERS  # one list: the IR validates the same names
PARALLEL: tuple[str, ...] = ("auto", "off", "on")


def cyclic_components(graph: Graph) -> list[list[str]]:
    """The node sets that lie on a cycle (SCCs of size > 1 or with a self-loop), each in
    print order, ordered by their first node's print position."""
    position = {n.id: i for i, n in enumerate(graph.nodes)}
    g = graph.to_networkx()
    out = []
    for comp in nx.strongly_connected_components(g):
        if len(comp) > 1 or any(g.has_edge(n, n) for n in comp):
            out.append(sorted(comp, key=position.__getitem__))
    out.sort(key=lambda c: position[c[0]])
    return out


def jacobi_rewrite(graph: Graph) -> Graph:
    """Every same-step use whose producer and consumer share a cyclic SCC becomes a
    one-step-delayed use; other uses are untouched."""
    comp_of = {nid: i for i, comp in enumerate(cyclic_components(graph)) for nid in comp}
    nodes = []
    changed = False
    for n in graph.nodes:
        uses = []
        for u in n.inputs:
            same = n.id in comp_of and comp_of.get(u.node) == comp_of[n.id]
            if same and u.delay == 0:
                uses.append(Use(u.node, 1))
                changed = True
            else:
                uses.append(u)
        nodes.append(n.replace(inputs=tuple(uses)))
    return graph.replace(nodes=tuple(nodes)) if changed else graph


def _describe_cycle(graph: Graph, members: list[str]) -> str:
    g = graph.to_networkx().subgraph(members)
    edges = nx.find_cycle(g, source=members[0])
    text = "%" + format_name(edges[0][0])
    for u, v, key in edges:
        delay = g.edges[u, v, key]["delay"]
        text += f" -> %{format_name(v)}" + (f"[t-{delay}]" if delay else "")
    return text


def parallel_enabled(parallel: str) -> bool:
    """Whether ``parallel`` (``auto``, ``off`` or ``on``) marks eligible nodes: only ``on``
    (``compile`` has already decided what ``auto`` means on its backend)."""
    return parallel == "on"


def schedule(graph: Graph, *, mode: str = "auto", order: str = "dfs",
             parallel: str = "auto") -> Graph:
    """Attach a :class:`~spikejit.ir.schedule.Schedule` to ``graph`` (see module docstring).

    Args:
        graph: A typed, verified graph.
        mode: ``auto``, ``layerwise`` or ``stepwise``.
        order: ``dfs`` or ``jacobi`` (ordering inside cyclic components).
        parallel: ``auto``, ``off`` or ``on``: name linear neurons of layerwise segments
            ``parallel`` (see the module docstring).

    Returns:
        The scheduled graph.

    Raises:
        PassError: an unknown ``mode``, ``order`` or ``parallel``.
        ScheduleError: ``mode=layerwise`` on a graph with a cycle (the message names it).
    """
    if mode not in MODES:
        raise PassError(f"schedule: option mode must be one of {', '.join(MODES)}, got {mode!r}")
    if order not in ORDERS:
        raise PassError(f"schedule: option order must be one of {', '.join(ORDERS)}, "
                        f"got {order!r}")
    if parallel not in PARALLEL:
        raise PassError(f"schedule: option parallel must be one of {', '.join(PARALLEL)}, "
                        f"got {parallel!r}")
    if order == "jacobi":
        graph = jacobi_rewrite(graph)
    cyclic = cyclic_components(graph)
    if mode == "layerwise" and cyclic:
        members = cyclic[0]
        raise graph.error(
            ScheduleError, members[0],
            f"is on a cycle ({_describe_cycle(graph, members)}), which cannot run layerwise "
            f"(each node over the whole time axis); use schedule='auto' or 'stepwise'")
    steps = step_order(graph)
    if mode == "stepwise":
        return graph.replace(schedule=Schedule((Segment("stepwise", steps, order),)))
    segments = _segments(graph, cyclic, steps, order)
    if parallel_enabled(parallel):
        segments = tuple(_mark_parallel(graph, seg) for seg in segments)
    return graph.replace(schedule=Schedule(segments))


def _mark_parallel(graph: Graph, seg: Segment) -> Segment:
    """``seg`` with its linear neurons named parallel (layerwise segments only)."""
    if seg.kind != "layerwise":
        return seg
    marked = tuple(nid for nid in seg.nodes if linear_states(graph.node(nid).op))
    return Segment(seg.kind, seg.nodes, seg.order, marked) if marked else seg


def _segments(graph: Graph, cyclic: list[list[str]], steps: tuple[str, ...],
              order: str) -> tuple[Segment, ...]:
    position = {n.id: i for i, n in enumerate(graph.nodes)}
    comp_of: dict[str, int] = {}
    comps: list[list[str]] = []
    for comp in cyclic:
        for nid in comp:
            comp_of[nid] = len(comps)
        comps.append(comp)
    for n in graph.nodes:
        if n.id not in comp_of:
            comp_of[n.id] = len(comps)
            comps.append([n.id])
    is_cyclic = [i < len(cyclic) for i in range(len(comps))]
    succ: list[set[int]] = [set() for _ in comps]
    indeg = [0] * len(comps)
    for n in graph.nodes:
        for u in n.inputs:
            a, b = comp_of[u.node], comp_of[n.id]
            if a != b and b not in succ[a]:
                succ[a].add(b)
                indeg[b] += 1
    # One ready heap per kind, keyed by the component's first print position.
    ready: dict[bool, list[tuple[int, int]]] = {False: [], True: []}
    for c, d in enumerate(indeg):
        if d == 0:
            heapq.heappush(ready[is_cyclic[c]], (position[comps[c][0]], c))
    runs: list[tuple[bool, list[str]]] = []
    current: bool | None = None
    while ready[False] or ready[True]:
        if current is not None and ready[current]:
            kind = current  # keep extending the current run: fewer, longer segments
        elif not ready[True] or not ready[False]:
            kind = bool(ready[True])
        else:
            kind = ready[True][0] < ready[False][0]  # the earliest node in print order
        _, c = heapq.heappop(ready[kind])
        if runs and runs[-1][0] == kind:
            runs[-1][1].extend(comps[c])
        else:
            runs.append((kind, list(comps[c])))
        current = kind
        for b in sorted(succ[c]):
            indeg[b] -= 1
            if indeg[b] == 0:
                heapq.heappush(ready[is_cyclic[b]], (position[comps[b][0]], b))
    rank = {nid: i for i, nid in enumerate(steps)}
    segments = []
    for kind, members in runs:
        if kind:
            segments.append(Segment("stepwise", tuple(sorted(members, key=rank.__getitem__)),
                                    order))
        else:
            segments.append(Segment("layerwise", tuple(members)))
    return tuple(segments)


SCHEDULE = Pass("schedule", schedule,
                "condense cycles: layerwise where acyclic, one scan per recurrent component "
                "(options mode=auto|layerwise|stepwise, order=dfs|jacobi, "
                "parallel=auto|off|on: linear neurons as an associative scan)")
