"""Shared checks and graph strategies of the pass tests: a pass must change nothing a user
can observe, and the strategies make each pass's pattern likely."""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
from hypothesis import strategies as st
from strategies import random_input, random_params

from spikejit.ir import (
    Graph,
    GraphAttrs,
    Node,
    ParamRef,
    TensorType,
    Use,
    infer_types,
    interpret,
    verify,
)
from spikejit.ir import ops as O
from spikejit.passes import ALL_PASSES


def user_params(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Random values for exactly the graph's user parameters: ``random_params`` for those
    nodes read, a value chosen by the name's last part for those only derivations read."""
    rng = np.random.default_rng(seed + 1000)
    base = random_params(graph, seed)
    out: dict[str, np.ndarray] = {}
    dt = graph.attrs.dt or 1.0
    for name, ref in graph.user_param_refs().items():
        if name in base:
            out[name] = base[name]
            continue
        shape, field = ref.type.shape, name.rsplit(".", 1)[-1]
        if field == "weight":
            value = rng.normal(0.0, 1.5 / np.sqrt(max(shape[-1] if shape else 1, 1)), shape)
        elif field.startswith("tau"):
            value = dt * rng.uniform(1.5, 8.0, shape)
        elif "threshold" in field:
            value = rng.uniform(0.1, 0.8, shape)
        else:
            value = rng.uniform(-1.0, 1.0, shape)
        out[name] = value.astype(np.float32)
    return out


def assert_same_outputs(before: Graph, after: Graph, params: dict[str, Any], x: Any,
                        *, exact: bool = False) -> None:
    """Interpret both graphs in float64: spikes identical, values within 1e-6 (or
    bit-identical with ``exact``)."""
    y0 = interpret(before, params, x, dtype=np.float64)
    y1 = interpret(after, params, x, dtype=np.float64)
    if not isinstance(y0, dict):
        y0, y1 = {"y": y0}, {"y": y1}
    assert set(y0) == set(y1)
    for k in y0:
        node = before.node(k) if k in before else None
        spike = node is not None and isinstance(node.type, TensorType) and node.type.spike
        if exact or spike:
            np.testing.assert_array_equal(y1[k], y0[k], err_msg=f"output {k}")
        else:
            np.testing.assert_allclose(y1[k], y0[k], rtol=0, atol=1e-6, err_msg=f"output {k}")


def check_pass(graph: Graph, pipeline: str, seed: int = 0, steps: int = 6,
               exact: bool = False) -> Graph:
    """Run ``pipeline`` and check everything a pass promises; returns the result."""
    from spikejit.passes import run_passes

    after = run_passes(graph, pipeline)
    verify(after)
    assert after.user_param_refs() == graph.user_param_refs()
    params = user_params(graph, seed)
    x = random_input(graph, steps, 2, seed)
    assert_same_outputs(graph, after, params, x, exact=exact)
    return after


# -- graph strategies that give each pass work ----------------------------------------------
@st.composite
def with_duplicates(draw: st.DrawFn, base: st.SearchStrategy[Graph]) -> Graph:
    """A graph plus a copy of one node's strongly connected component (a recurrent loop
    is copied whole, internal uses renamed), read by a new output: CSE has work to do."""
    g = draw(base)
    body = [n for n in g.nodes if not isinstance(n.op, O.Input | O.Output)]
    if not body:
        return g
    seed = draw(st.sampled_from(body))
    comp = next(c for c in nx.strongly_connected_components(g.to_networkx()) if seed.id in c)
    comp -= set(g.inputs) | set(g.outputs)
    copy = {nid: f"{nid}_copy" for nid in comp}
    clones = []
    for n in g.nodes:
        if n.id in copy:
            inputs = tuple(Use(copy.get(u.node, u.node), u.delay) for u in n.inputs)
            clones.append(Node(copy[n.id], n.op, inputs))
    out = Node("dup_out", O.Output(), (Use(copy[seed.id]),))
    graph = infer_types(g.replace(nodes=(*g.nodes, *clones, out)))
    verify(graph)
    return graph


@st.composite
def with_fanin(draw: st.DrawFn, base: st.SearchStrategy[Graph]) -> Graph:
    """A graph plus 2-4 new projections (some of the same operand) summed into one node
    with a vector input: merge-fanin has work to do. Sources are read one step back when
    they depend on the consumer, so no same-step cycle appears."""
    g = draw(base)
    targets = [n for n in g.nodes if not isinstance(n.op, O.Input) and n.inputs
               and g.node(n.inputs[0].node).type.rank == 1]  # type: ignore[union-attr]
    vectors = [n for n in g.nodes if n.type is not None and n.type.rank == 1]
    if not targets or not vectors:
        return g
    target = draw(st.sampled_from(targets))
    m = g.node(target.inputs[0].node).type.shape[0]  # type: ignore[union-attr]
    ahead = nx.descendants(g.to_networkx(), target.id) | {target.id}
    new, uses = [], []
    for k in range(draw(st.integers(2, 4))):
        src = draw(st.sampled_from(vectors))
        n_in = src.type.shape[0]  # type: ignore[union-attr]
        delay = 1 if src.id in ahead else draw(st.integers(0, 1))
        nid = f"proj{k}"
        if draw(st.booleans()):
            op: O.Op = O.Linear(weight=ParamRef(f"{nid}.weight", TensorType((m, n_in))))
        else:
            op = O.Affine(weight=ParamRef(f"{nid}.weight", TensorType((m, n_in))),
                          bias=ParamRef(f"{nid}.bias", TensorType((m,))))
            delay = 0 if src.id not in ahead else delay
        new.append(Node(nid, op, (Use(src.id, delay),)))
        uses.append(Use(nid, draw(st.integers(0, 1)) if isinstance(op, O.Linear) else 0))
    nodes = [n.replace(inputs=(*n.inputs, *uses)) if n.id == target.id else n
             for n in g.nodes]
    graph = infer_types(g.replace(nodes=(*nodes, *new)))
    verify(graph)
    return graph


@st.composite
def wide_fanin(draw: st.DrawFn) -> Graph:
    """Narrow sources (1-2 features, some through a LIF) projected into a wide neuron
    (13-16), optionally with a recurrent projection: the concatenating merge pays off."""
    m = draw(st.integers(13, 16))  # (k-1)*m > k*K for k <= 3 sources of <= 2 features
    nodes, uses = [], []
    for k in range(draw(st.integers(2, 3))):
        t = TensorType((draw(st.integers(1, 2)),))
        nodes.append(Node(f"x{k}", O.Input(type=t)))
        src = f"x{k}"
        if draw(st.booleans()):
            nodes.append(Node(f"s{k}", O.LIF(tau=ParamRef(f"s{k}.tau", TensorType(())),
                                              v_threshold=ParamRef(f"s{k}.v_threshold",
                                                                   TensorType(()))),
                              (Use(src),)))
            src = f"s{k}"
        w = ParamRef(f"p{k}.weight", TensorType((m, t.shape[0])))
        op: O.Op = (O.Linear(weight=w) if draw(st.booleans()) else
                    O.Affine(weight=w, bias=ParamRef(f"p{k}.bias", TensorType((m,)))))
        nodes.append(Node(f"p{k}", op, (Use(src),)))
        uses.append(Use(f"p{k}"))
    if draw(st.booleans()):
        nodes.append(Node("rec", O.Linear(weight=ParamRef("rec.weight", TensorType((m, m)))),
                          (Use("n"),)))
        uses.append(Use("rec", 1))
    nodes.append(Node("n", O.LI(tau=ParamRef("n.tau", TensorType((m,)))), tuple(uses)))
    nodes.append(Node("y", O.Output(), (Use("n"),)))
    graph = infer_types(Graph(tuple(nodes), "wide", GraphAttrs(dt=1e-3)))
    verify(graph)
    return graph


@st.composite
def layer_stacks(draw: st.DrawFn) -> Graph:
    """Input -> (linear/affine -> NIR neuron) x 1-4, sometimes recurrent (the synapse also
    reads the neuron one step back), sometimes with the synapse also observed by an
    output (then it must not fuse): fuse-synapse-neuron has work to do."""
    from strategies import _neuron

    width = draw(st.integers(1, 4))
    nodes = [Node("x", O.Input(type=TensorType((width,))))]
    outputs, prev = [], "x"
    for k in range(draw(st.integers(1, 4))):
        m = draw(st.integers(1, 4))
        w = ParamRef(f"fc{k}.weight", TensorType((m, width)))
        syn: O.Op = (O.Linear(weight=w) if draw(st.booleans()) else
                     O.Affine(weight=w, bias=ParamRef(f"fc{k}.bias", TensorType((m,)))))
        uses = [Use(prev)]
        if m == width and draw(st.booleans()):
            uses.append(Use(f"n{k}", draw(st.integers(1, 2))))  # recurrent
        kind = draw(st.sampled_from(("i", "if", "li", "lif", "cuba_li", "cuba_lif")))
        neuron = draw(_neuron(kind, f"n{k}", (m,)))
        neuron = neuron.replace(**{f: ParamRef(f"n{k}.{f}", r.type) for f, r in neuron.params()})
        nodes += [Node(f"fc{k}", syn, tuple(uses)), Node(f"n{k}", neuron, (Use(f"fc{k}"),))]
        if draw(st.integers(0, 3)) == 0:
            outputs.append(f"fc{k}")
        prev, width = f"n{k}", m
    outputs.append(prev)
    nodes += [Node(f"y{i}", O.Output(), (Use(src),)) for i, src in enumerate(outputs)]
    graph = infer_types(Graph(tuple(nodes), "stack", GraphAttrs(
        dt=draw(st.sampled_from([1e-3, 1.0])), reset=draw(st.sampled_from(["value", "subtract"])),
        cuba_current=draw(st.sampled_from(["post", "pre"])))))
    verify(graph)
    return graph


__all__ = ["ALL_PASSES", "assert_same_outputs", "check_pass", "layer_stacks", "user_params",
           "wide_fanin", "with_duplicates", "with_fanin"]
