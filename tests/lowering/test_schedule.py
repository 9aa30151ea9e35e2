"""The scheduler pass: segments, modes, jacobi order, errors, and a property over random graphs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers_lowering import chain, check_model, params_for, recurrent, ref, spike_input
from hypothesis import given
from strategies import graphs

import spikejit
from spikejit.errors import PassError, ScheduleError
from spikejit.ir import (
    Graph,
    GraphAttrs,
    Node,
    TensorType,
    Use,
    infer_types,
    interpret,
    parse,
    verify,
)
from spikejit.ir import ops as O
from spikejit.ir.analysis import step_order
from spikejit.ir.printer import print_graph
from spikejit.ir.schedule import Segment
from spikejit.passes import run_passes
from spikejit.passes.schedule import cyclic_components, schedule


def _mlp() -> Graph:
    return chain((4,),
                 ("fc1", O.Affine(weight=ref("fc1.weight", (5, 4)), bias=ref("fc1.bias", (5,)))),
                 ("lif1", O.LIF(tau=ref("lif1.tau", (5,)), v_threshold=ref("lif1.v_th", (5,)))),
                 ("fc2", O.Linear(weight=ref("fc2.weight", (2, 5)))),
                 ("lif2", O.LIF(tau=ref("lif2.tau", (2,)), v_threshold=ref("lif2.v_th", (2,)))))


def test_feed_forward_graph_is_one_layerwise_segment() -> None:
    g = schedule(_mlp())
    assert g.schedule is not None
    assert g.schedule.segments == (
        Segment("layerwise", ("x", "fc1", "lif1", "fc2", "lif2", "y")),)


def test_recurrent_component_runs_stepwise_between_layerwise_parts() -> None:
    g = schedule(recurrent())
    text = print_graph(g)
    assert text.endswith(
        "  schedule {\n"
        "    layerwise %x, %fc\n"
        "    stepwise(dfs) %lif, %rec\n"
        "    layerwise %y\n"
        "  }\n"
        "}\n")
    assert parse(text) == g


def test_layerwise_mode_names_the_cycle() -> None:
    with pytest.raises(ScheduleError) as info:
        schedule(recurrent(delay=2), mode="layerwise")
    assert str(info.value).splitlines()[0] == (
        "%lif (snn.lif): is on a cycle (%lif -> %rec -> %lif[t-2]), which cannot run layerwise "
        "(each node over the whole time axis); use schedule='auto' or 'stepwise'")


def test_stepwise_mode_is_one_scan_in_step_order() -> None:
    g = recurrent()
    assert schedule(g, mode="stepwise").schedule.segments == (  # type: ignore[union-attr]
        Segment("stepwise", step_order(g)),)


def test_self_loop_is_a_cyclic_component() -> None:
    nodes = (Node("x", O.Input(type=TensorType((2,)))),
             Node("n", O.LI(tau=ref("n.tau", ())), (Use("x"), Use("n", 1))),
             Node("y", O.Output(), (Use("n"),)))
    g = infer_types(Graph(nodes, attrs=GraphAttrs(dt=1.0)))
    assert cyclic_components(g) == [["n"]]
    assert [s.kind for s in schedule(g).schedule.segments] == [  # type: ignore[union-attr]
        "layerwise", "stepwise", "layerwise"]


def _two_recurrent_layers() -> Graph:
    t = TensorType((3,))
    nodes = (
        Node("x", O.Input(type=t)),
        Node("a", O.LIF(tau=ref("a.tau", ()), v_threshold=ref("a.th", ())),
             (Use("x"), Use("ra", 1))),
        Node("ra", O.Linear(weight=ref("ra.w", (3, 3))), (Use("a"),)),
        Node("fc", O.Linear(weight=ref("fc.w", (3, 3))), (Use("a"),)),
        Node("b", O.LIF(tau=ref("b.tau", ()), v_threshold=ref("b.th", ())),
             (Use("fc"), Use("rb", 1))),
        Node("rb", O.Linear(weight=ref("rb.w", (3, 3))), (Use("b"),)),
        Node("y", O.Output(), (Use("b"),)),
    )
    return infer_types(Graph(nodes, attrs=GraphAttrs(dt=1e-3)))


def test_synapse_between_two_recurrent_layers_runs_layerwise() -> None:
    g = schedule(_two_recurrent_layers())
    assert g.schedule.segments == (  # type: ignore[union-attr]
        Segment("layerwise", ("x",)),
        Segment("stepwise", ("a", "ra")),
        Segment("layerwise", ("fc",)),
        Segment("stepwise", ("b", "rb")),
        Segment("layerwise", ("y",)),
    )
    x = spike_input((20, 2, 3), seed=1, p=0.6)
    assert check_model(g, params_for(g, seed=3), x).flips == 0


def test_jacobi_rewrites_same_step_edges_inside_cycles_only() -> None:
    g = schedule(recurrent(), order="jacobi")
    assert g.node("rec").inputs == (Use("lif", 1),)  # was same-step
    assert g.node("lif").inputs == (Use("fc"), Use("rec", 1))  # already delayed
    assert g.node("y").inputs == (Use("lif"),)  # not in the cycle
    assert g.schedule.segments[1] == Segment("stepwise", ("lif", "rec"), "jacobi")  # type: ignore[union-attr]
    assert schedule(g, order="jacobi") == g  # idempotent


def test_jacobi_model_matches_the_interpreter_on_its_rewritten_graph() -> None:
    g = recurrent(3, 5)
    params = params_for(g, seed=4)
    x = spike_input((30, 2, 3), seed=5, p=0.7)
    dfs = spikejit.compile((g, params))
    for mode in ("auto", "stepwise"):
        jac = spikejit.compile((g, params), order="jacobi", schedule=mode)
        want = interpret(jac.graph, params, x, dtype=np.float32)
        np.testing.assert_array_equal(np.asarray(jac(x)), want)
    # A different discretisation: one more step around the loop changes the spikes.
    assert not np.array_equal(np.asarray(jac(x)), np.asarray(dfs(x)))


def test_pipeline_text_options_and_errors() -> None:
    g = run_passes(recurrent(), "shape-inference,schedule{mode=stepwise,order=jacobi}")
    assert g.schedule.segments[0].kind == "stepwise"  # type: ignore[union-attr]
    assert g.schedule.segments[0].order == "jacobi"  # type: ignore[union-attr]
    with pytest.raises(PassError, match="mode must be one of auto, layerwise, stepwise"):
        run_passes(recurrent(), "schedule{mode=fast}")
    with pytest.raises(PassError, match="order must be one of dfs, jacobi, got 'gauss'"):
        schedule(recurrent(), order="gauss")


@given(graphs(max_nodes=8))
def test_schedule_is_a_valid_topological_cover(g: Graph) -> None:
    cyclic = {n for comp in cyclic_components(g) for n in comp}
    for mode in ("auto", "stepwise"):
        s = schedule(g, mode=mode)
        verify(s)
        assert parse(print_graph(s)) == s
        order = [n for seg in s.schedule.segments for n in seg.nodes]  # type: ignore[union-attr]
        assert sorted(order) == sorted(n.id for n in g.nodes)
        done: set[str] = set()
        for seg in s.schedule.segments:  # type: ignore[union-attr]
            seen: set[str] = set()
            for nid in seg.nodes:
                for u in g.node(nid).inputs:
                    if seg.kind == "layerwise":
                        assert u.node in done, (nid, u)
                    elif u.node not in done:
                        assert u.node in seg.nodes
                        if u.delay == 0 and g.node(nid).op.depends_same_step():
                            assert u.node in seen
                seen.add(nid)
                if seg.kind == "layerwise":
                    assert nid not in cyclic
                    done.add(nid)
            done |= set(seg.nodes)
        if mode == "auto":
            kinds = [seg.kind for seg in s.schedule.segments]  # type: ignore[union-attr]
            assert all(a != b for a, b in itertools.pairwise(kinds))  # merged runs
    if cyclic:
        with pytest.raises(ScheduleError):
            schedule(g, mode="layerwise")
    else:
        assert [seg.kind for seg in schedule(g, mode="layerwise").schedule.segments] == [
            "layerwise"]
