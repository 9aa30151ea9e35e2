"""One builder per NIR primitive: stored fields -> IR op plus parameter arrays.

Builders run in an order where the node's input type is already known, because real files
need it: parameters may be scalars, torch-shaped (``[1, N]``, ``[N, 1]``) or flat. A
parameter of an elementwise layer (neurons, ``Threshold``, ``Scale``) is kept as stored if
it broadcasts to the layer; otherwise its size-1 axes are dropped; otherwise, if it has as
many elements as the layer, it is reshaped to the layer (row-major). Anything else is an
error naming the node, the field and both shapes. Parameters become ``float32`` arrays named
``{node}.{field}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spikejit.errors import FrontendError, IRError, SpikejitError
from spikejit.frontends.draft import GraphDraft
from spikejit.frontends.nir.flatten import FlatNode
from spikejit.frontends.nir.schema import (
    ATTR_DEFAULTS,
    NIR_NODES,
    TIME_CONSTANTS,
    NodeMeta,
    nir_kinds,
)
from spikejit.ir import ops as O
from spikejit.ir.types import NUMPY_DTYPE_NAMES, ParamRef, TensorType, broadcastable
from spikejit.ir.values import not_representable

#: Relative tolerance for a NIR delay to count as a whole number of steps.
DELAY_RTOL = 1e-6
#: Longest delay in steps (far beyond any real model; keeps the step counts integers).
MAX_DELAY_STEPS = 2**31 - 1
#: Parameters that may be ``+inf``: time constants (no leak) and thresholds (never
#: fires). Every other parameter value must be finite; NaN is refused everywhere.
MAY_BE_INFINITE: tuple[str, ...] = (*TIME_CONSTANTS, "v_threshold", "threshold")

#: Neutral value of each optional parameter (an omitted IR parameter means this).
NEUTRAL: dict[str, float] = {**O.PARAM_DEFAULTS, "bias": 0.0}


@dataclass
class Ctx:
    """What a builder needs: the node, its metadata, the options, and the draft of the
    graph (where params go)."""

    label: str
    node: FlatNode
    dt: float | None
    draft: GraphDraft
    in_type: TensorType | None = None
    meta: NodeMeta = field(default_factory=NodeMeta)

    def error(self, reason: str) -> FrontendError:
        kind = self.node.kind
        return FrontendError(f"{self.label}: node {self.node.id!r} ({kind} -> "
                             f"{NIR_NODES[kind].mnemonic}): {reason}")

    def raw(self, name: str) -> Any:
        return self.node.fields.get(name)


def numeric(ctx: Ctx, name: str, value: Any) -> np.ndarray:
    """``value`` as a float64 array; an error naming the field if it is not real numbers."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):  # ragged nested lists, objects numpy cannot convert
        raise ctx.error(f"field {name!r} must hold real numbers, got {_short(value)}") from None
    if arr.dtype.kind not in "biuf":
        raise ctx.error(f"field {name!r} must hold real numbers, got {arr.dtype} "
                        f"{_short(value)}")
    arr = arr.astype(np.float64)
    if np.isnan(arr).any():
        raise ctx.error(f"field {name!r} contains NaN")
    return arr


def _first_infinite(arr: np.ndarray) -> str:
    return "inf" if np.any(arr == np.inf) and not np.any(arr == -np.inf) else "-inf"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def ints(ctx: Ctx, name: str, length: int | None = None) -> int | tuple[int, ...]:
    """An integer or a tuple of integers (``length`` of them, or 1) from a stored field."""
    value = ctx.raw(name)
    if value is None:
        if name not in ATTR_DEFAULTS:
            raise ctx.error(f"field {name!r} is missing")
        return ATTR_DEFAULTS[name]
    arr = numeric(ctx, name, value)
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        raise ctx.error(f"field {name!r} must hold integers, got {arr.tolist()}")
    if arr.ndim == 0:
        return int(arr)
    flat = tuple(int(v) for v in arr.reshape(-1))
    if arr.ndim > 1 or (length is not None and len(flat) not in (1, length)):
        want = f"an integer or {length} integers" if length else "integers"
        raise ctx.error(f"field {name!r} must be {want}, got {arr.tolist()}")
    return flat[0] if len(flat) == 1 else flat


def one_int(ctx: Ctx, name: str) -> int:
    """A single integer field (``groups``, ``start_dim``, ...)."""
    value = ints(ctx, name)
    if not isinstance(value, int):
        raise ctx.error(f"field {name!r} must be one integer, got {list(value)}")
    return value


