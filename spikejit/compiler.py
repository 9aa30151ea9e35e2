"""``spikejit.compile``: a model in, one jitted, differentiable JAX function out.

::

    model = spikejit.compile("model.nir", dt=1e-3)          # or (graph, params), a NIRGraph,
    y = model(x)                                            # a saved .sjit.npz model
    loss, grads = jax.value_and_grad(lambda p: loss_fn(model.apply(p, x)))(model.params)

The pipeline is: load the source (frontend), ``shape-inference``, the optimisation passes
(``passes=``), then ``schedule{mode=..., order=...}``; the lowering turns the scheduled
graph into a pure function (``spikejit.lowering.emit.Program``). Programs are cached by
(graph after the passes, lowering options), so compiling the same graph again reuses the
same jitted function and JAX does not retrace it.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from spikejit.errors import (
    ModelFileError,
    NonFiniteError,
    OptionError,
    ParamError,
    SpikejitError,
)
from spikejit.ir.graph import Graph
from spikejit.ir.printer import print_graph
from spikejit.ir.schedule import Schedule
from spikejit.lowering.emit import LoweringOptions, Program, StateDict
from spikejit.lowering.parallel_scan import resolve_parallel
from spikejit.lowering.remat import check_reduce, runner
from spikejit.lowering.sharding import DataParallel
from spikejit.lowering.surrogates import DEFAULT_SURROGATE, resolve_surrogate
from spikejit.lru import LRUCache
from spikejit.passes import ALL_PASSES, PassStep, Pipeline
from spikejit.passes.schedule import MODES, ORDERS, PARALLEL

#: Passes run between shape inference and the scheduler when ``passes=None``: the ``O1``
#: preset (clean-ups that keep every parameter value and every observable node id that
#: reaches an output; ``passes="O2"`` adds folding, merging and fusion).
DEFAULT_PASSES = "O1"

#: Options accepted in ``**options`` with their defaults.
EXTRA_OPTIONS: dict[str, Any] = {"order": "dfs", "detach_reset": True, "spike_ad": "jvp",
                                 "unroll": 1, "input_shape": None, "check_finite": False,
                                 "conv_impl": "auto", "remat": None, "mesh": None,
                                 "mesh_axis": None,
                                 "time_block": "auto", "parallel_scan": "auto"}

_PROGRAMS: LRUCache[tuple[Graph, LoweringOptions], Program] = LRUCache(64)


class CompiledModel:
    """A compiled graph with its parameters.

    Attributes:
        graph: The IR after the passes, with its schedule (``print(model)`` shows it).
        params: The parameters, ``{name: jax.Array}`` (a pytree).
        program: The lowered program (shared between models compiled from the same graph
            with the same options).
    """

    def __init__(self, graph: Graph, params: Mapping[str, Any], program: Program, *,
                 remat: int | None = None, data_parallel: DataParallel | None = None) -> None:
        self.graph = graph
        self.program = program
        self.params: dict[str, jax.Array] = program.check_params(params)
        #: Steps per checkpointed chunk (``compile(..., remat=C)``), or ``None``.
        self.remat = remat
        #: The batch split over a device mesh (``compile(..., mesh=...)``), or ``None``.
        self.data_parallel = data_parallel
        if data_parallel is not None:
            self.params = data_parallel.put_params(self.params)
        #: The jitted chunked and/or time-reducing call (shared by models of one program).
        self._runner = runner(program, remat)

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
                program (under ``remat``, one chunk at a time), so spikes passed as
                ``bool``/``uint8`` take a quarter of the memory of float32, with exact
                values.
            state: State to continue from (``None``: all zeros).
            return_state: Also return the state after the last step.
            trace: Node ids to record over time (``True``: every node).
            reduce: Reduce every output over the time axis inside the program: ``None``
                (default: the full ``[T, B, *shape]`` output), ``"sum"`` (e.g. spike
                counts), ``"mean"`` (rates, mean membrane) or ``"last"`` (the last step's
                value); the result is ``[B, *shape]``. With ``remat`` the reduction is
                accumulated chunk by chunk and the ``[T, B, ...]`` output never exists.
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
        _check_leaves(params=params, inputs=x, state=state)
        self._check_call(x, how)
        try:
            if self.data_parallel is not None:
                outputs, new_state, traces, report = self.data_parallel.call(
                    self.program, params, x, state, ids, remat=self.remat, reduce=how)
            elif self.remat is None and how is None:
                outputs, new_state, traces, report = self.program.jitted(params, x, state, ids)
            else:
                outputs, new_state, traces, report = self._runner(params, x, state, trace=ids,
                                                                  reduce=how)
        except SpikejitError as e:  # raised while jax.jit traced the program
            _drop_jax_note(e)
            raise
        if report is not None:
            self._check_finite(report)
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
        return CompiledModel(self.graph, params, self.program, remat=self.remat,
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

    def _check_finite(self, report: jax.Array) -> None:
        """Raise :class:`NonFiniteError` for a concrete report; a checkify check (reported
        under ``checkify.checkify``, silent otherwise) for a traced one."""
        order = self.program.finite_order
        if isinstance(report, jax.core.Tracer):
            from jax.experimental import checkify

            for i, nid in enumerate(order):
                # The node's name is a format string here: its braces are escaped.
                who = f"%{nid} ({self.graph.node(nid).op.mnemonic}): "
                who = who.replace("{", "{{").replace("}", "}}")
                checkify.debug_check(report[0] != i, who + _nonfinite_reason(self.graph, nid),
                                     step=report[1])
            return
        found = self.program.nonfinite_node(report)
        if found is not None:
            nid, step = found
            node = self.graph.node(nid)
            raise NonFiniteError(_nonfinite_reason(self.graph, nid).format(step=step),
                                 step=step, node_id=nid, op_name=node.op.mnemonic,
                                 loc=node.loc)

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


def compile(
    source: Any,
    *,
    dt: float | None = None,
    schedule: str = "auto",
    surrogate: Any = DEFAULT_SURROGATE,
    surrogate_params: Mapping[str, float] | None = None,
    passes: str | Sequence[str] | Pipeline | None = None,
    reset: str | None = None,
    cuba_current: str | None = None,
    method: str | None = None,
    **options: Any,
) -> CompiledModel:
    """Compile a spiking network to a jitted, differentiable JAX function.

    Args:
        source: A ``.nir`` file path, a ``nir.NIRGraph``, a ``(Graph, params)`` pair, a
            ``Graph`` without parameters, or the path of a model saved with
            ``spikejit.save``.
        dt: The time step in seconds (required for NIR graphs with dynamics; overrides
            the graph's ``dt`` otherwise).
        schedule: ``auto`` (layerwise where acyclic, one scan per recurrent component),
            ``layerwise`` (error on cycles) or ``stepwise`` (one scan for everything).
        surrogate: A name from ``spikejit.SURROGATES``, a ``Surrogate`` or a function
            ``x -> s'(x)``.
        surrogate_params: Overrides of the surrogate's parameters, e.g. ``{"slope": 10}``.
        passes: Optimisation passes between shape inference and the scheduler: a
            pipeline string (``"canonicalize,dce"``), a list of pass names or a
            ``Pipeline``. The scheduler always runs last, from ``schedule``/``order``.
        reset: ``"value"`` or ``"subtract"`` (overrides the graph attribute).
        cuba_current: ``"post"`` or ``"pre"`` (overrides the graph attribute).
        method: ``"euler"`` or ``"exp"`` (overrides the graph attribute).
        **options: ``order`` (``"dfs"``/``"jacobi"``), ``detach_reset`` (bool, default
            True), ``spike_ad`` (``"jvp"``/``"vjp"``), ``unroll`` (int, scan unrolling),
            ``input_shape`` (NIR sources only: passed to ``from_nir``), ``remat`` (int:
            steps per gradient-checkpointed chunk of the time axis, for long sequences;
            see :mod:`spikejit.lowering.remat`), ``check_finite``
            (bool, default False: every call also finds the first node and time step
            that produced NaN or Inf and raises ``NonFiniteError``; nothing is traced
            for it when off), ``conv_impl`` (``"auto"``, ``"xla"``, ``"xla_nhwc"``,
            ``"custom_vjp"``: how convolutions and their gradients are lowered, see
            :mod:`spikejit.lowering.conv`; the values are the same for all), ``mesh`` (a
            ``jax.sharding.Mesh``: run data-parallel, the batch split over its devices and
            the parameters replicated; same values and gradients as one device, see
            :mod:`spikejit.lowering.sharding` and ``docs/scaling.md``), ``mesh_axis`` (the
            mesh axis name, or tuple of names, the batch is split over; default: every axis
            of the mesh), ``time_block``
            (``"auto"``, ``"off"`` or steps per block: run convolutional programs over
            blocks of time steps to keep activations in cache, see
            :mod:`spikejit.lowering.time_block`; same values), ``parallel_scan``
            (``"auto"``, ``"off"``, ``"on"``: run reset-free linear neurons of layerwise
            segments as a parallel-in-time associative scan, marked ``parallel(...)`` in
            the schedule; ``"auto"`` only where measured faster, which today is nowhere,
            see :mod:`spikejit.passes.schedule`; same values up to float rounding).

    Returns:
        The :class:`CompiledModel`.

    Raises:
        OptionError: an unknown or invalid option.
        ScheduleError: ``schedule="layerwise"`` on a recurrent graph.
        SizeLimitError: the parameters would exceed the size limit.
        SpikejitError: any frontend, verifier or parameter error (they name the node).
    """
    unknown = sorted(set(options) - set(EXTRA_OPTIONS))
    if unknown:
        raise OptionError(f"compile: unknown option(s) {', '.join(unknown)}; known: dt, "
                          f"schedule, surrogate, surrogate_params, passes, reset, cuba_current,"
                          f" method, {', '.join(EXTRA_OPTIONS)}")
    opts = {**EXTRA_OPTIONS, **options}
    if schedule not in MODES:
        raise OptionError(f"compile: schedule must be one of {', '.join(MODES)}, got {schedule!r}")
    if opts["order"] not in ORDERS:
        raise OptionError(f"compile: order must be one of {', '.join(ORDERS)}, "
                          f"got {opts['order']!r}")
    if opts["parallel_scan"] not in PARALLEL:
        raise OptionError(f"compile: parallel_scan must be one of {', '.join(PARALLEL)}, "
                          f"got {opts['parallel_scan']!r}")
    data_parallel = DataParallel.from_options(opts["mesh"], opts["mesh_axis"])
    remat = opts["remat"]
    if remat is not None:
        if isinstance(remat, bool) or not isinstance(remat, int) or remat < 1:
            raise OptionError(f"compile: remat must be a number of steps per checkpointed "
                              f"chunk (an integer >= 1) or None, got {remat!r}")
        if opts["check_finite"]:
            raise OptionError("compile: check_finite and remat cannot be combined yet; "
                              "find the non-finite step without remat first")
    lowering = LoweringOptions(resolve_surrogate(surrogate, surrogate_params),
                               spike_ad=opts["spike_ad"], detach_reset=opts["detach_reset"],
                               unroll=opts["unroll"], check_finite=opts["check_finite"],
                               conv_impl=opts["conv_impl"], time_block=opts["time_block"])
    overrides = {k: v for k, v in (("dt", dt), ("reset", reset), ("cuba_current", cuba_current),
                                   ("method", method), ("input_shape", opts["input_shape"]))
                 if v is not None}
    graph, params = load_source(source, overrides)
    pipeline = _pipeline(passes, schedule, opts["order"], resolve_parallel(opts["parallel_scan"]))
    graph = pipeline(graph)
    return CompiledModel(graph, params, _program(graph, lowering), remat=remat,
                         data_parallel=data_parallel)


def load_source(source: Any, overrides: Mapping[str, Any]) -> tuple[Graph, dict[str, Any]]:
    """``(graph, params)`` from any accepted source, with graph attributes overridden.

    ``overrides`` holds graph attributes (``dt``, ``reset``, ``cuba_current``, ``method``)
    and, for NIR sources only, ``input_shape``.
    """
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], Graph):
        graph, params = source
        if not isinstance(params, Mapping):
            raise OptionError(f"compile: the params of a (Graph, params) pair must be a dict, "
                              f"got {type(params).__name__}")
        return _with_attrs(graph, overrides), dict(params)
    if isinstance(source, Graph):
        if source.param_refs():
            raise OptionError(f"compile: graph @{source.name} references parameters; pass "
                              f"(graph, params)")
        return _with_attrs(source, overrides), {}
    if isinstance(source, str | os.PathLike):
        from spikejit.model_io import model_kind

        path = Path(source)
        kind = model_kind(path)
        if kind == "nir":
            return _from_nir(path, overrides)
        if kind == "text":
            raise ModelFileError(f"compile: {path} is IR text, which holds no parameter values;"
                                 f" pass (spikejit.parse(text), params) or use "
                                 f"spikejit.model_io.read_model to fill default values")
        from spikejit.ir.serialize import load

        graph, params = load(path)
        return _with_attrs(graph, overrides), dict(params)
    if type(source).__module__.split(".")[0] == "nir":
        return _from_nir(source, overrides)
    if _is_torch_module(source):
        return _from_torch(source, overrides)
    raise OptionError(f"compile: cannot compile a {type(source).__name__}; give a .nir path, a "
                      f"nir.NIRGraph, a (Graph, params) pair, a saved spikejit model path or a "
                      f"torch.nn.Module (with input_shape= and dt=)")


def _is_torch_module(source: Any) -> bool:
    torch = sys.modules.get("torch")  # never import torch just to find out
    return torch is not None and isinstance(source, torch.nn.Module)


def _from_torch(module: Any, overrides: Mapping[str, Any]) -> tuple[Graph, dict[str, Any]]:
    from spikejit.frontends.torch_import import from_torch

    if "input_shape" not in overrides or "dt" not in overrides:
        raise OptionError("compile: a torch module needs input_shape= (per-sample shape of one "
                          "time step) and dt=")
    rest = {k: v for k, v in overrides.items() if k not in ("input_shape", "dt")}
    graph, params = from_torch(module, tuple(overrides["input_shape"]), dt=overrides["dt"])
    return _with_attrs(graph, rest), dict(params)


def _from_nir(source: Any, overrides: Mapping[str, Any]) -> tuple[Graph, dict[str, Any]]:
    from spikejit.frontends.nir_import import from_nir

    accepted = inspect.signature(from_nir).parameters
    passed = {k: v for k, v in overrides.items() if k in accepted}
    graph, params = from_nir(source, **passed)
    rest = {k: v for k, v in overrides.items() if k not in passed}
    return _with_attrs(graph, rest), dict(params)


def _with_attrs(graph: Graph, overrides: Mapping[str, Any]) -> Graph:
    if "input_shape" in overrides:
        raise OptionError("compile: input_shape applies to NIR sources only; this source "
                          "already has typed inputs")
    if not overrides:
        return graph
    try:
        attrs = dataclasses.replace(graph.attrs, **overrides)
    except SpikejitError as e:
        raise OptionError(f"compile: {e}") from None
    return graph.replace(attrs=attrs, schedule=None)


def _check_leaves(**trees: Any) -> None:
    """Raise :class:`ParamError` for a leaf ``jax.jit`` cannot take as an array (a string,
    an object, an array of text), naming where it is; the program checks names and shapes.

    ``jax.jit`` would refuse such a leaf with a ``TypeError`` before the program's own
    checks run; this keeps the promise that a bad argument is a spikejit error.
    """
    for what, tree in trees.items():
        if all(_array_like(leaf) for leaf in jax.tree_util.tree_leaves(tree)):
            continue  # the common case: no paths computed
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            if not _array_like(leaf):
                key = getattr(path[0], "key", None) if len(path) == 1 else None
                where = (f"parameter @{key}" if what == "params" and isinstance(key, str)
                         else what + jax.tree_util.keystr(path))
                raise ParamError(f"{where} must be an array of numbers, got "
                                 f"{type(leaf).__name__} {_short(leaf)}")


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


def _array_like(leaf: Any) -> bool:
    if isinstance(leaf, bool | int | float | complex):
        return True
    dtype = getattr(leaf, "dtype", None)
    if dtype is None or not hasattr(leaf, "shape"):
        return False
    try:
        return bool(jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_))
    except TypeError:  # not a dtype numpy or JAX knows
        return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _nonfinite_reason(graph: Graph, nid: str) -> str:
    """The message of :class:`NonFiniteError` for ``nid``, with a ``{step}`` field."""
    if nid in graph.inputs:
        return ("the input data holds NaN or Inf at time step {step} (found by "
                "check_finite=True)")
    return ("produced NaN or Inf at time step {step}, in its output or state: the first "
            "non-finite value of the run (found by check_finite=True)")


def pipeline_for(passes: str | Sequence[str] | Pipeline | None = None, schedule: str = "auto",
                 order: str = "dfs", parallel_scan: str = "auto") -> Pipeline:
    """The whole pipeline ``compile`` runs: shape inference, ``passes`` (default
    :data:`DEFAULT_PASSES`), then the scheduler with ``schedule``/``order``/
    ``parallel_scan``."""
    return _pipeline(passes, schedule, order, parallel_scan)


def _pipeline(passes: str | Sequence[str] | Pipeline | None, mode: str, order: str,
              parallel: str = "auto") -> Pipeline:
    if passes is None:
        passes = DEFAULT_PASSES
    if isinstance(passes, Pipeline):
        user = passes.steps
    elif isinstance(passes, str):
        user = Pipeline.parse(passes).steps
    elif isinstance(passes, Sequence) and all(isinstance(p, str) for p in passes):
        user = Pipeline.parse(",".join(passes)).steps
    else:
        raise OptionError(f"compile: passes must be a pipeline string, a list of pass names or"
                          f" a Pipeline, got {passes!r}")
    if any(step.pass_.name == "schedule" for step in user):
        raise OptionError("compile: leave 'schedule' out of passes; it always runs last with "
                          "the schedule= and order= options")
    options: tuple[tuple[str, str], ...] = (("mode", mode), ("order", order))
    if parallel != "auto":  # the default stays implicit (printed pipelines unchanged)
        options += (("parallel", parallel),)
    steps = (PassStep(ALL_PASSES["shape-inference"]), *user,
             PassStep(ALL_PASSES["schedule"], options))
    return Pipeline(steps)


def _program(graph: Graph, options: LoweringOptions) -> Program:
    """The cached program for (graph, options), built on first use."""
    return _PROGRAMS.get((graph, options), lambda: Program(graph, options))


def clear_cache() -> None:
    """Forget every cached program (their jitted functions go with them)."""
    _PROGRAMS.clear()


__all__ = ["DEFAULT_PASSES", "CompiledModel", "clear_cache", "compile", "load_source",
           "pipeline_for"]
