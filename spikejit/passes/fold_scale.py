"""``fold-scale``: fold an ``nn.scale`` into the adjacent synapse's parameters.

Three patterns, each only where the scale's value is needed nowhere else:

* **after** a synapse, ``scale(P(x))`` with ``P`` = ``nn.linear``/``nn.affine`` (weight
  ``[m, n]``) or a convolution: ``s * (W x + b) = (s W) x + s b``. Legal when the scale
  has ``P`` as its only operand (read at the same step), ``P`` has no other use, and ``s``
  is constant along everything but the output channel: ``[]``, ``[1]`` or ``[m]`` for a
  linear map; ``[C_out, 1, ...]``-like for a convolution. Weights become
  ``scale_axis(@W, @s) {axis = 0}``, a bias ``mul(@b, @s)`` (linear) or
  ``scale_axis(@b, @s) {axis = 0}`` (conv). ``P`` keeps its id; the scale's users read it.
* **before** a synapse, ``P(scale(x))``: ``W (s x) + b = (W s) x + b``. Legal when ``P``
  has the scale as its only operand, the scale has no other use, and ``s`` is constant
  along everything but the input features: ``[]``, ``[1]`` or ``[n]`` for a linear map;
  ``[C_in, 1, ...]``-like for a convolution with ``groups = 1`` (any conv for a single
  value). Zero padding stays zero. Weights become ``scale_axis(@W, @s) {axis = 1}``. ``P``
  keeps its id and reads the scale's operands, shifted by the delay of the removed use
  (a scale maps zeros, the value before the start, to zeros).
* **two scales**, ``scale(scale(x, a), b)`` becomes ``scale(x, mul(@a, @b))`` on the same
  conditions as *before*.

The look-through: a scale parameter that ``canonicalize`` broadcast
(``broadcast(@s) {shape = ...}``) is judged, and folded, by its source ``@s``, so the order
of the two passes does not matter. Chains are folded to a fixed point. Results differ
from the unfolded graph by rounding only (one multiplication moved), far inside the 1e-6
tolerance in float64.

Pre: the graph verifies. Post: it verifies, takes the same user parameters, and computes
the same outputs (values equal up to rounding); no foldable pattern remains.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from spikejit.ir.derived import DerivedTypeError
from spikejit.ir.graph import Graph, Node, Use
from spikejit.ir.ops import Affine, Conv1d, Conv2d, Linear, Op, Scale
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

SYNAPSES = (Linear, Affine, Conv1d, Conv2d)


def _along_one_axis(shape: tuple[int, ...], axis: int, size: int, rank: int) -> bool:
    """Whether a scale of ``shape``, broadcast against a value of rank ``rank``, varies
    only along ``axis`` of that value (and holds 1 or ``size`` values there)."""
    if len(shape) > rank:
        return False
    padded = (1,) * (rank - len(shape)) + shape
    return all(d == 1 for i, d in enumerate(padded) if i != axis) and padded[axis] in (1, size)


def _weight_ok(op: Op) -> bool:
    # Linear maps with leading broadcast axes are left alone: folding would grow them.
    return not isinstance(op, Linear | Affine) or op.weight.type.rank == 2


def _fold_after(p: Op, s: ParamRef, der: Derivations, base: str) -> Op | None:
    """``P`` with ``s`` folded into its output, or ``None`` if ``s`` does not fit."""
    w: ParamRef = p.weight  # type: ignore[attr-defined]
    out_rank = 1 if isinstance(p, Linear | Affine) else w.type.rank - 1
    if not _along_one_axis(s.type.shape, 0, w.type.shape[0], out_rank):
        return None
    changes = {"weight": der.add(f"{base}.weight.folded", "scale_axis", (w, s), axis=0)}
    bias = getattr(p, "bias", None)
    if bias is not None:
        if isinstance(p, Affine):
            changes["bias"] = der.add(f"{base}.bias.folded", "mul", (bias, s))
        else:
            if bias.type.shape != (w.type.shape[0],):
                bias = der.add(f"{bias.name}.broadcast", "broadcast", (bias,),
                               shape=(w.type.shape[0],))
            changes["bias"] = der.add(f"{base}.bias.folded", "scale_axis", (bias, s), axis=0)
    return p.replace(**changes)


def _fold_before(p: Op, s: ParamRef, in_rank: int, der: Derivations, base: str) -> Op | None:
    """``P`` with ``s`` folded into its input, or ``None`` if ``s`` does not fit."""
    w: ParamRef = p.weight  # type: ignore[attr-defined]
    if isinstance(p, Linear | Affine):
        if in_rank != 1 or s.type.shape not in ((), (1,), (w.type.shape[1],)):
            return None
    else:
        assert isinstance(p, Conv1d | Conv2d)
        per_channel = p.groups == 1 and _along_one_axis(s.type.shape, 0, w.type.shape[1],
                                                        in_rank)
        if not per_channel and s.type.size != 1:
            return None
    return p.replace(weight=der.add(f"{base}.weight.folded", "scale_axis", (w, s), axis=1))


def _scale_refs(node: Node, der: Derivations) -> list[ParamRef]:
    """The scale parameter, then its broadcast source if it has one."""
    assert isinstance(node.op, Scale)
    ref = node.op.scale
    src = der.source(ref)
    return [ref] if src == ref else [src, ref]


def _in_rank(graph: Graph, node: Node) -> int:
    t = graph.node(node.inputs[0].node).type
    assert t is not None
    return t.rank


def _fold_into_scale(p: Op, s: ParamRef, der: Derivations, base: str) -> Op | None:
    """Another scale with ``s`` multiplied into its factor."""
    assert isinstance(p, Scale)
    return p.replace(scale=der.add(f"{base}.scale.folded", "mul", (s, p.scale)))


def _first_fold(fold: Callable[[ParamRef], Op | None], refs: list[ParamRef]) -> Op | None:
    """The op ``fold`` makes with the first scale reference that fits, if any."""
    for ref in refs:
        try:
            op = fold(ref)
        except DerivedTypeError:  # a shape the type rules refuse: not foldable
            op = None
        if op is not None:
            return op
    return None


def _round(graph: Graph, der: Derivations) -> Graph | None:
    """Fold every non-overlapping pattern once; ``None`` if there was none."""
    claimed: set[str] = set()
    replaced: dict[str, Node] = {}
    subst: dict[str, Callable[[int], Sequence[Use]]] = {}
    for n in graph.nodes:
        if not isinstance(n.op, Scale) or n.id in claimed:
            continue
        refs = _scale_refs(n, der)
        # After a synapse: scale(P(x)).
        if len(n.inputs) == 1 and n.inputs[0].delay == 0:
            p = graph.node(n.inputs[0].node)
            if (isinstance(p.op, SYNAPSES) and p.id not in claimed and _weight_ok(p.op)
                    and single_user(graph, p.id) is not None):
                after = functools.partial(_fold_after, p.op, der=der, base=p.id)
                folded = _first_fold(after, refs)
                if folded is not None:
                    replaced[p.id] = p.replace(op=folded)
                    subst[n.id] = rename_to(p.id)
                    claimed |= {p.id, n.id}
                    continue
        # Before a synapse or another scale: P(scale(x)).
        user = single_user(graph, n.id)
        if user is None:
            continue
        p = graph.node(user[0])
        if p.id in claimed or len(p.inputs) != 1 or p.id == n.id:
            continue
        op: Op | None = None
        if isinstance(p.op, Scale):
            op = _first_fold(functools.partial(_fold_into_scale, p.op, der=der, base=p.id),
                             refs)
        elif isinstance(p.op, SYNAPSES) and _weight_ok(p.op):
            before = functools.partial(_fold_before, p.op, in_rank=_in_rank(graph, n), der=der,
                                       base=p.id)
            op = _first_fold(before, refs)
        if op is not None:
            replaced[p.id] = p.replace(op=op, inputs=shifted(n.inputs, user[1].delay))
            subst[n.id] = rename_to(p.id)  # never read: its only user is rewritten
            claimed |= {p.id, n.id}
    if not replaced:
        return None
    nodes = [replaced.get(n.id, n) for n in graph.nodes]
    return finish(graph, substitute(nodes, subst), der.entries)


def fold_scale(graph: Graph) -> Graph:
    """Fold scales into adjacent synapses to a fixed point (see the module docstring)."""
    graph = typed(graph)
    while True:
        der = Derivations(graph)
        result = _round(graph, der)
        if result is None:
            return graph
        graph = result


FOLD_SCALE = Pass("fold-scale", fold_scale,
                  "fold nn.scale into the weights of an adjacent linear, affine or conv "
                  "node (or into another scale)")
