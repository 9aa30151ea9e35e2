"""Verifier and op-validation errors: whole messages, node named, IR excerpt shown."""

from __future__ import annotations

import numpy as np
import pytest

from spikejit.errors import AttributeError_, ParamError, ShapeError, SpikejitError, VerifyError
from spikejit.ir import Graph, GraphAttrs, Node, ParamRef, TensorType, Use, infer_types, verify
from spikejit.ir import ops as O
from spikejit.ir.verify import verify_params


def f32(*shape: int) -> TensorType:
    return TensorType(tuple(shape))


def rnn(rec_delay: int = 1, rec_in: int = 4) -> Graph:
    return Graph(
        (
            Node("x", O.Input(type=f32(3))),
            Node("fc", O.Affine(weight=ParamRef("fc.weight", f32(4, 3)),
                                bias=ParamRef("fc.bias", f32(4))), (Use("x"),)),
            Node("lif", O.LIF(tau=ParamRef("lif.tau", f32(4)),
                              v_threshold=ParamRef("lif.v_threshold", f32())),
                 (Use("fc"), Use("rec", rec_delay)), loc="nir:lif"),
            Node("rec", O.Linear(weight=ParamRef("rec.weight", f32(4, rec_in))), (Use("lif"),)),
            Node("y", O.Output(), (Use("lif"),)),
        ),
        attrs=GraphAttrs(dt=1e-3),
    )


def test_valid_graph_verifies_and_types() -> None:
    g = infer_types(rnn())
    verify(g)
    assert [str(n.type) for n in g.nodes] == [
        "f32[3]", "f32[4]", "spike<f32[4]>", "f32[4]", "spike<f32[4]>"]


def test_same_step_cycle_message() -> None:
    with pytest.raises(VerifyError) as e:
        verify(rnn(rec_delay=0))
    assert str(e.value) == (
        "%lif (snn.lif) from nir:lif: is on a cycle of same-step edges (%lif -> %rec -> %lif); "
        "every cycle needs a delay (an edge read at [t-1] or a snn.delay node)\n"
        "  %x = io.input() {type = f32[3]}\n"
        "  %fc = nn.affine(%x) {weight = @fc.weight: f32[4,3], bias = @fc.bias: f32[4]}\n"
        "  %lif = snn.lif(%fc, %rec) {tau = @lif.tau: f32[4], "
        "v_threshold = @lif.v_threshold: f32[]}\n"
        "  ^^^^ is on a cycle of same-step edges (%lif -> %rec -> %lif); every cycle needs a delay "
        "(an edge read at [t-1] or a snn.delay node)\n"
        "  %rec = nn.linear(%lif) {weight = @rec.weight: f32[4,4]}\n"
        "  %y = io.output(%lif)"
    )


def test_shape_mismatch_names_node_and_expected() -> None:
    with pytest.raises(ShapeError) as e:
        verify(rnn(rec_in=5))
    assert str(e.value).splitlines()[0] == (
        "%rec (nn.linear): input spike<f32[4]> has 4 features on its last axis, but weight "
        "@rec.weight expects 5 (weight shape [4, 5])")
    assert e.value.node_id == "rec" and e.value.op_name == "nn.linear"


def test_missing_operand() -> None:
    g = rnn()
    bad = g.with_nodes([*g.nodes[:4], Node("y", O.Output(), (Use("nope"),))])
    with pytest.raises(VerifyError) as e:
        verify(bad)
    assert str(e.value).splitlines()[0] == ("%y (io.output): operand %nope is not a node of "
                                            "the graph")


def test_arity() -> None:
    g = rnn()
    bad = g.with_nodes([*g.nodes[:4], Node("y", O.Output(), ())])
    with pytest.raises(VerifyError,
                       match=r"^%y \(io.output\): has 0 operands, expected at least 1"):
        verify(bad)


def test_duplicate_ids() -> None:
    g = rnn()
    with pytest.raises(VerifyError, match=r"^%fc \(nn.affine\): node id is used by more"):
        verify(g.with_nodes([*g.nodes, g.nodes[1]]))


def test_dangling_node() -> None:
    g = rnn()
    island = Node("z", O.Scale(scale=ParamRef("z.scale", f32())), (Use("z", 1),))
    with pytest.raises(VerifyError,
                       match=r"^%z \(nn.scale\): is not reachable from any io.input"):
        verify(g.with_nodes([*g.nodes, island]))


def test_no_inputs_or_outputs() -> None:
    g = rnn()
    with pytest.raises(VerifyError, match=r"^graph @main has no io.output node$"):
        verify(g.with_nodes(g.nodes[:4]))
    with pytest.raises(VerifyError, match="has no nodes"):
        verify(g.with_nodes([]))


def test_dt_required_for_neurons() -> None:
    g = rnn().replace(attrs=GraphAttrs())
    with pytest.raises(VerifyError, match=r"^%lif \(snn.lif\) from nir:lif: needs the time step"):
        verify(g)


def test_recorded_type_must_match() -> None:
    g = infer_types(rnn())
    nodes = list(g.nodes)
    nodes[1] = nodes[1].replace(type=f32(5))
    with pytest.raises(ShapeError, match=r"records type f32\[5\], but its operands give f32\[4\]"):
        verify(g.with_nodes(nodes))


