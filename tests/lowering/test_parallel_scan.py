"""The parallel-in-time path (``parallel_scan="on"``) against the sequential one and the
reference interpreter: outputs, carried state, traces and gradients, for every linear op,
both methods and both ``cuba_current`` orders, with carried-in state and delayed reads.

Tolerances are float32 reassociation only: the associative scan adds the same terms in
another order.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers_lowering import check_model
from hypothesis import event, given, settings
from hypothesis import strategies as st
from strategies import graphs, random_input, random_params

import spikejit
from spikejit.errors import LoweringError, OptionError, PassError, SpikejitError
from spikejit.ir import Graph, Schedule, Segment, parse, print_graph
from spikejit.ir.schedule import linear_states
from spikejit.lowering.emit import LoweringOptions, Program
from spikejit.lowering.parallel_scan import linear_recurrence
from spikejit.lowering.surrogates import DEFAULT_SURROGATE, resolve_surrogate
from spikejit.passes.schedule import schedule as schedule_pass

RTOL, ATOL = 2e-5, 2e-6
LINEAR = ("snn.i", "snn.li", "snn.cuba_li", "snn.cuba_lif")


def _neuron_fields(op: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    u = lambda lo, hi: rng.uniform(lo, hi, n).astype("f4")  # noqa: E731
    if op == "snn.i":
        return {"r": u(50, 200)}
    fields = {"r": u(0.5, 2.0), "v_leak": u(-0.1, 0.1)}
    if op == "snn.li":
        return {**fields, "tau": u(1.5e-3, 8e-3)}
    fields |= {"tau_syn": u(1.5e-3, 8e-3), "tau_mem": u(2e-3, 9e-3), "w_in": u(0.5, 2.0)}
    if op == "snn.cuba_lif":
        fields |= {"v_threshold": u(0.1, 0.5), "v_reset": u(-0.1, 0.1)}
    return fields


def _graph(op: str, *, method: str = "euler", cuba_current: str = "post", n: int = 6,
           seed: int = 0) -> tuple[Graph, dict[str, np.ndarray]]:
    """``x -> affine -> neuron -> y``, and ``neuron[t-2] -> scale -> z`` (a history)."""
    rng = np.random.default_rng(seed)
    b = spikejit.GraphBuilder("p", dt=1e-3, method=method, cuba_current=cuba_current)
    b.input("x", shape=(4,))
    b.add("fc", "nn.affine", inputs=["x"], weight=rng.normal(0, 0.8, (n, 4)).astype("f4"),
          bias=rng.uniform(-0.3, 0.3, n).astype("f4"))
    b.add("nrn", op, inputs=["fc"], **_neuron_fields(op, n, rng))
    b.add("s", "nn.scale", inputs=[("nrn", 2)], scale=rng.uniform(-1, 1, n).astype("f4"))
    b.output("y", "nrn")
    return b.output("z", "s").build()


def _state(model: spikejit.CompiledModel, batch: int, seed: int) -> dict:
    """A random carried-in state of the model's format."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: rng.normal(0, 0.5, a.shape).astype("f4"),
                        model.init_state(batch))


def _close(got: Any, want: Any, what: str, rtol: float = RTOL, atol: float = ATOL) -> None:
    got_leaves, got_tree = jax.tree.flatten(got)
    want_leaves, want_tree = jax.tree.flatten(want)
    assert got_tree == want_tree, what
    for g, w in zip(got_leaves, want_leaves, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=atol,
                                   err_msg=what)


def _program(graph: Graph) -> Program:
    """The lowering of ``graph`` with the schedule it carries (``compile`` reschedules)."""
    return Program(graph, LoweringOptions(resolve_surrogate(DEFAULT_SURROGATE, None)))


def _pair(source: Any, **options: Any) -> tuple[spikejit.CompiledModel, spikejit.CompiledModel]:
    seq = spikejit.compile(source, parallel_scan="off", **options)
    par = spikejit.compile(source, parallel_scan="on", **options)
    return seq, par


