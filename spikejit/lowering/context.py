"""What a lowering rule sees, the kinds of rule, and the table rules register in.

A rule says what one node computes, independent of how the schedule runs it; the three
kinds (``map``, ``neuron``, ``delay``) are described in :mod:`spikejit.lowering.rules`.
Rule families register into :data:`LOWERINGS` where they are defined
(:mod:`~spikejit.lowering.rules` for the NIR ops, :mod:`~spikejit.lowering.biophysical`
for biophysical and user-defined neurons, :mod:`~spikejit.lowering.fused` for the ops
passes make); importing :mod:`spikejit.lowering.rules` loads every built-in family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jax

from spikejit.errors import LoweringError
from spikejit.ir.graph import Graph, Node
from spikejit.ir.ops import PARAM_DEFAULTS
from spikejit.ir.rule_table import RuleTable

Array = jax.Array
State = Mapping[str, Array]
#: What a neuron rule's ``apply`` returns: its output and its new state.
StepResult = tuple[Array, dict[str, Array]]
SpikeFn = Callable[[Array, Array], Array]


@dataclass(frozen=True)
class NodeContext:
    """Everything a rule reads besides its input and state.

    Attributes:
        node: The node (typed).
        p: Every parameter field of the op: the (traced) array, or the ``PARAM_DEFAULTS``
            value as a Python float for an omitted optional neuron parameter; an omitted
            conv bias is absent.
        h: The time step ``dt`` (``None`` when the graph has none; no rule then reads it).
        reset: Effective reset mode (the node's own, else the graph's).
        cuba_current: ``"post"`` or ``"pre"``.
        method: ``"euler"`` or ``"exp"``.
        spike: ``spike(v, threshold) -> z`` with the chosen surrogate bound.
        detach_reset: Whether the reset term is cut from autodiff (the spike still is not).
        conv_impl: The convolution variant (:data:`spikejit.lowering.conv.CONV_IMPLS`).
    """

    node: Node
    p: Mapping[str, Any]
    h: float | None
    reset: str
    cuba_current: str
    method: str
    spike: SpikeFn
    detach_reset: bool
    conv_impl: str = "auto"


def node_context(graph: Graph, node: Node, params: Mapping[str, Array], spike: SpikeFn,
                 detach_reset: bool, conv_impl: str = "auto") -> NodeContext:
    """Resolve a node's parameters and options (see :class:`NodeContext`)."""
    op = node.op
    p: dict[str, Any] = {}
    for name in op.param_fields():
        ref = getattr(op, name)
        if ref is not None:
            p[name] = params[ref.name]
        elif name in PARAM_DEFAULTS:
            p[name] = PARAM_DEFAULTS[name]
    reset = getattr(op, "reset", None) or graph.attrs.reset
    return NodeContext(node, p, graph.attrs.dt, reset, graph.attrs.cuba_current,
                       graph.attrs.method, spike, detach_reset, conv_impl)


@dataclass(frozen=True)
class Rule:
    """How one op class lowers (see the module docstring for the three kinds).

    A ``neuron`` rule may have ``pre``, a stateless map applied to the summed operand
    before the neuron step (fused layers: the synapse). Layerwise segments apply it once
    to the whole ``[T*B, ...]`` block before the scan, stepwise segments per step.
    """

    kind: str
    apply: Callable[..., Any]
    prepare: Callable[[NodeContext], dict[str, Any]] | None = None
    pre: Callable[[NodeContext, Array], Array] | None = None


#: Lowering rules by op class (see :class:`~spikejit.ir.rule_table.RuleTable`).
LOWERINGS: RuleTable[Rule] = RuleTable("lowering")


def rule_for(graph: Graph, node: Node) -> Rule:
    """The rule of ``node``'s op; :class:`LoweringError` naming the node if there is none."""
    rule = LOWERINGS.get(type(node.op))
    if rule is None:
        have = ", ".join(sorted(cls.mnemonic for cls in LOWERINGS))
        raise graph.error(LoweringError, node.id,
                          f"no lowering for {node.op.mnemonic}; have {have}")
    return rule


def step_size(ctx: NodeContext) -> float:
    """The time step ``dt``; a :class:`LoweringError` naming the node when the graph has
    none (the verifier prevents that for ops that declare ``uses_dt``)."""
    if ctx.h is None:
        raise LoweringError("needs the time step, but the graph attribute dt is not set",
                            node_id=ctx.node.id, op_name=ctx.node.op.mnemonic, loc=ctx.node.loc)
    return ctx.h
