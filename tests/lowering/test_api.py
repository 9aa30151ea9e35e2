"""The public compile API: sources, options, caching/retracing, state, traces, jaxpr shape."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import nir
import numpy as np
import pytest
from helpers_lowering import chain, params_for, recurrent, ref, spike_input

import spikejit
from spikejit.errors import (
    ModelFileError,
    OptionError,
    ParamError,
    PassError,
    ScheduleError,
    SpikejitError,
)
from spikejit.ir import Graph, GraphAttrs, Node, TensorType, Use, infer_types, interpret
from spikejit.ir import ops as O
from spikejit.ir.interpreter import state_spec
from spikejit.ir.printer import print_graph
from spikejit.ir.serialize import save


def _delay_graph() -> Graph:
    """Recurrence, a snn.delay with per-element steps, and delayed uses of several depths."""
    t = TensorType((3,))
    nodes = (
        Node("x", O.Input(type=t)),
        Node("lif", O.LIF(tau=ref("lif.tau", (3,)), v_threshold=ref("lif.th", (3,))),
             (Use("x"), Use("rec", 1), Use("x", 3))),
        Node("d", O.Delay(steps=(1, 0, 2)), (Use("lif"),)),
        Node("rec", O.Linear(weight=ref("rec.w", (3, 3))), (Use("d"),)),
        Node("cuba", O.CubaLI(tau_syn=ref("cuba.ts", ()), tau_mem=ref("cuba.tm", ())),
             (Use("lif", 2),)),
        Node("y", O.Output(), (Use("cuba"),)),
    )
    return infer_types(Graph(nodes, attrs=GraphAttrs(dt=1e-3)))


def _nir_graph() -> nir.NIRGraph:
    rng = np.random.default_rng(0)
    return nir.NIRGraph(
        nodes={
            "input": nir.Input({"input": np.array([3])}),
            "fc": nir.Affine(rng.normal(size=(4, 3)).astype(np.float32), np.zeros(4, np.float32)),
            "lif": nir.LIF(tau=np.full(4, 5e-3), r=np.full(4, 2.0), v_leak=np.zeros(4),
                           v_threshold=np.full(4, 0.3)),
            "rec": nir.Linear(rng.normal(size=(4, 4)).astype(np.float32)),
            "output": nir.Output({"output": np.array([4])}),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")],
    )


# -- sources and options ------------------------------------------------------------------------
def test_compile_from_a_pair_a_saved_model_a_nir_graph_and_a_nir_file(tmp_path) -> None:
    g = recurrent()
    params = params_for(g, seed=1)
    x = spike_input((12, 2, 3), seed=2, p=0.6)
    want = interpret(g, params, x, dtype=np.float32)
    np.testing.assert_array_equal(spikejit.compile((g, params))(x), want)
    path = tmp_path / "m.sjit.npz"
    save(path, g, params)
    np.testing.assert_array_equal(spikejit.compile(str(path))(x), want)

    ng = _nir_graph()
    from_graph = spikejit.compile(ng, dt=1e-3, reset="subtract")
    nir.write(tmp_path / "m.nir", ng)
    from_file = spikejit.compile(tmp_path / "m.nir", dt=1e-3, reset="subtract")
    assert from_graph.graph.attrs.reset == "subtract"
    assert from_graph.graph == from_file.graph
    assert from_graph.schedule.segments[1].kind == "stepwise"  # the NIR cycle
    want = interpret(from_file.graph, from_file.params, x, dtype=np.float32)
    np.testing.assert_array_equal(from_file(x), want)
    np.testing.assert_array_equal(from_graph(x), want)
    with pytest.raises(SpikejitError, match="dt"):
        spikejit.compile(ng)  # a graph with time constants needs dt


def test_options_replace_graph_attributes() -> None:
    g = _delay_graph()
    params = params_for(g, seed=3)
    model = spikejit.compile((g, params), dt=2e-3, reset="subtract", cuba_current="pre",
                             method="exp")
    assert model.graph.attrs == GraphAttrs(dt=2e-3, reset="subtract", cuba_current="pre",
                                           method="exp")
    x = spike_input((15, 2, 3), seed=4, p=0.7)
    want = interpret(g.replace(attrs=model.graph.attrs), params, x, dtype=np.float32)
    np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-5)


def test_graph_without_params_compiles_alone() -> None:
    g = chain((2,), ("d", O.Delay(steps=2)), ("f", O.Flatten()))
    model = spikejit.compile(g)
    x = np.arange(8, dtype=np.float32).reshape(4, 1, 2)
    np.testing.assert_array_equal(model(x), np.concatenate([np.zeros((2, 1, 2)), x[:2]]))


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"speed": "max"}, OptionError, "compile: unknown option(s) speed; known: dt,"),
    ({"schedule": "fast"}, OptionError,
     "compile: schedule must be one of auto, layerwise, stepwise, got 'fast'"),
    ({"order": "gauss"}, OptionError, "compile: order must be one of dfs, jacobi, got 'gauss'"),
    ({"reset": "zero"}, OptionError, "reset must be one of 'value', 'subtract', got 'zero'"),
    ({"dt": -1.0}, OptionError, "dt must be finite and > 0, got -1.0"),
    ({"surrogate": "erf"}, OptionError, "unknown surrogate 'erf'; registered: arctan,"),
    ({"surrogate_params": {"beta": 1.0}}, OptionError,
     "surrogate 'fast_sigmoid' has no parameter 'beta'; its parameters: slope"),
    ({"passes": "schedule"}, OptionError, "compile: leave 'schedule' out of passes"),
    ({"passes": "fold-everything"}, PassError, "unknown pass 'fold-everything'"),
    ({"spike_ad": "fwd"}, OptionError, "spike_ad must be one of 'jvp', 'vjp', got 'fwd'"),
    ({"unroll": 0}, OptionError, "unroll must be an integer >= 1, got 0"),
    ({"input_shape": (3,)}, OptionError, "input_shape applies to NIR sources only"),
    ({"schedule": "layerwise"}, ScheduleError, "%lif (snn.lif): is on a cycle"),
])
def test_bad_options_name_the_option(kwargs: dict, error: type, message: str) -> None:
    g = recurrent()
    with pytest.raises(error) as info:
        spikejit.compile((g, params_for(g)), **kwargs)
    assert message in str(info.value)


def test_bad_sources_params_inputs_and_state(tmp_path) -> None:
    g = recurrent()
    params = params_for(g)
    with pytest.raises(OptionError, match="cannot compile a list"):
        spikejit.compile([g, params])
    with pytest.raises(ModelFileError, match=r"missing.nir: no such file"):
        spikejit.compile(str(tmp_path / "missing.nir"))
    with pytest.raises(OptionError, match="references parameters; pass"):
        spikejit.compile(g)
    bad = dict(params)
    del bad["rec.weight"]
    with pytest.raises(ParamError, match=r"missing parameter\(s\) @rec.weight \(used by %rec\)"):
        spikejit.compile((g, bad))
    model = spikejit.compile((g, params))
    with pytest.raises(ParamError, match=r"parameter @fc.bias: expected f32\[4\], got shape \[5\]"):
        model.apply({**params, "fc.bias": np.zeros(5, np.float32)}, np.zeros((2, 1, 3)))
    with pytest.raises(ParamError, match=r"input %x: expected data \[T, B, 3\]"):
        model(np.zeros((2, 3)))
    state = model.init_state(1)
    with pytest.raises(ParamError, match=r"state\['lif'\]\['v'\] must have shape \[2, 4\]"):
        model(np.zeros((2, 2, 3)), state)
    with pytest.raises(ParamError, match=r"state\['lif'\] must hold \['v'\]"):
        model(np.zeros((2, 1, 3)), {**state, "lif": {}})
    with pytest.raises(OptionError, match="trace: no node"):
        model(np.zeros((2, 1, 3)), trace=["nope"])


# -- caching and retracing --------------------------------------------------------------------
def test_compiling_twice_reuses_the_function_without_retracing() -> None:
    g = recurrent()
    params = params_for(g, seed=0)
    first = spikejit.compile((g, params))
    second = spikejit.compile((g, params_for(g, seed=1)))
    assert first.program is second.program
    before = first.trace_count
    x = spike_input((10, 2, 3), seed=0)
    first(x)
    second(x)
    first(x + 1.0)
    jax.grad(lambda p: jnp.sum(second.apply(p, x)))(first.params)
    assert first.trace_count == before + 1  # one trace for the forward; grad retraces only...
    for _ in range(3):
        first.apply(params_for(g, seed=2), x)
        first.with_params(params_for(g, seed=3))(x)
    assert first.trace_count == before + 1
    first(spike_input((11, 2, 3)))  # a new shape is a new trace, as in any jitted function
    assert first.trace_count == before + 2
    other = spikejit.compile((g, params), surrogate="arctan")
    assert other.program is not first.program


# -- state and traces ------------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", ["auto", "stepwise"])
def test_two_halves_with_carried_state_equal_the_whole(schedule: str) -> None:
    g = _delay_graph()
    params = params_for(g, seed=5)
    model = spikejit.compile((g, params), schedule=schedule)
    x = spike_input((20, 2, 3), seed=6, p=0.7) * 2
    y_all, s_all = model(x, return_state=True)
    for k in (1, 7, 13):
        y1, s1 = model(x[:k], return_state=True)
        y2, s2 = model(x[k:], s1, return_state=True)
        np.testing.assert_allclose(np.concatenate([y1, y2]), y_all, rtol=1e-6, atol=1e-6)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
                     s2, s_all)
    y_ref, s_ref = interpret(g, params, x, dtype=np.float32, return_state=True)
    np.testing.assert_allclose(y_all, y_ref, rtol=1e-5, atol=1e-5)
    assert jax.tree.structure(s_all) == jax.tree.structure(s_ref)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), s_all,
                 s_ref)
    # A state from the interpreter continues in the compiled model, and vice versa.
    _, s_half = interpret(g, params, x[:9], dtype=np.float32, return_state=True)
    np.testing.assert_allclose(model(x[9:], s_half), y_ref[9:], rtol=1e-5, atol=1e-5)


def test_init_state_has_the_interpreter_format() -> None:
    g = _delay_graph()
    model = spikejit.compile((g, params_for(g)))
    state = model.init_state(5)
    assert {k: {v: a.shape for v, a in e.items()} for k, e in state.items()} == state_spec(g, 5)
    assert state["d"]["buffer"].shape == (2, 5, 3)
    assert state["x"]["history"].shape == (3, 5, 3)
    assert all(float(jnp.abs(a).sum()) == 0 for a in jax.tree.leaves(state))


def test_traces_record_outputs_and_state_variables() -> None:
    g = _delay_graph()
    params = params_for(g, seed=7)
    x = spike_input((9, 2, 3), seed=8, p=0.7) * 2
    _, want = interpret(g, params, x, dtype=np.float32, trace=["lif", "cuba", "d"])
    for schedule in ("auto", "stepwise"):
        model = spikejit.compile((g, params), schedule=schedule)
        y, traces = model(x, trace=["lif", "cuba", "d"])
        assert {k: sorted(v) for k, v in traces.items()} == {
            "lif": ["out", "v"], "cuba": ["i", "out", "v"], "d": ["out"]}
        for nid, entry in want.items():
            for var, arr in entry.items():
                np.testing.assert_allclose(traces[nid][var], arr, rtol=1e-5, atol=1e-5)
        y2, state, all_traces = model(x, return_state=True, trace=True)
        assert set(all_traces) == {n.id for n in g.nodes}
        np.testing.assert_array_equal(y2, y)
        assert set(state) == set(model.init_state(1))


# -- what the lowering produces ------------------------------------------------------------------
def _eqns(jaxpr: jax.core.Jaxpr, inside_scan: bool = False):
    for eqn in jaxpr.eqns:
        yield eqn, inside_scan
        for sub in jax.core.jaxprs_in_params(eqn.params):
            yield from _eqns(sub, inside_scan or eqn.primitive.name == "scan")


def test_feed_forward_mlp_is_batched_matmuls_over_time_and_one_scan_per_neuron() -> None:
    g = chain((16,),
              ("fc1", O.Affine(weight=ref("fc1.weight", (32, 16)), bias=ref("fc1.bias", (32,)))),
              ("lif1", O.LIF(tau=ref("lif1.tau", ()), v_threshold=ref("lif1.th", ()))),
              ("fc2", O.Linear(weight=ref("fc2.weight", (8, 32)))),
              ("lif2", O.LIF(tau=ref("lif2.tau", ()), v_threshold=ref("lif2.th", ()))))
    model = spikejit.compile((g, params_for(g)))
    steps, batch = 25, 4
    jaxpr = model.make_jaxpr(np.zeros((steps, batch, 16), np.float32)).jaxpr
    eqns = list(_eqns(jaxpr))
    dots = [(e, inside) for e, inside in eqns if e.primitive.name == "dot_general"]
    assert [inside for _, inside in dots] == [False, False]
    assert [tuple(e.invars[0].aval.shape) for e, _ in dots] == [(100, 16), (100, 32)]
    scans = [e for e, inside in eqns if e.primitive.name == "scan"]
    assert len(scans) == 2 and all(e.params["length"] == steps for e in scans)


def test_every_node_runs_in_a_named_scope() -> None:
    g = recurrent()
    model = spikejit.compile((g, params_for(g)))
    x = np.zeros((4, 2, 3), np.float32)
    text = model.program.jitted.lower(model.params, x, None, ()).as_text(debug_info=True)
    for nid in ("fc", "lif", "rec"):  # "jit(__call__)/fc/dot_general", "rec/dot_general"
        assert re.search(f'["/]{nid}/(dot_general|add|mul)', text), nid


def test_printing_shows_the_ir_with_its_schedule() -> None:
    g = recurrent()
    model = spikejit.compile((g, params_for(g)))
    assert str(model) == print_graph(model.graph)
    assert "stepwise(dfs) %lif, %rec" in str(model)
    assert repr(model) == ("CompiledModel(graph=@main, nodes=5, params=5, "
                           "schedule=(layerwise[2], stepwise[2], layerwise[1]))")


def test_compile_accepts_a_torch_module_and_ir_text_is_refused(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    import spikejit
    from spikejit.errors import ModelFileError, OptionError

    module = torch.nn.Sequential(torch.nn.Linear(3, 2))
    model = spikejit.compile(module, input_shape=(3,), dt=1e-3)
    x = np.ones((4, 1, 3), np.float32)
    want = np.asarray(module(torch.from_numpy(x)).detach())
    np.testing.assert_allclose(np.asarray(model(x)), want, atol=1e-6)
    with pytest.raises(OptionError, match="needs input_shape="):
        spikejit.compile(module, dt=1e-3)
    text = tmp_path / "m.snir"
    text.write_text(spikejit.print_graph(model.graph))
    with pytest.raises(ModelFileError, match="is IR text, which holds no parameter values"):
        spikejit.compile(text)
