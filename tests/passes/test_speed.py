"""The default pipeline is fast and grows about linearly (benchmarks/passes_scaling.py has
the full measurement; docs/passes.md records it). Bounds are loose: the machine is shared."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():  # the benchmark module, loaded from its file (benchmarks/ is not on the path)
    spec = importlib.util.spec_from_file_location("passes_scaling",
                                                  ROOT / "benchmarks" / "passes_scaling.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_default_pipeline_on_1000_nodes_is_fast_and_near_linear() -> None:
    bench = _bench()
    small, big = bench.synthetic_graph(1000), bench.synthetic_graph(2000)
    t_small = bench.time_pipeline(small, repeats=3)[0]
    t_big = bench.time_pipeline(big, repeats=3)[0]
    assert len(small.nodes) >= 1000
    assert t_small < 1.0, f"O2 pipeline on {len(small.nodes)} nodes took {t_small:.2f} s"
    # Time ratio over size ratio: 1.0 is linear, a quadratic pass gives 2.0; 1.6 leaves
    # room for a noisy shared machine.
    ratio = (t_big / t_small) / (len(big.nodes) / len(small.nodes))
    assert ratio < 1.6, f"time grew {ratio:.2f}x faster than the graph"
