"""Helpers for the lowering tests: build small graphs, compare with the reference interpreter.

The comparison is strict: real values within 1e-5 and spikes identical, except that a spike
may differ where the interpreter's membrane (before the reset) lies within 1e-5 of the
threshold. Such near-threshold flips are counted and returned (never silently accepted);
after the first one, later steps legitimately diverge, so only earlier steps are compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import spikejit
from spikejit.ir import Graph, GraphAttrs, Node, ParamRef, TensorType, Use, infer_types, interpret
from spikejit.ir import ops as O

TOL = 1e-5


def ref(name: str, shape: tuple[int, ...], dtype: str = "f32") -> ParamRef:
    return ParamRef(name, TensorType(shape, dtype))


def chain(in_shape: tuple[int, ...], *layers: tuple[str, O.Op], dt: float | None = 1e-3,
          dtype: str = "f32", **attrs: Any) -> Graph:
    """``x -> layer1 -> layer2 -> ... -> y`` (typed)."""
    nodes = [Node("x", O.Input(type=TensorType(in_shape, dtype)))]
    prev = "x"
    for nid, op in layers:
        nodes.append(Node(nid, op, (Use(prev),)))
        prev = nid
    nodes.append(Node("y", O.Output(), (Use(prev),)))
    return infer_types(Graph(tuple(nodes), attrs=GraphAttrs(dt=dt, **attrs)))


def recurrent(n_in: int = 3, n: int = 4, *, delay: int = 1, reset: str = "value") -> Graph:
    """``x -> fc -> lif <-> rec`` (``rec`` read at ``t-delay``) ``-> y``."""
    nodes = (
        Node("x", O.Input(type=TensorType((n_in,)))),
        Node("fc", O.Affine(weight=ref("fc.weight", (n, n_in)), bias=ref("fc.bias", (n,))),
             (Use("x"),)),
        Node("lif", O.LIF(tau=ref("lif.tau", (n,)), v_threshold=ref("lif.v_threshold", (n,))),
             (Use("fc"), Use("rec", delay))),
        Node("rec", O.Linear(weight=ref("rec.weight", (n, n))), (Use("lif"),)),
        Node("y", O.Output(), (Use("lif"),)),
    )
    return infer_types(Graph(nodes, attrs=GraphAttrs(dt=1e-3, reset=reset)))


def params_for(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """The strategies' well-behaved parameter values (import kept local to the tests)."""
    from strategies import random_params

    return random_params(graph, seed)


def spike_input(shape: tuple[int, ...], seed: int = 0, p: float = 0.3) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < p).astype(np.float32)


# -- the pre-reset membrane, recomputed from the interpreter's traces -------------------------
def _p(node: Node, params: Mapping[str, Any], name: str) -> np.ndarray:
    ref_ = getattr(node.op, name)
    if ref_ is None:
        return np.asarray(O.PARAM_DEFAULTS[name], np.float64)
    return np.asarray(params[ref_.name], np.float64)


