"""The spike primitive and the surrogate registry."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers_lowering import chain, ref

import spikejit
from spikejit.errors import OptionError
from spikejit.ir import ops as O
from spikejit.lowering.spike import spike, spike_vjp
from spikejit.lowering.surrogates import (
    SURROGATES,
    BoundSurrogate,
    describe,
    register_surrogate,
    resolve_surrogate,
)

BUILTINS = ("arctan", "fast_sigmoid", "gaussian", "rectangular", "sigmoid", "slayer",
            "straight_through", "superspike", "triangle")


def test_builtins_are_registered_with_formulas() -> None:
    assert set(BUILTINS) <= set(SURROGATES)
    table = describe()
    for name in BUILTINS:
        assert SURROGATES[name].formula
        assert f"`{name}`" in table
    assert spikejit.SURROGATES is SURROGATES
    assert spikejit.register_surrogate is register_surrogate


@pytest.mark.parametrize("name", ["gaussian", "rectangular", "sigmoid", "triangle", "arctan"])
def test_normalised_surrogates_integrate_to_one(name: str) -> None:
    x = np.linspace(-40, 40, 800_001, dtype=np.float64)
    with jax.enable_x64(True):
        values = np.asarray(resolve_surrogate(name)(jnp.asarray(x)))
    integral = np.trapezoid(values, x)
    # arctan has 1/x^2 tails: 1 - 2*(2/pi^2/alpha)/40 of its mass lies inside [-40, 40].
    assert integral == pytest.approx(1.0, abs=0.011 if name == "arctan" else 1e-4)


def test_spike_forward_is_the_strict_heaviside() -> None:
    v = jnp.array([[-1.0, 0.5, 0.5000001, 2.0], [0.5, 0.4999999, 0.0, -0.0]])
    th = jnp.array([0.0, 0.5, 0.5, 2.0])
    want = np.array([[0, 0, 1, 0], [1, 0, 0, 0]], np.float32)
    s = resolve_surrogate("triangle")
    for fn in (spike, spike_vjp):
        z = fn(v, th, s)
        assert z.dtype == jnp.float32
        np.testing.assert_array_equal(z, want)


@pytest.mark.parametrize("fn", [spike, spike_vjp], ids=["custom_jvp", "custom_vjp"])
def test_spike_gradient_is_the_surrogate_with_broadcast_threshold(fn) -> None:
    s = resolve_surrogate("gaussian", {"sigma": 0.7})
    v = jnp.array([[0.1, -0.3, 1.2], [0.6, 0.0, -2.0]])
    th = jnp.array([0.2, 0.0, 1.0])
    w = jnp.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]])
    gv, gth = jax.grad(lambda a, b: jnp.sum(fn(a, b, s) * w), argnums=(0, 1))(v, th)
    sg = np.exp(-((v - th) ** 2) / (2 * 0.49)) / (0.7 * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(gv, w * sg, rtol=1e-6)
    np.testing.assert_allclose(gth, -(w * sg).sum(axis=0), rtol=1e-6)
    scalar = jax.grad(lambda b: jnp.sum(fn(v, b, s)))(jnp.float32(0.2))
    np.testing.assert_allclose(scalar, -np.sum(np.exp(-((v - 0.2) ** 2) / 0.98)
                                               / (0.7 * np.sqrt(2 * np.pi))), rtol=1e-5)


def test_forward_mode_works_for_the_jvp_spike_only() -> None:
    s = resolve_surrogate("fast_sigmoid", {"slope": 2.0})
    v, th = jnp.array([0.3, 1.5]), jnp.array([0.5, 0.5])
    z, dz = jax.jvp(lambda a: spike(a, th, s), (v,), (jnp.array([1.0, 2.0]),))
    np.testing.assert_array_equal(z, [0.0, 1.0])
    np.testing.assert_allclose(dz, [1 / (1 + 2 * 0.2) ** 2, 2 / (1 + 2 * 1.0) ** 2], rtol=1e-6)
    np.testing.assert_allclose(jax.jacfwd(lambda a: spike(a, th, s))(v),
                               jax.jacrev(lambda a: spike(a, th, s))(v), rtol=1e-6)
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda a: spike_vjp(a, th, s), (v,), (v,))


def test_register_resolve_and_use_a_custom_surrogate() -> None:
    try:
        @register_surrogate("test_box", defaults={"half": 0.25}, formula="(|x| < half)/(2*half)")
        def box(x: jax.Array, half: float) -> jax.Array:
            return jnp.where(jnp.abs(x) < half, 1.0 / (2 * half), 0.0)

        assert SURROGATES["test_box"].grad is box
        with pytest.raises(OptionError, match="'test_box' is already registered"):
            register_surrogate("test_box", box)
        register_surrogate("test_box", box, defaults={"half": 0.5}, overwrite=True)
        bound = resolve_surrogate("test_box", {"half": 1.0})
        assert bound == resolve_surrogate("test_box", {"half": 1.0})
        assert hash(bound) == hash(resolve_surrogate("test_box", {"half": 1.0}))
        assert bound != resolve_surrogate("test_box")
        assert str(bound) == "test_box(half=1.0)"

        g = chain((1,), ("n", O.LIF(tau=ref("n.tau", ()), v_threshold=ref("n.th", ()))), dt=1.0)
        params = {"n.tau": np.float32(1.0), "n.th": np.float32(1.0)}
        x = np.full((1, 1, 1), 1.3, np.float32)  # v = 1.3, x - th = 0.3
        for surrogate, want in (("test_box", 1.0), (lambda u: 7.0 * jnp.ones_like(u), 7.0)):
            model = spikejit.compile((g, params), surrogate=surrogate)
            gx = jax.grad(lambda xx, m=model: m.apply(m.params, xx).sum())(x)
            assert float(gx[0, 0, 0]) == pytest.approx(want)
    finally:
        SURROGATES.pop("test_box", None)


@pytest.mark.parametrize(("args", "message"), [
    (("nope",), "unknown surrogate 'nope'; registered: arctan, fast_sigmoid"),
    (("arctan", {"slope": 1.0}), "surrogate 'arctan' has no parameter 'slope'; its parameters: "
                                 "alpha"),
    (("arctan", {"alpha": float("nan")}), "parameter 'alpha' must be a finite number, got nan"),
    ((3,), "surrogate must be a registered name, a Surrogate or a function, got 3"),
])
def test_bad_surrogate_options(args: tuple, message: str) -> None:
    with pytest.raises(OptionError) as info:
        resolve_surrogate(*args)
    assert message in str(info.value)


def test_bound_surrogate_passes_through_and_rejects_extra_params() -> None:
    bound = resolve_surrogate("slayer", {"beta": 2.0})
    assert isinstance(bound, BoundSurrogate)
    assert resolve_surrogate(bound) is bound
    with pytest.raises(OptionError, match="cannot be combined"):
        resolve_surrogate(bound, {"beta": 3.0})
    with pytest.raises(OptionError, match="non-empty string"):
        register_surrogate("", lambda x: x)
