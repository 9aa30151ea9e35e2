"""The code on docs/embedding.md runs as written (one namespace, blocks in order)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "embedding.md"


@pytest.mark.slow
def test_embedding_page_runs() -> None:
    pytest.importorskip("optax")
    pytest.importorskip("equinox")
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 4
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # our own docs, not user input
