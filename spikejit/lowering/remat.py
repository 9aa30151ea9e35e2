"""Long sequences: gradient checkpointing over time (``compile(..., remat=C)``) and outputs
reduced over time inside the program (``apply(..., reduce=...)``).

**Checkpointed chunks.** The time axis is cut into chunks of ``C`` steps. One ``lax.scan``
runs the whole program chunk after chunk, carrying the state (the same state that ``apply``
returns, so the result is exactly that of one call), and the chunk body is wrapped in
``jax.checkpoint``: the backward pass keeps only the state at each chunk boundary and
recomputes a chunk's activations when it reaches it. Activation memory falls from ``O(T)``
to ``O(C + T/C)`` per node, at the price of one extra forward pass. Inside a chunk the
schedule is unchanged (layerwise parts still run one matmul over ``C*B`` rows). Steps left
over when ``C`` does not divide ``T`` run as one more, shorter call. The inputs are sliced
into chunks in the dtype they were given and cast to the graph's dtype inside the chunk, so
spikes passed as ``bool``/``uint8`` never exist as a whole ``[T, B, ...]`` float array.

**Time-reduced outputs.** With ``reduce`` (:data:`REDUCTIONS`) every output is reduced over
the time axis: ``"sum"`` (spike counts), ``"mean"`` (rates, mean membrane) or ``"last"``
(the last step). Under chunking the reduction is accumulated chunk by chunk in the scan's
carry, so the ``[T, B, ...]`` output never exists; sums are accumulated in at least float32
and cast back to the output's dtype.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from spikejit.errors import OptionError, ParamError
from spikejit.lowering.emit import JNP_DTYPES, Program, StateDict

#: Values of ``reduce`` besides ``None`` (the full ``[T, B, ...]`` output).
REDUCTIONS: tuple[str, ...] = ("sum", "mean", "last")

Array = jax.Array


def check_reduce(reduce: Any) -> str | None:
    """``reduce`` itself if valid; :class:`OptionError` otherwise."""
    if reduce is None or (isinstance(reduce, str) and reduce in REDUCTIONS):
        return reduce
    raise OptionError(f"apply: reduce must be None (the full [T, B, ...] output) or one of "
                      f"{', '.join(map(repr, REDUCTIONS))} (over the time axis), got {reduce!r}")


def _acc_dtype(dtype: Any) -> Any:
    """Sums run in at least float32 (bf16/f16 outputs), in float64 for float64 outputs."""
    return jnp.promote_types(dtype, jnp.float32)


def reduce_time(y: Array, how: str) -> Array:
    """Reduce one ``[T, B, ...]`` output over time (``how`` in :data:`REDUCTIONS`)."""
    if how == "last":
        if y.shape[0] == 0:
            raise ParamError("apply: reduce='last' needs at least one time step, got T = 0")
        return y[-1]
    total = jnp.sum(y, axis=0, dtype=_acc_dtype(y.dtype))
    if how == "mean":
        total = total / y.shape[0]
    return total.astype(y.dtype)


def _fold(acc: dict[str, Array], outputs: dict[str, Array], how: str) -> dict[str, Array]:
    """Add one chunk's outputs ``[C, B, ...]`` to the running reduction."""
    if how == "last":
        return {k: outputs[k][-1].astype(a.dtype) for k, a in acc.items()}
    return {k: a + jnp.sum(outputs[k], axis=0, dtype=a.dtype) for k, a in acc.items()}


def _split(x: Any, chunks: int, size: int) -> tuple[Any, Any]:
    """``(x[:chunks*size] as [chunks, size, ...], x[chunks*size:])`` for every leaf."""
    head = jax.tree_util.tree_map(
        lambda a: a[: chunks * size].reshape(chunks, size, *a.shape[1:]), x)
    tail = jax.tree_util.tree_map(lambda a: a[chunks * size:], x)
    return head, tail


def _merge(a: Any) -> Any:
    """``[chunks, size, ...] -> [chunks*size, ...]`` for every leaf."""
    return jax.tree_util.tree_map(lambda v: v.reshape(-1, *v.shape[2:]), a)


def _time_batch(x: Any) -> tuple[int, int]:
    leaves = jax.tree_util.tree_leaves(x)
    if not leaves or len(getattr(leaves[0], "shape", ())) < 2:
        # Let the program's own input check name what is wrong.
        return 0, 0
    return int(leaves[0].shape[0]), int(leaves[0].shape[1])


