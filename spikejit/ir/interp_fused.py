"""Reference-interpreter rules of the ops that only optimisation passes introduce.

``nn.pad`` (``merge-fanin``): zeros around the last axis. Fused layers
(``fuse-synapse-neuron``): the synapse's own rule, then the neuron's, each with its own
fields, so a fused layer computes exactly what the two nodes computed. One rule serves
every generated ``layer.*`` op (registered for the family :class:`FusedLayer`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spikejit.ir.interp_context import INTERPRETER_RULES, Operand, Result, State, StepContext
from spikejit.ir.ops import Op
from spikejit.ir.ops.fused import FusedLayer
from spikejit.ir.ops.pad import Pad


@INTERPRETER_RULES.register(Pad)
def _pad(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None and isinstance(ctx.node.op, Pad)
    op = ctx.node.op
    widths = [(0, 0)] * (x.ndim - 1) + [(op.before, op.after)]
    return np.pad(x, widths), {}


def _part(ctx: StepContext, op: Op, fields: tuple[str, ...]) -> StepContext:
    """The context of one part of a fused layer: its op and its own parameters."""
    p = {k: v for k, v in ctx.p.items() if k in fields}
    return dataclasses.replace(ctx, node=ctx.node.replace(op=op), p=p)


def _fused(ctx: StepContext, x: Operand, state: State) -> Result:
    op = ctx.node.op
    assert x is not None and isinstance(op, FusedLayer)
    synapse, neuron = op.synapse(), op.neuron()
    y, _ = INTERPRETER_RULES[type(synapse)](_part(ctx, synapse, op.synapse_fields()), x, {})
    return INTERPRETER_RULES[type(neuron)](_part(ctx, neuron, op.neuron_fields()), y, state)


INTERPRETER_RULES.define_family(FusedLayer, _fused)
