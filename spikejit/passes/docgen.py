"""Keep the pass table of ``docs/passes.md`` generated from the registry.

``python -m spikejit.passes.docgen`` rewrites the block between the ``pass-table``
markers with :func:`spikejit.passes.describe`; a test fails when the committed block
differs.
"""

from __future__ import annotations

from pathlib import Path

from spikejit.atomic import write_bytes_atomic
from spikejit.passes import describe

BEGIN, END = "<!-- BEGIN pass-table -->", "<!-- END pass-table -->"


def replace_block(text: str, begin: str, end: str, block: str) -> str:
    """``text`` with the lines between the ``begin`` and ``end`` markers replaced."""
    head, sep, rest = text.partition(begin + "\n")
    if not sep or end not in rest:
        raise ValueError(f"markers {begin!r} ... {end!r} not found")
    _, _, tail = rest.partition(end)
    return f"{head}{begin}\n{block.rstrip()}\n{end}{tail}"


def update(path: Path) -> None:
    """Rewrite the pass table of the markdown file at ``path``."""
    text = path.read_text(encoding="utf-8")
    write_bytes_atomic(path, replace_block(text, BEGIN, END, describe()).encode("utf-8"))


if __name__ == "__main__":  # pragma: no cover
    update(Path(__file__).resolve().parents[2] / "docs" / "passes.md")
