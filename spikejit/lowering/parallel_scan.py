r"""Parallel-in-time scans for neurons with reset-free linear dynamics.

A layerwise segment normally runs a neuron as a ``lax.scan`` of its step over time. For
the state variables the scheduler names linear (:func:`spikejit.ir.schedule.linear_states`:
``v`` of ``snn.i`` and ``snn.li``, ``i`` and ``v`` of ``snn.cuba_li``, ``i`` of
``snn.cuba_lif``, and the same for the ``layer.*`` ops of these neurons) the step is an
affine map of the variable's previous value,

    s[t] = a * s[t-1] + b[t]        (elementwise)

so the whole sequence is an associative scan over time with the combine
``(a1, b1), (a2, b2) -> (a1*a2, a2*b1 + b2)`` (``jax.lax.associative_scan``: ``log2 T``
levels instead of ``T`` sequential steps). Nodes named in a segment's ``parallel(...)``
list run this way (:func:`run_parallel`).

There is one source of truth, the rule's own ``step``: the coefficients are not written
down per op but read off it. ``b[t]`` is the step evaluated, over all steps at once, with
the variable's previous value 0 (earlier variables at their already solved previous
values, ``x[t]`` the input); ``a`` is the derivative of the step with respect to that
previous value (``jax.jvp`` on one sample; it is constant because the map is affine). The
variables are solved in :func:`~spikejit.ir.schedule.linear_states` order, each depending
only on itself and earlier ones: for ``snn.cuba_li`` the current first, then the membrane
driven by the solved current (``cuba_current`` decides, inside the step, whether that is
the new or the old current, exactly as in the sequential path). Then the step runs once
more, vectorised over time, on the solved previous values: it gives the output, the state
variables of every step (traces) and the final state, computed by the same formula as the
sequential scan, so only the reassociation of the recurrence differs (float32 rounding).
For ``snn.cuba_lif`` the current is solved in parallel and only the membrane (threshold
and reset) stays a ``lax.scan``, fed the solved previous current.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from spikejit.errors import LoweringError
from spikejit.ir.graph import Graph
from spikejit.ir.schedule import linear_states
from spikejit.lowering.context import NodeContext, Rule

Array = jax.Array


#: JAX backends (``jax.default_backend()``) on which the parallel-in-time scan was measured
#: faster than the sequential one; ``parallel_scan="auto"`` marks nodes only there. Empty:
#: on the CPU backend the sequential ``lax.scan`` was faster, forward and backward, for
#: every measured shape except single-sample toys under a millisecond
#: (``docs/performance.md``, "Parallel-in-time scan").
PARALLEL_SCAN_BACKENDS: frozenset[str] = frozenset()


def resolve_parallel(option: str) -> str:
    """``compile``'s ``parallel_scan`` option for the schedule pass: ``auto`` becomes
    ``on`` on the backends of :data:`PARALLEL_SCAN_BACKENDS` and ``off`` elsewhere."""
    if option != "auto":
        return option
    return "on" if jax.default_backend() in PARALLEL_SCAN_BACKENDS else "off"


def _combine(first: tuple[Array, Array], second: tuple[Array, Array]) -> tuple[Array, Array]:
    """Compose ``s -> a1*s + b1`` then ``s -> a2*s + b2``."""
    a1, b1 = first
    a2, b2 = second
    return a1 * a2, a2 * b1 + b2


def linear_recurrence(a: Array, b: Array, s0: Array) -> Array:
    """``s[t] = a[t]*s[t-1] + b[t]`` for ``t = 0..T-1`` with ``s[-1] = s0``, by an
    associative scan over axis 0 (``a`` broadcasts against ``b`` except on axis 0).

    Args:
        a: ``[T, ...]`` coefficients (e.g. ``[T, 1, *shape]`` when shared by the batch).
        b: ``[T, B, *shape]`` inputs.
        s0: ``[B, *shape]`` the value before step 0.

    Returns:
        ``[T, B, *shape]``: the value after every step.
    """
    b = b.at[0].add(a[0] * s0)
    _, s = lax.associative_scan(_combine, (a, b))
    return s


def check_parallel(graph: Graph) -> None:
    """:class:`LoweringError` naming the node if the schedule names a node parallel whose
    dynamics are not linear (:func:`~spikejit.ir.schedule.linear_states`)."""
    if graph.schedule is None:
        return
    for seg in graph.schedule.segments:
        for nid in seg.parallel:
            op = graph.node(nid).op
            if not linear_states(op):
                raise graph.error(LoweringError, nid,
                                  f"the schedule runs it as a parallel scan, but "
                                  f"{op.mnemonic} has no reset-free linear state; only "
                                  f"snn.i, snn.li, snn.cuba_li, snn.cuba_lif (its current) "
                                  f"and their layer.* ops can")


def _shift(s0: Array, seq: Array) -> Array:
    """``[s0; seq[:-1]]``: the value before each step."""
    return jnp.concatenate([s0[None], seq[:-1]], axis=0)


def _bad_per_step(*arrays: Array) -> Array:
    """``bool[T]``: whether step t of any ``[T, ...]`` array holds NaN or Inf."""
    flags = [jnp.any(~jnp.isfinite(v), axis=tuple(range(1, v.ndim))) for v in arrays]
    return jnp.any(jnp.stack(flags), axis=0)


def run_parallel(rule: Rule, ctx: NodeContext, consts: Any, s0: Mapping[str, Array], x: Array,
                 *, traced: bool, check: bool, unroll: int = 1
                 ) -> tuple[Array, dict[str, Array], dict[str, Array] | None, Array | None]:
    """Run a neuron over the whole time axis, its linear state variables in parallel.

    Args:
        rule: The node's ``neuron`` rule (its ``step`` is the source of the coefficients).
        ctx: The node's context; ``consts`` what ``rule.prepare`` returned.
        s0: The carried-in state ``{var: [B, *shape]}``.
        x: The summed (for fused layers: synapse-applied) input ``[T, B, *shape]``, T >= 1.
        traced: Also return every step's state variables.
        check: Also return ``bool[T]``, whether step t's output or state holds NaN or Inf.
        unroll: ``unroll`` of the sequential scan of the remaining (non-linear) variables.

    Returns:
        ``(y [T, B, *shape], final state, states over time or None, bad steps or None)``,
        as the sequential scan of ``rule.apply`` returns them.
    """
    op = ctx.node.op
    linear = linear_states(op)
    rest = tuple(v for v in op.state_vars if v not in linear)
    steps = x.shape[0]

    def step(s: Mapping[str, Array], xt: Array) -> tuple[Array, dict[str, Array]]:
        return rule.apply(ctx, consts, s, xt)

    prev: dict[str, Array] = {}  # solved variable -> its value before every step
    for var in linear:
        # b[t]: the step with this variable's previous value 0 (later ones are 0 too; they
        # do not enter its update), over all steps at once.
        held = {v: jnp.zeros_like(s0[v]) for v in op.state_vars}
        _, new = step({**held, **prev}, x)
        b = new[var]

        # a: d(new value)/d(previous value), from one sample (the map is affine).
        unit = jnp.zeros((1, 1, *x.shape[2:]), x.dtype)

        def one(previous: Array, var: str = var, unit: Array = unit) -> Array:
            sample = {v: unit for v in op.state_vars}
            sample.update({v: p[:1, :1] for v, p in prev.items()})
            sample[var] = previous
            return step(sample, x[:1, :1])[1][var]

        _, a = jax.jvp(one, (unit,), (jnp.ones_like(unit),))
        a = jnp.broadcast_to(a, (steps, *a.shape[1:]))
        prev[var] = _shift(s0[var], linear_recurrence(a, b, s0[var]))

    if not rest:  # everything solved: one vectorised step gives outputs and states
        y, states = step(prev, x)
        bad = _bad_per_step(y, *states.values()) if check else None
        return y, {v: states[v][-1] for v in op.state_vars}, states if traced else None, bad

    # The remaining variables (a spiking membrane) scan sequentially over the solved ones.
    def body(carry: dict[str, Array], inp: tuple[Array, dict[str, Array]]
             ) -> tuple[dict[str, Array], Any]:
        xt, before = inp
        out, new = step({**before, **carry}, xt)
        flag = _bad_per_step(*(v[None] for v in (out, *new.values())))[0] if check else None
        return {v: new[v] for v in rest}, (out, new if traced else None, flag)

    carry0 = {v: s0[v] for v in rest}
    end, (y, states, bad) = lax.scan(body, carry0, (x, prev), unroll=unroll)
    # The linear variables after every step: the same formula, vectorised (it does not
    # read the remaining variables).
    held = {v: jnp.zeros_like(s0[v]) for v in rest}
    _, new = step({**prev, **held}, x)
    final = {v: (end[v] if v in rest else new[v][-1]) for v in op.state_vars}
    return y, final, states if traced else None, bad


def parallel_nodes(graph: Graph) -> frozenset[str]:
    """The nodes the schedule runs as a parallel scan."""
    if graph.schedule is None:
        return frozenset()
    return frozenset(n for seg in graph.schedule.segments for n in seg.parallel)
