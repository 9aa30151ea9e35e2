"""The one time-tiling path: a ``lax.scan`` over tiles of ``K`` time steps carrying state.

Three options are this one mechanism (:func:`scan_tiles`):

* ``compile(..., time_block=...)`` (:mod:`spikejit.lowering.time_block` picks ``K``, no
  checkpoint): a convolutional program runs tile after tile so a tile's activations stay in
  cache from one layer to the next;
* ``compile(..., remat=C)`` (``K = C``, checkpointed): the tile body is wrapped in
  ``jax.checkpoint``, so the backward pass keeps only the state at each tile boundary and
  recomputes a tile's activations when it reaches it. Activation memory falls from ``O(T)``
  to ``O(C + T/C)`` per node, at the price of one extra forward pass;
* ``apply(..., reduce=...)`` (:data:`REDUCTIONS`): every output is reduced over time;
  under tiling the reduction is accumulated tile by tile in the scan's carry, so the
  ``[T, B, ...]`` output never exists (sums in at least float32, cast back).

The carry is the program's own state (the one ``apply`` returns), so the result is exactly
that of one call: same values, state, traces and gradients. Inside a tile the schedule is
unchanged (layerwise parts still run one matmul over ``K*B`` rows). Steps left over when
``K`` does not divide ``T`` run as one more, shorter tile. The inputs are sliced in the
dtype they were given and cast inside the tile, so spikes passed as ``bool``/``uint8``
never exist as a whole ``[T, B, ...]`` float array. With ``check_finite`` each tile reports
its first non-finite ``(node, step)``; the scan keeps the earliest, its step counted from
the start of the call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from spikejit.errors import OptionError, ParamError

#: Values of ``reduce`` besides ``None`` (the full ``[T, B, ...]`` output).
REDUCTIONS: tuple[str, ...] = ("sum", "mean", "last")

Array = jax.Array
#: ``run(state, inputs of one tile) -> (outputs, state, traces, report or None)``.
TileRun = Callable[[Any, Any], tuple[dict[str, Array], Any, Any, Array | None]]


def check_reduce(reduce: Any) -> str | None:
    """``reduce`` itself if valid; :class:`OptionError` otherwise."""
    if reduce is None or (isinstance(reduce, str) and reduce in REDUCTIONS):
        return reduce
    raise OptionError(f"apply: reduce must be None (the full [T, B, ...] output) or one of "
                      f"{', '.join(map(repr, REDUCTIONS))} (over the time axis), got {reduce!r}")


def acc_dtype(dtype: Any) -> Any:
    """Sums run in at least float32 (bf16/f16 outputs), in float64 for float64 outputs."""
    return jnp.promote_types(dtype, jnp.float32)


def reduce_time(y: Array, how: str) -> Array:
    """Reduce one whole ``[T, B, ...]`` output over time (``how`` in :data:`REDUCTIONS`)."""
    if how == "last":
        if y.shape[0] == 0:
            raise ParamError("apply: reduce='last' needs at least one time step, got T = 0")
        return y[-1]
    total = jnp.sum(y, axis=0, dtype=acc_dtype(y.dtype))
    if how == "mean":
        total = total / y.shape[0]
    return total.astype(y.dtype)


def _fold(acc: dict[str, Array], outputs: Mapping[str, Array], how: str) -> dict[str, Array]:
    """Add one tile's outputs ``[K, B, ...]`` to the running reduction."""
    if how == "last":
        return {k: outputs[k][-1].astype(a.dtype) for k, a in acc.items()}
    return {k: a + jnp.sum(outputs[k], axis=0, dtype=a.dtype) for k, a in acc.items()}


def _first(found: Array, report: Array, offset: Any) -> Array:
    """The earlier of two ``check_finite`` reports; ``report``'s step is tile-local."""
    later = jnp.stack([report[0], report[1] + offset]).astype(jnp.int32)
    return jnp.where((found[0] < 0) & (report[0] >= 0), later, found)


