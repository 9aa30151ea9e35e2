"""Type inference: fill in every node's output type from the inputs' types.

Types flow from ``io.input`` nodes through the op type rules. Recurrent graphs need a fixed
point: a node may read (with a delay) a producer whose type is not known yet, so a node is
typed as soon as any of its operands is, and every operand is checked afterwards. Fan-in
operands must all have the same shape; their sum is a spike train only if there is exactly
one operand and it is one.
"""

from __future__ import annotations

import heapq

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

    Existing types are recomputed (and so checked) rather than trusted. A graph whose
    recorded types are all already right is returned as is.
    """
    types = inferred_types(graph)
    if all(n.type == types[n.id] for n in graph.nodes):
        return graph
    typed = graph.replace(nodes=tuple(n if n.type == types[n.id] else n.replace(type=types[n.id])
                                      for n in graph.nodes))
    # Inference ignores recorded types, so the typed graph infers the same (the verifier
    # asks next).
    object.__setattr__(typed, "_inferred_types", types)
    return typed


def inferred_types(graph: Graph) -> dict[str, TensorType]:
    """Every node's output type by id, inferred from the inputs (recorded types are
    ignored); raises :class:`ShapeError` on conflicts, naming the node.

    Rounds over the nodes in print order: a node is typed, in the first round in which
    one of its operands is typed, from the operands typed so far (so recurrent graphs
    reach a fixed point); then every node typed before all its operands were is
    re-checked with all of them. A worklist visits each node once per round it can be
    typed in (linear time for any print order, no rescanning of waiting nodes).

    The result is remembered on the (immutable) graph: shape inference and the verifier
    both ask for it.
    """
    cached = graph.__dict__.get("_inferred_types")
    if cached is None:
        cached = _infer(graph)
        object.__setattr__(graph, "_inferred_types", cached)
    return dict(cached)


def _infer(graph: Graph) -> dict[str, TensorType]:
    nodes = graph.nodes
    users: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for u in n.inputs:
            users.setdefault(u.node, []).append(i)
    types: dict[str, TensorType] = {}
    typed = [False] * len(nodes)
    partial: list[int] = []  # typed before all operands were: re-checked at the end
    # The nodes of the current round, by print position (a node typed in this round wakes
    # its later users in this round and its earlier ones in the next, as a scan in print
    # order would).
    current = [i for i, n in enumerate(nodes) if not n.inputs]
    left = len(nodes)
    while left:
        following: list[int] = []
        while current:
            i = heapq.heappop(current)
            if typed[i]:
                continue
            node = nodes[i]
            if any(u.node not in types for u in node.inputs):  # a node may read itself
                partial.append(i)
            in_type = operand_type(graph, node, types)
            try:
                types[node.id] = node.op.infer_type(in_type)
            except OpError as e:
                raise graph.error(ShapeError, node.id, e.reason) from None
            typed[i] = True
            left -= 1
            for j in users.get(node.id, ()):
                if typed[j]:
                    continue
                if j > i:
                    heapq.heappush(current, j)
                else:
                    following.append(j)
        if left and not following:
            first = nodes[typed.index(False)]
            raise graph.error(
                ShapeError, first.id,
                "type cannot be inferred: none of its operands is reachable from an input",
            )
        current = sorted(set(following))
    for i in sorted(partial):
        # Re-check with every operand known (fixed point for recurrent graphs). A node
        # typed with all its operands known would give the same type again.
        node = nodes[i]
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
    return types
