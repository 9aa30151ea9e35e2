"""Ahead-of-time compilation of JAX benchmark functions, with the phases timed apart.

Every JAX-based implementation (the hand-written baseline, spikejit, Spyx) goes through
:func:`prepare_jax`, so their compile times and run times are measured the same way:
``jax.jit(f).lower(...)`` (tracing to StableHLO) and ``.compile()`` (XLA) are timed
separately, and the timed runs call the compiled executable directly (no dispatch cache
lookups, no retracing).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import jax

from benchmarks.harness import Prepared

#: ``(params, x) -> output spikes``
ForwardFn = Callable[[Any, Any], Any]
#: ``(params, x) -> scalar loss``
LossFn = Callable[[Any, Any], Any]


def _compile(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, float, int | None]:
    """``(executable, trace+lower seconds, XLA seconds, XLA buffer bytes)``."""
    t0 = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    nbytes = None
    try:
        m = compiled.memory_analysis()
        if m is not None:
            nbytes = int(m.argument_size_in_bytes + m.output_size_in_bytes
                         + m.temp_size_in_bytes - m.alias_size_in_bytes)
    except (AttributeError, NotImplementedError):  # backends without the analysis
        pass
    return compiled, t1 - t0, t2 - t1, nbytes


def prepare_jax(forward: ForwardFn | None, loss: LossFn, params: Any, x: Any,
                grad_names: Callable[[Any], Mapping[str, Any]] = dict,
                ir_s: float | None = None) -> Prepared:
    """Compile ``forward`` and ``jax.grad(loss)`` ahead of time.

    Args:
        forward: ``(params, x) -> y``; ``None`` to skip the forward benchmark.
        loss: ``(params, x) -> scalar``; its gradient w.r.t. ``params`` is the training step.
        params: The parameter pytree (device arrays).
        x: The input (device array).
        grad_names: Maps the gradient pytree to ``{name: array}`` in the workload's
            naming, for the cross-implementation check (outside the timed region).
        ir_s: Seconds spent before tracing (spikejit's IR pipeline), if any.

    Returns:
        The prepared benchmark; ``compile_s`` holds ``{fwd,train}_{trace,xla}`` (and
        ``ir`` when given), ``xla_bytes`` the XLA buffer totals.
    """
    prep = Prepared(forward=None, train_step=None)
    if ir_s is not None:
        prep.compile_s["ir"] = ir_s
    if forward is not None:
        fwd_exe, tr, xla, nbytes = _compile(forward, params, x)
        prep.compile_s.update(fwd_trace=tr, fwd_xla=xla)
        if nbytes is not None:
            prep.xla_bytes["fwd"] = nbytes
        prep.forward = lambda: fwd_exe(params, x).block_until_ready()
    grad_exe, tr, xla, nbytes = _compile(jax.grad(loss), params, x)
    prep.compile_s.update(train_trace=tr, train_xla=xla)
    if nbytes is not None:
        prep.xla_bytes["train"] = nbytes

    def train_step() -> Mapping[str, Any]:
        return grad_names(jax.block_until_ready(grad_exe(params, x)))

    prep.train_step = train_step
    return prep