def shape_of(ctx: Ctx, name: str) -> tuple[int, ...] | None:
    """A stored shape (``None`` if absent or empty-and-unknown)."""
    if ctx.raw(name) is None:
        return None
    value = ints(ctx, name)
    shape = (value,) if isinstance(value, int) else value
    if any(d < 0 for d in shape):
        raise ctx.error(f"field {name!r} is not a shape: {list(shape)}")
    return shape


def param(ctx: Ctx, name: str, *, elementwise: bool = False) -> ParamRef | None:
    """The parameter ``name`` (``None`` if absent or omitted by spikejit's exporter)."""
    value = ctx.raw(name)
    if value is None:
        if name in NIR_NODES[ctx.node.kind].required:
            raise ctx.error(f"required field {name!r} is missing")
        return None
    arr = numeric(ctx, name, value)
    if name in TIME_CONSTANTS and not np.all(arr > 0):
        raise ctx.error(f"time constant {name!r} must be > 0 everywhere (inf means no leak), "
                        f"got min {arr.min()}")
    finite = bool(np.isfinite(arr).all())
    if not finite and not (name in MAY_BE_INFINITE and np.all(arr > -np.inf)):
        raise ctx.error(f"field {name!r} contains {_first_infinite(arr)}; only time constants "
                        f"(no leak) and thresholds (never fires) may be +inf")
    arr = _restore_shape(ctx, name, arr)
    if name in ctx.meta.omit and np.all(arr == NEUTRAL.get(name, math.nan)):
        return None  # spikejit wrote the neutral value for a parameter the IR op omitted
    if elementwise and ctx.in_type is not None:
        arr = fit_to_layer(ctx, name, arr, ctx.in_type.shape)
    dtype = ctx.meta.dtypes.get(name, "f32")
    pname = ctx.meta.names.get(name) or f"{ctx.node.id}.{name}"
    with np.errstate(over="ignore"):  # reported below, with the field's name
        out = arr.astype(_np_dtype(ctx, dtype))
    if finite:  # the common case: one check (``arr`` holds no NaN)
        overflow = not np.isfinite(out).all()
    else:
        overflow = bool(np.any(np.isinf(out) & np.isfinite(arr)))
    if overflow:
        raise ctx.error(f"field {name!r} has values beyond the range of {dtype}, e.g. "
                        f"{arr[np.isinf(out) & np.isfinite(arr)].reshape(-1)[0]:.7g}")
    if name in TIME_CONSTANTS:  # > 0 as given, but 1e-300 is 0 in float32: h/tau = inf
        small = not_representable(out, out.dtype) & np.isfinite(arr)
        if small.any():
            raise ctx.error(f"time constant {name!r} has values too small for {dtype}, e.g. "
                            f"{arr[small].reshape(-1)[0]:.7g}: they would run as 0")
    ref = ctx.draft.bind_param(pname, out, dtype)
    if ref is None:
        raise ctx.error(f"parameter name {pname!r} is used twice with different values")
    return ref


def _check_coefficients(ctx: Ctx, refs: dict[str, Any]) -> None:
    """The step coefficients ``dt/tau`` (and ``dt*r`` of I and IF), computed in the
    parameter's dtype as the model does, must be finite: ``dt=1e10`` with ``tau=1e-30``
    overflows float32. Large finite coefficients (an unstable Euler step) are allowed."""
    if ctx.dt is None:
        return
    for name, ref in refs.items():
        is_r = name == "r" and ctx.node.kind in ("I", "IF")
        if not isinstance(ref, ParamRef) or not (name in TIME_CONSTANTS or is_r):
            continue
        value = ctx.draft.params[ref.name]
        dtype = ref.type.dtype
        with np.errstate(all="ignore"):  # overflow is what is looked for
            h = np.asarray(ctx.dt).astype(value.dtype)
            coef = h * value if is_r else h / value
        if not_representable(ctx.dt, value.dtype):  # f16/bf16: float32's range is checked
            raise ctx.error(f"dt={ctx.dt!r} cannot be represented in {dtype}, the dtype of "
                            f"{name!r}")
        bad = ~np.isfinite(coef)
        if bad.any():
            first = float(np.broadcast_to(value, bad.shape)[bad].reshape(-1)[0])
            what = "dt*r" if is_r else f"dt/{name}"
            raise ctx.error(f"{what} overflows {dtype} (dt={ctx.dt!r} s, {name}={first:.7g}): "
                            f"the step coefficient would be inf")


