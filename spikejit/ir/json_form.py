"""The stable JSON form of a graph (``spikejit inspect --format json``).

Schema ``spikejit.ir.json/v1`` (documented in ``docs/ir.md``)::

    {
      "format": "spikejit.ir.json/v1",
      "name": "main",
      "attributes": {"dt": 0.001, "reset": "value", "cuba_current": "post", "method": "euler"},
      "nodes": [
        {"id": "lif", "op": "snn.lif", "loc": "nir:lif",
         "inputs": [{"node": "fc", "delay": 0}, {"node": "rec", "delay": 1}],
         "attributes": {"reset": "subtract"},
         "params": {"tau": {"name": "lif.tau",
                            "type": {"shape": [4], "dtype": "f32", "spike": false}}},
         "type": {"shape": [4], "dtype": "f32", "spike": true}}
      ],
      "schedule": [{"kind": "layerwise", "order": "dfs", "nodes": ["fc"]}]   (or null)
    }

A graph with derived or retained parameters (a ``params`` block in its text) is written as
``spikejit.ir.json/v2``: the same keys plus::

      "params": {"retained": [{"name": "fc0.bias", "type": {...}}],
                 "derived": [{"name": "fc.weight.folded", "type": {...}, "fn": "matmul",
                              "args": [{"name": "fc2.weight", "type": {...}}, ...],
                              "attributes": {}}]}

so every graph without one keeps its v1 form. Keys are only ever added in a new format
version; ``attributes`` holds the non-default
static attributes of the op, ``params`` its parameter references (never values).
"""

from __future__ import annotations

import json
from typing import Any

from spikejit.ir.derived import DerivedParam
from spikejit.ir.graph import Graph, Node
from spikejit.ir.types import ParamRef, TensorType

FORMAT = "spikejit.ir.json/v1"
#: The format of graphs with derived or retained parameters (adds the ``params`` key).
FORMAT_V2 = "spikejit.ir.json/v2"


def _type(t: TensorType | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"shape": list(t.shape), "dtype": t.dtype, "spike": t.spike}


def _value(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_value(x) for x in v]
    if isinstance(v, TensorType):
        return _type(v)
    return v


def _ref(r: ParamRef) -> dict[str, Any]:
    return {"name": r.name, "type": _type(r.type)}


def _derived(d: DerivedParam) -> dict[str, Any]:
    return {"name": d.name, "type": _type(d.type), "fn": d.fn,
            "args": [_ref(a) for a in d.args],
            "attributes": {k: _value(v) for k, v in d.attrs}}


def _node(n: Node) -> dict[str, Any]:
    params = {f: {"name": r.name, "type": _type(r.type)} for f, r in n.op.params()}
    attrs = {k: _value(v) for k, v in n.op.attributes() if not isinstance(v, ParamRef)}
    return {
        "id": n.id,
        "op": n.op.mnemonic,
        "loc": n.loc,
        "inputs": [{"node": u.node, "delay": u.delay} for u in n.inputs],
        "attributes": attrs,
        "params": params,
        "type": _type(n.type),
    }


def to_json_dict(graph: Graph) -> dict[str, Any]:
    """The graph as plain JSON-compatible data (schema in the module docstring)."""
    a = graph.attrs
    schedule = None
    if graph.schedule is not None:
        schedule = [{"kind": s.kind, "order": s.order, "nodes": list(s.nodes)}
                    for s in graph.schedule.segments]
    out: dict[str, Any] = {
        "format": FORMAT_V2 if graph.derived or graph.retained else FORMAT,
        "name": graph.name,
        "attributes": {"dt": a.dt, "reset": a.reset, "cuba_current": a.cuba_current,
                       "method": a.method},
        "nodes": [_node(n) for n in graph.nodes],
        "schedule": schedule,
    }
    if graph.derived or graph.retained:
        out["params"] = {"retained": [_ref(r) for r in graph.retained],
                         "derived": [_derived(d) for d in graph.derived]}
    return out


def to_json(graph: Graph, *, indent: int | None = 2) -> str:
    """The graph as a JSON string."""
    return json.dumps(to_json_dict(graph), indent=indent, ensure_ascii=False)