def chunked_call(program: Program, params: Any, x: Any, state: StateDict | None,
                 trace: tuple[str, ...], size: int, reduce: str | None = None
                 ) -> tuple[Any, StateDict, Any]:
    """Run ``program`` over ``x`` in checkpointed chunks of ``size`` steps.

    Returns ``(outputs, final state, traces)`` exactly as one ``program`` call would, the
    outputs reduced over time when ``reduce`` is set (accumulated chunk by chunk).
    """
    steps, batch = _time_batch(x)
    if steps == 0 or batch == 0 or len(jax.tree_util.tree_leaves(x)) != len(program.graph.inputs):
        # Nothing to chunk, or malformed input: one call (its checks name the problem).
        outputs, s, traces, _ = program(params, x, state, trace)
        if reduce is not None:
            outputs = {k: reduce_time(v, reduce) for k, v in outputs.items()}
        return outputs, s, traces
    chunks = steps // size
    s0 = program.init_state(batch) if state is None else state
    acc0: dict[str, Array] = {}
    if reduce is not None:
        for oid in program.graph.outputs:
            typ = program.graph.node(oid).type
            assert typ is not None
            dtype = JNP_DTYPES[typ.dtype]
            acc0[oid] = jnp.zeros((batch, *typ.shape),
                                  dtype if reduce == "last" else _acc_dtype(dtype))

    @jax.checkpoint
    def body(carry: tuple[StateDict, dict[str, Array]], xc: Any
             ) -> tuple[tuple[StateDict, dict[str, Array]], tuple[Any, Any]]:
        s, acc = carry
        outputs, s_next, traces, _ = program(params, xc, s, trace)
        if reduce is None:
            return (s_next, acc), (outputs, traces)
        return (s_next, _fold(acc, outputs, reduce)), (None, traces)

    head, tail = _split(x, chunks, size)
    (s, acc), (outputs, traces) = lax.scan(body, (s0, acc0), head)
    outputs, traces = _merge(outputs), _merge(traces)
    if steps - chunks * size:
        out2, s, tr2, _ = program(params, tail, s, trace)
        if reduce is None:
            outputs = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), outputs,
                                             out2)
        else:
            acc = _fold(acc, out2, reduce)
        traces = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), traces, tr2)
    if reduce is not None:
        outputs = {}
        for oid, a in acc.items():
            dtype = JNP_DTYPES[program.graph.node(oid).type.dtype]  # type: ignore[union-attr]
            outputs[oid] = (a / steps if reduce == "mean" else a).astype(dtype)
    return outputs, s, traces


def _run(program: Program, params: Any, x: Any, state: StateDict | None,
         trace: tuple[str, ...], size: int | None, reduce: str | None
         ) -> tuple[Any, StateDict, Any, Array | None]:
    if size is not None:
        return (*chunked_call(program, params, x, state, trace, size, reduce), None)
    outputs, s, traces, report = program(params, x, state, trace)
    if reduce is not None:
        outputs = {k: reduce_time(v, reduce) for k, v in outputs.items()}
    return outputs, s, traces, report


_RUNNERS: weakref.WeakKeyDictionary[Program, dict[int | None, Callable[..., Any]]] = (
    weakref.WeakKeyDictionary())


def runner(program: Program, size: int | None) -> Callable[..., Any]:
    """The jitted ``(params, x, state, trace=, reduce=) -> (outputs, state, traces, report)``
    of ``program`` chunked by ``size`` (``None``: one call), shared by every model using the
    same program and chunk size (so ``with_params`` does not retrace)."""
    per_program = _RUNNERS.setdefault(program, {})
    fn = per_program.get(size)
    if fn is None:
        ref = weakref.ref(program)  # the cache must not keep its own key alive

        def call(params: Any, x: Any, state: StateDict | None, trace: tuple[str, ...],
                 reduce: str | None) -> tuple[Any, StateDict, Any, Array | None]:
            prog = ref()
            assert prog is not None
            return _run(prog, params, x, state, trace, size, reduce)

        fn = jax.jit(call, static_argnames=("trace", "reduce"))
        per_program[size] = fn
    return fn