def test_param_declared_twice_differently() -> None:
    g = rnn()
    nodes = list(g.nodes)
    nodes[3] = Node("rec", O.Linear(weight=ParamRef("fc.weight", f32(4, 4))), (Use("lif"),))
    with pytest.raises(VerifyError,
                       match=r"declared f32\[4,4\], but %fc declares it f32\[4,3\]"):
        verify(g.with_nodes(nodes))


def test_fan_in_shapes_must_agree() -> None:
    g = rnn()
    nodes = list(g.nodes)
    nodes[4] = Node("y", O.Output(), (Use("lif"), Use("x")))
    with pytest.raises(ShapeError, match="operands have different shapes: %lif gives spike<f32"):
        verify(g.with_nodes(nodes))


def test_verify_params() -> None:
    g = infer_types(rnn())
    params = {
        "fc.weight": np.zeros((4, 3), np.float32), "fc.bias": np.zeros(4, np.float32),
        "lif.tau": np.ones(4, np.float32),
        "lif.v_threshold": np.float32(1.0) * np.ones((), np.float32),
        "rec.weight": np.zeros((4, 4), np.float32),
    }
    verify(g, params)
    with pytest.raises(ParamError) as e:
        verify_params(g, {k: v for k, v in params.items() if k != "fc.bias"})
    assert str(e.value) == "missing parameter(s) @fc.bias (used by %fc)"
    with pytest.raises(ParamError) as e:
        verify_params(g, {**params, "extra": np.zeros(1)})
    assert str(e.value) == ("unexpected parameter(s) @extra: no node of graph @main "
                            "references them")
    with pytest.raises(ParamError) as e:
        verify_params(g, {**params, "fc.weight": np.zeros((3, 4))})
    assert str(e.value) == ("parameter @fc.weight of %fc: expected f32[4,3] (float32), "
                            "got float64 array of shape [3, 4]")
    with pytest.raises(ParamError, match="expected an array f32\\[4\\], got list"):
        verify_params(g, {**params, "fc.bias": [0, 0, 0, 0]})


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: O.Conv2d(weight=ParamRef("w", f32(4, 2, 3))),
         "nn.conv2d: weight @w must be [C_out, C_in/groups, K0, K1], got f32[4,2,3]"),
        (lambda: O.Conv1d(weight=ParamRef("w", f32(4, 2, 3)), padding="full"),
         "nn.conv1d: attribute 'padding' must be 'same', 'valid' or integers, got 'full'"),
        (lambda: O.Conv1d(weight=ParamRef("w", f32(4, 2, 3)), groups=3),
         "nn.conv1d: C_out = 4 of weight @w is not divisible by groups = 3"),
        (lambda: O.Conv2d(weight=ParamRef("w", f32(4, 2, 3, 3)), stride=(1, 0)),
         "nn.conv2d: attribute 'stride' must hold integers >= 1, got [1, 0]"),
        (lambda: O.SumPool2d(kernel_size=(2, 2, 2)),
         "nn.sumpool2d: attribute 'kernel_size' must be an integer or a list of 2 integers, "
         "got (2, 2, 2)"),
        (lambda: O.Delay(steps=(1, -1)), "snn.delay: attribute 'steps' must hold integers >= 0, "
                                          "got [1, -1]"),
        (lambda: O.LIF(tau=ParamRef("t", f32()), v_threshold=ParamRef("v", f32()), reset="zero"),
         "snn.lif: attribute 'reset' must be one of 'value', 'subtract', 'none' or omitted "
         "(graph default), got 'zero'"),
        (lambda: O.Affine(weight=ParamRef("w", f32(4)), bias=ParamRef("b", f32(4))),
         "nn.affine: weight @w must have at least 2 dimensions, got f32[4]"),
        (lambda: O.Linear(weight=1.0),
         "nn.linear: attribute 'weight' must be a parameter reference (@name: type) or omitted, "
         "got 1.0"),
        (lambda: O.LIF(tau=None, v_threshold=ParamRef("v", f32())),
         "snn.lif: parameter 'tau' is required (@name: type), got None"),
        (lambda: O.Affine(weight=None, bias=ParamRef("b", f32(4))),
         "nn.affine: parameter 'weight' is required (@name: type), got None"),
    ],
)
def test_op_attribute_errors(build, message) -> None:
    with pytest.raises(AttributeError_) as e:
        build()
    assert str(e.value) == message


def test_value_errors_are_spikejit_errors() -> None:
    with pytest.raises(SpikejitError, match="dimension -1"):
        TensorType((-1,))
    with pytest.raises(SpikejitError, match="dtype 'i32'"):
        TensorType((1,), "i32")
    with pytest.raises(SpikejitError, match="dt must be finite and > 0"):
        GraphAttrs(dt=0.0)
    with pytest.raises(SpikejitError, match="reset must be one of 'value', 'subtract'"):
        GraphAttrs(reset="zero")
    with pytest.raises(SpikejitError, match="delay -1 must be an integer >= 0"):
        Use("a", -1)


def test_graph_is_hashable_and_value_equal() -> None:
    a, b = rnn(), rnn()
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != rnn(rec_delay=2)


def test_to_networkx_keeps_delays() -> None:
    import networkx as nx

    g = rnn().to_networkx()
    assert g.number_of_nodes() == 5
    assert g.get_edge_data("rec", "lif")[0]["delay"] == 1
    assert len(list(nx.strongly_connected_components(g))) == 4
