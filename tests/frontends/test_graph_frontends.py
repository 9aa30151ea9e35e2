"""GraphBuilder, from_networkx/to_networkx and from_layers: the same network three ways gives
identical IR text; every way compiles and matches the reference interpreter; misuse errors
name the node."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

import spikejit
from spikejit.errors import (
    AttributeError_,
    FrontendError,
    OptionError,
    ParamError,
    ShapeError,
    VerifyError,
)
from spikejit.ir import Use, interpret, print_graph

RNG = np.random.default_rng(7)
W_IN = RNG.uniform(0.5, 3.0, (5, 3)).astype(np.float32)
B_IN = RNG.normal(0, 0.1, 5).astype(np.float32)
W_REC = RNG.normal(0, 0.3, (5, 5)).astype(np.float32)
W_OUT = RNG.normal(0, 1.0, (2, 5)).astype(np.float32)
LIF = {"tau": np.full(5, 0.02, np.float32), "v_threshold": 1.0, "reset": "subtract"}


def by_builder() -> tuple[spikejit.Graph, dict]:
    b = spikejit.GraphBuilder("rsnn", dt=1e-3)
    b.input("input0", shape=(3,))
    b.add("fc", "nn.affine", weight=W_IN, bias=B_IN)
    b.add("lif", "snn.lif", **LIF)
    b.add("rec", "nn.linear", weight=W_REC)
    b.add("readout", "nn.linear", weight=W_OUT)
    b.add("li", "snn.li", tau=np.full(2, 0.05, np.float32))
    b.output("output0", "li")
    b.chain("input0", "fc")
    b.connect("rec", "lif", delay=1).connect("fc", "lif")  # operand order: rec, then fc
    b.chain("lif", "rec").chain("lif", "readout", "li")
    return b.build()


def by_networkx() -> tuple[spikejit.Graph, dict]:
    g = nx.DiGraph(name="rsnn", dt=1e-3)
    g.add_node("input0", op="io.input", attrs={"shape": [3]})
    g.add_node("fc", op="nn.affine", params={"weight": W_IN, "bias": B_IN})
    g.add_node("lif", op="snn.lif", params={"tau": LIF["tau"], "v_threshold": 1.0},
               attrs={"reset": "subtract"}, pos=(1, 2))  # unknown keys are ignored
    g.add_node("rec", op="nn.linear", params={"weight": W_REC})
    g.add_node("readout", op="nn.linear", params={"weight": W_OUT})
    g.add_node("li", op="snn.li", params={"tau": np.full(2, 0.05, np.float32)})
    g.add_node("output0", op="io.output")
    g.add_edges_from([("input0", "fc"), ("lif", "rec"), ("lif", "readout"), ("readout", "li"),
                      ("li", "output0")])
    g.add_edge("rec", "lif", delay=1, index=0)
    g.add_edge("fc", "lif", index=1)
    return spikejit.from_networkx(g)


def by_layers() -> tuple[spikejit.Graph, dict]:
    layers = [spikejit.Layer("nn.affine", name="fc", weight=W_IN, bias=B_IN),
              spikejit.Layer("snn.lif", name="lif", **LIF),
              spikejit.Layer("nn.linear", name="rec", weight=W_REC),
              spikejit.Layer("nn.linear", name="readout", weight=W_OUT),
              spikejit.Layer("snn.li", name="li", tau=np.full(2, 0.05, np.float32))]
    return spikejit.from_layers(
        layers, input_layer_ids=[[0], [], [], [], []], final_layer_ids=[4],
        input_connectivity=[[], [2, 0], [1], [1], [3]], input_shapes=(3,), name="rsnn",
        dt=1e-3)


def test_three_ways_give_identical_ir_text_and_params() -> None:
    results = [by_builder(), by_networkx(), by_layers()]
    texts = [print_graph(g) for g, _ in results]
    assert texts[0] == texts[1] == texts[2]
    assert "%lif = snn.lif(%rec[t-1], %fc)" in texts[0]
    for _, params in results[1:]:
        assert params.keys() == results[0][1].keys()
        for k, v in params.items():
            np.testing.assert_array_equal(v, results[0][1][k])
            assert v.dtype == results[0][1][k].dtype


@pytest.mark.parametrize("make", [by_builder, by_networkx, by_layers])
@pytest.mark.parametrize("schedule", ["auto", "stepwise"])
def test_compiles_and_matches_the_oracle(make: object, schedule: str) -> None:
    graph, params = make()  # type: ignore[operator]
    x = (np.random.default_rng(0).random((40, 2, 3)) < 0.4).astype(np.float32)
    want = interpret(graph, params, x, dtype=np.float32)
    got = np.asarray(spikejit.compile((graph, params), schedule=schedule)(x))
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(want).sum() > 0


def test_networkx_round_trip() -> None:
    graph, params = by_builder()
    g = spikejit.to_networkx(graph, params)
    assert isinstance(g, nx.MultiDiGraph) and list(g.nodes) == [n.id for n in graph.nodes]
    assert g.nodes["lif"]["attrs"] == {"reset": "subtract"}
    assert g.graph["dt"] == 1e-3
    back, back_params = spikejit.from_networkx(g)
    assert back == graph and print_graph(back) == print_graph(graph)
    assert back_params.keys() == params.keys()
    # Shared names, other dtypes, delays in time and repeated edges survive too.
    b = spikejit.GraphBuilder("g", dt=0.5e-3)
    b.input("x", shape=(2,), dtype="f64")
    b.add("s1", "nn.scale", inputs=["x"], scale=spikejit.Param([1.0, 2.0], name="shared"))
    b.add("s2", "nn.scale", inputs=["x"], scale=spikejit.Param([1.0, 2.0], name="shared"))
    b.add("d", "nn.scale", scale=spikejit.Param(3.0, dtype="f64"))
    b.connect("s1", "d").connect("s2", "d", delay_time=1e-3).connect("s1", "d", delay=3)
    b.output("y", "d")
    graph2, params2 = b.build()
    assert graph2.node("d").inputs == (Use("s1"), Use("s2", 2), Use("s1", 3))
    assert set(params2) == {"shared", "d.scale"} and params2["d.scale"].dtype == np.float64
    back2, back_params2 = spikejit.from_networkx(spikejit.to_networkx(graph2, params2))
    assert back2 == graph2 and set(back_params2) == set(params2)
    assert back_params2["d.scale"].dtype == np.float64


def test_builder_misuse_errors_name_the_node() -> None:
    b = spikejit.GraphBuilder("g", dt=1e-3).input("x", shape=(3,))
    with pytest.raises(VerifyError, match=r"%x \(io.output\): node id is used by more than "
                                          r"one node"):
        b.output("x", "x")
    with pytest.raises(AttributeError_, match=r"%l \(\?\): unknown op 'snn.lfi'; known ops: "):
        b.add("l", "snn.lfi")
    with pytest.raises(AttributeError_, match=r"%l \(snn.lif\): unknown attribute\(s\) 'tau_mem'"
                                              r"; snn.lif has tau, v_threshold, r, v_leak, "
                                              r"v_reset, reset"):
        b.add("l", "lif", tau_mem=0.01, v_threshold=1.0)
    with pytest.raises(AttributeError_, match=r"%l \(snn.lif\): missing required field\(s\) "
                                              r"'v_threshold'"):
        b.add("l", "snn.lif", tau=0.01)
    with pytest.raises(AttributeError_, match=r"%l \(snn.lif\): attribute 'reset' must be one "
                                              r"of 'value', 'subtract', 'none'"):
        b.add("l", "snn.lif", tau=0.01, v_threshold=1.0, reset="zero")
    with pytest.raises(ParamError, match=r"%l \(snn.lif\): parameter tau: expected a number or "
                                         r"numeric array, got dtype <U4"):
        b.add("l", "snn.lif", tau="fast", v_threshold=1.0)
    with pytest.raises(OptionError, match=r"connect %x -> %l: delay must be an integer"):
        b.connect("x", "l", delay=-1)
    b.add("l", "snn.lif", inputs=["x", "nowhere"], tau=0.01, v_threshold=1.0).output("y", "l")
    with pytest.raises(VerifyError, match=r"edge %nowhere -> %l: %nowhere is not a node of "
                                          r"graph @g"):
        b.build()


def test_builder_verifies_shapes_cycles_and_delays_in_time() -> None:
    b = spikejit.GraphBuilder("g", dt=1e-3).input("x", shape=(3,))
    b.add("fc", "nn.linear", inputs=["x"], weight=np.ones((4, 2))).output("y", "fc")
    with pytest.raises(ShapeError, match=r"%fc \(nn.linear\): input f32\[3\] has 3 features"):
        b.build()
    b = spikejit.GraphBuilder("g", dt=1e-3).input("x", shape=(2,))
    b.add("a", "nn.scale", inputs=["x", "b"], scale=1.0)
    b.add("b", "nn.scale", inputs=["a"], scale=1.0).output("y", "b")
    with pytest.raises(VerifyError, match="cycle of same-step edges"):
        b.build()
    b = spikejit.GraphBuilder("g", dt=1e-3).input("x", shape=(2,))
    b.add("a", "nn.scale", scale=1.0).connect("x", "a", delay_time=1.5e-3).output("y", "a")
    with pytest.raises(VerifyError, match=r"%a \(nn.scale\): the delay of its operand %x "
                                          r"\(0.0015 s\) is 1.5 steps of dt = 0.001 s"):
        b.build()
    with pytest.raises(ParamError, match="already set to a different array"):
        (spikejit.GraphBuilder("g").input("x", shape=(2,))
         .add("a", "nn.scale", scale=spikejit.Param(1.0, name="s"))
         .add("b", "nn.scale", scale=spikejit.Param(2.0, name="s")))


def test_networkx_schema_errors() -> None:
    g = nx.DiGraph()
    g.add_node("x", op="io.input")
    with pytest.raises(FrontendError, match=r"io.input node 'x' needs attrs=\{'shape'"):
        spikejit.from_networkx(g)
    g = nx.DiGraph()
    g.add_node("x", shape=[3])
    with pytest.raises(FrontendError, match=r"node 'x' has no 'op' attribute"):
        spikejit.from_networkx(g)
    g = nx.DiGraph()
    g.add_node("x", op="io.input", attrs={"shape": [2]})
    g.add_node("s", op="nn.scale", params={"scale": 1.0}, attrs={"scale": 2.0})
    with pytest.raises(FrontendError, match=r"node 's': \['scale'\] given both"):
        spikejit.from_networkx(g)
    with pytest.raises(FrontendError, match="expected a networkx DiGraph"):
        spikejit.from_networkx(nx.Graph())


def test_snnax_modes_and_structure_errors() -> None:
    lif = spikejit.Layer("snn.lif", tau=0.01, v_threshold=1.0)
    scale = spikejit.Layer("nn.scale", scale=np.full(2, 2.0))
    # SNNAX's docs example: layer 1 reads layers 0 (earlier) and 2 (later), 3 reads itself.
    layers = [scale, lif, scale, lif, scale]
    structure = {"input_layer_ids": [[0], [], [], [0, 1], []], "final_layer_ids": [4],
                 "input_connectivity": [[], [0, 2], [1], [2, 3], [3]]}
    graph, params = spikejit.from_layers(layers, input_shapes=[(2,), (2,)], dt=1e-3,
                                         **structure)
    assert [n.id for n in graph.nodes] == ["input0", "input1", "layer0", "layer1", "layer2",
                                           "layer3", "layer4", "output0"]
    assert graph.node("layer1").inputs == (Use("layer0"), Use("layer2", 1))
    assert graph.node("layer3").inputs == (Use("layer2"), Use("layer3", 1), Use("input0"),
                                           Use("input1"))
    delayed, _ = spikejit.from_layers(layers, input_shapes=[(2,), (2,)], dt=1e-3,
                                      delayed=True, **structure)
    assert delayed.node("layer1").inputs == (Use("layer0", 1), Use("layer2", 1))
    assert delayed.node("layer0").inputs == (Use("input0"),)
    x = {"input0": np.full((10, 1, 2), 10.0, np.float32),
         "input1": np.zeros((10, 1, 2), np.float32)}
    first = []
    for g in (graph, delayed):
        want = interpret(g, params, x, dtype=np.float32)
        np.testing.assert_allclose(np.asarray(spikejit.compile((g, params))(x)), want)
        first.append(int(np.nonzero(want[:, 0, 0])[0][0]))
    # input0 drives layer3 directly, which fires at t = 0 in both modes; the hop
    # layer3 -> layer4 is same-step by default and costs one step in the delayed mode.
    assert first == [0, 1]
    seq, _ = spikejit.from_layers([scale, lif], input_shapes=(2,), dt=1e-3,
                                  **spikejit.sequential_structure(2))
    assert print_graph(seq).count("%layer0") == 2
    with pytest.raises(FrontendError, match=r"input_connectivity must have one entry per layer "
                                            r"\(2\), got 1"):
        spikejit.from_layers([scale, lif], input_layer_ids=[[0], []], final_layer_ids=[1],
                             input_connectivity=[[]], input_shapes=(2,))
    with pytest.raises(FrontendError, match=r"input_connectivity of layer 1 \(%layer1\) names "
                                            r"5, expected an integer in \[0, 2\)"):
        spikejit.from_layers([scale, lif], input_layer_ids=[[0], []], final_layer_ids=[1],
                             input_connectivity=[[], [5]], input_shapes=(2,))
    with pytest.raises(FrontendError, match=r"layer 1 \(%layer1\) has no input"):
        spikejit.from_layers([scale, lif], input_layer_ids=[[0], []], final_layer_ids=[1],
                             input_connectivity=[[], []], input_shapes=(2,))
    with pytest.raises(FrontendError, match="num_layers = 3, but 2 layers given"):
        spikejit.from_layers([scale, lif], num_layers=3, input_shapes=(2,),
                             **spikejit.sequential_structure(2))
