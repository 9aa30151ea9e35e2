"""Stateless synapse ops, linear in their input: affine, linear, scale, conv1d, conv2d.

They are applied independently at every time step, so the lowering may run them once over
the whole ``[T*B, ...]`` block (the layerwise schedule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, final

import numpy as np

from spikejit.ir.ops.base import Op, OpError, int_tuple, param, set_field
from spikejit.ir.types import ParamRef, TensorType, broadcastable


def _matmul_type(op: Op, weight: ParamRef, bias: ParamRef | None, x: TensorType) -> TensorType:
    w = weight.type.shape
    if len(x.shape) < 1:
        raise OpError(f"input {x} must have at least one dimension")
    if x.shape[-1] != w[-1]:
        raise OpError(
            f"input {x} has {x.shape[-1]} features on its last axis, but weight "
            f"@{weight.name} expects {w[-1]} (weight shape {list(w)})"
        )
    lead_w, lead_x = w[:-2], x.shape[:-1]
    try:
        lead = tuple(int(d) for d in np.broadcast_shapes(lead_w, lead_x))
    except ValueError:
        raise OpError(f"input {x} leading axes do not broadcast with weight {list(w)}") from None
    out = (*lead, w[-2])
    if bias is not None and not broadcastable(bias.type.shape, out):
        raise OpError(f"bias @{bias.name} shape {list(bias.type.shape)} does not broadcast "
                      f"to the output shape {list(out)}")
    return TensorType(out, x.dtype, False)


@final
@dataclass(frozen=True, kw_only=True)
class Affine(Op):
    r"""Affine map (NIR ``Affine``): ``y[t] = W x[t] + b``.

    ``weight`` is ``[out, in]`` (optionally with leading broadcast axes, as NIR allows),
    ``bias`` broadcasts to ``[out]``. For an input of shape ``[..., in]`` the output is
    ``[..., out]``: ``y[..., o] = sum_i W[..., o, i] x[..., i] + b[..., o]``.
    """

    mnemonic: ClassVar[str] = "nn.affine"
    category: ClassVar[str] = "synapse"
    nir_kind: ClassVar[str | None] = 'Affine'
    elementwise: ClassVar[bool] = False
    linear_states: ClassVar[tuple[str, ...]] = ()
    fusion: ClassVar[str | None] = 'synapse'

    weight: ParamRef = param()
    bias: ParamRef = param()

    def validate(self) -> None:
        if self.weight.type.rank < 2:
            self._fail(f"weight @{self.weight.name} must have at least 2 dimensions, "
                       f"got {self.weight.type}")

    def infer_type(self, in_type: TensorType | None) -> TensorType:
        return _matmul_type(self, self.weight, self.bias, self._require_input(in_type))


@final
@dataclass(frozen=True, kw_only=True)
class Linear(Op):
    r"""Linear map without bias (NIR ``Linear``): ``y[t] = W x[t]``; shapes as ``nn.affine``."""

    mnemonic: ClassVar[str] = "nn.linear"
    category: ClassVar[str] = "synapse"
    nir_kind: ClassVar[str | None] = 'Linear'
    elementwise: ClassVar[bool] = False
    linear_states: ClassVar[tuple[str, ...]] = ()
    fusion: ClassVar[str | None] = 'synapse'

    weight: ParamRef = param()

    def validate(self) -> None:
        if self.weight.type.rank < 2:
            self._fail(f"weight @{self.weight.name} must have at least 2 dimensions, "
                       f"got {self.weight.type}")

    def infer_type(self, in_type: TensorType | None) -> TensorType:
        return _matmul_type(self, self.weight, None, self._require_input(in_type))


@final
@dataclass(frozen=True, kw_only=True)
class Scale(Op):
    r"""Elementwise scaling (NIR ``Scale``): ``y[t] = x[t] * s``; ``s`` broadcasts to x."""

    mnemonic: ClassVar[str] = "nn.scale"
    category: ClassVar[str] = "synapse"
    nir_kind: ClassVar[str | None] = 'Scale'
    elementwise: ClassVar[bool] = True
    linear_states: ClassVar[tuple[str, ...]] = ()
    fusion: ClassVar[str | None] = None

    scale: ParamRef = param()

    def infer_type(self, in_type: TensorType | None) -> TensorType:
        x = self._require_input(in_type)
        self._check_broadcast("scale", x.shape)
        return x.with_spike(False)


@dataclass(frozen=True, kw_only=True)
class _Conv(Op):
    """Shared attribute handling of conv1d/conv2d (not an op by itself)."""

    category: ClassVar[str] = "synapse"
    ndim: ClassVar[int] = 0
    elementwise: ClassVar[bool] = False
    linear_states: ClassVar[tuple[str, ...]] = ()
    fusion: ClassVar[str | None] = 'synapse'

    weight: ParamRef = param()
    bias: ParamRef | None = param(optional=True)
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    groups: int = 1

    def validate(self) -> None:
        n = self.ndim
        if self.weight.type.rank != n + 2:
            self._fail(f"weight @{self.weight.name} must be [C_out, C_in/groups, "
                       f"{', '.join('K' + str(i) for i in range(n))}], got {self.weight.type}")
        set_field(self, "stride", int_tuple(self, "stride", self.stride, n, minimum=1))
        set_field(self, "dilation", int_tuple(self, "dilation", self.dilation, n, minimum=1))
        if isinstance(self.padding, str):
            if self.padding not in ("same", "valid"):
                self._fail(f"attribute 'padding' must be 'same', 'valid' or integers, "
                           f"got {self.padding!r}")
        else:
            set_field(self, "padding", int_tuple(self, "padding", self.padding, n, minimum=0))
        if isinstance(self.groups, bool) or not isinstance(self.groups, int) or self.groups < 1:
            self._fail(f"attribute 'groups' must be an integer >= 1, got {self.groups!r}")
        c_out = self.weight.type.shape[0]
        if c_out % self.groups:
            self._fail(f"C_out = {c_out} of weight @{self.weight.name} is not divisible by "
                       f"groups = {self.groups}")
        if self.bias is not None and self.bias.type.shape not in ((c_out,), (), (1,)):
            self._fail(f"bias @{self.bias.name} must have shape [{c_out}], got {self.bias.type}")

    def pads(self) -> tuple[tuple[int, int], ...]:
        """(low, high) zero padding per spatial axis, as in nir-euler-v1, docs/nir.md ('same' splits
        ``d*(K-1)`` as ``(tot//2, tot - tot//2)``)."""
        kernel = self.weight.type.shape[2:]
        if self.padding == "valid":
            return tuple((0, 0) for _ in kernel)
        if self.padding == "same":
            out = []
            for k, d in zip(kernel, self.dilation, strict=True):
                tot = d * (k - 1)
                out.append((tot // 2, tot - tot // 2))
            return tuple(out)
        return tuple((p, p) for p in self.padding)

    def infer_type(self, in_type: TensorType | None) -> TensorType:
        x = self._require_input(in_type)
        n = self.ndim
        if x.rank != n + 1:
            raise OpError(f"input {x} must be [C_in, {', '.join('N' + str(i) for i in range(n))}]"
                          f" (channels first, no batch axis)")
        c_in = self.weight.type.shape[1] * self.groups
        if x.shape[0] != c_in:
            raise OpError(f"input {x} has {x.shape[0]} channels, but weight @{self.weight.name} "
                          f"{self.weight.type} with groups={self.groups} expects {c_in}")
        spatial = []
        kernel = self.weight.type.shape[2:]
        for size, k, s, d, (lo, hi) in zip(
            x.shape[1:], kernel, self.stride, self.dilation, self.pads(), strict=True
        ):
            span = size + lo + hi - d * (k - 1)
            if span < 1:
                raise OpError(f"input {x} is smaller than the dilated kernel {list(kernel)}")
            spatial.append((span - 1) // s + 1)
        return TensorType((self.weight.type.shape[0], *spatial), x.dtype, False)


@final
@dataclass(frozen=True, kw_only=True)
class Conv1d(_Conv):
    r"""1-d convolution (NIR ``Conv1d``), PyTorch cross-correlation semantics.

    Input ``[C_in, N]``, weight ``[C_out, C_in/groups, K]``, optional bias ``[C_out]``;
    ``stride``, ``dilation``; ``padding`` integers (symmetric), ``'valid'`` (none) or
    ``'same'`` (total ``d*(K-1)`` split as ``(tot//2, tot - tot//2)``, any stride).
    Output length ``floor((N + lo + hi - d*(K-1) - 1)/s) + 1``.
    """

    mnemonic: ClassVar[str] = "nn.conv1d"
    nir_kind: ClassVar[str | None] = "Conv1d"
    ndim: ClassVar[int] = 1


@final
@dataclass(frozen=True, kw_only=True)
class Conv2d(_Conv):
    r"""2-d convolution (NIR ``Conv2d``), PyTorch cross-correlation semantics.

    Input ``[C_in, H, W]``, weight ``[C_out, C_in/groups, KH, KW]``, optional bias
    ``[C_out]``; per-axis ``stride``, ``dilation``, ``padding`` as in ``nn.conv1d``.
    """

    mnemonic: ClassVar[str] = "nn.conv2d"
    nir_kind: ClassVar[str | None] = "Conv2d"
    ndim: ClassVar[int] = 2


__all__ = ["Affine", "Conv1d", "Conv2d", "Linear", "Scale"]
