"""The benchmark code runs end to end on tiny sizes. No timing is asserted anywhere: the
numbers of a smoke run mean nothing; only structure and cross-library agreement are checked.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import report, suite
from benchmarks import workloads as wl
from benchmarks.run import run_suite

pytestmark = pytest.mark.slow

#: Peers are optional for the suite; test those that are installed. torch.compile is left
#: out: compiling even a tiny unrolled graph takes longer than this whole test.
PEER_MODULES = {"snntorch": "snntorch", "norse": "norse", "spyx": "spyx",
                "spyx-layerwise": "spyx"}
IMPLS = ["jax", "spikejit"] + [i for i, m in PEER_MODULES.items()
                               if importlib.util.find_spec(m) is not None]


#: To stay fast, every implementation runs the MLP; the CNN and the recurrent network
#: (XLA compiles their gradients slowly even at tiny sizes) run with a representative few.
FEW = [i for i in ("jax", "spikejit", "snntorch") if i in IMPLS]
PLAN = {"mlp": IMPLS, "cnn": ["jax", "spikejit"], "recurrent": FEW}


@pytest.fixture(scope="module")
def smoke_result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    result: dict = {}
    for name, impls in PLAN.items():
        path = run_suite(False, out / name, mode="smoke", only=[name], impls=impls,
                         log=lambda s: None)
        assert path == out / name / "bench-smoke.json"
        assert (out / name / "bench-smoke.md").is_file()
        part = json.loads(path.read_text())
        if not result:
            result = part
        else:
            result["records"] += part["records"]
            result["workload_titles"].update(part["workload_titles"])
    return result


def test_every_impl_runs_every_workload(smoke_result: dict) -> None:
    got = {(r["workload"], r["impl"]): r for r in smoke_result["records"]}
    for name, impls in PLAN.items():
        for impl in impls:
            rec = got[(name, impl)]
            assert rec["status"] == "ok", rec
            for phase in ("fwd", "train"):
                assert len(rec[phase]["runs_s"]) == suite.BUDGETS["smoke"].repeats
                assert rec[phase]["median_s"] > 0


def test_same_network_everywhere(smoke_result: dict) -> None:
    """spikejit and snnTorch compute the baseline's network exactly (same spikes and, as both
    detach the reset, the same gradients); the others differ where documented."""
    for rec in smoke_result["records"]:
        if rec["impl"] in ("spikejit", "snntorch"):
            assert rec["spike_agreement"] == 1.0, rec
            assert rec["grad_cosine"] == pytest.approx(1.0, abs=1e-4), rec
        if rec["impl"] == "norse":  # same forward; its reset is not detached
            assert rec["spike_agreement"] == 1.0, rec


def test_report_lists_every_workload(smoke_result: dict) -> None:
    text = report.markdown(smoke_result)
    for title in smoke_result["workload_titles"].values():
        assert f"## {title}" in text
    assert "| spikejit |" in text
    assert "Targets" in text


def test_long_sequence_child_process() -> None:
    w = next(x for x in wl.workloads("smoke") if x.name == "long")
    rec = suite.run_isolated(w, "jax", "smoke", 8.0, log=lambda s: None)
    assert rec["status"] == "ok", rec
    assert "fwd" not in rec and rec["train"]["median_s"] > 0
    assert rec["process_peak_rss_bytes"] > 0


def test_failures_become_records() -> None:
    w = wl.workloads("smoke")[0]
    rec = suite.measure("no-such-impl", w, wl.make_params(w), wl.make_input(w),
                        suite.BUDGETS["smoke"])
    assert rec["status"] == "failed" and "unknown implementation" in rec["reason"]
    assert suite.skip_reason("norse-compile", wl.workloads("smoke")[3]) is not None


def test_flop_counts_and_inputs() -> None:
    mlp = wl.workloads("full")[0]
    fwd, train = wl.matmul_flops(mlp)
    assert fwd == 2 * 100 * 32 * 2 * 2048 * 2048
    assert train == fwd * 5 / 2  # forward, two weight gradients, one input gradient
    x = wl.make_input(wl.workloads("smoke")[1])
    assert x.shape == (3, 2, 2, 6, 6) and set(np.unique(x)) <= {0.0, 1.0}


def test_plot_when_matplotlib_present(smoke_result: dict, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    assert report.plot(smoke_result, tmp_path / "p.png") == tmp_path / "p.png"
