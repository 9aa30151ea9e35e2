"""The command line, driven through its real entry points (typer runner and a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nir
import numpy as np
import pytest
from typer.testing import CliRunner

from spikejit.cli import app

runner = CliRunner()


def rnn_nir(path: Path) -> Path:
    """A small recurrent NIR model: Affine -> LIF <-> Linear, LI readout."""
    rng = np.random.default_rng(0)
    n_in, n = 3, 5
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([n_in])),
            "fc": nir.Affine(weight=rng.normal(0, 1, (n, n_in)).astype(np.float32),
                             bias=np.full(n, 0.2, np.float32)),
            "lif": nir.LIF(tau=np.full(n, 5e-3, np.float32), r=np.full(n, 1.0, np.float32),
                           v_leak=np.zeros(n, np.float32), v_threshold=np.full(n, 0.3, np.float32)),
            "rec": nir.Linear(weight=rng.normal(0, 0.3, (n, n)).astype(np.float32)),
            "ro": nir.Linear(weight=rng.normal(0, 1, (2, n)).astype(np.float32)),
            "li": nir.LI(tau=np.full(2, 1e-2, np.float32), r=np.ones(2, np.float32),
                         v_leak=np.zeros(2, np.float32)),
            "output": nir.Output(output_type=np.array([2])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "ro"),
               ("ro", "li"), ("li", "output")],
    )
    nir.write(path, graph)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rnn_nir(tmp_path_factory.mktemp("cli") / "rnn.nir")


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_version_and_help() -> None:
    code, out, _ = invoke("--version")
    assert code == 0 and out.startswith("spikejit ")
    for cmd in ("run", "inspect", "compile", "viz", "bench"):
        code, out, _ = invoke(cmd, "--help")
        assert code == 0 and "Usage" in out, cmd


def test_run_writes_outputs_and_traces(model: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "y.npz"
    code, out, err = invoke("run", str(model), "--dt", "1e-3", "--steps", "30", "--batch", "2",
                            "--trace", "lif", "--output", str(out_file))
    assert code == 0, err
    assert "compile: XLA" in out and "%output" in out and "spikes" not in err
    data = np.load(out_file)
    assert data["output"].shape == (30, 2, 2)
    assert data["trace/lif/out"].shape == (30, 2, 5)
    assert data["trace/lif/v"].shape == (30, 2, 5)


def test_chunked_run_equals_one_shot(model: Path, tmp_path: Path) -> None:
    whole, chunked = tmp_path / "whole.npz", tmp_path / "chunked.npz"
    for path, chunk in ((whole, "1000"), (chunked, "7")):
        code, _, err = invoke("run", str(model), "--dt", "1e-3", "--steps", "40",
                              "--chunk", chunk, "--output", str(path), "--trace", "lif")
        assert code == 0, err
    a, b = np.load(whole), np.load(chunked)
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])


def test_run_with_input_file(model: Path, tmp_path: Path) -> None:
    x = (np.random.default_rng(1).random((12, 3, 3)) < 0.5).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out, err = invoke("run", str(model), "--dt", "1e-3", "--input", str(tmp_path / "x.npy"))
    assert code == 0, err
    assert "[12, 3, 2]" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.nir", "--dt", "1e-3"], "error: missing.nir: no such file"),
        (["run", "{model}"], "error: "),  # no --dt for a model with dynamics
        (["run", "{model}", "--dt", "1e-3", "--input", "{bad}"],
         "error: {bad}: input %input has shape [4, 2, 7], expected [T, B, 3]"),
        (["run", "{model}", "--dt", "1e-3", "--trace", "nope"],
         "error: --trace nope: no node %nope in the model"),
        (["inspect", "{model}", "--dt", "1e-3", "--after", "nope"],
         "error: --after nope: no such pass in the pipeline"),
        (["viz", "{model}", "--dt", "1e-3", "-o", "{tmp}/g.png"],
         "error: -o {tmp}/g.png: expected a .dot or .svg file name"),
        (["run", "{garbage}", "--dt", "1e-3"], "error: "),
    ],
)
def test_user_errors_exit_2_with_one_line(model: Path, tmp_path: Path, args: list[str],
                                           message: str) -> None:
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 2, 7), np.float32))
    garbage = tmp_path / "garbage.snir"
    garbage.write_text("graph @g {\n  %x = io.nope()\n}\n")
    subst = {"model": str(model), "bad": str(bad), "tmp": str(tmp_path), "garbage": str(garbage)}
    args = [a.format(**subst) for a in args]
    code, out, err = invoke(*args)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.format(**subst)), err
    assert "Traceback" not in err


def test_debug_shows_traceback(model: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "spikejit", "--debug", "run", str(model)],
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_inspect_text_json_dot_and_after_all(model: Path) -> None:
    code, text, err = invoke("inspect", str(model), "--dt", "1e-3")
    assert code == 0, err
    assert text.startswith("graph @") and "%rec[t-1]" in text
    code, js, _ = invoke("inspect", str(model), "--dt", "1e-3", "--format", "json")
    data = json.loads(js)
    assert data["format"] == "spikejit.ir.json/v1"
    assert {n["id"] for n in data["nodes"]} >= {"input", "fc", "lif", "rec", "output"}
    code, dot, _ = invoke("inspect", str(model), "--dt", "1e-3", "--format", "dot")
    assert dot.startswith("digraph")
    code, dumps, err = invoke("inspect", str(model), "--dt", "1e-3", "--after", "all")
    assert code == 0, err
    assert "IR after pass 0: shape-inference" in dumps and "schedule {" in dumps


def test_compile_then_run_saved_model(model: Path, tmp_path: Path) -> None:
    saved = tmp_path / "m.sjit.npz"
    code, _, err = invoke("compile", str(model), "--dt", "1e-3", "-o", str(saved))
    assert code == 0, err
    y1, y2 = tmp_path / "a.npz", tmp_path / "b.npz"
    assert invoke("run", str(saved), "--steps", "20", "--output", str(y1))[0] == 0
    assert invoke("run", str(model), "--dt", "1e-3", "--steps", "20", "--output", str(y2))[0] == 0
    np.testing.assert_array_equal(np.load(y1)["output"], np.load(y2)["output"])


def test_inspect_text_parses_back_whatever_the_terminal_width(model: Path) -> None:
    import spikejit

    result = runner.invoke(app, ["inspect", str(model), "--dt", "1e-3"],
                           env={"COLUMNS": "40"})
    graph, _ = spikejit.from_nir(model, dt=1e-3)
    assert spikejit.parse(result.stdout) == graph


def test_run_ir_text_model(model: Path, tmp_path: Path) -> None:
    code, text, _ = invoke("inspect", str(model), "--dt", "1e-3")
    path = tmp_path / "m.snir"
    path.write_text(text)
    code, _, err = invoke("run", str(path), "--steps", "10")
    assert code == 0, err


def test_viz_dot(model: Path, tmp_path: Path) -> None:
    code, _, err = invoke("viz", str(model), "--dt", "1e-3", "-o", str(tmp_path / "g.dot"))
    assert code == 0, err
    dot = (tmp_path / "g.dot").read_text()
    assert "cluster_" in dot and "style=dashed" in dot and 'label="t-1"' in dot


def test_bench_runs(model: Path) -> None:
    code, out, err = invoke("bench", str(model), "--dt", "1e-3", "--steps", "5", "--batch", "2",
                            "--repeats", "1")
    assert code == 0, err
    assert "forward+backward" in out


@pytest.mark.slow
def test_bundled_example_via_console_script() -> None:
    result = subprocess.run([sys.executable, "-m", "spikejit", "run", "--steps", "20"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "outputs" in result.stdout


def test_bench_suite_needs_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = invoke("bench", "--suite")
    assert code == 2
    assert err.strip() == ("error: --suite runs the benchmark suite of a source checkout: run it "
                           "from the repository root (the folder holding benchmarks/)")
