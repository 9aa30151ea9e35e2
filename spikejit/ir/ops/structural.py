"""Stateless reshaping and pooling ops: sumpool2d, avgpool2d, flatten; and the delay op."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, final

from spikejit.ir.ops.base import Op, OpError, int_tuple, prod, set_field
from spikejit.ir.types import TensorType


@dataclass(frozen=True, kw_only=True)
class _Pool2d(Op):
    category: ClassVar[str] = "structural"
    elementwise: ClassVar[bool] = False
    linear_states: ClassVar[tuple[str, ...]] = ()
    fusion: ClassVar[str | None] = None

    kernel_size: Any
    stride: Any = None
    padding: Any = 0

    def validate(self) -> None:
        set_field(self, "kernel_size", int_tuple(self, "kernel_size", self.kernel_size, 2,
                                                 minimum=1))
        stride = self.kernel_size if self.stride is None else self.stride
        set_field(self, "stride", int_tuple(self, "stride", stride, 2, minimum=1))
        set_field(self, "padding", int_tuple(self, "padding", self.padding, 2, minimum=0))

    def infer_type(self, in_type: TensorType | None) -> TensorType:
        x = self._require_input(in_type)
        if x.rank != 3:
            raise OpError(f"input {x} must be [C, H, W] (channels first, no batch axis)")
        spatial = []
        for n, k, s, p in zip(x.shape[1:], self.kernel_size, self.stride, self.padding,
                              strict=True):
            span = n + 2 * p - k
            if span < 0:
                raise OpError(f"input {x} is smaller than the kernel {list(self.kernel_size)}")
            spatial.append(span // s + 1)
        return TensorType((x.shape[0], *spatial), x.dtype, False)


@final
@dataclass(frozen=True, kw_only=True)
class SumPool2d(_Pool2d):
    r"""Sum pooling (NIR ``SumPool2d``): the sum over each zero-padded window.

    Input ``[C, H, W]``; output size per axis ``floor((N + 2p - k)/s) + 1``.
    ``stride`` defaults to ``kernel_size``.
    """

    mnemonic: ClassVar[str] = "nn.sumpool2d"
    nir_kind: ClassVar[str | None] = "SumPool2d"


@final
@dataclass(frozen=True, kw_only=True)
class AvgPool2d(_Pool2d):
    r"""Average pooling (NIR ``AvgPool2d``): ``sumpool2d / (kH*kW)``.

    Padding counts towards the average (torch ``count_include_pad=True``).
    """

    mnemonic: ClassVar[str] = "nn.avgpool2d"
    nir_kind: ClassVar[str | None] = "AvgPool2d"


@final
@dataclass(frozen=True, kw_only=True)
class Flatten(Op):
    r"""Flatten (NIR ``Flatten``): merge axes ``start_dim..end_dim`` of the per-sample shape.

    Dims index the shape *without* batch and time axes (what exporters write: ``start_dim=0``
    for ``nn.Flatten()``); negative values count from the end. Order is row-major (C order).
    """

    mnemonic: ClassVar[str] = "nn.flatten"
    category: ClassVar[str] = "structural"
    nir_kind: ClassVar[str | None] = 'Flatten'
    elementwise: ClassVar[bool] = False
    linear_states: ClassVar[tuple[str, ...]] = ()
    fusion: ClassVar[str | None] = None

    start_dim: int = 0
    end_dim: int = -1

    def validate(self) -> None:
        for name in ("start_dim", "end_dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                self._fail(f"attribute {name!r} must be an integer, got {v!r}")

    def axes(self, rank: int) -> tuple[int, int]:
        """``(start, end)`` normalised against a per-sample rank; raises OpError if invalid."""
        start = self.start_dim + rank if self.start_dim < 0 else self.start_dim
        end = self.end_dim + rank if self.end_dim < 0 else self.end_dim
        if not (0 <= start < rank and 0 <= end < rank) or start > end:
            raise OpError(
                f"start_dim={self.start_dim}, end_dim={self.end_dim} do not select axes of a "
                f"rank-{rank} per-sample shape (dims exclude batch and time)"
            )
        return start, end

    def infer_type(self, in_type: TensorType | None) -> TensorType:
        x = self._require_input(in_type)
        if x.rank == 0:
            return x
        start, end = self.axes(x.rank)
        shape = (*x.shape[:start], prod(x.shape[start : end + 1]), *x.shape[end + 1 :])
        return x.with_shape(shape)


@final
@dataclass(frozen=True, kw_only=True)
class Delay(Op):
    r"""Delay (NIR ``Delay``): ``y[t] = x[t - k]`` per element, zeros before the start.

    ``steps`` holds whole steps (``round(delay/dt)`` from NIR): one value for the whole
    layer, or one per element in row-major order. The state is the last ``max(steps)``
    inputs.
    """

    mnemonic: ClassVar[str] = "snn.delay"
    category: ClassVar[str] = "delay"
    nir_kind: ClassVar[str | None] = 'Delay'
    elementwise: ClassVar[bool] = False
    linear_states: ClassVar[tuple[str, ...]] = ()
    fusion: ClassVar[str | None] = None

    steps: Any

    def validate(self) -> None:
        steps = self.steps
        if isinstance(steps, int) and not isinstance(steps, bool):
            steps = (steps,)
        if not isinstance(steps, tuple | list) or not steps:
            self._fail(f"attribute 'steps' must be a non-empty list of integers, got {steps!r}")
        for s in steps:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                self._fail(f"attribute 'steps' must hold integers >= 0, got {list(steps)}")
        set_field(self, "steps", tuple(int(s) for s in steps))

    @property
    def max_steps(self) -> int:
        """The longest delay, i.e. how many past inputs the state holds."""
        return max(self.steps)

    def depends_same_step(self) -> bool:
        return min(self.steps) == 0

    def infer_type(self, in_type: TensorType | None) -> TensorType:
        x = self._require_input(in_type)
        if len(self.steps) not in (1, x.size):
            raise OpError(f"has {len(self.steps)} delays, but its input {x} has {x.size} "
                          f"elements (give one delay, or one per element)")
        return x


__all__ = ["AvgPool2d", "Delay", "Flatten", "SumPool2d"]
