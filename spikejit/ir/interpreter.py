"""The reference interpreter: ``nir-euler-v1`` in plain numpy, one time step at a time.

This is the oracle that every pass and the JAX lowering are checked against, so it is
written to be obviously correct rather than fast. It imports nothing but numpy and
``spikejit.ir``. For ``t`` in ``0..T-1`` and for every node in
:func:`~spikejit.ir.analysis.step_order` (same-step producers first, ties in print order):

1. the operand is the sum of the node's uses, in ``Use`` order; a use with delay ``d >= 1``
   reads the producer's output from step ``t-d`` (zeros before the start, or the carried-in
   ``history``);
2. the op's rule (``INTERPRETER_RULES`` in :mod:`spikejit.ir.interp_rules`) computes the
   node's output at step ``t`` and its new state variables.

After all nodes ran, every ``snn.delay`` appends its step-``t`` input to its buffer and every
node read through a delayed use appends its output to its history.

Dynamics (``h = dt``; state starts at 0; spikes are strict, ``z = v > v_threshold``, and are
0/1 in the computation dtype; omitted optional parameters take ``PARAM_DEFAULTS``)::

    snn.i        v += h*r*x                                   -> v
    snn.if       v += h*r*x; z = v > v_th; reset              -> z
    snn.li       v += h/tau*(v_leak - v + r*x)                -> v
    snn.lif      as snn.li; z = v > v_th; reset               -> z
    snn.cuba_li  I_new = I + h/tau_syn*(-I + w_in*x)
                 v += h/tau_mem*(v_leak - v + r*I_c)          -> v
    snn.cuba_lif as snn.cuba_li; z = v > v_th; reset v only   -> z

``I_c`` is ``I_new`` with ``cuba_current="post"`` (default) and the old ``I`` with ``"pre"``.
Reset is the node's ``reset`` if set, else the graph's: ``value`` ``v = v_reset where z``;
``subtract`` ``v -= v_threshold*z``; ``none`` no reset.

``method="exp"`` integrates the linear leak exactly, holding the input constant over the
step (zero-order hold):

* LI / LIF: ``v = v_leak + r*x + (v - v_leak - r*x)*exp(-h/tau)``;
* CubaLI / CubaLIF: ``I_new = w_in*x + (I - w_in*x)*exp(-h/tau_syn)``, then, with ``I_c``
  chosen by ``cuba_current`` and held constant, ``v = v_leak + r*I_c + (v - v_leak -
  r*I_c)*exp(-h/tau_mem)``;
* I / IF: unchanged (Euler is already exact for a held input).

Floating point follows IEEE rules silently (an overflow gives ``inf``, as in the compiled
model); numpy's warnings are switched off while simulating. Input data must be finite in
the computation dtype (:func:`check_input_values`), as for the compiled model.
``graph.schedule`` is ignored: a schedule says how to execute, the uses say what is
computed.

State layout (shared with the JAX lowering) is described in :func:`state_spec`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from spikejit.errors import IRError, OptionError, ParamError
from spikejit.ir.analysis import step_order
from spikejit.ir.derived import evaluate as evaluate_derived
from spikejit.ir.graph import Graph, Node
from spikejit.ir.interp_rules import INTERPRETER_RULES, StepContext
from spikejit.ir.ops import PARAM_DEFAULTS, Delay, Input
from spikejit.ir.shapes import infer_types
from spikejit.ir.values import check_input_values
from spikejit.ir.verify import verify, verify_params

Array = np.ndarray
StateDict = dict[str, dict[str, Array]]


def _dims(shape: Iterable[object]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _typed(graph: Graph) -> Graph:
    return graph if all(n.type is not None for n in graph.nodes) else infer_types(graph)


def _type_shape(node: Node) -> tuple[int, ...]:
    assert node.type is not None  # the interpreter types the graph first
    return node.type.shape


def state_spec(graph: Graph, batch: int) -> dict[str, dict[str, tuple[int, ...]]]:
    """The shape of every state array for a batch of ``batch`` samples.

    ``state[id]`` holds, for node ``id`` with per-step shape ``S``:

    * each of its op's ``state_vars`` (``"v"``, ``"i"``): ``[B, *S]``;
    * ``"buffer"`` for a ``snn.delay`` with ``K = max_steps >= 1``: ``[K, B, *S]``, the last
      ``K`` *inputs*, oldest first (``buffer[-1]`` is the input at ``t-1``);
    * ``"history"`` when a consumer reads the node with a delay (``D =
      graph.max_use_delay(id) >= 1``): ``[D, B, *S]``, its last ``D`` *outputs*, oldest first.

    Nodes without state are absent.

    Args:
        graph: A verified graph (typed or not).
        batch: The batch size ``B``.

    Returns:
        ``{node_id: {variable: shape}}``.
    """
    graph = _typed(graph)
    spec: dict[str, dict[str, tuple[int, ...]]] = {}
    for node in graph.nodes:
        shape = (batch, *_type_shape(node))
        entry = {var: shape for var in node.op.state_vars}
        if isinstance(node.op, Delay) and node.op.max_steps >= 1:
            entry["buffer"] = (node.op.max_steps, *shape)
        depth = graph.max_use_delay(node.id)
        if depth >= 1:
            entry["history"] = (depth, *shape)
        if entry:
            spec[node.id] = entry
    return spec


def initial_state(graph: Graph, batch: int, dtype: Any = np.float64) -> StateDict:
    """The all-zero state of :func:`state_spec` (what a simulation starts from)."""
    return {nid: {var: np.zeros(shape, dtype=dtype) for var, shape in entry.items()}
            for nid, entry in state_spec(graph, batch).items()}


def _check_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise OptionError(f"dtype must be a numpy floating dtype, got {dtype!r}") from None
    if dt.kind != "f":
        raise OptionError(f"dtype must be a numpy floating dtype, got {dt.name}")
    return dt


def _as_numeric(what: str, value: Any, dtype: np.dtype) -> Array:
    """``value`` as an array of ``dtype``; :class:`ParamError` unless it is bool/int/float."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise ParamError(f"{what}: expected a numeric array, got {type(value).__name__} ({e})"
                         ) from None
    if arr.dtype.kind not in "biuf":
        raise ParamError(f"{what}: expected a numeric array, got dtype {arr.dtype}")
    return arr.astype(dtype)


