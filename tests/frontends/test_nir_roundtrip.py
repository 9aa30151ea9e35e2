"""to_nir / write_nir: NIR -> IR -> NIR -> IR and IR -> NIR -> IR give identical IR text and
identical params, for every primitive, nested graphs, cycles and several inputs/outputs."""

from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
import pytest
from helpers_nir import F32, arr, assert_same, chain, lif, primitive_graphs, roundtrip
from hypothesis import given, settings
from strategies import graphs, random_params

import spikejit
from spikejit.errors import FrontendError, ModelFileError
from spikejit.frontends.nir.schema import META_KEY
from spikejit.ir import SEMANTICS, Graph, GraphAttrs, Node, ParamRef, TensorType, Use, infer_types
from spikejit.ir import ops as O


@pytest.mark.parametrize("via_file", [False, True])
@pytest.mark.parametrize("kind", sorted(primitive_graphs()))
def test_every_primitive_round_trips(kind: str, via_file: bool, tmp_path: Path) -> None:
    g1, p1 = spikejit.from_nir(primitive_graphs()[kind], dt=1e-3, reset="subtract",
                               cuba_current="pre")
    g2, p2 = roundtrip(g1, p1, tmp_path if via_file else None)
    assert_same(g1, p1, g2, p2)


def _nested_recurrent() -> nir.NIRGraph:
    inner = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([2])), "lif": lif(2),
               "w_rec": nir.Affine(weight=np.array([[0, 1], [1, 0]], F32), bias=arr(0.1, 0.2)),
               "output": nir.Output(output_type=np.array([2]))},
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
        type_check=False)
    return nir.NIRGraph(
        nodes={"x1": nir.Input(input_type=np.array([3])), "x2": nir.Input(input_type=np.array([2])),
               "fc": nir.Linear(weight=np.ones((2, 3), F32)), "rec": inner,
               "d": nir.Delay(delay=arr(2e-3, 1e-3)), "y1": nir.Output(output_type=np.array([2])),
               "y2": nir.Output(output_type=np.array([2]))},
        edges=[("x1", "fc"), ("fc", "rec"), ("x2", "rec"), ("rec", "d"), ("d", "y1"),
               ("rec", "y2"), ("d", "rec")],
        type_check=False)


@pytest.mark.parametrize("via_file", [False, True])
def test_nested_recurrent_multi_io_graph_round_trips(via_file: bool, tmp_path: Path) -> None:
    g1, p1 = spikejit.from_nir(_nested_recurrent(), dt=1e-3)
    assert "rec/lif" in g1 and "%rec/w_rec[t-1]" in spikejit.print_graph(g1)
    g2, p2 = roundtrip(g1, p1, tmp_path if via_file else None)
    assert_same(g1, p1, g2, p2)


def test_nested_names_are_escaped_in_files(tmp_path: Path) -> None:
    g1, p1 = spikejit.from_nir(_nested_recurrent(), dt=1e-3)
    path = tmp_path / "nested.nir"
    spikejit.write_nir(path, g1, p1)
    raw = nir.read(path, type_check=False)
    assert "rec%2Flif" in raw.nodes and "rec/lif" not in raw.nodes
    assert ("rec%2Flif", "rec%2Fw_rec") in raw.edges


def _uses(delays: dict[str, int]) -> Graph:
    """x -> a -> b -> c -> y with back edges c -> a and b -> b of the given delays."""
    t = TensorType((2,))

    def scale(n: str) -> O.Scale:
        return O.Scale(scale=ParamRef(f"{n}.scale", TensorType((2,))))

    nodes = (
        Node("x", O.Input(type=t)),
        Node("a", scale("a"), (Use("x"), Use("c", delays["c->a"]))),
        Node("b", scale("b"), (Use("a"), Use("b", delays["b->b"]))),
        Node("c", scale("c"), (Use("b"),)),
        Node("y", O.Output(), (Use("c"),)),
    )
    return infer_types(Graph(nodes, name="loops", attrs=GraphAttrs(dt=0.5)))


@pytest.mark.parametrize(("c_a", "b_b"), [(1, 1), (2, 1), (1, 3), (2, 2)])
def test_edge_delays_the_dfs_rule_cannot_give_go_through_delay_nodes(c_a: int, b_b: int) -> None:
    g1 = _uses({"c->a": c_a, "b->b": b_b})
    p1 = random_params(g1, 1)
    exported = spikejit.to_nir(g1, p1)
    delays = [k for k, v in exported.nodes.items() if isinstance(v, nir.Delay)]
    assert len(delays) == (c_a != 1) + (b_b != 1)
    g2, p2 = roundtrip(g1, p1)
    assert_same(g1, p1, g2, p2)


def test_delayed_edge_that_is_not_a_back_edge() -> None:
    # x -> a -> y plus a delayed feed-forward use x -[t-1]-> y: not a DFS back edge.
    t = TensorType((2,))
    g1 = infer_types(Graph((
        Node("x", O.Input(type=t)),
        Node("a", O.Scale(scale=ParamRef("a.scale", t)), (Use("x"),)),
        Node("y", O.Output(), (Use("a"), Use("x", 1))),
    ), attrs=GraphAttrs(dt=1e-3)))
    p1 = {"a.scale": np.ones(2, F32)}
    g2, p2 = roundtrip(g1, p1)
    assert_same(g1, p1, g2, p2)


