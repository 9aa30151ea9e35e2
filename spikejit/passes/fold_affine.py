"""``fold-affine``: fold a chain of two linear maps into one.

``P2(P1(x))`` with ``P1``, ``P2`` each ``nn.linear`` or ``nn.affine`` with a ``[k, n]``
and ``[m, k]`` weight becomes one node: ``W2 (W1 x + b1) + b2 = (W2 W1) x + (W2 b1 + b2)``.
The result is an ``nn.linear`` when neither had a bias, else an ``nn.affine``; its weight
is ``matmul(@W2, @W1)``, its bias ``matvec(@W2, @b1)``, ``@b2`` or
``add(matvec(@W2, @b1), @b2)``. There is no nonlinearity or state between the two (both
are stateless maps), so the value is the same up to rounding (float64: ~1e-15 relative).

Legal when ``P2`` has ``P1`` as its only operand, ``P1`` has no other use, and both
weights are plain matrices. ``P1`` may read several operands (their sum feeds the folded
map). If ``P2`` reads ``P1`` with a delay, ``P1`` must be an ``nn.linear`` (it maps the
zeros before the start to zeros); the folded node then reads ``P1``'s operands that many
steps further back. ``P2`` keeps its id.

Folding is skipped when it would make the map more expensive: ``m*n`` multiply-adds per
sample against ``k*(n + m)`` for the chain (a bottleneck ``k`` much smaller than ``m`` and
``n`` is cheaper unfolded). The option ``always=true`` folds regardless. Chains of any
length fold to a fixed point.

Pre: the graph verifies. Post: it verifies, takes the same user parameters, computes the
same outputs (up to rounding), and no foldable pair remains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from spikejit.ir.graph import Graph, Node, Use
from spikejit.ir.ops import Affine, Linear, Op
from spikejit.ir.types import ParamRef
from spikejit.passes.base import Pass
from spikejit.passes.rewrite import (
    Derivations,
    finish,
    rename_to,
    shifted,
    single_user,
    substitute,
    typed,
)


def _matrix(op: Op) -> ParamRef | None:
    if isinstance(op, Linear | Affine) and op.weight.type.rank == 2:
        return op.weight
    return None


def _folded(p1: Op, p2: Op, der: Derivations, base: str) -> Op:
    w1, w2 = _matrix(p1), _matrix(p2)
    assert w1 is not None and w2 is not None
    weight = der.add(f"{base}.weight.folded", "matmul", (w2, w1))
    b1 = p1.bias if isinstance(p1, Affine) else None
    b2 = p2.bias if isinstance(p2, Affine) else None
    if b1 is None and b2 is None:
        return Linear(weight=weight)
    if b1 is None:
        assert b2 is not None
        return Affine(weight=weight, bias=b2)
    if b2 is None:
        return Affine(weight=weight, bias=der.add(f"{base}.bias.folded", "matvec", (w2, b1)))
    carried = der.add(f"{base}.bias.carried", "matvec", (w2, b1))
    return Affine(weight=weight, bias=der.add(f"{base}.bias.folded", "add", (carried, b2)))


def _round(graph: Graph, der: Derivations, always: bool) -> Graph | None:
    claimed: set[str] = set()
    replaced: dict[str, Node] = {}
    subst: dict[str, Callable[[int], Sequence[Use]]] = {}
    for n in graph.nodes:
        w2 = _matrix(n.op)
        if w2 is None or len(n.inputs) != 1 or n.id in claimed:
            continue
        use = n.inputs[0]
        p = graph.node(use.node)
        w1 = _matrix(p.op)
        if w1 is None or p.id in claimed or p.id == n.id or single_user(graph, p.id) is None:
            continue
        if use.delay and not isinstance(p.op, Linear):
            continue  # an affine map does not send the zeros before the start to zeros
        if w2.type.dtype != w1.type.dtype:
            continue
        (m, k), n_in = w2.type.shape, w1.type.shape[1]
        if not always and m * n_in > k * (n_in + m):
            continue
        op = _folded(p.op, n.op, der, n.id)
        replaced[n.id] = n.replace(op=op, inputs=shifted(p.inputs, use.delay))
        subst[p.id] = rename_to(n.id)  # never read: its only user is rewritten
        claimed |= {p.id, n.id}
    if not replaced:
        return None
    nodes = [replaced.get(n.id, n) for n in graph.nodes]
    return finish(graph, substitute(nodes, subst), der.entries)


def fold_affine(graph: Graph, *, always: bool = False) -> Graph:
    """Fold chains of linear/affine maps (see the module docstring).

    Args:
        graph: The graph.
        always: Fold even where the folded matrix costs more than the chain.
    """
    graph = typed(graph)
    while True:
        result = _round(graph, Derivations(graph), always)
        if result is None:
            return graph
        graph = result


FOLD_AFFINE = Pass("fold-affine", fold_affine,
                   "fold chains of linear/affine maps with nothing in between into one map "
                   "(where that is not more expensive)")
