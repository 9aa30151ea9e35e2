"""Conv weight gradients hoisted out of a stepwise segment's scan.

Differentiating a scan that holds a convolution forms the conv's weight gradient once per
step, on ``B`` samples: XLA:CPU's conv weight gradient is pathological at small batches
(about 30x slower than over all ``T*B`` frames, ``docs/performance.md`` "Convolutions").
The stepwise lowering therefore runs such a segment under :func:`hoisted_scan`, a
``custom_vjp`` whose forward is the ordinary scan with two changes for every hoisted conv:

* the conv reads its weight through ``stop_gradient``, and its output gets a zero "probe"
  input added (scanned like any other input), so the backward scan delivers the output
  gradient of every step as the probe's cotangent, while forming no weight gradient;
* the conv's input of every step is an extra scan output (not differentiated).

The backward pass then forms each weight gradient once, over all ``T*B`` frames, with
:func:`spikejit.lowering.conv.weight_grad_nchw`, and adds it to the (zero) gradient the
scan produced for the weight. Forward values are untouched (adding an exact zero).

Dense synapses (``nn.affine``/``nn.linear`` with a 2-D weight, alone or fused) in the scan
get the same treatment for the same reason, milder: per step their weight gradient is an
``[out, B] @ [B, in]`` product plus a read-modify-write of the whole ``[out, in]``
accumulator, where one ``[out, T*B] @ [T*B, in]`` product after the loop runs at full
matmul speed. With no conv in the segment this is :func:`hoisted_scan_jvp`, a
``custom_jvp`` (forward mode keeps working): its rule linearizes the scan with the probes
as inputs and feeds them the weight's tangent contribution ``x[t] @ dW.T``, formed outside
the loop from the recorded inputs, so reverse mode transposes it into the single product.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from spikejit.ir.graph import Graph, Node
from spikejit.ir.ops import Affine, Conv1d, Conv2d, Linear
from spikejit.ir.ops.fused import FusedLayer
from spikejit.lowering.conv import resolve_impl, weight_grad_nchw

#: ``run(ptree, xs, carry0, probes) -> (outputs, conv inputs over time)``
ScanFn = Callable[[Any, Any, Any, Mapping[str, jax.Array]], tuple[Any, dict[str, jax.Array]]]


def conv_op(node: Node) -> Conv1d | Conv2d | None:
    """The conv of a node: its op, or a fused layer's synapse; ``None`` if it has none."""
    op = node.op
    if isinstance(op, FusedLayer):
        op = op.synapse()
    return op if isinstance(op, Conv1d | Conv2d) else None


def hoisted_convs(graph: Graph, members: tuple[str, ...], conv_impl: str) -> tuple[str, ...]:
    """Members of a stepwise segment whose conv weight gradient is hoisted (``custom_vjp``
    variant only: ``xla`` and ``xla_nhwc`` keep plain autodiff)."""
    if resolve_impl(conv_impl) != "custom_vjp":
        return ()
    return tuple(m for m in members if conv_op(graph.node(m)) is not None)


def dense_op(node: Node) -> Affine | Linear | None:
    """The dense synapse of a node with a 2-D weight (its op, or a fused layer's synapse)."""
    op = node.op
    if isinstance(op, FusedLayer):
        op = op.synapse()
    if isinstance(op, Affine | Linear) and len(op.weight.type.shape) == 2:
        return op
    return None


def hoisted_dense(graph: Graph, members: tuple[str, ...]) -> tuple[str, ...]:
    """Members of a stepwise segment whose dense weight gradient is hoisted."""
    return tuple(m for m in members if dense_op(graph.node(m)) is not None)


def _weight_grad(graph: Graph, m: str, x: jax.Array, g: jax.Array) -> jax.Array:
    """Member ``m``'s weight gradient from its inputs ``x[T, B, ...]`` and output gradients
    ``g[T, B, ...]`` over all steps."""
    op = conv_op(graph.node(m))
    if op is not None:
        return weight_grad_nchw(x, g, op)
    # Contracting the sample axes in place (not reshaped to [T*B, n]) lets XLA:CPU use its
    # fast matmul (measured ~10% faster than the 2-D (0, 0) contraction).
    lead = tuple(range(g.ndim - 1))
    return lax.dot_general(g, x, ((lead, lead), ((), ())))


