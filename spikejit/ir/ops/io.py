"""Graph boundary ops: ``io.input`` and ``io.output``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

from spikejit.ir.ops.base import Op
from spikejit.ir.types import TensorType


@final
@dataclass(frozen=True, kw_only=True)
class Input(Op):
    """A graph input (NIR ``Input``): ``y[t] = x[t]`` for the data fed under this node's id.

    The attribute ``type`` is the per-step, per-sample type of the data (channels first).
    """

    mnemonic: ClassVar[str] = "io.input"
    category: ClassVar[str] = "io"
    nir_kind: ClassVar[str | None] = 'Input'
    elementwise: ClassVar[bool] = False
    linear_states: ClassVar[tuple[str, ...]] = ()
    fusion: ClassVar[str | None] = None
    min_inputs: ClassVar[int] = 0
    max_inputs: ClassVar[int | None] = 0

    type: TensorType

    def validate(self) -> None:
        if not isinstance(self.type, TensorType):
            self._fail(f"attribute 'type' must be a tensor type, got {self.type!r}")

    def infer_type(self, in_type: TensorType | None) -> TensorType:
        return self.type


@final
@dataclass(frozen=True, kw_only=True)
class Output(Op):
    """A graph output (NIR ``Output``): ``y[t] = sum of inputs[t]``; the result is keyed
    by this node's id."""

    mnemonic: ClassVar[str] = "io.output"
    category: ClassVar[str] = "io"
    nir_kind: ClassVar[str | None] = 'Output'
    elementwise: ClassVar[bool] = False
    linear_states: ClassVar[tuple[str, ...]] = ()
    fusion: ClassVar[str | None] = None

    def infer_type(self, in_type: TensorType | None) -> TensorType:
        return self._require_input(in_type)


__all__ = ["Input", "Output"]
