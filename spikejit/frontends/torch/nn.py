"""The ``from_torch`` rules for ``torch.nn`` layers: ``Linear``, ``Conv1d``/``Conv2d``,
the 2-d pools, ``Flatten`` and the identities (``Identity``, dropouts in eval behaviour).

Registered by :func:`spikejit.frontends.torch.modules.default_rules` on first use, through
the same :func:`~spikejit.frontends.torch.modules.register_torch_module` as user modules;
torch is imported only then.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spikejit.frontends.torch.modules import (
    Builder,
    ModuleCall,
    TorchValue,
    WriteContext,
    Writer,
    register_torch_module,
)
from spikejit.ir.graph import Use


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _linear(call: ModuleCall) -> TorchValue:
    from spikejit.ir.ops import Affine, Linear

    m = call.module
    weight = call.param("weight", m.weight)
    if m.bias is None:
        return call.add(Linear(weight=weight), call.x)
    return call.add(Affine(weight=weight, bias=call.param("bias", m.bias)), call.x)


def _conv(call: ModuleCall) -> TorchValue:
    import torch.nn as nn

    from spikejit.ir.ops import Conv1d, Conv2d

    m = call.module
    if m.padding_mode != "zeros":
        raise call.error(f"padding_mode={m.padding_mode!r} is not supported (only 'zeros')")
    cls = Conv1d if isinstance(m, nn.Conv1d) else Conv2d
    padding = m.padding if isinstance(m.padding, str) else tuple(int(p) for p in m.padding)
    bias = None if m.bias is None else call.param("bias", m.bias)
    op = cls(weight=call.param("weight", m.weight), bias=bias, stride=tuple(m.stride),
             padding=padding, dilation=tuple(m.dilation), groups=int(m.groups))
    return call.add(op, call.x)


def _pool_output(n: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    """torch's pooled length (``pooling_output_shape``, dilation 1)."""
    span = n + 2 * p - k
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= n + p:  # the last window must start inside the (left-padded) input
        out -= 1
    return out


def _pool_geometry(call: ModuleCall, kernel: Any, stride: Any, padding: Any,
                   ceil_mode: bool) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """``(kernel, stride, padding)`` pairs, checked: [C, H, W] input, ceil_mode harmless."""
    k = _pair(kernel)
    s = _pair(kernel if stride is None else stride)
    p = _pair(padding)
    shape = call.x.type.shape
    if len(shape) != 3:
        raise call.error(f"expects a [C, H, W] input per sample, got {call.x.type}")
    if ceil_mode:
        for n, kk, ss, pp in zip(shape[1:], k, s, p, strict=True):
            if _pool_output(n, kk, ss, pp, True) != _pool_output(n, kk, ss, pp, False):
                raise call.error(
                    f"ceil_mode=True adds a partial window on input {call.x.type} (kernel "
                    f"{list(k)}, stride {list(s)}, padding {list(p)}), which spikejit's "
                    f"pooling (floor mode, symmetric padding) cannot express; use "
                    f"ceil_mode=False or a size that the stride divides")
    return k, s, p


def _avg_divisors(shape: tuple[int, ...], k: tuple[int, int], s: tuple[int, int],
                  p: tuple[int, int], include_pad: bool, override: int | None) -> np.ndarray:
    """torch's divisor for each output position of ``avg_pool2d`` (floor mode)."""
    if override:
        return np.asarray(float(override))
    counts = []
    for n, kk, ss, pp in zip(shape[1:], k, s, p, strict=True):
        out = _pool_output(n, kk, ss, pp, False)
        starts = np.arange(out) * ss - pp
        if include_pad:
            counts.append(np.full(out, kk, dtype=np.float64))
        else:
            counts.append(np.minimum(starts + kk, n) - np.maximum(starts, 0).astype(np.float64))
    return np.outer(counts[0], counts[1])


def _avgpool(call: ModuleCall) -> TorchValue:
    from spikejit.ir.ops import AvgPool2d, Scale, SumPool2d

    m = call.module
    k, s, p = _pool_geometry(call, m.kernel_size, m.stride, m.padding, bool(m.ceil_mode))
    exact_avg = m.divisor_override is None and (m.count_include_pad or p == (0, 0))
    if exact_avg:
        return call.add(AvgPool2d(kernel_size=k, stride=s, padding=p), call.x)
    # A window sum times 1/divisor per output position is torch's average exactly.
    if m.divisor_override:
        call.options.append(f"divisor={int(m.divisor_override)}")
    sum_id = call.sub_id("sum")
    call.add(SumPool2d(kernel_size=k, stride=s, padding=p), call.x, node_id=sum_id)
    div = _avg_divisors(call.x.type.shape, k, s, p, bool(m.count_include_pad),
                        m.divisor_override)
    return call.add(Scale(scale=call.param("scale", 1.0 / div, owner=call.node_id)),
                    [Use(sum_id)])


