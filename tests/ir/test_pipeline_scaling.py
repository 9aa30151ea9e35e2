"""The IR pipeline does work linear in the graph size, and verifies each new graph once.

Nothing here is timed (the machine is shared; timings are recorded in
docs/performance.md). Work is counted instead: the number of Python-level calls into
spikejit's own code (functions, comprehensions and generator resumptions), which is
deterministic. For a cost ``a + b n + c n^2``, the increments from ``n`` to ``2n`` and from
``2n`` to ``4n`` have the ratio 2 when ``c = 0`` and approach 4 when the quadratic term
dominates.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nir
import numpy as np
import pytest

import spikejit
from spikejit.compiler import clear_cache, pipeline_for
from spikejit.errors import ShapeError, VerifyError
from spikejit.frontends.nir.importer import from_nir
from spikejit.ir import Graph, GraphAttrs, Node, TensorType, Use, infer_types
from spikejit.ir import ops as O
from spikejit.ir.verify import verify
from spikejit.passes import Pass, PassStep, Pipeline

ROOT = str(Path(spikejit.__file__).resolve().parent)
# The module (``spikejit.ir.verify`` as an attribute is the function).
verify_module = importlib.import_module("spikejit.ir.verify")
WIDTH = 4


def spikejit_calls(fn: Callable[[], Any]) -> int:
    """How many times Python enters a code object of the spikejit package while ``fn``
    runs."""
    count = 0

    def hook(frame: Any, event: str, arg: Any) -> None:
        nonlocal count
        if event == "call" and frame.f_code.co_filename.startswith(ROOT):
            count += 1

    sys.setprofile(hook)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def count_full_verifications(monkeypatch: pytest.MonkeyPatch) -> list[Graph]:
    """The graphs the whole verifier runs on from now on (a list that fills up)."""
    calls: list[Graph] = []
    real = verify_module._verify_graph

    def counted(graph: Graph) -> None:
        calls.append(graph)
        real(graph)

    monkeypatch.setattr(verify_module, "_verify_graph", counted)
    return calls


def growth(cost: Callable[[int], int], n: int) -> float:
    """``(cost(4n) - cost(2n)) / (cost(2n) - cost(n))``: 2 for linear cost, up to 4 for
    quadratic."""
    c1, c2, c4 = cost(n), cost(2 * n), cost(4 * n)
    return (c4 - c2) / (c2 - c1)


def nir_chain(n_layers: int) -> nir.NIRGraph:
    """``input -> (Affine -> LIF) * n_layers -> output``, as benchmarks/spikejit_runner.py
    generates for the 1,000-node figure (nir's own quadratic type check off)."""
    rng = np.random.default_rng(0)
    full = lambda v: np.full(WIDTH, v, np.float32)  # noqa: E731
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([WIDTH])})}
    edges = []
    prev = "input"
    for i in range(n_layers):
        nodes[f"fc{i}"] = nir.Affine(rng.standard_normal((WIDTH, WIDTH)).astype(np.float32),
                                     full(0.0))
        nodes[f"lif{i}"] = nir.LIF(tau=full(0.01), r=full(10.0), v_leak=full(0.0),
                                   v_threshold=full(1.0), v_reset=full(0.0))
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        prev = f"lif{i}"
    nodes["output"] = nir.Output(output_type={"output": np.array([WIDTH])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def reversed_chain(n: int) -> Graph:
    """An untyped chain of ``n`` scale nodes printed backwards (outputs first): the worst
    print order for a type inference that rescans the nodes it could not type yet."""
    t = TensorType((WIDTH,))
    nodes = [Node("x", O.Input(type=t))]
    prev = "x"
    for i in range(n):
        nodes.append(Node(f"s{i}", O.Flatten(), (Use(prev),)))
        prev = f"s{i}"
    nodes.append(Node("y", O.Output(), (Use(prev),)))
    return Graph(tuple(reversed(nodes)), "rev", GraphAttrs(dt=1e-3))


def test_compile_does_linear_work_in_the_graph_size() -> None:
    spikejit.compile(nir_chain(2), dt=1e-3)  # one-time set-up out of the count

    def cost(n_layers: int) -> int:
        graph = nir_chain(n_layers)
        clear_cache()
        return spikejit_calls(lambda: spikejit.compile(graph, dt=1e-3))

    assert growth(cost, 40) < 2.2


def test_type_inference_is_linear_for_any_print_order() -> None:
    def cost(n: int) -> int:
        graph = reversed_chain(n)
        return spikejit_calls(lambda: infer_types(graph))

    assert growth(cost, 50) < 2.2
    typed = infer_types(reversed_chain(5))
    assert all(n.type == TensorType((WIDTH,)) for n in typed.nodes)


def test_a_typed_graph_infers_to_itself_and_verifies_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    graph = infer_types(reversed_chain(5))
    assert infer_types(graph) is graph
    calls = count_full_verifications(monkeypatch)
    verify(graph)
    verify(graph)
    assert calls == [graph]


def test_pipeline_reverifies_only_what_a_pass_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    graph, _ = from_nir(nir_chain(3), dt=1e-3)  # verified by the importer
    calls = count_full_verifications(monkeypatch)
    pipeline = pipeline_for()  # shape-inference, O1, schedule
    out = pipeline(graph)
    # shape-inference, canonicalize, cse and dce return their input unchanged, and the
    # scheduler adds only a schedule: nothing needs the whole verifier again.
    assert calls == []
    assert out.schedule is not None and out.nodes is graph.nodes
    assert [t.name for t in pipeline.timings][-1] == "schedule"


def test_pipeline_still_catches_a_bad_pass() -> None:
    graph, _ = from_nir(nir_chain(2), dt=1e-3)

    def wrong_type(g: Graph) -> Graph:
        nodes = tuple(n.replace(type=TensorType((WIDTH + 1,))) if n.id == "lif1" else n
                      for n in g.nodes)
        return g.replace(nodes=nodes)

    def drop_from_schedule(g: Graph) -> Graph:
        scheduled = pipeline_for()(g)
        assert scheduled.schedule is not None
        first, *rest = scheduled.schedule.segments
        bad = dataclasses.replace(first, nodes=first.nodes[1:])
        return g.replace(schedule=dataclasses.replace(scheduled.schedule,
                                                      segments=(bad, *rest)))

    with pytest.raises(ShapeError, match="lif1") as err:
        Pipeline((PassStep(Pass("wrong-type", wrong_type)),))(graph)
    assert "in pass 'wrong-type'" in "".join(getattr(err.value, "__notes__", []))
    with pytest.raises(VerifyError, match="appears 0 times in the schedule"):
        Pipeline((PassStep(Pass("drop-from-schedule", drop_from_schedule)),))(graph)
