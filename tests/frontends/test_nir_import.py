"""from_nir: every primitive, the graph rules (fan-in, nesting, ports, identities, cycles,
delays, flatten dims), options, and the messy shapes real exporters write."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from helpers_nir import F32, arr, chain, lif, primitive_graphs, write_h5

import spikejit
from spikejit.errors import FrontendError
from spikejit.ir import ops as O
from spikejit.ir import print_graph

MNEMONIC = {"Affine": "nn.affine", "Linear": "nn.linear", "Scale": "nn.scale",
            "Threshold": "snn.threshold", "I": "snn.i", "IF": "snn.if", "LI": "snn.li",
            "LIF": "snn.lif", "CubaLI": "snn.cuba_li", "CubaLIF": "snn.cuba_lif",
            "Delay": "snn.delay", "Conv1d": "nn.conv1d", "Conv2d": "nn.conv2d",
            "SumPool2d": "nn.sumpool2d", "AvgPool2d": "nn.avgpool2d", "Flatten": "nn.flatten"}


@pytest.mark.parametrize("kind", sorted(MNEMONIC))
def test_every_primitive_imports_with_its_parameters(kind: str) -> None:
    nir_graph = primitive_graphs()[kind]
    graph, params = spikejit.from_nir(nir_graph, dt=1e-3)
    (nid,) = [k for k in nir_graph.nodes if k not in ("input", "output")]
    node = graph.node(nid)
    assert node.op.mnemonic == MNEMONIC[kind]
    assert node.loc == f"nir:{nid}"
    assert [n.id for n in graph.nodes] == ["input", nid, "output"]
    for field, ref in node.op.params():
        assert ref.name == f"{nid}.{field}"
        assert ref.type.dtype == "f32"
        value = params[ref.name]
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, np.asarray(getattr(nir_graph.nodes[nid], field)))
    assert graph.node("output").type.shape == tuple(nir_graph.nodes["output"].output_type["output"])


def test_lif_chain_text() -> None:
    graph, _ = spikejit.from_nir(chain(("lif", lif(3))), dt=1e-3, reset="subtract")
    assert print_graph(graph) == (
        'graph @main attributes {dt = 0.001, reset = "subtract", cuba_current = "post", '
        'method = "euler"} {\n'
        "  %input = io.input() {type = f32[3]} : f32[3]\n"
        "  %lif = snn.lif(%input) {tau = @lif.tau: f32[3], v_threshold = @lif.v_threshold: f32[3],"
        " r = @lif.r: f32[3], v_leak = @lif.v_leak: f32[3], v_reset = @lif.v_reset: f32[3]}"
        " : spike<f32[3]>\n"
        "  %output = io.output(%lif) : spike<f32[3]>\n"
        "}\n")


def test_options_are_recorded_in_the_graph_attributes() -> None:
    graph, _ = spikejit.from_nir(chain(("lif", lif(3))), dt=2e-3, reset="subtract",
                                 cuba_current="pre", method="exp")
    a = graph.attrs
    assert (a.dt, a.reset, a.cuba_current, a.method) == (2e-3, "subtract", "pre", "exp")


def test_stateless_graph_needs_no_dt() -> None:
    graph, _ = spikejit.from_nir(primitive_graphs()["Affine"])
    assert graph.attrs.dt is None


def test_conv2d_same_padding_stride_and_groups_use_spikejit_shapes() -> None:
    # nir's own inference says [4, 5, 5] for 'same' with stride 2 and reads C_in from
    # weight.shape[1] (1, wrong for groups=2); spikejit computes [4, 3, 5] from 2 channels.
    graph, _ = spikejit.from_nir(primitive_graphs()["Conv2d"])
    node = graph.node("c")
    assert node.op.padding == "same" and node.op.groups == 2 and node.op.stride == (2, 1)
    assert node.type.shape == (4, 3, 5)


def test_delay_becomes_whole_steps() -> None:
    g = primitive_graphs()["Delay"]
    graph, params = spikejit.from_nir(g, dt=1e-3)
    assert graph.node("d").op.steps == (1, 2, 0) and params == {}
    graph, _ = spikejit.from_nir(g, dt=5e-4)
    assert graph.node("d").op.steps == (2, 4, 0)


def test_delay_semantics_shift_each_element() -> None:
    graph, params = spikejit.from_nir(primitive_graphs()["Delay"], dt=1e-3)
    x = np.arange(1, 1 + 5 * 1 * 3, dtype=F32).reshape(5, 1, 3)
    y = spikejit.interpret(graph, params, x)
    np.testing.assert_array_equal(y[:, 0, 0], [0, *x[:4, 0, 0]])
    np.testing.assert_array_equal(y[:, 0, 1], [0, 0, *x[:3, 0, 1]])
    np.testing.assert_array_equal(y[:, 0, 2], x[:, 0, 2])


def test_flatten_dims_count_per_sample() -> None:
    # What snnTorch/sinabs write for nn.Flatten(): start_dim=0 over the per-sample shape.
    g = chain(("f", nir.Flatten(input_type=None, start_dim=0, end_dim=-1)), shape=(2, 3, 4),
              out=(24,))
    graph, _ = spikejit.from_nir(g)
    assert graph.node("f").type.shape == (24,)
    graph, _ = spikejit.from_nir(primitive_graphs()["Flatten"])
    assert graph.node("f").type.shape == (2, 12)


def _recurrent(names: tuple[str, str] = ("lif", "w_rec")) -> nir.NIRGraph:
    a, b = names
    w = np.array([[0.0, 2.0], [-1.0, 0.0]], F32)
    return nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([2])), a: lif(2, v_threshold=arr(0.5, 0.5)),
               b: nir.Linear(weight=w), "y": nir.Output(output_type=np.array([2]))},
        edges=[("x", a), (a, b), (b, a), (a, "y")], type_check=False)


def test_cycle_is_broken_on_the_dfs_back_edge() -> None:
    graph, params = spikejit.from_nir(_recurrent(), dt=1e-3)
    text = print_graph(graph)
    assert "%lif = snn.lif(%x, %w_rec[t-1])" in text
    assert "%w_rec = nn.linear(%lif)" in text
    # lif_in[t] = x[t] + W z[t-1]: check against a hand-written loop.
    rng = np.random.default_rng(0)
    x = rng.normal(0.3, 1, size=(30, 2, 2)).astype(F32)
    y = spikejit.interpret(graph, params, x)
    w, tau = params["w_rec.weight"].astype(np.float64), 2e-3
    v = np.zeros((2, 2))
    z = np.zeros((2, 2))
    for t in range(30):
        inp = x[t] + z @ w.T
        v = v + 1e-3 / tau * (-v + inp)
        z = (v > 0.5).astype(np.float64)
        v = np.where(z > 0, 0.0, v)
        np.testing.assert_array_equal(y[t], z)


def test_dfs_visits_successors_in_sorted_name_order() -> None:
    # x -> first, x -> second, first <-> second, second -> y: whichever of the two names
    # sorts first is entered first, so the edge back into it is the delayed one.
    def graph(first: str, second: str) -> str:
        g = nir.NIRGraph(
            nodes={"x": nir.Input(input_type=np.array([2])),
                   first: nir.Scale(scale=arr(1, 1)), second: nir.Scale(scale=arr(2, 2)),
                   "y": nir.Output(output_type=np.array([2]))},
            edges=[("x", first), ("x", second), (first, second), (second, first), (second, "y")],
            type_check=False)
        return print_graph(spikejit.from_nir(g)[0])

    text = graph("a", "b")
    assert "%a = nn.scale(%x, %b[t-1])" in text and "%b = nn.scale(%x, %a)" in text
    text = graph("b", "a")  # the same graph with the two nodes' names swapped
    assert "%a = nn.scale(%x, %b[t-1])" in text and "%b = nn.scale(%x, %a)" in text
    assert "%y = io.output(%a)" in text


def test_cycle_through_a_delay_node_is_not_broken_again() -> None:
    g = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([2])), "a": nir.Scale(scale=arr(1, 1)),
               "d": nir.Delay(delay=arr(2e-3, 2e-3)), "y": nir.Output(output_type=np.array([2]))},
        edges=[("x", "a"), ("a", "d"), ("d", "a"), ("a", "y")], type_check=False)
    graph, _ = spikejit.from_nir(g, dt=1e-3)
    assert "[t-" not in print_graph(graph)
    assert graph.node("d").op.steps == (2, 2)


def test_nested_graph_is_inlined_with_path_names() -> None:
    inner = nir.NIRGraph(
        nodes={"in": nir.Input(input_type=np.array([2])), "lif": lif(2),
               "w": nir.Linear(weight=np.eye(2, dtype=F32)),
               "out": nir.Output(output_type=np.array([2]))},
        edges=[("in", "lif"), ("lif", "w"), ("w", "lif"), ("lif", "out")], type_check=False)
    outer = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([3])),
               "fc": nir.Affine(weight=np.ones((2, 3), F32), bias=np.zeros(2, F32)),
               "S": inner, "output": nir.Output(output_type=np.array([2]))},
        edges=[("input", "fc"), ("fc", "S"), ("S", "output")], type_check=False)
    graph, params = spikejit.from_nir(outer, dt=1e-3)
    assert [n.id for n in graph.nodes] == ["input", "fc", "S/lif", "output", "S/w"]
    assert graph.node("S/lif").loc == "nir:S/lif"
    assert [(u.node, u.delay) for u in graph.node("S/lif").inputs] == [("fc", 0), ("S/w", 1)]
    assert [u.node for u in graph.node("output").inputs] == ["S/lif"]
    assert "S/lif.tau" in params


def test_deeply_nested_graphs() -> None:
    leaf = chain(("s", nir.Scale(scale=arr(2, 2, 2))))
    mid = nir.NIRGraph(nodes={"i": nir.Input(input_type=np.array([3])), "T": leaf,
                              "o": nir.Output(output_type=np.array([3]))},
                       edges=[("i", "T"), ("T", "o")], type_check=False)
    top = nir.NIRGraph(nodes={"x": nir.Input(input_type=np.array([3])), "S": mid,
                              "y": nir.Output(output_type=np.array([3]))},
                       edges=[("x", "S"), ("S", "y")], type_check=False)
    graph, _ = spikejit.from_nir(top)
    assert [n.id for n in graph.nodes] == ["x", "S/T/s", "y"]


def test_port_style_edges_address_inner_nodes() -> None:
    # Two inner Inputs cannot be told apart by an edge into 'S'; 'S.a' / 'S.b' can.
    inner = nir.NIRGraph(
        nodes={"a": nir.Input(input_type=np.array([2])), "b": nir.Input(input_type=np.array([2])),
               "sa": nir.Scale(scale=arr(1, 1)), "sb": nir.Scale(scale=arr(-1, -1)),
               "o": nir.Output(output_type=np.array([2]))},
        edges=[("a", "sa"), ("b", "sb"), ("sa", "o"), ("sb", "o")], type_check=False)
    outer = nir.NIRGraph(
        nodes={"x1": nir.Input(input_type=np.array([2])), "x2": nir.Input(input_type=np.array([2])),
               "S": inner, "y": nir.Output(output_type=np.array([2]))},
        edges=[("x1", "S.a"), ("x2", "S.b"), ("S", "y")], type_check=False)
    graph, params = spikejit.from_nir(outer)
    assert [u.node for u in graph.node("S/sa").inputs] == ["x1"]
    assert [u.node for u in graph.node("S/sb").inputs] == ["x2"]
    assert [u.node for u in graph.node("y").inputs] == ["S/sa", "S/sb"]
    x1, x2 = np.ones((2, 1, 2), F32), np.full((2, 1, 2), 3, F32)
    y = spikejit.interpret(graph, params, {"x1": x1, "x2": x2})
    np.testing.assert_array_equal(y, x1 - x2)


def test_fan_in_is_summed_in_edge_order() -> None:
    g = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([2])), "p": nir.Scale(scale=arr(1, 2)),
               "q": nir.Scale(scale=arr(10, 20)), "s": nir.Scale(scale=arr(1, 1)),
               "y": nir.Output(output_type=np.array([2]))},
        edges=[("x", "q"), ("x", "p"), ("q", "s"), ("p", "s"), ("s", "y")], type_check=False)
    graph, params = spikejit.from_nir(g)
    assert [u.node for u in graph.node("s").inputs] == ["q", "p"]
    y = spikejit.interpret(graph, params, np.ones((1, 1, 2), F32))
    np.testing.assert_array_equal(y[0, 0], [11, 22])


def test_identity_nodes_are_rewired_away() -> None:
    g = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([2])),
               "id": nir.ir.graph.Identity(input_type={"input": np.array([2])}),
               "s": nir.Scale(scale=arr(3, 4)), "y": nir.Output(output_type=np.array([2]))},
        edges=[("x", "id"), ("id", "s"), ("s", "y")], type_check=False)
    graph, _ = spikejit.from_nir(g)
    assert [n.id for n in graph.nodes] == ["x", "s", "y"]


def test_several_inputs_and_outputs() -> None:
    g = nir.NIRGraph(
        nodes={"a": nir.Input(input_type=np.array([2])), "b": nir.Input(input_type=np.array([3])),
               "fa": nir.Linear(weight=np.ones((4, 2), F32)),
               "fb": nir.Linear(weight=np.ones((4, 3), F32)),
               "ya": nir.Output(output_type=np.array([4])),
               "ysum": nir.Output(output_type=np.array([4]))},
        edges=[("a", "fa"), ("b", "fb"), ("fa", "ya"), ("fa", "ysum"), ("fb", "ysum")],
        type_check=False)
    graph, params = spikejit.from_nir(g)
    assert graph.inputs == ("a", "b") and set(graph.outputs) == {"ya", "ysum"}
    y = spikejit.interpret(graph, params, {"a": np.ones((1, 1, 2), F32),
                                           "b": np.ones((1, 1, 3), F32)})
    np.testing.assert_array_equal(y["ya"][0, 0], [2] * 4)
    np.testing.assert_array_equal(y["ysum"][0, 0], [5] * 4)


@pytest.mark.parametrize(("shape", "kept"), [((), ()), ((1, 3), (3,)), ((3, 1), (3,)),
                                            ((3,), (3,))])
def test_neuron_parameters_fit_the_layer(shape: tuple[int, ...], kept: tuple[int, ...]) -> None:
    node = nir.LIF(tau=np.full(shape, 2e-3, F32), r=np.ones(shape, F32),
                   v_leak=np.zeros(shape, F32), v_threshold=np.full(shape, 0.5, F32),
                   v_reset=np.zeros(shape, F32))
    graph, params = spikejit.from_nir(chain(("lif", node)), dt=1e-3)
    assert params["lif.tau"].shape == kept
    assert graph.node("lif").type.shape == (3,)


def test_flat_parameters_are_reshaped_to_an_image_layer() -> None:
    node = nir.IF(r=np.ones(12, F32), v_threshold=np.full(12, 0.5, F32),
                  v_reset=np.zeros(12, F32))
    _, params = spikejit.from_nir(chain(("if", node), shape=(3, 2, 2)), dt=1e-3)
    assert params["if.r"].shape == (3, 2, 2)


def test_conv_without_input_shape_and_pool_without_types() -> None:
    # What snnTorch's exporter leaves in memory: Conv2d(input_shape=None), AvgPool2d with
    # no output type, Flatten(input_type=None), scalar LIF parameters.
    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([1, 6, 6])),
               "conv": nir.Conv2d(input_shape=None, weight=np.ones((2, 1, 3, 3), F32), stride=1,
                                  padding=(1, 1), dilation=1, groups=1, bias=np.zeros(2, F32)),
               "pool": nir.AvgPool2d(kernel_size=2, stride=2, padding=(0, 0)),
               "lif": nir.LIF(tau=np.float32(2e-3), r=np.float32(1), v_leak=np.float32(0),
                              v_threshold=np.array(0.5, F32), v_reset=np.array(0, F32)),
               "flat": nir.Flatten(input_type=None, start_dim=0, end_dim=-1),
               "output": nir.Output(output_type=np.array([18]))},
        edges=[("input", "conv"), ("conv", "pool"), ("pool", "lif"), ("lif", "flat"),
               ("flat", "output")], type_check=False)
    graph, params = spikejit.from_nir(g, dt=1e-3)
    assert graph.node("pool").type.shape == (2, 3, 3)
    assert graph.node("flat").type.shape == (18,)
    assert params["lif.tau"].shape == ()


def test_output_shape_with_a_batch_axis_of_one_is_accepted() -> None:
    graph, _ = spikejit.from_nir(chain(("s", nir.Scale(scale=arr(1, 1, 1))), out=(1, 3)))
    assert graph.node("output").type.shape == (3,)


def test_input_shape_override_drops_a_batch_axis() -> None:
    g = chain(("c", nir.Conv2d(input_shape=None, weight=np.ones((2, 1, 3, 3), F32), stride=1,
                               padding=0, dilation=1, groups=1, bias=np.zeros(2, F32))),
              shape=(1, 1, 5, 5), out=(1, 2, 3, 3))
    with pytest.raises(FrontendError, match=r"edge 'input' -> 'c'.*\[C_in, N0, N1\]"):
        spikejit.from_nir(g)
    graph, _ = spikejit.from_nir(g, input_shape=(1, 5, 5))
    assert graph.node("c").type.shape == (2, 3, 3)
    graph, _ = spikejit.from_nir(g, input_shape={"input": [1, 5, 5]})
    assert graph.node("input").op.type.shape == (1, 5, 5)


def test_print_order_follows_the_data_through_delays() -> None:
    g = chain(("a", nir.Scale(scale=arr(1, 1))), ("d", nir.Delay(delay=arr(1e-3, 1e-3))),
              ("b", nir.Scale(scale=arr(2, 2))), shape=(2,))
    graph, _ = spikejit.from_nir(g, dt=1e-3)
    assert [n.id for n in graph.nodes] == ["input", "a", "d", "b", "output"]


def test_reads_files_written_by_nir(tmp_path) -> None:
    path = tmp_path / "lif.nir"
    nir.write(path, chain(("lif", lif(3))))
    g_file, p_file = spikejit.from_nir(path, dt=1e-3)
    g_obj, p_obj = spikejit.from_nir(chain(("lif", lif(3))), dt=1e-3)
    assert print_graph(g_file) == print_graph(g_obj)
    assert sorted(p_file) == sorted(p_obj)
    assert spikejit.from_nir(str(path), dt=1e-3)[0] == g_file


def test_hand_written_file_with_missing_optional_fields(tmp_path) -> None:
    # No r, v_leak, v_reset: NIR's neutral values, so the IR op omits them.
    path = write_h5(tmp_path / "m.nir", {
        "input": {"type": "Input", "shape": np.array([2])},
        "lif": {"type": "LIF", "tau": np.full(2, 2e-3), "v_threshold": np.ones(2)},
        "output": {"type": "Output", "shape": np.array([2])},
    }, [("input", "lif"), ("lif", "output")])
    graph, params = spikejit.from_nir(path, dt=1e-3)
    op = graph.node("lif").op
    assert isinstance(op, O.LIF) and op.r is None and op.v_leak is None and op.v_reset is None
    assert sorted(params) == ["lif.tau", "lif.v_threshold"]


def test_torch_tensors_in_nir_objects_are_copied() -> None:
    torch = pytest.importorskip("torch")
    g = chain(("fc", nir.Affine(weight=torch.ones(2, 3), bias=torch.zeros(2))), out=(2,))
    _, params = spikejit.from_nir(g)
    assert params["fc.weight"].dtype == np.float32 and params["fc.weight"].shape == (2, 3)
