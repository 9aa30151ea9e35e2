"""Hypothesis strategies for random, valid, typed spikejit graphs, params and inputs.

``graphs()`` grows a graph node by node from one or two inputs, so every node is reachable
and every shape fits; recurrent edges are added afterwards as delayed uses (delay >= 1),
so every cycle carries a delay. ``random_params`` draws parameter values that keep the
dynamics well-behaved (``h/tau < 1``, thresholds reachable).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from spikejit.ir import Graph, GraphAttrs, Node, ParamRef, TensorType, Use, infer_types, verify
from spikejit.ir import ops as O

VECTOR_OPS = ("affine", "linear", "scale", "threshold", "i", "if", "li", "lif", "cuba_li",
              "cuba_lif", "delay", "flatten")
IMAGE_OPS = ("conv2d", "sumpool2d", "avgpool2d", "flatten", "lif", "if", "scale", "delay")
SEQ_OPS = ("conv1d", "flatten", "lif", "li")
ALL_OPS = tuple(sorted(set(VECTOR_OPS + IMAGE_OPS + SEQ_OPS)))
NEURON_OPS = ("i", "if", "li", "lif", "cuba_li", "cuba_lif")

SIMPLE_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
ODD_NAMES = st.sampled_from(["S/lif", "a b", "x.y", "n-1", "ü", "0", 'q"t', "lif1.w_rec"])


def _ref(node_id: str, field: str, shape: tuple[int, ...]) -> ParamRef:
    return ParamRef(f"{node_id}.{field}", TensorType(shape))


@st.composite
def _layer_shape(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A parameter shape for a layer: full, scalar, or broadcast over leading axes."""
    choice = draw(st.sampled_from(["full", "scalar", "full"]))
    return () if choice == "scalar" else shape


