"""Derived parameters: arrays computed from the user's parameters by a fixed, pure function.

Folding passes change parameter *values* (``W2 @ W1``, ``W * s``), but a pass is a
``Graph -> Graph`` function and the params pytree must stay exactly what the user gave, so
that ``jax.grad`` and Optax keep working on ``model.params`` and trained values can be
written back. So a pass never invents arrays: it adds a :class:`DerivedParam` saying how a
new parameter is computed from existing ones, e.g.::

    @fc2.weight.folded: f32[4,3] = matmul(@fc2.weight: f32[4,5], @fc1.weight: f32[5,3])

Nodes reference a derived parameter like any other (``@fc2.weight.folded: f32[4,3]``).
The reference interpreter evaluates derived parameters with NumPy (:func:`evaluate`)
before simulating, the JAX lowering with ``jax.numpy`` at the start of every call, so
gradients flow back to the user's parameters through the derivation.

Every function of :data:`DERIVED_FUNCTIONS` has a type rule (checked by the verifier) and
a NumPy implementation; the lowering keeps a ``jax.numpy`` twin of each, and a test checks
that both tables cover the same names and agree. Arguments carry their types (they are
:class:`~spikejit.ir.types.ParamRef`), so a user parameter that only a derivation reads
still has a declared type.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spikejit.errors import SpikejitError
from spikejit.ir.types import NUMPY_DTYPE_NAMES, ParamRef, TensorType

Shape = tuple[int, ...]
Attrs = Mapping[str, Any]


class DerivedTypeError(SpikejitError):
    """The arguments of a derived function do not fit its type rule (a bare reason)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class DerivedParam:
    """A parameter computed from other parameters: ``name = fn(*args) {attrs}``.

    Attributes:
        name: The new parameter's name (never a user parameter's name).
        type: Its declared type; must equal what ``fn``'s type rule gives.
        fn: A key of :data:`DERIVED_FUNCTIONS`.
        args: The parameters it reads: user parameters or derived parameters listed
            earlier in ``Graph.derived`` (so derivations never form a cycle).
        attrs: Static arguments of ``fn`` as sorted ``(key, value)`` pairs, e.g.
            ``(("axis", 1),)``.
    """

    name: str
    type: TensorType
    fn: str
    args: tuple[ParamRef, ...]
    attrs: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpikejitError(f"derived parameter: name {self.name!r} must be a non-empty "
                                f"string")
        if not isinstance(self.type, TensorType):
            raise SpikejitError(f"derived parameter @{self.name}: type must be a TensorType")
        if not isinstance(self.fn, str):
            raise SpikejitError(f"derived parameter @{self.name}: fn must be a string")
        object.__setattr__(self, "args", tuple(self.args))
        for a in self.args:
            if not isinstance(a, ParamRef):
                raise SpikejitError(f"derived parameter @{self.name}: arguments must be "
                                    f"parameter references (@name: type), got {a!r}")
        attrs = dict(self.attrs)
        if len(attrs) != len(tuple(self.attrs)):
            raise SpikejitError(f"derived parameter @{self.name}: an attribute is given twice")
        # Sorted and hashable: equal derivations compare and hash equal.
        object.__setattr__(self, "attrs", tuple(sorted((str(k), _frozen(v))
                                                      for k, v in attrs.items())))

    @property
    def ref(self) -> ParamRef:
        """The reference a node uses to read this parameter."""
        return ParamRef(self.name, self.type)

    def attr(self, key: str) -> Any:
        """The value of one static attribute (``KeyError`` if absent)."""
        return dict(self.attrs)[key]


