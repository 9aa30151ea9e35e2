"""``to_nir`` / ``write_nir``: a spikejit graph and params -> a NIR graph that reads back exactly.

NIR nodes get the layer-shaped parameters other tools expect (a scalar ``tau`` is written
broadcast to the layer; an omitted ``r`` is written as ones), so the file passes ``nir``'s
own type check where ``nir`` computes shapes correctly. What NIR cannot say is kept in a
JSON metadata entry (``"spikejit"``, see :mod:`.schema`) that :func:`from_nir` reads:
original parameter shapes and names, omitted parameters, per-node reset overrides, the
print order and the graph name. Other tools ignore it and still read the right network,
except for per-node ``reset`` overrides, which NIR has no field for.

Edge delays: NIR edges have none; :func:`from_nir` re-derives them with the DFS back-edge
rule. The exporter runs that very rule on the graph it is about to write; every delayed
use the rule would not re-derive (a delay of 2 steps, a delayed edge that is not a DFS back
edge, a second edge between the same two nodes) goes through a NIR ``Delay`` node of
``delay * dt`` seconds instead, marked so that :func:`from_nir` folds it back into the edge.
The graph's ``dt``, ``reset``, ``cuba_current``, ``method`` and the semantics name are
written as plain metadata entries, for information only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from spikejit.atomic import atomic_path
from spikejit.errors import FrontendError, ModelFileError
from spikejit.frontends.nir.nodes import NEUTRAL
from spikejit.frontends.nir.order import Edge, dfs_rule
from spikejit.frontends.nir.schema import (
    META_KEY,
    NIR_NODES,
    GraphMeta,
    NodeMeta,
    dump_meta,
    escape_name,
    nir_kinds,
)
from spikejit.ir import ops as O
from spikejit.ir.graph import SEMANTICS, Graph, Node
from spikejit.ir.shapes import infer_types
from spikejit.ir.types import ParamRef
from spikejit.ir.verify import verify
from spikejit.version import __version__

if TYPE_CHECKING:
    import nir as nir_types



def to_nir(graph: Graph, params: Mapping[str, Any]) -> nir_types.NIRGraph:
    """Export a graph and its parameters as a ``nir.NIRGraph``.

    ``from_nir(to_nir(g, p), dt=g.attrs.dt, reset=..., ...)`` gives back ``g`` (typed) and
    ``p`` exactly. Node names containing ``/`` (inlined subgraphs) are percent-escaped, as
    HDF5 forbids them; :func:`from_nir` restores them.

    Raises:
        VerifyError, ParamError: The graph or params are invalid.
        FrontendError: The graph uses an op NIR cannot express, or has delays but no ``dt``.
    """
    import nir

    verify(graph, params)
    typed = infer_types(graph)
    taken = {n.id for n in typed.nodes}
    kinds = {n.id: _kind(n) for n in typed.nodes}
    nodes: dict[str, Any] = {}
    escaped = False
    for node in typed.nodes:
        name = escape_name(node.id)
        escaped |= name != node.id
        nodes[name] = _node(nir, node, typed, params, kinds[node.id])
    edges: list[tuple[str, str]] = []
    uses = [(u.node, n.id, u.delay) for n in typed.nodes for u in n.inputs]
    plain = _plain_edges(typed, uses)
    for i, (src, dst, delay) in enumerate(uses):
        if i in plain:
            edges.append((escape_name(src), escape_name(dst)))
            continue
        name = _fresh(f"{src}->{dst}.delay{delay}", taken)
        escaped |= escape_name(name) != name
        layer = typed.node(src).type.shape  # type: ignore[union-attr]
        seconds = _seconds(np.full((), delay), typed, f"the delayed use of %{src} by %{dst}")
        meta = NodeMeta(edge_delay=True, shapes={"delay": ()})
        nodes[escape_name(name)] = _with_meta(
            nir.Delay(delay=np.broadcast_to(seconds, layer).copy()), meta)
        edges += [(escape_name(src), escape_name(name)), (escape_name(name), escape_name(dst))]
    gmeta = GraphMeta(name=typed.name, order=tuple(n.id for n in typed.nodes), escaped=escaped)
    metadata: dict[str, Any] = {"semantics": SEMANTICS, "reset": typed.attrs.reset,
                                "cuba_current": typed.attrs.cuba_current,
                                "method": typed.attrs.method, "generator": _generator(),
                                META_KEY: dump_meta(gmeta)}
    if typed.attrs.dt is not None:
        metadata["dt"] = typed.attrs.dt
    out: nir_types.NIRGraph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata,
                                           type_check=False)
    return out


def write_nir(path: str | os.PathLike[str], graph: Graph, params: Mapping[str, Any]) -> None:
    """Export with :func:`to_nir` and write a ``.nir`` (HDF5) file.

    The file is written under a temporary name and renamed, so a failed or interrupted
    write never leaves a partial file at ``path``.

    Raises:
        ModelFileError: The file cannot be written.
    """
    import nir

    nir_graph = to_nir(graph, params)
    try:
        with atomic_path(path) as tmp:
            nir.write(os.fspath(tmp), nir_graph)
    except OSError as e:
        raise ModelFileError(f"cannot write NIR file {os.fspath(path)!r}: {e}") from None


def _generator() -> str:
    return f"spikejit {__version__}"


def _kind(node: Node) -> str:
    kinds = nir_kinds()
    kind = kinds.get(type(node.op))
    if kind is None:
        supported = ", ".join(sorted(c.mnemonic for c in kinds))
        raise FrontendError(f"to_nir: node %{node.id} uses {node.op.mnemonic}, which NIR "
                            f"cannot express; exportable ops: {supported}")
    return kind


def _fresh(base: str, taken: set[str]) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _plain_edges(graph: Graph, uses: list[tuple[str, str, int]]) -> set[int]:
    """Indices of the uses written as plain NIR edges: exactly those whose delay (0 or 1)
    the importer's DFS rule re-derives. The rest go through marked ``Delay`` nodes."""
    plain: set[int] = set()
    pairs: set[tuple[str, str]] = set()
    for i, (src, dst, delay) in enumerate(uses):
        if delay in (0, 1) and (src, dst) not in pairs:
            plain.add(i)
            pairs.add((src, dst))
    delays = [n for n in graph.nodes if isinstance(n.op, O.Delay)]
    barriers = {n.id for n in delays if not n.op.depends_same_step()}
    zero = {n.id for n in delays if min(n.op.steps) == 0}  # type: ignore[attr-defined]
    ids = [n.id for n in graph.nodes]
    while True:
        edges = [Edge(s, d, None if i in plain else k) for i, (s, d, k) in enumerate(uses)]
        result = dfs_rule(ids, graph.inputs, edges, barriers=barriers, zero_delays=zero)
        bad = {i for i in plain if (uses[i][2] == 1) != (i in result.back)}
        bad |= {v.edge for v in result.violations if v.edge in plain}
        if not bad:
            break
        plain -= bad  # each round folds at least one more use, so this ends
    if result.violations or result.unreached:  # cannot happen for a verified graph
        raise FrontendError(f"to_nir: graph @{graph.name}: cannot express its delays in NIR "
                            f"({result.violations or result.unreached})")
    return plain


