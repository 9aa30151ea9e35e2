"""The parallel-scan benchmark (``python -m benchmarks.parallel_scan``, results in
docs/performance.md) runs end to end on a tiny size. No timing is asserted."""

from __future__ import annotations

import pytest

from benchmarks import parallel_scan

pytestmark = pytest.mark.slow


def test_smoke_run_gives_a_table() -> None:
    records = parallel_scan.run(parallel_scan.SMOKE_SHAPES, 1, neurons=("snn.cuba_lif",))
    (rec,) = records
    for phase in ("fwd", "grad"):
        assert rec[phase]["sequential_s"] > 0 and rec[phase]["parallel_s"] > 0
    assert "| snn.cuba_lif | 8 | 2 | 4 |" in parallel_scan.table(records)
