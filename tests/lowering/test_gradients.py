"""Gradients: analytic surrogate values, finite differences on smooth graphs, every parameter
reached, forward mode, vmap/jit, and both spike implementations agreeing."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers_lowering import chain, params_for, recurrent, ref, spike_input
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads
from strategies import graphs, random_input, random_params

import spikejit
from spikejit.ir import Graph, GraphAttrs, Node, TensorType, Use, infer_types
from spikejit.ir import ops as O

# The surrogate formulas, written independently in numpy (x = v - threshold).
FORMULAS = {
    "fast_sigmoid": lambda x: 1 / (1 + 25 * abs(x)) ** 2,
    "superspike": lambda x: 1 / (1 + 25 * abs(x)) ** 2,
    "arctan": lambda x: 1 / (1 + (math.pi * x) ** 2),
    "sigmoid": lambda x: 25 * math.exp(-25 * x) / (1 + math.exp(-25 * x)) ** 2,
    "triangle": lambda x: max(0.0, 1 - abs(x)),
    "rectangular": lambda x: float(abs(x) < 0.5),
    "gaussian": lambda x: math.exp(-2 * x * x) / (0.5 * math.sqrt(2 * math.pi)),
    "slayer": lambda x: math.exp(-5 * abs(x)),
    "straight_through": lambda x: 1.0,
}


def _single_lif() -> Graph:
    return chain((1,), ("n", O.LIF(tau=ref("n.tau", (1,)), v_threshold=ref("n.th", (1,)),
                                   r=ref("n.r", (1,)))), dt=1e-3)


@pytest.mark.parametrize("name", sorted(FORMULAS))
@pytest.mark.parametrize("drive", [0.3, 0.55, 1.4])
def test_single_neuron_gradient_is_the_surrogate_formula(name: str, drive: float) -> None:
    g = _single_lif()
    p = {"n.tau": np.array([4e-3], np.float32), "n.th": np.array([0.2], np.float32),
         "n.r": np.array([1.5], np.float32)}
    model = spikejit.compile((g, p), surrogate=name)
    x = np.full((1, 1, 1), drive, np.float32)
    h, tau, r, th = 1e-3, 4e-3, 1.5, 0.2
    v = h / tau * r * drive
    s = FORMULAS[name](v - th)
    gx, gp = jax.grad(lambda xx, pp: model.apply(pp, xx).sum(), argnums=(0, 1))(x, model.params)
    np.testing.assert_allclose(float(gx[0, 0, 0]), s * h / tau * r, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(float(gp["n.th"][0]), -s, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(float(gp["n.r"][0]), s * h / tau * drive, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(float(gp["n.tau"][0]), -s * h / tau**2 * r * drive, rtol=2e-5,
                               atol=1e-6)
    # Forward mode gives the same number.
    _, tangent = jax.jvp(lambda xx: model.apply(model.params, xx).sum(), (x,), (np.ones_like(x),))
    np.testing.assert_allclose(float(tangent), s * h / tau * r, rtol=2e-5, atol=1e-7)


def test_surrogate_params_are_compile_options() -> None:
    g = _single_lif()
    p = {"n.tau": np.array([1e-3], np.float32), "n.th": np.array([1.0], np.float32),
         "n.r": np.array([1.0], np.float32)}
    x = np.full((1, 1, 1), 0.9, np.float32)
    for slope in (2.0, 10.0):
        model = spikejit.compile((g, p), surrogate="fast_sigmoid",
                                 surrogate_params={"slope": slope})
        gx = jax.grad(lambda xx, m=model: m.apply(m.params, xx).sum())(x)
        np.testing.assert_allclose(float(gx[0, 0, 0]), 1 / (1 + slope * 0.1) ** 2, rtol=1e-5)


@pytest.mark.parametrize(("x1", "spiked"), [(0.3, False), (1.7, True)])
def test_two_step_if_gradient_with_detached_value_reset(x1: float, spiked: bool) -> None:
    """z2 = H(v2 - th), v2 = reset(v1) + h*r*x2: with a detached reset the path from x1 is
    blocked by a spike (d v2/d x1 = 0) and otherwise is h*r; v_reset gets s' where z1 = 1."""
    g = chain((1,), ("n", O.IF(v_threshold=ref("n.th", ()), r=ref("n.r", ()),
                               v_reset=ref("n.vr", ()))), dt=0.5)
    p = {"n.th": np.float32(1.0), "n.r": np.float32(2.0), "n.vr": np.float32(0.1)}
    model = spikejit.compile((g, p), surrogate="arctan")
    x = np.array([[[x1]], [[0.4]]], np.float32)
    v1 = 0.5 * 2.0 * x1
    v2 = (0.1 if spiked else v1) + 0.5 * 2.0 * 0.4
    s2 = FORMULAS["arctan"](v2 - 1.0)
    gx, gp = jax.grad(lambda xx, pp: model.apply(pp, xx)[1].sum(), argnums=(0, 1))(x,
                                                                                 model.params)
    assert bool(model(x)[0, 0, 0]) is spiked
    np.testing.assert_allclose(float(gx[0, 0, 0]), 0.0 if spiked else s2 * 1.0, atol=1e-6)
    np.testing.assert_allclose(float(gx[1, 0, 0]), s2 * 1.0, rtol=1e-5)
    np.testing.assert_allclose(float(gp["n.vr"]), s2 if spiked else 0.0, atol=1e-6)


