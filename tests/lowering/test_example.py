"""The training example runs in its fast version and reaches the accuracy it states."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_nir_optax.py"


@pytest.mark.slow
def test_train_nir_optax_fast_version_reaches_its_stated_accuracy() -> None:
    spec = importlib.util.spec_from_file_location("train_nir_optax", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    accuracy = module.main(fast=True, verbose=False)
    assert accuracy >= module.TARGET["fast"]
    x, y = module.make_task(64, seed=5)
    assert x.shape == (module.STEPS, 64, module.CHANNELS) and set(y) <= set(range(8))
