"""Reference-interpreter rules of the ops that only optimisation passes introduce.

``nn.pad`` (``merge-fanin``): zeros around the last axis. :data:`FUSED_RULES` is spread
into :data:`spikejit.ir.interp_rules.INTERPRETER_RULES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from spikejit.ir.ops import Op
from spikejit.ir.ops.pad import Pad

if TYPE_CHECKING:
    from spikejit.ir.interp_rules import Operand, Result, State, StepContext


def _pad(ctx: StepContext, x: Operand, state: State) -> Result:
    assert x is not None and isinstance(ctx.node.op, Pad)
    op = ctx.node.op
    widths = [(0, 0)] * (x.ndim - 1) + [(op.before, op.after)]
    return np.pad(x, widths), {}


FUSED_RULES: Mapping[type[Op], Callable[[StepContext, Operand, State], Result]] = {Pad: _pad}
