"""Build one pure JAX function from a scheduled graph.

:class:`Program` walks the graph's :class:`~spikejit.ir.schedule.Schedule` segment by
segment, keeping every computed node's output over the whole time axis (``[T, B, ...]``):

* a ``layerwise`` segment runs its nodes one after the other, each over the whole time
  axis: stateless ops once on ``[T*B, ...]``, neurons as a ``lax.scan`` of their
  elementwise update only, ``snn.delay`` nodes and delayed uses as shifts of the time axis
  with the carried-in buffer/history prepended;
* a ``stepwise`` segment is one ``lax.scan`` over time; its body runs the segment's nodes
  in the listed order. Operands from earlier segments come in as scanned arrays; operands
  from inside the segment are read from the same step (delay 0) or from a ring of the
  producer's last ``D`` outputs carried through the scan (delay ``D >= 1``).

Inside a scan step the order is: every node in segment order (``snn.delay`` nodes emit from
their buffer), then the delay buffers take this step's inputs, then the output rings take
this step's outputs, so a delayed read always sees the previous steps.

The state and trace formats are the project-wide conventions shared with the reference
interpreter (see ``docs/compile.md``). The function is pure: it reads params, inputs and
state only through its arguments, so ``jax.jit``, ``jax.grad`` and ``jax.vmap`` apply.

With ``check_finite`` every node except ``snn.delay`` (which only moves values) also
reports, per time step, whether its output or its state holds NaN or Inf; the program
returns the first such (step, node) pair, earliest step first and then schedule order, so
the node named is where the non-finite value appeared, not one that merely received it.
Without the option none of this is traced: the jaxpr is the same as before the option
existed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.dtypes import canonicalize_dtype as canonical_dtype

from spikejit.errors import LoweringError, OptionError, ParamError
from spikejit.ir.analysis import param_nbytes
from spikejit.ir.graph import Graph, Node
from spikejit.ir.interpreter import FLOAT32_RANGE, check_input_values, not_representable
from spikejit.ir.ops import Delay, Input
from spikejit.ir.types import ITEMSIZE
from spikejit.ir.verify import param_owners
from spikejit.limits import check_bytes, max_bytes, nbytes
from spikejit.lowering.conv import CONV_IMPLS
from spikejit.lowering.derived import eval_derived
from spikejit.lowering.hoist import (
    dense_op,
    hoisted_convs,
    hoisted_dense,
    hoisted_scan,
    hoisted_scan_jvp,
)
from spikejit.lowering.parallel_scan import check_parallel, parallel_nodes, run_parallel
from spikejit.lowering.rules import (
    NodeContext,
    Rule,
    delay_full,
    delay_push,
    delay_step,
    node_context,
    rule_for,
)
from spikejit.lowering.spike import SPIKE_FUNCTIONS
from spikejit.lowering.surrogates import BoundSurrogate
from spikejit.lowering.time_block import block_steps, check_time_block

Array = jax.Array
StateDict = dict[str, dict[str, Array]]

JNP_DTYPES: dict[str, Any] = {"f16": jnp.float16, "bf16": jnp.bfloat16, "f32": jnp.float32,
                              "f64": jnp.float64}


@dataclass(frozen=True)
class LoweringOptions:
    """Options of the lowering that do not change the forward values.

    Attributes:
        surrogate: The spike's surrogate derivative with its parameters.
        spike_ad: ``"jvp"`` (``custom_jvp`` spike: forward and reverse mode) or ``"vjp"``
            (``custom_vjp`` spike: reverse mode only).
        detach_reset: Cut the reset term of spiking neurons from autodiff.
        unroll: ``unroll`` argument of every ``lax.scan`` (a speed knob).
        check_finite: Also compute where NaN or Inf first appears (see the module
            docstring); costs a reduction per node and step when on, nothing when off.
        conv_impl: How convolutions are lowered (:data:`spikejit.lowering.conv.CONV_IMPLS`;
            ``"auto"`` picks per shape). Every variant gives the same values.
        time_block: Run the program over blocks of time steps (``"auto"``, ``"off"`` or
            steps per block; :mod:`spikejit.lowering.time_block`). Same values.
    """

    surrogate: BoundSurrogate
    spike_ad: str = "jvp"
    detach_reset: bool = True
    unroll: int = 1
    check_finite: bool = False
    conv_impl: str = "auto"
    time_block: str | int = "auto"

    def __post_init__(self) -> None:
        if self.spike_ad not in SPIKE_FUNCTIONS:
            raise OptionError(f"spike_ad must be one of {', '.join(map(repr, SPIKE_FUNCTIONS))},"
                              f" got {self.spike_ad!r}")
        if not isinstance(self.detach_reset, bool):
            raise OptionError(f"detach_reset must be True or False, got {self.detach_reset!r}")
        if isinstance(self.unroll, bool) or not isinstance(self.unroll, int) or self.unroll < 1:
            raise OptionError(f"unroll must be an integer >= 1, got {self.unroll!r}")
        if not isinstance(self.check_finite, bool):
            raise OptionError(f"check_finite must be True or False, got {self.check_finite!r}")
        if self.conv_impl not in CONV_IMPLS:
            raise OptionError(f"conv_impl must be one of {', '.join(map(repr, CONV_IMPLS))}, "
                              f"got {self.conv_impl!r}")
        check_time_block(self.time_block)


def _dtype(node: Node) -> Any:
    assert node.type is not None
    return JNP_DTYPES[node.type.dtype]


class Program:
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
        self.graph = graph
        self.options = options
        self.rules: dict[str, Rule] = {n.id: rule_for(graph, n) for n in graph.nodes}
        self.history = {n.id: graph.max_use_delay(n.id) for n in graph.nodes
                        if graph.max_use_delay(n.id) > 0}
        self.trace_count = 0
        #: (largest node, its bytes per sample and step, state bytes per sample), cached.
        self._run_sizes: tuple[str, int, int] | None = None
        self._check_schedule()
        self._check_dt()
        check_parallel(graph)
        #: Nodes whose recurrence runs as an associative scan (the schedule's ``parallel``).
        self.parallel = parallel_nodes(graph)
        self._check_param_size()
        #: Nodes checked by ``check_finite``, in schedule order (the report indexes this).
        self.finite_order: tuple[str, ...] = tuple(
            nid for seg in (graph.schedule.segments if graph.schedule else ())
            for nid in seg.nodes if not isinstance(graph.node(nid).op, Delay))
        spike_fn = SPIKE_FUNCTIONS[options.spike_ad]
        surrogate = options.surrogate
        self._spike = lambda v, th: spike_fn(v, th, surrogate)
        #: ``jax.jit`` of :meth:`__call__` (``trace`` static); one per program, so every
        #: model sharing this program shares JAX's compilation cache.
        self.jitted = jax.jit(self.__call__, static_argnames="trace")

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
    def init_state(self, batch_size: int) -> StateDict:
        """All-zero state for ``batch_size`` samples (the convention's format)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise OptionError(f"batch_size must be an integer >= 0, got {batch_size!r}")
        total = self.state_nbytes(batch_size)
        if total > max_bytes():
            check_bytes(total, f"the state of graph @{self.graph.name} for a batch of "
                               f"{batch_size} (the largest: %{self._largest_state(batch_size)})")
        state: StateDict = {}
        for n in self.graph.nodes:
            entry = {name: jnp.zeros(shape, _dtype(n))
                     for name, shape in self._state_shapes(n, batch_size).items()}
            if entry:
                state[n.id] = entry
        return state

    def state_nbytes(self, batch_size: int) -> int:
        """Bytes of the whole state for ``batch_size`` samples (from the types)."""
        return sum(self._node_state_nbytes(n, batch_size) for n in self.graph.nodes)

    def _node_state_nbytes(self, n: Node, batch_size: int) -> int:
        assert n.type is not None
        return sum(nbytes(shape, ITEMSIZE[n.type.dtype])
                   for shape in self._state_shapes(n, batch_size).values())

    def _largest_state(self, batch_size: int) -> str:
        return max(self.graph.nodes, key=lambda n: self._node_state_nbytes(n, batch_size)).id

    def check_run_size(self, steps: int, batch: int) -> None:
        """Refuse a call whose memory would exceed the size limit: the state plus the
        largest ``[T, B, ...]`` node output, a lower bound of what the call needs.

        O(1): runs on every ``CompiledModel.apply`` call, before ``jax.jit``.
        """
        if self._run_sizes is None:  # the state is linear in the batch size
            largest = max(self.graph.nodes, key=lambda n: n.type.nbytes if n.type else 0)
            assert largest.type is not None
            self._run_sizes = (largest.id, largest.type.nbytes, self.state_nbytes(1))
        nid, per_step, state_per_sample = self._run_sizes
        total = (state_per_sample + per_step * steps) * batch
        if total > max_bytes():
            check_bytes(total, f"a run of graph @{self.graph.name} over T={steps} steps with a "
                               f"batch of {batch} (its state and its largest [T, B, ...] node "
                               f"output, %{nid})")

    def nonfinite_node(self, report: Any) -> tuple[str, int] | None:
        """``(node id, step)`` of the first non-finite value in a concrete ``report``
        returned with ``check_finite``, or ``None`` if the run stayed finite."""
        index, step = (int(v) for v in jax.device_get(report))
        return None if index < 0 else (self.finite_order[index], step)

    def _state_shapes(self, n: Node, batch: int) -> dict[str, tuple[int, ...]]:
        assert n.type is not None
        shape = (batch, *n.type.shape)
        out = {var: shape for var in n.op.state_vars}
        if isinstance(n.op, Delay) and n.op.max_steps >= 1:
            out["buffer"] = (n.op.max_steps, *shape)
        if n.id in self.history:
            out["history"] = (self.history[n.id], *shape)
        return out

    def check_state(self, state: Any, batch: int) -> StateDict:
        """Validate a carried-in state against the graph (names, shapes); cast dtypes."""
        if not isinstance(state, Mapping):
            raise ParamError(f"state must be a dict node id -> dict of arrays (as returned "
                              f"with return_state=True), got {type(state).__name__}")
        out: StateDict = {}
        expected_nodes = set()
        for n in self.graph.nodes:
            shapes = self._state_shapes(n, batch)
            if not shapes:
                continue
            expected_nodes.add(n.id)
            entry = state.get(n.id)
            if not isinstance(entry, Mapping) or set(entry) != set(shapes):
                got = sorted(entry) if isinstance(entry, Mapping) else entry
                raise ParamError(f"state[{n.id!r}] must hold {sorted(shapes)}, got {got!r}")
            out[n.id] = {}
            for name, shape in shapes.items():
                value = entry[name]
                if tuple(getattr(value, "shape", ())) != shape:
                    raise ParamError(f"state[{n.id!r}][{name!r}] must have shape {list(shape)}"
                                      f", got {list(getattr(value, 'shape', ()))}")
                out[n.id][name] = jnp.asarray(value, _dtype(n))
        extra = sorted(set(state) - expected_nodes)
        if extra:
            raise ParamError(f"state has entries for nodes without state: {extra}")
        return out

    # -- inputs and params ---------------------------------------------------------------
    def check_inputs(self, x: Any) -> tuple[dict[str, Array], int, int]:
        """``(inputs by id, T, B)``; data cast to the input types' dtypes."""
        data, steps, batch = self.input_arrays(x)
        out = {nid: jnp.asarray(value, _dtype(self.graph.node(nid)))
               for nid, value in data.items()}
        return out, steps, batch

    def input_arrays(self, x: Any) -> tuple[dict[str, Any], int, int]:
        """``(inputs by id, T, B)``, nothing cast: :class:`ParamError` for wrong names,
        shapes or complex dtypes. Reads static properties only, so it works on tracers
        and costs no device work (``CompiledModel.apply`` runs it before ``jax.jit``)."""
        ids = self.graph.inputs
        if isinstance(x, Mapping):
            if set(x) != set(ids):
                raise ParamError(f"inputs must be keyed by the io.input ids {list(ids)}, "
                                  f"got {sorted(x)}")
            data = dict(x)
        elif len(ids) == 1:
            data = {ids[0]: x}
        else:
            raise ParamError(f"the graph has several inputs {list(ids)}; pass a dict")
        tb: tuple[int, int] | None = None
        for nid in ids:
            node = self.graph.node(nid)
            assert node.type is not None
            value = data[nid]
            shape = tuple(getattr(value, "shape", ()))
            if len(shape) != 2 + node.type.rank or shape[2:] != node.type.shape:
                raise ParamError(f"input %{nid}: expected data [T, B, "
                                  f"{', '.join(map(str, node.type.shape))}] (time-major), "
                                  f"got shape {list(shape)}")
            if tb is not None and shape[:2] != tb:
                raise ParamError(f"input %{nid} has [T, B] = {list(shape[:2])}, but other "
                                  f"inputs have {list(tb)}")
            tb = (shape[0], shape[1])
            dtype = getattr(value, "dtype", None)
            if dtype is not None and jnp.issubdtype(dtype, jnp.complexfloating):
                # A cast would drop the imaginary part with only a warning.
                raise ParamError(f"input %{nid} has complex dtype {dtype}; expected real "
                                  f"numbers (bool, integers or floats)")
        assert tb is not None
        return data, tb[0], tb[1]

    def check_input_values(self, data: Mapping[str, Any]) -> None:
        """:class:`ParamError` for NumPy input data holding values beyond the input's dtype
        (1e300 for float32), or NaN or Inf unless ``check_finite`` is on (its report names
        the input and the step), naming the first index
        (:func:`spikejit.ir.interpreter.check_input_values`). JAX arrays are skipped: their
        values live on the device (a check would be a device reduction per call) or are
        not known at all (tracers)."""
        for nid, value in data.items():
            if isinstance(value, np.ndarray | np.generic):
                check_input_values(f"input %{nid}", np.asarray(value),
                                   _dtype(self.graph.node(nid)),
                                   allow_nonfinite=self.options.check_finite)

    def check_params(self, params: Any) -> dict[str, Array]:
        """The params as arrays of their declared dtypes; :class:`ParamError` if a name is
        missing or extra or a shape is wrong."""
        if not isinstance(params, Mapping):
            raise ParamError(f"params must be a dict name -> array, got {type(params).__name__}")
        refs = self.graph.user_param_refs()  # derived ones are computed, not passed
        missing = sorted(set(refs) - set(params))
        if missing:
            owners = param_owners(self.graph)
            raise ParamError(f"missing parameter(s) {', '.join('@' + m for m in missing)} (used"
                             f" by {', '.join(owners[m] for m in missing)})")
        extra = sorted(set(params) - set(refs))
        if extra:
            raise ParamError(f"unexpected parameter(s) {', '.join('@' + e for e in extra)}: "
                             f"no node of graph @{self.graph.name} references them")
        out = {}
        for name, ref in refs.items():
            value = params[name]
            shape = tuple(getattr(value, "shape", ()))
            if shape != ref.type.shape:
                raise ParamError(f"parameter @{name}: expected {ref.type}, got shape {list(shape)}")
            dtype = JNP_DTYPES[ref.type.dtype]
            if isinstance(value, np.ndarray) and value.dtype == dtype == canonical_dtype(dtype):
                # Already the dtype: asarray without one takes JAX's fast path (~2x faster
                # per array, which counts for the thousands of a big graph).
                out[name] = jnp.asarray(value)
            else:
                out[name] = jnp.asarray(value, dtype)
        return out

    # -- the function --------------------------------------------------------------------
    def __call__(self, params: Any, x: Any, state: Any = None, trace: tuple[str, ...] = ()
                 ) -> tuple[dict[str, Array], StateDict, dict, Array | None]:
        """Run the graph over the whole time axis.

        Args:
            params: ``{name: array}``.
            x: ``[T, B, *shape]`` (or a dict keyed by input id).
            state: Carried-in state (``None``: zeros).
            trace: Node ids whose outputs (and state variables) to record over time.

        Returns:
            ``(outputs by io.output id, new state, traces, report)``; ``report`` is
            ``None`` without ``check_finite``, else an ``int32[2]`` array ``(index into
            finite_order, step)`` of the first non-finite value, ``(-1, -1)`` if none.

        Raises:
            SizeLimitError: The state and the largest node output of this call (from the
                static ``T`` and ``B``) exceed the size limit.
        """
        self.trace_count += 1  # a Python side effect: counts traces, not calls
        p = eval_derived(self.graph, self.check_params(params))
        inputs, steps, batch = self.check_inputs(x)
        self.check_run_size(steps, batch)
        s0 = self.init_state(batch) if state is None else self.check_state(state, batch)
        block = (None if self.options.check_finite  # its report counts steps per call
                 else block_steps(self.graph, self.options.time_block, steps, batch))
        if block is not None:
            return (*self._blocked(p, inputs, s0, trace, block), None)
        return self._run(p, inputs, s0, trace, steps, batch)

    def _blocked(self, p: dict[str, Array], inputs: dict[str, Array], s0: StateDict,
                 trace: tuple[str, ...], block: int
                 ) -> tuple[dict[str, Array], StateDict, dict]:
        """:meth:`_run` over consecutive blocks of ``block`` steps, one ``lax.scan`` over
        the blocks carrying the state (:mod:`spikejit.lowering.time_block`)."""
        def one_block(s: StateDict, xb: dict[str, Array]) -> tuple[StateDict, Any]:
            steps, batch = next(iter(xb.values())).shape[:2]
            outputs, s_next, traces, _ = self._run(p, xb, s, trace, steps, batch)
            return s_next, (outputs, traces)

        blocks = jax.tree_util.tree_map(
            lambda a: a.reshape(a.shape[0] // block, block, *a.shape[1:]), inputs)
        s_end, (outputs, traces) = lax.scan(one_block, s0, blocks)
        outputs, traces = jax.tree_util.tree_map(
            lambda a: a.reshape(-1, *a.shape[2:]), (outputs, traces))
        return outputs, s_end, traces

    def _run(self, p: dict[str, Array], inputs: dict[str, Array], s0: StateDict,
             trace: tuple[str, ...], steps: int, batch: int
             ) -> tuple[dict[str, Array], StateDict, dict, Array | None]:
        """One pass of the schedule over all of ``inputs``' time steps."""
        run = _Run(self, p, inputs, s0, frozenset(trace), steps, batch)
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
        report = run.finite_report() if self.options.check_finite else None
        return outputs, run.finish_state(), run.traces, report


class _Run:
    """The mutable bookkeeping of one trace of :class:`Program` (not part of the API)."""

    def __init__(self, prog: Program, params: dict[str, Array], inputs: dict[str, Array],
                 state: StateDict, trace: frozenset[str], steps: int, batch: int) -> None:
        self.prog, self.graph, self.inputs, self.state = prog, prog.graph, inputs, state
        self.trace, self.steps, self.batch = trace, steps, batch
        self.ctx: dict[str, NodeContext] = {
            n.id: node_context(self.graph, n, params, prog._spike, prog.options.detach_reset,
                         prog.options.conv_impl)
            for n in self.graph.nodes
        }
        self.full: dict[str, Array] = {}
        self.padded: dict[str, Array] = {}
        self.new_state: StateDict = {}
        self.traces: dict[str, dict[str, Array]] = {}
        self.check = prog.options.check_finite
        #: ``check_finite``: node id -> ``bool[T]``, "non-finite output or state at step t".
        self.bad_steps: dict[str, Array] = {}

    # -- reading operands over the whole time axis ---------------------------------------
    def _padded(self, nid: str) -> Array:
        """``[history; output]`` along time: ``padded[D + t]`` is the output at step t."""
        if nid not in self.padded:
            self.padded[nid] = jnp.concatenate([self.state[nid]["history"], self.full[nid]])
        return self.padded[nid]

    def read_full(self, producer: str, delay: int) -> Array:
        """The producer's output over time, read ``delay`` steps back."""
        if delay == 0:
            return self.full[producer]
        big_d = self.prog.history[producer]
        steps = self.full[producer].shape[0]
        return lax.slice_in_dim(self._padded(producer), big_d - delay, big_d - delay + steps)

    def operand_full(self, node: Node) -> Array:
        acc: Array | None = None
        for u in node.inputs:  # fan-in summed in Use order, like the interpreter
            value = self.read_full(u.node, u.delay)
            acc = value if acc is None else acc + value
        assert acc is not None
        return acc

    def _keep(self, nid: str, **entries: Array) -> None:
        if entries:
            self.new_state.setdefault(nid, {}).update(entries)

    def _record(self, nid: str, out: Array, states: Mapping[str, Array] | None) -> None:
        if nid in self.trace:
            self.traces[nid] = {"out": out, **(states or {})}

    # -- layerwise -----------------------------------------------------------------------
    def layerwise(self, nid: str) -> None:
        node, rule, ctx = self.graph.node(nid), self.prog.rules[nid], self.ctx[nid]
        states: dict[str, Array] | None = None
        if isinstance(node.op, Input):
            y = self.inputs[nid]
            if self.check:
                self.bad_steps[nid] = _bad_per_step(y)
        elif rule.kind == "delay":
            x = self.operand_full(node)
            buffer = self.state.get(nid, {}).get("buffer")
            y, new_buffer = delay_full(node, x, buffer)
            if new_buffer is not None:
                self._keep(nid, buffer=new_buffer)
        elif rule.kind == "map":
            x = self.operand_full(node)
            steps, batch = x.shape[:2]
            flat = jnp.reshape(x, (steps * batch, *x.shape[2:]))  # one op over T*B samples
            y = rule.apply(ctx, flat)
            y = jnp.reshape(y, (steps, batch, *y.shape[1:]))
            if self.check:
                self.bad_steps[nid] = _bad_per_step(y)
        else:
            x = self.operand_full(node)
            if rule.pre is not None:  # a fused layer's synapse: once over T*B samples
                steps, batch = x.shape[:2]
                x = rule.pre(ctx, jnp.reshape(x, (steps * batch, *x.shape[2:])))
                x = jnp.reshape(x, (steps, batch, *x.shape[1:]))
            assert rule.prepare is not None
            consts = rule.prepare(ctx)
            s0 = {var: self.state[nid][var] for var in node.op.state_vars}
            traced = nid in self.trace
            check = self.check

            def body(s: dict[str, Array], xt: Array) -> tuple[dict[str, Array], Any]:
                out, s = rule.apply(ctx, consts, s, xt)
                return s, (out, s if traced else None, _bad(out, s) if check else None)

            if nid not in self.prog.parallel or x.shape[0] == 0:
                s_end, (y, states, bad) = lax.scan(body, s0, x,
                                                   unroll=self.prog.options.unroll)
            else:  # an associative scan over time (spikejit.lowering.parallel_scan)
                y, s_end, states, bad = run_parallel(rule, ctx, consts, s0, x, traced=traced,
                                                     check=check,
                                                     unroll=self.prog.options.unroll)
            if check:
                self.bad_steps[nid] = bad
            self._keep(nid, **s_end)
        self.full[nid] = y
        if nid in self.prog.history:
            big_d = self.prog.history[nid]
            padded = self._padded(nid)
            self._keep(nid, history=padded[padded.shape[0] - big_d:])
        self._record(nid, y, states)

    # -- stepwise ------------------------------------------------------------------------
    def stepwise(self, members: tuple[str, ...]) -> None:
        g, prog = self.graph, self.prog
        inside = set(members)
        # Rings: members read with a delay by a consumer in this segment.
        rings = {m for m in members if m in prog.history
                 and any(c in inside and u.delay > 0 for c, u in g.users[m])}
        exported = {m for m in members
                    if any(c not in inside for c, _ in g.users[m]) or m in g.outputs
                    or m in self.trace or (m in prog.history and m not in rings)}
        xs: list[Array] = []
        ext: dict[tuple[str, int], int] = {}
        for m in members:
            node = g.node(m)
            if isinstance(node.op, Input):
                ext[(m, -1)] = len(xs)
                xs.append(self.inputs[m])
            for i, u in enumerate(node.inputs):
                if u.node not in inside:
                    ext[(m, i)] = len(xs)
                    xs.append(self.read_full(u.node, u.delay))
        carry0 = {
            "s": {m: {v: self.state[m][v] for v in g.node(m).op.state_vars} for m in members
                  if g.node(m).op.state_vars},
            "buf": {m: self.state[m]["buffer"] for m in members
                    if "buffer" in self.state.get(m, {})},
            "ring": {m: self.state[m]["history"] for m in rings},
        }
        traced_neurons = [m for m in members if m in self.trace and g.node(m).op.state_vars]
        checked = [m for m in members if m in prog.finite_order] if self.check else []
        # Convs whose weight gradient is formed after the loop (spikejit.lowering.hoist);
        # not with check_finite, whose boolean outputs a custom_vjp cannot carry.
        hoisted = () if self.check else hoisted_convs(g, members, prog.options.conv_impl)
        # Dense weight gradients likewise (custom_jvp when no conv needs the custom_vjp).
        dense = () if self.check else hoisted_dense(g, members)
        # The differentiable parameters, passed explicitly so a custom_vjp can wrap the scan.
        ptree = {m: {k: v for k, v in self.ctx[m].p.items() if isinstance(v, jax.Array)}
                 for m in members}

        def run(ptree: dict[str, dict[str, Array]], xs: list[Array], carry0: dict[str, Any],
                probes: Mapping[str, Array]) -> tuple[Any, dict[str, Array]]:
            ctxs = {m: dataclasses.replace(self.ctx[m], p={**self.ctx[m].p, **ptree[m]})
                    for m in members}
            for m in probes:  # hoisted: no weight gradient inside the loop
                c = ctxs[m]
                ctxs[m] = dataclasses.replace(
                    c, p={**c.p, "weight": lax.stop_gradient(c.p["weight"])},
                    conv_impl="input_vjp")
            for m in members:  # 2-D dense weights also as [in, out], made once (rules._dense)
                if dense_op(g.node(m)) is not None:
                    ctxs[m] = dataclasses.replace(
                        ctxs[m], p={**ctxs[m].p, "weight_t": ctxs[m].p["weight"].T})
            consts = {}
            for m in members:
                rule = prog.rules[m]
                if rule.kind == "neuron":
                    with jax.named_scope(m):
                        assert rule.prepare is not None
                        consts[m] = rule.prepare(ctxs[m])
            return self._scan(members, ctxs, consts, ext, exported, traced_neurons, checked,
                              xs, carry0, probes)

        if hoisted:
            carry, outs, states, bad = hoisted_scan(g, hoisted + dense, run, ptree, xs, carry0,
                                                    self.steps, self.batch)
        elif dense:
            carry, outs, states, bad = hoisted_scan_jvp(g, dense, run, ptree, xs, carry0,
                                                        self.steps, self.batch)
        else:
            carry, outs, states, bad = run(ptree, xs, carry0, {})[0]
        self.bad_steps.update(bad)
        for m in members:
            self._keep(m, **carry["s"].get(m, {}))
            if m in carry["buf"]:
                self._keep(m, buffer=carry["buf"][m])
            if m in outs:
                self.full[m] = outs[m]
        for m in members:
            if m in rings:
                self._keep(m, history=carry["ring"][m])
            elif m in prog.history:
                big_d = prog.history[m]
                padded = self._padded(m)
                self._keep(m, history=padded[padded.shape[0] - big_d:])
            if m in self.trace:
                self._record(m, self.full[m], states.get(m))

    def _scan(self, members: tuple[str, ...], ctxs: dict[str, NodeContext],
              consts: dict[str, Any], ext: dict[tuple[str, int], int], exported: set[str],
              traced_neurons: list[str], checked: list[str], xs: list[Array],
              carry0: dict[str, Any], probes: Mapping[str, Array]
              ) -> tuple[Any, dict[str, Array]]:
        """The scan of a stepwise segment: ``((carry, outs, states, bad), conv inputs)``.

        ``probes[m]`` (hoisted convs only) is added to member ``m``'s conv output, whose
        input of every step is then also returned.
        """
        g, prog = self.graph, self.prog

        def body(carry: dict[str, Any], inp: tuple[list[Array], Mapping[str, Array]]
                 ) -> tuple[dict[str, Any], Any]:
            xt, pt = inp
            conv_in: dict[str, Array] = {}
            cur: dict[str, Array] = {}
            st = dict(carry["s"])
            ring = carry["ring"]

            def operand(node: Node) -> Array:
                acc: Array | None = None
                for i, u in enumerate(node.inputs):
                    if (node.id, i) in ext:
                        value = xt[ext[(node.id, i)]]
                    elif u.delay == 0:
                        value = cur[u.node]
                    else:
                        r = ring[u.node]
                        value = r[r.shape[0] - u.delay]
                    acc = value if acc is None else acc + value
                assert acc is not None
                return acc

            pending: dict[str, Array] = {}
            for m in members:
                node, rule, ctx = g.node(m), prog.rules[m], ctxs[m]
                with jax.named_scope(m):
                    if isinstance(node.op, Input):
                        cur[m] = xt[ext[(m, -1)]]
                    elif rule.kind == "delay":
                        assert isinstance(node.op, Delay)
                        x = operand(node) if node.op.depends_same_step() else None
                        if x is not None:
                            pending[m] = x
                        cur[m] = delay_step(node, carry["buf"].get(m), x)
                    elif rule.kind == "map":
                        x = operand(node)
                        cur[m] = rule.apply(ctx, x)
                        if m in pt:
                            conv_in[m] = lax.stop_gradient(x)
                            cur[m] = cur[m] + pt[m]
                    else:
                        x = operand(node)
                        if rule.pre is not None:  # a fused layer's synapse
                            x_in = x
                            x = rule.pre(ctx, x)
                            if m in pt:
                                conv_in[m] = lax.stop_gradient(x_in)
                                x = x + pt[m]
                        cur[m], st[m] = rule.apply(ctx, consts[m], st[m], x)
            new_buf = {}
            for m, buf in carry["buf"].items():
                with jax.named_scope(m):
                    x = pending[m] if m in pending else operand(g.node(m))
                    new_buf[m] = delay_push(buf, x)
            new_ring = {m: delay_push(r, cur[m]) for m, r in ring.items()}
            bad = {m: _bad(cur[m], st.get(m, {})) for m in checked}
            ys = ({m: cur[m] for m in exported}, {m: st[m] for m in traced_neurons}, bad,
                  conv_in)
            return {"s": st, "buf": new_buf, "ring": new_ring}, ys

        carry, (outs, states, bad, conv_in) = lax.scan(
            body, carry0, (xs, dict(probes)), length=self.steps, unroll=prog.options.unroll)
        return (carry, outs, states, bad), conv_in

    # -- end -------------------------------------------------------------------------------
    def finite_report(self) -> Array:
        """``int32[2]``: (index into ``finite_order``, step) of the first non-finite value,
        earliest step first, then schedule order; ``(-1, -1)`` if there is none."""
        none = jnp.array([-1, -1], jnp.int32)
        if self.steps == 0:
            return none
        bad = jnp.stack([self.bad_steps[nid] for nid in self.prog.finite_order])  # [N, T]
        any_bad = jnp.any(bad, axis=1)
        first = jnp.where(any_bad, jnp.argmax(bad, axis=1), self.steps)  # per node
        step = jnp.min(first)
        index = jnp.argmax(first == step)  # the first node, in schedule order, at that step
        found = jnp.stack([index, step]).astype(jnp.int32)
        return jnp.where(step < self.steps, found, none)

    def finish_state(self) -> StateDict:
        """The new state in graph node order (same keys as the carried-in state)."""
        out: StateDict = {}
        for n in self.graph.nodes:
            if n.id in self.new_state:
                entry = self.new_state[n.id]
                out[n.id] = {k: entry[k] for k in sorted(entry)}
        return out


def _bad_per_step(y: Array) -> Array:
    """``bool[T]``: whether ``y[t]`` (``[T, B, ...]``) holds NaN or Inf."""
    return jnp.any(~jnp.isfinite(y), axis=tuple(range(1, y.ndim)))


def _bad(out: Array, state: Mapping[str, Array]) -> Array:
    """``bool[]``: whether one step's output or new state holds NaN or Inf."""
    flags = [jnp.any(~jnp.isfinite(v)) for v in (out, *state.values())]
    return jnp.any(jnp.stack(flags))
