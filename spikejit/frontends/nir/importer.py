"""``from_nir``: a NIR graph (file or object) -> a typed, verified spikejit graph and params.

Steps: read the source into plain data (never through ``nir``'s own constructors or type
check), inline nested graphs and identities (:mod:`.flatten`), turn ``Delay`` nodes into
whole steps, break cycles with the DFS back-edge rule (:mod:`.order`), build each op
with its parameters once its input type is known (:mod:`.nodes`), then run spikejit's
own type inference and verifier. Every problem is a :class:`~spikejit.errors.FrontendError`
(or :class:`~spikejit.errors.ModelFileError` for unreadable files) naming the node, and for
shape problems both ends of the offending edge.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spikejit.errors import FrontendError, IRError, OptionError, ParamError
from spikejit.frontends.draft import GraphDraft, fan_in_type, first_mismatch
from spikejit.frontends.nir.flatten import FlatGraph, flatten
from spikejit.frontends.nir.nodes import Ctx, build_op, check_declared, delay_steps
from spikejit.frontends.nir.objects import read_nir_object
from spikejit.frontends.nir.order import Edge, dfs_rule, print_order
from spikejit.frontends.nir.reader import RawGraph, read_nir_file
from spikejit.frontends.nir.schema import NIR_NODES, load_graph_meta, load_node_meta, nir_kinds
from spikejit.ir.graph import (
    CUBA_CURRENT_OPTIONS,
    METHOD_OPTIONS,
    RESET_OPTIONS,
    Graph,
    GraphAttrs,
    Use,
)
from spikejit.ir.ops import OpError
from spikejit.ir.shapes import infer_types
from spikejit.ir.types import TensorType
from spikejit.ir.values import FLOAT32_RANGE
from spikejit.ir.verify import verify

#: NIR kinds whose dynamics need the time step (their ops state ``uses_dt``).
DT_KINDS: tuple[str, ...] = tuple(k for c, k in nir_kinds().items() if c.uses_dt)

Source = str | os.PathLike[str] | Any
Shape = Sequence[int]


def from_nir(
    source: Source,
    *,
    dt: float | None = None,
    reset: str = "value",
    cuba_current: str = "post",
    method: str = "euler",
    input_shape: Shape | Mapping[str, Shape] | None = None,
) -> tuple[Graph, dict[str, np.ndarray]]:
    """Import a NIR graph as a typed, verified spikejit graph plus its parameters.

    Args:
        source: Path of a ``.nir`` file, or a ``nir.NIRGraph``.
        dt: Time step in seconds. NIR files carry none, so it is required as soon as the
            graph has a node with dynamics (I, IF, LI, LIF, CubaLI, CubaLIF) or a non-zero
            ``Delay``.
        reset: ``"value"`` (``v = v_reset`` on a spike, NIR's meaning) or ``"subtract"``
            (``v -= v_threshold``, what most exporters' models were trained with).
        cuba_current: ``"post"`` (membrane driven by the updated current) or ``"pre"``.
        method: ``"euler"`` (explicit Euler, what exporters train with) or ``"exp"``.
        input_shape: Replace the per-sample shape of Input nodes: one shape if the graph has
            one Input, else a dict by Input name (e.g. to drop the batch axis Norse writes).

    Returns:
        ``(graph, params)``: node ids are the NIR names (``S/k`` inside subgraph ``S``),
        params are ``float32`` arrays named ``{node}.{field}``.

    Raises:
        OptionError: An option has an invalid value.
        ModelFileError: The file cannot be read.
        FrontendError: The graph cannot be run (missing ``dt``, unknown node type,
            inconsistent shapes, a delay that is not a whole number of steps, ...).
    """
    attrs = _attrs(dt, reset, cuba_current, method)
    raw, label = _load(source)
    meta = load_graph_meta(raw.metadata)
    flat = flatten(raw, label, escaped=bool(meta and meta.escaped))
    _override_inputs(flat, input_shape, label)
    _check_structure(flat, label)
    _require_dt(flat, attrs.dt, raw, label)
    draft = GraphDraft()
    ctxs = {nid: Ctx(label, n, attrs.dt, draft, meta=load_node_meta(n.metadata))
            for nid, n in flat.nodes.items()}
    steps = {nid: delay_steps(c) for nid, c in ctxs.items() if c.node.kind == "Delay"}
    edges = _fold_edge_delays(flat, steps, ctxs)
    ids = list(ctxs)
    inputs = [nid for nid in ids if ctxs[nid].node.kind == "Input"]
    result = dfs_rule(
        ids, inputs, edges,
        barriers={d for d, s in steps.items() if d in ctxs and s.size and s.min() >= 1},
        zero_delays={d for d, s in steps.items() if d in ctxs and s.size and s.min() == 0},
    )
    if result.unreached:
        names = ", ".join(map(repr, result.unreached))
        raise FrontendError(f"{label}: node(s) {names} cannot be reached from any Input node")
    if result.violations:
        v = result.violations[0]
        e = edges[v.edge]
        raise FrontendError(f"{label}: the cycle {' -> '.join(map(repr, v.cycle))} has no delay "
                            f"(edge {e.src!r} -> {e.dst!r}: {v.reason}); a same-step cycle "
                            f"cannot be computed")
    uses: dict[str, list[Use]] = {nid: [] for nid in ids}
    for i, e in enumerate(edges):
        delay = e.delay if e.delay is not None else (1 if i in result.back else 0)
        uses[e.dst].append(Use(e.src, delay))
    _build_nodes(draft, result.preorder, ctxs, uses, label)
    same_step = [(u.node, nid) for nid, op in draft.ops.items() for u in draft.inputs[nid]
                 if u.delay == 0 and op.depends_same_step()]
    if meta is not None and sorted(meta.order) == sorted(ids):
        order = list(meta.order)  # a file spikejit wrote: keep its print order
    else:
        order = print_order(ids, same_step, result.rank)
    name = meta.name if meta is not None else "main"
    graph = draft.graph(name, attrs, order=order)
    return _checked(graph, draft.params, label), draft.params


def _attrs(dt: Any, reset: str, cuba_current: str, method: str) -> GraphAttrs:
    if dt is not None:
        ok = isinstance(dt, int | float | np.floating | np.integer) and not isinstance(dt, bool)
        if not ok or not (math.isfinite(float(dt)) and float(dt) > 0):
            raise OptionError(f"from_nir: dt must be a finite number > 0 (seconds), got {dt!r}")
        dt = float(dt)
        low, high = FLOAT32_RANGE  # 1e300 is inf in float32, 1e-300 is 0
        if not low <= dt <= high:
            raise OptionError(f"from_nir: dt={dt!r} cannot be represented in float32, which "
                              f"the model computes in (from {low:.4g} to {high:.4g} s)")
    for name, value, allowed in (("reset", reset, RESET_OPTIONS),
                                 ("cuba_current", cuba_current, CUBA_CURRENT_OPTIONS),
                                 ("method", method, METHOD_OPTIONS)):
        if value not in allowed:
            raise OptionError(f"from_nir: {name} must be one of "
                              f"{', '.join(map(repr, allowed))}, got {value!r}")
    return GraphAttrs(dt=dt, reset=reset, cuba_current=cuba_current, method=method)


def _load(source: Source) -> tuple[RawGraph, str]:
    if isinstance(source, str | os.PathLike):
        return read_nir_file(source), f"NIR file {str(Path(source))!r}"
    return read_nir_object(source, label="NIR graph"), "NIR graph"


def _override_inputs(flat: FlatGraph, shapes: Any, label: str) -> None:
    if shapes is None:
        return
    inputs = [n for n in flat.nodes.values() if n.kind == "Input"]
    if not isinstance(shapes, Mapping):
        if len(inputs) != 1:
            raise OptionError(f"from_nir: input_shape must be a dict by Input name, since "
                              f"{label} has {len(inputs)} Input nodes")
        shapes = {inputs[0].id: shapes}
    for name, shape in shapes.items():
        node = flat.nodes.get(name)
        if node is None or node.kind != "Input":
            raise OptionError(f"from_nir: input_shape names {name!r}, which is not an Input "
                              f"node of {label} (inputs: "
                              f"{', '.join(repr(n.id) for n in inputs)})")
        try:
            dims = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise OptionError(f"from_nir: input_shape[{name!r}] must be a sequence of "
                              f"integers, got {shape!r}") from None
        if any(d < 0 for d in dims):
            raise OptionError(f"from_nir: input_shape[{name!r}] has a negative size: {dims}")
        node.fields = {**node.fields, "shape": np.array(dims, dtype=np.int64)}


def _check_structure(flat: FlatGraph, label: str) -> None:
    fed: set[str] = set()
    for a, b in flat.edges:
        if flat.nodes[b].kind == "Input":
            raise FrontendError(f"{label}: edge {a!r} -> {b!r} ends at an Input node; Input "
                                f"nodes take data from outside the graph only")
        fed.add(b)
    for n in flat.nodes.values():
        if n.kind not in ("Input", "Output") and NIR_NODES[n.kind].mnemonic == "":
            raise FrontendError(f"{label}: node {n.id!r} of type {n.kind} cannot be imported")
        if n.kind != "Input" and n.id not in fed:
            raise FrontendError(f"{label}: node {n.id!r} ({n.kind}) has no incoming edge; NIR "
                                f"graphs take data only through Input nodes")
    if not any(n.kind == "Input" for n in flat.nodes.values()):
        raise FrontendError(f"{label}: the graph has no Input node")


def _require_dt(flat: FlatGraph, dt: float | None, raw: RawGraph, label: str) -> None:
    if dt is not None:
        return
    needs = [n.id for n in flat.nodes.values() if n.kind in DT_KINDS or (
        n.kind == "Delay" and np.any(np.asarray(n.fields.get("delay", 0)) != 0))]
    if not needs:
        return
    shown = ", ".join(repr(n) for n in needs[:8]) + (", ..." if len(needs) > 8 else "")
    hint = ""
    if "dt" in raw.metadata:
        hint = (f" (its metadata mentions dt={raw.metadata['dt']!r}, information only: pass "
                f"it explicitly if that is the step the model was trained with)")
    raise FrontendError(
        f"{label}: dt is required: NIR files carry no time step, and these nodes integrate "
        f"over time: {shown}. Pass from_nir(..., dt=...) in seconds; see docs/nir.md for "
        f"the dt each exporter assumes{hint}")


def _fold_edge_delays(flat: FlatGraph, steps: dict[str, np.ndarray],
                      ctxs: dict[str, Ctx]) -> list[Edge]:
    """Turn the ``Delay`` nodes spikejit writes for delayed edges back into edge delays."""
    into: dict[str, list[int]] = {}
    out_of: dict[str, list[int]] = {}
    for i, (a, b) in enumerate(flat.edges):
        out_of.setdefault(a, []).append(i)
        into.setdefault(b, []).append(i)
    # A Delay node stands for an edge delay only if spikejit marked it so and it still has
    # that shape: one value, one edge in from a real node, one edge out to a real node.
    marked = {nid for nid, s in steps.items()
              if ctxs[nid].meta.edge_delay and s.size == 1
              and len(into.get(nid, ())) == 1 and len(out_of.get(nid, ())) == 1}
    folded: dict[str, str] = {}
    for nid in marked:
        src = flat.edges[into[nid][0]][0]
        dst = flat.edges[out_of[nid][0]][1]
        if src not in marked and dst not in marked:
            folded[nid] = src
    edges: list[Edge] = []
    for a, b in flat.edges:
        if b in folded:
            continue
        if a in folded:
            edges.append(Edge(folded[a], b, int(steps[a].reshape(-1)[0])))
        else:
            edges.append(Edge(a, b))
    for nid in folded:
        del ctxs[nid]
    return edges


def _build_nodes(draft: GraphDraft, order: Sequence[str], ctxs: dict[str, Ctx],
                 uses: dict[str, list[Use]], label: str) -> None:
    """Add the nodes to ``draft`` in DFS order, each typed from its operands typed so far."""
    for nid in order:
        ctx = ctxs[nid]
        ctx.in_type = _operand_type(draft, nid, uses[nid], ctx)
        op = build_op(ctx)
        problem = check_declared(ctx, ctx.in_type)
        out: TensorType | None = None
        if problem is None:
            try:
                out = op.infer_type(ctx.in_type)
            except OpError as e:
                problem = e.reason
        if problem is not None:
            raise FrontendError(f"{label}: {_edges_text(nid, uses[nid], draft.types)}: node "
                                f"{nid!r} ({ctx.node.kind} -> {op.mnemonic}): {problem}")
        draft.add(nid, op, uses[nid], loc=f"nir:{nid}", type=out)


def _operand_type(draft: GraphDraft, nid: str, uses: list[Use], ctx: Ctx) -> TensorType | None:
    known = draft.known_operands(uses)
    mismatch = first_mismatch(known)
    if mismatch is not None:
        (first_use, first), (u, t) = mismatch
        raise ctx.error(f"its inputs are summed but have different shapes: edge "
                        f"{first_use.node!r} -> {nid!r} carries {first}, edge {u.node!r} -> "
                        f"{nid!r} carries {t}")
    return fan_in_type(known, len(uses))


def _edges_text(nid: str, uses: Sequence[Use], types: dict[str, TensorType]) -> str:
    parts = []
    for u in uses:
        t = types.get(u.node)
        parts.append(f"{u.node!r} -> {nid!r}" + (f" ({t})" if t is not None else ""))
    return ("edge " if len(parts) == 1 else "edges ") + ", ".join(parts) if parts else \
        f"node {nid!r}"


def _checked(graph: Graph, params: dict[str, np.ndarray], label: str) -> Graph:
    """Spikejit's own type inference and verifier over the whole graph (cycles included)."""
    try:
        typed = infer_types(graph)
        verify(typed, params)
    except IRError as e:
        nid = e.node_id
        where = ""
        if nid is not None and nid in graph:
            types = {n.id: n.type for n in graph.nodes if n.type is not None}
            where = _edges_text(nid, graph.node(nid).inputs, types) + ": "
        raise FrontendError(f"{label}: {where}{e}") from None
    except ParamError as e:
        raise FrontendError(f"{label}: {e}") from None
    return typed
