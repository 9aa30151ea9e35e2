"""Reading in-memory ``nir.NIRGraph`` objects into the plain data of :mod:`.reader`
(:class:`~.reader.RawGraph`/:class:`~.reader.RawNode`), without ``nir``'s constructors or
type check; nodes and nesting are counted against :mod:`spikejit.graph_limits` before the
graph is expanded, and the walk uses a stack, not recursion.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spikejit.errors import FrontendError
from spikejit.frontends.nir.reader import RawGraph, RawNode
from spikejit.frontends.nir.schema import NIR_NODES, supported_kinds
from spikejit.graph_limits import check_count


def read_nir_object(graph: Any, *, label: str = "NIR graph") -> RawGraph:
    """Turn an in-memory ``nir.NIRGraph`` into a :class:`RawGraph`.

    Parameters may be numpy arrays, Python numbers or torch tensors (exporters pass those
    through); they are copied into numpy arrays.

    Raises:
        FrontendError: A node is not a NIR node (e.g. ``None`` left by an exporter that
            could not convert a layer) or has a type NIR 1.0.8 does not define; or a
            graph contains itself.
        SizeLimitError: The graph, its subgraphs expanded, has more nodes or levels than
            :mod:`spikejit.graph_limits` allows.
    """
    _check_expanded(graph, label)
    root, stack = _object_graph(graph, label, "")
    stack.reverse()
    while stack:  # a stack, not recursion: the depth is the graph's (up to the limit)
        nodes, name, node, path = stack.pop()
        nodes[name], children = _object_graph(node, label, path)
        stack.extend(reversed(children))
    return root


def _check_expanded(graph: Any, label: str) -> None:
    """Count the nodes ``graph`` has once every subgraph is expanded, before expanding: the
    same subgraph object may appear twice (legitimately), but twice per level, 32 levels
    deep, it is 2**32 nodes. Each distinct graph object is counted once (``sizes``); one
    inside itself is refused. Anything malformed counts 1 (:func:`_object_graph` reports
    it)."""
    sizes: dict[int, int] = {}
    frames = [[graph, "", iter(_node_items(graph)), 1]]  # graph, path, items left, total
    while frames:
        frame = frames[-1]
        for name, node in frame[2]:
            if id(node) in sizes:
                frame[3] += sizes[id(node)]
            elif any(f[0] is node for f in frames):
                raise FrontendError(f"{label}: subgraph {frame[1] + str(name)!r} contains "
                                    f"itself (a graph cannot be its own node)")
            elif _is_graph(node):
                check_count("depth", len(frames), f"{label}: graph {frame[1] + str(name)!r}")
                frames.append([node, f"{frame[1]}{name}/", iter(_node_items(node)), 1])
                break
            else:
                frame[3] += 1
        else:
            frames.pop()
            sizes[id(frame[0])] = frame[3]
            if frames:
                frames[-1][3] += frame[3]
    check_count("nodes", sizes[id(graph)], f"{label} (subgraphs counted each time they "
                                           f"appear)")


def _node_items(graph: Any) -> list[tuple[Any, Any]]:
    nodes = getattr(graph, "nodes", None)
    return list(nodes.items()) if isinstance(nodes, dict) else []


def _is_graph(node: Any) -> bool:
    return any(c.__name__ == "NIRGraph" and c.__module__.startswith("nir")
               for c in type(node).__mro__)


def _object_graph(graph: Any, label: str, path: str) -> tuple[RawGraph, list[Any]]:
    """One graph object read; its subgraphs still to read, as
    ``(graph.nodes, name, subgraph, path)``."""
    nodes_attr = getattr(graph, "nodes", None)
    edges_attr = getattr(graph, "edges", None)
    if not isinstance(nodes_attr, dict) or edges_attr is None:
        raise FrontendError(f"{label}: expected a nir.NIRGraph (with 'nodes' and 'edges'), "
                            f"got {type(graph).__name__}")
    nodes: dict[str, RawNode | RawGraph] = {}
    children = []
    for name, node in nodes_attr.items():
        where = f"{label}:{path}{name}"
        if not isinstance(name, str):
            raise FrontendError(f"{label}: node name {name!r} is not a string")
        kind = _object_kind(node)
        if kind is None:
            raise FrontendError(
                f"{label}: node {path + name!r} is {type(node).__name__}, not a NIR node (an "
                f"exporter that could not convert a layer leaves such entries); supported: "
                f"{supported_kinds()}")
        if kind == "NIRGraph":
            nodes[name] = RawGraph({}, [])  # filled in place by read_nir_object
            children.append((nodes, name, node, f"{path}{name}/"))
        else:
            fields = _object_fields(node, kind, f"{label}: node {path + name!r}")
            nodes[name] = RawNode(kind, fields, _metadata(node), where)
    try:
        edges = [(str(a), str(b)) for a, b in edges_attr]
    except (TypeError, ValueError):
        raise FrontendError(f"{label}: edges of graph {path or '/'} must be (source, target) "
                            f"pairs") from None
    return RawGraph(nodes, edges, _metadata(graph), f"{label}:{path or '/'}"), children


def _object_kind(node: Any) -> str | None:
    import nir

    for cls in type(node).__mro__:
        if cls.__module__.startswith("nir") and cls.__name__ in NIR_NODES:
            return cls.__name__
    if isinstance(node, nir.NIRNode):  # a NIR class spikejit does not know
        raise FrontendError(f"NIR node type {type(node).__name__!r} is not supported; "
                            f"supported: {supported_kinds()}")
    return None


def _object_fields(node: Any, kind: str, where: str) -> dict[str, Any]:
    spec = NIR_NODES[kind]
    out: dict[str, Any] = {}
    if kind in ("Input", "Flatten"):
        out["shape" if kind == "Input" else "input_type"] = _port(node, "input_type", where)
    elif kind == "Output":
        out["shape"] = _port(node, "output_type", where)
    names = [*spec.params, *(a for a in spec.attrs if a not in out)]
    for name in names:
        value = getattr(node, name, None)
        out[name] = value if isinstance(value, str) else _to_numpy(value)
    return {k: v for k, v in out.items() if v is not None}


def _port(node: Any, attr: str, where: str) -> Any:
    """The shape in ``node.input_type["input"]`` / ``node.output_type["output"]``."""
    types = getattr(node, attr, None)
    if types is None:
        return None
    key = attr.split("_")[0]
    if not isinstance(types, dict):
        raise FrontendError(f"{where}: {attr} must be a dict {{{key!r}: shape}}, got "
                            f"{type(types).__name__}")
    return _to_numpy(types.get(key))


def _to_numpy(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        return np.array(value)
    except (TypeError, ValueError):
        return value


def _metadata(obj: Any) -> dict[str, Any]:
    meta = getattr(obj, "metadata", None)
    if not isinstance(meta, dict):
        return {}
    return {str(k): (v.decode("utf8", "replace") if isinstance(v, bytes) else v)
            for k, v in meta.items()}


__all__ = ["read_nir_object"]