def _split(x: Any, tiles: int, size: int) -> tuple[Any, Any]:
    """``(x[:tiles*size] as [tiles, size, ...], x[tiles*size:])`` for every leaf."""
    head = jax.tree_util.tree_map(
        lambda a: a[: tiles * size].reshape(tiles, size, *a.shape[1:]), x)
    tail = jax.tree_util.tree_map(lambda a: a[tiles * size:], x)
    return head, tail


def _merge(a: Any) -> Any:
    """``[tiles, size, ...] -> [tiles*size, ...]`` for every leaf."""
    return jax.tree_util.tree_map(lambda v: v.reshape(-1, *v.shape[2:]), a)


def _concat(a: Any, b: Any) -> Any:
    return jax.tree_util.tree_map(lambda u, v: jnp.concatenate([u, v]), a, b)


def scan_tiles(run: TileRun, state: Any, xs: Mapping[str, Any], steps: int, size: int, *,
               checkpoint: bool, reduce: str | None = None,
               out_types: Mapping[str, tuple[tuple[int, ...], Any]] | None = None,
               check: bool = False
               ) -> tuple[dict[str, Array], Any, Any, Array | None]:
    """``run`` over ``xs`` (leaves ``[T, ...]``, ``T = steps``) in tiles of ``size`` steps.

    Args:
        run: One tile: ``(state, tile inputs) -> (outputs, state, traces, report)``.
        state: The state before the first step.
        xs: The inputs, time on axis 0.
        steps: ``T`` (``1 <= size <= T``).
        size: Steps per tile.
        checkpoint: Wrap the tile in ``jax.checkpoint`` (``remat``).
        reduce: Reduce every output over time (:data:`REDUCTIONS`), accumulated per tile.
        out_types: With ``reduce``: ``{output id: ([B, *shape], dtype)}`` of the outputs.
        check: ``run`` returns ``check_finite`` reports, combined across tiles.

    Returns:
        ``(outputs, final state, traces, report)`` as one call over all steps would.
    """
    tiles = steps // size
    none = jnp.array([-1, -1], jnp.int32) if check else None
    types = dict(out_types or {}) if reduce is not None else {}
    acc = {k: jnp.zeros(shape, dtype if reduce == "last" else acc_dtype(dtype))
           for k, (shape, dtype) in types.items()}

    def body(carry: tuple[Any, dict[str, Array], Any], inp: tuple[Array, Any]
             ) -> tuple[tuple[Any, dict[str, Array], Any], tuple[Any, Any]]:
        s, a, found = carry
        index, xc = inp
        outputs, s_next, traces, report = run(s, xc)
        if check:
            assert report is not None
            found = _first(found, report, index * size)
        if reduce is None:
            return (s_next, a, found), (outputs, traces)
        return (s_next, _fold(a, outputs, reduce), found), (None, traces)

    head, tail = _split(xs, tiles, size)
    tile_body = jax.checkpoint(body) if checkpoint else body
    (s, acc, found), (outputs, traces) = lax.scan(
        tile_body, (state, acc, none), (jnp.arange(tiles, dtype=jnp.int32), head))
    outputs, traces = _merge(outputs), _merge(traces)
    if steps > tiles * size:
        out2, s, tr2, report = run(s, tail)
        if reduce is None:
            outputs = _concat(outputs, out2)
        else:
            acc = _fold(acc, out2, reduce)
        traces = _concat(traces, tr2)
        if check:
            assert report is not None and found is not None
            found = _first(found, report, tiles * size)
    if reduce is not None:
        outputs = {k: (a / steps if reduce == "mean" else a).astype(types[k][1])
                   for k, a in acc.items()}
    return outputs, s, traces, found


__all__ = ["REDUCTIONS", "TileRun", "acc_dtype", "check_reduce", "reduce_time", "scan_tiles"]
