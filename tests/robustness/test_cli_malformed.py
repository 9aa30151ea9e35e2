"""The CLI on malformed model files: exit status 2 and one line ``error: ...`` that names
the file and the node at fault (for syntax errors in IR text: the line and column).

Each fixture is built here, from scratch, with the one defect its name says; the files are
small and known not to hang the HDF5 library, so they run in this process (under a time
limit) through typer's test runner.
"""

from __future__ import annotations

import io
import itertools
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nir
import numpy as np
import pytest
from helpers_nir import F32, arr, lif, write_h5
from helpers_robustness import save_model, time_limit
from typer.testing import CliRunner

import spikejit
from spikejit.cli import app

runner = CliRunner()
Builder = Callable[[Path], Path]


def _layer(weight: Any = None, bias: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Affine"}
    if weight is not None:
        out["weight"] = weight
    if bias is not None:
        out["bias"] = bias
    return out


def _h5(path: Path, mid: dict[str, dict[str, Any]], edges: list[tuple[str, str]],
        width: int = 3) -> Path:
    nodes = {"x": {"type": "Input", "shape": np.array([3])}, **mid,
             "y": {"type": "Output", "shape": np.array([width])}}
    return write_h5(path, nodes, edges)


def _chain(*names: str) -> list[tuple[str, str]]:
    return list(itertools.pairwise(["x", *names, "y"]))


def _lif_fields(**over: Any) -> dict[str, Any]:
    fields = {"type": "LIF", "tau": np.full(3, 5e-3, F32), "r": np.ones(3, F32),
              "v_leak": np.zeros(3, F32), "v_threshold": np.ones(3, F32),
              "v_reset": np.zeros(3, F32)}
    return {**fields, **over}


W, B = np.ones((3, 3), F32), np.zeros(3, F32)


def negative_tau(p: Path) -> Path:
    return _h5(p, {"lif": _lif_fields(tau=arr(5e-3, -1e-3, 5e-3))}, _chain("lif"))


def nan_weight(p: Path) -> Path:
    w = W.copy()
    w[1, 2] = np.nan
    return _h5(p, {"fc": _layer(w, B)}, _chain("fc"))


def inf_bias(p: Path) -> Path:
    return _h5(p, {"fc": _layer(W, arr(0, np.inf, 0))}, _chain("fc"))


def shape_mismatch(p: Path) -> Path:
    return _h5(p, {"fc": _layer(np.ones((4, 3), F32), np.zeros(4, F32)),
                   "fc2": {"type": "Linear", "weight": np.ones((2, 5), F32)}},
               _chain("fc", "fc2"), width=2)


def edge_to_missing_node(p: Path) -> Path:
    return _h5(p, {"lif": _lif_fields()}, [*_chain("lif"), ("lif", "ghost")])


def fractional_delay(p: Path) -> Path:
    return _h5(p, {"d": {"type": "Delay", "delay": arr(1.5e-3, 1e-3, 0)}}, _chain("d"))


def string_weight(p: Path) -> Path:
    return _h5(p, {"fc": _layer("abc", B)}, _chain("fc"))


def missing_weight(p: Path) -> Path:
    return _h5(p, {"fc": _layer(bias=B)}, _chain("fc"))


def unknown_type(p: Path) -> Path:
    return _h5(p, {"sm": {"type": "Softmax", "dim": np.array(0)}}, _chain("sm"))


def duplicate_edge(p: Path) -> Path:
    return _h5(p, {"lif": _lif_fields()}, [*_chain("lif"), ("lif", "y")])


def no_incoming_edge(p: Path) -> Path:
    return _h5(p, {"lif": _lif_fields(), "lonely": _lif_fields()},
               [*_chain("lif"), ("lonely", "y")])


def huge_weight(p: Path) -> Path:
    import h5py

    _h5(p, {"fc": _layer(W, B)}, _chain("fc"))
    with h5py.File(p, "r+") as f:
        del f["node/nodes/fc/weight"]
        f.create_dataset("node/nodes/fc/weight", shape=(2**20, 2**20), dtype="f4",
                         chunks=(64, 64), compression="gzip", fillvalue=1.0)
    return p


def two_inner_inputs(p: Path) -> Path:
    inner = nir.NIRGraph(
        nodes={"a": nir.Input(input_type=np.array([3])), "b": nir.Input(input_type=np.array([3])),
               "s": nir.Scale(scale=np.ones(3, F32)), "o": nir.Output(output_type=np.array([3]))},
        edges=[("a", "s"), ("b", "s"), ("s", "o")], type_check=False)
    outer = nir.NIRGraph(nodes={"x": nir.Input(input_type=np.array([3])), "S": inner,
                                "lif": lif(3), "y": nir.Output(output_type=np.array([3]))},
                         edges=[("x", "S"), ("S", "lif"), ("lif", "y")], type_check=False)
    nir.write(p, outer)
    return p


def huge_input(p: Path) -> Path:
    # A valid graph without parameters whose one layer is 10^12 values per sample: the
    # CLI must refuse to generate (or run) it, not allocate it.
    nodes = {"x": {"type": "Input", "shape": np.array([10**6, 10**6])},
             "y": {"type": "Output", "shape": np.array([10**6, 10**6])}}
    return write_h5(p, nodes, [("x", "y")])


# -- saved models ------------------------------------------------------------------------------

def _edit_saved(p: Path, edit: Callable[[dict[str, bytes], list[str]], None]) -> Path:
    save_model(p)
    with zipfile.ZipFile(p) as z:
        members = {n: z.read(n) for n in z.namelist()}
    header = json.loads(np.lib.format.read_array(
        io.BytesIO(members["__spikejit__.npy"])).tobytes().decode())
    edit(members, header["params"])
    with zipfile.ZipFile(p, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return p


def _npy(array: Any) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array))
    return buf.getvalue()


