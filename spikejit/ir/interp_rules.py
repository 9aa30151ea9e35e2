"""One step of every NIR op in plain numpy: the reference interpreter's rules.

Rules have the signature of :mod:`spikejit.ir.interp_context` and register into its
:data:`INTERPRETER_RULES` beside their definitions; importing this module also loads the
other built-in families (biophysical neurons, pass-made ops), so the table is complete.
The interpreter owns the delay buffers and the output histories of delayed uses; rules
only read them.

The rules are written to be read next to the op docstrings and ``docs/nir.md`` (the
``nir-euler-v1`` contract), not to be fast: convolutions loop over kernel taps, matrix
products are written as sums.
"""

from __future__ import annotations

import numpy as np

from spikejit.ir import interp_biophysical, interp_fused  # noqa: F401 (they register)
from spikejit.ir.interp_context import (
    INTERPRETER_RULES,
    Array,
    Operand,
    Result,
    Rule,
    State,
    StepContext,
)
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


@INTERPRETER_RULES.register(Input, Output)
def _identity(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None  # the interpreter always feeds io.input/io.output
    return x, {}


# -- synapses ------------------------------------------------------------------------------
def _matvec(w: Array, x: Array) -> Array:
    """``y[b, ..., o] = sum_i w[..., o, i] * x[b, ..., i]`` with numpy broadcasting of the
    leading (non-batch) axes of ``w`` and ``x``."""
    lead = max(w.ndim - 2, x.ndim - 2)
    # Line the per-sample leading axes up from the right, keeping the batch axis first.
    xs = x.reshape(x.shape[0], *(1,) * (lead - (x.ndim - 2)), *x.shape[1:])
    ws = w.reshape(1, *(1,) * (lead - (w.ndim - 2)), *w.shape)
    return (ws * xs[..., np.newaxis, :]).sum(axis=-1)


@INTERPRETER_RULES.register(Affine)
def _affine(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None
    return _matvec(ctx.p["weight"], x) + ctx.p["bias"], {}


@INTERPRETER_RULES.register(Linear)
def _linear(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None
    return _matvec(ctx.p["weight"], x), {}


@INTERPRETER_RULES.register(Scale)
def _scale(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None
    return x * ctx.p["scale"], {}


def _taps(xp: Array, start: tuple[int, ...], stride: tuple[int, ...],
          out: tuple[int, ...]) -> Array:
    """``xp[:, :, start + stride*j]`` for every output position ``j`` (the samples one
    kernel tap sees), from a padded ``[B, C, *N]`` array."""
    index = tuple(slice(s0, s0 + s * (o - 1) + 1, s) for s0, s, o in zip(start, stride, out,
                                                                       strict=True))
    return xp[(slice(None), slice(None), *index)]


def _out_size(size: int, lo: int, hi: int, k: int, s: int, d: int) -> int:
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


@INTERPRETER_RULES.register(Conv1d, Conv2d)
def _conv(ctx: StepContext, x: Operand, state: State) -> Result:
    """PyTorch cross-correlation: ``y[b, o, j] = bias[o] + sum_{c, k} w[o, c, k] *
    xpad[b, g*Cin_g + c, s*j + d*k]`` where ``g`` is the group of output channel ``o``."""
    assert x is not None
    op = ctx.node.op
    assert isinstance(op, Conv1d | Conv2d)
    w, bias = ctx.p["weight"], ctx.p.get("bias")
    pads = op.pads()
    xp = np.pad(x, ((0, 0), (0, 0), *pads))
    c_out, cin_g, kernel = w.shape[0], w.shape[1], w.shape[2:]
    cout_g = c_out // op.groups
    out = tuple(_out_size(n, lo, hi, k, s, d) for n, (lo, hi), k, s, d in
                zip(x.shape[2:], pads, kernel, op.stride, op.dilation, strict=True))
    y = np.zeros((x.shape[0], c_out, *out), dtype=ctx.dtype)
    for tap in np.ndindex(*kernel):
        start = tuple(k * d for k, d in zip(tap, op.dilation, strict=True))
        seen = _taps(xp, start, op.stride, out)  # [B, C_in, *out]
        for g in range(op.groups):
            xs = seen[:, g * cin_g:(g + 1) * cin_g]
            ws = w[(slice(g * cout_g, (g + 1) * cout_g), slice(None), *tap)]  # [Cout_g, Cin_g]
            y[:, g * cout_g:(g + 1) * cout_g] += np.einsum("bc...,oc->bo...", xs, ws)
    if bias is not None:
        y = y + bias.reshape(-1, *(1,) * len(kernel))
    return y, {}


def _window_sum(op: SumPool2d | AvgPool2d, x: Array, dtype: np.dtype) -> Array:
    """The sum over every zero-padded ``kernel_size`` window, ``stride`` apart."""
    pads = tuple((p, p) for p in op.padding)
    xp = np.pad(x, ((0, 0), (0, 0), *pads))
    out = tuple(_out_size(n, p, p, k, s, 1) for n, p, k, s in
                zip(x.shape[2:], op.padding, op.kernel_size, op.stride, strict=True))
    y = np.zeros((*x.shape[:2], *out), dtype=dtype)
    for tap in np.ndindex(*op.kernel_size):
        y += _taps(xp, tap, op.stride, out)
    return y


@INTERPRETER_RULES.register(SumPool2d)
def _sumpool(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None and isinstance(ctx.node.op, SumPool2d)
    return _window_sum(ctx.node.op, x, ctx.dtype), {}


@INTERPRETER_RULES.register(AvgPool2d)
def _avgpool(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None and isinstance(ctx.node.op, AvgPool2d)
    kh, kw = ctx.node.op.kernel_size
    # Padding counts towards the average (torch count_include_pad=True).
    return _window_sum(ctx.node.op, x, ctx.dtype) / ctx.dtype.type(kh * kw), {}


@INTERPRETER_RULES.register(Flatten)
def _flatten(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None and isinstance(ctx.node.op, Flatten)
    shape = x.shape[1:]  # per-sample shape: start_dim/end_dim never count the batch axis
    if not shape:
        return x, {}
    start, end = ctx.node.op.axes(len(shape))
    merged = int(np.prod(shape[start:end + 1]))
    return x.reshape(x.shape[0], *shape[:start], merged, *shape[end + 1:]), {}


@INTERPRETER_RULES.register(Delay)
def _delay(ctx: StepContext, x: Operand, state: State) -> Result:
    """``y[t][e] = x[t - k_e][e]``: ``buffer`` holds the last K inputs, oldest first, so
    ``x[t - k]`` is ``buffer[K - k]`` for ``k >= 1`` and ``x[t]`` itself for ``k = 0``.

    ``x`` is ``None`` when every delay is >= 1 (the step-``t`` input is not needed and may
    not be computed yet); the interpreter appends it to the buffer after the step.
    """
    op = ctx.node.op
    assert isinstance(op, Delay)
    shape = ctx.node.type.shape if ctx.node.type is not None else ()
    size = int(np.prod(shape))
    steps = op.steps * size if len(op.steps) == 1 else op.steps  # one per element, row-major
    if op.max_steps == 0:
        assert x is not None
        return x, {}
    buffer = state["buffer"]  # [K, B, *shape]
    k_max, batch = buffer.shape[0], buffer.shape[1]
    past = buffer.reshape(k_max, batch, size)
    now = None if x is None else x.reshape(batch, size)
    y = np.zeros((batch, size), dtype=ctx.dtype)
    for e, k in enumerate(steps):
        if k == 0:
            assert now is not None
            y[:, e] = now[:, e]
        else:
            y[:, e] = past[k_max - k, :, e]
    return y.reshape(batch, *shape), {}


# -- neurons ---------------------------------------------------------------------------------
def _spike(v: Array, threshold: Array, dtype: np.dtype) -> Array:
    """Strict threshold crossing as 0/1 in the computation dtype."""
    return (v > threshold).astype(dtype)


def _reset(ctx: StepContext, v: Array, z: Array, threshold: Array | None = None) -> Array:
    """The membrane after a spike ``z``; ``subtract`` removes the threshold that was
    crossed (``v_threshold`` unless the neuron's threshold moves)."""
    if ctx.reset == "value":
        return np.where(z > 0, ctx.p["v_reset"], v)
    if ctx.reset == "subtract":
        return v - (ctx.p["v_threshold"] if threshold is None else threshold) * z
    return v  # "none"


def _integrate(ctx: StepContext, x: Array, v: Array) -> Array:
    """``v += h*r*x`` (exact for piecewise-constant input, so the same for both methods)."""
    return v + ctx.h * ctx.p["r"] * x


def _leak(ctx: StepContext, drive: Array, v: Array, tau: Array) -> Array:
    """One step of ``tau dv/dt = v_leak - v + r*drive``.

    euler: ``v + h/tau*(v_leak - v + r*drive)``; exp (``drive`` held over the step):
    ``v_inf + (v - v_inf)*exp(-h/tau)`` with ``v_inf = v_leak + r*drive``.
    """
    p = ctx.p
    if ctx.method == "exp":
        v_inf = p["v_leak"] + p["r"] * drive
        return v_inf + (v - v_inf) * np.exp(-ctx.h / tau)
    return v + ctx.h / tau * (p["v_leak"] - v + p["r"] * drive)


def _synapse(ctx: StepContext, x: Array, i: Array) -> Array:
    """One step of ``tau_syn dI/dt = -I + w_in*x``.

    euler: ``I + h/tau_syn*(-I + w_in*x)``; exp: ``w_in*x + (I - w_in*x)*exp(-h/tau_syn)``.
    """
    p = ctx.p
    if ctx.method == "exp":
        i_inf = p["w_in"] * x
        return i_inf + (i - i_inf) * np.exp(-ctx.h / p["tau_syn"])
    return i + ctx.h / p["tau_syn"] * (-i + p["w_in"] * x)


def _cuba(ctx: StepContext, x: Array, state: State) -> tuple[Array, Array]:
    """The CubaLI update; returns ``(i_new, v_new)``. ``cuba_current`` picks the current
    the membrane sees: the updated one (``post``) or the one from the step before (``pre``)."""
    i_old, v = state["i"], state["v"]
    i_new = _synapse(ctx, x, i_old)
    current = i_new if ctx.cuba_current == "post" else i_old
    return i_new, _leak(ctx, current, v, ctx.p["tau_mem"])


@INTERPRETER_RULES.register(Threshold)
def _threshold(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None
    return _spike(x, ctx.p["threshold"], ctx.dtype), {}


@INTERPRETER_RULES.register(Integrator)
def _integrator(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None
    v = _integrate(ctx, x, state["v"])
    return v, {"v": v}


@INTERPRETER_RULES.register(IF)
def _if(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None
    v = _integrate(ctx, x, state["v"])
    z = _spike(v, ctx.p["v_threshold"], ctx.dtype)
    return z, {"v": _reset(ctx, v, z)}


@INTERPRETER_RULES.register(LI)
def _li(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None
    v = _leak(ctx, x, state["v"], ctx.p["tau"])
    return v, {"v": v}


@INTERPRETER_RULES.register(LIF)
def _lif(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None
    v = _leak(ctx, x, state["v"], ctx.p["tau"])
    z = _spike(v, ctx.p["v_threshold"], ctx.dtype)
    return z, {"v": _reset(ctx, v, z)}


@INTERPRETER_RULES.register(CubaLI)
def _cuba_li(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None
    i, v = _cuba(ctx, x, state)
    return v, {"i": i, "v": v}


@INTERPRETER_RULES.register(CubaLIF)
def _cuba_lif(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None
    i, v = _cuba(ctx, x, state)
    z = _spike(v, ctx.p["v_threshold"], ctx.dtype)
    return z, {"i": i, "v": _reset(ctx, v, z)}  # the current is never reset



@INTERPRETER_RULES.register(ALIF)
def _alif(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None
    p = ctx.p
    if ctx.method == "exp":
        a = state["a"] * np.exp(-ctx.h / p["tau_adapt"])
    else:
        a = state["a"] + ctx.h / p["tau_adapt"] * (-state["a"])
    v = _leak(ctx, x, state["v"], p["tau"])
    threshold = p["v_threshold"] + p["beta"] * a
    z = _spike(v, threshold, ctx.dtype)
    return z, {"v": _reset(ctx, v, z, threshold), "a": a + z}


__all__ = ["INTERPRETER_RULES", "Operand", "Result", "Rule", "State", "StepContext"]
