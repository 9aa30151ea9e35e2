"""Malformed IR text through spikejit.parse, the verifier and spikejit.model_io.read_model.

Every parse error must carry the line and column of the problem and show that source line
with a caret under the spot; anything that parses must then verify or raise a spikejit
error naming the node; read_model of any text file raises only spikejit errors (a file
that declares absurd parameter shapes is refused before its default values are made).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from helpers_parser import zoo_graph
from helpers_robustness import budget, max_bytes, time_limit
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from strategies import graphs

from spikejit.errors import ParseError, SizeLimitError, SpikejitError
from spikejit.ir import parse, print_graph, verify
from spikejit.ir.ops import OPS
from spikejit.limits import format_bytes
from spikejit.model_io import read_model

ZOO = print_graph(zoo_graph(), debug_info=True)
TOKENS = ["%", "@", "[", "]", "{", "}", "(", ")", ",", ":", "=", '"', "-", "none", "1.5",
          "-1", "f32[", "spike<", "[t-", "schedule {", "params {", "loc(", "//", "\n", "inf",
          "nan", "true", "9" * 30, "[" * 24, '"\\u0000"', "\x00", "é", "\r", "%%", "@@",
          "f32[99999999999,99999999999]", "%x[t-0]", "bf16[]", "\t", "\u2028", '"a\\"b"',
          "}" * 3, "1e999", "-" * 5, "%lif", "@lif.tau: f32[5]", "snn.lif(", "io.input()"]
_ids = itertools.count()


def check_caret(text: str, e: ParseError) -> None:
    """The error names a real line and column, and shows that line with a caret there."""
    lines = text.split("\n")  # only "\n" ends a line in IR text
    assert 1 <= e.line <= len(lines), (e.line, len(lines))
    source = lines[e.line - 1]
    assert 1 <= e.column <= len(source) + 1, (e.column, source)
    msg = str(e).split("\n")
    assert msg[0] == f"line {e.line}, column {e.column}: {e.reason}"
    if source:
        assert msg[1] == f"  {source}"
        assert msg[2] == "  " + " " * (e.column - 1) + "^"


def parse_or_verify(text: str) -> None:
    """Parse and verify: only spikejit errors, in bounded time, carets checked."""
    with time_limit():
        try:
            graph = parse(text)
        except ParseError as e:
            check_caret(text, e)
            event("parse error")
            return
        try:
            verify(graph)
            event("valid")
        except SpikejitError as e:
            event(f"refused: {type(e).__name__}")


def _mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    for pos, length, token in edits:
        i = pos % (len(text) + 1)
        text = text[:i] + token + text[i + length:]
    return text


EDITS = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 8), st.sampled_from(TOKENS)),
                 min_size=1, max_size=4)


@settings(max_examples=budget(250), suppress_health_check=[HealthCheck.too_slow])
@given(EDITS)
def test_mutated_zoo_text(edits: list[tuple[int, int, str]]) -> None:
    parse_or_verify(_mutate(ZOO, edits))


@settings(max_examples=budget(100), suppress_health_check=[HealthCheck.too_slow])
@given(graphs(max_nodes=6), EDITS)
def test_mutated_random_graph_text(graph: object, edits: list[tuple[int, int, str]]) -> None:
    parse_or_verify(_mutate(print_graph(graph), edits))  # type: ignore[arg-type]


@settings(max_examples=budget(100))
@given(st.text(alphabet=st.sampled_from(list('graph@%{}()[]=,:"-.0123456789 \n\tf3tsnlifuo/')),
               max_size=120))
def test_random_text(text: str) -> None:
    parse_or_verify(text)


def _node_lines(text: str) -> list[int]:
    return [i for i, line in enumerate(text.split("\n")) if line.lstrip().startswith("%")]


@st.composite
def pointed_errors(draw: st.DrawFn) -> tuple[str, int, int, str]:
    """A valid text with one error planted at a known (line, column), and the words the
    message must contain."""
    text = print_graph(draw(graphs(max_nodes=6)))
    lines = text.split("\n")
    i = draw(st.sampled_from(_node_lines(text)))
    line = lines[i]
    kind = draw(st.sampled_from(["op", "operand", "dtype", "attribute"]))
    if kind == "operand" and "(%" in line:
        start = line.index("(%") + 1
        end = re.compile(r"[,)\[]").search(line, start)
        assert end is not None
        lines[i] = line[:start] + "%ghost" + line[end.start():]
        words = "%ghost is not a node of graph"
    elif kind == "dtype" and re.search(r"\bf32\[", line):
        start = re.search(r"\bf32\[", line).start()  # type: ignore[union-attr]
        lines[i] = line[:start] + "f33" + line[start + 3:]
        words = "unknown dtype 'f33'"
    elif kind == "attribute" and "{" in line:
        start = line.index("{") + 1
        lines[i] = line[:start] + "bogus = 1, " + line[start:]
        words = "unknown attribute 'bogus'"
    else:
        start = line.index("= ") + 2
        end = line.index("(", start)
        word = draw(st.from_regex(r"[a-z]{1,6}\.[a-z_]{1,8}", fullmatch=True).filter(
            lambda w: w not in OPS))
        lines[i] = line[:start] + word + line[end:]
        words = f"unknown op {word!r}"
    return "\n".join(lines), i + 1, start + 1, words


@settings(max_examples=budget(150))
@given(pointed_errors())
def test_the_caret_is_under_the_planted_error(case: tuple[str, int, int, str]) -> None:
    text, line, column, words = case
    with time_limit(), pytest.raises(ParseError) as info:
        parse(text)
    e = info.value
    check_caret(text, e)
    assert (e.line, e.column) == (line, column), str(e)
    assert words in e.reason, str(e)


@settings(max_examples=budget(80), suppress_health_check=[HealthCheck.too_slow,
                                                          HealthCheck.function_scoped_fixture])
@given(EDITS)
def test_read_model_on_mutated_text_files(tmp_path: Path,
                                          edits: list[tuple[int, int, str]]) -> None:
    path = tmp_path / f"m{next(_ids)}.snir"
    path.write_text(_mutate(ZOO, edits), encoding="utf-8")
    with time_limit(), max_bytes("64M"):
        try:
            read_model(path)
            event("loaded")
        except SpikejitError as e:
            # read_model names the file: in its message or in a note.
            lines = [str(e).split("\n")[0], *getattr(e, "__notes__", ())]
            assert any(str(path) in line for line in lines), (str(e), lines)
            event(f"refused: {type(e).__name__}")


@settings(max_examples=budget(40), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(6 * 10**6, 10**15))
def test_absurd_declared_parameters_are_refused_before_allocating(tmp_path: Path,
                                                                  rows: int) -> None:
    # A valid graph whose one weight, [rows, 3] float32, is bigger than the 64 MiB limit.
    path = tmp_path / f"big{next(_ids)}.snir"
    path.write_text("graph @g {\n  %x = io.input() {type = f32[3]}\n"
                    f"  %l = nn.linear(%x) {{weight = @l.weight: f32[{rows},3]}}\n"
                    "  %y = io.output(%l)\n}\n", encoding="utf-8")
    with time_limit(), max_bytes("64M"), pytest.raises(SizeLimitError) as info:
        read_model(path)
    assert str(info.value).startswith(
        f"default values for the parameters of graph @g (the largest: @l.weight of %l) "
        f"would take {format_bytes(12 * rows)}, "
        f"more than the limit of 64.0 MiB (67,108,864 bytes)")
    assert info.value.nbytes == 12 * rows
