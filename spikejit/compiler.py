"""``spikejit.compile``: a model in, one jitted, differentiable JAX function out.

::

    model = spikejit.compile("model.nir", dt=1e-3)          # or (graph, params), a NIRGraph,
    y = model(x)                                            # a saved .sjit.npz model
    loss, grads = jax.value_and_grad(lambda p: loss_fn(model.apply(p, x)))(model.params)

The options are one :class:`spikejit.CompileOptions` (``compile(source, options=...)`` or
keywords). The pipeline is: load the source (:func:`spikejit.frontends.load.load_source`),
then :meth:`CompileOptions.pipeline` (``shape-inference``, the optimisation passes, the
scheduler); the lowering turns the scheduled graph into a pure function
(``spikejit.lowering.emit.Program``). Programs are cached by (graph after the passes,
lowering options), so compiling the same graph again reuses the same jitted function and
JAX does not retrace it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax

from spikejit.errors import OptionError, ParamError, SpikejitError
from spikejit.frontends.load import load_source
from spikejit.ir.graph import Graph
from spikejit.ir.printer import print_graph
from spikejit.ir.schedule import Schedule
from spikejit.lowering.abi import check_leaves
from spikejit.lowering.emit import LoweringOptions, Program, StateDict
from spikejit.lowering.instrument import raise_nonfinite
from spikejit.lowering.sharding import DataParallel
from spikejit.lowering.tiling import check_reduce
from spikejit.lru import LRUCache
from spikejit.options import DEFAULT_PASSES, KNOWN, CompileOptions
from spikejit.passes import Pipeline, build_pipeline

#: Options besides the first eight of :data:`spikejit.options.KNOWN`, with their defaults
#: (kept for callers that ask whether this build has an option, e.g. the benchmarks).
EXTRA_OPTIONS: dict[str, Any] = {k: getattr(CompileOptions(), k) for k in KNOWN[8:]}

_PROGRAMS: LRUCache[tuple[Graph, LoweringOptions], Program] = LRUCache(64)


class CompiledModel:
    """A compiled graph with its parameters.

    Attributes:
        graph: The IR after the passes, with its schedule (``print(model)`` shows it).
        params: The parameters, ``{name: jax.Array}`` (a pytree).
        program: The lowered program (shared between models compiled from the same graph
            with the same options).
        options: The :class:`~spikejit.CompileOptions` it was compiled with.
    """

    def __init__(self, graph: Graph, params: Mapping[str, Any], program: Program,
                 options: CompileOptions | None = None, *,
                 data_parallel: DataParallel | None = None) -> None:
        self.graph = graph
        self.program = program
        self.options = CompileOptions() if options is None else options
        self.params: dict[str, jax.Array] = program.check_params(params)
        #: Steps per checkpointed time tile (``compile(..., remat=C)``), or ``None``.
        self.remat: int | None = self.options.remat
        #: The batch split over a device mesh (``compile(..., mesh=...)``), or ``None``.
        self.data_parallel = (self.options.data_parallel() if data_parallel is None
                              else data_parallel)
        if self.data_parallel is not None:
            self.params = self.data_parallel.put_params(self.params)

    # -- information ----------------------------------------------------------------------
    @property
    def schedule(self) -> Schedule:
        """Which nodes run layerwise and which stepwise, in order."""
        assert self.graph.schedule is not None
        return self.graph.schedule

    @property
    def trace_count(self) -> int:
        """How many times JAX has traced the underlying function (retrace detector)."""
        return self.program.trace_count

    def __str__(self) -> str:
        return print_graph(self.graph)

    def __repr__(self) -> str:
        segs = ", ".join(f"{s.kind}[{len(s.nodes)}]" for s in self.schedule.segments)
        return (f"CompiledModel(graph=@{self.graph.name}, nodes={len(self.graph.nodes)}, "
                f"params={len(self.params)}, schedule=({segs}))")

    # -- running ----------------------------------------------------------------------------
    def init_state(self, batch_size: int) -> StateDict:
        """The all-zero initial state for ``batch_size`` samples.

        Format: ``{node_id: {var: [B, *shape]}}`` for neuron state variables,
        ``{"buffer": [K, B, *shape]}`` for ``snn.delay`` nodes and
        ``{"history": [D, B, *shape]}`` for nodes read through delayed uses (oldest first).
        With ``mesh=``, split over the mesh along the batch axes (``OptionError`` unless
        ``batch_size`` is a multiple of the devices).
        """
        state = self.program.init_state(batch_size)
        return state if self.data_parallel is None else self.data_parallel.put_state(state)

    def apply(self, params: Mapping[str, Any], x: Any, state: StateDict | None = None, *,
              return_state: bool = False, trace: Iterable[str] | bool | None = None,
              reduce: str | None = None) -> Any:
        """Run the model: a pure function of ``params``, ``x`` and ``state``.

        Works under ``jax.jit``, ``jax.grad``, ``jax.jvp`` and ``jax.vmap``.

        Args:
            params: ``{name: array}`` with exactly the graph's parameters.
            x: ``[T, B, *input_shape]`` time-major data, or a dict keyed by io.input id.
                Any numeric or bool dtype: the data is cast to the input's dtype inside the
                program (under time tiling, one tile at a time), so spikes passed as
                ``bool``/``uint8`` take a quarter of the memory of float32, with exact
                values.
            state: State to continue from (``None``: all zeros).
            return_state: Also return the state after the last step.
            trace: Node ids to record over time (``True``: every node).
            reduce: Reduce every output over the time axis inside the program: ``None``
                (default: the full ``[T, B, *shape]`` output), ``"sum"`` (e.g. spike
                counts), ``"mean"`` (rates, mean membrane) or ``"last"`` (the last step's
                value); the result is ``[B, *shape]``. Under time tiling the reduction is
                accumulated tile by tile and the ``[T, B, ...]`` output never exists.
                Traces and the state are not reduced.

        Returns:
            ``y`` (``[T, B, *shape]``, ``[B, *shape]`` with ``reduce``, or a dict keyed by
            io.output id when there are several outputs); ``(y, state)`` with
            ``return_state``; ``(y, traces)`` with
            ``trace``; ``(y, state, traces)`` with both. ``traces[node_id]`` holds
            ``"out"`` and each state variable, ``[T, B, *shape]`` (values at the end of
            each step, after reset).

        Raises:
            OptionError: ``reduce`` is not one of the values above.
            ParamError: ``x`` has the wrong names or shapes or a complex dtype; or, for
                NumPy arrays, values beyond the input's dtype (1e300 in float32) or NaN or
                Inf (with ``check_finite=True`` these two come as ``NonFiniteError`` from
                the run), named with the first index (JAX arrays are not searched: their
                values are on the device, or unknown under ``jax.jit``); or
                ``reduce="mean"``/``"last"`` with ``T = 0``.
            NonFiniteError: compiled with ``check_finite=True`` and a node produced NaN or
                Inf (named with the time step; also under ``jax.grad``). Under your own
                ``jax.jit`` the values are not known to Python: the check is then a
                ``jax.experimental.checkify`` check, reported when you wrap the function
                with ``checkify.checkify`` and silent otherwise.
            SizeLimitError: the state and the largest ``[T, B, ...]`` node output of this
                call would exceed the size limit (:mod:`spikejit.limits`).
        """
        ids = self._trace_ids(trace)
        how = check_reduce(reduce)
        check_leaves(params=params, inputs=x, state=state)
        self._check_call(x, how)
        try:
            if self.data_parallel is not None:
                outputs, new_state, traces, report = self.data_parallel.call(
                    self.program, params, x, state, ids, remat=self.remat, reduce=how)
            elif self.remat is None and how is None:  # the common call: fewest arguments
                outputs, new_state, traces, report = self.program.jitted(params, x, state, ids)
            else:  # the same jitted function, tiled and/or reduced
                outputs, new_state, traces, report = self.program.jitted(
                    params, x, state, ids, tile=self.remat, reduce=how)
        except SpikejitError as e:  # raised while jax.jit traced the program
            _drop_jax_note(e)
            raise
        if report is not None:
            raise_nonfinite(self.graph, self.program.finite_order, report)
        y = outputs[self.graph.outputs[0]] if len(outputs) == 1 else outputs
        result: tuple[Any, ...] = (y,)
        if return_state:
            result += (new_state,)
        if trace:
            result += (traces,)
        return result[0] if len(result) == 1 else result

    def __call__(self, x: Any, state: StateDict | None = None, *, return_state: bool = False,
                 trace: Iterable[str] | bool | None = None, reduce: str | None = None) -> Any:
        """``apply`` with the model's own params (jitted)."""
        return self.apply(self.params, x, state, return_state=return_state, trace=trace,
                          reduce=reduce)

    def with_params(self, params: Mapping[str, Any]) -> CompiledModel:
        """The same compiled function with other parameter values (e.g. after training)."""
        return CompiledModel(self.graph, params, self.program, self.options,
                             data_parallel=self.data_parallel)

    def make_jaxpr(self, x: Any, state: StateDict | None = None) -> Any:
        """The jaxpr of one forward call (for inspection: every node's ops carry its id)."""
        return jax.make_jaxpr(lambda p, xx: self.program(p, xx, state, ()))(self.params, x)

    def _check_call(self, x: Any, how: str | None) -> None:
        """The checks of a call that need no device work, made before ``jax.jit`` (whose
        traceback note would otherwise come with the error): input names, shapes and
        dtypes, the values of NumPy inputs, ``T`` for ``reduce``, the run size."""
        prog = self.program
        data, steps, batch = prog.input_arrays(x)
        prog.check_input_values(data)
        if steps == 0 and how in ("mean", "last"):
            raise ParamError(f"apply: reduce={how!r} needs at least one time step, got T = 0")
        if self.data_parallel is None:  # split over devices, each checks its own share
            prog.check_run_size(steps if self.remat is None else min(steps, self.remat), batch)

    def _trace_ids(self, trace: Iterable[str] | bool | None) -> tuple[str, ...]:
        if trace is None or trace is False:
            return ()
        if trace is True:
            return tuple(n.id for n in self.graph.nodes)
        if isinstance(trace, str):
            trace = (trace,)
        ids = tuple(dict.fromkeys(trace))
        unknown = [t for t in ids if t not in self.graph]
        if unknown:
            raise OptionError(f"trace: no node(s) {', '.join('%' + u for u in unknown)} in "
                              f"graph @{self.graph.name}; nodes: "
                              f"{', '.join('%' + n.id for n in self.graph.nodes)}")
        return ids


