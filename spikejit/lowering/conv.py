r"""Convolution lowerings, chosen per shape (``compile(..., conv_impl=...)``).

Every variant computes the same cross-correlation as ``lax.conv_general_dilated`` (PyTorch /
NIR semantics: stride, explicit or 'same' padding, dilation, groups) on ``[N, C, *spatial]``
samples; they differ only in layout and in how the gradient is formed. Measured on a 2-core
AVX-512 machine (``benchmarks/conv_variants.py``, ``docs/performance.md`` "Convolutions"):

* ``"xla"``: ``lax.conv_general_dilated`` in NIR's channels-first layout, autodiff gradient.
* ``"xla_nhwc"``: the same in channels-last layout (transposes around it): XLA:CPU's conv
  kernels are channels-last, so this avoids its internal relayouts.
* ``"custom_vjp"``: the channels-last forward with a hand-written VJP. The input gradient
  is an explicit conv of the output gradient with the flipped kernel (:func:`input_grad`:
  XLA's transpose-rule conv is 60x slower inside a scan). The weight
  gradient, which XLA:CPU forms as one huge-kernel convolution that runs on one core and
  degrades badly for small batches (30x inside a scan), is instead a sum of well-shaped
  matrix products: for each kernel row, the ``KW`` shifted input windows are laid side by
  side along channels (``[M, KW*Cin]``, M = samples x output pixels) and contracted with
  the output gradient ``[M, Cout]``. The samples are processed in chunks of a few frames
  (a ``lax.scan`` accumulating ``dW``) so each chunk's windows stay in cache; chunking over
  the sample axis (time x batch) is what makes it fast, the patches alone are not.

``"auto"`` picks ``custom_vjp`` for every conv (it was the fastest forward+backward at every
shape measured, and its forward is ``xla_nhwc``'s); the chunk size is the per-shape part,
from the cache budget :data:`CHUNK_BYTES`.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array
Pads = tuple[tuple[int, int], ...]
Ints = tuple[int, ...]

#: The values of ``compile(..., conv_impl=...)``.
CONV_IMPLS: tuple[str, ...] = ("auto", "xla", "xla_nhwc", "custom_vjp")

#: Bytes of shifted input windows per weight-gradient chunk: about one core's L2 (1 MB
#: here) to two; 2 frames of 48x48x96 (1.7 MB) measured fastest among 2..32 frames.
CHUNK_BYTES = 2 << 20


def resolve_impl(impl: str) -> str:
    """The concrete variant ``impl`` stands for (``auto`` -> the measured winner)."""
    return "custom_vjp" if impl == "auto" else impl


def _dims(nsp: int, channels_last: bool) -> tuple[str, str, str]:
    sp = "DHW"[3 - nsp:]
    if channels_last:
        return ("N" + sp + "C", sp + "IO", "N" + sp + "C")
    return ("NC" + sp, "OI" + sp, "NC" + sp)


def _xla(x: Array, w: Array, stride: Ints, pads: Pads, dilation: Ints, groups: int,
         channels_last: bool) -> Array:
    """``lax.conv_general_dilated``; ``x`` channels-last iff ``channels_last``, ``w`` is
    ``[Cout, Cin/g, *K]`` (channels-last: ``[*K, Cin/g, Cout]``)."""
    return lax.conv_general_dilated(x, w, stride, pads, rhs_dilation=dilation,
                                    feature_group_count=groups,
                                    dimension_numbers=_dims(len(stride), channels_last))


def _window(xp: Array, offsets: Ints, size: Ints, stride: Ints) -> Array:
    """``xp[:, o0 : o0 + s0*(n0-1) + 1 : s0, ..., :]`` for channels-last ``xp``."""
    start = (0, *offsets, 0)
    ends = (o + s * (n - 1) + 1 for o, s, n in zip(offsets, stride, size, strict=True))
    limit = (xp.shape[0], *ends, xp.shape[-1])
    return lax.slice(xp, start, limit, (1, *stride, 1))


def _wgrad_chunk(x: Array, g: Array, kernel: Ints, stride: Ints, pads: Pads, dilation: Ints,
                 groups: int) -> Array:
    """``dW[*K, Cin/g, Cout]`` of one chunk: channels-last input ``x`` and output grad ``g``.

    For each offset of the leading kernel axes, the ``K_last`` windows along the last
    spatial axis are concatenated along channels, giving one product
    ``[M, K_last*Cin]^T @ [M, Cout]`` per leading offset (per group with ``groups > 1``).
    """
    xp = lax.pad(x, jnp.zeros((), x.dtype),
                 ((0, 0, 0), *((lo, hi, 0) for lo, hi in pads), (0, 0, 0)))
    out_size = g.shape[1:-1]
    c_in, c_out = x.shape[-1], g.shape[-1]
    cig, cog, k_last = c_in // groups, c_out // groups, kernel[-1]
    gm = g.reshape(-1, groups, cog)  # [M, G, Cout/g]
    lead: list[tuple[int, ...]] = [()]  # every offset of the leading kernel dims
    for k in kernel[:-1]:
        lead = [(*o, i) for o in lead for i in range(k)]
    rows = []
    for off in lead:
        wins = [_window(xp, tuple(i * d for i, d in zip((*off, j), dilation, strict=True)),
                        out_size, stride)
                for j in range(k_last)]
        pm = jnp.concatenate(wins, axis=-1).reshape(-1, k_last, groups, cig)
        rows.append(jnp.einsum("mkgc,mgo->kcgo", pm, gm))  # [K_last, Cin/g, G, Cout/g]
    dw = jnp.stack(rows).reshape(*kernel, cig, c_out)
    return dw


def _chunk_frames(x_shape: tuple[int, ...], g_shape: tuple[int, ...], k_last: int) -> int:
    """Samples per weight-gradient chunk: as many as fit :data:`CHUNK_BYTES` of windows."""
    per_frame = 4 * k_last * x_shape[-1] * math.prod(g_shape[1:-1])
    return max(1, min(x_shape[0], CHUNK_BYTES // max(per_frame, 1)))


def weight_grad(x: Array, g: Array, kernel: Ints, stride: Ints, pads: Pads, dilation: Ints,
                groups: int) -> Array:
    """``dW[*K, Cin/g, Cout]`` of a channels-last conv over ``N`` samples, in chunks.

    Zero samples are appended so the chunk size divides ``N`` (they add nothing).
    """
    n = x.shape[0]
    c = _chunk_frames(x.shape, g.shape, kernel[-1])
    if c >= n:
        return _wgrad_chunk(x, g, kernel, stride, pads, dilation, groups)
    steps = -(-n // c)
    extra = steps * c - n
    if extra:
        x = jnp.pad(x, ((0, extra),) + ((0, 0),) * (x.ndim - 1))
        g = jnp.pad(g, ((0, extra),) + ((0, 0),) * (g.ndim - 1))
    xs = x.reshape(steps, c, *x.shape[1:])
    gs = g.reshape(steps, c, *g.shape[1:])

    def body(acc: Array, xg: tuple[Array, Array]) -> tuple[Array, None]:
        return acc + _wgrad_chunk(*xg, kernel, stride, pads, dilation, groups), None

    zero = jnp.zeros((*kernel, x.shape[-1] // groups, g.shape[-1]), jnp.result_type(x, g))
    return lax.scan(body, zero, (xs, gs))[0]


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def conv_custom_vjp(x: Array, w: Array, stride: Ints, pads: Pads, dilation: Ints,
                    groups: int) -> Array:
    """Channels-last conv (``x[N, *S, Cin]``, ``w[*K, Cin/g, Cout]``) with the chunked-matmul
    weight gradient (see the module docstring)."""
    return _xla(x, w, stride, pads, dilation, groups, True)


def _cvjp_fwd(x: Array, w: Array, stride: Ints, pads: Pads, dilation: Ints,
              groups: int) -> tuple[Array, tuple[Array, Array]]:
    return _xla(x, w, stride, pads, dilation, groups, True), (x, w)


def input_grad(x_shape: tuple[int, ...], g: Array, w: Array, stride: Ints, pads: Pads,
               dilation: Ints, groups: int) -> Array:
    """``dx`` of a channels-last conv: an explicit conv of the (stride-dilated, padded) output
    gradient with the flipped, in/out-swapped kernel, in the forward's own layout.

    Why not autodiff: XLA's transpose rule emits a conv with swapped kernel dimension
    numbers, which XLA:CPU runs 60x slower inside a loop (15.6 s vs 0.25 s for 10 steps of
    32 frames, 32 -> 32 channels, 48x48); over all frames at once both take the same time.
    Paddings larger than the dilated kernel fall back to autodiff (never the case for
    'same', 'valid' or padding <= K-1).
    """
    kernel = w.shape[:-2]
    tpads = []
    for size, k, s, d, (lo, hi), n_out in zip(x_shape[1:-1], kernel, stride, dilation, pads,
                                             g.shape[1:-1], strict=True):
        rest = size + lo + hi - d * (k - 1) - 1 - (n_out - 1) * s  # padded input never read
        tpads.append((d * (k - 1) - lo, d * (k - 1) - hi + rest))
    if any(a < 0 or b < 0 for a, b in tpads):
        _, vjp_x = jax.vjp(lambda xx: _xla(xx, w, stride, pads, dilation, groups, True),
                           jnp.zeros(x_shape, g.dtype))
        return vjp_x(g)[0]
    nsp = len(kernel)
    cig, c_out = w.shape[-2], w.shape[-1]
    flipped = lax.rev(w, tuple(range(nsp)))
    # [*K, Cin/g, G, Cout/g] -> [*K, Cout/g, G, Cin/g] -> [*K, Cout/g, Cin]: group-major.
    wt = flipped.reshape(*kernel, cig, groups, c_out // groups)
    wt = jnp.transpose(wt, (*range(nsp), nsp + 2, nsp + 1, nsp)).reshape(
        *kernel, c_out // groups, groups * cig)
    return lax.conv_general_dilated(g, wt, (1,) * nsp, tpads, lhs_dilation=stride,
                                    rhs_dilation=dilation, feature_group_count=groups,
                                    dimension_numbers=_dims(nsp, True))


def _cvjp_bwd(stride: Ints, pads: Pads, dilation: Ints, groups: int,
              res: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
    x, w = res
    dx = input_grad(x.shape, g, w, stride, pads, dilation, groups)
    dw = weight_grad(x, g, w.shape[:-2], stride, pads, dilation, groups)
    return dx, dw.astype(w.dtype)


conv_custom_vjp.defvjp(_cvjp_fwd, _cvjp_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def conv_input_vjp(x: Array, w: Array, stride: Ints, pads: Pads, dilation: Ints,
                   groups: int) -> Array:
    """As :func:`conv_custom_vjp`, but the weight gets a zero gradient: for convs inside a
    scan whose weight gradient is formed after the loop (:mod:`spikejit.lowering.hoist`)."""
    return _xla(x, w, stride, pads, dilation, groups, True)


def _ivjp_bwd(stride: Ints, pads: Pads, dilation: Ints, groups: int,
              res: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
    x, w = res
    return input_grad(x.shape, g, w, stride, pads, dilation, groups), jnp.zeros_like(w)


conv_input_vjp.defvjp(_cvjp_fwd, _ivjp_bwd)


def conv(x: Array, w: Array, stride: Ints, pads: Pads, dilation: Ints, groups: int,
         impl: str = "auto") -> Array:
    """Convolution of channels-first ``x[N, Cin, *S]`` with ``w[Cout, Cin/g, *K]`` by the
    variant ``impl`` (one of :data:`CONV_IMPLS`); the result is channels-first."""
    impl = resolve_impl(impl)
    if impl == "xla":
        return _xla(x, w, stride, pads, dilation, groups, False)
    nsp = x.ndim - 2
    to_last = (0, *range(2, nsp + 2), 1)
    to_first = (0, nsp + 1, *range(1, nsp + 1))
    xl = jnp.transpose(x, to_last)
    wl = jnp.transpose(w, (*range(2, nsp + 2), 1, 0))  # [*K, Cin/g, Cout]
    if impl == "xla_nhwc":
        y = _xla(xl, wl, stride, pads, dilation, groups, True)
    elif impl == "custom_vjp":
        y = conv_custom_vjp(xl, wl, stride, pads, dilation, groups)
    elif impl == "input_vjp":  # internal: hoisted convs in stepwise segments
        y = conv_input_vjp(xl, wl, stride, pads, dilation, groups)
    else:
        raise ValueError(f"unknown conv_impl {impl!r}; have {', '.join(CONV_IMPLS)}")
    return jnp.transpose(y, to_first)


def weight_grad_nchw(x: Array, g: Array, op: Any) -> Array:
    """``dW[Cout, Cin/g, *K]`` of conv ``op`` from channels-first inputs ``x[..., Cin, *S]``
    and output gradients ``g[..., Cout, *So]`` (all leading axes are samples: ``T, B``)."""
    nsp = op.ndim
    x = x.reshape(-1, *x.shape[-nsp - 1:])
    g = g.reshape(-1, *g.shape[-nsp - 1:])
    to_last = (0, *range(2, nsp + 2), 1)
    kernel = tuple(op.weight.type.shape[2:])
    dw = weight_grad(jnp.transpose(x, to_last), jnp.transpose(g, to_last), kernel, op.stride,
                     op.pads(), op.dilation, op.groups)
    return jnp.transpose(dw, (nsp + 1, nsp, *range(nsp)))  # [*K, I, O] -> [O, I, *K]
