"""docs/graphs.md and docs/neurons.md cannot drift: their Python blocks run (each page as one
script, in a fresh interpreter so that user-defined neurons do not leak into this session's
op registry), and every printed IR block on the page is what the script prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.slow
@pytest.mark.parametrize("page", ["graphs.md", "neurons.md"])
def test_doc_examples_run(page: str, tmp_path: Path) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, f"{page} lost its examples"
    script = tmp_path / f"{Path(page).stem}_examples.py"
    script.write_text("\n".join(blocks), encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, f"{page} examples failed:\n{done.stderr[-4000:]}"
    for printed in re.findall(r"```\n(graph @.*?)```", text, re.S):
        assert printed in done.stdout, f"{page}: printed IR differs:\n{done.stdout}"