def compile(source: Any, *, options: CompileOptions | None = None,
            **keywords: Any) -> CompiledModel:
    """Compile a spiking network to a jitted, differentiable JAX function.

    Args:
        source: A ``.nir`` file path, a ``nir.NIRGraph``, a ``(Graph, params)`` pair, a
            ``Graph`` without parameters, the path of a model saved with
            ``spikejit.save``, or a ``torch.nn.Module`` (with ``input_shape=`` and ``dt=``).
        options: A :class:`spikejit.CompileOptions` (default: every default).
        **keywords: Any field of :class:`spikejit.CompileOptions` (``dt``, ``schedule``,
            ``surrogate``, ``surrogate_params``, ``passes``, ``reset``, ``cuba_current``,
            ``method``, ``order``, ``detach_reset``, ``spike_ad``, ``unroll``,
            ``input_shape``, ``check_finite``, ``conv_impl``, ``remat``, ``mesh``,
            ``mesh_axis``, ``time_block``, ``parallel_scan``; each documented there and in
            ``docs/compile.md``). Given together with ``options``, a keyword overrides that
            field of ``options`` (the result is checked as a whole).

    Returns:
        The :class:`CompiledModel`; its ``options`` are the options used.

    Raises:
        OptionError: an unknown option, an invalid value or an incompatible combination
            (named), raised before the source is read.
        ScheduleError: ``schedule="layerwise"`` on a recurrent graph.
        SizeLimitError: the parameters would exceed the size limit.
        SpikejitError: any frontend, verifier or parameter error (they name the node).
    """
    opts = CompileOptions.from_keywords(options, **keywords)
    graph, params = load_source(source, opts.frontend_overrides())
    graph = opts.pipeline()(graph)
    return CompiledModel(graph, params, _program(graph, opts.lowering()), opts)


