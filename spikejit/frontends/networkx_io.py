"""networkx graphs in and out: ``spikejit.from_networkx`` and ``spikejit.to_networkx``.

The schema (``docs/graphs.md`` shows it with examples). A ``networkx.DiGraph`` or
``MultiDiGraph`` (the latter when one producer feeds a consumer twice, e.g. with two
delays):

* graph attributes: ``name`` (default ``"main"``) and the graph options ``dt`` (seconds),
  ``reset``, ``cuba_current``, ``method``; all optional;
* node attributes: ``op`` (required): a mnemonic such as ``"snn.lif"``, a short name or an
  op class; ``params``: ``{field: array}`` for the op's parameters (numbers and array-likes
  are converted to the ``dtype`` argument; a :class:`~spikejit.frontends.builder.Param`
  sets another name or dtype); ``attrs``: ``{field: value}`` for static attributes
  (``io.input`` takes ``shape`` and optionally ``dtype`` and ``spike`` here); ``loc``:
  a source location string. Other node attributes (``pos``, ``label``, ...) are ignored;
* edge attributes: ``delay`` (steps, default 0) or ``delay_time`` (seconds, a whole number
  of steps); ``index``: the operand position at the consumer (default: edge order). Fan-in
  is summed.

Node order is the graph's print order. :func:`to_networkx` writes exactly this schema
(parameters as numpy arrays, wrapped in ``Param`` where the name or dtype is not the
default), so ``from_networkx(to_networkx(graph, params))`` gives back the typed graph and
the same params.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from spikejit.errors import FrontendError, SpikejitError
from spikejit.frontends.builder import GraphBuilder, Param, resolve_op
from spikejit.ir.graph import Graph
from spikejit.ir.ops import Input, Output
from spikejit.ir.types import NUMPY_DTYPE_NAMES


def _graph_kwargs(g: Any) -> dict[str, Any]:
    known = ("dt", "reset", "cuba_current", "method")
    return {k: g.graph[k] for k in known if g.graph.get(k) is not None}


def from_networkx(g: Any, *, dtype: str = "f32") -> tuple[Graph, dict[str, np.ndarray]]:
    """Build ``(Graph, params)`` from a networkx graph in the schema of this module.

    Args:
        g: A ``networkx.DiGraph`` or ``MultiDiGraph``.
        dtype: IR dtype of parameters given as plain numbers or arrays.

    Returns:
        The typed, verified graph and its params.

    Raises:
        FrontendError: a node lacks ``op`` or has malformed ``params``/``attrs``/edges.
        SpikejitError: the builder's and verifier's errors, naming the node.
    """
    import networkx as nx

    if not isinstance(g, nx.DiGraph):
        raise FrontendError(f"from_networkx: expected a networkx DiGraph or MultiDiGraph, got "
                            f"{type(g).__name__}")
    b = GraphBuilder(str(g.graph.get("name", "main")), dtype=dtype, **_graph_kwargs(g))
    for nid, data in g.nodes(data=True):
        if not isinstance(nid, str):
            raise FrontendError(f"from_networkx: node ids must be strings, got {nid!r}")
        if "op" not in data:
            raise FrontendError(f"from_networkx: node {nid!r} has no 'op' attribute (the op "
                                f"mnemonic, e.g. 'snn.lif'); its attributes: {sorted(data)}")
        params, attrs = data.get("params") or {}, dict(data.get("attrs") or {})
        for what, value in (("params", params), ("attrs", attrs)):
            if not isinstance(value, Mapping):
                raise FrontendError(f"from_networkx: node {nid!r}: {what!r} must be a dict, "
                                    f"got {type(value).__name__}")
        loc = str(data.get("loc", ""))
        cls = resolve_op(data["op"], node_id=nid)
        if cls is Input:
            if "shape" not in attrs:
                raise FrontendError(f"from_networkx: io.input node {nid!r} needs "
                                    f"attrs={{'shape': [...]}}")
            unknown = sorted(set(attrs) - {"shape", "dtype", "spike"}) + sorted(params)
            if unknown:
                raise FrontendError(f"from_networkx: io.input node {nid!r}: unknown field(s) "
                                    f"{unknown}; it takes shape, dtype and spike")
            b.input(nid, attrs["shape"], dtype=attrs.get("dtype"),
                    spike=bool(attrs.get("spike", False)), loc=loc)
            continue
        clash = sorted(set(params) & set(attrs))
        if clash:
            raise FrontendError(f"from_networkx: node {nid!r}: {clash} given both as params "
                                f"and as attrs")
        if cls is Output and not params and not attrs:
            b.output(nid, loc=loc)
        else:
            b.add(nid, cls, loc=loc, **params, **attrs)
    for nid in g.nodes:
        for src, delay, delay_time in _operands(g, nid):
            b.connect(src, nid, delay=delay, delay_time=delay_time)
    return b.build()


def _operands(g: Any, nid: str) -> list[tuple[str, int, float | None]]:
    """``(producer, delay, delay_time)`` of every in-edge of ``nid``, in operand order."""
    edges = []
    for order, (src, _, data) in enumerate(g.in_edges(nid, data=True)):
        index = data.get("index", order)
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise FrontendError(f"from_networkx: edge {src!r} -> {nid!r}: 'index' must be an "
                                f"integer, got {index!r}")
        delay = data.get("delay", 0)
        edges.append((int(index), order, src, delay, data.get("delay_time")))
    indices = [e[0] for e in edges]
    if len(set(indices)) != len(indices):
        raise FrontendError(f"from_networkx: the edges into {nid!r} repeat an 'index' "
                            f"({sorted(indices)}); each operand needs its own position")
    return [(src, delay, dtime) for _, _, src, delay, dtime in sorted(edges)]


def to_networkx(graph: Graph, params: Mapping[str, Any]) -> Any:
    """A ``networkx.MultiDiGraph`` in the schema of this module (see the module docstring).

    Args:
        graph: A graph built by a frontend (not one with derived parameters from
            optimisation passes: export before optimising).
        params: Its parameters.

    Raises:
        FrontendError: a parameter is missing or the graph holds derived parameters.
    """
    import networkx as nx

    if getattr(graph, "derived", ()):
        raise FrontendError(f"to_networkx: graph @{graph.name} holds derived parameters "
                            f"(after optimisation passes); export the graph before them")
    a = graph.attrs
    out: Any = nx.MultiDiGraph(name=graph.name, dt=a.dt, reset=a.reset,
                          cuba_current=a.cuba_current, method=a.method)
    for n in graph.nodes:
        data: dict[str, Any] = {"op": n.op.mnemonic}
        if isinstance(n.op, Input):
            t = n.op.type
            data["attrs"] = {"shape": list(t.shape), "dtype": t.dtype, "spike": t.spike}
        else:
            values: dict[str, Any] = {}
            attrs: dict[str, Any] = {}
            for field, value in n.op.attributes():
                if field in dict(n.op.params()):
                    values[field] = _param_value(n.id, field, value, params)
                else:
                    attrs[field] = value
            if values:
                data["params"] = values
            if attrs:
                data["attrs"] = attrs
        if n.loc:
            data["loc"] = n.loc
        out.add_node(n.id, **data)
    for n in graph.nodes:
        for i, u in enumerate(n.inputs):
            out.add_edge(u.node, n.id, delay=u.delay, index=i)
    return out


def _param_value(nid: str, field: str, ref: Any, params: Mapping[str, Any]) -> Any:
    if ref.name not in params:
        raise FrontendError(f"to_networkx: %{nid}: parameter {field} @{ref.name} is missing "
                            f"from params")
    value = params[ref.name]
    try:
        arr = np.array(value)
    except (TypeError, ValueError, SpikejitError) as e:
        raise FrontendError(f"to_networkx: parameter @{ref.name}: {e}") from None
    if ref.name == f"{nid}.{field}" and ref.type.dtype == "f32" and arr.dtype.name == \
            NUMPY_DTYPE_NAMES["f32"]:
        return arr
    return Param(arr, name=ref.name, dtype=ref.type.dtype)


__all__ = ["from_networkx", "to_networkx"]