# -- the schedule -----------------------------------------------------------------------
def test_linear_states_of_every_neuron() -> None:
    from spikejit.ir import ops as O
    from spikejit.ir.ops.fused import FUSED_OPS

    assert linear_states(O.LI.__new__(O.LI)) == ("v",)
    assert linear_states(O.CubaLIF.__new__(O.CubaLIF)) == ("i",)
    assert linear_states(O.LIF.__new__(O.LIF)) == ()
    assert linear_states(O.Affine.__new__(O.Affine)) == ()
    for (_, neuron), fused in FUSED_OPS.items():
        assert linear_states(fused.__new__(fused)) == linear_states(neuron.__new__(neuron))


def test_schedule_marks_linear_neurons_and_roundtrips() -> None:
    g, p = _graph("snn.cuba_li")
    on = spikejit.compile((g, p), parallel_scan="on")
    (seg,) = on.schedule.segments
    assert seg.parallel == ("nrn",)
    text = print_graph(on.graph)
    assert "layerwise %x, %fc, %nrn, %s, %y, %z parallel(%nrn)" in text
    assert parse(text) == on.graph
    for mode in ("off", "auto"):  # auto: no backend measured faster yet (docs)
        model = spikejit.compile((g, p), parallel_scan=mode)
        assert all(not s.parallel for s in model.schedule.segments)
        assert "parallel" not in print_graph(model.graph)


def test_spiking_and_recurrent_nodes_are_never_marked() -> None:
    rng = np.random.default_rng(0)
    b = spikejit.GraphBuilder("r", dt=1e-3)
    b.input("x", shape=(3,))
    b.add("li", "snn.li", inputs=["x", ("rec", 1)], tau=np.full(3, 5e-3, "f4"))
    b.add("rec", "nn.linear", inputs=["li"], weight=rng.normal(0, 0.3, (3, 3)).astype("f4"))
    b.add("lif", "snn.lif", inputs=["li"], tau=np.full(3, 5e-3, "f4"),
          v_threshold=np.full(3, 0.2, "f4"))
    b.add("out", "snn.li", inputs=["lif"], tau=np.full(3, 5e-3, "f4"))
    g, p = b.output("y", "out").build()
    model = spikejit.compile((g, p), parallel_scan="on")
    marked = [n for s in model.schedule.segments for n in s.parallel]
    assert marked == ["out"]  # li is on a cycle (stepwise); lif resets
    stepwise = spikejit.compile((g, p), schedule="stepwise", parallel_scan="on")
    assert all(not s.parallel for s in stepwise.schedule.segments)


def test_options_are_checked() -> None:
    g, p = _graph("snn.li")
    with pytest.raises(OptionError, match="parallel_scan must be one of auto, off, on"):
        spikejit.compile((g, p), parallel_scan="yes")
    with pytest.raises(PassError, match="option parallel must be one of"):
        schedule_pass(spikejit.compile((g, p)).graph, parallel="always")
    with pytest.raises(SpikejitError, match="only a layerwise"):
        Segment("stepwise", ("a",), "dfs", ("a",))
    with pytest.raises(SpikejitError, match="not one of the segment's nodes"):
        Segment("layerwise", ("a",), "dfs", ("b",))


def test_a_nonlinear_node_named_parallel_is_refused() -> None:
    b = spikejit.GraphBuilder("l", dt=1e-3)
    b.input("x", shape=(2,))
    b.add("lif", "snn.lif", inputs=["x"], tau=np.full(2, 5e-3, "f4"),
          v_threshold=np.full(2, 0.2, "f4"))
    g, p = b.output("y", "lif").build()
    text = print_graph(spikejit.compile((g, p)).graph).replace(
        "layerwise %x, %lif, %y", "layerwise %x, %lif, %y parallel(%lif)")
    with pytest.raises(LoweringError, match=r"%lif .*no reset-free linear state"):
        _program(parse(text))


def test_parallel_path_has_no_sequential_loop() -> None:
    g, p = _graph("snn.cuba_li")
    _, par = _pair((g, p))
    x = np.ones((5, 2, 4), "f4")
    jaxpr = str(jax.make_jaxpr(lambda q: par.apply(q, x))(par.params))
    assert "scan" not in jaxpr and "while" not in jaxpr
    g, p = _graph("snn.cuba_lif")  # the membrane (reset) stays a scan; the current not
    _, par = _pair((g, p))
    jaxpr = str(jax.make_jaxpr(lambda q: par.apply(q, x))(par.params))
    assert jaxpr.count("scan[") == 1