def _zero_probes(graph: Graph, hoisted: tuple[str, ...], ptree: Any, steps: int,
                 batch: int) -> dict[str, jax.Array]:
    out = {}
    for m in hoisted:
        node = graph.node(m)
        assert node.type is not None
        out[m] = jnp.zeros((steps, batch, *node.type.shape), ptree[m]["weight"].dtype)
    return out


def hoisted_scan_jvp(graph: Graph, hoisted: tuple[str, ...], run: ScanFn, ptree: Any,
                     xs: Any, carry0: Any, steps: int, batch: int) -> Any:
    """:func:`hoisted_scan` as a ``custom_jvp`` (dense members only, see the module
    docstring): same arguments, same values, forward and reverse mode."""

    @jax.custom_jvp
    def seg(pt: Any, x: Any, c0: Any) -> Any:
        return run(pt, x, c0, {})[0]

    def seg_jvp(primals: tuple[Any, Any, Any], tangents: tuple[Any, Any, Any]
                ) -> tuple[Any, Any]:
        pt, x, c0 = primals
        d_pt, d_x, d_c0 = tangents
        zeros = _zero_probes(graph, hoisted, pt, steps, batch)
        out, lin, layer_in = jax.linearize(lambda a, b, c, d: run(a, b, c, d), pt, x, c0, zeros,
                                           has_aux=True)
        # The weights are read through stop_gradient inside; their tangents enter here.
        d_probe = {m: lax.dot_general(layer_in[m], d_pt[m]["weight"].astype(zeros[m].dtype),
                                      (((layer_in[m].ndim - 1,), (1,)), ((), ())))
                   for m in hoisted}
        return out, lin(d_pt, d_x, d_c0, d_probe)

    seg.defjvp(seg_jvp)
    return seg(ptree, xs, carry0)


def hoisted_scan(graph: Graph, hoisted: tuple[str, ...], run: ScanFn, ptree: Any, xs: Any,
                 carry0: Any, steps: int, batch: int) -> Any:
    """``run``'s outputs, with the weight gradients of ``hoisted`` formed after the loop.

    Args:
        graph: The graph (for the conv attributes and output shapes).
        hoisted: Member ids (see :func:`hoisted_convs`).
        run: The segment's scan (see :data:`ScanFn`); with a probe for member ``m`` it adds
            ``probes[m][t]`` to the conv output and reads the weight through
            ``stop_gradient``.
        ptree: ``{member: {param field: array}}``, the differentiable parameters.
        xs, carry0: The scan's inputs and initial carry.
        steps, batch: T and B.
    """

    def zeros() -> dict[str, jax.Array]:
        return _zero_probes(graph, hoisted, ptree, steps, batch)

    @jax.custom_vjp
    def seg(pt: Any, x: Any, c0: Any) -> Any:
        return run(pt, x, c0, zeros())[0]

    def fwd(pt: Any, x: Any, c0: Any) -> tuple[Any, Any]:
        out, vjp_fn, conv_in = jax.vjp(lambda a, b, c, d: run(a, b, c, d), pt, x, c0, zeros(),
                                       has_aux=True)
        return out, (vjp_fn, conv_in)

    def bwd(res: Any, ct: Any) -> tuple[Any, Any, Any]:
        vjp_fn, conv_in = res
        d_pt, d_x, d_c0, d_probe = vjp_fn(ct)
        d_pt = {m: dict(v) for m, v in d_pt.items()}
        for m in hoisted:
            dw = _weight_grad(graph, m, conv_in[m], d_probe[m])
            d_pt[m]["weight"] = d_pt[m]["weight"] + dw.astype(d_pt[m]["weight"].dtype)
        return d_pt, d_x, d_c0

    seg.defvjp(fwd, bwd)
    return seg(ptree, xs, carry0)
