"""Lowering rules of the ops that only optimisation passes introduce.

``nn.pad`` (``merge-fanin``) is a ``map`` rule: ``jnp.pad`` of the last axis (XLA fuses a
sum of padded operands into one concatenation). A fused layer (``fuse-synapse-neuron``) is
a ``neuron`` rule whose ``pre`` map is the synapse's rule: layerwise segments apply it once
to the whole ``[T*B, ...]`` block and then scan the neuron's step (one matrix product and
one scan per layer); stepwise segments apply it per step. One rule serves every generated
``layer.*`` op; importing this module registers the rules in
:data:`~spikejit.lowering.context.LOWERINGS`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from spikejit.ir.ops import Op
from spikejit.ir.ops.fused import FusedLayer
from spikejit.ir.ops.pad import Pad
from spikejit.lowering.context import LOWERINGS, NodeContext, Rule, State, StepResult


def _pad(ctx: NodeContext, x: jax.Array) -> jax.Array:
    op = ctx.node.op
    assert isinstance(op, Pad)
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(op.before, op.after)])


def _part(ctx: NodeContext, op: Op, fields: tuple[str, ...]) -> tuple[NodeContext, Rule]:
    """The context (its op, its own parameters) and the rule of one part of a fused layer."""
    # ``weight_t`` (a stepwise segment's transposed weight, see rules._dense) goes with it.
    p = {k: v for k, v in ctx.p.items() if k in fields or (k == "weight_t" and "weight" in fields)}
    return dataclasses.replace(ctx, node=ctx.node.replace(op=op), p=p), LOWERINGS[type(op)]


def _parts(ctx: NodeContext) -> tuple[NodeContext, Rule, NodeContext, Rule]:
    """Context and rule of the synapse, then of the neuron, of a fused layer."""
    op = ctx.node.op
    assert isinstance(op, FusedLayer)
    syn_ctx, syn_rule = _part(ctx, op.synapse(), op.synapse_fields())
    neu_ctx, neu_rule = _part(ctx, op.neuron(), op.neuron_fields())
    return syn_ctx, syn_rule, neu_ctx, neu_rule


def _fused_pre(ctx: NodeContext, x: jax.Array) -> jax.Array:
    syn_ctx, syn_rule, _, _ = _parts(ctx)
    return syn_rule.apply(syn_ctx, x)


def _fused_prepare(ctx: NodeContext) -> dict[str, Any]:
    _, _, neu_ctx, neu_rule = _parts(ctx)
    assert neu_rule.prepare is not None
    return neu_rule.prepare(neu_ctx)


def _fused_step(ctx: NodeContext, consts: dict[str, Any], s: State,
                x: jax.Array) -> StepResult:
    _, _, neu_ctx, neu_rule = _parts(ctx)
    return neu_rule.apply(neu_ctx, consts, s, x)


LOWERINGS.define(Rule("map", _pad), Pad)
LOWERINGS.define_family(FusedLayer, Rule("neuron", _fused_step, _fused_prepare, pre=_fused_pre))
