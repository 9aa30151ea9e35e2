"""One exact-message test for every error class of spikejit.errors.

Each case provokes the error through the public API (not by constructing it) and compares
the whole message, so a change of wording is a deliberate, reviewed change. A final test
checks that every class in the module is covered here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import nir
import numpy as np
import pytest
from helpers_nir import lif
from helpers_robustness import max_bytes

import spikejit
from spikejit import errors
from spikejit.errors import (
    AttributeError_,
    FrontendError,
    IRError,
    LoweringError,
    ModelFileError,
    NonFiniteError,
    OptionError,
    OutputError,
    ParamError,
    ParseError,
    PassError,
    ScheduleError,
    ShapeError,
    SizeLimitError,
    SpikejitError,
    VerifyError,
)
from spikejit.ir import Graph, Node, TensorType, Use, parse, verify
from spikejit.ir import ops as O
from spikejit.limits import check_bytes

X = Node("x", O.Input(type=TensorType((3,))), ())


def recurrent() -> nir.NIRGraph:
    return nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([3])), "lif": lif(3),
               "rec": nir.Linear(weight=np.eye(3, dtype=np.float32)),
               "y": nir.Output(output_type=np.array([3]))},
        edges=[("x", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "y")])


@pytest.fixture
def user_neuron() -> Iterator[str]:
    def update(xp: Any, s: Any, p: Any, x: Any, h: Any) -> Any:
        raise ZeroDivisionError("division by zero")

    spikejit.define_neuron("robust_bad", state={"v": 0.0}, params={}, update=update,
                           spike=lambda xp, s, p: s["v"])
    yield "user.robust_bad"
    spikejit.undefine_neuron("robust_bad")


def _raise_ir_error(op: str) -> None:
    b = spikejit.GraphBuilder(dt=1e-3)
    b.input("x", (2,)).add("n", op, inputs=["x"]).output("y", "n")
    graph, params = b.build()
    spikejit.interpret(graph, params, np.zeros((2, 1, 2), np.float32))


def _raise_lowering_error() -> None:
    from spikejit.lowering.emit import LoweringOptions, Program
    from spikejit.lowering.surrogates import DEFAULT_SURROGATE, resolve_surrogate

    graph = Graph((X, Node("y", O.Output(), (Use("x"),))), name="g")
    Program(graph, LoweringOptions(resolve_surrogate(DEFAULT_SURROGATE, None)))


def _raise_non_finite() -> None:
    model = spikejit.compile(recurrent(), dt=1e-3, check_finite=True)
    x = np.zeros((5, 1, 3), np.float32)
    x[2, 0, 1] = np.nan
    model(x)


def _raise_size_limit() -> None:
    with max_bytes(1000):
        check_bytes(4096, "the thing")


CASES: dict[type[SpikejitError], tuple[Callable[[], Any], str]] = {
    SpikejitError: (lambda: TensorType((2, -1)),
                    "tensor type: dimension -1 of shape (2, -1) must be an integer >= 0"),
    VerifyError: (lambda: verify(Graph((X, X), name="g")),
                  "%x (io.input): node id is used by more than one node"),
    ShapeError: (lambda: verify(Graph((X, Node("y", O.Output(), (Use("x"),),
                                               TensorType((2,)))), name="g")),
                 "%y (io.output): records type f32[2], but its operands give f32[3]\n"
                 "  %x = io.input() {type = f32[3]}\n"
                 "  %y = io.output(%x) : f32[2]\n"
                 "  ^^ records type f32[2], but its operands give f32[3]"),
    AttributeError_: (lambda: spikejit.GraphBuilder().add("x", "io.input"),
                      "%x (io.input): use GraphBuilder.input(id, shape) for graph inputs"),
    ParseError: (lambda: parse("graph @g {\n  %x = io.input() {type = f33[3]}\n}"),
                 "line 2, column 27: unknown dtype 'f33'; expected one of f16, bf16, f32, f64\n"
                 "    %x = io.input() {type = f33[3]}\n"
                 "                            ^"),
    ParamError: (lambda: verify(parse("graph @g {\n  %x = io.input() {type = f32[3]}\n"
                                      "  %s = nn.scale(%x) {scale = @s.scale: f32[3]}\n"
                                      "  %y = io.output(%s)\n}"), {}),
                 "missing parameter(s) @s.scale (used by %s)"),
    ModelFileError: (lambda: spikejit.load("/nonexistent/m.sjit.npz"),
                     "model file '/nonexistent/m.sjit.npz' does not exist"),
    FrontendError: (lambda: spikejit.from_nir(42),
                    "NIR graph: expected a nir.NIRGraph (with 'nodes' and 'edges'), got int"),
    PassError: (lambda: spikejit.passes.Pipeline.parse("nope"),
                "pipeline 'nope': unknown pass 'nope'; known passes: canonicalize, cse, dce, "
                "fold-affine, fold-scale, fuse-synapse-neuron, merge-fanin, schedule, "
                "shape-inference; presets: O0, O1, O2"),
    LoweringError: (_raise_lowering_error,
                    "graph @g has no schedule; run the 'schedule' pass first "
                    "(spikejit.compile does)"),
    ScheduleError: (lambda: spikejit.compile(recurrent(), dt=1e-3, schedule="layerwise"),
                    "%lif (snn.lif) from nir:lif: is on a cycle (%lif -> %rec -> %lif[t-1]), "
                    "which cannot run layerwise (each node over the whole time axis); use "
                    "schedule='auto' or 'stepwise'"),
    SizeLimitError: (_raise_size_limit,
                     "the thing would take 4.0 KiB (4,096 bytes), more than the limit of 1,000 "
                     "bytes (raise it with the environment variable SPIKEJIT_MAX_BYTES or "
                     "spikejit.limits.set_max_bytes)"),
    OptionError: (lambda: spikejit.compile(recurrent(), dt=1e-3, schedule="fast"),
                  "compile: schedule must be one of auto, layerwise, stepwise, got 'fast'"),
    OutputError: (lambda: spikejit.save("/", *spikejit.GraphBuilder().input("x", (3,))
                                        .output("y", "x").build()),
                  "cannot write '/': it is a directory; spikejit writes only regular files"),
    NonFiniteError: (_raise_non_finite,
                     "%x (io.input) from nir:x: the input data holds NaN or Inf at time step 2 "
                     "(found by check_finite=True)"),
}


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_exact_message(cls: type[SpikejitError]) -> None:
    provoke, message = CASES[cls]
    with pytest.raises(cls) as info:
        provoke()
    assert type(info.value) is cls
    text = str(info.value)
    # The ScheduleError carries the printed IR around the node: compare its first line.
    assert (text.split("\n")[0] if cls is ScheduleError else text) == message


def test_exact_message_of_ir_error(user_neuron: str) -> None:
    with pytest.raises(IRError) as info:
        _raise_ir_error(user_neuron)
    assert type(info.value) is IRError
    assert str(info.value) == ("%n (user.robust_bad): the update function raised "
                               "ZeroDivisionError: division by zero")
    assert (info.value.node_id, info.value.op_name) == ("n", "user.robust_bad")


def test_structured_fields() -> None:
    with pytest.raises(NonFiniteError) as info:
        _raise_non_finite()
    assert (info.value.node_id, info.value.step, info.value.op_name) == ("x", 2, "io.input")
    with pytest.raises(SizeLimitError) as size:
        _raise_size_limit()
    assert (size.value.nbytes, size.value.limit) == (4096, 1000)
    with pytest.raises(ParseError) as parse_error:
        parse("graph @g {\n  %x = io.input() {type = f33[3]}\n}")
    assert (parse_error.value.line, parse_error.value.column) == (2, 27)


def test_every_error_class_is_covered() -> None:
    classes = {c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, SpikejitError)}
    assert classes == {*CASES, IRError}
    assert set(errors.__all__) == {c.__name__ for c in classes}