def saved_wrong_shape(p: Path) -> Path:
    def edit(m: dict[str, bytes], names: list[str]) -> None:
        m[f"param_{names.index('lif.tau')}.npy"] = _npy(np.ones(7, F32))
    return _edit_saved(p, edit)


def saved_huge_param(p: Path) -> Path:
    def edit(m: dict[str, bytes], names: list[str]) -> None:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False,
                                                   "shape": (2**20, 2**20)})
        m[f"param_{names.index('fc.weight')}.npy"] = buf.getvalue()
    return _edit_saved(p, edit)


def saved_missing_param(p: Path) -> Path:
    def edit(m: dict[str, bytes], names: list[str]) -> None:
        i = names.index("lif.tau")
        header = {"format": "spikejit-model", "version": 1, "semantics": "nir-euler-v1",
                  "params": [n for n in names if n != "lif.tau"]}
        del m[f"param_{i}.npy"]
        for j in range(i + 1, len(names)):  # renumber the members after the one dropped
            m[f"param_{j - 1}.npy"] = m.pop(f"param_{j}.npy")
        m["__spikejit__.npy"] = _npy(np.frombuffer(json.dumps(header).encode(), np.uint8))
    return _edit_saved(p, edit)


def saved_bad_graph(p: Path) -> Path:
    def edit(m: dict[str, bytes], names: list[str]) -> None:
        ir = np.lib.format.read_array(io.BytesIO(m["__ir__.npy"])).tobytes().decode()
        ir = ir.replace("weight = @rec.weight: f32[4,4]", "weight = @rec.weight: f32[4,5]")
        m["__ir__.npy"] = _npy(np.frombuffer(ir.encode(), np.uint8))
    return _edit_saved(p, edit)


# -- IR text -------------------------------------------------------------------------------------

HEAD = "graph @g attributes {dt = 0.001} {\n  %x = io.input() {type = f32[3]}\n"


def _text(p: Path, body: str) -> Path:
    p.write_text(HEAD + body + "}\n", encoding="utf-8")
    return p


def text_shape_mismatch(p: Path) -> Path:
    return _text(p, "  %l = nn.linear(%x) {weight = @l.weight: f32[4,5]}\n  %y = io.output(%l)\n")


def text_huge_param(p: Path) -> Path:
    return _text(p, "  %l = nn.linear(%x) {weight = @l.weight: f32[400000000000,3]}\n"
                    "  %y = io.output(%l)\n")


def text_unknown_attribute(p: Path) -> Path:
    return _text(p, "  %l = snn.lif(%x) {tau = @l.tau: f32[3], v_threshold = 1.0, colour = 2}\n"
                    "  %y = io.output(%l)\n")


def text_negative_delay(p: Path) -> Path:
    return _text(p, "  %d = snn.delay(%x) {steps = [-1, 0, 2]}\n  %y = io.output(%d)\n")


def text_dangling_operand(p: Path) -> Path:
    return _text(p, "  %l = nn.scale(%x, %z) {scale = @l.s: f32[3]}\n  %y = io.output(%l)\n")


