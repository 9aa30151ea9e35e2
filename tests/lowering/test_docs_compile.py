"""docs/compile.md shows what the code does: the surrogate table and the printed schedule."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np

import spikejit
from spikejit.lowering.surrogates import describe

DOC = (Path(__file__).resolve().parents[2] / "docs" / "compile.md").read_text()


def test_surrogate_table_is_current() -> None:
    start = DOC.index("<!-- surrogate-table")
    body = DOC[DOC.index("\n", start) + 1:DOC.index("<!-- end surrogate-table -->")]
    assert body.strip() == describe(), "paste spikejit.lowering.surrogates.describe() into the doc"


def test_printed_schedule_example_is_current() -> None:
    rng = np.random.default_rng(0)
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input({"input": np.array([16])}),
            "fc1": nir.Affine(rng.normal(size=(32, 16)).astype("f4"), np.zeros(32, "f4")),
            "lif1": nir.LIF(tau=np.full(32, 2e-2), r=np.full(32, 10.0), v_leak=np.zeros(32),
                            v_threshold=np.ones(32)),
            "rec": nir.Linear(rng.normal(size=(32, 32)).astype("f4") * 0.1),
            "fc2": nir.Linear(rng.normal(size=(4, 32)).astype("f4")),
            "li": nir.LI(tau=np.full(4, 1e-2), r=np.ones(4), v_leak=np.zeros(4)),
            "output": nir.Output({"output": np.array([4])}),
        },
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "rec"), ("rec", "lif1"),
               ("lif1", "fc2"), ("fc2", "li"), ("li", "output")],
    )
    model = spikejit.compile(graph, dt=1e-3, reset="subtract")
    assert str(model) in DOC
    try:
        spikejit.compile(graph, dt=1e-3, schedule="layerwise")
    except spikejit.errors.ScheduleError as e:
        assert str(e).splitlines()[0] in DOC
    else:
        raise AssertionError("layerwise on a cycle must fail")