def _check_inputs(graph: Graph, x: Any, dtype: np.dtype) -> tuple[dict[str, Array], int, int]:
    """The input data keyed by input id, each ``[T, B, *shape]``, and ``T``, ``B``."""
    names = graph.inputs
    listed = ", ".join("%" + n for n in names)
    if isinstance(x, Mapping):
        missing = [n for n in names if n not in x]
        if missing:
            raise ParamError(f"input data is missing {', '.join('%' + n for n in missing)}: "
                             f"expected a dict with keys {listed}")
        extra = [k for k in x if k not in names]
        if extra:
            keys = ", ".join(repr(k) for k in extra)
            raise ParamError(f"input data has unexpected key(s) {keys}: the graph's inputs are "
                             f"{listed}")
        raw = {n: x[n] for n in names}
    elif len(names) == 1:
        raw = {names[0]: x}
    else:
        raise ParamError(f"graph @{graph.name} has {len(names)} inputs, so the input data must "
                         f"be a dict with keys {listed}, got {type(x).__name__}")
    data: dict[str, Array] = {}
    first: tuple[str, int, int] | None = None
    for nid, value in raw.items():
        arr = _as_numeric(f"input %{nid}", value, dtype)
        shape = _type_shape(graph.node(nid))
        if arr.ndim != 2 + len(shape) or arr.shape[2:] != shape:
            raise ParamError(f"input %{nid}: expected an array of shape {_dims(('T', 'B', *shape))}"
                             f" (time, batch, then the per-step shape), got {_dims(arr.shape)}")
        if not np.isfinite(arr).all():  # name the value as given, before the cast
            check_input_values(f"input %{nid}", np.asarray(value), dtype)
        if first is None:
            first = (nid, arr.shape[0], arr.shape[1])
        elif arr.shape[:2] != first[1:]:
            raise ParamError(f"input %{nid} has T = {arr.shape[0]} steps and batch B = "
                             f"{arr.shape[1]}, but %{first[0]} has T = {first[1]} and B = "
                             f"{first[2]}; all inputs must agree")
        data[nid] = arr
    assert first is not None  # the verifier guarantees at least one input
    return data, first[1], first[2]


