"""Pass infrastructure: named ``Graph -> Graph`` functions, a registry and a pipeline.

A pass is a :class:`Pass` (kebab-case name, a function ``run(graph, **options)`` and a
one-line summary). Pipelines are written as text, like MLIR's ``-p``::

    "shape-inference,canonicalize,schedule{mode=auto,order=dfs}"

The :class:`Pipeline` verifies after each pass, can dump the IR after every pass (MLIR's
print-ir-after-all), times each pass, and adds the pass name to any error it raises.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from spikejit.errors import PassError, SpikejitError
from spikejit.ir.graph import Graph
from spikejit.ir.verify import verify

PassFn = Callable[..., Graph]


@dataclass(frozen=True)
class Pass:
    """A named graph transformation.

    Attributes:
        name: Kebab-case name used in pipelines, dumps and errors.
        run: ``run(graph, **options) -> graph``; options are keyword-only.
        summary: One line for ``--help`` and the docs' pass table.
    """

    name: str
    run: PassFn
    summary: str = ""


#: The explicit registry, filled by ``spikejit.passes`` (no import side effects elsewhere).
ALL_PASSES: dict[str, Pass] = {}

#: Named optimisation levels (``"O2"``) -> the passes they stand for in a pipeline string;
#: filled by ``spikejit.passes``.
PRESETS: dict[str, str] = {}


def register_pass(p: Pass) -> Pass:
    """Add a pass to :data:`ALL_PASSES` (its name must be new and kebab-case)."""
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", p.name):
        raise PassError(f"pass name {p.name!r} is not kebab-case")
    if p.name in ALL_PASSES and ALL_PASSES[p.name] is not p:
        raise PassError(f"a pass named {p.name!r} is already registered")
    ALL_PASSES[p.name] = p
    return p


@dataclass(frozen=True)
class PassStep:
    """One pass of a pipeline with its bound options."""

    pass_: Pass
    options: tuple[tuple[str, Any], ...] = ()

    def __str__(self) -> str:
        if not self.options:
            return self.pass_.name
        return self.pass_.name + "{" + ",".join(f"{k}={v}" for k, v in self.options) + "}"


@dataclass
class PassTiming:
    """How long one pass took, and the node count after it."""

    name: str
    seconds: float
    nodes: int


DumpFn = Callable[[int, str, Graph], None]


@dataclass
class Pipeline:
    """An ordered list of passes, run with verification, dumps, timing and error labels."""

    steps: tuple[PassStep, ...]
    verify_each: bool = True
    dump: DumpFn | None = None
    timings: list[PassTiming] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, **kwargs: Any) -> Pipeline:
        """Parse ``"a,b{opt=1,flag=true},c"`` into a pipeline of registered passes."""
        return cls(tuple(_parse_steps(text)), **kwargs)

    def __str__(self) -> str:
        return ",".join(str(s) for s in self.steps)

    def __iter__(self) -> Iterator[PassStep]:
        return iter(self.steps)

    def __call__(self, graph: Graph) -> Graph:
        self.timings = []
        done: list[str] = []
        for i, step in enumerate(self.steps):
            start = time.perf_counter()
            try:
                before, graph = graph, step.pass_.run(graph, **dict(step.options))
                if self.verify_each:
                    # Cheap when the pass returned its (verified) input, or changed only
                    # the schedule: see ``verify``.
                    verify(graph, since=before)
            except SpikejitError as e:
                e.add_note(f"in pass {step.pass_.name!r} (after: {done})")
                raise
            self.timings.append(PassTiming(step.pass_.name, time.perf_counter() - start,
                                           len(graph.nodes)))
            done.append(step.pass_.name)
            if self.dump is not None:
                self.dump(i, step.pass_.name, graph)
        return graph


_STEP = re.compile(r"\s*([A-Za-z][A-Za-z0-9-]*)\s*(\{([^{}]*)\})?\s*(,|$)")


def _parse_steps(text: str) -> Iterator[PassStep]:
    if not isinstance(text, str):
        raise PassError(f"a pipeline must be a string like 'a,b{{opt=1}}', got {text!r}")
    pos = 0
    text = text.strip()
    if not text:
        return
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None:
            raise PassError(f"pipeline {text!r}: cannot read a pass name at column {pos + 1}")
        name = m.group(1)
        if name in PRESETS:
            # A preset stands for its passes, so "O1,fold-affine" composes.
            if m.group(2):
                raise PassError(f"pipeline {text!r}: preset {name!r} takes no options")
            yield from _parse_steps(PRESETS[name])
            pos = m.end()
            if m.group(4) == "" and pos < len(text):
                raise PassError(f"pipeline {text!r}: expected ',' at column {pos + 1}")
            continue
        if name not in ALL_PASSES:
            known = ", ".join(sorted(ALL_PASSES))
            presets = f"; presets: {', '.join(sorted(PRESETS))}" if PRESETS else ""
            raise PassError(f"pipeline {text!r}: unknown pass {name!r}; known passes: "
                            f"{known}{presets}")
        options = _parse_options(text, name, m.group(3) or "")
        yield PassStep(ALL_PASSES[name], options)
        pos = m.end()
        if m.group(4) == "" and pos < len(text):
            raise PassError(f"pipeline {text!r}: expected ',' at column {pos + 1}")


def _parse_options(text: str, name: str, body: str) -> tuple[tuple[str, Any], ...]:
    out: list[tuple[str, Any]] = []
    for item in filter(None, (s.strip() for s in body.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise PassError(f"pipeline {text!r}: option {item!r} of pass {name!r} must be "
                            f"key=value")
        out.append((key, _option_value(raw.strip())))
    return tuple(out)


def _option_value(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            pass
    return raw.strip("\"'")


def run_passes(graph: Graph, pipeline: str | Pipeline, **kwargs: Any) -> Graph:
    """Run a pipeline (text or object) on a graph."""
    if isinstance(pipeline, str):
        pipeline = Pipeline.parse(pipeline, **kwargs)
    return pipeline(graph)


def conditions(p: Pass) -> tuple[str, str]:
    """``(pre, post)``: the ``Pre:`` and ``Post:`` sentences of the pass's module
    docstring (empty strings when it has none)."""
    module = inspect.getmodule(p.run)
    doc = " ".join((module.__doc__ or "").split()) if module is not None else ""
    m = re.search(r"Pre:\s*(.*?)\s*Post:\s*(.*)$", doc)
    return (m.group(1), m.group(2)) if m else ("", "")


def describe(passes: Mapping[str, Pass] | None = None) -> str:
    """A markdown table of the registered passes: name, summary, and the Pre/Post
    conditions of each pass's docstring (for docs and ``--help``)."""
    rows = ["| pass | what it does | requires (pre) | guarantees (post) |", "|---|---|---|---|"]
    for name, p in sorted((passes or ALL_PASSES).items()):
        cells = (p.summary, *conditions(p))
        summary, pre, post = (c.replace("|", "\\|") for c in cells)
        rows.append(f"| `{name}` | {summary} | {pre} | {post} |")
    return "\n".join(rows)