def _drop_jax_note(e: BaseException) -> None:
    """Remove the note ``jax.jit`` adds to errors raised while tracing ("For simplicity,
    JAX has removed its internal frames ..."): a spikejit error stands on its own."""
    notes = getattr(e, "__notes__", None)
    if notes:
        kept = [n for n in notes if "JAX_TRACEBACK_FILTERING" not in n]
        if kept:
            e.__notes__ = kept
        else:
            del e.__notes__


def pipeline_for(passes: str | Sequence[str] | Pipeline | None = None, schedule: str = "auto",
                 order: str = "dfs", parallel_scan: str = "auto") -> Pipeline:
    """The whole pipeline ``compile`` runs: shape inference, ``passes`` (default
    :data:`DEFAULT_PASSES`), then the scheduler with ``schedule``/``order``/
    ``parallel_scan`` (:func:`spikejit.passes.build_pipeline`; the options unchecked)."""
    return build_pipeline(DEFAULT_PASSES if passes is None else passes, mode=schedule,
                          order=order, parallel=parallel_scan)


def _program(graph: Graph, options: LoweringOptions) -> Program:
    """The cached program for (graph, options), built on first use."""
    return _PROGRAMS.get((graph, options), lambda: Program(graph, options))


def clear_cache() -> None:
    """Forget every cached program (their jitted functions go with them)."""
    _PROGRAMS.clear()


__all__ = [
    "DEFAULT_PASSES",
    "CompileOptions",
    "CompiledModel",
    "clear_cache",
    "compile",
    "load_source",
    "pipeline_for",
]