def _seconds(steps: np.ndarray, graph: Graph, what: str) -> np.ndarray:
    if not np.any(steps):
        return np.zeros(steps.shape, dtype=np.float64)
    if graph.attrs.dt is None:
        raise FrontendError(f"to_nir: {what} is a delay in steps, and NIR stores delays in "
                            f"seconds; the graph needs the attribute dt")
    return steps.astype(np.float64) * graph.attrs.dt


def _with_meta(nir_node: Any, meta: NodeMeta) -> Any:
    if meta != NodeMeta():
        nir_node.metadata = {META_KEY: dump_meta(meta)}
    return nir_node


def _node(nir: Any, node: Node, graph: Graph, params: Mapping[str, Any], kind: str) -> Any:
    """The NIR node for one IR node (with its metadata)."""
    op = node.op
    assert node.type is not None
    out_shape = node.type.shape
    in_shape = _in_shape(node, graph)
    meta: dict[str, Any] = {"omit": [], "shapes": {}, "dtypes": {}, "names": {}}

    def arr(field: str, *, layer: tuple[int, ...] | None = None) -> np.ndarray:
        ref: ParamRef | None = getattr(op, field)
        if ref is None:
            meta["omit"].append(field)
            shape = layer if layer is not None else ()
            if field == "bias":
                shape = (getattr(op, "weight").type.shape[0],)  # noqa: B009 (conv only)
            return np.full(shape, NEUTRAL[field], dtype=np.float32)
        if ref.name != f"{node.id}.{field}":
            meta["names"][field] = ref.name
        if ref.type.dtype != "f32":
            meta["dtypes"][field] = ref.type.dtype
        value = np.asarray(params[ref.name])
        if value.dtype.name not in ("float16", "float32", "float64"):
            value = value.astype(np.float32)  # HDF5 has no bfloat16; dtypes restores it
        if layer is not None and value.shape != layer:
            meta["shapes"][field] = value.shape
            value = np.broadcast_to(value, layer).copy()
        return value

    try:
        nir_node = _build(nir, kind, op, arr, node, graph, in_shape, out_shape, meta)
    except (AssertionError, ValueError, TypeError) as e:  # nir's own checks
        raise FrontendError(f"to_nir: nir rejects node %{node.id} ({op.mnemonic}): {e}") from None
    return _with_meta(nir_node, NodeMeta(
        omit=tuple(meta["omit"]), shapes=meta["shapes"], dtypes=meta["dtypes"],
        names=meta["names"], reset=getattr(op, "reset", None),
        input_dtype=meta.get("input_dtype"), input_spike=meta.get("input_spike", False)))


