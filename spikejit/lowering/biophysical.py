"""Lowering rules of the biophysical neurons and of user-defined neurons.

``bio.hh``, ``bio.adex`` and ``bio.izhikevich`` are ``neuron`` rules (elementwise one-step
updates, so they run layerwise as a scan of their update or inside a stepwise scan like the
NIR neurons). Their formulas are written from the op docstrings, term by term in the order
of the reference interpreter, so that float32 results match it to rounding; the state holds
deviations from each op's reference state (see :mod:`spikejit.ir.ops.biophysical`).

User-defined neurons (:mod:`spikejit.ir.user_neurons`) share one rule that calls the
user's functions with ``xp = jax.numpy``; it is registered for their base class, so it
covers every ``user.*`` op while that op is defined. Importing this module registers the
rules in :data:`~spikejit.lowering.context.LOWERINGS`.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import lax

from spikejit.ir.ops.biophysical import AdEx, HodgkinHuxley, Izhikevich
from spikejit.ir.user_neurons import (
    UserNeuron,
    call_user,
    checked_update,
)
from spikejit.lowering.context import (
    LOWERINGS,
    NodeContext,
    Rule,
    State,
    StepResult,
    step_size,
)

Array = Any
Consts = dict[str, Any]


# -- shared helpers ----------------------------------------------------------------------
def _params(ctx: NodeContext) -> dict[str, Any]:
    """Every parameter field: the traced array, or the op's default for an omitted one."""
    op = ctx.node.op
    defaults = op.defaults()  # type: ignore[attr-defined]
    return {name: ctx.p[name] if getattr(op, name) is not None else defaults[name]
            for name in op.param_fields()}


def _step_ms(ctx: NodeContext) -> float:
    return step_size(ctx) * 1000.0  # step_size raises the shared "dt is not set" error


def _spike(ctx: NodeContext, v: Array, threshold: Any) -> Array:
    """``v > threshold`` as 0/1 with the surrogate derivative."""
    return ctx.spike(v, jnp.asarray(threshold, v.dtype))


def _reset(ctx: NodeContext, z: Array, value: Any, new: Array) -> Array:
    """``where(z, value, new)``; unless ``detach_reset``, the backward pass also sees
    ``d/dz`` of ``z*(value - new)`` (forward unchanged: that term is exactly 0)."""
    out = jnp.where(z > 0, value, new)
    if not ctx.detach_reset:
        out = out + (z - lax.stop_gradient(z)) * (value - new)
    return out


def _reset_gain(ctx: NodeContext, z: Array) -> Array:
    """``z`` for additive resets (``w += b*z``), detached if asked."""
    return lax.stop_gradient(z) if ctx.detach_reset else z


def _out(ctx: NodeContext, z: Array, v: Array) -> Array:
    return z if ctx.node.op.output == "spikes" else v  # type: ignore[attr-defined]


# -- Hodgkin-Huxley ------------------------------------------------------------------------
def _efun(z: Array) -> Array:
    """``z / (exp(z) - 1)``, with its limit ``1 - z/2`` near 0 (NaN-free gradients too)."""
    small = jnp.abs(z) < 1e-4
    safe = jnp.where(small, jnp.ones_like(z), z)
    return jnp.where(small, 1.0 - z / 2.0, safe / jnp.expm1(safe))


def _hh_rates(v: Array) -> tuple[Array, ...]:
    alpha_m = _efun(-(v + 40.0) / 10.0)
    beta_m = 4.0 * jnp.exp(-(v + 65.0) / 18.0)
    alpha_h = 0.07 * jnp.exp(-(v + 65.0) / 20.0)
    beta_h = 1.0 / (1.0 + jnp.exp(-(v + 35.0) / 10.0))
    alpha_n = 0.1 * _efun(-(v + 55.0) / 10.0)
    beta_n = 0.125 * jnp.exp(-(v + 65.0) / 80.0)
    return alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n


def _prep_hh(ctx: NodeContext) -> Consts:
    p = _params(ctx)
    am, bm, ah, bh, an, bn = _hh_rates(jnp.asarray(p["v_rest"]))
    return {"p": p, "s": _step_ms(ctx), "m0": am / (am + bm), "h0": ah / (ah + bh),
            "n0": an / (an + bn)}


def _hh(ctx: NodeContext, c: Consts, st: State, x: Array) -> StepResult:
    p, s = c["p"], c["s"]
    dtype = x.dtype
    m0, h0, n0 = (jnp.asarray(c[k], dtype) for k in ("m0", "h0", "n0"))
    v = st["v"] + p["v_rest"]
    m, h, n = st["m"] + m0, st["h"] + h0, st["n"] + n0
    am, bm, ah, bh, an, bn = _hh_rates(v)
    i_ion = (p["g_na"] * m**3 * h * (v - p["e_na"]) + p["g_k"] * n**4 * (v - p["e_k"])
             + p["g_l"] * (v - p["e_l"]))
    v_new = v + s / p["c_m"] * (x - i_ion)
    m_new = m + s * (am * (1.0 - m) - bm * m)
    h_new = h + s * (ah * (1.0 - h) - bh * h)
    n_new = n + s * (an * (1.0 - n) - bn * n)
    # Upward crossing: above now and not above before (both factors carry the surrogate).
    z = _spike(ctx, v_new, p["v_threshold"]) * (1.0 - _spike(ctx, v, p["v_threshold"]))
    return _out(ctx, z, v_new), {"v": v_new - p["v_rest"], "m": m_new - m0, "h": h_new - h0,
                                 "n": n_new - n0}


