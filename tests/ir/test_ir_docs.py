"""docs/ir.md cannot drift: its IR examples parse, verify and are in canonical printed form."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spikejit.errors import ParseError
from spikejit.ir import infer_types, parse, print_graph, verify

DOC = Path(__file__).resolve().parents[2] / "docs" / "ir.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_snir_examples_parse_verify_and_are_canonical() -> None:
    blocks = _blocks("snir")
    assert blocks, "docs/ir.md lost its IR example"
    for text in blocks:
        g = parse(text)
        verify(g)
        assert infer_types(g) == g  # the example shows the types shape inference gives
        assert print_graph(g) == text


def test_documented_parse_error_is_what_parse_says() -> None:
    doc = DOC.read_text(encoding="utf-8")
    message = re.search(r"```\n(line 3, column 18: .*?)\n```", doc, re.S)
    assert message is not None
    text = ("graph @g {\n  %x = io.input() {type = f32[3]}\n  %y = io.output(%z)\n}\n")
    with pytest.raises(ParseError) as e:
        parse(text)
    assert str(e.value) == message.group(1)
