"""The reference interpreter against closed forms, hand-written recurrences and its contract."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from helpers_interp import graph, inp, node, out, params_for, ref
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import graphs, random_input, random_params

from spikejit.errors import OptionError, ParamError, VerifyError
from spikejit.ir import Use
from spikejit.ir.interp_rules import INTERPRETER_RULES
from spikejit.ir.interpreter import initial_state, interpret, state_spec
from spikejit.ir.ops import (
    IF,
    LI,
    LIF,
    OPS,
    Affine,
    CubaLI,
    CubaLIF,
    Delay,
    Integrator,
    Linear,
    Scale,
    Threshold,
)


def test_every_op_has_an_interpreter_rule() -> None:
    missing = [m for m, cls in OPS.items() if cls not in INTERPRETER_RULES]
    assert missing == []


def test_public_name() -> None:
    import spikejit

    assert spikejit.interpret is interpret


# -- neurons against closed forms ---------------------------------------------------------------
def _lif_graph(n: int, **attrs: object):
    lif = LIF(tau=ref("lif.tau", (n,)), v_threshold=ref("lif.th"), r=ref("lif.r", (n,)),
              v_leak=ref("lif.vl", (n,)), v_reset=ref("lif.vr", (n,)))
    return graph(inp("x", (n,)), node("lif", lif, "x"), out("y", "lif"), **attrs)


def test_lif_constant_input_follows_the_closed_form_euler_recurrence() -> None:
    h, th = 1e-3, 1.0
    tau = np.array([0.01, 0.02, 0.005])
    r = np.array([1.0, 2.0, 0.5])
    vl = np.array([0.0, 0.2, -0.1])
    vr = np.array([0.0, 0.3, -0.2])
    xs = np.array([2.5, 0.8, 6.0])
    g = _lif_graph(3, dt=h)
    p = params_for(g, lif_tau=tau, lif_th=th, lif_r=r, lif_vl=vl, lif_vr=vr)
    steps = 60
    x = np.broadcast_to(xs, (steps, 1, 3))
    z, tr = interpret(g, p, x, trace=["lif"])
    v = tr["lif"]["v"][:, 0]
    assert tr["lif"]["out"].shape == (steps, 1, 3)
    np.testing.assert_array_equal(tr["lif"]["out"], z)

    a = 1 - h / tau
    v_inf = vl + r * xs
    for e in range(3):
        # Spike times from the closed form: from v0, the first n with
        # a^n v0 + (1 - a^n) v_inf > th is floor(log((v_inf-th)/(v_inf-v0)) / log a) + 1.
        predicted, t, v0 = [], -1, 0.0
        while True:
            ratio = math.log((v_inf[e] - th) / (v_inf[e] - v0)) / math.log(a[e])
            assert abs(ratio - round(ratio)) > 1e-3  # far from a tie: rounding cannot bite
            t += math.floor(ratio) + 1
            if t >= steps:
                break
            predicted.append(t)
            v0 = vr[e]
        assert np.flatnonzero(z[:, 0, e]).tolist() == predicted
        # The membrane between spikes: v_n = a^n v0 + (1 - a^n) v_inf, v_reset after a spike.
        last, v0 = -1, 0.0
        for t in range(steps):
            n = t - last
            expect = a[e] ** n * v0 + (1 - a[e] ** n) * v_inf[e]
            if t in predicted:
                expect, last, v0 = vr[e], t, vr[e]
            assert v[t, e] == pytest.approx(expect, rel=1e-12, abs=1e-12)
    # Hand-checked: element 0 (a = 0.9, v_inf = 2.5) fires every 5 steps.
    assert np.flatnonzero(z[:, 0, 0]).tolist()[:3] == [4, 9, 14]


def test_if_spikes_every_ceil_theta_over_h_r_x_steps() -> None:
    # Dyadic values: every partial sum is exact, and no ratio is an integer.
    xs, r = np.array([0.375, 0.3125, 0.15625]), np.array([1.0, 2.0, 1.0])
    n = IF(v_threshold=ref("n.th"), r=ref("n.r", (3,)))
    g = graph(inp("x", (3,)), node("n", n, "x"), out("y", "n"), dt=0.5)
    z = interpret(g, params_for(g, n_th=1.0, n_r=r), np.broadcast_to(xs, (40, 2, 3)))
    periods = [math.ceil(1.0 / (0.5 * r[e] * xs[e])) for e in range(3)]
    assert periods == [6, 4, 13]
    for e, period in enumerate(periods):
        expect = [(t + 1) % period == 0 for t in range(40)]
        np.testing.assert_array_equal(z[:, 0, e], expect)
        np.testing.assert_array_equal(z[:, 1, e], expect)


def test_li_approaches_v_inf_as_the_closed_form_says() -> None:
    h, tau, r, vl, xv = 1e-3, 0.01, 2.0, 0.5, 1.0
    li = LI(tau=ref("li.tau"), r=ref("li.r"), v_leak=ref("li.vl"))
    g = graph(inp("x", ()), node("li", li, "x"), out("y", "li"), dt=h)
    v = interpret(g, params_for(g, li_tau=tau, li_r=r, li_vl=vl), np.full((400, 1), xv))[:, 0]
    a, v_inf = 1 - h / tau, vl + r * xv
    n = np.arange(1, 401)
    np.testing.assert_allclose(v, (1 - a**n) * v_inf, rtol=1e-12)
    assert abs(v[-1] - v_inf) < 1e-12
    assert np.all(np.diff(v[:100]) > 0) and np.all(v <= v_inf)


def test_integrator_and_defaults_of_omitted_parameters() -> None:
    # Omitted r = 1, v_leak = 0, v_reset = 0 (PARAM_DEFAULTS).
    g = graph(inp("x", (2,)), node("i", Integrator(), "x"),
              node("l", LIF(tau=ref("l.tau"), v_threshold=ref("l.th")), "x"),
              out("a", "i"), out("b", "l"), dt=0.25)
    x = np.array([1.0, -2.0])[None, None].repeat(3, 0)
    y, tr = interpret(g, params_for(g, l_tau=1.0, l_th=0.6), x, trace=True)
    np.testing.assert_array_equal(y["a"][:, 0], [[0.25, -0.5], [0.5, -1.0], [0.75, -1.5]])
    # LIF: v1 = 0.25*1 = 0.25, v2 = 0.25 + 0.25*(0.75) = 0.4375, v3 = 0.578125 (no spike).
    np.testing.assert_array_equal(tr["l"]["v"][:, 0, 0], [0.25, 0.4375, 0.578125])
    np.testing.assert_array_equal(y["b"][:, 0, 0], [0, 0, 0])
    assert set(tr) == {"x", "i", "l", "a", "b"}
    assert set(tr["i"]) == {"out", "v"} and set(tr["x"]) == {"out"}


def test_threshold_is_strict() -> None:
    g = graph(inp("x", (3,)), node("t", Threshold(threshold=ref("t.th")), "x"), out("y", "t"),
              dt=None)
    z = interpret(g, params_for(g, t_th=0.5), np.array([[[0.5, 0.50001, -1.0]]]))
    np.testing.assert_array_equal(z, [[[0.0, 1.0, 0.0]]])


@pytest.mark.parametrize("mode", ["post", "pre"])
def test_cuba_current_post_and_pre_follow_their_formulas(mode: str) -> None:
    h, ts, tm, w_in, r, vl, xv = 1e-3, 5e-3, 1e-2, 1.5, 2.0, 0.1, 1.0
    cuba = CubaLI(tau_syn=ref("c.ts"), tau_mem=ref("c.tm"), r=ref("c.r"), v_leak=ref("c.vl"),
                  w_in=ref("c.w"))
    g = graph(inp("x", ()), node("c", cuba, "x"), out("y", "c"), dt=h, cuba_current=mode)
    p = params_for(g, c_ts=ts, c_tm=tm, c_w=w_in, c_r=r, c_vl=vl)
    steps = 30
    v, tr = interpret(g, p, np.full((steps, 1), xv), trace=["c"])
    i = tr["c"]["i"][:, 0]
    b = 1 - h / ts
    n = np.arange(1, steps + 1)
    np.testing.assert_allclose(i, (1 - b**n) * w_in * xv, rtol=1e-12)  # I after step t
    i_prev = np.concatenate([[0.0], i[:-1]])
    seen = i if mode == "post" else i_prev  # the current the membrane uses at step t
    expect, vv = [], 0.0
    for t in range(steps):
        vv = vv + h / tm * (vl - vv + r * seen[t])
        expect.append(vv)
    np.testing.assert_allclose(v[:, 0], expect, rtol=1e-12)
    np.testing.assert_array_equal(tr["c"]["v"][:, 0], v[:, 0])
    # Step 0: "post" already sees w_in*x through I_new; "pre" sees I = 0, only the leak.
    first = h / tm * (vl + r * h / ts * w_in * xv) if mode == "post" else h / tm * vl
    assert v[0, 0] == pytest.approx(first, rel=1e-12)


def test_cuba_lif_never_resets_the_current() -> None:
    cuba = CubaLIF(tau_syn=ref("c.ts"), tau_mem=ref("c.tm"), v_threshold=ref("c.th"))
    g = graph(inp("x", ()), node("c", cuba, "x"), out("y", "c"), dt=1e-3)
    z, tr = interpret(g, params_for(g, c_ts=2e-3, c_tm=4e-3, c_th=0.5), np.full((40, 1), 3.0),
                      trace=["c"])
    assert z.sum() >= 3
    n = np.arange(1, 41)
    np.testing.assert_allclose(tr["c"]["i"][:, 0], (1 - 0.5**n) * 3.0, rtol=1e-12)
    np.testing.assert_array_equal(tr["c"]["v"][z == 1], 0.0)


@pytest.mark.parametrize(("graph_reset", "node_reset", "effective"), [
    ("value", None, "value"), ("subtract", None, "subtract"), ("value", "subtract", "subtract"),
    ("subtract", "none", "none"), ("subtract", "value", "value"),
])
def test_reset_modes(graph_reset: str, node_reset: str | None, effective: str) -> None:
    n = IF(v_threshold=ref("n.th"), v_reset=ref("n.vr"), reset=node_reset)
    g = graph(inp("x", ()), node("n", n, "x"), out("y", "n"), dt=0.5, reset=graph_reset)
    z, tr = interpret(g, params_for(g, n_th=0.8125, n_vr=0.25), np.full((30, 1), 0.375),
                      trace=["n"])
    v = tr["n"]["v"][:, 0]
    # Exact dyadic arithmetic: each step adds 0.1875.
    expect_z, expect_v, vv = [], [], 0.0
    for _ in range(30):
        vv += 0.1875
        spike = vv > 0.8125
        if spike and effective == "value":
            vv = 0.25
        elif spike and effective == "subtract":
            vv -= 0.8125
        expect_z.append(float(spike))
        expect_v.append(vv)
    np.testing.assert_array_equal(z[:, 0], expect_z)
    np.testing.assert_array_equal(v, expect_v)
    # value: v = 0.8125 exactly at t = 7 does not fire (strict), so the second spike is t = 8.
    first = {"value": [4, 8, 12], "subtract": [4, 8, 13], "none": [4, 5, 6]}[effective]
    assert np.flatnonzero(z[:, 0]).tolist()[:3] == first


def test_method_exp_matches_its_closed_forms() -> None:
    h, tau, vl, r, xv = 1e-3, 4e-3, 0.2, 1.5, 2.0
    g = graph(inp("x", ()), node("l", LI(tau=ref("l.tau"), r=ref("l.r"), v_leak=ref("l.vl")), "x"),
              out("y", "l"), dt=h, method="exp")
    v = interpret(g, params_for(g, l_tau=tau, l_r=r, l_vl=vl), np.full((25, 1), xv))[:, 0]
    n = np.arange(1, 26)
    v_inf = vl + r * xv
    np.testing.assert_allclose(v, v_inf * (1 - np.exp(-n * h / tau)), rtol=1e-12)

    ts, tm, w = 2e-3, 5e-3, 0.7
    for mode in ("post", "pre"):
        cuba = CubaLIF(tau_syn=ref("c.ts"), tau_mem=ref("c.tm"), v_threshold=ref("c.th"),
                       w_in=ref("c.w"), v_leak=ref("c.vl"))
        g = graph(inp("x", ()), node("c", cuba, "x"), out("y", "c"), dt=h, method="exp",
                  cuba_current=mode)
        p = params_for(g, c_ts=ts, c_tm=tm, c_th=0.9, c_w=w, c_vl=vl)
        z, tr = interpret(g, p, np.full((25, 1), xv), trace=["c"])
        i = tr["c"]["i"][:, 0, 0] if tr["c"]["i"].ndim == 3 else tr["c"]["i"][:, 0]
        np.testing.assert_allclose(i, w * xv * (1 - np.exp(-n * h / ts)), rtol=1e-12)
        vv, i_old, zs = 0.0, 0.0, []
        for t in range(25):
            i_c = i[t] if mode == "post" else i_old
            vv = vl + i_c + (vv - vl - i_c) * math.exp(-h / tm)
            zs.append(float(vv > 0.9))
            vv = 0.0 if vv > 0.9 else vv
            i_old = i[t]
            assert tr["c"]["v"][t, 0] == pytest.approx(vv, rel=1e-12, abs=1e-15)
        np.testing.assert_array_equal(z[:, 0], zs)
        assert sum(zs) >= 1


def test_method_exp_leaves_integrate_and_fire_unchanged() -> None:
    g = {m: graph(inp("x", (2,)), node("n", IF(v_threshold=ref("n.th")), "x"), out("y", "n"),
                  dt=0.1, method=m) for m in ("euler", "exp")}
    x = np.random.default_rng(0).uniform(0, 5, (30, 2, 2))
    runs = [interpret(g[m], params_for(g[m], n_th=1.0), x, trace=["n"]) for m in g]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1]["n"]["v"], runs[1][1]["n"]["v"])


# -- delays, fan-in, recurrence ---------------------------------------------------------------
def _shift(x: np.ndarray, k: int) -> np.ndarray:
    return np.concatenate([np.zeros_like(x[:k]), x[: len(x) - k]]) if k else x


def test_delay_shifts_exactly_uniform_per_element_and_on_edges() -> None:
    g = graph(inp("x", (4,)),
              node("d1", Delay(steps=3), "x"),
              node("d2", Delay(steps=(0, 2, 1, 3)), "x"),
              node("d0", Delay(steps=0), "x"),
              out("a", "d1"), out("b", "d2"), out("c", Use("x", 2)), out("e", "d0"), dt=None)
    x = np.random.default_rng(1).normal(size=(9, 2, 4))
    y = interpret(g, {}, x)
    np.testing.assert_array_equal(y["a"], _shift(x, 3))
    for e, k in enumerate((0, 2, 1, 3)):
        np.testing.assert_array_equal(y["b"][..., e], _shift(x, k)[..., e])
    np.testing.assert_array_equal(y["c"], _shift(x, 2))
    np.testing.assert_array_equal(y["e"], x)


def test_delay_per_element_on_a_2d_layer_is_row_major() -> None:
    g = graph(inp("x", (2, 2)), node("d", Delay(steps=(1, 0, 0, 2)), "x"), out("y", "d"),
              dt=None)
    x = np.arange(1.0, 1 + 5 * 4).reshape(5, 1, 2, 2)
    y = interpret(g, {}, x)
    np.testing.assert_array_equal(y[:, 0, 0, 0], _shift(x, 1)[:, 0, 0, 0])
    np.testing.assert_array_equal(y[:, 0, 0, 1], x[:, 0, 0, 1])
    np.testing.assert_array_equal(y[:, 0, 1, 1], _shift(x, 2)[:, 0, 1, 1])


def test_delay_node_closing_a_cycle_reads_its_buffer_before_its_producer_runs() -> None:
    # v[t] = v[t-1] + h*(x[t] + v[t-2]): the delay node is ordered before the integrator.
    g = graph(inp("x", ()), node("i", Integrator(), "x", "d"), node("d", Delay(steps=2), "i"),
              out("y", "i"), dt=0.5)
    x = np.random.default_rng(2).uniform(size=(12, 1))
    y = interpret(g, {}, x)[:, 0]
    v = [0.0, 0.0]  # v[-2], v[-1]
    for t in range(12):
        v.append(v[-1] + 0.5 * (x[t, 0] + v[-2]))
    np.testing.assert_allclose(y, v[2:], rtol=1e-14)


def test_fan_in_is_summed_in_use_order() -> None:
    g = graph(inp("a", (2,)), inp("b", (2,)),
              node("s", Scale(scale=ref("s.k", (2,))), "a"),
              out("y", "s", "b", Use("a", 1), "a"), dt=None)
    rng = np.random.default_rng(3)
    xa, xb = rng.normal(size=(6, 3, 2)), rng.normal(size=(6, 3, 2))
    y = interpret(g, params_for(g, s_k=[2.0, -3.0]), {"a": xa, "b": xb})
    expect = xa * np.array([2.0, -3.0]) + xb + _shift(xa, 1) + xa
    np.testing.assert_array_equal(y, expect)


def test_recurrent_graph_reads_the_back_edge_from_the_previous_step() -> None:
    n = 3
    lif = LIF(tau=ref("lif.tau"), v_threshold=ref("lif.th"))
    g = graph(inp("x", (2,)), node("fc", Affine(weight=ref("fc.w", (n, 2)), bias=ref("fc.b", (n,))),
                                   "x"),
              node("lif", lif, "fc", Use("rec", 1)),
              node("rec", Linear(weight=ref("rec.w", (n, n))), "lif"), out("y", "lif"), dt=1e-3)
    rng = np.random.default_rng(4)
    w_fc, b_fc, w_rec = rng.normal(size=(n, 2)), rng.normal(size=n), rng.normal(size=(n, n))
    p = params_for(g, lif_tau=5e-3, lif_th=0.3, fc_w=w_fc, fc_b=b_fc, rec_w=w_rec)
    x = rng.uniform(0, 3, size=(40, 2, 2))
    z, tr = interpret(g, p, x, trace=["lif", "rec"])
    # lif_in[t] = W_fc x[t] + b + W_rec z[t-1]  (snnTorch RLeaky meaning)
    v, z_prev = np.zeros((2, n)), np.zeros((2, n))
    for t in range(40):
        lif_in = x[t] @ w_fc.T + b_fc + z_prev @ w_rec.T
        v = v + 1e-3 / 5e-3 * (0.0 - v + lif_in)
        zt = (v > 0.3).astype(float)
        v = np.where(zt > 0, 0.0, v)
        np.testing.assert_array_equal(z[t], zt)
        np.testing.assert_allclose(tr["lif"]["v"][t], v, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(tr["rec"]["out"][t], zt @ w_rec.T, rtol=1e-12, atol=1e-12)
        z_prev = zt
    assert 0 < z.mean() < 1


# -- synapses ------------------------------------------------------------------------------------
def test_affine_and_linear_broadcast_leading_axes() -> None:
    rng = np.random.default_rng(5)
    w3, b3 = rng.normal(size=(2, 4, 3)), rng.normal(size=(4,))
    g = graph(inp("x", (5, 3)), inp("u", (2, 3)),
              node("m", Linear(weight=ref("m.w", (4, 3))), "x"),
              node("a", Affine(weight=ref("a.w", (2, 4, 3)), bias=ref("a.b", (4,))), "u"),
              out("p", "m"), out("q", "a"), dt=None)
    w = rng.normal(size=(4, 3))
    x, u = rng.normal(size=(3, 2, 5, 3)), rng.normal(size=(3, 2, 2, 3))
    y = interpret(g, params_for(g, m_w=w, a_w=w3, a_b=b3), {"x": x, "u": u})
    np.testing.assert_allclose(y["p"], np.einsum("oi,tbni->tbno", w, x), rtol=1e-12)
    np.testing.assert_allclose(y["q"], np.einsum("noi,tbni->tbno", w3, u) + b3, rtol=1e-12)


# -- state and traces ----------------------------------------------------------------------------
def _stateful_graph():
    lif = LIF(tau=ref("lif.tau", (4,)), v_threshold=ref("lif.th"), reset="subtract")
    cuba = CubaLIF(tau_syn=ref("c.ts"), tau_mem=ref("c.tm"), v_threshold=ref("c.th"))
    return graph(
        inp("x", (3,)),
        node("fc", Affine(weight=ref("fc.w", (4, 3)), bias=ref("fc.b", (4,))), "x"),
        node("lif", lif, "fc", Use("rec", 1)),
        node("rec", Linear(weight=ref("rec.w", (4, 4))), "lif"),
        node("d", Delay(steps=(0, 1, 2, 3)), "lif"),
        node("c", cuba, "d", Use("fc", 2)),
        node("i", Integrator(r=ref("i.r")), "c", Use("i2", 1)),
        node("i2", Delay(steps=2), "i"),
        node("li", LI(tau=ref("li.tau")), Use("i", 3)),
        out("y1", "c"), out("y2", "li"), dt=1e-3)


def _stateful_params(g):
    rng = np.random.default_rng(6)
    return params_for(g, lif_tau=rng.uniform(2e-3, 8e-3, 4), lif_th=0.5, c_ts=3e-3, c_tm=6e-3,
                      c_th=0.2, fc_w=rng.normal(size=(4, 3)), fc_b=rng.normal(size=4),
                      rec_w=rng.normal(size=(4, 4)), i_r=-0.5, li_tau=4e-3)


def test_state_spec_lists_vars_buffers_and_histories() -> None:
    g = _stateful_graph()
    assert state_spec(g, 2) == {
        "fc": {"history": (2, 2, 4)},
        "lif": {"v": (2, 4)},
        "rec": {"history": (1, 2, 4)},
        "d": {"buffer": (3, 2, 4)},
        "c": {"i": (2, 4), "v": (2, 4)},
        "i": {"v": (2, 4), "history": (3, 2, 4)},
        "i2": {"buffer": (2, 2, 4), "history": (1, 2, 4)},
        "li": {"v": (2, 4)},
    }
    zeros = initial_state(g, 2)
    assert all(not a.any() for e in zeros.values() for a in e.values())


@pytest.mark.parametrize("split", [1, 7, 19])
def test_two_halves_with_carried_state_equal_one_run(split: int) -> None:
    g = _stateful_graph()
    p = _stateful_params(g)
    x = np.random.default_rng(7).uniform(0, 2, size=(20, 2, 3))
    y, s, tr = interpret(g, p, x, return_state=True, trace=True)
    assert y["y1"].sum() > 0 and y["y1"].mean() < 1
    y_a, s_a, tr_a = interpret(g, p, x[:split], return_state=True, trace=True)
    y_b, s_b, tr_b = interpret(g, p, x[split:], state=s_a, return_state=True, trace=True)
    for k in y:
        np.testing.assert_array_equal(np.concatenate([y_a[k], y_b[k]]), y[k])
    assert s_b.keys() == s.keys()
    for nid in s:
        assert s_b[nid].keys() == s[nid].keys()
        for var in s[nid]:
            np.testing.assert_array_equal(s_b[nid][var], s[nid][var])
    for nid in tr:
        for var in tr[nid]:
            np.testing.assert_array_equal(np.concatenate([tr_a[nid][var], tr_b[nid][var]]),
                                          tr[nid][var])


def test_state_passed_in_is_not_modified_and_traces_hold_out_and_state_vars() -> None:
    g = _stateful_graph()
    p = _stateful_params(g)
    x = np.random.default_rng(8).uniform(0, 2, size=(5, 2, 3))
    _, s = interpret(g, p, x, return_state=True)
    before = {k: {v: a.copy() for v, a in e.items()} for k, e in s.items()}
    y, tr = interpret(g, p, x, state=s, trace=["c", "d"])
    for k in s:
        for v in s[k]:
            np.testing.assert_array_equal(s[k][v], before[k][v])
    assert set(tr) == {"c", "d"}
    assert set(tr["c"]) == {"out", "i", "v"} and set(tr["d"]) == {"out"}
    np.testing.assert_array_equal(tr["c"]["out"], y["y1"])
    assert tr["c"]["v"].shape == (5, 2, 4)
    # The buffer holds the last inputs of the delay, i.e. lif's spikes.
    _, s2, tr2 = interpret(g, p, x, return_state=True, trace=["lif"])
    np.testing.assert_array_equal(s2["d"]["buffer"], tr2["lif"]["out"][-3:])


def test_float32_computation_gives_float32_spikes_and_values() -> None:
    g = _stateful_graph()
    p = _stateful_params(g)
    x = np.random.default_rng(9).uniform(0, 2, size=(6, 2, 3))
    y, s = interpret(g, p, x, return_state=True, dtype=np.float32)
    assert y["y1"].dtype == np.float32 and y["y2"].dtype == np.float32
    assert set(np.unique(y["y1"])) <= {0.0, 1.0}
    assert all(a.dtype == np.float32 for e in s.values() for a in e.values())
    y64 = interpret(g, p, x)
    np.testing.assert_allclose(y["y2"], y64["y2"], rtol=1e-4, atol=1e-5)


def test_bool_and_int_inputs_are_accepted_and_zero_steps_give_empty_outputs() -> None:
    g = graph(inp("x", (2,)), node("i", Integrator(), "x"), out("y", "i"), dt=1.0)
    y = interpret(g, {}, np.array([[[True, False]], [[True, True]]]))
    np.testing.assert_array_equal(y[:, 0], [[1, 0], [2, 1]])
    y0, s0 = interpret(g, {}, np.zeros((0, 3, 2), dtype=int), return_state=True)
    assert y0.shape == (0, 3, 2) and s0 == {"i": {"v": pytest.approx(np.zeros((3, 2)))}}


# -- properties on random graphs ----------------------------------------------------------------
def _flat(y):
    return y if isinstance(y, dict) else {"": y}


@settings(max_examples=25, deadline=None)
@given(graphs(max_nodes=6), st.integers(2, 9), st.sampled_from(["euler", "exp"]),
       st.integers(0, 2**16))
def test_random_graphs_continue_exactly_from_carried_state(g, steps, method, seed) -> None:
    g = g.replace(attrs=dataclasses.replace(g.attrs, method=method))
    p, x = random_params(g, seed), random_input(g, steps, 2, seed)
    y, s, tr = interpret(g, p, x, return_state=True, trace=True)
    spec = state_spec(g, 2)
    assert {k: {v: a.shape for v, a in e.items()} for k, e in s.items()} == spec
    for n in g.nodes:
        assert tr[n.id]["out"].shape == (steps, 2, *n.type.shape)
        if n.op.spiking:
            assert set(np.unique(tr[n.id]["out"])) <= {0.0, 1.0}
    for k, v in _flat(y).items():
        np.testing.assert_array_equal(v, tr[k or g.outputs[0]]["out"])
    half = steps // 2
    cut = (lambda a, b: {k: v[a:b] for k, v in x.items()}) if isinstance(x, dict) else (
        lambda a, b: x[a:b])
    y_a, s_a = interpret(g, p, cut(0, half), return_state=True)
    y_b, s_b = interpret(g, p, cut(half, steps), state=s_a, return_state=True)
    for k, v in _flat(y).items():
        np.testing.assert_array_equal(np.concatenate([_flat(y_a)[k], _flat(y_b)[k]]), v)
    for k in s:
        for var in s[k]:
            np.testing.assert_array_equal(s_b[k][var], s[k][var])


@settings(max_examples=25, deadline=None)
@given(graphs(max_nodes=6), st.randoms(use_true_random=False))
def test_results_do_not_depend_on_the_print_order_of_nodes(g, rnd) -> None:
    p, x = random_params(g, 1), random_input(g, 6, 2, 1)
    nodes = list(g.nodes)
    rnd.shuffle(nodes)
    shuffled = g.with_nodes(nodes)
    y1, y2 = _flat(interpret(g, p, x)), _flat(interpret(shuffled, p, x))
    assert y1.keys() == y2.keys()
    for k in y1:
        np.testing.assert_array_equal(y1[k], y2[k])


# -- errors ----------------------------------------------------------------------------------------
def _small():
    return graph(inp("x", (3,)), node("lif", LIF(tau=ref("lif.tau"), v_threshold=ref("lif.th")),
                                      "x"), out("y", "lif"))


def test_wrong_input_shape_message() -> None:
    g = _small()
    with pytest.raises(ParamError) as e:
        interpret(g, params_for(g, lif_tau=0.01, lif_th=1.0), np.zeros((5, 2, 4)))
    assert str(e.value) == ("input %x: expected an array of shape [T, B, 3] (time, batch, then "
                            "the per-step shape), got [5, 2, 4]")
    with pytest.raises(ParamError, match=r"^input %x: expected an array of shape \[T, B, 3\]"):
        interpret(g, params_for(g, lif_tau=0.01, lif_th=1.0), np.zeros((5, 3)))


def test_missing_and_extra_input_keys_and_mismatched_steps() -> None:
    g = graph(inp("a", (2,)), inp("b", (2,)), out("y", "a", "b"), dt=None)
    with pytest.raises(ParamError) as e:
        interpret(g, {}, {"a": np.zeros((4, 1, 2))})
    assert str(e.value) == "input data is missing %b: expected a dict with keys %a, %b"
    with pytest.raises(ParamError) as e:
        interpret(g, {}, {"a": np.zeros((4, 1, 2)), "b": np.zeros((4, 1, 2)), "c": 1})
    assert str(e.value) == "input data has unexpected key(s) 'c': the graph's inputs are %a, %b"
    with pytest.raises(ParamError) as e:
        interpret(g, {}, {"a": np.zeros((4, 1, 2)), "b": np.zeros((5, 1, 2))})
    assert str(e.value) == ("input %b has T = 5 steps and batch B = 1, but %a has T = 4 and "
                            "B = 1; all inputs must agree")
    with pytest.raises(ParamError) as e:
        interpret(g, {}, np.zeros((4, 1, 2)))
    assert str(e.value) == ("graph @main has 2 inputs, so the input data must be a dict with "
                            "keys %a, %b, got ndarray")


def test_non_numeric_input() -> None:
    g = _small()
    with pytest.raises(ParamError) as e:
        interpret(g, params_for(g, lif_tau=0.01, lif_th=1.0), np.full((2, 1, 3), "a"))
    assert str(e.value) == "input %x: expected a numeric array, got dtype <U1"


def test_wrong_state_messages() -> None:
    g = _small()
    p = params_for(g, lif_tau=0.01, lif_th=1.0)
    x = np.zeros((5, 2, 3))
    with pytest.raises(ParamError) as e:
        interpret(g, p, x, state={"lif": {"v": np.zeros((3, 3))}})
    assert str(e.value) == ("state['lif']['v']: expected shape [2, 3] ([B, *shape] with B = 2), "
                            "got [3, 3]")
    with pytest.raises(ParamError) as e:
        interpret(g, p, x, state={})
    assert str(e.value) == "state is missing %lif (expected variables 'v')"
    with pytest.raises(ParamError) as e:
        interpret(g, p, x, state={"lif": {"v": np.zeros((2, 3))}, "y": {}})
    assert str(e.value) == ("state has an entry for 'y', which is not a node with state "
                            "(nodes with state: %lif)")
    with pytest.raises(ParamError) as e:
        interpret(g, p, x, state={"lif": {"i": np.zeros((2, 3))}})
    assert str(e.value) == "state['lif']: expected variables 'v', got [\"'i'\"]"


def test_option_errors() -> None:
    g = _small()
    p = params_for(g, lif_tau=0.01, lif_th=1.0)
    x = np.zeros((5, 2, 3))
    with pytest.raises(OptionError) as e:
        interpret(g, p, x, trace=["nope"])
    assert str(e.value) == "trace names 'nope', which is not a node of graph @main"
    with pytest.raises(OptionError) as e:
        interpret(g, p, x, dtype=np.int32)
    assert str(e.value) == "dtype must be a numpy floating dtype, got int32"


def test_overflow_gives_inf_silently_like_ieee() -> None:
    g = graph(inp("x", (2,)), node("i", Integrator(), "x"), out("y", "i"), dt=1.0)
    # Inputs must be finite in the dtype (1e300 is refused in float32); sums may overflow.
    y = interpret(g, {}, np.array([[[3e38, -3e38]], [[3e38, 1.0]]]), dtype=np.float32)
    np.testing.assert_array_equal(y[:, 0], np.array([[3e38, -3e38], [np.inf, -3e38]],
                                                    np.float32))
    y = interpret(g, {}, np.array([[[1e308, 0.0]], [[1e308, 1.0]]]))
    assert y[1, 0, 0] == np.inf


def test_graph_and_params_are_verified_first() -> None:
    with pytest.raises(OptionError) as e:
        interpret("graph", {}, np.zeros((1, 1, 3)))  # type: ignore[arg-type]
    assert str(e.value) == "graph must be a spikejit.ir.Graph, got str"
    g = graph(*_small().nodes, dt=None)
    with pytest.raises(VerifyError, match=r"^%lif \(snn.lif\): needs the time step"):
        interpret(g, params_for(g, lif_tau=0.01, lif_th=1.0), np.zeros((5, 2, 3)))
    with pytest.raises(ParamError, match=r"^missing parameter\(s\) @lif.th"):
        interpret(_small(), {"lif.tau": np.zeros(())}, np.zeros((5, 2, 3)))
    with pytest.raises(ParamError, match=r"^params must be a mapping"):
        interpret(_small(), None, np.zeros((5, 2, 3)))  # type: ignore[arg-type]
