"""Time blocking: the policy that picks the tile size ``K`` of a convolutional program.

A layerwise segment computes each node over the whole time axis before the next node
starts. That is what makes matmul layers fast (one matmul over ``T*B`` rows reads the
weights once), but a convolution's activations are large per step and small in weights:
``[T*B, C, H, W]`` outputs of tens of megabytes leave the cache between one layer and the
next. Cutting the time axis into blocks of ``K`` steps and running the *whole* program
block after block (the one time-tiling path, :func:`spikejit.lowering.tiling.scan_tiles`,
without checkpointing: a ``lax.scan`` over blocks carrying the program's state, so the
result is exactly that of one call) keeps a block's activations in cache from one layer
to the next. Measured on the benchmark CNN at B = 32 (``docs/performance.md``,
"Convolutions"): with two steps per block the forward pass is 1.5-1.7x and the training
step 1.05-1.17x faster at T = 10 and T = 50.

The choice is per shape and made when the program is traced (``T`` and ``B`` are static
then): :func:`block_steps`. ``compile(..., time_block=...)`` sets the policy:

* ``"auto"`` (default): block graphs that hold a convolution and run layerwise only, with
  the largest ``K`` that divides ``T`` and keeps every conv output of one block within
  :data:`BLOCK_BYTES`, but at least :data:`MIN_AUTO_STEPS` steps (one-step blocks make
  the fastest forward but a slower training step: each block forms the conv weight
  gradients from only ``B`` frames); graphs without convolutions (matmul layers gain
  nothing) and graphs with stepwise segments (already one step at a time) are not
  blocked;
* ``"off"``: never block;
* an integer ``K >= 1``: blocks of ``K`` steps whenever ``K`` divides ``T`` and ``K < T``.

Values, state, traces and gradients are the same with and without blocking.
"""

from __future__ import annotations

from spikejit.errors import OptionError
from spikejit.ir.graph import Graph
from spikejit.ir.ops import Conv1d, Conv2d
from spikejit.ir.ops.fused import FusedLayer

#: Policies besides an integer block size.
TIME_BLOCK_POLICIES: tuple[str, ...] = ("auto", "off")

#: ``auto``: the most bytes of one conv output per block. About the L2 caches of this
#: machine's two cores; measured best between 2 and 6 MB on the benchmark CNN.
BLOCK_BYTES = 4 * 2**20

#: ``auto``: the fewest steps per block (when ``T`` allows). Measured on the benchmark CNN
#: at B = 32: training steps with 1-step blocks 1.18x slower than with 2-step blocks.
MIN_AUTO_STEPS = 2


def check_time_block(value: object) -> None:
    """Raise :class:`OptionError` unless ``value`` is a policy name or an integer >= 1."""
    if isinstance(value, str) and value in TIME_BLOCK_POLICIES:
        return
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return
    raise OptionError(f"time_block must be 'auto', 'off' or a number of steps per block (an "
                      f"integer >= 1), got {value!r}")


def conv_output_bytes(graph: Graph) -> int:
    """Bytes of the largest per-sample, per-step output of a conv node (0 if none)."""
    sizes = [n.type.nbytes for n in graph.nodes
             if n.type is not None and _has_conv(n.op)]
    return max(sizes, default=0)


def _has_conv(op: object) -> bool:
    if isinstance(op, FusedLayer):
        op = op.synapse()
    return isinstance(op, Conv1d | Conv2d)


def block_steps(graph: Graph, policy: str | int, steps: int, batch: int) -> int | None:
    """Steps per block for a call over ``steps`` x ``batch``, or ``None``: run unblocked."""
    if policy == "off" or steps <= 1:
        return None
    if isinstance(policy, int):
        return policy if policy < steps and steps % policy == 0 else None
    assert graph.schedule is not None
    if any(seg.kind != "layerwise" for seg in graph.schedule.segments):
        return None
    per_step = conv_output_bytes(graph) * max(batch, 1)
    if per_step == 0:
        return None
    fit = max(MIN_AUTO_STEPS, BLOCK_BYTES // per_step)
    size = max(k for k in range(1, min(fit, steps) + 1) if steps % k == 0)
    return size if size < steps else None


__all__ = ["BLOCK_BYTES", "MIN_AUTO_STEPS", "TIME_BLOCK_POLICIES", "block_steps",
           "check_time_block", "conv_output_bytes"]
