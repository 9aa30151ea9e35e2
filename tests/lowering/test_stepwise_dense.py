"""Dense synapses inside a stepwise scan: the ``[in, out]`` forward product and the weight
gradient hoisted out of the loop (``spikejit.lowering.rules._matvec_t``,
``spikejit.lowering.hoist.hoisted_scan_jvp``) give the values and derivatives of plain
autodiff."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers_lowering import params_for, recurrent, spike_input

import spikejit
from spikejit.lowering.hoist import hoisted_dense
from spikejit.lowering.rules import _matvec_t


def test_matvec_t_derivatives_are_those_of_the_plain_product() -> None:
    rng = np.random.default_rng(0)
    x, w = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in ((5, 3, 4), (6, 4)))
    dx, dw = (jnp.asarray(rng.normal(size=a.shape), jnp.float32) for a in (x, w))
    g = jnp.asarray(rng.normal(size=(5, 3, 6)), jnp.float32)

    def plain(a: jax.Array, b: jax.Array) -> jax.Array:
        return jnp.einsum("...i,oi->...o", a, b)

    def ours(a: jax.Array, b: jax.Array) -> jax.Array:
        return _matvec_t(a, b, b.T)

    np.testing.assert_allclose(ours(x, w), plain(x, w), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jax.jvp(ours, (x, w), (dx, dw))[1],
                               jax.jvp(plain, (x, w), (dx, dw))[1], rtol=1e-5, atol=1e-5)
    for want, got in zip(jax.vjp(plain, x, w)[1](g), jax.vjp(ours, x, w)[1](g), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # A weight that is not differentiated costs no product (symbolic zero tangent).
    jaxpr = jax.make_jaxpr(lambda a: jax.jvp(lambda u: ours(u, w), (a,), (dx,)))(x)
    assert str(jaxpr).count("dot_general") == 2  # the value and dx's term only


@pytest.mark.parametrize("passes", ["O0", None])
def test_hoisted_dense_gradient_equals_plain_autodiff(passes: str | None) -> None:
    g = recurrent(5, 6)
    params = {k: jnp.asarray(v) for k, v in params_for(g, seed=11).items()}
    params["rec.weight"] = params["rec.weight"] * 3.0
    x = jnp.asarray(spike_input((9, 3, 5), seed=12, p=0.5))
    opts = {} if passes is None else {"passes": passes}
    want_y = spikejit.interpret(g, {k: np.asarray(v) for k, v in params.items()}, np.asarray(x),
                                dtype=np.float32)
    want_y = want_y["y"] if isinstance(want_y, dict) else want_y
    grads, jvps = {}, {}
    tangent = {k: jnp.asarray(np.random.default_rng(13).normal(size=v.shape), v.dtype)
               for k, v in params.items()}
    # check_finite turns the hoisting off: plain autodiff of the same scan.
    for check in (False, True):
        model = spikejit.compile((g, params), check_finite=check, **opts)
        stepwise = [s for s in model.graph.schedule.segments if s.kind == "stepwise"]
        assert "rec" in hoisted_dense(model.graph, stepwise[0].nodes)
        y = model.apply(params, x)
        assert 0 < float(jnp.mean(y)) < 1
        np.testing.assert_array_equal(np.asarray(y), np.asarray(want_y))

        def loss(p: dict, m: Any = model) -> jax.Array:
            return jnp.sum(m.apply(p, x, trace=["lif"])[1]["lif"]["v"])

        grads[check] = jax.jit(jax.grad(loss))(params)
        jvps[check] = jax.jvp(loss, (params,), (tangent,))[1]
    for k, want in grads[True].items():
        scale = float(jnp.max(jnp.abs(want)))
        np.testing.assert_allclose(grads[False][k], want, rtol=1e-4, atol=1e-5 * scale + 1e-7,
                                   err_msg=k)
    assert float(jnp.max(jnp.abs(grads[False]["rec.weight"]))) > 0
    np.testing.assert_allclose(float(jvps[False]), float(jvps[True]), rtol=1e-4)
