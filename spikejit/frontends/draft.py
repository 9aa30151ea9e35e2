"""The one graph-building core every frontend builds through (internal).

A :class:`GraphDraft` collects what a frontend finds, in the order it finds it: nodes (op,
operands in fan-in order, ``loc`` and, where the frontend types as it goes, the output
type) and parameter arrays by name. It holds the checks every frontend needs (a node id
used twice, one parameter name bound to two different arrays, summed operands of
different shapes) and assembles the immutable :class:`~spikejit.ir.graph.Graph`.

The public :class:`~spikejit.frontends.builder.GraphBuilder` (and through it the networkx
and layer frontends), ``from_torch`` and ``from_nir`` all build through it, so a graph has
one way of coming into being. The checks return facts rather than raise, because each
frontend words the error for its user: the builder names the field, ``from_torch`` the
module or the line of ``forward``, ``from_nir`` the edges of the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from spikejit.errors import VerifyError
from spikejit.ir.graph import Graph, GraphAttrs, Node, Use
from spikejit.ir.ops import Op
from spikejit.ir.types import ParamRef, TensorType

#: ``(use, type)`` of an operand whose producer is typed already.
Operand = tuple[Use, TensorType]


class GraphDraft:
    """Nodes, operands, types and params of a graph under construction.

    Attributes (read and, for ``locs``, written by the frontends):
        ops: ``{node id: op}`` in the order the nodes were added.
        inputs: ``{node id: [Use, ...]}``, each node's operands in fan-in order.
        locs: ``{node id: source location}``.
        types: ``{node id: output type}`` for nodes added with a type.
        params: ``{name: array}`` in the order the names were first bound.
    """

    def __init__(self) -> None:
        self.ops: dict[str, Op] = {}
        self.inputs: dict[str, list[Use]] = {}
        self.locs: dict[str, str] = {}
        self.types: dict[str, TensorType] = {}
        self.params: dict[str, np.ndarray] = {}

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.ops

    # -- nodes -----------------------------------------------------------------------------
    def add(self, node_id: str, op: Op, inputs: Sequence[Use] = (), *, loc: str = "",
            type: TensorType | None = None) -> None:
        """Record a node (after the frontend's own, better worded checks)."""
        if node_id in self.ops:
            raise VerifyError("node id is used by more than one node", node_id=node_id,
                              op_name=op.mnemonic)
        self.ops[node_id] = op
        self.inputs[node_id] = list(inputs)
        self.locs[node_id] = loc
        if type is not None:
            self.types[node_id] = type

    def known_operands(self, uses: Sequence[Use]) -> list[Operand]:
        """The operands among ``uses`` whose producers are typed already, in order."""
        return [(u, self.types[u.node]) for u in uses if u.node in self.types]

    # -- params ----------------------------------------------------------------------------
    def bind_param(self, name: str, value: np.ndarray, dtype: str) -> ParamRef | None:
        """Bind ``name`` to ``value`` and return its reference; ``None`` (and nothing bound)
        if the name already holds a different array (shape, dtype or values)."""
        old = self.params.get(name)
        if old is not None and (old.shape != value.shape or old.dtype != value.dtype
                                or not np.array_equal(old, value)):
            return None
        self.params[name] = value
        return ParamRef(name, TensorType(tuple(value.shape), dtype))

    # -- result ----------------------------------------------------------------------------
    def graph(self, name: str, attrs: GraphAttrs, *, order: Sequence[str] | None = None,
              inputs: Mapping[str, Sequence[Use]] | None = None) -> Graph:
        """The graph of the recorded nodes (not yet verified or typed beyond what was
        recorded).

        Args:
            name: The graph's name.
            attrs: Its attributes.
            order: The print order (default: the order the nodes were added).
            inputs: Operands to use instead of the recorded ones (a frontend that resolves
                edges only at the end, e.g. delays given in seconds).
        """
        operands = self.inputs if inputs is None else inputs
        nodes = tuple(Node(nid, self.ops[nid], tuple(operands[nid]), self.types.get(nid),
                           loc=self.locs[nid])
                      for nid in (self.ops if order is None else order))
        return Graph(nodes, name, attrs)


def fan_in_type(known: Sequence[Operand], n_uses: int) -> TensorType | None:
    """A node's input type from its typed operands: the one operand's type, or for a sum
    of several the common type without the spike flag (a sum of spikes is not a spike);
    ``None`` if no operand is typed yet. Shapes must agree (see :func:`first_mismatch`)."""
    if not known:
        return None
    first = known[0][1]
    return first if n_uses == 1 else first.with_spike(False)


def first_mismatch(known: Sequence[Operand]) -> tuple[Operand, Operand] | None:
    """The first operand and the first one whose shape differs from it, if any."""
    for operand in known[1:]:
        if operand[1].shape != known[0][1].shape:
            return known[0], operand
    return None


__all__ = ["GraphDraft", "Operand", "fan_in_type", "first_mismatch"]
