"""``check_finite``: where NaN or Inf first appears, and the error that names it.

With ``check_finite`` every node except ``snn.delay`` (which only moves values) also
reports, per time step, whether its output or its state holds NaN or Inf; the program
returns the first such (step, node) pair as an ``int32[2]`` report ``(index into
finite_order, step)``, earliest step first and then schedule order, so the node named is
where the non-finite value appeared, not one that merely received it. Under time tiling
each tile reports and :func:`spikejit.lowering.tiling.scan_tiles` keeps the earliest;
under a mesh the devices' reports are reduced the same way
(:mod:`spikejit.lowering.sharding`). Without the option none of this is traced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from spikejit.errors import NonFiniteError
from spikejit.ir.graph import Graph
from spikejit.ir.ops import Delay

Array = jax.Array


def finite_order(graph: Graph) -> tuple[str, ...]:
    """The nodes ``check_finite`` watches, in schedule order (the report indexes this)."""
    segments = graph.schedule.segments if graph.schedule else ()
    return tuple(nid for seg in segments for nid in seg.nodes
                 if not isinstance(graph.node(nid).op, Delay))


def bad_per_step(y: Array) -> Array:
    """``bool[T]``: whether ``y[t]`` (``[T, B, ...]``) holds NaN or Inf."""
    return jnp.any(~jnp.isfinite(y), axis=tuple(range(1, y.ndim)))


def bad_now(out: Array, state: Mapping[str, Array]) -> Array:
    """``bool[]``: whether one step's output or new state holds NaN or Inf."""
    flags = [jnp.any(~jnp.isfinite(v)) for v in (out, *state.values())]
    return jnp.any(jnp.stack(flags))


def finite_report(bad_steps: Mapping[str, Array], order: tuple[str, ...], steps: int
                  ) -> Array:
    """``int32[2]``: (index into ``order``, step) of the first non-finite value, earliest
    step first, then schedule order; ``(-1, -1)`` if there is none."""
    none = jnp.array([-1, -1], jnp.int32)
    if steps == 0:
        return none
    bad = jnp.stack([bad_steps[nid] for nid in order])  # [N, T]
    any_bad = jnp.any(bad, axis=1)
    first = jnp.where(any_bad, jnp.argmax(bad, axis=1), steps)  # per node
    step = jnp.min(first)
    index = jnp.argmax(first == step)  # the first node, in schedule order, at that step
    found = jnp.stack([index, step]).astype(jnp.int32)
    return jnp.where(step < steps, found, none)


def nonfinite_reason(graph: Graph, nid: str) -> str:
    """The message of :class:`NonFiniteError` for ``nid``, with a ``{step}`` field."""
    if nid in graph.inputs:
        return ("the input data holds NaN or Inf at time step {step} (found by "
                "check_finite=True)")
    return ("produced NaN or Inf at time step {step}, in its output or state: the first "
            "non-finite value of the run (found by check_finite=True)")


def raise_nonfinite(graph: Graph, order: tuple[str, ...], report: Any) -> None:
    """Raise :class:`NonFiniteError` for a concrete report that found a value; a
    ``checkify`` check (reported under ``checkify.checkify``, silent otherwise) for a
    traced one (under the caller's own ``jax.jit``)."""
    if isinstance(report, jax.core.Tracer):
        from jax.experimental import checkify

        for i, nid in enumerate(order):
            # The node's name is a format string here: its braces are escaped.
            who = f"%{nid} ({graph.node(nid).op.mnemonic}): "
            who = who.replace("{", "{{").replace("}", "}}")
            checkify.debug_check(report[0] != i, who + nonfinite_reason(graph, nid),
                                 step=report[1])
        return
    index, step = (int(v) for v in jax.device_get(report))
    if index < 0:
        return
    nid = order[index]
    node = graph.node(nid)
    raise NonFiniteError(nonfinite_reason(graph, nid).format(step=step), step=step,
                         node_id=nid, op_name=node.op.mnemonic, loc=node.loc)


__all__ = ["bad_now", "bad_per_step", "finite_order", "finite_report", "nonfinite_reason",
           "raise_nonfinite"]