@st.composite
def _make_op(draw: st.DrawFn, kind: str, nid: str, x: TensorType) -> O.Op | None:
    """An op of ``kind`` that accepts input type ``x`` (None if it cannot)."""
    s = x.shape
    if kind in ("affine", "linear"):
        if len(s) != 1:
            return None
        m = draw(st.integers(1, 5))
        w = _ref(nid, "weight", (m, s[0]))
        if kind == "linear":
            return O.Linear(weight=w)
        return O.Affine(weight=w, bias=_ref(nid, "bias", (m,)))
    if kind == "scale":
        return O.Scale(scale=_ref(nid, "scale", draw(_layer_shape(s))))
    if kind == "threshold":
        return O.Threshold(threshold=_ref(nid, "threshold", draw(_layer_shape(s))))
    if kind in NEURON_OPS:
        return draw(_neuron(kind, nid, s))
    if kind == "delay":
        size = int(np.prod(s))
        if draw(st.booleans()) or size > 12:
            return O.Delay(steps=(draw(st.integers(0, 3)),))
        return O.Delay(steps=tuple(draw(st.lists(st.integers(0, 3), min_size=size,
                                                 max_size=size))))
    if kind == "flatten":
        if len(s) < 1:
            return None
        start = draw(st.integers(0, len(s) - 1))
        end = draw(st.integers(start, len(s) - 1))
        if draw(st.booleans()):
            end = end - len(s)
        return O.Flatten(start_dim=start, end_dim=end)
    if kind == "conv2d":
        if len(s) != 3:
            return None
        return draw(_conv(nid, s, 2))
    if kind == "conv1d":
        if len(s) != 2:
            return None
        return draw(_conv(nid, s, 1))
    if kind in ("sumpool2d", "avgpool2d"):
        if len(s) != 3 or min(s[1:]) < 2:
            return None
        k = draw(st.integers(1, 2))
        cls = O.SumPool2d if kind == "sumpool2d" else O.AvgPool2d
        return cls(kernel_size=k, stride=draw(st.integers(1, 2)),
                   padding=draw(st.integers(0, k // 2)))
    raise AssertionError(kind)


@st.composite
def _conv(draw: st.DrawFn, nid: str, s: tuple[int, ...], nd: int) -> O.Op | None:
    c_in = s[0]
    groups = draw(st.sampled_from([g for g in (1, 2) if c_in % g == 0]))
    c_out = groups * draw(st.integers(1, 2))
    k = draw(st.integers(1, 3))
    dilation = draw(st.integers(1, 2))
    padding = draw(st.one_of(st.integers(0, 1), st.sampled_from(["same", "valid"])))
    stride = draw(st.integers(1, 2))
    span = min(s[1:]) + (2 * padding if isinstance(padding, int) else 0) - dilation * (k - 1)
    if padding != "same" and span < 1:
        return None
    cls = O.Conv2d if nd == 2 else O.Conv1d
    bias = _ref(nid, "bias", (c_out,)) if draw(st.booleans()) else None
    return cls(weight=_ref(nid, "weight", (c_out, c_in // groups) + (k,) * nd), bias=bias,
               stride=stride, padding=padding, dilation=dilation, groups=groups)


@st.composite
def _neuron(draw: st.DrawFn, kind: str, nid: str, s: tuple[int, ...]) -> O.Op:
    def p(field: str) -> ParamRef:
        return _ref(nid, field, draw(_layer_shape(s)))

    def opt(field: str) -> ParamRef | None:
        return p(field) if draw(st.booleans()) else None

    reset = draw(st.sampled_from([None, None, "value", "subtract", "none"]))
    if kind == "i":
        return O.Integrator(r=opt("r"))
    if kind == "if":
        return O.IF(v_threshold=p("v_threshold"), r=opt("r"), v_reset=opt("v_reset"), reset=reset)
    if kind == "li":
        return O.LI(tau=p("tau"), r=opt("r"), v_leak=opt("v_leak"))
    if kind == "lif":
        return O.LIF(tau=p("tau"), v_threshold=p("v_threshold"), r=opt("r"), v_leak=opt("v_leak"),
                     v_reset=opt("v_reset"), reset=reset)
    if kind == "cuba_li":
        return O.CubaLI(tau_syn=p("tau_syn"), tau_mem=p("tau_mem"), r=opt("r"),
                        v_leak=opt("v_leak"), w_in=opt("w_in"))
    return O.CubaLIF(tau_syn=p("tau_syn"), tau_mem=p("tau_mem"), v_threshold=p("v_threshold"),
                     r=opt("r"), v_leak=opt("v_leak"), v_reset=opt("v_reset"), w_in=opt("w_in"),
                     reset=reset)


@st.composite
def graphs(
    draw: st.DrawFn,
    max_nodes: int = 8,
    cycles: bool = True,
    delays: bool = True,
    ops: tuple[str, ...] | None = None,
    images: bool = True,
    odd_names: bool = False,
) -> Graph:
    """A typed, verified graph with ``dt`` set.

    Args:
        max_nodes: Upper bound on the number of non-io nodes.
        cycles: Whether recurrent (delayed) back edges may be added.
        delays: Whether delayed uses and ``snn.delay`` nodes may appear.
        ops: Restrict the op kinds (names as in ``ALL_OPS``).
        images: Whether inputs may be ``[C,H,W]`` / ``[C,L]`` shaped (conv/pool paths).
        odd_names: Whether node ids may need quoting in the text form.
    """
    allowed = set(ops or ALL_OPS)
    if not delays:
        allowed.discard("delay")
    names = st.one_of(SIMPLE_NAMES, ODD_NAMES) if odd_names else SIMPLE_NAMES
    used: set[str] = set()

    def fresh(prefix: str) -> str:
        base = draw(names)
        nid = f"{prefix}{base}" if not odd_names else base
        while nid in used:
            nid += "_"
        used.add(nid)
        return nid

    nodes: list[Node] = []
    types: dict[str, TensorType] = {}
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(["vec", "vec", "img", "seq"] if images else ["vec"]))
        if kind == "vec":
            shape: tuple[int, ...] = (draw(st.integers(1, 5)),)
        elif kind == "img":
            shape = (draw(st.integers(1, 2)), draw(st.integers(2, 5)), draw(st.integers(2, 5)))
        else:
            shape = (draw(st.integers(1, 2)), draw(st.integers(2, 6)))
        nid = fresh("in_")
        t = TensorType(shape)
        nodes.append(Node(nid, O.Input(type=t), (), t))
        types[nid] = t

    for _ in range(draw(st.integers(1, max_nodes))):
        producer = draw(st.sampled_from([n.id for n in nodes]))
        x = types[producer]
        candidates = [k for k in ALL_OPS if k in allowed]
        kind = draw(st.sampled_from(candidates))
        op = draw(_make_op(kind, "_", x))
        if op is None:
            continue
        nid = fresh("n_")
        op = _rename_params(op, nid)
        uses = [Use(producer)]
        # Fan-in: another same-shaped producer, summed.
        same = [n.id for n in nodes if types[n.id].shape == x.shape and n.id != producer]
        if same and draw(st.integers(0, 3)) == 0:
            uses.append(Use(draw(st.sampled_from(same))))
        if delays and draw(st.integers(0, 4)) == 0:
            uses[0] = Use(producer, draw(st.integers(1, 2)))
        node = Node(nid, op, tuple(uses))
        try:
            t = op.infer_type(x if len(uses) == 1 else x.with_spike(False))
        except O.OpError:
            continue
        nodes.append(node.replace(type=t))
        types[nid] = t

    body = [n for n in nodes if not isinstance(n.op, O.Input)]
    if cycles and len(body) >= 2 and draw(st.booleans()):
        # A back edge from a later node into an earlier non-input node of the same shape.
        for _ in range(draw(st.integers(1, 2))):
            late = draw(st.sampled_from(body))
            early = [n for n in body if n is not late and nodes.index(n) < nodes.index(late)
                     and types[n.inputs[0].node].shape == types[late.id].shape]
            if not early:
                continue
            target = draw(st.sampled_from(early))
            i = nodes.index(target)
            new = target.replace(inputs=(*target.inputs, Use(late.id, draw(st.integers(1, 2)))))
            nodes[i] = new
            body = [n for n in nodes if not isinstance(n.op, O.Input)]

    outs = {nodes[-1].id}
    if len(nodes) > 2 and draw(st.booleans()):
        outs.add(draw(st.sampled_from([n.id for n in nodes[1:]])))
    for src in sorted(outs):
        nid = fresh("out_")
        nodes.append(Node(nid, O.Output(), (Use(src),), types[src]))

    dt = draw(st.sampled_from([1e-3, 0.1, 1.0]))
    attrs = GraphAttrs(dt=dt, reset=draw(st.sampled_from(["value", "subtract"])),
                       cuba_current=draw(st.sampled_from(["post", "pre"])))
    graph = infer_types(Graph(tuple(nodes), name="g", attrs=attrs))
    verify(graph)
    return graph


def _rename_params(op: O.Op, nid: str) -> O.Op:
    changes = {f: ParamRef(f"{nid}.{f}", ref.type) for f, ref in op.params()}
    return op.replace(**changes)


def random_params(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Parameter values that keep the dynamics well-behaved for ``graph``."""
    rng = np.random.default_rng(seed)
    dt = graph.attrs.dt or 1.0
    params: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        for field, ref in node.op.params():
            params[ref.name] = _value(rng, node.op, field, ref.type.shape, dt).astype(np.float32)
    return params


def _value(rng: np.random.Generator, op: O.Op, field: str, shape: tuple[int, ...],
           dt: float) -> np.ndarray:
    u = lambda lo, hi: rng.uniform(lo, hi, size=shape)  # noqa: E731
    if field == "weight":
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        return rng.normal(0.0, 1.5 / np.sqrt(max(fan_in, 1)), size=shape)
    if field == "bias":
        return u(-0.3, 0.3)
    if field in ("tau", "tau_mem", "tau_syn"):
        return dt * u(1.5, 8.0)
    if field in ("v_threshold", "threshold"):
        return u(0.1, 0.8)
    if field == "r":
        return u(0.5, 2.0) / (dt if isinstance(op, O.Integrator | O.IF) else 1.0)
    if field in ("v_leak", "v_reset"):
        return u(-0.1, 0.1)
    if field == "w_in":
        return u(0.5, 2.0)
    if field == "scale":
        return u(-1.5, 1.5)
    return rng.normal(size=shape)


def random_input(graph: Graph, steps: int, batch: int, seed: int = 0) -> Any:
    """Input data ``[T, B, *shape]``: Bernoulli spikes or Gaussian values per input."""
    rng = np.random.default_rng(seed)
    data = {}
    for nid in graph.inputs:
        shape = (steps, batch, *graph.node(nid).type.shape)  # type: ignore[union-attr]
        if rng.random() < 0.5:
            data[nid] = (rng.random(shape) < 0.3).astype(np.float32)
        else:
            data[nid] = rng.normal(0.0, 1.0, size=shape).astype(np.float32)
    return data[graph.inputs[0]] if len(data) == 1 else data