def _check_trace(graph: Graph, trace: Any) -> tuple[str, ...]:
    if trace is None or trace is False:
        return ()
    if trace is True:
        return tuple(n.id for n in graph.nodes)
    ids = (trace,) if isinstance(trace, str) else trace
    try:
        ids = tuple(ids)
    except TypeError:
        raise OptionError(f"trace must be True or a list of node ids, got {trace!r}") from None
    for nid in ids:
        if not isinstance(nid, str) or nid not in graph:
            raise OptionError(f"trace names {nid!r}, which is not a node of graph @{graph.name}")
    return tuple(dict.fromkeys(ids))


def _describe(var: str, shape: tuple[int, ...]) -> str:
    if var == "buffer":
        return f"[K, B, *shape]: the last K = {shape[0]} inputs"
    if var == "history":
        return f"[D, B, *shape]: the last D = {shape[0]} outputs"
    return f"[B, *shape] with B = {shape[0]}"


def _check_state(state: Any, spec: dict[str, dict[str, tuple[int, ...]]],
                 dtype: np.dtype) -> StateDict:
    """A private copy of a carried-in ``state`` in ``dtype``, checked against ``spec``."""
    if not isinstance(state, Mapping):
        raise ParamError(f"state must be a dict {{node id: {{variable: array}}}}, got "
                         f"{type(state).__name__}")
    for nid in state:
        if nid not in spec:
            raise ParamError(f"state has an entry for {nid!r}, which is not a node with state "
                             f"(nodes with state: {', '.join('%' + k for k in spec) or 'none'})")
    out: StateDict = {}
    for nid, entry in spec.items():
        want = ", ".join(f"{var!r}" for var in entry)
        given = state.get(nid)
        if given is None:
            raise ParamError(f"state is missing %{nid} (expected variables {want})")
        if not isinstance(given, Mapping) or set(given) != set(entry):
            keys = sorted(map(repr, given)) if isinstance(given, Mapping) else type(given).__name__
            raise ParamError(f"state[{nid!r}]: expected variables {want}, got {keys}")
        out[nid] = {}
        for var, shape in entry.items():
            arr = _as_numeric(f"state[{nid!r}][{var!r}]", given[var], dtype)
            if arr.shape != shape:
                raise ParamError(f"state[{nid!r}][{var!r}]: expected shape {_dims(shape)} "
                                 f"({_describe(var, shape)}), got {_dims(arr.shape)}")
            out[nid][var] = arr
    return out


def _check_dt(graph: Graph, dtype: np.dtype) -> None:
    """:class:`OptionError` if ``dt`` is ``0`` or ``inf`` in ``dtype`` and a node uses it
    (NumPy keeps subnormal values, unlike XLA)."""
    dt = graph.attrs.dt
    user = next((n for n in graph.nodes if n.op.uses_dt), None)
    if dt is None or user is None:
        return
    with np.errstate(all="ignore"):
        h = np.asarray(dt).astype(dtype)
    if h == 0 or not np.isfinite(h):
        raise OptionError(f"dt={dt!r} cannot be represented in {dtype.name}, the dtype of the "
                          f"simulation (%{user.id} ({user.op.mnemonic}) computes with it)")


