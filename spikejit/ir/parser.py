"""Parse the textual IR back into a :class:`Graph` (grammar in ``docs/ir.md``).

The parser is the inverse of :func:`spikejit.ir.printer.print_graph`:
``parse(print_graph(g)) == g`` for every graph whose attributes are IR values, and source
locations survive when the text was printed with ``debug_info=True``. It is a small
hand-written recursive-descent parser over the whole text (no ``eval``, no regex over
lines), so every error carries a line, a column and the offending source line with a caret.

What the parser checks, beyond syntax: op mnemonics exist, attribute names belong to the
op, required attributes are present, each op's own attribute validation, node ids are
unique, and every operand or schedule entry names a node of the graph (forward references
are fine: recurrent graphs read later nodes with a delay). Types, arity, cycles and
parameters are the verifier's business, so a syntactically sound but invalid graph still
parses and :func:`spikejit.ir.verify.verify` then names the node at fault.

Why one module of ~570 lines: it is one grammar, one production per method of one
scanner class, read top to bottom next to ``docs/ir.md``; split across files, the
productions that call each other would be harder to follow, not easier.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

from spikejit.errors import IRError, ModelFileError, ParseError, SpikejitError
from spikejit.ir.derived import DERIVED_FUNCTIONS, DerivedParam
from spikejit.ir.graph import Graph, GraphAttrs, Node, Use
from spikejit.ir.ops import OPS, Op
from spikejit.ir.schedule import SEGMENT_KINDS, Schedule, Segment
from spikejit.ir.types import DTYPES, ParamRef, TensorType
from spikejit.limits import TEXT_COST, check_text_bytes, max_bytes

_BARE = re.compile(r"[A-Za-z0-9_.:/\-]+")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_INT = re.compile(r"\d+")
#: Whitespace and ``//`` comments, in one match. Possessive (``++``, ``*+``): a plain
#: ``(...)*`` keeps a backtracking entry per repetition, gigabytes for a file of comments.
_SKIP = re.compile(r"(?:[ \t\r\n]++|//[^\n]*+)*+")
_R = TypeVar("_R")
_JSON = json.JSONDecoder()
#: Longest integer literal accepted: anything longer is no sensible size, step or stride
#: (and Python refuses to convert integers of more than 4300 digits from text).
MAX_INT_DIGITS = 18
#: Deepest nesting of list values (attribute lists are at most two levels deep).
MAX_LIST_DEPTH = 16
_GRAPH_ATTRS = tuple(f.name for f in dataclasses.fields(GraphAttrs))
_KEYWORD_VALUES: dict[str, Any] = {
    "none": None,
    "true": True,
    "false": False,
    "nan": math.nan,
    "inf": math.inf,
}


def parse(text: str) -> Graph:
    """Parse the textual IR of one graph.

    Args:
        text: IR text as written by :func:`~spikejit.ir.printer.print_graph`. Whitespace
            and line breaks between tokens are free; ``//`` starts a comment that runs to
            the end of the line.

    Returns:
        The graph, unverified (call :func:`spikejit.ir.verify.verify` to check it).

    Raises:
        ParseError: The text is not a graph, with the line, column and a caret.
    """
    if not isinstance(text, str):
        raise ParseError(f"expected IR text as a str, got {type(text).__name__}", line=1,
                         column=1)
    return _Parser(text).graph()


def parse_file(path: str | os.PathLike[str]) -> Graph:
    """Parse a UTF-8 text file holding one graph (e.g. ``model.snir``).

    The file's size is checked against the limit before it is read (text counts
    :data:`~spikejit.limits.TEXT_COST` times over, for the graph parsed from it), and no
    more than that is read, whatever the size said (a device or a growing file).

    Raises:
        ModelFileError: The file cannot be read or is not UTF-8.
        SizeLimitError: The file is too big to parse within the limit.
        ParseError: The text is not a graph; a note names the file.
    """
    where = f"IR file {os.fspath(path)!r}"
    try:
        with open(path, encoding="utf-8") as f:
            check_text_bytes(os.fstat(f.fileno()).st_size, where)
            # In chunks, and no more than the limit allows: the size said nothing true
            # if the file grew or is a device (and read(n) reserves n bytes up front).
            most, total = max_bytes() // TEXT_COST, 0
            chunks: list[str] = []
            while chunk := f.read(2**20):
                total += len(chunk)  # characters: at least a byte each
                if total > most:
                    check_text_bytes(total, where)
                chunks.append(chunk)
            text = "".join(chunks)
    except (OSError, UnicodeDecodeError) as e:
        raise ModelFileError(f"cannot read {where}: {e}") from None
    try:
        return parse(text)
    except ParseError as e:
        e.add_note(f"in {where}")
        raise


class _Parser:
    """Cursor over the text with one method per grammar rule."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0  # nesting of list values
        # Lines are counted only when an error or a message needs one: a table of line
        # starts took ~60 bytes per line, so 20 MB of blank lines took over a gigabyte.

    # -- errors and low-level scanning ----------------------------------------------
    def error(self, reason: str, pos: int | None = None) -> ParseError:
        pos = self.pos if pos is None else pos
        start = self.text.rfind("\n", 0, pos) + 1
        end = self.text.find("\n", pos)
        source = self.text[start : len(self.text) if end < 0 else end]
        return ParseError(reason, line=self.line_of(pos), column=pos - start + 1,
                          source_line=source)

    def line_of(self, pos: int) -> int:
        """1-based line number of a position (only "\\n" ends a line: names may legally
        hold other Unicode line separators)."""
        return self.text.count("\n", 0, pos) + 1

    def skip(self) -> None:
        """Skip whitespace and ``//`` comments."""
        m = _SKIP.match(self.text, self.pos)
        assert m is not None  # the pattern matches the empty string
        self.pos = m.end()

    def at(self, token: str) -> bool:
        self.skip()
        return self.text.startswith(token, self.pos)

    def accept(self, token: str) -> bool:
        if self.at(token):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str, context: str) -> None:
        if not self.accept(token):
            raise self.error(f"expected '{token}' {context}, found {self.found()}")

    def found(self) -> str:
        """A short description of what is at the cursor, for error messages."""
        self.skip()
        if self.pos >= len(self.text):
            return "end of input"
        m = _BARE.match(self.text, self.pos)
        token = m.group() if m else self.text[self.pos]
        return repr(token[:20])

    def word(self, what: str) -> str:
        self.skip()
        m = _WORD.match(self.text, self.pos)
        if m is None:
            raise self.error(f"expected {what}, found {self.found()}")
        self.pos = m.end()
        return m.group()

    def string(self) -> str:
        """A JSON string literal at the cursor."""
        start = self.pos
        try:
            value, end = _JSON.raw_decode(self.text, self.pos)
        except json.JSONDecodeError as e:
            if e.msg.startswith(("Unterminated string", "Invalid control character")):
                raise self.error("unterminated string: strings are JSON, with line breaks "
                                 "and quotes escaped", start) from None
            raise self.error(f"malformed string: {e.msg}", e.pos) from None
        if not isinstance(value, str):  # cannot happen: the cursor is on '"'
            raise self.error("expected a string", start)
        self.pos = end
        return value

    def name(self, sigil: str, what: str, *, param: bool = False) -> str:
        """A ``%id`` / ``@name``: the sigil, then a bare name or a JSON string.

        For a parameter reference the name is directly followed by ``:``; since bare names
        may contain ``:`` too, the last ``:`` of a bare run is that separator (the printer
        always writes ``@name: type``).
        """
        self.expect(sigil, f"before {what}")
        if self.text.startswith('"', self.pos):
            return self.string()
        m = _BARE.match(self.text, self.pos)
        if m is None:
            raise self.error(f"expected {what} after '{sigil}' (letters, digits, _ . : / - "
                             f"or a quoted string), found {self.found()}")
        name = m.group()
        if param and name.endswith(":"):
            name = name[:-1]
            self.pos = m.end() - 1
            if not name:
                raise self.error(f"expected {what} after '{sigil}'")
        else:
            self.pos = m.end()
        return name

    # -- values ---------------------------------------------------------------------
    def value(self) -> Any:
        """An attribute value: none, bool, number, string, list, ``@param: type`` or type."""
        self.skip()
        start = self.pos
        c = self.text[self.pos] if self.pos < len(self.text) else ""
        if c == '"':
            return self.string()
        if c == "[":
            return self.list_value()
        if c == "@":
            return self.param_ref()
        if c and (c.isdigit() or c in "+-."):
            if self.text.startswith("-inf", self.pos):
                self.pos += 4
                return -math.inf
            m = _NUMBER.match(self.text, self.pos)
            if m is None:
                raise self.error(f"malformed number {self.found()}")
            token = m.group()
            if any(ch in token for ch in ".eE"):
                self.pos = m.end()
                return float(token)
            self._check_digits(token.lstrip("+-"))
            self.pos = m.end()
            return int(token)
        if _WORD.match(self.text, self.pos):
            word = self.word("a value")
            if word in _KEYWORD_VALUES:
                return _KEYWORD_VALUES[word]
            if word in DTYPES or word == "spike":
                self.pos = start
                return self.tensor_type()
            if self.text.startswith("[", self.pos):
                raise self.error(f"unknown dtype {word!r}; expected one of {', '.join(DTYPES)}",
                                 start)
            raise self.error(f"unknown value {word!r}: expected none, true, false, a number, "
                             f"a string, a list, @param: type, or a type", start)
        raise self.error(f"expected a value, found {self.found()}")

    def list_value(self) -> tuple[Any, ...]:
        if self.depth >= MAX_LIST_DEPTH:
            raise self.error(f"lists nested deeper than {MAX_LIST_DEPTH} levels")
        self.expect("[", "to open a list")
        self.depth += 1
        items: list[Any] = []
        if not self.accept("]"):
            items.append(self.value())
            while self.accept(","):
                items.append(self.value())
            self.expect("]", "to close the list")
        self.depth -= 1
        # Tuples, not lists: ops and graphs must stay hashable.
        return tuple(items)

    def param_ref(self) -> ParamRef:
        start = self.pos
        name = self.name("@", "a parameter name", param=True)
        if not self.at(":") and ":" in name:
            raise self.error(f"expected ':' between parameter @{name} and its type; a ':' "
                             f"inside a bare name belongs to the name, so write "
                             f"'@name: type' with a space after the ':'")
        self.expect(":", f"between parameter @{name} and its type")
        ty = self.tensor_type()
        return self.build(lambda: ParamRef(name, ty), start)

    def tensor_type(self) -> TensorType:
        """``f32[4,3]``, ``f32[]`` or ``spike<f32[4]>``."""
        self.skip()
        start = self.pos
        spike = self.accept("spike")
        if spike:
            self.expect("<", "after 'spike'")
        self.skip()
        dtype_pos = self.pos
        dtype = self.word("a type such as f32[4]")
        if dtype not in DTYPES:
            raise self.error(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}",
                             dtype_pos)
        self.expect("[", f"after dtype {dtype}")
        dims: list[int] = []
        if not self.accept("]"):
            dims.append(self.integer("a dimension"))
            while self.accept(","):
                dims.append(self.integer("a dimension"))
            self.expect("]", "to close the shape")
        if spike:
            self.expect(">", "to close 'spike<'")
        return self.build(lambda: TensorType(tuple(dims), dtype, spike), start)

    def integer(self, what: str) -> int:
        self.skip()
        m = _INT.match(self.text, self.pos)
        if m is None:
            raise self.error(f"expected {what} (an integer >= 0), found {self.found()}")
        self._check_digits(m.group())
        self.pos = m.end()
        return int(m.group())

    def _check_digits(self, digits: str) -> None:
        if len(digits) > MAX_INT_DIGITS:
            raise self.error(f"integer {digits[:12]}... has {len(digits)} digits; at most "
                             f"{MAX_INT_DIGITS} are accepted")

    def attr_dict(self, context: str) -> list[tuple[str, Any, int]]:
        """``{key = value, ...}`` as (key, value, position) triples; keys must be unique."""
        self.expect("{", f"to open the attributes of {context}")
        out: list[tuple[str, Any, int]] = []
        if self.accept("}"):
            return out
        while True:
            self.skip()
            key_pos = self.pos
            key = self.word(f"an attribute name of {context}")
            if any(k == key for k, _, _ in out):
                raise self.error(f"attribute {key!r} of {context} is given twice", key_pos)
            self.expect("=", f"after attribute name {key!r}")
            out.append((key, self.value(), key_pos))
            if not self.accept(","):
                break
        self.expect("}", f"to close the attributes of {context}")
        return out

    def build(self, make: Callable[[], _R], pos: int, prefix: str = "") -> _R:
        """Call a constructor, turning its validation error into a ParseError at ``pos``."""
        try:
            return make()
        except IRError as e:
            raise self.error(prefix + e.reason, pos) from None
        except SpikejitError as e:
            raise self.error(prefix + str(e), pos) from None

    # -- graph structure --------------------------------------------------------------
    def graph(self) -> Graph:
        self.skip()
        if self.pos >= len(self.text):
            raise self.error("empty input: expected 'graph @name {'")
        head = self.word("'graph'")
        if head != "graph":
            raise self.error(f"expected 'graph', found {head!r}", self.pos - len(head))
        name = self.name("@", "the graph name")
        attrs = GraphAttrs()
        if self.at("attributes"):
            self.pos += len("attributes")
            attrs = self.graph_attrs()
        self.expect("{", "to open the graph body")
        body = self.pos - 1
        nodes: list[Node] = []
        node_pos: dict[str, int] = {}
        uses: list[tuple[str, int]] = []
        schedule: Schedule | None = None
        params: tuple[tuple[ParamRef, ...], tuple[DerivedParam, ...]] | None = None
        while not self.at("}"):
            if self.pos >= len(self.text):
                raise self.error(f"graph @{name} is not closed: expected '}}' at the end of "
                                 f"its body (opened on line {self.line_of(body)})")
            if self.at("%"):
                if schedule is not None:
                    raise self.error("nodes must come before the schedule block")
                if params is not None:
                    raise self.error("nodes must come before the params block")
                node, operand_pos = self.node()
                if node.id in node_pos:
                    first = self.line_of(node_pos[node.id])
                    raise self.error(f"node id %{node.id} is already defined on line {first}",
                                     operand_pos[0][1])
                node_pos[node.id] = operand_pos[0][1]
                nodes.append(node)
                uses.extend(operand_pos[1:])
            elif self.at("params") and params is None and schedule is None:
                self.pos += len("params")
                params = self.params_block()
            elif self.at("schedule") and schedule is None:
                self.pos += len("schedule")
                schedule, refs = self.schedule()
                uses.extend(refs)
            else:
                expected = "'%id = op(...)', 'schedule {' or '}'"
                if schedule is not None:
                    expected = "'}' after the schedule block"
                elif params is not None:
                    expected = "'schedule {' or '}' after the params block"
                raise self.error(f"expected {expected}, found {self.found()}")
        self.expect("}", "to close the graph body")
        self.skip()
        if self.pos < len(self.text):
            raise self.error(f"unexpected text after the graph: {self.found()}")
        for ref, pos in uses:
            if ref not in node_pos:
                raise self.error(f"%{ref} is not a node of graph @{name}", pos)
        retained, derived = params if params is not None else ((), ())
        return self.build(lambda: Graph(tuple(nodes), name, attrs, schedule, derived, retained),
                          0)

    def params_block(self) -> tuple[tuple[ParamRef, ...], tuple[DerivedParam, ...]]:
        """``{ @name: type ... @name: type = fn(@a: type, ...) {attrs} ... }``: retained
        parameters (no ``=``) first, then derived ones."""
        self.expect("{", "after 'params'")
        retained: list[ParamRef] = []
        derived: list[DerivedParam] = []
        while not self.at("}"):
            self.skip()
            start = self.pos
            if not self.at("@"):
                raise self.error(f"expected '@name: type' or '}}' in the params block, found "
                                 f"{self.found()}")
            ref = self.param_ref()
            if not self.accept("="):
                if derived:
                    raise self.error(f"retained parameter @{ref.name} must come before the "
                                     f"derived parameters", start)
                retained.append(ref)
                continue
            self.skip()
            fn_pos = self.pos
            fn = self.word(f"a function name for derived parameter @{ref.name}")
            if fn not in DERIVED_FUNCTIONS:
                raise self.error(f"unknown function {fn!r} for derived parameter @{ref.name}; "
                                 f"known: {', '.join(sorted(DERIVED_FUNCTIONS))}", fn_pos)
            self.expect("(", f"after {fn}")
            args: list[ParamRef] = []
            if not self.accept(")"):
                args.append(self.param_ref())
                while self.accept(","):
                    args.append(self.param_ref())
                self.expect(")", f"to close the arguments of @{ref.name}")
            items = self.attr_dict(f"@{ref.name}") if self.at("{") else []
            attrs = tuple((key, value) for key, value, _ in items)
            make = functools.partial(DerivedParam, ref.name, ref.type, fn, tuple(args), attrs)
            derived.append(self.build(make, start))
        self.expect("}", "to close the params block")
        return tuple(retained), tuple(derived)


    def graph_attrs(self) -> GraphAttrs:
        start = self.pos
        items = self.attr_dict("the graph")
        kwargs: dict[str, Any] = {}
        for key, value, pos in items:
            if key not in _GRAPH_ATTRS:
                raise self.error(f"unknown graph attribute {key!r}; known: "
                                 f"{', '.join(_GRAPH_ATTRS)}", pos)
            kwargs[key] = value
        return self.build(lambda: GraphAttrs(**kwargs), start)

    def node(self) -> tuple[Node, list[tuple[str, int]]]:
        """One node; also returns (id, position) of its own id and of every operand."""
        self.skip()
        id_pos = self.pos
        node_id = self.name("%", "a node id")
        self.expect("=", f"after %{node_id}")
        self.skip()
        op_pos = self.pos
        mnemonic = self.word(f"an op name for %{node_id}")
        cls = OPS.get(mnemonic)
        if cls is None:
            raise self.error(f"unknown op {mnemonic!r}; known ops: {', '.join(sorted(OPS))}",
                             op_pos)
        refs = [(node_id, id_pos)]
        self.expect("(", f"after {mnemonic}")
        inputs: list[Use] = []
        if not self.accept(")"):
            inputs.append(self.use(refs))
            while self.accept(","):
                inputs.append(self.use(refs))
            self.expect(")", f"to close the operands of %{node_id}")
        items = self.attr_dict(f"%{node_id}") if self.at("{") else []
        op = self.make_op(cls, node_id, items, op_pos)
        ty = None
        if self.accept(":"):
            ty = self.tensor_type()
        loc = ""
        if self.at("loc"):
            self.pos += len("loc")
            self.expect("(", "after 'loc'")
            self.skip()
            if not self.text.startswith('"', self.pos):
                raise self.error(f"expected a quoted location in loc(...), found {self.found()}")
            loc = self.string()
            self.expect(")", "to close loc(...)")
        node = self.build(lambda: Node(node_id, op, tuple(inputs), ty, loc), id_pos)
        return node, refs

    def use(self, refs: list[tuple[str, int]]) -> Use:
        """``%a`` or ``%a[t-k]``."""
        self.skip()
        pos = self.pos
        producer = self.name("%", "an operand")
        delay = 0
        if self.accept("["):
            self.expect("t", f"in the delay of %{producer}: write %{producer}[t-k]")
            self.expect("-", f"in the delay of %{producer}: uses read the past, %{producer}[t-k]")
            delay = self.integer(f"the delay of %{producer} in steps")
            self.expect("]", f"to close the delay of %{producer}")
        refs.append((producer, pos))
        return Use(producer, delay)

    def make_op(self, cls: type[Op], node_id: str, items: list[tuple[str, Any, int]],
                pos: int) -> Op:
        prefix = f"%{node_id} ({cls.mnemonic}): "
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key, _, key_pos in items:
            if key not in fields:
                raise self.error(f"{prefix}unknown attribute {key!r}; {cls.mnemonic} has "
                                 f"{', '.join(fields) or 'no attributes'}", key_pos)
        given = {key for key, _, _ in items}
        missing = [n for n, f in fields.items() if n not in given
                   and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise self.error(f"{prefix}missing attribute(s) {', '.join(missing)}", pos)
        for key, value, key_pos in items:
            # NOTE: ops accept None in any parameter field, so a required one is checked here.
            if value is None and fields[key].default is dataclasses.MISSING:
                raise self.error(f"{prefix}attribute {key!r} is required and cannot be none",
                                 key_pos)
        kwargs = {key: value for key, value, _ in items}
        return self.build(lambda: cls(**kwargs), pos, prefix)

    def schedule(self) -> tuple[Schedule, list[tuple[str, int]]]:
        self.expect("{", "after 'schedule'")
        segments: list[Segment] = []
        refs: list[tuple[str, int]] = []
        while not self.at("}"):
            self.skip()
            kind_pos = self.pos
            kind = self.word("a schedule segment ('layerwise' or 'stepwise') or '}'")
            if kind not in SEGMENT_KINDS:
                raise self.error(f"unknown schedule segment {kind!r}; expected "
                                 f"{' or '.join(SEGMENT_KINDS)}", kind_pos)
            order = "dfs"
            if self.accept("("):
                order = self.word("a step order")
                self.expect(")", "to close the step order")
            members: list[str] = []
            if self.at("%"):
                while True:
                    self.skip()
                    ref_pos = self.pos
                    members.append(self.name("%", "a node id"))
                    refs.append((members[-1], ref_pos))
                    if not self.accept(","):
                        break
            parallel: list[str] = []
            if self.accept("parallel"):  # layerwise nodes run as an associative scan
                self.expect("(", "after 'parallel'")
                while True:
                    self.skip()
                    ref_pos = self.pos
                    parallel.append(self.name("%", "a node id"))
                    refs.append((parallel[-1], ref_pos))
                    if not self.accept(","):
                        break
                self.expect(")", "to close the parallel nodes")
            segment = functools.partial(Segment, kind, tuple(members), order, tuple(parallel))
            segments.append(self.build(segment, kind_pos))
        self.expect("}", "to close the schedule")
        return Schedule(tuple(segments)), refs
