"""The textual form of the IR (grammar in ``docs/ir.md``).

One node per line in ``Graph.nodes`` order; attributes in field order, leaving out those
equal to their default; floats with ``repr`` (shortest round-tripping form); parameters as
``@name: type``, never their values; the output type after ``:`` (omitted while unknown);
source locations only with ``debug_info=True``. ``parse(print_graph(g)) == g``.

    graph @main attributes {dt = 0.001, reset = "value", cuba_current = "post", method = "euler"} {
      %x = io.input() {type = f32[3]} : f32[3]
      %fc = nn.affine(%x) {weight = @fc.weight: f32[4,3], bias = @fc.bias: f32[4]} : f32[4]
      %lif = snn.lif(%fc, %rec[t-1]) {tau = @lif.tau: f32[4], v_threshold = @lif.v_threshold: f32[4]} : spike<f32[4]>
      %rec = nn.linear(%lif) {weight = @rec.weight: f32[4,4]} : f32[4]
      %y = io.output(%lif) : spike<f32[4]>
    }

Derived and retained parameters (``Graph.derived``, ``Graph.retained``) follow the nodes in
a ``params`` block, retained ones first, then the derivations in dependency order::

      params {
        @fc1.bias: f32[5]
        @fc2.weight.folded: f32[4,3] = matmul(@fc2.weight: f32[4,5], @fc1.weight: f32[5,3])
      }
"""  # noqa: E501 (the examples are verbatim printer output: one node per line, never wrapped)

from __future__ import annotations

import json
import math
from typing import Any

from spikejit.ir.derived import DerivedParam
from spikejit.ir.graph import Graph, GraphAttrs, Node, Use
from spikejit.ir.names import format_name
from spikejit.ir.schedule import Schedule
from spikejit.ir.types import ParamRef, TensorType

INDENT = "  "


def format_value(value: Any) -> str:
    """The printed form of an attribute value."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, ParamRef | TensorType):
        return str(value)
    # NOTE: only reachable for ops built with attribute types the IR does not know.
    return json.dumps(repr(value))


def format_use(use: Use) -> str:
    """``%a`` or ``%a[t-k]`` for a delayed use."""
    text = "%" + format_name(use.node)
    return f"{text}[t-{use.delay}]" if use.delay else text


def format_node(node: Node, *, debug_info: bool = False) -> str:
    """One node as a line of text (without indentation)."""
    text = f"%{format_name(node.id)} = {node.op.mnemonic}("
    text += ", ".join(format_use(u) for u in node.inputs) + ")"
    attrs = node.op.attributes()
    if attrs:
        text += " {" + ", ".join(f"{k} = {format_value(v)}" for k, v in attrs) + "}"
    if node.type is not None:
        text += f" : {node.type}"
    if debug_info and node.loc:
        text += f" loc({json.dumps(node.loc, ensure_ascii=False)})"
    return text


def format_attrs(attrs: GraphAttrs) -> str:
    """The graph attribute dictionary, every option spelled out."""
    items = []
    if attrs.dt is not None:
        items.append(f"dt = {format_value(attrs.dt)}")
    items += [
        f"reset = {format_value(attrs.reset)}",
        f"cuba_current = {format_value(attrs.cuba_current)}",
        f"method = {format_value(attrs.method)}",
    ]
    return "{" + ", ".join(items) + "}"


def format_derived(d: DerivedParam) -> str:
    """``@name: type = fn(@arg: type, ...) {key = value}``."""
    text = f"{d.ref} = {d.fn}(" + ", ".join(str(a) for a in d.args) + ")"
    if d.attrs:
        text += " {" + ", ".join(f"{k} = {format_value(v)}" for k, v in d.attrs) + "}"
    return text


def format_params(graph: Graph) -> list[str]:
    """The ``params { ... }`` block (empty list when there is nothing to declare)."""
    if not graph.derived and not graph.retained:
        return []
    lines = ["params {"]
    lines += [INDENT + str(ref) for ref in graph.retained]
    lines += [INDENT + format_derived(d) for d in graph.derived]
    lines.append("}")
    return lines


def format_schedule(schedule: Schedule) -> list[str]:
    """The ``schedule { ... }`` block, one segment per line."""
    lines = ["schedule {"]
    for seg in schedule.segments:
        # The order is left out only where it is the default and meaningless (layerwise),
        # so that parse(print_graph(g)) == g for every segment.
        plain = seg.kind == "layerwise" and seg.order == "dfs"
        head = seg.kind if plain else f"{seg.kind}({seg.order})"
        line = INDENT + head + " " + ", ".join("%" + format_name(n) for n in seg.nodes)
        if seg.parallel:  # nodes whose recurrence runs as an associative scan
            line += " parallel(" + ", ".join("%" + format_name(n) for n in seg.parallel) + ")"
        lines.append(line)
    lines.append("}")
    return lines


def print_graph(graph: Graph, *, debug_info: bool = False) -> str:
    """The textual IR of ``graph`` (ends with a newline)."""
    lines = [f"graph @{format_name(graph.name)} attributes {format_attrs(graph.attrs)} {{"]
    lines += [INDENT + format_node(n, debug_info=debug_info) for n in graph.nodes]
    lines += [INDENT + line for line in format_params(graph)]
    if graph.schedule is not None:
        lines += [INDENT + line for line in format_schedule(graph.schedule)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def excerpt(graph: Graph, node_id: str, reason: str, *, radius: int = 2) -> str:
    """A few printed lines around ``node_id`` with the node's id underlined."""
    nodes = graph.nodes
    index = next((i for i, n in enumerate(nodes) if n.id == node_id), None)
    if index is None:
        return ""
    lo, hi = max(0, index - radius), min(len(nodes), index + radius + 1)
    out = []
    for i in range(lo, hi):
        line = INDENT + format_node(nodes[i])
        out.append(line)
        if i == index:
            width = len("%" + format_name(node_id))
            out.append(INDENT + "^" * width + " " + reason)
    return "\n".join(out)
