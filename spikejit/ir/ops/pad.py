"""``nn.pad``: zero padding of the last axis, the building block of a concatenation.

The IR sums a node's operands (NIR fan-in), so it has no concatenation op with several
operands; a concatenation is written as a sum of padded operands instead::

    concat(a [2], b [3]) = pad(a) {after = 3} + pad(b) {before = 2}

which keeps every existing rule (shape inference, interpreter, lowering, scheduler) valid.
The ``merge-fanin`` pass introduces it; the lowering's XLA fusion turns the padded sum into
one concatenation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

from spikejit.ir.ops.base import Op, OpError
from spikejit.ir.types import TensorType


@final
@dataclass(frozen=True, kw_only=True)
class Pad(Op):
    r"""Zero padding of the last axis: ``y[t] = [0]*before ++ x[t] ++ [0]*after``.

    Input ``[..., n]``, output ``[..., before + n + after]``; stateless.
    """

    mnemonic: ClassVar[str] = "nn.pad"
    category: ClassVar[str] = "structural"
    nir_kind: ClassVar[str | None] = None
    elementwise: ClassVar[bool] = False
    linear_states: ClassVar[tuple[str, ...]] = ()
    fusion: ClassVar[str | None] = None

    before: int = 0
    after: int = 0

    def validate(self) -> None:
        for name in ("before", "after"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                self._fail(f"attribute {name!r} must be an integer >= 0, got {v!r}")

    def infer_type(self, in_type: TensorType | None) -> TensorType:
        x = self._require_input(in_type)
        if x.rank == 0:
            raise OpError(f"input {x} has no axis to pad")
        shape = (*x.shape[:-1], self.before + x.shape[-1] + self.after)
        return TensorType(shape, x.dtype, x.spike)


__all__ = ["Pad"]
