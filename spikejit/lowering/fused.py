"""Lowering rules of the ops that only optimisation passes introduce.

``nn.pad`` (``merge-fanin``) is a ``map`` rule: ``jnp.pad`` of the last axis (XLA fuses a
sum of padded operands into one concatenation). Importing this module adds the rules to
:data:`spikejit.lowering.rules.LOWERINGS` (``rules`` imports it at its end).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from spikejit.ir.ops import Op
from spikejit.ir.ops.pad import Pad
from spikejit.lowering.rules import LOWERINGS, NodeContext, Rule


def _pad(ctx: NodeContext, x: jax.Array) -> jax.Array:
    op = ctx.node.op
    assert isinstance(op, Pad)
    return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(op.before, op.after)])


#: The rules of this module by op class.
FUSED_LOWERINGS: dict[type[Op], Rule] = {Pad: Rule("map", _pad)}

LOWERINGS.update(FUSED_LOWERINGS)