#: fixture -> (builder, what the one error line must also contain besides the file name)
FIXTURES: dict[str, tuple[Builder, tuple[str, ...]]] = {
    "negative_tau.nir": (negative_tau, ("'lif'", "'tau'")),
    "nan_weight.nir": (nan_weight, ("'fc'", "'weight'", "NaN")),
    "inf_bias.nir": (inf_bias, ("'fc'", "'bias'", "inf")),
    "shape_mismatch.nir": (shape_mismatch, ("'fc2'", "expects 5")),
    "edge_to_missing_node.nir": (edge_to_missing_node, ("'ghost'",)),
    "fractional_delay.nir": (fractional_delay, ("'d'", "not a whole number of steps")),
    "string_weight.nir": (string_weight, ("'fc'", "'weight'")),
    "missing_weight.nir": (missing_weight, ("'fc'", "'weight' is missing")),
    "unknown_type.nir": (unknown_type, ("/node/nodes/sm", "'Softmax'")),
    "duplicate_edge.nir": (duplicate_edge, ("'lif' -> 'y' twice",)),
    "no_incoming_edge.nir": (no_incoming_edge, ("'lonely'",)),
    "huge_weight.nir": (huge_weight, ("/node/nodes/fc/weight", "4.0 TiB")),
    "two_inner_inputs.nir": (two_inner_inputs, ("subgraph 'S'", "2 inner Input nodes")),
    "huge_input.nir": (huge_input, ("%x", "would take")),
    "wrong_shape.sjit.npz": (saved_wrong_shape, ("@lif.tau of %lif", "shape [7]")),
    "huge_param.sjit.npz": (saved_huge_param, ("parameter @fc.weight", "4.0 TiB")),
    "missing_param.sjit.npz": (saved_missing_param, ("@lif.tau", "%lif")),
    "bad_graph.sjit.npz": (saved_bad_graph, ("%rec (nn.linear)",)),
    "shape_mismatch.snir": (text_shape_mismatch, ("%l (nn.linear)", "expects 5")),
    "huge_param.snir": (text_huge_param, ("@l.weight of %l", "4.4 TiB")),
    "unknown_attribute.snir": (text_unknown_attribute, ("line 3, column", "%l (snn.lif)",
                                                        "'colour'")),
    "negative_delay.snir": (text_negative_delay, ("line 3, column", "%d (snn.delay)")),
    "dangling_operand.snir": (text_dangling_operand, ("line 3, column 21",
                                                      "%z is not a node")),
}


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("malformed")
    return {name: build(d / name) for name, (build, _) in FIXTURES.items()}


def one_error_line(args: list[str]) -> str:
    with time_limit():
        result = runner.invoke(app, args)
    assert result.exit_code == 2, (args, result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


#: Fixtures that load (inspect shows them) but cannot be run.
RUN_ONLY = {"huge_input.nir"}


@pytest.mark.parametrize("name", list(FIXTURES))
def test_inspect_names_the_file_and_the_node(fixtures: dict[str, Path], name: str) -> None:
    path = fixtures[name]
    command = "run" if name in RUN_ONLY else "inspect"
    line = one_error_line([command, str(path), "--dt", "1e-3"])
    assert str(path) in line, line
    for word in FIXTURES[name][1]:
        assert word in line, f"{word!r} not in: {line}"


@pytest.mark.parametrize("name", ["negative_tau.nir", "huge_weight.nir", "wrong_shape.sjit.npz",
                                  "huge_param.snir", "huge_input.nir"])
def test_run_and_compile_fail_the_same_way_and_write_nothing(fixtures: dict[str, Path],
                                                            tmp_path: Path, name: str) -> None:
    path = fixtures[name]
    out = tmp_path / "out.npz"
    commands = (["run", str(path), "--dt", "1e-3", "--output", str(out)],
                ["bench", str(path), "--dt", "1e-3"],
                ["compile", str(path), "--dt", "1e-3", "-o", str(out)],
                ["viz", str(path), "--dt", "1e-3", "-o", str(tmp_path / "g.dot")])
    for args in commands[:2] if name in RUN_ONLY else commands:
        line = one_error_line(args)
        assert str(path) in line and FIXTURES[name][1][0] in line, line
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file


def test_every_fixture_is_also_refused_by_the_library(fixtures: dict[str, Path]) -> None:
    # The CLI adds nothing but the one-line form: read_model raises the same errors.
    from spikejit.model_io import read_model

    for name, path in fixtures.items():
        if name not in RUN_ONLY:
            with time_limit(), pytest.raises(spikejit.errors.SpikejitError):
                read_model(path, dt=1e-3)
