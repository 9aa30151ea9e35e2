"""``cse``: merge nodes that provably compute the same values, and identical derivations.

Two nodes are equivalent when they have the same op (attributes and parameter references
included), the same type, and operands that are pairwise equivalent with equal delays,
in the same order (sums are kept in their order, so merged values are bit-identical).
Stateful nodes qualify too: equal ops fed equal inputs from the same zero state follow
equal trajectories. The equivalence is the coarsest one with that property, computed by
partition refinement (Moore's algorithm), so duplicated recurrent loops are merged as
well: the proof is an induction over time steps and, within a step, over the same-step
dependency order.

``io.input`` and ``io.output`` nodes are never merged (they are observed by id). Of each
class the first node in print order stays and the others' users read it. Derived
parameters with the same function, arguments and attributes are merged first.

Cost: ``O(n * r)`` where ``r`` is the number of refinement rounds (1-3 on real graphs; at
most the length of the longest chain of nodes that are identical apart from their inputs).

Pre: the graph verifies. Post: it verifies, no two nodes are equivalent in the sense
above, and the outputs are identical.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from spikejit.ir.derived import DerivedParam
from spikejit.ir.graph import Graph, Node, Use
from spikejit.ir.types import ParamRef
from spikejit.passes.base import Pass
from spikejit.passes.rewrite import finish, is_io, rename_to, substitute, typed


def _merge_derived(graph: Graph) -> tuple[list[Node], list[DerivedParam]]:
    """Nodes and derivations with duplicate derivations replaced by their first copy."""
    rename: dict[str, ParamRef] = {}
    first: dict[Hashable, ParamRef] = {}
    entries: list[DerivedParam] = []
    for d in graph.derived:
        args = tuple(rename.get(a.name, a) for a in d.args)
        d = DerivedParam(d.name, d.type, d.fn, args, d.attrs)
        key = (d.type, d.fn, d.args, d.attrs)
        if key in first:
            rename[d.name] = first[key]
        else:
            first[key] = d.ref
            entries.append(d)
    if not rename:
        return list(graph.nodes), entries
    nodes = []
    for n in graph.nodes:
        changes = {f: rename[r.name] for f, r in n.op.params() if r.name in rename}
        nodes.append(n.replace(op=n.op.replace(**changes)) if changes else n)
    return nodes, entries


def _classes(nodes: Sequence[Node]) -> dict[str, int]:
    """The coarsest stable partition: node id -> class number."""
    numbers: dict[Hashable, int] = {}
    cls: dict[str, int] = {}
    for n in nodes:
        key: Hashable = ("io", n.id) if is_io(n.op) else (n.op, n.type, len(n.inputs))
        cls[n.id] = numbers.setdefault(key, len(numbers))
    count = len(numbers)
    while True:
        numbers = {}
        refined = {}
        for n in nodes:
            sig = (cls[n.id], tuple((cls[u.node], u.delay) for u in n.inputs))
            refined[n.id] = numbers.setdefault(sig, len(numbers))
        cls = refined
        # Refinement only ever splits classes, so an unchanged count means stable.
        if len(numbers) == count:
            return cls
        count = len(numbers)


def cse(graph: Graph) -> Graph:
    """Merge equivalent nodes and derivations (see the module docstring)."""
    graph = typed(graph)
    nodes, entries = _merge_derived(graph)
    cls = _classes(nodes)
    keeper: dict[int, str] = {}
    subst: dict[str, Callable[[int], Sequence[Use]]] = {}
    for n in nodes:
        rep = keeper.setdefault(cls[n.id], n.id)
        if rep != n.id:
            subst[n.id] = rename_to(rep)
    if not subst and len(entries) == len(graph.derived):
        return graph
    return finish(graph, substitute(nodes, subst), entries)


CSE = Pass("cse", cse, "merge nodes with identical ops and equivalent operands, and "
           "identical derived parameters")
