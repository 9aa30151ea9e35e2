"""Type inference: fill in every node's output type from the inputs' types.

Types flow from ``io.input`` nodes through the op type rules. Recurrent graphs need a fixed
point: a node may read (with a delay) a producer whose type is not known yet, so a node is
typed as soon as any of its operands is, and every operand is checked afterwards. Fan-in
operands must all have the same shape; their sum is a spike train only if there is exactly
one operand and it is one.
"""

from __future__ import annotations

from spikejit.errors import ShapeError
from spikejit.ir.graph import Graph, Node
from spikejit.ir.ops import OpError
from spikejit.ir.types import TensorType


def operand_type(graph: Graph, node: Node, types: dict[str, TensorType]) -> TensorType | None:
    """The type of the summed operands of ``node`` (``None`` if none is known yet).

    Raises :class:`ShapeError` naming both ends of an edge whose shape disagrees.
    """
    known = [(u, types[u.node]) for u in node.inputs if u.node in types]
    if not known:
        return None
    first_use, first = known[0]
    for u, t in known[1:]:
        if t.shape != first.shape:
            raise graph.error(
                ShapeError, node.id,
                f"operands have different shapes: %{first_use.node} gives {first}, "
                f"%{u.node} gives {t} (fan-in is summed, so shapes must match)",
            )
    if len(node.inputs) == 1:
        return first
    return first.with_spike(False)


def infer_types(graph: Graph) -> Graph:
    """The graph with every node's ``type`` set; raises :class:`ShapeError` on conflicts.

    Existing types are recomputed (and so checked) rather than trusted.
    """
    types: dict[str, TensorType] = {}
    pending = [n for n in graph.nodes]
    while pending:
        progressed = False
        still: list[Node] = []
        for node in pending:
            if node.inputs and not any(u.node in types for u in node.inputs):
                still.append(node)
                continue
            in_type = operand_type(graph, node, types)
            try:
                types[node.id] = node.op.infer_type(in_type)
            except OpError as e:
                raise graph.error(ShapeError, node.id, e.reason) from None
            progressed = True
        pending = still
        if not progressed:
            first = pending[0]
            raise graph.error(
                ShapeError, first.id,
                "type cannot be inferred: none of its operands is reachable from an input",
            )
    for node in graph.nodes:
        # Re-check with every operand known (fixed point for recurrent graphs).
        for u in node.inputs:
            if u.node not in types:
                raise graph.error(ShapeError, node.id, f"operand %{u.node} does not exist")
        in_type = operand_type(graph, node, types)
        try:
            again = node.op.infer_type(in_type)
        except OpError as e:
            raise graph.error(ShapeError, node.id, e.reason) from None
        if again != types[node.id]:
            raise graph.error(
                ShapeError, node.id,
                f"type is not consistent around a cycle: {types[node.id]} vs {again}",
            )
    return graph.replace(nodes=tuple(n.replace(type=types[n.id]) for n in graph.nodes))
