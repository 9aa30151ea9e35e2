"""NumPy reference rules of the biophysical neurons (``bio.hh``, ``bio.adex``,
``bio.izhikevich``), registered in ``INTERPRETER_RULES``.

Written term by term from the op docstrings in :mod:`spikejit.ir.ops.biophysical`, and
independently of the JAX lowering (the oracle shares no code with what it checks). Every
rule converts the stored state (deviation from the reference state) to absolute values,
does one explicit Euler step with ``s = 1000*dt`` ms, tests for a spike, resets, and
stores the deviation again.
"""

from __future__ import annotations

import numpy as np

from spikejit.ir.interp_context import INTERPRETER_RULES, Operand, Result, State, StepContext
from spikejit.ir.ops.biophysical import AdEx, HodgkinHuxley, Izhikevich

Array = np.ndarray


def resolved_params(ctx: StepContext) -> dict[str, Array]:
    """Every parameter field of the node: the given array, or the op's default for an
    omitted one (in the computation dtype)."""
    op = ctx.node.op
    defaults = op.defaults()  # type: ignore[attr-defined]
    out = {}
    for name in op.param_fields():
        if getattr(op, name) is not None:
            out[name] = np.asarray(ctx.p[name], dtype=ctx.dtype)
        else:
            out[name] = np.asarray(defaults[name], dtype=ctx.dtype)
    return out


def step_ms(ctx: StepContext) -> Array:
    """The step in ms: the graph's ``dt`` is in seconds."""
    return ctx.h * ctx.dtype.type(1000.0)


def efun(z: Array) -> Array:
    """``z / (exp(z) - 1)``, with its limit ``1 - z/2`` near ``z = 0``."""
    small = np.abs(z) < 1e-4
    safe = np.where(small, np.ones_like(z), z)
    return np.where(small, 1.0 - z / 2.0, safe / np.expm1(safe))


def hh_rates(v: Array) -> tuple[Array, Array, Array, Array, Array, Array]:
    """``(alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n)`` in 1/ms at ``v`` mV."""
    # 0.1*(v+40)/(1-exp(-(v+40)/10)) = efun(-(v+40)/10), and likewise for alpha_n.
    alpha_m = efun(-(v + 40.0) / 10.0)
    beta_m = 4.0 * np.exp(-(v + 65.0) / 18.0)
    alpha_h = 0.07 * np.exp(-(v + 65.0) / 20.0)
    beta_h = 1.0 / (1.0 + np.exp(-(v + 35.0) / 10.0))
    alpha_n = 0.1 * efun(-(v + 55.0) / 10.0)
    beta_n = 0.125 * np.exp(-(v + 65.0) / 80.0)
    return alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n


def hh_rest_gates(v_rest: Array) -> tuple[Array, Array, Array]:
    """Steady states ``alpha/(alpha + beta)`` of ``m, h, n`` at ``v_rest``."""
    am, bm, ah, bh, an, bn = hh_rates(v_rest)
    return am / (am + bm), ah / (ah + bh), an / (an + bn)


def _crossing(v_old: Array, v_new: Array, threshold: Array, dtype: np.dtype) -> Array:
    """1 where ``v`` crosses ``threshold`` upwards during the step."""
    return ((v_new > threshold) & ~(v_old > threshold)).astype(dtype)


@INTERPRETER_RULES.register(HodgkinHuxley)
def _hh(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None
    p = resolved_params(ctx)
    s = step_ms(ctx)
    m0, h0, n0 = hh_rest_gates(p["v_rest"])
    v = state["v"] + p["v_rest"]
    m, h, n = state["m"] + m0, state["h"] + h0, state["n"] + n0
    am, bm, ah, bh, an, bn = hh_rates(v)
    i_ion = (p["g_na"] * m**3 * h * (v - p["e_na"]) + p["g_k"] * n**4 * (v - p["e_k"])
             + p["g_l"] * (v - p["e_l"]))
    v_new = v + s / p["c_m"] * (x - i_ion)
    m_new = m + s * (am * (1.0 - m) - bm * m)
    h_new = h + s * (ah * (1.0 - h) - bh * h)
    n_new = n + s * (an * (1.0 - n) - bn * n)
    z = _crossing(v, v_new, p["v_threshold"], ctx.dtype)
    y = z if ctx.node.op.output == "spikes" else v_new  # type: ignore[attr-defined]
    return y.astype(ctx.dtype), {"v": v_new - p["v_rest"], "m": m_new - m0, "h": h_new - h0,
                                 "n": n_new - n0}


@INTERPRETER_RULES.register(AdEx)
def _adex(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None
    p = resolved_params(ctx)
    s = step_ms(ctx)
    v = state["v"] + p["e_l"]
    w = state["w"]
    spike_current = p["g_l"] * p["delta_t"] * np.exp((np.minimum(v, p["v_peak"]) - p["v_t"])
                                                     / p["delta_t"])
    v_new = v + s / p["c_m"] * (-p["g_l"] * (v - p["e_l"]) + spike_current - w + x)
    w_new = w + s / p["tau_w"] * (p["a"] * (v - p["e_l"]) - w)
    z = (v_new > p["v_peak"]).astype(ctx.dtype)
    v_new = np.where(z > 0, p["v_reset"], v_new)
    w_new = w_new + p["b"] * z
    y = z if ctx.node.op.output == "spikes" else v_new  # type: ignore[attr-defined]
    return y.astype(ctx.dtype), {"v": v_new - p["e_l"], "w": w_new}


@INTERPRETER_RULES.register(Izhikevich)
def _izhikevich(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None
    p = resolved_params(ctx)
    s = step_ms(ctx)
    u_ref = p["b"] * p["v_init"]
    v = state["v"] + p["v_init"]
    u = state["u"] + u_ref
    v_new = v + s * (0.04 * v * v + 5.0 * v + 140.0 - u + x)
    u_new = u + s * p["a"] * (p["b"] * v - u)
    z = (v_new > p["v_peak"]).astype(ctx.dtype)
    v_new = np.where(z > 0, p["c"], v_new)
    u_new = u_new + p["d"] * z
    y = z if ctx.node.op.output == "spikes" else v_new  # type: ignore[attr-defined]
    return y.astype(ctx.dtype), {"v": v_new - p["v_init"], "u": u_new - u_ref}