def _contexts(graph: Graph, params: Mapping[str, Any], dtype: np.dtype) -> dict[str, StepContext]:
    """Each node's parameters (defaults filled in) and options, resolved once."""
    attrs = graph.attrs
    h = np.asarray(np.nan if attrs.dt is None else attrs.dt, dtype=dtype)
    out = {}
    for node in graph.nodes:
        p: dict[str, Array] = {}
        for field in node.op.param_fields():
            ref = getattr(node.op, field)
            if ref is not None:
                p[field] = np.asarray(params[ref.name]).astype(dtype)
            elif field in PARAM_DEFAULTS:
                p[field] = np.asarray(PARAM_DEFAULTS[field], dtype=dtype)
        reset = getattr(node.op, "reset", None) or attrs.reset
        out[node.id] = StepContext(node=node, p=p, h=h, reset=reset,
                                   cuba_current=attrs.cuba_current, method=attrs.method,
                                   dtype=dtype)
    return out


def _operand(node: Node, out: Mapping[str, Array], state: StateDict) -> Array:
    """The sum of ``node``'s uses at the current step, in ``Use`` order."""
    total: Array | None = None
    for use in node.inputs:
        if use.delay == 0:
            value = out[use.node]
        else:
            history = state[use.node]["history"]  # outputs t-D .. t-1
            value = history[history.shape[0] - use.delay]
        total = value if total is None else total + value
    assert total is not None  # the verifier checks arity
    return total


def _simulate(graph: Graph, ctxs: Mapping[str, StepContext], data: Mapping[str, Array],
              st: StateDict, spec: Mapping[str, Mapping[str, tuple[int, ...]]],
              traced: tuple[str, ...], steps: int, batch: int,
              dt: np.dtype) -> dict[str, dict[str, Array]]:
    """Run all steps, updating ``st`` in place; return the recorded outputs and traces
    (``record[id]["out"]`` for every output and traced node, plus traced state vars)."""
    order = [graph.node(nid) for nid in step_order(graph)]
    record: dict[str, dict[str, Array]] = {}
    for nid in (*graph.outputs, *traced):
        node = graph.node(nid)
        names = ("out", *node.op.state_vars) if nid in traced else ("out",)
        record[nid] = {k: np.zeros((steps, batch, *_type_shape(node)), dt) for k in names}

    for t in range(steps):
        out: dict[str, Array] = {}
        fed: dict[str, Array] = {}
        for node in order:
            if isinstance(node.op, Input):
                operand: Array | None = data[node.id][t]
            elif node.op.depends_same_step():
                operand = _operand(node, out, st)
            else:
                # A snn.delay with every delay >= 1 runs before its producers; it reads
                # only its buffer now and takes its step-t input after the step.
                operand = None
            rule = INTERPRETER_RULES.get(type(node.op))
            if rule is None:
                raise graph.error(IRError, node.id,
                                  f"has no interpreter rule for {node.op.mnemonic}")
            y, new_vars = rule(ctxs[node.id], operand, st.get(node.id, {}))
            want = (batch, *_type_shape(node))
            if y.shape != want or y.dtype != dt:
                raise graph.error(IRError, node.id,
                                  f"interpreter computed {y.dtype} {_dims(y.shape)}, but the "
                                  f"node's type needs {dt} {_dims(want)} (an internal bug)")
            out[node.id] = y
            if operand is not None:
                fed[node.id] = operand
            if new_vars:
                st[node.id] = {**st[node.id], **new_vars}
        # End of step t: delay buffers take their input (histories not yet shifted, so
        # delayed uses still read step t-d), then histories take the outputs.
        for node in graph.nodes:
            if isinstance(node.op, Delay) and node.op.max_steps >= 1:
                now = fed[node.id] if node.id in fed else _operand(node, out, st)
                buf = st[node.id]["buffer"]
                st[node.id] = {**st[node.id], "buffer": np.concatenate([buf[1:], now[None]])}
        for node in graph.nodes:
            if "history" in spec.get(node.id, {}):
                hist = st[node.id]["history"]
                st[node.id] = {**st[node.id],
                               "history": np.concatenate([hist[1:], out[node.id][None]])}
        for nid, arrays in record.items():
            for name, arr in arrays.items():
                arr[t] = out[nid] if name == "out" else st[nid][name]

    return record


