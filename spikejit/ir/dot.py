"""Graphviz DOT rendering of a graph: schedule segments as clusters, delayed edges marked.

Layerwise segments are drawn as blue clusters, stepwise segments (a scan over time) as
orange clusters; an edge read with a delay is dashed and labelled ``t-k``. Spiking nodes
are drawn as double octagons.
"""

from __future__ import annotations

import json

from spikejit.ir.graph import Graph, Node

_SEGMENT_STYLE = {
    "layerwise": ('"#e8f0fe"', '"#1a73e8"'),
    "stepwise": ('"#fef3e0"', '"#e37400"'),
}


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _label(n: Node) -> str:
    label = f"{n.id}\\n{n.op.mnemonic}"
    if n.type is not None:
        label += f"\\n{n.type}"
    return label.replace('"', "'")


def _node_line(n: Node) -> str:
    shape = "doubleoctagon" if n.op.spiking else (
        "invhouse" if n.op.category == "io" and not n.inputs else
        "house" if n.op.category == "io" else "box")
    return f'    {_q(n.id)} [label="{_label(n)}", shape={shape}];'


def to_dot(graph: Graph) -> str:
    """The DOT text of ``graph`` (one cluster per schedule segment, if scheduled)."""
    lines = [f"digraph {_q(graph.name)} {{", "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=10];', '  edge [fontsize=9];']
    placed: set[str] = set()
    if graph.schedule is not None:
        for i, seg in enumerate(graph.schedule.segments):
            fill, color = _SEGMENT_STYLE[seg.kind]
            title = seg.kind if seg.kind == "layerwise" else f"stepwise ({seg.order}, one scan)"
            lines += [f"  subgraph cluster_{i} {{", f'    label="{i}: {title}";',
                      f"    style=filled; fillcolor={fill}; color={color};"]
            for nid in seg.nodes:
                if nid in graph:
                    lines.append(_node_line(graph.node(nid)))
                    placed.add(nid)
            lines.append("  }")
    for n in graph.nodes:
        if n.id not in placed:
            lines.append(_node_line(n)[2:])
    for n in graph.nodes:
        for u in n.inputs:
            if u.delay:
                lines.append(f'  {_q(u.node)} -> {_q(n.id)} [style=dashed, color="#d93025", '
                             f'label="t-{u.delay}", constraint=false];')
            else:
                lines.append(f"  {_q(u.node)} -> {_q(n.id)};")
    lines.append("}")
    return "\n".join(lines) + "\n"