def test_linear_recurrence_is_the_loop() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0.5, 1.0, (37, 1, 3)).astype("f4")
    b = rng.normal(size=(37, 2, 3)).astype("f4")
    s0 = rng.normal(size=(2, 3)).astype("f4")
    s, want = s0, []
    for t in range(37):
        s = a[t] * s + b[t]
        want.append(s)
    got = jax.jit(linear_recurrence)(jnp.asarray(a), jnp.asarray(b), jnp.asarray(s0))
    np.testing.assert_allclose(np.asarray(got), np.stack(want), rtol=1e-5, atol=1e-5)


# -- equality -----------------------------------------------------------------------------
CASES = [(op, method, cc) for op in LINEAR for method in ("euler", "exp")
         for cc in (("post", "pre") if op.startswith("snn.cuba") else ("post",))]


@pytest.mark.parametrize(("op", "method", "cuba_current"), CASES)
def test_equal_to_sequential_and_interpreter(op: str, method: str, cuba_current: str) -> None:
    g, p = _graph(op, method=method, cuba_current=cuba_current)
    seq, par = _pair((g, p))
    x = np.random.default_rng(1).normal(0, 1.5, (40, 3, 4)).astype("f4")
    s0 = _state(seq, 3, 2)  # carried-in state, histories included
    y_s, st_s, tr_s = seq(x, s0, return_state=True, trace=True)
    y_p, st_p, tr_p = par(x, s0, return_state=True, trace=True)
    _close(y_p, y_s, "output")
    _close(st_p, st_s, "state")
    _close(tr_p, tr_s, "traces")
    want = spikejit.interpret(g, p, x, state=s0, dtype=np.float32, return_state=True,
                              trace=True)
    _close((y_p, st_p, tr_p), want, "interpreter", rtol=1e-5, atol=1e-5)
    if method == "exp" or cuba_current == "pre":
        return
    # Continuing from the returned state equals one call.
    y1, st1 = par(x[:17], s0, return_state=True)
    y2, st2 = par(x[17:], st1, return_state=True)
    _close(jax.tree.map(lambda a, b: np.concatenate([a, b]), y1, y2), y_p, "split run")
    _close(st2, st_p, "split state")


@pytest.mark.parametrize(("op", "method", "cuba_current"),
                         [("snn.li", "euler", "post"), ("snn.i", "exp", "post"),
                          ("snn.cuba_li", "exp", "pre"), ("snn.cuba_lif", "euler", "post")])