def _np_dtype(ctx: Ctx, dtype: str) -> Any:
    if dtype not in NUMPY_DTYPE_NAMES:
        raise ctx.error(f"unknown parameter dtype {dtype!r}")
    if dtype == "bf16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return np.dtype(NUMPY_DTYPE_NAMES[dtype])


def need(ctx: Ctx, name: str, *, elementwise: bool = False) -> ParamRef:
    """A parameter the op cannot do without."""
    ref = param(ctx, name, elementwise=elementwise)
    if ref is None:
        raise ctx.error(f"required field {name!r} is missing")
    return ref


def _restore_shape(ctx: Ctx, name: str, arr: np.ndarray) -> np.ndarray:
    """Undo the exporter's broadcast of a parameter to the layer shape, if the values
    really are constant along the broadcast axes (else the metadata is stale: ignore)."""
    shape = ctx.meta.shapes.get(name)
    if shape is None or tuple(shape) == arr.shape or not broadcastable(tuple(shape), arr.shape):
        return arr
    lead = arr.ndim - len(shape)
    index = (0,) * lead + tuple(
        slice(None) if s == n else slice(0, 1) for s, n in zip(shape, arr.shape[lead:], strict=True)
    )
    small = arr[index].reshape(shape)
    return small if np.array_equal(np.broadcast_to(small, arr.shape), arr) else arr


def fit_to_layer(ctx: Ctx, name: str, arr: np.ndarray, layer: tuple[int, ...]) -> np.ndarray:
    """Make a stored elementwise parameter broadcast to ``layer`` (see module docstring)."""
    if broadcastable(arr.shape, layer):
        return arr
    squeezed = arr.reshape(tuple(d for d in arr.shape if d != 1))
    if broadcastable(squeezed.shape, layer):
        return squeezed
    if arr.size == math.prod(layer):
        return arr.reshape(layer)
    raise ctx.error(f"parameter {name!r} has shape {list(arr.shape)}, which does not fit the "
                    f"layer shape {list(layer)} (the node's input)")


def delay_steps(ctx: Ctx) -> np.ndarray:
    """The ``Delay`` node's delays in whole steps (``round(delay/dt)``), as stored shaped."""
    arr = _restore_shape(ctx, "delay", numeric(ctx, "delay", ctx.raw("delay")))
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ctx.error(f"delays must be finite and >= 0, got {arr.tolist()}")
    if not np.any(arr):
        return arr.astype(np.int64)
    assert ctx.dt is not None  # checked by the importer before any node is built
    with np.errstate(over="ignore"):  # a tiny dt: too many steps, reported below
        k = arr / ctx.dt
    if np.any(k > MAX_DELAY_STEPS):
        longest = float(arr.max())
        raise ctx.error(f"delay {longest:.7g} s is {longest / ctx.dt:.4g} steps of "
                        f"dt={ctx.dt!r}, more than the {MAX_DELAY_STEPS} supported")
    steps = np.rint(k)
    bad = np.abs(k - steps) > DELAY_RTOL * np.maximum(1.0, np.abs(k))
    if bad.any():
        first = float(arr.reshape(-1)[int(np.argmax(bad.reshape(-1)))])
        raise ctx.error(f"delay {first:.7g} s is not a whole number of steps of dt={ctx.dt!r} "
                        f"({first / ctx.dt:.7g} steps); pick a dt that divides every delay")
    return steps.astype(np.int64)


# -- builders -----------------------------------------------------------------------------

def _input(ctx: Ctx) -> O.Op:
    shape = shape_of(ctx, "shape")
    assert shape is not None  # 'shape' is required and checked before
    dtype = ctx.meta.input_dtype or "f32"
    return O.Input(type=TensorType(shape, dtype, ctx.meta.input_spike))


def _affine(ctx: Ctx) -> O.Op:
    return O.Affine(weight=need(ctx, "weight"), bias=need(ctx, "bias"))


def _linear(ctx: Ctx) -> O.Op:
    return O.Linear(weight=need(ctx, "weight"))


def _scale(ctx: Ctx) -> O.Op:
    return O.Scale(scale=need(ctx, "scale", elementwise=True))


def _conv(ctx: Ctx) -> O.Op:
    n = 1 if ctx.node.kind == "Conv1d" else 2
    padding: Any = ctx.raw("padding")
    padding = padding.lower() if isinstance(padding, str) else ints(ctx, "padding", n)
    groups = one_int(ctx, "groups")
    cls = O.Conv1d if n == 1 else O.Conv2d
    return cls(weight=need(ctx, "weight"), bias=param(ctx, "bias"),
               stride=ints(ctx, "stride", n), padding=padding,
               dilation=ints(ctx, "dilation", n), groups=groups)


