"""docs/passes.md cannot drift: its pass table is the registry's, its worked example is
what the example script prints."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from spikejit.passes import describe
from spikejit.passes.docgen import BEGIN, END

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "passes.md").read_text(encoding="utf-8")


def block(begin: str, end: str) -> str:
    return DOC.partition(begin + "\n")[2].partition(end)[0]


def test_pass_table_is_generated_from_the_registry() -> None:
    assert block(BEGIN, END) == describe() + "\n", "run: python -m spikejit.passes.docgen"


def test_worked_example_is_what_the_script_prints() -> None:
    path = ROOT / "examples" / "passes_worked_example.py"
    spec = importlib.util.spec_from_file_location("passes_worked_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert block(module.BEGIN, module.END) == module.worked_example(), (
        "run: python examples/passes_worked_example.py --write")