def _smooth_graph(dtype: str) -> Graph:
    def r(name: str, shape: tuple[int, ...]) -> O.ParamRef:  # type: ignore[name-defined]
        return ref(name, shape, dtype)

    nodes = (
        Node("x", O.Input(type=TensorType((3,), dtype))),
        Node("fc", O.Affine(weight=r("fc.weight", (4, 3)), bias=r("fc.bias", (4,))),
             (Use("x"),)),
        Node("li", O.LI(tau=r("li.tau", (4,)), r=r("li.r", ()), v_leak=r("li.v_leak", (4,))),
             (Use("fc"), Use("rec", 1))),
        Node("rec", O.Linear(weight=r("rec.weight", (4, 4))), (Use("li"),)),
        Node("cuba", O.CubaLI(tau_syn=r("cuba.tau_syn", ()), tau_mem=r("cuba.tau_mem", (4,)),
                              w_in=r("cuba.w_in", (4,)), r=r("cuba.r", ())), (Use("li"),)),
        Node("s", O.Scale(scale=r("s.scale", (4,))), (Use("cuba"),)),
        Node("i", O.Integrator(r=r("i.r", ())), (Use("s"), Use("fc", 2))),  # fan-in, delayed
        Node("y", O.Output(), (Use("i"),)),
    )
    return infer_types(Graph(nodes, attrs=GraphAttrs(dt=1e-3)))


@pytest.mark.parametrize("method", ["euler", "exp"])
def test_smooth_graph_gradients_match_finite_differences(method: str) -> None:
    """A graph of affine/linear/LI/CubaLI/I only is differentiable: forward and reverse mode
    must agree with central differences (in float64)."""
    with jax.enable_x64(True):
        g = _smooth_graph("f64")
        g = g.replace(attrs=GraphAttrs(dt=1e-3, method=method))
        params = {k: v.astype(np.float64) for k, v in params_for(g, seed=3).items()}
        model = spikejit.compile((g, params), schedule="auto")
        x = np.random.default_rng(0).normal(size=(6, 2, 3))
        w = np.random.default_rng(1).normal(size=(6, 2, 4))

        def loss(p: dict) -> jax.Array:
            return jnp.sum(model.apply(p, x) * w)

        check_grads(loss, (model.params,), order=1, modes=("fwd", "rev"), eps=1e-6,
                    atol=1e-6, rtol=1e-6)


