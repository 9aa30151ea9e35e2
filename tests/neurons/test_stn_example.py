"""examples/stn_population.py: the STN model written with define_neuron fires spontaneously,
is silenced by hyperpolarisation, bursts on release, and matches the oracle."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import spikejit
from spikejit.ir.ops import OPS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stn_population.py"


def test_stn_population_example() -> None:
    spec = importlib.util.spec_from_file_location("stn_population", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        out = module.main(neurons=4, duration_ms=1000.0, verbose=False)
        assert OPS["user.stn"].state_vars == ("v", "h", "n", "r", "ca")
    finally:
        spikejit.undefine_neuron("stn")
    assert 1.0 < out["spontaneous_rate_hz"] < 10.0
    assert out["spikes_during_pulse"] == 0
    assert out["rebound_spikes_per_neuron"] >= 2.0  # a T-current rebound burst
    assert out["oracle_spikes_equal"] == 1.0 and out["oracle_max_v_error_mv"] < 1e-2
