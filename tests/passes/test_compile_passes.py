"""Optimised graphs end to end: compile with presets, gradients reach the user's params,
save/load keeps derived parameters, and the jax.numpy derivations match the NumPy ones."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers_passes import layer_stacks, user_params, wide_fanin, with_fanin
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import graphs, random_input

import spikejit
from spikejit.errors import ParamError, PassError, VerifyError
from spikejit.ir import infer_types, parse, print_graph, verify
from spikejit.ir.derived import DERIVED_FUNCTIONS, DerivedParam, evaluate, make_derived
from spikejit.ir.types import ParamRef, TensorType
from spikejit.lowering.derived import JNP_DERIVED
from spikejit.passes import PRESETS, Pipeline, full_pipeline, run_passes

GOLDEN = Path(__file__).parent / "golden"


def mlp() -> spikejit.Graph:
    text = (GOLDEN / "pipelines" / "O2_mlp.snir").read_text(encoding="utf-8")
    return infer_types(parse(text.partition("// expect:")[0].partition("\n")[2]))


def test_compile_accepts_presets_and_keeps_the_params_pytree() -> None:
    g = mlp()
    params = user_params(g, seed=3)
    x = random_input(g, 12, 3, seed=3)
    plain = spikejit.compile((g, params), passes="O0")
    fast = spikejit.compile((g, params), passes="O2")
    assert len(fast.graph.nodes) < len(plain.graph.nodes)
    assert set(fast.params) == set(params)  # the user's pytree, not the folded one
    np.testing.assert_allclose(np.asarray(fast(x)), np.asarray(plain(x)), rtol=1e-5, atol=1e-5)

    def loss(model: spikejit.CompiledModel):
        return lambda p: jnp.sum(model.apply(p, x) ** 2)

    g0 = jax.grad(loss(plain))(plain.params)
    g2 = jax.grad(loss(fast))(fast.params)
    assert set(g2) == set(params)
    for name in params:
        np.testing.assert_allclose(np.asarray(g2[name]), np.asarray(g0[name]), rtol=1e-4,
                                   atol=1e-5, err_msg=name)
    # The probe's weight is retained: in the signature, with a zero gradient.
    assert not np.any(np.asarray(g2["probe.weight"]))
    assert np.any(np.asarray(g2["scale.scale"]))  # flows through the folded weight


def test_presets_and_full_pipeline() -> None:
    assert PRESETS["O0"] == ""
    assert str(Pipeline.parse("O1,fold-affine")) == f"{PRESETS['O1']},fold-affine"
    assert str(full_pipeline("O0")) == "shape-inference,schedule{mode=auto,order=dfs}"
    out = full_pipeline("O2")(mlp())
    assert out.schedule is not None
    with pytest.raises(PassError, match="preset 'O1' takes no options"):
        Pipeline.parse("O1{x=1}")
    with pytest.raises(PassError, match="unknown optimisation level 'O9'; known: O0, O1, O2"):
        full_pipeline("O9")


def test_save_load_roundtrip_of_an_optimised_graph(tmp_path: Path) -> None:
    g = mlp()
    params = user_params(g, seed=0)
    opt = run_passes(g, "O2")
    path = spikejit.save(tmp_path / "m.sjit.npz", opt, params)
    graph, loaded = spikejit.load(path)
    assert graph == opt and set(loaded) == set(params)
    x = random_input(g, 5, 2, seed=0)
    np.testing.assert_array_equal(spikejit.interpret(graph, loaded, x),
                                  spikejit.interpret(opt, params, x))


def test_passing_a_derived_parameter_is_an_error() -> None:
    opt = run_passes(mlp(), "O2")
    params = user_params(mlp(), seed=0)
    params["fc3.weight.folded"] = np.zeros((3, 6), np.float32)
    with pytest.raises(ParamError, match=r"parameter\(s\) @fc3.weight.folded are derived"):
        spikejit.interpret(opt, params, random_input(opt, 2, 1))


def _ref(name: str, *shape: int) -> ParamRef:
    return ParamRef(name, TensorType(shape))


EXAMPLES = {
    "mul": ((_ref("a", 2, 3), _ref("b", 3)), {}),
    "add": ((_ref("a", 3), _ref("b")), {}),
    "broadcast": ((_ref("a", 1),), {"shape": (2, 3)}),
    "matmul": ((_ref("a", 2, 4), _ref("b", 4, 3)), {}),
    "matvec": ((_ref("a", 2, 4), _ref("b", 1)), {}),
    "scale_axis": ((_ref("a", 3, 2, 2), _ref("b", 3, 1, 1)), {"axis": 0}),
    "concat": ((_ref("a", 2, 3), _ref("b", 2, 1)), {"axis": 1}),
}


@pytest.mark.parametrize("fn", sorted(DERIVED_FUNCTIONS))
def test_jnp_and_numpy_derivations_agree(fn: str) -> None:
    assert set(JNP_DERIVED) == set(DERIVED_FUNCTIONS) == set(EXAMPLES)
    args, attrs = EXAMPLES[fn]
    d = make_derived("out", fn, args, **attrs)
    rng = np.random.default_rng(0)
    values = {a.name: rng.normal(size=a.type.shape).astype(np.float32) for a in args}
    ref = evaluate([d], values)["out"]
    assert ref.shape == d.type.shape and ref.dtype == np.float32
    got = JNP_DERIVED[fn]([jnp.asarray(values[a.name]) for a in args], dict(d.attrs))
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-6)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("@w2: f32[3,3] = matmul(@w: f32[3,3], @w2: f32[3,3])",
         "derived parameter @w2 reads @w2, which is not defined before it (derived "
         "parameters are listed in dependency order, so they cannot form a cycle)"),
        ("@u: f32[3,2] = matmul(@w: f32[3,3], @v: f32[3,3])",
         "derived parameter @u is declared f32[3,2], but matmul of its arguments gives "
         "f32[3,3]"),
        ("@w2: f32[3,3] = matmul(@w: f32[3,3], @v: f32[2,3])",
         "derived parameter @w2 = matmul(...): matmul needs [m, k] and [k, n] matrices, got "
         "[3, 3] and [2, 3]"),
        ("@w2: f32[3,3] = mul(@w: f32[3], @v: f32[3,3])",
         "derived parameter @w2 reads @w as f32[3], but %l declares it f32[3,3]"),
        ("@w: f32[3,3]\n@w2: f32[3,3] = mul(@v: f32[3,3], @v: f32[3,3])",
         "retained parameter @w is read by the graph or listed twice; retained parameters "
         "are those nothing reads"),
    ],
)
def test_verifier_checks_derived_parameters(block: str, message: str) -> None:
    text = ("graph @g attributes {dt = 0.001} {\n  %x = io.input() {type = f32[3]}\n"
            "  %fc = nn.linear(%x) {weight = @w2: f32[3,3]}\n  %l = nn.linear(%fc) "
            "{weight = @w: f32[3,3]}\n  %y = io.output(%l)\n  params {\n" + block + "\n  }\n}\n")
    with pytest.raises(VerifyError) as e:
        verify(parse(text))
    assert str(e.value) == message


def test_params_block_prints_and_parses_back() -> None:
    d = DerivedParam("w.folded", TensorType((2, 3)), "concat",
                     (_ref("a", 2, 1), _ref("b", 2, 2)), (("axis", 1),))
    g = run_passes(mlp(), "O2").replace(derived=(*run_passes(mlp(), "O2").derived, d))
    text = print_graph(g)
    assert "    @w.folded: f32[2,3] = concat(@a: f32[2,1], @b: f32[2,2]) {axis = 1}\n" in text
    assert parse(text) == g


def test_merged_fanin_compiles_like_the_original() -> None:
    g = infer_types(parse((GOLDEN / "merge-fanin" / "wide.snir").read_text(encoding="utf-8")
                          .partition("// expect:")[0].partition("\n")[2]))
    params = user_params(g, seed=2)
    x = random_input(g, 9, 2, seed=2)
    plain = spikejit.compile((g, params), passes="O0")
    merged = spikejit.compile((g, params), passes="merge-fanin")
    assert any(n.op.mnemonic == "nn.pad" for n in merged.graph.nodes)
    np.testing.assert_allclose(np.asarray(merged(x)), np.asarray(plain(x)), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(np.asarray(merged(x)), spikejit.interpret(merged.graph, params, x),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("schedule", [pytest.param("auto", marks=pytest.mark.slow), "stepwise"])
def test_fused_layers_compile_to_the_same_values(schedule: str) -> None:
    text = (GOLDEN / "fuse-synapse-neuron" / "layers.snir").read_text(encoding="utf-8")
    g = infer_types(parse(text.partition("// expect:")[0].partition("\n")[2]))
    params = user_params(g, seed=5)
    x = random_input(g, 10, 2, seed=5)
    plain = spikejit.compile((g, params), passes="O0", schedule=schedule)
    fused = spikejit.compile((g, params), passes="fuse-synapse-neuron", schedule=schedule)
    assert sum(n.op.mnemonic.startswith("layer.") for n in fused.graph.nodes) == 2
    a, b = plain(x), fused(x)
    for k in a:
        np.testing.assert_allclose(np.asarray(b[k]), np.asarray(a[k]), rtol=1e-6, atol=1e-6)
    if schedule != "auto":
        return  # gradients once: the schedule does not change them
    ga = jax.grad(lambda p: jnp.sum(plain.apply(p, x)["y"] ** 2))(plain.params)
    gb = jax.grad(lambda p: jnp.sum(fused.apply(p, x)["y"] ** 2))(fused.params)
    for k in ga:
        np.testing.assert_allclose(np.asarray(gb[k]), np.asarray(ga[k]), rtol=1e-5, atol=1e-6)


def test_a_fused_layer_is_one_product_over_all_steps_and_one_scan() -> None:
    text = (GOLDEN / "fuse-synapse-neuron" / "recurrent.snir").read_text(encoding="utf-8")
    g = infer_types(parse(text.partition("// expect:")[0].partition("\n")[2]
                          .replace("%rec = nn.affine(%x, %lif[t-1])", "%rec = nn.affine(%x)")))
    model = spikejit.compile((g, user_params(g)), passes="fuse-synapse-neuron")
    (layer,) = [n for n in model.graph.nodes if n.op.mnemonic == "layer.affine_lif"]
    jaxpr = model.make_jaxpr(np.zeros((7, 2, 3), np.float32)).jaxpr
    top = [e.primitive.name for e in jaxpr.eqns]
    assert top.count("scan") == 1 and top.count("dot_general") == 1  # the product is outside
    assert layer.id == "lif"


def _first_spike_difference(graph: spikejit.Graph, got: dict, want: dict) -> int | None:
    steps = [int(np.argwhere(np.asarray(got[n]["out"]) != want[n]["out"])[0][0])
             for n in want if graph.node(n).type.spike
             and np.any(np.asarray(got[n]["out"]) != want[n]["out"])]
    return min(steps, default=None)


@pytest.mark.slow
@settings(max_examples=8, deadline=None)
@given(st.one_of(layer_stacks(), wide_fanin(), with_fanin(graphs(max_nodes=5, images=False))),
       st.sampled_from(["auto", "stepwise"]), st.integers(0, 2**16))
def test_optimised_graphs_lower_like_the_interpreter_runs_them(
        graph: spikejit.Graph, schedule: str, seed: int) -> None:
    """Derived parameters, nn.pad and fused layers through the JAX lowering: every traced
    value (outputs, neuron states) matches the float32 interpreter of the optimised graph
    up to the first spike that differs (a float32 near-threshold flip, which summation
    order decides)."""
    opt = run_passes(graph, "O2")
    params = user_params(graph, seed)
    x = random_input(graph, 8, 2, seed)
    _, want = spikejit.interpret(opt, params, x, dtype=np.float32, trace=True)
    _, got = spikejit.compile((opt, params), schedule=schedule)(x, trace=True)
    first = _first_spike_difference(opt, got, want)
    upto = slice(None) if first is None else slice(0, first)
    for nid, entry in want.items():
        for var, arr in entry.items():
            np.testing.assert_allclose(np.asarray(got[nid][var])[upto], arr[upto], rtol=1e-5,
                                       atol=1e-5, err_msg=f"%{nid} {var}")


def test_json_form_names_derived_and_retained_parameters() -> None:
    from spikejit.ir.json_form import to_json_dict

    assert to_json_dict(mlp())["format"] == "spikejit.ir.json/v1"
    assert "params" not in to_json_dict(mlp())
    data = to_json_dict(run_passes(mlp(), "O2"))
    assert data["format"] == "spikejit.ir.json/v2"
    assert [r["name"] for r in data["params"]["retained"]] == ["probe.weight"]
    folded = {d["name"]: d for d in data["params"]["derived"]}["fc3.weight.folded"]
    assert folded["fn"] == "matmul" and folded["type"]["shape"] == [3, 6]
    assert [a["name"] for a in folded["args"]] == ["fc3.weight", "fc2.weight"]