def _everything_graph() -> Graph:
    """Every parameter kind: weights, biases, taus, thresholds, r, w_in, v_leak, v_reset."""
    def full(nid: str, *names: str, shape: tuple[int, ...] = (4,)) -> dict[str, O.ParamRef]:  # type: ignore[name-defined]
        return {n: ref(f"{nid}.{n}", shape) for n in names}

    nodes = (
        Node("x", O.Input(type=TensorType((3,)))),
        Node("fc", O.Affine(weight=ref("fc.weight", (4, 3)), bias=ref("fc.bias", (4,))),
             (Use("x"),)),
        Node("lif", O.LIF(**full("lif", "tau", "v_threshold", "r", "v_leak", "v_reset")),
             (Use("fc"),)),
        Node("s", O.Scale(scale=ref("s.scale", (4,))), (Use("lif"),)),
        Node("cuba", O.CubaLIF(**full("cuba", "tau_syn", "tau_mem", "v_threshold", "r",
                                      "v_leak", "v_reset", "w_in")), (Use("s"), Use("fc"))),
        Node("li", O.LI(**full("li", "tau", "r", "v_leak")), (Use("cuba"), Use("lif"))),
        Node("th", O.Threshold(threshold=ref("th.threshold", (4,))), (Use("fc"),)),
        Node("if", O.IF(**full("if", "v_threshold", "r", "v_reset")), (Use("th"), Use("fc"))),
        Node("i", O.Integrator(r=ref("i.r", (4,))), (Use("if"), Use("li"))),
        Node("y", O.Output(), (Use("i"),)),
        Node("c_in", O.Input(type=TensorType((1, 5, 5)))),
        Node("conv", O.Conv2d(weight=ref("conv.weight", (2, 1, 3, 3)), bias=ref("conv.bias", (2,)),
                              padding=1), (Use("c_in"),)),
        Node("cl", O.LIF(tau=ref("cl.tau", ()), v_threshold=ref("cl.v_threshold", ())),
             (Use("conv"),)),
        Node("pool", O.AvgPool2d(kernel_size=2), (Use("cl"),)),
        Node("y2", O.Output(), (Use("pool"),)),
    )
    return infer_types(Graph(nodes, attrs=GraphAttrs(dt=1e-3)))


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["auto", "stepwise"])
def test_gradient_reaches_every_parameter(schedule: str) -> None:
    g = _everything_graph()
    params = params_for(g, seed=0)
    model = spikejit.compile((g, params), schedule=schedule, surrogate="sigmoid",
                             surrogate_params={"slope": 4.0})
    rng = np.random.default_rng(2)
    x = {"x": rng.normal(0.5, 1.0, (30, 4, 3)).astype(np.float32),
         "c_in": spike_input((30, 4, 1, 5, 5), seed=3, p=0.5) * 2}

    def loss(p: dict) -> jax.Array:
        out = model.apply(p, x)
        return jnp.sum(out["y"] ** 2) + jnp.sum(out["y2"] * 3.0)

    grads = jax.grad(loss)(model.params)
    assert sorted(grads) == sorted(params)
    for name, gr in grads.items():
        arr = np.asarray(gr)
        assert np.all(np.isfinite(arr)), name
        assert np.any(arr != 0), f"no gradient reaches @{name}"


@pytest.mark.slow
def test_both_spike_implementations_give_identical_gradients() -> None:
    g = recurrent(3, 5)
    params = params_for(g, seed=1)
    x = spike_input((20, 3, 3), seed=2, p=0.6)
    grads = []
    for ad in ("jvp", "vjp"):
        model = spikejit.compile((g, params), spike_ad=ad, detach_reset=False)
        grads.append(jax.grad(lambda p, m=model: jnp.sum(m.apply(p, x) * 1.5))(model.params))
    for name in params:
        np.testing.assert_allclose(grads[0][name], grads[1][name], rtol=1e-5, atol=1e-6)
    model = spikejit.compile((g, params), spike_ad="vjp")
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda p: model.apply(p, x), (model.params,), (model.params,))