def _frozen(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


@dataclass(frozen=True)
class DerivedFunction:
    """One entry of :data:`DERIVED_FUNCTIONS`.

    Attributes:
        name: The printed name (``matmul``).
        formula: The definition, for docs and error messages.
        arity: Number of arguments (``None``: one or more).
        attrs: Names of the required static attributes.
        shape_rule: ``(arg shapes, attrs) -> result shape``; raises
            :class:`DerivedTypeError` with a reason when the arguments do not fit.
        numpy: ``(arg arrays, attrs) -> array``, the reference implementation.
    """

    name: str
    formula: str
    arity: int | None
    attrs: tuple[str, ...]
    shape_rule: Callable[[Sequence[Shape], Attrs], Shape]
    numpy: Callable[[Sequence[np.ndarray], Attrs], np.ndarray]


# -- type rules ----------------------------------------------------------------------------
def _broadcast(shapes: Iterable[Shape]) -> Shape:
    """NumPy's broadcast of shapes (pure Python: ``np.broadcast_shapes`` is slow enough
    to show up in the verifier's profile)."""
    shapes = tuple(shapes)
    rank = max((len(s) for s in shapes), default=0)
    out = [1] * rank
    for s in shapes:
        for i, d in enumerate(s, rank - len(s)):
            if d != 1:
                if out[i] not in (1, d):
                    raise DerivedTypeError(f"shapes {', '.join(str(list(x)) for x in shapes)}"
                                           f" do not broadcast together")
                out[i] = d
    return tuple(out)


def _elementwise_rule(shapes: Sequence[Shape], attrs: Attrs) -> Shape:
    return _broadcast(shapes)


def _int_attr(attrs: Attrs, key: str) -> int:
    value = attrs[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise DerivedTypeError(f"attribute {key!r} must be an integer, got {value!r}")
    return value


def _shape_attr(attrs: Attrs) -> Shape:
    value = attrs["shape"]
    if not isinstance(value, tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value):
        raise DerivedTypeError(f"attribute 'shape' must be a list of integers >= 0, "
                               f"got {value!r}")
    return value


def _broadcast_rule(shapes: Sequence[Shape], attrs: Attrs) -> Shape:
    (a,) = shapes
    target = _shape_attr(attrs)
    if _broadcast((a, target)) != target:
        raise DerivedTypeError(f"shape {list(a)} does not broadcast to {list(target)}")
    return target


def _matmul_rule(shapes: Sequence[Shape], attrs: Attrs) -> Shape:
    a, b = shapes
    if len(a) != 2 or len(b) != 2 or a[1] != b[0]:
        raise DerivedTypeError(f"matmul needs [m, k] and [k, n] matrices, got {list(a)} and "
                               f"{list(b)}")
    return (a[0], b[1])


def _matvec_rule(shapes: Sequence[Shape], attrs: Attrs) -> Shape:
    w, v = shapes
    if len(w) != 2:
        raise DerivedTypeError(f"matvec needs an [m, k] matrix, got {list(w)}")
    if _broadcast((v, w[1:])) != w[1:]:
        raise DerivedTypeError(f"vector {list(v)} does not broadcast to [{w[1]}]")
    return (w[0],)


def _scale_axis_rule(shapes: Sequence[Shape], attrs: Attrs) -> Shape:
    a, s = shapes
    axis = _int_attr(attrs, "axis")
    if not 0 <= axis < len(a):
        raise DerivedTypeError(f"axis {axis} is not an axis of shape {list(a)}")
    if math.prod(s) not in (1, a[axis]) or sum(d != 1 for d in s) > 1:
        raise DerivedTypeError(f"scale {list(s)} must hold 1 or {a[axis]} values along one "
                               f"axis (other axes of length 1)")
    return a


def _concat_rule(shapes: Sequence[Shape], attrs: Attrs) -> Shape:
    axis = _int_attr(attrs, "axis")
    first = shapes[0]
    if not 0 <= axis < len(first):
        raise DerivedTypeError(f"axis {axis} is not an axis of shape {list(first)}")
    for s in shapes[1:]:
        if len(s) != len(first) or any(x != y for i, (x, y) in enumerate(zip(s, first, strict=True))
                                        if i != axis):
            raise DerivedTypeError(f"shapes {list(first)} and {list(s)} differ outside "
                                   f"axis {axis}")
    return (*first[:axis], sum(s[axis] for s in shapes), *first[axis + 1:])


# -- NumPy implementations -------------------------------------------------------------------
def _scale_axis_np(args: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    a, s = args
    axis = attrs["axis"]
    shape = [1] * a.ndim
    shape[axis] = s.size
    return a * s.reshape(shape)


def _matvec_np(args: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    w, v = args
    return w @ np.broadcast_to(v, w.shape[1:])


DERIVED_FUNCTIONS: dict[str, DerivedFunction] = {
    f.name: f
    for f in (
        DerivedFunction("mul", "a * b (elementwise, NumPy broadcasting)", 2, (),
                        _elementwise_rule, lambda x, k: x[0] * x[1]),
        DerivedFunction("add", "a + b (elementwise, NumPy broadcasting)", 2, (),
                        _elementwise_rule, lambda x, k: x[0] + x[1]),
        DerivedFunction("broadcast", "broadcast_to(a, shape)", 1, ("shape",),
                        _broadcast_rule, lambda x, k: np.broadcast_to(x[0], k["shape"]).copy()),
        DerivedFunction("matmul", "a @ b for matrices a [m, k] and b [k, n]", 2, (),
                        _matmul_rule, lambda x, k: x[0] @ x[1]),
        DerivedFunction("matvec", "w @ broadcast_to(v, [k]) for a matrix w [m, k]", 2, (),
                        _matvec_rule, _matvec_np),
        DerivedFunction("scale_axis", "a * s laid along axis `axis` of a (s holds 1 or "
                        "a.shape[axis] values; e.g. axis 0 of a weight scales its rows, "
                        "axis 1 its columns)", 2, ("axis",), _scale_axis_rule, _scale_axis_np),
        DerivedFunction("concat", "concatenate(args, axis)", None, ("axis",), _concat_rule,
                        lambda x, k: np.concatenate(x, axis=k["axis"])),
    )
}


def derived_type(fn: str, args: Sequence[ParamRef], attrs: Attrs) -> TensorType:
    """The result type of ``fn(*args) {attrs}``; :class:`DerivedTypeError` if it has none.

    All arguments must share one dtype, which the result keeps.
    """
    spec = DERIVED_FUNCTIONS.get(fn)
    if spec is None:
        raise DerivedTypeError(f"unknown function {fn!r}; known: "
                               f"{', '.join(sorted(DERIVED_FUNCTIONS))}")
    if spec.arity is not None and len(args) != spec.arity:
        raise DerivedTypeError(f"{fn} takes {spec.arity} argument(s), got {len(args)}")
    if not args:
        raise DerivedTypeError(f"{fn} needs at least one argument")
    missing = [k for k in spec.attrs if k not in attrs]
    extra = [k for k in attrs if k not in spec.attrs]
    if missing or extra:
        raise DerivedTypeError(f"{fn} takes attribute(s) {list(spec.attrs)}, got "
                               f"{sorted(attrs)}")
    dtypes = {a.type.dtype for a in args}
    if len(dtypes) != 1:
        raise DerivedTypeError(f"arguments have different dtypes {sorted(dtypes)}")
    shape = spec.shape_rule(tuple(a.type.shape for a in args), attrs)
    return TensorType(shape, args[0].type.dtype)


def make_derived(name: str, fn: str, args: Sequence[ParamRef], **attrs: Any) -> DerivedParam:
    """A derived parameter whose type is computed by ``fn``'s type rule."""
    frozen = {k: _frozen(v) for k, v in attrs.items()}
    return DerivedParam(name, derived_type(fn, args, frozen), fn, tuple(args),
                        tuple(frozen.items()))


def evaluate(derived: Sequence[DerivedParam], params: Mapping[str, Any],
             dtype: Any = None) -> dict[str, np.ndarray]:
    """The user's params plus every derived parameter, computed with NumPy in order.

    Args:
        derived: ``Graph.derived`` (each entry reads only user params or earlier entries).
        params: The user's params ``{name: array}``.
        dtype: If given, user arrays are cast to it first and every derivation runs in it
            (the interpreter passes its computation dtype); otherwise each derived array
            is cast to its declared dtype.

    Returns:
        A new dict ``{name: np.ndarray}``.
    """
    out: dict[str, np.ndarray] = {}
    for name, value in params.items():
        arr = np.asarray(value)
        out[name] = arr.astype(dtype) if dtype is not None else arr
    for d in derived:
        spec = DERIVED_FUNCTIONS[d.fn]
        value = spec.numpy([out[a.name] for a in d.args], dict(d.attrs))
        if dtype is None and d.type.dtype != "bf16":  # bf16 stays in its argument's dtype
            value = value.astype(NUMPY_DTYPE_NAMES[d.type.dtype])
        out[d.name] = np.asarray(value)
    return out
