"""Small builders for hand-written graphs in the interpreter tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from spikejit.ir import Graph, GraphAttrs, Node, ParamRef, TensorType, Use
from spikejit.ir.ops import Input, Op, Output

NP = {"f32": np.float32, "f64": np.float64}


def ref(name: str, shape: tuple[int, ...] = (), dtype: str = "f64") -> ParamRef:
    """A parameter reference ``@name: dtype[shape]``."""
    return ParamRef(name, TensorType(tuple(shape), dtype))


def inp(node_id: str, shape: tuple[int, ...], dtype: str = "f64") -> Node:
    """An ``io.input`` node."""
    return Node(node_id, Input(type=TensorType(tuple(shape), dtype)))


def node(node_id: str, op: Op, *uses: str | Use) -> Node:
    """A node reading ``uses`` (ids are same-step uses)."""
    return Node(node_id, op, tuple(u if isinstance(u, Use) else Use(u) for u in uses))


def out(node_id: str, *uses: str | Use) -> Node:
    """An ``io.output`` node."""
    return node(node_id, Output(), *uses)


def graph(*nodes: Node, dt: float | None = 1e-3, **attrs: Any) -> Graph:
    """A graph of ``nodes`` with the given attributes."""
    return Graph(tuple(nodes), attrs=GraphAttrs(dt=dt, **attrs))


def params_for(g: Graph, **values: Any) -> dict[str, np.ndarray]:
    """Params for every reference of ``g``: ``values[name with '.' -> '_']`` broadcast to
    the declared shape, in the declared dtype."""
    out_: dict[str, np.ndarray] = {}
    for name, r in g.param_refs().items():
        value = values[name.replace(".", "_")]
        out_[name] = np.broadcast_to(np.asarray(value, NP[r.type.dtype]), r.type.shape).copy()
    return out_