def interpret(
    graph: Graph,
    params: Mapping[str, Any],
    x: Any,
    *,
    state: Mapping[str, Mapping[str, Any]] | None = None,
    return_state: bool = False,
    trace: bool | str | Iterable[str] | None = None,
    dtype: Any = np.float64,
) -> Any:
    """Simulate ``graph`` step by step in numpy, exactly as ``nir-euler-v1`` says.

    Args:
        graph: The graph; verified first (and typed if it is not).
        params: ``{name: array}`` holding exactly the graph's user parameters
            (:meth:`~spikejit.ir.graph.Graph.user_param_refs`), each of its declared shape
            and dtype; derived parameters are computed from them first.
        x: Time-major input ``[T, B, *shape]`` (bool, int or float, finite in ``dtype``);
            a dict keyed by ``io.input`` id when the graph has several inputs (allowed for
            one too). ``T = 0`` gives empty outputs and the state unchanged.
        state: The state to start from, as returned with ``return_state=True`` (layout in
            :func:`state_spec`); default all zeros.
        return_state: Also return the state after the last step.
        trace: ``True`` for every node, or node ids: also return, per traced node, its
            output ``"out"`` and each state variable at the end of every step (after the
            reset), all ``[T, B, *shape]``.
        dtype: The numpy floating dtype of all arithmetic and of the results.

    Returns:
        ``y``; ``(y, state)`` with ``return_state``; ``(y, traces)`` with ``trace``;
        ``(y, state, traces)`` with both. ``y`` is ``[T, B, *shape]``, or a dict keyed by
        ``io.output`` id when the graph has several outputs. Spiking nodes give 0/1.

    Raises:
        VerifyError: The graph is malformed (or names a node the message shows).
        ParamError: ``params``, ``x`` or ``state`` do not match the graph, or ``x`` holds
            NaN, Inf or values beyond the range of ``dtype`` (named with the first index).
        OptionError: ``graph`` is not a Graph, or ``dtype`` or ``trace`` is invalid, or
            ``dt`` is ``0`` or ``inf`` in ``dtype``.
    """
    if not isinstance(graph, Graph):
        raise OptionError(f"graph must be a spikejit.ir.Graph, got {type(graph).__name__}")
    dt = _check_dtype(dtype)
    verify(graph)
    verify_params(graph, params)
    graph = _typed(graph)
    _check_dt(graph, dt)
    # IEEE semantics without warnings, as in the compiled model (casts included).
    with np.errstate(all="ignore"):
        data, steps, batch = _check_inputs(graph, x, dt)
        traced = _check_trace(graph, trace)
        spec = state_spec(graph, batch)
        st = initial_state(graph, batch, dt) if state is None else _check_state(state, spec, dt)
        # Derived parameters are computed in the computation dtype, from the user's
        # arrays cast to it, so a folded graph runs at the oracle's precision.
        values = evaluate_derived(graph.derived, params, dt)
        record = _simulate(graph, _contexts(graph, values, dt), data, st, spec, traced,
                           steps, batch, dt)
    outputs = graph.outputs
    y_all: Any = (record[outputs[0]]["out"] if len(outputs) == 1
                  else {nid: record[nid]["out"] for nid in outputs})
    result: list[Any] = [y_all]
    if return_state:
        result.append({nid: {k: v.copy() for k, v in entry.items()} for nid, entry in st.items()})
    if traced:
        result.append({nid: {k: v.copy() for k, v in record[nid].items()} for nid in traced})
    return result[0] if len(result) == 1 else tuple(result)