@pytest.mark.slow
def test_forward_mode_through_a_recurrent_model() -> None:
    g = recurrent(3, 4)
    params = params_for(g, seed=5)
    model = spikejit.compile((g, params))
    x = spike_input((8, 2, 3), seed=6, p=0.6)
    tangent = jax.tree.map(lambda a: jnp.asarray(np.random.default_rng(7).normal(size=a.shape),
                                                 a.dtype), model.params)

    def loss(p: dict) -> jax.Array:
        return jnp.sum(model.apply(p, x, trace=["lif"])[1]["lif"]["v"])

    value, jvp_out = jax.jvp(loss, (model.params,), (tangent,))
    grads = jax.grad(loss)(model.params)
    via_grad = sum(jnp.vdot(grads[k], tangent[k]) for k in grads)
    np.testing.assert_allclose(float(jvp_out), float(via_grad), rtol=1e-4)
    assert float(value) == pytest.approx(float(loss(model.params)))
    jf = jax.jacfwd(lambda xx: model.apply(model.params, xx, trace=["lif"])[1]["lif"]["v"].sum())(x)
    jr = jax.jacrev(lambda xx: model.apply(model.params, xx, trace=["lif"])[1]["lif"]["v"].sum())(x)
    np.testing.assert_allclose(jf, jr, rtol=1e-4, atol=1e-6)


def test_layerwise_and_stepwise_gradients_agree() -> None:
    g = chain((3,), ("fc", O.Affine(weight=ref("fc.weight", (4, 3)), bias=ref("fc.bias", (4,)))),
              ("lif", O.LIF(tau=ref("lif.tau", (4,)), v_threshold=ref("lif.th", (4,)))),
              ("d", O.Delay(steps=(0, 1, 2, 1))),
              ("li", O.LI(tau=ref("li.tau", ()))))
    params = params_for(g, seed=8)
    x = np.random.default_rng(9).normal(size=(12, 2, 3)).astype(np.float32)
    grads = {}
    for mode in ("layerwise", "stepwise"):
        model = spikejit.compile((g, params), schedule=mode)
        grads[mode] = jax.grad(lambda p, m=model: jnp.sum(m.apply(p, x) ** 2))(model.params)
    for name in params:
        np.testing.assert_allclose(grads["layerwise"][name], grads["stepwise"][name], rtol=1e-4,
                                   atol=1e-6, err_msg=name)


def test_vmap_over_params_and_jit_around_apply() -> None:
    g = recurrent(3, 4)
    model = spikejit.compile((g, params_for(g, seed=0)))
    x = spike_input((10, 2, 3), seed=1, p=0.6)
    stacked = {k: jnp.stack([jnp.asarray(params_for(g, seed=s)[k]) for s in range(3)])
               for k in model.params}
    batched = jax.vmap(lambda p: model.apply(p, x))(stacked)
    for s in range(3):
        one = model.apply(params_for(g, seed=s), x)
        np.testing.assert_array_equal(batched[s], one)
    xs = np.stack([x, 1 - x])
    by_x = jax.vmap(lambda xx: model.apply(model.params, xx))(xs)
    np.testing.assert_array_equal(by_x[1], model(1 - x))
    jitted = jax.jit(lambda p, xx: jnp.sum(model.apply(p, xx)))
    assert float(jitted(model.params, x)) == float(jnp.sum(model(x)))


@pytest.mark.slow
@settings(max_examples=8)
@given(graphs(max_nodes=5), st.integers(0, 2**16))
def test_gradients_are_finite_on_random_graphs(g: Graph, seed: int) -> None:
    params = random_params(g, seed)
    x = random_input(g, 5, 2, seed)
    model = spikejit.compile((g, params))

    def loss(p: dict) -> jax.Array:
        out = model.apply(p, x)
        leaves = jax.tree.leaves(out)
        return sum(jnp.sum(leaf) for leaf in leaves)

    for name, gr in jax.grad(loss)(model.params).items():
        assert np.all(np.isfinite(np.asarray(gr))), name