def _write_avgpool(ctx: WriteContext) -> dict[str, Any]:
    from spikejit.ir.ops import Scale, SumPool2d

    scale = ctx.find(Scale)
    pool = ctx.find(SumPool2d)
    if scale is not None and pool is not None:
        override = next((int(o[8:]) for o in ctx.options if o.startswith("divisor=")), None)
        pool_op: Any = pool.op
        want = 1.0 / _avg_divisors(ctx.input_type(pool).shape, pool_op.kernel_size,
                                   pool_op.stride, pool_op.padding, False, override)
        got = ctx.value(scale, "scale")
        if got is None or got.shape != want.shape or not np.allclose(got, want, rtol=1e-6):
            raise ctx.error(f"@{ctx.param_name(scale, 'scale')} must keep torch's 1/divisor; "
                            f"it was changed, and AvgPool2d has no parameter to hold it")
    return {}


def _maxpool(call: ModuleCall) -> TorchValue:
    from spikejit.ir.ops import SumPool2d, Threshold

    m = call.module
    if m.return_indices:
        raise call.error("return_indices=True is not supported")
    if _pair(m.dilation) != (1, 1):
        raise call.error(f"dilation={m.dilation} is not supported (only 1)")
    k, s, p = _pool_geometry(call, m.kernel_size, m.stride, m.padding, bool(m.ceil_mode))
    if not call.x.type.spike:
        raise call.error(
            f"MaxPool2d is supported on spike trains only (its input here is {call.x.type}, "
            f"not spikes): the max of 0/1 values is exactly (window sum > 0), which spikejit "
            f"computes with nn.sumpool2d and snn.threshold; other inputs have no exact form")
    # Padding is at most half the kernel in torch, so every window holds a real element
    # and zero padding cannot change (sum > 0).
    sum_id = call.sub_id("sum")
    call.add(SumPool2d(kernel_size=k, stride=s, padding=p), call.x, node_id=sum_id)
    return call.add(Threshold(threshold=call.param("threshold", 0.0)), [Use(sum_id)])


def _write_maxpool(ctx: WriteContext) -> dict[str, Any]:
    from spikejit.ir.ops import Threshold

    node = ctx.find(Threshold)
    if node is not None and np.any(ctx.value(node, "threshold") != 0):
        raise ctx.error(f"@{ctx.param_name(node, 'threshold')} must stay 0 (max of spikes = "
                        f"sum > 0); MaxPool2d has no parameter to hold another value")
    return {}


def _lppool(call: ModuleCall) -> TorchValue:
    from spikejit.ir.ops import SumPool2d

    m = call.module
    if float(m.norm_type) != 1.0:
        raise call.error(f"norm_type={m.norm_type} is not supported: only norm_type=1 (sum "
                         f"pooling) is linear")
    k, s, p = _pool_geometry(call, m.kernel_size, m.stride, 0, bool(m.ceil_mode))
    return call.add(SumPool2d(kernel_size=k, stride=s, padding=p), call.x)


def _flatten(call: ModuleCall) -> TorchValue:
    from spikejit.ir.ops import Flatten

    m = call.module
    full = call.x.type.rank + 1  # torch sees the batch axis too
    start = m.start_dim + full if m.start_dim < 0 else m.start_dim
    end = m.end_dim + full if m.end_dim < 0 else m.end_dim
    if start < 1:
        raise call.error(f"start_dim={m.start_dim} flattens the batch axis; spikejit keeps "
                         f"batch (and time) apart, so start_dim must be >= 1")
    if not start <= end < full:
        raise call.error(f"start_dim={m.start_dim}, end_dim={m.end_dim} do not fit an input "
                         f"[B, *{list(call.x.type.shape)}]")
    # NIR and the IR count flatten dims without the batch axis: torch's dim d is d - 1.
    return call.add(Flatten(start_dim=start - 1, end_dim=end - 1), call.x)


def _identity(call: ModuleCall) -> TorchValue:
    return call.x


def register_nn() -> None:
    """Register the builders (and writers) of the ``torch.nn`` layers above."""
    import torch.nn as nn

    table: list[tuple[type, Builder, Writer | None, str]] = [
        (nn.Linear, _linear, None, "nn.affine, or nn.linear without bias"),
        (nn.Conv1d, _conv, None, "nn.conv1d; padding_mode='zeros'"),
        (nn.Conv2d, _conv, None, "nn.conv2d; padding_mode='zeros'"),
        (nn.AvgPool2d, _avgpool, _write_avgpool,
         "nn.avgpool2d, or nn.sumpool2d + nn.scale for count_include_pad=False/divisor_override"),
        (nn.MaxPool2d, _maxpool, _write_maxpool, "spike inputs only: nn.sumpool2d + snn.threshold"),
        (nn.LPPool2d, _lppool, None, "norm_type=1 only: nn.sumpool2d"),
        (nn.Flatten, _flatten, None, "nn.flatten, start_dim >= 1"),
        (nn.Identity, _identity, None, "no node"),
        (nn.Dropout, _identity, None, "identity (eval behaviour)"),
        (nn.Dropout1d, _identity, None, "identity (eval behaviour)"),
        (nn.Dropout2d, _identity, None, "identity (eval behaviour)"),
        (nn.Dropout3d, _identity, None, "identity (eval behaviour)"),
        (nn.AlphaDropout, _identity, None, "identity (eval behaviour)"),
        (nn.FeatureAlphaDropout, _identity, None, "identity (eval behaviour)"),
    ]
    for cls, build, write, summary in table:
        register_torch_module(cls, build, write, kind=f"torch.nn.{cls.__name__}",
                              summary=summary)


__all__ = ["register_nn"]
