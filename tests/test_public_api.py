"""The lazy public API: every advertised name resolves to what it says."""

from __future__ import annotations

import inspect
import subprocess
import sys

import spikejit


def test_every_lazy_name_resolves() -> None:
    for name in spikejit.__all__:
        value = getattr(spikejit, name)
        assert value is not None, name
    assert inspect.isfunction(spikejit.verify)
    assert inspect.ismodule(spikejit.errors) and inspect.ismodule(spikejit.ir)
    assert issubclass(spikejit.SpikejitError, Exception)


def test_import_is_light() -> None:
    code = ("import sys, spikejit, spikejit.ir; "
            "print(sorted(m for m in ('jax', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
