"""``canonicalize``: one written form for each construct, decided from structure alone.

Parameter values are not part of the IR, so no rule can depend on them (an ``nn.affine``
whose bias happens to be zero stays an ``nn.affine``: whether it is zero is only known at
run time). The rules, applied in one sweep over the nodes:

1. **Attribute normal forms.** ``snn.delay`` with one delay per element, all equal, holds
   that delay once (``steps = [2, 2, 2]`` becomes ``steps = 2``). ``nn.flatten`` dims are
   written non-negative, except an ``end_dim`` naming the last axis, which is ``-1`` (the
   default, so it is not printed). ``nn.conv1d``/``nn.conv2d`` padding ``"valid"`` is
   ``0``, and ``"same"`` is written as integers when its split is symmetric.
2. **Identities are removed.** An ``nn.flatten`` whose output shape equals its input
   shape and an ``snn.delay`` whose delays are all 0, each with a single operand, are
   bypassed: their users read the operand (with the delays of both uses added up).
3. **A uniform delay is a delayed use.** An ``snn.delay`` with a single operand and one
   delay ``k >= 1`` for every element is removed; its users read the operand ``k`` steps
   further back (``%d[t-1]`` of ``%d = snn.delay(%a) {steps = 2}`` becomes ``%a[t-3]``).
   Both mean ``y[t] = x[t-k]`` with zeros before the start.
4. **No output-of-output chains.** A node reading an ``io.output`` that has one operand
   reads that operand instead (the ``io.output`` itself stays: it is observed by id).
5. **Elementwise parameters have the layer shape.** A parameter of a NIR neuron
   (``snn.i/if/li/lif/cuba_li/cuba_lif``), ``snn.threshold`` or ``nn.scale`` whose shape
   is not the layer shape (a scalar ``f32[]``, or ``[1]``), an ``nn.affine`` bias not of
   the output shape and a conv bias not of shape ``[C_out]`` are replaced by a derived
   parameter ``broadcast(@p) {shape = [...]}``. The user still passes the scalar;
   gradients flow back through the broadcast.

Operands keep their order, so every sum is computed in the same order as before and
results are bit-identical (a bypassed node has exactly one operand).

Pre: the graph verifies. Post: it verifies, computes exactly what it computed before
(spikes and values identical), takes the same user parameters, and canonicalizing it
again changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from spikejit.ir.graph import Graph, Node, Use
from spikejit.ir.ops import (
    Affine,
    Conv1d,
    Conv2d,
    Delay,
    Flatten,
    Op,
    Output,
)
from spikejit.ir.types import ParamRef
from spikejit.passes.base import Pass
from spikejit.passes.rewrite import Derivations, finish, forward_to, shifted, substitute, typed

#: Ops whose every parameter is applied elementwise, broadcast to the layer shape.


def _input_shape(graph: Graph, node: Node) -> tuple[int, ...]:
    t = graph.node(node.inputs[0].node).type
    assert t is not None  # the graph is typed
    return t.shape


def _normal_attrs(graph: Graph, node: Node) -> Op:
    """Rule 1: the canonical spelling of the op's static attributes."""
    op = node.op
    if isinstance(op, Delay) and len(op.steps) > 1 and len(set(op.steps)) == 1:
        return op.replace(steps=(op.steps[0],))
    if isinstance(op, Flatten):
        rank = len(_input_shape(graph, node))
        if rank == 0:
            return op
        start, end = op.axes(rank)
        return op.replace(start_dim=start, end_dim=-1 if end == rank - 1 else end)
    if isinstance(op, Conv1d | Conv2d) and isinstance(op.padding, str):
        pads = op.pads()
        if all(lo == hi for lo, hi in pads):
            padding = tuple(lo for lo, _ in pads)
            return op.replace(padding=padding[0] if len(set(padding)) == 1 else padding)
    return op


def _bypass(graph: Graph, node: Node) -> int | None:
    """Rules 2 and 3: for a removable single-operand node, how many steps its users must
    additionally look back (0 for an identity); ``None`` if the node stays."""
    if len(node.inputs) != 1:
        return None
    op = node.op
    if isinstance(op, Flatten):
        assert node.type is not None
        return 0 if node.type.shape == _input_shape(graph, node) else None
    if isinstance(op, Delay) and len(set(op.steps)) == 1:
        return op.steps[0]  # 0: identity; k >= 1: a delayed use
    return None


def _layer_fields(node: Node) -> list[tuple[str, tuple[int, ...]]]:
    """Rule 5: (field, canonical shape) of every elementwise parameter field."""
    op, t = node.op, node.type
    assert t is not None
    # Only ops whose parameters are documented as elementwise over the layer (the NIR
    # neurons, threshold, scale); other neurons may read a parameter differently.
    if op.elementwise:
        return [(f, t.shape) for f, _ in op.params()]
    if isinstance(op, Affine):
        return [("bias", t.shape)]
    if isinstance(op, Conv1d | Conv2d) and op.bias is not None:
        return [("bias", (t.shape[0],))]
    return []


def _broadcast_params(node: Node, derivations: Derivations) -> Op:
    """Rule 5 applied to one node."""
    changes: dict[str, ParamRef] = {}
    for field, shape in _layer_fields(node):
        ref: ParamRef = getattr(node.op, field)
        if ref.type.shape != shape:
            changes[field] = derivations.add(f"{ref.name}.broadcast", "broadcast", (ref,),
                                             shape=shape)
    return node.op.replace(**changes) if changes else node.op


def canonicalize(graph: Graph) -> Graph:
    """Rewrite ``graph`` into canonical form (rules in the module docstring)."""
    graph = typed(graph)
    derivations = Derivations(graph)
    subst: dict[str, Callable[[int], Sequence[Use]]] = {}
    nodes: list[Node] = []
    changed = False
    for n in graph.nodes:
        extra = _bypass(graph, n)
        if extra is not None:
            subst[n.id] = forward_to(shifted(n.inputs, extra))
            continue
        op = _normal_attrs(graph, n)
        if op != n.op:
            n = n.replace(op=op)
        op = _broadcast_params(n, derivations)
        if op != n.op:
            n = n.replace(op=op)
        changed |= n is not graph.node(n.id)
        nodes.append(n)
    # Rule 4: users of a single-operand io.output read its operand; the output stays.
    outputs = {n.id for n in nodes if isinstance(n.op, Output) and len(n.inputs) == 1}
    for n in nodes:
        if n.id in outputs:
            subst[n.id] = forward_to(n.inputs)
    if not changed and not any(u.node in subst for n in nodes for u in n.inputs):
        return graph
    return finish(graph, substitute(nodes, subst, keep=frozenset(outputs)),
                  derivations.entries)


CANONICALIZE = Pass("canonicalize", canonicalize,
                    "one form per construct: identities and uniform delays removed, attributes "
                    "normalised, elementwise parameters broadcast to the layer shape")
