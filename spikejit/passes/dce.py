"""``dce``: remove every node from which no ``io.output`` can be reached.

A node that reaches no output cannot influence anything a user observes: outputs are the
only values a run returns, and a node's state only feeds the node itself and its users.
Edges of every kind count (delayed uses too), so a recurrent loop that feeds an output is
kept whole. ``io.input`` nodes always stay, even unused: they are the graph's calling
convention (``x`` is keyed by their ids). Parameters that only removed nodes read stay
part of the graph's signature (``Graph.retained``), so the params pytree is unchanged.

What does change is internal: the state dict of ``return_state=True`` and traces no
longer have entries for removed nodes.

Pre: the graph verifies. Post: it verifies, every node reaches an output or is an input,
and the outputs are identical.
"""

from __future__ import annotations

from spikejit.ir.analysis import reaches_output
from spikejit.ir.graph import Graph
from spikejit.ir.ops import Input
from spikejit.passes.base import Pass
from spikejit.passes.rewrite import finish


def dce(graph: Graph) -> Graph:
    """Drop the nodes that reach no ``io.output`` (see the module docstring)."""
    live = reaches_output(graph)
    nodes = [n for n in graph.nodes if n.id in live or isinstance(n.op, Input)]
    if len(nodes) == len(graph.nodes):
        return graph
    return finish(graph, nodes)


DCE = Pass("dce", dce, "remove nodes from which no io.output is reachable")
