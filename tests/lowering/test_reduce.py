"""apply(..., reduce=...) and narrow (bool/uint8) inputs, with and without remat.

A time-reduced output equals reducing the full output (values and gradients, state and
traces unchanged); under remat it is accumulated chunk by chunk, so neither the float copy
of a narrow input nor the ``[T, B, N]`` output is allocated (XLA memory analysis).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import spikejit
from spikejit.errors import OptionError
from spikejit.ir import Graph, GraphAttrs, Node, ParamRef, TensorType, Use, infer_types
from spikejit.ir import ops as O


def net(n_in: int = 3, hidden: int = 5, n_out: int = 2) -> tuple[Graph, dict[str, np.ndarray]]:
    """Input -> Affine -> LIF (recurrent) -> {LI readout, the LIF's spikes}: two outputs."""
    t = lambda *s: TensorType(tuple(s))  # noqa: E731
    graph = infer_types(Graph((
        Node("x", O.Input(type=t(n_in))),
        Node("fc", O.Affine(weight=ParamRef("fc.weight", t(hidden, n_in)),
                            bias=ParamRef("fc.bias", t(hidden))), (Use("x"),)),
        Node("lif", O.LIF(tau=ParamRef("lif.tau", t(hidden)),
                          v_threshold=ParamRef("lif.v_threshold", t(hidden))),
             (Use("fc"), Use("rec", 1))),
        Node("rec", O.Linear(weight=ParamRef("rec.weight", t(hidden, hidden))), (Use("lif"),)),
        Node("ro", O.Linear(weight=ParamRef("ro.weight", t(n_out, hidden))), (Use("lif"),)),
        Node("li", O.LI(tau=ParamRef("li.tau", t(n_out))), (Use("ro"),)),
        Node("y", O.Output(), (Use("li"),)),
        Node("z", O.Output(), (Use("lif"),)),
    ), attrs=GraphAttrs(dt=1e-3)))
    rng = np.random.default_rng(0)
    f32 = np.float32
    params = {
        "fc.weight": (rng.normal(size=(hidden, n_in)) * 2 / np.sqrt(n_in)).astype(f32),
        "fc.bias": np.full(hidden, 0.1, f32),
        "lif.tau": np.full(hidden, 5e-3, f32),
        "lif.v_threshold": np.full(hidden, 0.5, f32),
        "rec.weight": (rng.normal(size=(hidden, hidden)) * 0.3).astype(f32),
        "ro.weight": rng.normal(size=(n_out, hidden)).astype(f32),
        "li.tau": np.full(n_out, 4e-3, f32),
    }
    return graph, params


def spikes(steps: int, batch: int, n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((steps, batch, n)) < 0.3  # bool


def full_reduce(y: jax.Array, how: str) -> jax.Array:
    return {"sum": lambda: jnp.sum(y, 0), "mean": lambda: jnp.mean(y, 0),
            "last": lambda: y[-1]}[how]()


def close(a: object, b: object, rtol: float = 1e-5) -> None:
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=1e-5)


@pytest.mark.parametrize(("how", "remat"), [("sum", None), ("mean", None), ("last", None),
                                             ("sum", 7), ("mean", 7), ("last", 7),
                                             ("mean", 50), ("last", 50)])
def test_reduce_equals_reducing_the_full_output(how: str, remat: int | None) -> None:
    """C = 7 does not divide T = 23 (a shorter tail call); C = 50 > T (only the tail)."""
    graph, params = net()
    x = spikes(23, 2, 3).astype(np.float32)
    plain = spikejit.compile((graph, params))
    model = spikejit.compile((graph, params), remat=remat)
    y, s, tr = plain(x, return_state=True, trace=["lif"])
    yr, sr, trr = model(x, return_state=True, trace=["lif"], reduce=how)
    assert set(yr) == {"y", "z"} and yr["y"].shape == (2, 2) and yr["z"].shape == (2, 5)
    close(yr, {k: full_reduce(v, how) for k, v in y.items()})
    close((sr, trr), (s, tr))  # state and traces are not reduced

    def loss(m: spikejit.CompiledModel, reduced: bool):
        def f(p):
            out = m.apply(p, x, reduce=how) if reduced else {
                k: full_reduce(v, how) for k, v in m.apply(p, x).items()}
            return jnp.sum(out["y"] ** 2) + jnp.sum(out["z"] * jnp.arange(5.0))
        return f

    g0 = jax.grad(loss(plain, False))(plain.params)
    g1 = jax.grad(loss(model, True))(model.params)
    for name in g0:
        np.testing.assert_allclose(np.asarray(g1[name]), np.asarray(g0[name]), rtol=1e-4,
                                   atol=1e-5, err_msg=name)


def test_mean_loss_is_unchanged_and_narrow_inputs_are_exact() -> None:
    graph, params = net()
    xb = spikes(30, 3, 3)
    model = spikejit.compile((graph, params), remat=6)
    ref = model(xb.astype(np.float32))
    for narrow in (xb, xb.astype(np.uint8), jnp.asarray(xb, jnp.bfloat16)):
        close(model(narrow), ref, rtol=0)
    loss_full = jax.value_and_grad(lambda p: jnp.mean(model.apply(p, xb)["z"]))
    loss_red = jax.value_and_grad(lambda p: jnp.mean(model.apply(p, xb, reduce="mean")["z"]))
    close(loss_red(model.params), loss_full(model.params), rtol=1e-5)


def test_bad_reduce_and_edge_cases() -> None:
    graph, params = net()
    model = spikejit.compile((graph, params), remat=4)
    x = spikes(5, 1, 3)
    for bad in ("max", "none", True, 0, ("sum",)):
        with pytest.raises(OptionError, match=r"reduce must be None .* or one of 'sum', 'mean'"):
            model(x, reduce=bad)  # type: ignore[arg-type]
    assert model(x, reduce="sum")["z"].shape == (1, 5)
    again = model.with_params(model.params)  # shares the jitted function: no retrace
    count = model.trace_count
    again(x, reduce="sum")
    assert model.trace_count == count


def _train_temp_bytes(steps: int, reduce: str | None, remat: int | None) -> int:
    n, batch = 64, 4
    graph, params = net(n_in=n, hidden=n, n_out=n)
    model = spikejit.compile((graph, params), remat=remat)
    x = jax.ShapeDtypeStruct((steps, batch, n), jnp.uint8)

    def loss(p, xx):
        return jnp.mean(model.apply(p, xx, reduce=reduce)["z"])

    compiled = jax.jit(jax.grad(loss)).lower(model.params, x).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
        pytest.skip("this backend has no memory analysis")
    return int(analysis.temp_size_in_bytes)


def test_chunked_reduce_allocates_no_time_sized_float_buffer() -> None:
    steps, batch, n, remat = 200, 4, 64, 20
    f32_tbn = steps * batch * n * 4  # one float32 [T, B, N] buffer at T
    growth = _train_temp_bytes(4 * steps, "mean", remat) - _train_temp_bytes(steps, "mean", remat)
    # Only the per-chunk state residuals grow with T (T/C states of [B, N]), not the float
    # copy of the uint8 input nor any [T, B, N] output: 4T adds 3 such buffers each.
    assert growth < 0.5 * f32_tbn, growth
    # Without reduce the chunked program stores the [T, B, N] output: the check can tell.
    full = _train_temp_bytes(4 * steps, None, remat) - _train_temp_bytes(steps, None, remat)
    assert full > 2 * f32_tbn, full
