"""The bundled example model: shipped, loadable, runnable, and what the generator writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from helpers_nir import assert_same

import spikejit
from spikejit.errors import OptionError
from spikejit.examples import BUNDLED_DT, BUNDLED_MODELS, RECOMMENDED_DT, bundled_model_path

ROOT = Path(__file__).resolve().parents[2]


def test_default_model_path_and_dt() -> None:
    path = bundled_model_path()
    assert path == bundled_model_path("cuba_rsnn") and path.is_file()
    assert path.parent == Path(spikejit.examples.__file__).parent
    assert RECOMMENDED_DT == BUNDLED_DT == BUNDLED_MODELS["cuba_rsnn"].dt == 1e-3
    assert "1e-3" in (path.parent / "README.md").read_text()


def test_unknown_model_name() -> None:
    with pytest.raises(OptionError, match="no bundled model 'mnist'; available: cuba_rsnn"):
        bundled_model_path("mnist")


def test_bundled_model_loads_and_spikes() -> None:
    graph, params = spikejit.from_nir(bundled_model_path(), dt=RECOMMENDED_DT)
    assert [n.id for n in graph.nodes] == ["input", "fc_in", "hidden/lif", "hidden/w_rec",
                                           "fc_out", "readout", "output"]
    assert [(u.node, u.delay) for u in graph.node("hidden/lif").inputs] == [
        ("fc_in", 0), ("hidden/w_rec", 1)]
    x = (np.random.default_rng(0).random((100, 2, 8)) < 0.3).astype(np.float32)
    y, traces = spikejit.interpret(graph, params, x, trace=["hidden/lif"])
    assert y.shape == (100, 2, 4)
    rate = float(np.mean(traces["hidden/lif"]["out"]))
    assert 0.02 < rate < 0.5


def test_committed_file_is_what_the_generator_builds(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_bundled_model",
                                                  ROOT / "examples" / "make_bundled_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path / "fresh.nir")
    fresh = spikejit.from_nir(tmp_path / "fresh.nir", dt=RECOMMENDED_DT)
    shipped = spikejit.from_nir(bundled_model_path(), dt=RECOMMENDED_DT)
    assert_same(*shipped, *fresh)
