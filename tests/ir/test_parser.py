"""The textual IR parser: hand-written texts, lexical corners, whole error messages, fuzzing."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from helpers_parser import P, T, zoo_graph
from hypothesis import given, settings
from hypothesis import strategies as st

from spikejit.errors import ModelFileError, ParseError, ShapeError
from spikejit.ir import (
    Graph,
    GraphAttrs,
    Node,
    ParamRef,
    Schedule,
    Segment,
    TensorType,
    Use,
    parse,
    print_graph,
    verify,
)
from spikejit.ir import ops as O
from spikejit.ir.parser import parse_file

#: The fused layer ops (spikejit.ir.ops.fused), as they sort in the known-ops list.
SYNAPSES = ("affine", "conv1d", "conv2d", "linear")
NEURONS = ("alif", "cuba_li", "cuba_lif", "i", "if", "li", "lif")

RNN_TEXT = """\
// A recurrent network, written by hand: spacing and comments are free.
graph @rnn attributes {dt = 1e-3, reset = "subtract"} {
  %x = io.input() {type = f32[3]} : f32[3]   // the input
  %fc=nn.affine( %x ){weight=@fc.weight: f32[4, 3],bias=@fc.bias :f32[4]}
  %lif = snn.lif(%fc, %rec [ t - 1 ]) {
      tau = @lif.tau: f32[4],
      v_threshold = @lif.v_threshold: f32[]
  } : spike<f32[4]> loc("nir:S/lif")
  %rec = nn.linear(%lif) {weight = @rec.weight: f32[4,4]}
  %y = io.output(%lif)
  schedule {
    layerwise %x, %fc
    stepwise(jacobi) %lif, %rec, %y
  }
}
"""


def rnn_graph() -> Graph:
    return Graph(
        (
            Node("x", O.Input(type=T(3)), (), T(3)),
            Node("fc", O.Affine(weight=P("fc.weight", 4, 3), bias=P("fc.bias", 4)),
                 (Use("x"),)),
            Node("lif", O.LIF(tau=P("lif.tau", 4), v_threshold=P("lif.v_threshold")),
                 (Use("fc"), Use("rec", 1)), T(4, spike=True)),
            Node("rec", O.Linear(weight=P("rec.weight", 4, 4)), (Use("lif"),)),
            Node("y", O.Output(), (Use("lif"),)),
        ),
        "rnn",
        GraphAttrs(dt=1e-3, reset="subtract"),
        Schedule((Segment("layerwise", ("x", "fc")),
                  Segment("stepwise", ("lif", "rec", "y"), "jacobi"))),
    )


def test_hand_written_text_parses_to_the_expected_graph() -> None:
    g = parse(RNN_TEXT)
    assert g == rnn_graph()
    assert g.node("lif").loc == "nir:S/lif"
    assert g.node("x").loc == ""


def test_printed_form_is_canonical() -> None:
    assert print_graph(parse(RNN_TEXT)) == (
        'graph @rnn attributes {dt = 0.001, reset = "subtract", cuba_current = "post", '
        'method = "euler"} {\n'
        "  %x = io.input() {type = f32[3]} : f32[3]\n"
        "  %fc = nn.affine(%x) {weight = @fc.weight: f32[4,3], bias = @fc.bias: f32[4]}\n"
        "  %lif = snn.lif(%fc, %rec[t-1]) {tau = @lif.tau: f32[4], "
        "v_threshold = @lif.v_threshold: f32[]} : spike<f32[4]>\n"
        "  %rec = nn.linear(%lif) {weight = @rec.weight: f32[4,4]}\n"
        "  %y = io.output(%lif)\n"
        "  schedule {\n"
        "    layerwise %x, %fc\n"
        "    stepwise(jacobi) %lif, %rec, %y\n"
        "  }\n"
        "}\n"
    )


def test_graph_attributes_are_optional_and_default() -> None:
    g = parse('graph @g {\n  %x = io.input() {type = f64[]}\n  %y = io.output(%x)\n}')
    assert g.attrs == GraphAttrs()
    assert g.node("x").op == O.Input(type=TensorType((), "f64"))


@pytest.mark.parametrize(
    ("written", "value"),
    [("1e-3", 1e-3), ("0.5", 0.5), ("2", 2.0), ("1E+2", 100.0), (".25", 0.25),
     ("5e-324", 5e-324)],
)
def test_dt_number_forms(written: str, value: float) -> None:
    g = parse(f"graph @g attributes {{dt = {written}}} {{\n}}")
    assert g.attrs.dt == value
    assert isinstance(g.attrs.dt, float)


@pytest.mark.parametrize(
    "name",
    ["a b", 'q"t', "back\\slash", "ü/ñ", "line\nbreak", "x\u2028y", "a:", "::", "S/lif1",
     "nir:S/lif1", "0", "-", "%", "@", "{}", "//not a comment"],
)
def test_awkward_names_roundtrip_as_ids_params_graph_and_loc(name: str) -> None:
    g = Graph(
        (
            Node(name, O.Input(type=T(2)), (), loc=name),
            Node(name + "!", O.Scale(scale=ParamRef(name, T(2))), (Use(name), Use(name, 3))),
            Node("y", O.Output(), (Use(name + "!"),)),
        ),
        name,
        schedule=Schedule((Segment("stepwise", (name, name + "!", "y")),)),
    )
    back = parse(print_graph(g, debug_info=True))
    assert back == g
    assert back.node(name).loc == name


def test_param_name_ending_in_colon_is_not_confused_with_the_separator() -> None:
    text = print_graph(Graph((Node("s", O.Scale(scale=ParamRef("w:", T(2))), ()),)))
    assert "@w:: f32[2]" in text
    assert parse(text).node("s").op.scale.name == "w:"  # type: ignore[attr-defined]


def test_comment_after_a_bare_name_needs_a_space() -> None:
    # '//' is a legal part of a bare name, so a comment must be separated from it.
    g = parse("graph @g {\n  %a//b = io.input() {type = f32[1]} // c\n}")
    assert g.nodes[0].id == "a//b"


def test_value_forms_in_attributes() -> None:
    text = ('graph @g {\n'
            '  %c = nn.conv1d() {weight = @w: bf16[2,1,3], bias = none, stride = 2, '
            'padding = "same", dilation = [1]}\n'
            '  %d = snn.delay() {steps = [0, 3]}\n'
            '  %s = snn.threshold() {threshold = @t: spike<f16[]>}\n'
            '}')
    g = parse(text)
    conv = g.node("c").op
    assert conv == O.Conv1d(weight=ParamRef("w", TensorType((2, 1, 3), "bf16")), stride=(2,),
                            padding="same", dilation=(1,))
    assert g.node("d").op == O.Delay(steps=(0, 3))
    assert g.node("s").op == O.Threshold(threshold=ParamRef("t", TensorType((), "f16", True)))


def test_parse_is_syntactic_and_verify_names_the_node() -> None:
    # A well-formed text of an ill-typed graph parses; the verifier reports it.
    g = parse("graph @g attributes {dt = 0.1} {\n"
              "  %x = io.input() {type = f32[3]}\n"
              "  %fc = nn.linear(%x) {weight = @w: f32[4,5]}\n"
              "  %y = io.output(%fc)\n"
              "}\n")
    with pytest.raises(ShapeError) as e:
        verify(g)
    assert str(e.value).splitlines()[0] == (
        "%fc (nn.linear): input f32[3] has 3 features on its last axis, but weight @w expects "
        "5 (weight shape [4, 5])")


H = "graph @g attributes {dt = 0.001} {\n"
X = "  %x = io.input() {type = f32[3]}\n"

ERRORS = [
    ("", "line 1, column 1: empty input: expected 'graph @name {'"),
    ("grahp @g {}", "line 1, column 1: expected 'graph', found 'grahp'\n  grahp @g {}\n  ^"),
    ("graph g {}",
     "line 1, column 7: expected '@' before the graph name, found 'g'\n  graph g {}\n        ^"),
    (H + X,
     "line 3, column 1: graph @g is not closed: expected '}' at the end of its body "
     "(opened on line 1)"),
    (H + X + "}\n}",
     "line 4, column 1: unexpected text after the graph: '}'\n  }\n  ^"),
    (H + "  %x = io.input() {type = f32[-3]}\n}",
     "line 2, column 31: expected a dimension (an integer >= 0), found '-3'\n"
     "    %x = io.input() {type = f32[-3]}\n"
     "                                ^"),
    (H + "  %x = io.input() {type = f33[3]}\n}",
     "line 2, column 27: unknown dtype 'f33'; expected one of f16, bf16, f32, f64\n"
     "    %x = io.input() {type = f33[3]}\n"
     "                            ^"),
    (H + "  %x = snn.foo(%x)\n}",
     "line 2, column 8: unknown op 'snn.foo'; known ops: bio.adex, bio.hh, bio.izhikevich, "
     "io.input, io.output, " + ", ".join(f"layer.{s}_{n}" for s in SYNAPSES for n in NEURONS)
     + ", nn.affine, "
     "nn.avgpool2d, nn.conv1d, nn.conv2d, nn.flatten, nn.linear, nn.pad, nn.scale, nn.sumpool2d, "
     "snn.alif, snn.cuba_li, snn.cuba_lif, snn.delay, snn.i, snn.if, snn.li, snn.lif, "
     "snn.threshold\n"
     "    %x = snn.foo(%x)\n"
     "         ^"),
    (H + "  %x = io.input() {typ = f32[3]}\n}",
     "line 2, column 20: %x (io.input): unknown attribute 'typ'; io.input has type\n"
     "    %x = io.input() {typ = f32[3]}\n"
     "                     ^"),
    (H + "  %x = io.input()\n}",
     "line 2, column 8: %x (io.input): missing attribute(s) type\n"
     "    %x = io.input()\n"
     "         ^"),
    (H + "  %x = io.input() {type = f32[3], type = f32[3]}\n}",
     "line 2, column 35: attribute 'type' of %x is given twice\n"
     "    %x = io.input() {type = f32[3], type = f32[3]}\n"
     "                                    ^"),
    (H + X + "  %l = snn.lif(%x) {tau = 2.0, v_threshold = @t: f32[]}\n}",
     "line 3, column 8: %l (snn.lif): attribute 'tau' must be a parameter reference "
     "(@name: type) or omitted, got 2.0\n"
     "    %l = snn.lif(%x) {tau = 2.0, v_threshold = @t: f32[]}\n"
     "         ^"),
    (H + X + "  %l = snn.lif(%x) {tau = none, v_threshold = @t: f32[]}\n}",
     "line 3, column 21: %l (snn.lif): attribute 'tau' is required and cannot be none\n"
     "    %l = snn.lif(%x) {tau = none, v_threshold = @t: f32[]}\n"
     "                      ^"),
    (H + X + "  %l = snn.lif(%x[t+1]) {tau = @a: f32[], v_threshold = @t: f32[]}\n}",
     "line 3, column 20: expected '-' in the delay of %x: uses read the past, %x[t-k], "
     "found '+'\n"
     "    %l = snn.lif(%x[t+1]) {tau = @a: f32[], v_threshold = @t: f32[]}\n"
     "                     ^"),
    (H + X + "  %l = snn.lif(%x) {tau = @a f32[], v_threshold = @t: f32[]}\n}",
     "line 3, column 30: expected ':' between parameter @a and its type, found 'f32'\n"
     "    %l = snn.lif(%x) {tau = @a f32[], v_threshold = @t: f32[]}\n"
     "                               ^"),
    (H + X + "  %l = nn.linear(%x) {weight = @w:f32[2,3]}\n}",
     "line 3, column 38: expected ':' between parameter @w:f32 and its type; a ':' inside a "
     "bare name belongs to the name, so write '@name: type' with a space after the ':'\n"
     "    %l = nn.linear(%x) {weight = @w:f32[2,3]}\n"
     "                                       ^"),
    (H + X + "  %s = nn.sumpool2d(%x) {kernel_size = [2, 0]}\n}",
     "line 3, column 8: %s (nn.sumpool2d): attribute 'kernel_size' must hold integers >= 1, "
     "got [2, 0]\n"
     "    %s = nn.sumpool2d(%x) {kernel_size = [2, 0]}\n"
     "         ^"),
    (H + X + "  %y = io.output(%z)\n}",
     "line 3, column 18: %z is not a node of graph @g\n"
     "    %y = io.output(%z)\n"
     "                   ^"),
    (H + X + "  %x = io.output(%x)\n}",
     "line 3, column 3: node id %x is already defined on line 2\n"
     "    %x = io.output(%x)\n"
     "    ^"),
    (H + X + "  schedule {\n    layerwise %x, %q\n  }\n}",
     "line 4, column 19: %q is not a node of graph @g\n"
     "      layerwise %x, %q\n"
     "                    ^"),
    (H + X + "  schedule {\n    sideways %x\n  }\n}",
     "line 4, column 5: unknown schedule segment 'sideways'; expected layerwise or stepwise\n"
     "      sideways %x\n"
     "      ^"),
    (H + X + "  schedule {\n  }\n  %y = io.output(%x)\n}",
     "line 5, column 3: nodes must come before the schedule block\n"
     "    %y = io.output(%x)\n"
     "    ^"),
    ('graph @g attributes {dt = 0.001, rest = "value"} {\n}',
     "line 1, column 34: unknown graph attribute 'rest'; known: dt, reset, cuba_current, "
     "method\n"
     '  graph @g attributes {dt = 0.001, rest = "value"} {\n'
     "                                   ^"),
    ('graph @g attributes {reset = "zero"} {\n}',
     "line 1, column 20: graph attribute reset must be one of 'value', 'subtract', got 'zero'\n"
     '  graph @g attributes {reset = "zero"} {\n'
     "                     ^"),
    (H + '  %"x = io.input() {type = f32[3]}\n}',
     "line 2, column 4: unterminated string: strings are JSON, with line breaks and quotes "
     "escaped\n"
     '    %"x = io.input() {type = f32[3]}\n'
     "     ^"),
    (H + "  %x = io.input() {type = f32[3]} loc(nir)\n}",
     "line 2, column 39: expected a quoted location in loc(...), found 'nir'\n"
     "    %x = io.input() {type = f32[3]} loc(nir)\n"
     "                                        ^"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_error_messages(text: str, message: str) -> None:
    with pytest.raises(ParseError) as e:
        parse(text)
    assert str(e.value) == message


def test_error_carries_position_fields() -> None:
    with pytest.raises(ParseError) as e:
        parse(H + X + "  %y = io.output(%z)\n}")
    assert (e.value.line, e.value.column) == (3, 18)
    assert e.value.reason == "%z is not a node of graph @g"


def test_non_string_input_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="expected IR text as a str, got bytes"):
        parse(b"graph @g {}")  # type: ignore[arg-type]


def test_parse_file(tmp_path: Path) -> None:
    path = tmp_path / "zoo.snir"
    path.write_text(print_graph(zoo_graph(), debug_info=True), encoding="utf-8")
    assert parse_file(path) == zoo_graph()
    path.write_text("graph @g {", encoding="utf-8")
    with pytest.raises(ParseError) as e:
        parse_file(path)
    assert e.value.__notes__ == [f"in IR file {str(path)!r}"]
    with pytest.raises(ModelFileError, match=r"cannot read IR file .*missing\.snir"):
        parse_file(tmp_path / "missing.snir")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ModelFileError, match="cannot read IR file"):
        parse_file(path)


_TOKENS = ["%", "@", "[", "]", "{", "}", "(", ")", ",", ":", "=", '"', "-", "none", "1.5",
           "-1", "f32[", "spike<", "[t-", "schedule {", "loc(", "//", "\n", "inf", "true"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 6),
                          st.sampled_from(["", *_TOKENS])), min_size=1, max_size=4))
def test_corrupted_text_raises_only_parse_errors(edits: list[tuple[int, int, str]]) -> None:
    # Whatever the damage, the user sees a ParseError (or a graph), never a bare exception.
    text = print_graph(zoo_graph(), debug_info=True)
    for pos, length, token in edits:
        i = pos % len(text)
        text = text[:i] + token + text[i + length:]
    with contextlib.suppress(ParseError):
        parse(text)


def test_special_float_keywords() -> None:
    # Attribute values may be non-finite floats (rejected by dt validation, not by syntax).
    with pytest.raises(ParseError, match="dt must be finite and > 0, got inf"):
        parse("graph @g attributes {dt = inf} {\n}")
    with pytest.raises(ParseError, match="dt must be finite and > 0, got -inf"):
        parse("graph @g attributes {dt = -inf} {\n}")
    with pytest.raises(ParseError, match="got nan"):
        parse("graph @g attributes {dt = nan} {\n}")
