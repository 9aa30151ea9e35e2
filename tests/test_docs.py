"""Docs that are generated from code must match the code."""

from __future__ import annotations

from pathlib import Path

from spikejit.ir.docgen import ops_reference

ROOT = Path(__file__).resolve().parents[1]


def test_op_reference_is_current() -> None:
    committed = (ROOT / "docs" / "ops.md").read_text()
    assert committed == ops_reference(), "run: python -m spikejit.ir.docgen > docs/ops.md"


def test_every_op_documents_its_dynamics() -> None:
    from spikejit.ir.ops import OPS

    for name, cls in OPS.items():
        doc = cls.__doc__ or ""
        assert len(doc.strip().splitlines()[0]) > 10, f"{name} lacks a summary line"