def test_exported_metadata_records_the_options() -> None:
    g1, p1 = spikejit.from_nir(chain(("lif", lif(3))), dt=1e-3, reset="subtract",
                               cuba_current="pre", method="exp")
    meta = spikejit.to_nir(g1, p1).metadata
    assert meta["semantics"] == SEMANTICS == "nir-euler-v1"
    assert (meta["dt"], meta["reset"], meta["cuba_current"], meta["method"]) == (
        1e-3, "subtract", "pre", "exp")
    assert json.loads(meta[META_KEY])["order"] == ["input", "lif", "output"]


def test_exported_file_passes_nirs_own_type_check(tmp_path: Path) -> None:
    # Scalar parameters are written broadcast to the layer, so nir's checks agree.
    t = TensorType((3,))
    g = infer_types(Graph((
        Node("x", O.Input(type=t)),
        Node("lif", O.LIF(tau=ParamRef("lif.tau", TensorType(())),
                          v_threshold=ParamRef("lif.v_threshold", TensorType(()))), (Use("x"),)),
        Node("y", O.Output(), (Use("lif"),)),
    ), attrs=GraphAttrs(dt=1e-3)))
    p = {"lif.tau": np.array(2e-3, F32), "lif.v_threshold": np.array(1.0, F32)}
    path = tmp_path / "lif.nir"
    spikejit.write_nir(path, g, p)
    read = nir.read(path)  # type_check=True
    np.testing.assert_array_equal(read.nodes["lif"].tau, np.full(3, 2e-3, F32))
    np.testing.assert_array_equal(read.nodes["lif"].r, np.ones(3, F32))
    g2, p2 = spikejit.from_nir(path, dt=1e-3)
    assert_same(g, p, g2, p2)


def test_reset_override_survives_only_in_spikejit_metadata() -> None:
    g1, p1 = spikejit.from_nir(chain(("lif", lif(3))), dt=1e-3)
    node = g1.node("lif")
    g1 = g1.with_nodes([n if n.id != "lif" else node.replace(op=node.op.replace(reset="none"))
                        for n in g1.nodes])
    exported = spikejit.to_nir(g1, p1)
    assert META_KEY in exported.nodes["lif"].metadata
    g2, _p2 = spikejit.from_nir(exported, dt=1e-3)
    assert g2.node("lif").op.reset == "none"
    exported.nodes["lif"].metadata = {}
    assert spikejit.from_nir(exported, dt=1e-3)[0].node("lif").op.reset is None


def test_delay_without_dt_cannot_be_written() -> None:
    g1, p1 = spikejit.from_nir(primitive_graphs()["Delay"], dt=1e-3)
    with pytest.raises(FrontendError, match=r"snn.delay %d is a delay in steps.*needs the "
                                            r"attribute dt"):
        spikejit.to_nir(g1.replace(attrs=GraphAttrs()), p1)


def test_write_to_a_missing_directory(tmp_path: Path) -> None:
    g1, p1 = spikejit.from_nir(chain(("lif", lif(3))), dt=1e-3)
    with pytest.raises(ModelFileError, match="cannot write NIR file"):
        spikejit.write_nir(tmp_path / "no" / "such" / "dir.nir", g1, p1)


def test_foreign_file_round_trip_keeps_values(tmp_path: Path) -> None:
    # NIR -> IR -> NIR: the second file describes the same network (float64 in, float32 out).
    g = chain(("fc", nir.Affine(weight=np.ones((2, 3)), bias=np.zeros(2))),
              ("lif", lif(2, tau=np.full(2, 3e-3))), out=(2,))
    g1, p1 = spikejit.from_nir(g, dt=1e-3)
    out = spikejit.to_nir(g1, p1)
    np.testing.assert_array_equal(out.nodes["lif"].tau, np.full(2, 3e-3, F32))
    assert out.edges == [("input", "fc"), ("fc", "lif"), ("lif", "output")]


# Every op NIR can express (the strategies may grow ops NIR has no primitive for).
NIR_OPS = ("affine", "linear", "scale", "threshold", "i", "if", "li", "lif", "cuba_li",
           "cuba_lif", "delay", "flatten", "conv1d", "conv2d", "sumpool2d", "avgpool2d")


@settings(max_examples=25, deadline=None)
@given(graphs(odd_names=True, ops=NIR_OPS))
def test_ir_to_nir_to_ir_is_identical(graph: Graph) -> None:
    params = random_params(graph, 0)
    g2, p2 = roundtrip(graph, params)
    assert_same(infer_types(graph), params, g2, p2)


@pytest.mark.slow
@settings(max_examples=15, deadline=None)
@given(graphs(odd_names=True, ops=NIR_OPS))
def test_ir_to_nir_file_to_ir_is_identical(graph: Graph) -> None:
    import tempfile

    params = random_params(graph, 1)
    with tempfile.TemporaryDirectory() as d:
        g2, p2 = roundtrip(graph, params, Path(d))
        nir.read(Path(d) / "roundtrip.nir", type_check=False)  # a valid file for nir too
    assert_same(infer_types(graph), params, g2, p2)
    # ... and NIR -> IR -> NIR -> IR from there on.
    g3, p3 = roundtrip(g2, p2)
    assert_same(g2, p2, g3, p3)


def test_dtypes_names_and_input_types_survive(tmp_path: Path) -> None:
    import ml_dtypes

    g1 = infer_types(Graph((
        Node("x", O.Input(type=TensorType((3,), "f64", True))),
        Node("s", O.Scale(scale=ParamRef("shared_w", TensorType((3,), "bf16"))), (Use("x"),)),
        Node("y", O.Output(), (Use("s"),)),
    ), name="typed"))
    p1 = {"shared_w": np.array([1, 2, 3], ml_dtypes.bfloat16)}
    g2, p2 = roundtrip(g1, p1, tmp_path)
    assert_same(g1, p1, g2, p2)
