"""Build one pure JAX function from a scheduled graph: :class:`Program`.

``program(params, x, state, trace, tile=, reduce=)`` checks its arguments
against the calling convention (:mod:`~spikejit.lowering.abi`), then runs the schedule
segment by segment (:mod:`~spikejit.lowering.segments`) over the whole time axis, or over
time tiles (:mod:`~spikejit.lowering.tiling`: ``time_block``, ``remat``, tiled ``reduce``),
with ``check_finite`` instrumentation when asked (:mod:`~spikejit.lowering.instrument`).
The function is pure: it reads params, inputs and state only through its arguments, so
``jax.jit``, ``jax.grad`` and ``jax.vmap`` apply. :meth:`Program.jitted` and
:meth:`Program.function` are its one jit cache: plain, tiled and sharded calls of every
model sharing the program share it.

The state and trace formats are the project-wide conventions shared with the reference
interpreter (see ``docs/compile.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.dtypes import canonicalize_dtype as canonical_dtype

from spikejit.errors import LoweringError, OptionError
from spikejit.ir.analysis import param_nbytes
from spikejit.ir.graph import Graph
from spikejit.ir.ops import Delay
from spikejit.ir.values import FLOAT32_RANGE, not_representable
from spikejit.limits import check_bytes, max_bytes
from spikejit.lowering.abi import JNP_DTYPES, ProgramABI, StateDict, Traces, node_dtype
from spikejit.lowering.derived import eval_derived
from spikejit.lowering.instrument import finite_order, finite_report
from spikejit.lowering.parallel_scan import check_parallel, parallel_nodes
from spikejit.lowering.rules import Rule, rule_for
from spikejit.lowering.segments import SegmentRun
from spikejit.lowering.spike import SPIKE_FUNCTIONS
from spikejit.lowering.surrogates import BoundSurrogate
from spikejit.lowering.tiling import reduce_time, scan_tiles
from spikejit.lowering.time_block import block_steps

Array = jax.Array


@dataclass(frozen=True)
class LoweringOptions:
    """Options of the lowering that do not change the forward values (checked by
    :class:`spikejit.CompileOptions`, which builds them).

    Attributes:
        surrogate: The spike's surrogate derivative with its parameters.
        spike_ad: ``"jvp"`` (``custom_jvp`` spike: forward and reverse mode) or ``"vjp"``
            (``custom_vjp`` spike: reverse mode only).
        detach_reset: Cut the reset term of spiking neurons from autodiff.
        unroll: ``unroll`` argument of every ``lax.scan`` (a speed knob).
        check_finite: Also compute where NaN or Inf first appears
            (:mod:`~spikejit.lowering.instrument`); costs a reduction per node and step
            when on, nothing when off.
        conv_impl: How convolutions are lowered (:data:`spikejit.lowering.conv.CONV_IMPLS`;
            ``"auto"`` picks per shape). Every variant gives the same values.
        time_block: Run the program over time tiles (``"auto"``, ``"off"`` or steps per
            tile; :mod:`spikejit.lowering.time_block`). Same values.
    """

    surrogate: BoundSurrogate
    spike_ad: str = "jvp"
    detach_reset: bool = True
    unroll: int = 1
    check_finite: bool = False
    conv_impl: str = "auto"
    time_block: str | int = "auto"


class Program(ProgramABI):
    """The lowered graph: ``program(params, inputs, state, trace) -> (outputs, state, traces,
    report)``; ``report`` is ``None`` unless ``options.check_finite`` (then see
    :meth:`nonfinite_node`).

    Args:
        graph: A typed, verified graph carrying a schedule.
        options: Lowering options.

    Raises:
        LoweringError: the graph has no schedule, the schedule reads a value before it is
            computed, or a node has no lowering rule.
        SizeLimitError: the parameters (derived ones included) exceed the size limit.
    """

    def __init__(self, graph: Graph, options: LoweringOptions) -> None:
        if graph.schedule is None:
            raise LoweringError(f"graph @{graph.name} has no schedule; run the 'schedule' pass "
                                f"first (spikejit.compile does)")
        for n in graph.nodes:
            if n.type is None:
                raise graph.error(LoweringError, n.id, "has no type; run shape-inference first")
        super().__init__(graph, allow_nonfinite=options.check_finite)
        self.options = options
        self.rules: dict[str, Rule] = {n.id: rule_for(graph, n) for n in graph.nodes}
        self.trace_count = 0
        self._check_schedule()
        self._check_dt()
        check_parallel(graph)
        #: Nodes whose recurrence runs as an associative scan (the schedule's ``parallel``).
        self.parallel = parallel_nodes(graph)
        self._check_param_size()
        #: Nodes checked by ``check_finite``, in schedule order (the report indexes this).
        self.finite_order: tuple[str, ...] = finite_order(graph)
        spike_fn = SPIKE_FUNCTIONS[options.spike_ad]
        surrogate = options.surrogate
        #: ``(v, threshold) -> spikes`` with the surrogate gradient.
        self.spike: Callable[[Array, Array], Array] = lambda v, th: spike_fn(v, th, surrogate)
        #: ``jax.jit`` of :meth:`__call__` (``trace``, ``tile``, ``reduce`` static); one per
        #: program, so every model sharing this program shares JAX's compilation cache.
        self.jitted = jax.jit(self.__call__, static_argnames=("trace", "tile", "reduce"))
        self._functions: dict[Hashable, Callable[..., Any]] = {}

    def function(self, key: Hashable, make: Callable[[Program], Callable[..., Any]]
                 ) -> Callable[..., Any]:
        """The jitted function ``make(self)`` cached under ``key`` (e.g. a sharded call per
        mesh): with :attr:`jitted`, the program's one jit cache."""
        fn = self._functions.get(key)
        if fn is None:
            fn = self._functions[key] = make(self)
        return fn

    # -- static checks -------------------------------------------------------------------
    def _check_schedule(self) -> None:
        g = self.graph
        assert g.schedule is not None
        done: set[str] = set()
        for seg in g.schedule.segments:
            members = set(seg.nodes)
            seen: set[str] = set()
            for nid in seg.nodes:
                node = g.node(nid)
                for u in node.inputs:
                    if u.node in done:
                        continue
                    if seg.kind == "layerwise" or u.node not in members:
                        raise g.error(LoweringError, nid,
                                      f"the schedule runs it ({seg.kind}) before its operand "
                                      f"%{u.node} is computed over the whole time axis")
                    late_ok = isinstance(node.op, Delay) and not node.op.depends_same_step()
                    if u.delay == 0 and u.node not in seen and not late_ok:
                        raise g.error(LoweringError, nid,
                                      f"the stepwise schedule runs it before its same-step "
                                      f"operand %{u.node}")
                seen.add(nid)
                if seg.kind == "layerwise":
                    done.add(nid)  # complete before the next node of the segment runs
            done |= members

    def _check_dt(self) -> None:
        """Refuse a ``dt`` that is ``0`` or ``inf`` where a node computes with it (1e-300 or
        1e300 in float32): every state would be NaN or frozen, silently."""
        dt = self.graph.attrs.dt
        for n in self.graph.nodes:
            if dt is None or not n.op.uses_dt:
                continue
            assert n.type is not None
            dtype = np.dtype(canonical_dtype(JNP_DTYPES[n.type.dtype]))  # f64: x64 only
            if not_representable(dt, dtype):
                raise OptionError(f"dt={dt!r} cannot be represented in {dtype.name}, which "
                                  f"%{n.id} ({n.op.mnemonic}) computes in (float32: from "
                                  f"{FLOAT32_RANGE[0]:.4g} to {FLOAT32_RANGE[1]:.4g} s)")

    def _check_param_size(self) -> None:
        """Refuse parameters (derived ones included: a fold or a broadcast may make them
        bigger than the user's) beyond the size limit, naming the largest."""
        total = param_nbytes(self.graph)
        if total > max_bytes():
            types = {**{n: r.type for n, r in self.graph.user_param_refs().items()},
                     **{d.name: d.type for d in self.graph.derived}}
            name = max(types, key=lambda n: types[n].nbytes)
            check_bytes(total, f"the parameters of graph @{self.graph.name} (the largest: "
                               f"@{name}, {types[name]})")

    # -- state ---------------------------------------------------------------------------

    def nonfinite_node(self, report: Any) -> tuple[str, int] | None:
        """``(node id, step)`` of the first non-finite value in a concrete ``report``
        returned with ``check_finite``, or ``None`` if the run stayed finite."""
        index, step = (int(v) for v in jax.device_get(report))
        return None if index < 0 else (self.finite_order[index], step)

    # -- the function --------------------------------------------------------------------
    def __call__(self, params: Any, x: Any, state: Any = None, trace: tuple[str, ...] = (),
                 *, tile: int | None = None, reduce: str | None = None
                 ) -> tuple[dict[str, Array], StateDict, Traces, Array | None]:
        """Run the graph over the whole time axis.

        Args:
            params: ``{name: array}``.
            x: ``[T, B, *shape]`` (or a dict keyed by input id).
            state: Carried-in state (``None``: zeros).
            trace: Node ids whose outputs (and state variables) to record over time.
            tile: ``remat``: steps per gradient-checkpointed time tile (``None``: the
                ``time_block`` policy picks unchecked tiles, or none).
            reduce: Reduce every output over time (:data:`~spikejit.lowering.tiling.
                REDUCTIONS`), accumulated per tile.

        Returns:
            ``(outputs by io.output id, new state, traces, report)``; ``report`` is
            ``None`` without ``check_finite``, else an ``int32[2]`` array ``(index into
            finite_order, step)`` of the first non-finite value, ``(-1, -1)`` if none.

        Raises:
            SizeLimitError: The state and the largest node output of one tile (from the
                static ``T`` and ``B``) exceed the size limit.
        """
        self.trace_count += 1  # a Python side effect: counts traces, not calls
        p = eval_derived(self.graph, self.check_params(params))
        data, steps, batch = self.input_arrays(x)
        size, checkpoint = self._tiling(tile, steps, batch)
        # Outputs stay [T, B, ...] unless checkpointed tiles (remat) reduce them.
        self.check_run_size(size if checkpoint and size is not None else steps, batch)
        s0 = self.init_state(batch) if state is None else self.check_state(state, batch)

        def run(s: StateDict, xs: dict[str, Any]) -> tuple[Any, StateDict, Traces, Any]:
            inputs = {nid: jnp.asarray(v, node_dtype(self.graph.node(nid)))
                      for nid, v in xs.items()}  # cast per tile: uint8 spikes stay small
            return self._run(p, inputs, s, trace, next(iter(xs.values())).shape[0], batch)

        if size is None:
            outputs, s_end, traces, report = run(s0, data)
            if reduce is not None:
                outputs = {k: reduce_time(v, reduce) for k, v in outputs.items()}
            return outputs, s_end, traces, report
        types = {oid: ((batch, *t.shape), JNP_DTYPES[t.dtype]) for oid in self.graph.outputs
                 if (t := self.graph.node(oid).type) is not None}
        return scan_tiles(run, s0, data, steps, size, checkpoint=checkpoint, reduce=reduce,
                          out_types=types, check=self.options.check_finite)

    def _tiling(self, tile: int | None, steps: int, batch: int) -> tuple[int | None, bool]:
        """``(steps per tile or None, checkpointed)`` for a call over ``steps`` x ``batch``."""
        if steps == 0 or batch == 0:
            return None, False
        if tile is not None:  # remat: checkpointed tiles (one more, shorter one for the rest)
            return (tile, True) if tile <= steps else (None, False)
        return block_steps(self.graph, self.options.time_block, steps, batch), False

    def _run(self, p: dict[str, Array], inputs: dict[str, Array], s0: StateDict,
             trace: tuple[str, ...], steps: int, batch: int
             ) -> tuple[dict[str, Array], StateDict, Traces, Array | None]:
        """One pass of the schedule over all of ``inputs``' time steps."""
        run = SegmentRun(self, p, inputs, s0, frozenset(trace), steps, batch)
        assert self.graph.schedule is not None
        for i, seg in enumerate(self.graph.schedule.segments):
            if seg.kind == "layerwise":
                for nid in seg.nodes:
                    with jax.named_scope(nid):
                        run.layerwise(nid)
            else:
                with jax.named_scope(f"stepwise{i}"):
                    run.stepwise(seg.nodes)
        outputs = {oid: run.full[oid] for oid in self.graph.outputs}
        report = (finite_report(run.bad_steps, self.finite_order, steps)
                  if self.options.check_finite else None)
        return outputs, run.finish_state(), run.traces, report


__all__ = ["JNP_DTYPES", "LoweringOptions", "Program", "StateDict"]