def _operand(node: Node, traces: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray:
    total = 0.0
    for u in node.inputs:
        out = np.asarray(traces[u.node]["out"], np.float64)
        if u.delay:
            pad = np.zeros((u.delay, *out.shape[1:]))
            out = np.concatenate([pad, out])[: out.shape[0]]
        total = total + out
    return np.asarray(total)


def membrane_margin(graph: Graph, params: Mapping[str, Any],
                    traces: Mapping[str, Mapping[str, np.ndarray]], nid: str) -> np.ndarray:
    """``|v_pre - threshold|`` per step and element of spiking node ``nid`` (from a zero
    initial state), with ``v_pre`` the membrane the spike compares, before any reset."""
    node = graph.node(nid)
    op = node.op
    xin = _operand(node, traces)
    if isinstance(op, O.Threshold):
        return np.abs(xin - _p(node, params, "threshold"))
    h = graph.attrs.dt
    steps = xin.shape[0]
    v_after = np.asarray(traces[nid]["v"], np.float64)
    v_prev = np.concatenate([np.zeros_like(v_after[:1]), v_after[:-1]])
    if isinstance(op, O.IF):
        v_pre = v_prev + h * _p(node, params, "r") * xin
    else:
        if isinstance(op, O.LIF):
            tau, drive = _p(node, params, "tau"), xin
        else:
            assert isinstance(op, O.CubaLIF)
            i_tr = np.asarray(traces[nid]["i"], np.float64)
            i_prev = np.concatenate([np.zeros_like(i_tr[:1]), i_tr[:-1]])
            tau = _p(node, params, "tau_mem")
            drive = i_tr if graph.attrs.cuba_current == "post" else i_prev
        v_leak, r = _p(node, params, "v_leak"), _p(node, params, "r")
        if graph.attrs.method == "exp":
            v_inf = v_leak + r * drive
            v_pre = v_inf + (v_prev - v_inf) * np.exp(-h / tau)
        else:
            v_pre = v_prev + h / tau * (v_leak - v_prev + r * drive)
    assert v_pre.shape[0] == steps
    return np.abs(v_pre - _p(node, params, "v_threshold"))


@dataclass
class Report:
    """What a comparison found: near-threshold spike flips and where the first one was."""

    flips: int = 0
    first_flip_step: int | None = None
    nodes: list[str] = field(default_factory=list)


def compare_traces(graph: Graph, params: Mapping[str, Any],
                   got: Mapping[str, Mapping[str, Any]],
                   want: Mapping[str, Mapping[str, np.ndarray]]) -> Report:
    """Assert compiled traces ``got`` equal the interpreter's ``want`` (both ``trace=True``
    from a zero state); returns the near-threshold flips found (see module docstring)."""
    report = Report()
    spiking = [nid for nid in want if graph.node(nid).op.spiking]
    first: int | None = None
    for nid in spiking:
        diff = np.asarray(got[nid]["out"]) != want[nid]["out"]
        if diff.any():
            t = int(np.argwhere(diff)[0][0])
            first = t if first is None else min(first, t)
    if first is not None:
        for nid in spiking:
            diff = np.asarray(got[nid]["out"])[first] != want[nid]["out"][first]
            if not diff.any():
                continue
            margin = membrane_margin(graph, params, want, nid)[first][diff]
            assert np.all(margin <= TOL), (
                f"%{nid}: spike differs at step {first} with the membrane "
                f"{margin.max():.3g} away from the threshold (more than {TOL})")
            report.flips += int(diff.sum())
            report.nodes.append(nid)
        report.first_flip_step = first
    upto = slice(None) if first is None else slice(0, first)
    for nid, entry in want.items():
        for var, arr in entry.items():
            np.testing.assert_allclose(np.asarray(got[nid][var])[upto], arr[upto], rtol=TOL,
                                       atol=TOL, err_msg=f"%{nid} {var}")
    return report


def check_model(graph: Graph, params: Mapping[str, Any], x: Any,
                modes: tuple[str, ...] = ("auto", "layerwise", "stepwise"),
                **compile_kwargs: Any) -> Report:
    """Compile ``graph`` in every mode (``layerwise`` skipped on cyclic graphs) and compare
    outputs, final state and traces with the float32 interpreter. Returns the flips."""
    from spikejit.passes.schedule import cyclic_components

    y_ref, s_ref, t_ref = interpret(graph, params, x, dtype=np.float32, return_state=True,
                                    trace=True)
    total = Report()
    for mode in modes:
        if mode == "layerwise" and cyclic_components(graph):
            continue
        # O0: the lowering is under test here, node by node; the passes have their own
        # equivalence tests (tests/passes).
        options = {"passes": "O0", **compile_kwargs}
        model = spikejit.compile((graph, params), schedule=mode, **options)
        y, s, tr = model(x, return_state=True, trace=True)
        rep = compare_traces(graph, params, tr, t_ref)
        if rep.flips == 0:
            _assert_tree_close(y, y_ref, "output")
            _assert_tree_close(s, s_ref, "state")
        total.flips += rep.flips
        total.nodes += rep.nodes
        if rep.first_flip_step is not None:
            total.first_flip_step = rep.first_flip_step
    return total


def _assert_tree_close(got: Any, want: Any, what: str) -> None:
    if isinstance(want, Mapping):
        assert isinstance(got, Mapping) and set(got) == set(want), (what, sorted(got),
                                                                    sorted(want))
        for k in want:
            _assert_tree_close(got[k], want[k], f"{what}[{k!r}]")
        return
    got_arr = np.asarray(got)
    assert got_arr.shape == np.shape(want), (what, got_arr.shape, np.shape(want))
    np.testing.assert_allclose(got_arr, want, rtol=TOL, atol=TOL, err_msg=what)