def _pool(ctx: Ctx) -> O.Op:
    cls = O.SumPool2d if ctx.node.kind == "SumPool2d" else O.AvgPool2d
    kernel = ints(ctx, "kernel_size", 2)
    stride = kernel if ctx.raw("stride") is None else ints(ctx, "stride", 2)
    return cls(kernel_size=kernel, stride=stride, padding=ints(ctx, "padding", 2))


def _flatten(ctx: Ctx) -> O.Op:
    return O.Flatten(start_dim=one_int(ctx, "start_dim"), end_dim=one_int(ctx, "end_dim"))


def _delay(ctx: Ctx) -> O.Op:
    steps = delay_steps(ctx)
    size = math.prod(ctx.in_type.shape) if ctx.in_type is not None else steps.size
    values: tuple[int, ...]
    if steps.size == 1:
        values = (int(steps.reshape(-1)[0]),)
    elif steps.size == size:
        values = tuple(int(s) for s in steps.reshape(-1))
    else:
        raise ctx.error(f"delay has shape {list(steps.shape)}, which fits neither one value "
                        f"nor the {size} elements of its input")
    return O.Delay(steps=values)


def _neuron(cls: type[O.Op], names: tuple[str, ...]) -> Callable[[Ctx], O.Op]:
    def build(ctx: Ctx) -> O.Op:
        kwargs: dict[str, Any] = {n: param(ctx, n, elementwise=True) for n in names}
        _check_coefficients(ctx, kwargs)
        if ctx.meta.reset is not None and "reset" in {f.name for f in _fields(cls)}:
            kwargs["reset"] = ctx.meta.reset
        return cls(**kwargs)

    return build


def _fields(cls: type[O.Op]) -> tuple[Any, ...]:
    import dataclasses

    return dataclasses.fields(cls)


#: How each NIR kind becomes an op: a builder for the kinds with their own fields, and
#: for every neuron that NIR can express (by the op's ``nir_kind`` fact) the generic one.
BUILDERS: dict[str, Callable[[Ctx], O.Op]] = {
    "Input": _input,
    "Output": lambda ctx: O.Output(),
    "Affine": _affine,
    "Linear": _linear,
    "Scale": _scale,
    "Conv1d": _conv,
    "Conv2d": _conv,
    "SumPool2d": _pool,
    "AvgPool2d": _pool,
    "Flatten": _flatten,
    "Delay": _delay,
    **{kind: _neuron(cls, NIR_NODES[kind].params)
       for cls, kind in nir_kinds().items() if cls.category == "neuron"},
}


def build_op(ctx: Ctx) -> O.Op:
    """The IR op of ``ctx.node`` (parameters are added to ``ctx.draft``); ``ctx.meta``
    holds the node's spikejit metadata (:func:`~.schema.load_node_meta`)."""
    for name in NIR_NODES[ctx.node.kind].required:
        if ctx.raw(name) is None:
            raise ctx.error(f"required field {name!r} is missing")
    try:
        return BUILDERS[ctx.node.kind](ctx)
    except FrontendError:
        raise
    except IRError as e:  # an attribute the op rejects (raised while validating)
        raise ctx.error(e.reason) from None
    except SpikejitError as e:  # e.g. a type with an unknown dtype from metadata
        raise ctx.error(str(e)) from None


def check_declared(ctx: Ctx, in_type: TensorType | None) -> str | None:
    """Compare shapes the file declares with the inferred input; the problem, or ``None``.

    Declared shapes count as equal when they agree after dropping size-1 axes (exporters
    write sample batch axes of 1); an empty declared shape means "unknown".
    """
    if in_type is None:
        return None
    kind = ctx.node.kind
    if kind == "Output":
        declared, got, what = shape_of(ctx, "shape"), in_type.shape, "Output shape"
    elif kind == "Flatten":
        declared, got, what = shape_of(ctx, "input_type"), in_type.shape, "Flatten input_type"
    elif kind in ("Conv1d", "Conv2d"):
        declared, got, what = shape_of(ctx, "input_shape"), in_type.shape[1:], "input_shape"
    else:
        return None
    if declared is None or (declared == () and got != ()):
        return None
    if tuple(d for d in declared if d != 1) != tuple(d for d in got if d != 1):
        return f"the file declares {what} {list(declared)}, but the input gives {list(got)}"
    return None
