"""``fuse-synapse-neuron``: a synapse and the neuron it feeds become one fused layer op.

``N(P(x))`` with ``P`` an ``nn.linear``/``nn.affine``/``nn.conv1d``/``nn.conv2d`` and ``N`` a
NIR neuron (``snn.i``, ``snn.if``, ``snn.li``, ``snn.lif``, ``snn.cuba_li``,
``snn.cuba_lif``) becomes one ``layer.<p>_<n>`` node (``spikejit.ir.ops.fused``) with both
ops' fields. It lowers to one matrix product (or convolution) over the whole time axis
followed by one scan of the neuron in a layerwise segment, and to both steps in one scan
body in a stepwise segment: the same work as the two nodes, in one node.

Legal when ``N`` has exactly one operand, ``P`` read at the same step, and nothing else
reads ``P`` (so ``P``'s value is needed only as ``N``'s input). ``P`` may sum several
operands: the fused node reads them. The fused node keeps the neuron's id, so outputs,
traces and the state dict (``state[id]["v"]``, ...) keep their names. The computation is
the same, in the same order: results are bit-identical.

There is no cost model: the fused node does what the pair did. Where the scheduler could
have run ``P`` layerwise and ``N`` stepwise, fusing would move ``P`` into the scan, but
that cannot happen here: ``N``'s only operand is ``P``, so ``N`` is on a cycle only if
``P`` is on the same one.

Pre: the graph verifies. Post: it verifies, takes the same user parameters, computes
exactly the same outputs, and no fusable pair remains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from spikejit.ir.graph import Graph, Node, Use
from spikejit.ir.ops.fused import FUSED_OPS, FusedLayer
from spikejit.passes.base import Pass
from spikejit.passes.rewrite import finish, rename_to, single_user, substitute, typed


def fuse_synapse_neuron(graph: Graph) -> Graph:
    """Fuse every single-user synapse into the neuron it feeds (see the module docstring)."""
    graph = typed(graph)
    replaced: dict[str, Node] = {}
    subst: dict[str, Callable[[int], Sequence[Use]]] = {}
    for n in graph.nodes:
        if len(n.inputs) != 1 or n.inputs[0].delay != 0:
            continue
        p = graph.node(n.inputs[0].node)
        if (type(p.op), type(n.op)) not in FUSED_OPS or p.id == n.id or p.id in subst:
            continue
        if single_user(graph, p.id) is None:
            continue
        replaced[n.id] = n.replace(op=FusedLayer.fuse(p.op, n.op), inputs=p.inputs)
        subst[p.id] = rename_to(n.id)  # never read: its only user is the fused node
    if not replaced:
        return graph
    nodes = [replaced.get(n.id, n) for n in graph.nodes]
    return finish(graph, substitute(nodes, subst))


FUSE_SYNAPSE_NEURON = Pass("fuse-synapse-neuron", fuse_synapse_neuron,
                           "fuse a linear/affine/conv node into the NIR neuron it alone feeds "
                           "(one layer.* op: one product over all steps, one scan)")
