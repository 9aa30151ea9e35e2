"""from_nir refuses what is really wrong, with messages naming the file, node, field or edge;
damaged files never escape as bare exceptions."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest
from helpers_nir import F32, arr, chain, lif, primitive_graphs, write_h5

import spikejit
from spikejit.errors import FrontendError, ModelFileError, OptionError, SpikejitError


def test_missing_dt_says_why_and_names_the_nodes() -> None:
    g = chain(("lif", lif(3)), ("li", nir.LI(tau=arr(1, 1, 1), r=arr(1, 1, 1),
                                             v_leak=arr(0, 0, 0))))
    with pytest.raises(FrontendError) as info:
        spikejit.from_nir(g)
    msg = str(info.value)
    assert "dt is required" in msg and "NIR files carry no time step" in msg
    assert "'lif', 'li'" in msg


def test_missing_dt_mentions_metadata_from_spikejit_files(tmp_path: Path) -> None:
    graph, params = spikejit.from_nir(chain(("lif", lif(3))), dt=1e-3)
    path = tmp_path / "m.nir"
    spikejit.write_nir(path, graph, params)
    with pytest.raises(FrontendError, match=r"metadata mentions dt=.*0\.001"):
        spikejit.from_nir(path)


def test_delay_that_is_not_whole_steps() -> None:
    with pytest.raises(FrontendError, match=r"node 'd' \(Delay -> snn.delay\): delay 0.001 s "
                                            r"is not a whole number of steps of dt=0.0003"):
        spikejit.from_nir(primitive_graphs()["Delay"], dt=3e-4)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"dt": -1.0}, "dt must be a finite number > 0"),
    ({"dt": "1e-3"}, "dt must be a finite number > 0"),
    ({"dt": float("nan")}, "dt must be a finite number > 0"),
    ({"dt": 1e-3, "reset": "zero"}, "reset must be one of 'value', 'subtract'"),
    ({"dt": 1e-3, "cuba_current": "mid"}, "cuba_current must be one of"),
    ({"dt": 1e-3, "method": "rk4"}, "method must be one of 'euler', 'exp'"),
    ({"dt": 1e-3, "input_shape": {"nope": (3,)}}, "names 'nope', which is not an Input"),
])
def test_bad_options(kwargs: dict, match: str) -> None:
    with pytest.raises(OptionError, match=match):
        spikejit.from_nir(chain(("lif", lif(3))), **kwargs)


def test_shape_mismatch_names_the_node_and_both_ends_of_the_edge() -> None:
    g = chain(("fc1", nir.Affine(weight=np.ones((4, 3), F32), bias=np.zeros(4, F32))),
              ("fc2", nir.Linear(weight=np.ones((2, 5), F32))), out=(2,))
    with pytest.raises(FrontendError) as info:
        spikejit.from_nir(g)
    msg = str(info.value)
    assert "edge 'fc1' -> 'fc2' (f32[4])" in msg
    assert "node 'fc2' (Linear -> nn.linear)" in msg and "expects 5" in msg


def test_fan_in_shape_mismatch_names_both_edges() -> None:
    g = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([3])),
               "a": nir.Linear(weight=np.ones((2, 3), F32)),
               "b": nir.Linear(weight=np.ones((4, 3), F32)),
               "s": nir.Scale(scale=arr(1, 1)), "y": nir.Output(output_type=np.array([2]))},
        edges=[("x", "a"), ("x", "b"), ("a", "s"), ("b", "s"), ("s", "y")], type_check=False)
    with pytest.raises(FrontendError, match=r"edges 'a' -> 's' \(f32\[2\]\), 'b' -> 's' "
                                            r"\(f32\[4\]\): .*operands have different shapes"):
        spikejit.from_nir(g)


def test_declared_shapes_are_checked() -> None:
    g = chain(("c", nir.Conv2d(input_shape=(7, 7), weight=np.ones((2, 1, 3, 3), F32), stride=1,
                               padding=0, dilation=1, groups=1, bias=np.zeros(2, F32))),
              shape=(1, 5, 5), out=(2, 3, 3))
    with pytest.raises(FrontendError, match=r"edge 'input' -> 'c' \(f32\[1,5,5\]\).*declares "
                                            r"input_shape \[7, 7\], but the input gives \[5, 5\]"):
        spikejit.from_nir(g)
    with pytest.raises(FrontendError, match=r"edge 's' -> 'output'.*declares Output shape \[4\]"):
        spikejit.from_nir(chain(("s", nir.Scale(scale=arr(1, 1, 1))), out=(4,)))


def test_parameter_that_fits_no_layer() -> None:
    node = lif(5)
    with pytest.raises(FrontendError, match=r"node 'lif' \(LIF -> snn.lif\): parameter 'tau' "
                                            r"has shape \[5\], which does not fit the layer "
                                            r"shape \[3\]"):
        spikejit.from_nir(chain(("lif", node)), dt=1e-3)


@pytest.mark.parametrize(("field", "value", "match"), [
    ("tau", arr(1e-3, 0, 1e-3), "time constant 'tau' must be > 0"),
    ("v_threshold", arr(1, np.nan, 1), "field 'v_threshold' contains NaN"),
])
def test_bad_parameter_values(field: str, value: np.ndarray, match: str) -> None:
    with pytest.raises(FrontendError, match=match):
        spikejit.from_nir(chain(("lif", lif(3, **{field: value}))), dt=1e-3)


def test_subgraph_with_two_inputs_cannot_be_addressed() -> None:
    inner = nir.NIRGraph(
        nodes={"a": nir.Input(input_type=np.array([2])), "b": nir.Input(input_type=np.array([2])),
               "s": nir.Scale(scale=arr(1, 1)), "o": nir.Output(output_type=np.array([2]))},
        edges=[("a", "s"), ("b", "s"), ("s", "o")], type_check=False)
    outer = nir.NIRGraph(nodes={"x": nir.Input(input_type=np.array([2])), "S": inner,
                                "y": nir.Output(output_type=np.array([2]))},
                         edges=[("x", "S"), ("S", "y")], type_check=False)
    with pytest.raises(FrontendError, match=r"edge 'x' -> 'S' enters subgraph 'S', which has 2 "
                                            r"inner Input nodes \('a', 'b'\)"):
        spikejit.from_nir(outer)


@pytest.mark.parametrize(("edges", "match"), [
    ([("input", "s"), ("s", "output"), ("s", "output")], "lists the edge 's' -> 'output' twice"),
    ([("input", "s"), ("s", "outptu")], "names 'outptu', which is not a node there"),
    ([("input", "s"), ("s", "output"), ("s", "input")], "ends at an Input node"),
    ([("s", "output")], r"node 's' \(Scale\) has no incoming edge"),
])
def test_bad_edges(edges: list, match: str) -> None:
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2])),
                            "s": nir.Scale(scale=arr(1, 1)),
                            "output": nir.Output(output_type=np.array([2]))},
                     edges=edges, type_check=False)
    with pytest.raises(FrontendError, match=match):
        spikejit.from_nir(g)


def test_unreachable_cycle() -> None:
    g = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([2])), "s": nir.Scale(scale=arr(1, 1)),
               "a": nir.Scale(scale=arr(1, 1)), "b": nir.Scale(scale=arr(1, 1)),
               "y": nir.Output(output_type=np.array([2]))},
        edges=[("x", "s"), ("s", "y"), ("a", "b"), ("b", "a")], type_check=False)
    with pytest.raises(FrontendError, match=r"node\(s\) 'a', 'b' cannot be reached from any Input"):
        spikejit.from_nir(g)


def test_cycle_through_zero_step_delay_is_refused() -> None:
    g = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([2])), "a": nir.Scale(scale=arr(1, 1)),
               "d": nir.Delay(delay=arr(0, 0)), "y": nir.Output(output_type=np.array([2]))},
        edges=[("x", "a"), ("a", "d"), ("d", "a"), ("a", "y")], type_check=False)
    with pytest.raises(FrontendError, match=r"cycle 'a' -> 'd' -> 'a' has no delay.*Delay node "
                                            r"with a delay of 0 steps"):
        spikejit.from_nir(g, dt=1e-3)


def test_none_left_by_an_exporter_is_named() -> None:
    g = chain(("s", nir.Scale(scale=arr(1, 1, 1))))
    g.nodes["s"] = None
    with pytest.raises(FrontendError, match=r"node 's' is NoneType, not a NIR node"):
        spikejit.from_nir(g)


def test_source_that_is_not_a_graph() -> None:
    with pytest.raises(FrontendError, match=r"expected a nir\.NIRGraph"):
        spikejit.from_nir(42)


# -- files -------------------------------------------------------------------------------

def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"NIR file '.*nope.nir' does not exist"):
        spikejit.from_nir(tmp_path / "nope.nir")


def test_not_an_hdf5_file(tmp_path: Path) -> None:
    path = tmp_path / "text.nir"
    path.write_text("graph @main {}")
    with pytest.raises(ModelFileError, match=r"text.nir' is not a readable HDF5 file"):
        spikejit.from_nir(path)


def test_hdf5_without_the_nir_layout(tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.ones(3))
    with pytest.raises(ModelFileError, match="has no '/node' group"):
        spikejit.from_nir(path)


@pytest.mark.parametrize(("node", "exc", "match"), [
    ({"shape": np.array([2])}, ModelFileError, r"node group /node/nodes/bad has no 'type'"),
    ({"type": "Softmax"}, FrontendError, r"/node/nodes/bad has type 'Softmax', which NIR 1.0.8 "
                                         r"does not define; supported: .*LIF"),
    ({"type": "Scale", "scale": "big"}, FrontendError, r"field 'scale' must hold real numbers"),
    ({"type": "Scale"}, FrontendError, r"node 'bad' \(Scale -> nn.scale\): required field "
                                       r"'scale' is missing"),
    ({"type": "SumPool2d", "kernel_size": np.array([2.5, 2])}, FrontendError,
     r"field 'kernel_size' must hold integers"),
])
def test_bad_node_in_a_file(tmp_path: Path, node: dict, exc: type, match: str) -> None:
    path = write_h5(tmp_path / "bad.nir", {"input": {"type": "Input", "shape": np.array([2])},
                                           "bad": node,
                                           "output": {"type": "Output", "shape": np.array([2])}},
                    [("input", "bad"), ("bad", "output")])
    with pytest.raises(exc, match=match):
        spikejit.from_nir(path)


def test_damaged_files_give_spikejit_errors(tmp_path: Path) -> None:
    graph, params = spikejit.from_nir(chain(("lif", lif(3))), dt=1e-3)
    good = tmp_path / "good.nir"
    spikejit.write_nir(good, graph, params)
    data = good.read_bytes()
    rng = np.random.default_rng(0)
    cases = [data[: len(data) // k] for k in (2, 3, 5, 9)]
    for _ in range(24):
        b = bytearray(data)
        start = int(rng.integers(0, len(b) - 16))
        b[start:start + 16] = bytes(16) if rng.random() < 0.5 else rng.bytes(16)
        cases.append(bytes(b))
    for i, blob in enumerate(cases):
        path = tmp_path / f"bad{i}.nir"
        path.write_bytes(blob)
        try:
            spikejit.from_nir(path, dt=1e-3)
        except SpikejitError as e:
            assert str(path) in str(e), str(e)  # every message names the file


def test_damaged_global_heap_is_refused_before_hdf5_reads_it(tmp_path: Path) -> None:
    # Zeroing an object header inside the global heap makes the HDF5 library loop forever.
    graph, params = spikejit.from_nir(chain(("lif", lif(3))), dt=1e-3)
    path = tmp_path / "heap.nir"
    spikejit.write_nir(path, graph, params)
    data = bytearray(path.read_bytes())
    heap = data.find(b"GCOL")
    data[heap + 16 + 32:heap + 16 + 48] = bytes(16)
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"heap.nir' is damaged: the HDF5 global heap"):
        spikejit.from_nir(path, dt=1e-3)