def test_gradients_equal(op: str, method: str, cuba_current: str) -> None:
    g, p = _graph(op, method=method, cuba_current=cuba_current, seed=3)
    seq, par = _pair((g, p))
    x = jnp.asarray(np.random.default_rng(4).normal(0, 1.5, (30, 2, 4)).astype("f4"))
    s0 = _state(seq, 2, 5)

    def loss(model: spikejit.CompiledModel, params: dict, x: jax.Array, s: dict) -> jax.Array:
        out, state = model.apply(params, x, s, return_state=True)
        value = sum(jnp.sum(jnp.tanh(v) * (1 + jnp.arange(v.shape[0])[:, None, None] / 10))
                    for v in out.values())
        return value + sum(jnp.sum(v ** 2) for v in jax.tree.leaves(state))

    want = jax.grad(loss, argnums=(1, 2, 3))(seq, seq.params, x, s0)
    got = jax.grad(loss, argnums=(1, 2, 3))(par, par.params, x, s0)
    _close(got, want, "gradients w.r.t. params, inputs and state", rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("neuron", ["snn.cuba_li", "snn.cuba_lif"])
def test_fused_layers(neuron: str) -> None:
    g, p = _graph(neuron, method="exp", cuba_current="pre")
    seq, par = _pair((g, p), passes="O2")
    assert par.graph.node("nrn").op.mnemonic.startswith("layer.affine_")
    assert par.schedule.segments[0].parallel == ("nrn",)
    x = np.random.default_rng(2).normal(0, 1.5, (25, 2, 4)).astype("f4")
    s0 = _state(seq, 2, 7)
    _close(par(x, s0, return_state=True, trace=True), seq(x, s0, return_state=True, trace=True),
           "fused layer")
    grads = [jax.grad(lambda q, m=m: jnp.sum(m.apply(q, x)["y"] ** 2))(m.params)
             for m in (seq, par)]
    _close(grads[1], grads[0], "fused gradients", rtol=1e-4, atol=1e-5)


def test_zero_steps_remat_check_finite_and_vmap() -> None:
    g, p = _graph("snn.cuba_li")
    seq, par = _pair((g, p))
    x = np.random.default_rng(0).normal(size=(12, 2, 4)).astype("f4")
    s0 = _state(seq, 2, 1)
    y0, st0 = par(x[:0], s0, return_state=True)
    assert y0["y"].shape == (0, 2, 6)
    _close(st0, s0, "T = 0 keeps the state")
    want = seq(x, s0, return_state=True)
    remat = spikejit.compile((g, p), parallel_scan="on", remat=5)
    _close(remat(x, s0, return_state=True), want, "remat")
    checked = spikejit.compile((g, p), parallel_scan="on", check_finite=True)
    _close(checked(x, s0, return_state=True), want, "check_finite")
    bad = x.copy()
    bad[3, 1, 2] = np.nan
    with pytest.raises(spikejit.errors.NonFiniteError, match="time step 3"):
        checked(bad)
    stack = jax.tree.map(lambda a: jnp.stack([a, 2 * a]), par.params)
    ys = jax.vmap(lambda q: par.apply(q, x)["y"])(stack)
    _close(ys[1], seq.apply(jax.tree.map(lambda a: 2 * a, seq.params), x)["y"], "vmap")


# -- random graphs ----------------------------------------------------------------------------
@settings(max_examples=8, deadline=None)
@given(graphs(max_nodes=6), st.integers(1, 20), st.integers(1, 3), st.integers(0, 2**16),
       st.sampled_from(["euler", "exp"]), st.sampled_from(["post", "pre"]))
def test_random_graphs_parallel_equals_sequential(g: Graph, steps: int, batch: int, seed: int,
                                                  method: str, cuba_current: str) -> None:
    g = g.replace(attrs=dataclasses.replace(g.attrs, method=method, cuba_current=cuba_current))
    params = random_params(g, seed)
    x = random_input(g, steps, batch, seed)
    seq, par = _pair((g, params), passes="O0", schedule="auto")
    s0 = _state(seq, batch, seed)
    y_s, st_s, tr_s = seq(x, s0, return_state=True, trace=True)
    y_p, st_p, tr_p = par(x, s0, return_state=True, trace=True)
    event(f"parallel nodes: {sum(len(s.parallel) for s in par.schedule.segments)}")
    if not any(n.op.spiking for n in g.nodes):
        _close((y_p, st_p, tr_p), (y_s, st_s, tr_s), "random graph", rtol=1e-4, atol=1e-5)
    else:  # a spike may flip where the membrane is within rounding of the threshold;
        # check_model allows exactly those flips (and counts them) against the interpreter
        check_model(g, params, x, modes=("auto", "layerwise"), parallel_scan="on")


def test_rounding_between_paths_is_tiny_over_long_sequences() -> None:
    g, p = _graph("snn.li", method="exp")
    seq, par = _pair((g, p))
    x = np.random.default_rng(0).normal(size=(2000, 2, 4)).astype("f4")
    _close(par(x), seq(x), "T = 2000", rtol=1e-4, atol=1e-5)


def test_matches_hand_written_schedule() -> None:
    """A schedule written by hand with ``parallel(...)`` lowers like the scheduler's."""
    g, p = _graph("snn.li", method="exp")
    g = spikejit.compile((g, p)).graph
    order = g.schedule.node_order()  # type: ignore[union-attr]
    hand = g.replace(schedule=Schedule((Segment("layerwise", order, "dfs", ("nrn",)),)))
    x = np.random.default_rng(0).normal(size=(9, 2, 4)).astype("f4")
    got = _program(hand)(p, x)[0]
    _close(got, spikejit.compile((g, p), parallel_scan="on")(x), "hand-written schedule")
    assert spikejit.compile((g, p), parallel_scan="on").graph == hand