# -- AdEx ------------------------------------------------------------------------------------
def _prep_plain(ctx: NodeContext) -> Consts:
    return {"p": _params(ctx), "s": _step_ms(ctx)}


def _adex(ctx: NodeContext, c: Consts, st: State, x: Array) -> StepResult:
    p, s = c["p"], c["s"]
    v = st["v"] + p["e_l"]
    w = st["w"]
    spike_current = p["g_l"] * p["delta_t"] * jnp.exp((jnp.minimum(v, p["v_peak"]) - p["v_t"])
                                                      / p["delta_t"])
    v_new = v + s / p["c_m"] * (-p["g_l"] * (v - p["e_l"]) + spike_current - w + x)
    w_new = w + s / p["tau_w"] * (p["a"] * (v - p["e_l"]) - w)
    z = _spike(ctx, v_new, p["v_peak"])
    v_new = _reset(ctx, z, jnp.asarray(p["v_reset"], v_new.dtype), v_new)
    w_new = w_new + p["b"] * _reset_gain(ctx, z)
    return _out(ctx, z, v_new), {"v": v_new - p["e_l"], "w": w_new}


# -- Izhikevich ------------------------------------------------------------------------------
def _izhikevich(ctx: NodeContext, c: Consts, st: State, x: Array) -> StepResult:
    p, s = c["p"], c["s"]
    u_ref = p["b"] * p["v_init"]
    v = st["v"] + p["v_init"]
    u = st["u"] + u_ref
    v_new = v + s * (0.04 * v * v + 5.0 * v + 140.0 - u + x)
    u_new = u + s * p["a"] * (p["b"] * v - u)
    z = _spike(ctx, v_new, p["v_peak"])
    v_new = _reset(ctx, z, jnp.asarray(p["c"], v_new.dtype), v_new)
    u_new = u_new + p["d"] * _reset_gain(ctx, z)
    return _out(ctx, z, v_new), {"v": v_new - p["v_init"], "u": u_new - u_ref}


# -- user-defined neurons --------------------------------------------------------------------
def _prep_user(ctx: NodeContext) -> Consts:
    op = ctx.node.op
    assert isinstance(op, UserNeuron)
    return {"p": _params(ctx), "h": step_size(ctx) / op.spec.time_unit}


def _user(ctx: NodeContext, c: Consts, st: State, x: Array) -> StepResult:
    """The step of :mod:`spikejit.ir.user_neurons` with ``xp = jax.numpy``."""
    op = ctx.node.op
    assert isinstance(op, UserNeuron)
    spec, p, shape, dtype = op.spec, c["p"], x.shape, x.dtype

    def cast(value: Any, shp: tuple[int, ...]) -> Array:
        return jnp.broadcast_to(jnp.asarray(value, dtype), shp)

    nid = ctx.node.id
    ref = {k: cast(v, shape) for k, v in
           call_user(nid, op, "reference", spec.reference, jnp, p).items()}
    s = {k: st[k] + ref[k] for k in op.state_vars}
    h = jnp.asarray(c["h"], dtype)
    new = checked_update(nid, op, call_user(nid, op, "update", spec.update, jnp, s, p, x, h),
                         shape, cast)
    zero = jnp.zeros((), dtype)
    z = _spike(ctx, cast(call_user(nid, op, "spike", spec.spike, jnp, new, p), shape), zero)
    if spec.spike_on == "crossing":
        before = cast(call_user(nid, op, "spike", spec.spike, jnp, s, p), shape)
        z = z * (1.0 - _spike(ctx, before, zero))
    if spec.reset is not None:
        after = checked_update(nid, op, call_user(nid, op, "reset", spec.reset, jnp, new, p),
                               shape, cast, what="reset", partial=True)
        new = {**new, **{k: _reset(ctx, z, v, new[k]) for k, v in after.items()}}
    y = z if op.output == "spikes" else new[op.output]  # type: ignore[attr-defined]
    return y, {k: new[k] - ref[k] for k in op.state_vars}


LOWERINGS.define(Rule("neuron", _hh, _prep_hh), HodgkinHuxley)
LOWERINGS.define(Rule("neuron", _adex, _prep_plain), AdEx)
LOWERINGS.define(Rule("neuron", _izhikevich, _prep_plain), Izhikevich)
LOWERINGS.define_family(UserNeuron, Rule("neuron", _user, _prep_user))
