r"""Lowering rules of the NIR ops, registered in :data:`~spikejit.lowering.context.LOWERINGS`.

A rule says what one node computes, independent of how the schedule runs it. There are
three kinds:

* ``map`` (stateless ops): ``apply(ctx, x) -> y`` where ``x`` is ``[N, *in_shape]`` with one
  leading axis of independent samples. A layerwise segment calls it once with
  ``N = T*B`` (one matmul/conv over the whole time axis); a stepwise segment calls it with
  ``N = B`` inside its scan.
* ``neuron`` (stateful elementwise ops): ``prepare(ctx) -> consts`` runs once per call,
  outside any loop (``h/tau``, ``exp(-h/tau)``, defaults; it reads the traced params, so
  gradients reach ``tau``); ``step(ctx, consts, state, x) -> (y, state)`` is one time step
  on ``[B, *shape]``. Layerwise segments scan ``step`` over time; stepwise segments call it
  in their scan body.
* ``delay`` (``snn.delay``): handled by :func:`delay_full` (a shift of the whole time axis
  with the carried-in buffer prepended) and :func:`delay_step` / :func:`delay_push` (a ring
  of the last ``K`` inputs inside a scan).

Formulas follow ``nir-euler-v1`` term by term in the same order as the reference
interpreter, so float32 results match it to rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from spikejit.ir.graph import Node
from spikejit.ir.ops import (
    ALIF,
    IF,
    LI,
    LIF,
    Affine,
    AvgPool2d,
    Conv1d,
    Conv2d,
    CubaLI,
    CubaLIF,
    Delay,
    Flatten,
    Input,
    Integrator,
    Linear,
    Output,
    Scale,
    SumPool2d,
    Threshold,
)

# The other built-in families register on import: with them, LOWERINGS is complete.
from spikejit.lowering import biophysical, fused  # noqa: F401
from spikejit.lowering import conv as conv_lowering
from spikejit.lowering.context import (
    LOWERINGS,
    Array,
    NodeContext,
    Rule,
    SpikeFn,
    State,
    StepResult,
    node_context,
    rule_for,
    step_size,
)


# -- stateless ops ------------------------------------------------------------------------
def _identity(ctx: NodeContext, x: Array) -> Array:
    return x


def _matvec(w: Array, x: Array) -> Array:
    """``y[n, ..., o] = sum_i w[..., o, i] * x[n, ..., i]``."""
    if w.ndim == 2:
        # Contract x's last axis with the weight's last axis: the weight stays [out, in]
        # and no transpose is materialised (over all T*B rows both layouts run equally
        # fast; inside scans the stepwise lowering uses _matvec_t).
        return lax.dot_general(x, w, (((x.ndim - 1,), (1,)), ((), ())))
    return jnp.matmul(w, x[..., None])[..., 0]


@jax.custom_jvp
def _matvec_t(x: Array, w: Array, w_t: Array) -> Array:
    """``x @ w.T`` computed as ``x @ w_t`` (``w_t`` must be ``w.T``, made outside the loop).

    Inside a scan XLA:CPU multiplies ``[B, in] @ [in, out]`` faster than it contracts the
    last axes of ``x`` and ``[out, in]`` (it re-packs the transposed operand every step), and
    the reverse pass wants the opposite: the input gradient ``g @ w`` is fastest from
    ``[out, in]``. The forward value uses ``w_t``; the tangent is written with ``w`` only, so
    its transpose (reverse mode) contracts ``g`` with ``w``'s first axis. ``w_t``'s tangent is
    ignored: it is ``w``'s, already counted.
    """
    return lax.dot_general(x, w_t, (((x.ndim - 1,), (0,)), ((), ())))


def _matvec_t_jvp(primals: tuple[Array, Array, Array], tangents: tuple[Any, Any, Any]
                  ) -> tuple[Array, Array]:
    x, w, w_t = primals
    dx, dw, _ = tangents
    y = _matvec_t(x, w, w_t)
    # Symbolic zeros stay symbolic: no x @ 0 per step when the weight is not differentiated.
    terms = [_matvec(w, dx) if not isinstance(dx, SymbolicZero) else None,
             _matvec(dw, x) if not isinstance(dw, SymbolicZero) else None]
    present = [t for t in terms if t is not None]
    if not present:
        return y, jnp.zeros_like(y)
    return y, present[0] if len(present) == 1 else present[0] + present[1]


_matvec_t.defjvp(_matvec_t_jvp, symbolic_zeros=True)


def _dense(ctx: NodeContext, x: Array) -> Array:
    """``weight @ x`` per sample; with a ``weight_t`` in ``ctx.p`` (stepwise segments add
    ``weight.T`` for 2-D weights, see ``emit``) through :func:`_matvec_t`."""
    if "weight_t" in ctx.p:
        return _matvec_t(x, ctx.p["weight"], ctx.p["weight_t"])
    return _matvec(ctx.p["weight"], x)


def _affine(ctx: NodeContext, x: Array) -> Array:
    return _dense(ctx, x) + ctx.p["bias"]


def _linear(ctx: NodeContext, x: Array) -> Array:
    return _dense(ctx, x)


def _scale(ctx: NodeContext, x: Array) -> Array:
    return x * ctx.p["scale"]


def _conv(ctx: NodeContext, x: Array) -> Array:
    op = ctx.node.op
    assert isinstance(op, Conv1d | Conv2d)
    # The variant (layout, gradient formulation) is chosen in spikejit.lowering.conv.
    y = conv_lowering.conv(x, ctx.p["weight"], op.stride, op.pads(), op.dilation, op.groups,
                           ctx.conv_impl)
    if "bias" in ctx.p:
        y = y + jnp.reshape(ctx.p["bias"], (-1,) + (1,) * op.ndim)
    return y


def _window_sum(op: SumPool2d | AvgPool2d, x: Array) -> Array:
    pads = ((0, 0), (0, 0), *((p, p) for p in op.padding))
    # A concrete (numpy) zero lets JAX pick its differentiable window-sum primitive; a
    # traced init value would give the generic reduce_window, which has no autodiff rule.
    return lax.reduce_window(x, np.zeros((), x.dtype), lax.add, (1, 1, *op.kernel_size),
                             (1, 1, *op.stride), pads)


def _sumpool(ctx: NodeContext, x: Array) -> Array:
    assert isinstance(ctx.node.op, SumPool2d)
    return _window_sum(ctx.node.op, x)


def _avgpool(ctx: NodeContext, x: Array) -> Array:
    op = ctx.node.op
    assert isinstance(op, AvgPool2d)
    kh, kw = op.kernel_size
    # Padding counts towards the average (torch count_include_pad=True).
    return _window_sum(op, x) / jnp.asarray(kh * kw, x.dtype)


def _flatten(ctx: NodeContext, x: Array) -> Array:
    assert ctx.node.type is not None
    return jnp.reshape(x, (x.shape[0], *ctx.node.type.shape))


def _threshold(ctx: NodeContext, x: Array) -> Array:
    return ctx.spike(x, ctx.p["threshold"])


# -- neurons --------------------------------------------------------------------------------
def _leak_consts(ctx: NodeContext, tau: Array) -> Array:
    """``h/tau`` (euler) or ``exp(-h/tau)`` (exp), computed once per call from the params."""
    h = step_size(ctx)
    return jnp.exp(-h / tau) if ctx.method == "exp" else h / tau


def _leak(ctx: NodeContext, k: Any, drive: Array, v: Array) -> Array:
    """One step of ``tau dv/dt = v_leak - v + r*drive``; ``k`` from :func:`_leak_consts`."""
    p = ctx.p
    if ctx.method == "exp":
        v_inf = p["v_leak"] + p["r"] * drive
        return v_inf + (v - v_inf) * k
    return v + k * (p["v_leak"] - v + p["r"] * drive)


def _synapse(ctx: NodeContext, k: Any, x: Array, i: Array) -> Array:
    """One step of ``tau_syn dI/dt = -I + w_in*x``; ``k`` from :func:`_leak_consts`."""
    w_in = ctx.p["w_in"]
    if ctx.method == "exp":
        i_inf = w_in * x
        return i_inf + (i - i_inf) * k
    return i + k * (-i + w_in * x)


def _fire(ctx: NodeContext, v: Array, threshold: Array | None = None) -> tuple[Array, Array]:
    """Spike and reset: ``(z, v after reset)``; ``threshold`` defaults to ``v_threshold``
    (a moving threshold is also what ``subtract`` removes)."""
    threshold = ctx.p["v_threshold"] if threshold is None else threshold
    z = ctx.spike(v, threshold)
    # Reset through the surrogate or not: snnTorch and SpyTorch detach it by default, which
    # keeps the gradient of a spike train a sum of per-step surrogate terms.
    zr = lax.stop_gradient(z) if ctx.detach_reset else z
    if ctx.reset == "value":
        v_new = jnp.where(z > 0, ctx.p["v_reset"], v)
        if not ctx.detach_reset:
            # Forward value unchanged (exactly + 0); backward sees d/dz of z*(v_reset - v).
            v_new = v_new + (zr - lax.stop_gradient(zr)) * (ctx.p["v_reset"] - v)
        return z, v_new
    if ctx.reset == "subtract":
        return z, v - threshold * zr
    return z, v


def _prep_integrate(ctx: NodeContext) -> dict[str, Any]:
    return {"hr": step_size(ctx) * ctx.p["r"]}


def _integrator(ctx: NodeContext, c: dict[str, Any], s: State, x: Array) -> StepResult:
    v = s["v"] + c["hr"] * x
    return v, {"v": v}


def _if(ctx: NodeContext, c: dict[str, Any], s: State, x: Array) -> StepResult:
    v = s["v"] + c["hr"] * x
    z, v = _fire(ctx, v)
    return z, {"v": v}


def _prep_leak(ctx: NodeContext) -> dict[str, Any]:
    return {"k": _leak_consts(ctx, ctx.p["tau"])}


def _li(ctx: NodeContext, c: dict[str, Any], s: State, x: Array) -> StepResult:
    v = _leak(ctx, c["k"], x, s["v"])
    return v, {"v": v}


def _lif(ctx: NodeContext, c: dict[str, Any], s: State, x: Array) -> StepResult:
    z, v = _fire(ctx, _leak(ctx, c["k"], x, s["v"]))
    return z, {"v": v}


def _prep_cuba(ctx: NodeContext) -> dict[str, Any]:
    return {"ks": _leak_consts(ctx, ctx.p["tau_syn"]), "km": _leak_consts(ctx, ctx.p["tau_mem"])}


def _cuba(ctx: NodeContext, c: dict[str, Any], s: State, x: Array) -> tuple[Array, Array]:
    i_new = _synapse(ctx, c["ks"], x, s["i"])
    current = i_new if ctx.cuba_current == "post" else s["i"]
    return i_new, _leak(ctx, c["km"], current, s["v"])


def _cuba_li(ctx: NodeContext, c: dict[str, Any], s: State, x: Array) -> StepResult:
    i, v = _cuba(ctx, c, s, x)
    return v, {"i": i, "v": v}


def _cuba_lif(ctx: NodeContext, c: dict[str, Any], s: State, x: Array) -> StepResult:
    i, v = _cuba(ctx, c, s, x)
    z, v = _fire(ctx, v)
    return z, {"i": i, "v": v}  # the current is never reset


def _prep_alif(ctx: NodeContext) -> dict[str, Any]:
    return {"k": _leak_consts(ctx, ctx.p["tau"]), "ka": _leak_consts(ctx, ctx.p["tau_adapt"])}


def _alif(ctx: NodeContext, c: dict[str, Any], s: State, x: Array) -> StepResult:
    a = s["a"] * c["ka"] if ctx.method == "exp" else s["a"] + c["ka"] * (-s["a"])
    threshold = ctx.p["v_threshold"] + ctx.p["beta"] * a
    z, v = _fire(ctx, _leak(ctx, c["k"], x, s["v"]), threshold)
    # The adaptation jump is part of the reset: cut from autodiff with it.
    return z, {"v": v, "a": a + (lax.stop_gradient(z) if ctx.detach_reset else z)}


# -- delay ------------------------------------------------------------------------------------
def delay_steps(node: Node) -> tuple[int, ...]:
    """The per-element delays of a ``snn.delay`` node (one value, or one per element)."""
    op = node.op
    assert isinstance(op, Delay) and node.type is not None
    return op.steps


def _select(node: Node, pick: Callable[[int], Array]) -> Array:
    """``y[..., e] = pick(k_e)[..., e]`` over the distinct delays ``k`` of ``node``."""
    steps = delay_steps(node)
    distinct = sorted(set(steps))
    if len(distinct) == 1:
        return pick(distinct[0])
    assert node.type is not None
    per_elem = jnp.asarray(steps).reshape(node.type.shape)
    out = pick(distinct[0])
    for k in distinct[1:]:
        out = jnp.where(per_elem == k, pick(k), out)
    return out


def delay_full(node: Node, x: Array, buffer: Array | None) -> tuple[Array, Array | None]:
    """Layerwise delay: ``y[t] = x[t-k]`` over the whole ``[T, B, ...]`` axis.

    Args:
        node: The ``snn.delay`` node.
        x: Its summed input over time.
        buffer: The last ``K = max_steps`` inputs before this call (``None`` when K = 0).

    Returns:
        ``(y, new_buffer)``, the new buffer being the last K inputs (oldest first).
    """
    if buffer is None:
        return x, None
    big_k, steps = buffer.shape[0], x.shape[0]
    joined = jnp.concatenate([buffer, x], axis=0)  # joined[K + t] = x[t]
    y = _select(node, lambda k: lax.slice_in_dim(joined, big_k - k, big_k - k + steps, axis=0))
    return y, joined[joined.shape[0] - big_k:]


def delay_step(node: Node, buffer: Array | None, x: Array | None) -> Array:
    """Stepwise delay output at step t from the buffer (and ``x[t]`` if some delay is 0)."""
    if buffer is None:
        assert x is not None
        return x
    big_k = buffer.shape[0]

    def pick(k: int) -> Array:
        if k == 0:
            assert x is not None
            return x
        return buffer[big_k - k]

    return _select(node, pick)


def delay_push(buffer: Array, x: Array) -> Array:
    """The buffer after step t: drop the oldest input, append ``x[t]``."""
    return jnp.concatenate([buffer[1:], x[None]], axis=0)


def _delay_marker(*args: Any) -> Any:  # pragma: no cover - never called
    raise AssertionError("snn.delay is lowered by delay_full/delay_step")


# ----------------------------------------------------------------------------------------
LOWERINGS.define(Rule("map", _identity), Input)
LOWERINGS.define(Rule("map", _identity), Output)
LOWERINGS.define(Rule("map", _affine), Affine)
LOWERINGS.define(Rule("map", _linear), Linear)
LOWERINGS.define(Rule("map", _scale), Scale)
LOWERINGS.define(Rule("map", _conv), Conv1d)
LOWERINGS.define(Rule("map", _conv), Conv2d)
LOWERINGS.define(Rule("map", _sumpool), SumPool2d)
LOWERINGS.define(Rule("map", _avgpool), AvgPool2d)
LOWERINGS.define(Rule("map", _flatten), Flatten)
LOWERINGS.define(Rule("map", _threshold), Threshold)
LOWERINGS.define(Rule("delay", _delay_marker), Delay)
LOWERINGS.define(Rule("neuron", _integrator, _prep_integrate), Integrator)
LOWERINGS.define(Rule("neuron", _if, _prep_integrate), IF)
LOWERINGS.define(Rule("neuron", _li, _prep_leak), LI)
LOWERINGS.define(Rule("neuron", _lif, _prep_leak), LIF)
LOWERINGS.define(Rule("neuron", _cuba_li, _prep_cuba), CubaLI)
LOWERINGS.define(Rule("neuron", _cuba_lif, _prep_cuba), CubaLIF)
LOWERINGS.define(Rule("neuron", _alif, _prep_alif), ALIF)


__all__ = ["LOWERINGS", "NodeContext", "Rule", "SpikeFn", "State", "delay_full", "delay_push",
           "delay_step", "delay_steps", "node_context", "rule_for"]
