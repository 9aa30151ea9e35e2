"""Gradient checkpointing over time (``compile(..., remat=C)``) for long sequences.

The time axis is cut into chunks of ``C`` steps. One ``lax.scan`` runs the whole program
chunk after chunk, carrying the state (the same state that ``apply`` returns, so the result
is exactly that of one call), and the chunk body is wrapped in ``jax.checkpoint``: the
backward pass keeps only the state at each chunk boundary and recomputes a chunk's
activations when it reaches it. Activation memory falls from ``O(T)`` to ``O(C + T/C)``
per node, at the price of one extra forward pass. Inside a chunk the schedule is unchanged
(layerwise parts still run one matmul over ``C*B`` rows). Steps left over when ``C`` does
not divide ``T`` run as one more, shorter call.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from spikejit.lowering.emit import Program, StateDict


def _split(x: Any, chunks: int, size: int) -> tuple[Any, Any]:
    """``(x[:chunks*size] as [chunks, size, ...], x[chunks*size:])`` for every leaf."""
    head = jax.tree_util.tree_map(
        lambda a: a[: chunks * size].reshape(chunks, size, *a.shape[1:]), x)
    tail = jax.tree_util.tree_map(lambda a: a[chunks * size:], x)
    return head, tail


def _merge(a: Any) -> Any:
    """``[chunks, size, ...] -> [chunks*size, ...]`` for every leaf."""
    return jax.tree_util.tree_map(lambda v: v.reshape(-1, *v.shape[2:]), a)


def chunked_call(program: Program, params: Any, x: Any, state: StateDict | None,
                 trace: tuple[str, ...], size: int) -> tuple[Any, StateDict, Any]:
    """Run ``program`` over ``x`` in checkpointed chunks of ``size`` steps.

    Returns ``(outputs, final state, traces)`` exactly as one ``program`` call would.
    """
    steps = jax.tree_util.tree_leaves(x)[0].shape[0]
    batch = jax.tree_util.tree_leaves(x)[0].shape[1]
    chunks = steps // size
    s0 = program.init_state(batch) if state is None else state

    @jax.checkpoint
    def body(s: StateDict, xc: Any) -> tuple[StateDict, tuple[Any, Any]]:
        outputs, s_next, traces, _ = program(params, xc, s, trace)
        return s_next, (outputs, traces)

    head, tail = _split(x, chunks, size)
    s, (outputs, traces) = lax.scan(body, s0, head)
    outputs, traces = _merge(outputs), _merge(traces)
    if steps - chunks * size:
        out2, s, tr2, _ = program(params, tail, s, trace)
        outputs = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), outputs, out2)
        traces = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), traces, tr2)
    return outputs, s, traces