def _in_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    if not node.inputs:
        return node.type.shape if node.type is not None else ()
    t = graph.node(node.inputs[0].node).type
    assert t is not None
    return t.shape


def _build(nir: Any, kind: str, op: Any, arr: Any, node: Node, graph: Graph,
           in_shape: tuple[int, ...], out_shape: tuple[int, ...], meta: dict[str, Any]) -> Any:
    if kind == "Input":
        if op.type.dtype != "f32" or op.type.spike:
            meta["input_dtype"], meta["input_spike"] = op.type.dtype, op.type.spike
        return nir.Input(input_type={"input": np.array(op.type.shape, dtype=np.int64)})
    if kind == "Output":
        return nir.Output(output_type={"output": np.array(out_shape, dtype=np.int64)})
    if kind == "Affine":
        return nir.Affine(weight=arr("weight"), bias=arr("bias"))
    if kind == "Linear":
        return nir.Linear(weight=arr("weight"))
    if kind == "Scale":
        return nir.Scale(scale=arr("scale", layer=out_shape))
    if kind in ("Conv1d", "Conv2d"):
        pad = op.padding if isinstance(op.padding, str) else np.array(op.padding)
        if kind == "Conv1d":
            return nir.Conv1d(input_shape=int(in_shape[1]), weight=arr("weight"),
                              stride=int(op.stride[0]),
                              padding=pad if isinstance(pad, str) else int(pad[0]),
                              dilation=int(op.dilation[0]), groups=int(op.groups),
                              bias=arr("bias"))
        return nir.Conv2d(input_shape=tuple(int(d) for d in in_shape[1:]), weight=arr("weight"),
                          stride=tuple(op.stride), padding=pad if isinstance(pad, str) else
                          tuple(int(p) for p in pad), dilation=tuple(op.dilation),
                          groups=int(op.groups), bias=arr("bias"))
    if kind in ("SumPool2d", "AvgPool2d"):
        cls = nir.SumPool2d if kind == "SumPool2d" else nir.AvgPool2d
        return cls(kernel_size=np.array(op.kernel_size), stride=np.array(op.stride),
                   padding=np.array(op.padding))
    if kind == "Flatten":
        return nir.Flatten(input_type={"input": np.array(in_shape, dtype=np.int64)},
                           start_dim=op.start_dim, end_dim=op.end_dim)
    if kind == "Delay":
        steps = np.array(op.steps, dtype=np.int64)
        if steps.size == 1:
            meta["shapes"]["delay"] = ()
            steps = np.broadcast_to(steps.reshape(()), out_shape)
        else:
            steps = steps.reshape(out_shape)
        return nir.Delay(delay=_seconds(steps, graph, f"snn.delay %{node.id}").copy())
    fields = {f: arr(f, layer=out_shape) for f in NIR_NODES[kind].params}
    cls = getattr(nir, kind)
    return cls(**fields)
