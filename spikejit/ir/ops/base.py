"""The abstract op: a frozen dataclass of validated attributes with a type rule.

Concrete ops (one per primitive) subclass :class:`Op`, set ``mnemonic`` and declare their
attributes as dataclass fields. Fields holding :class:`ParamRef` are parameters (arrays that
live in the params pytree); every other field is a static attribute printed inline.
An op knows nothing about nodes or graphs: :meth:`Op.infer_type` maps the (summed) input
type to the output type and raises :class:`OpError` with a bare reason, which the caller
(shape inference, verifier, parser) turns into an error that names the node.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from spikejit.errors import AttributeError_, SpikejitError
from spikejit.ir.types import ParamRef, TensorType, broadcastable


class OpError(SpikejitError):
    """A bare type/attribute problem of an op; re-raised with node context by callers."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, kw_only=True)
class Op:
    """Base class of every IR op. Subclasses are final: wrap them, do not override them."""

    #: ``dialect.name`` as printed, e.g. ``snn.lif``.
    mnemonic: ClassVar[str] = ""
    #: How the compiler treats the op: ``io``, ``synapse`` (stateless, linear in its input),
    #: ``structural`` (stateless reshaping/pooling), ``neuron`` (stateful), ``delay``.
    category: ClassVar[str] = ""
    #: Names of the per-element state variables, in a fixed order (e.g. ``("i", "v")``).
    state_vars: ClassVar[tuple[str, ...]] = ()
    #: Whether the op emits 0/1 spikes.
    spiking: ClassVar[bool] = False
    #: Whether the op reads ``dt`` (ops with time constants or integration).
    uses_dt: ClassVar[bool] = False
    #: Minimum and maximum number of operands (``None`` = unbounded; fan-in is summed).
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = None

    # Facts every op class must state (no default here: :func:`missing_facts` names what a
    # class forgot, and registering it fails). Passes, the NIR frontend and exporter, and
    # the lowering read them; no other table lists ops by hand.
    #: The NIR primitive this op imports from and exports to (``"LIF"``), or ``None``.
    nir_kind: ClassVar[str | None]
    #: Every parameter broadcasts elementwise to the layer shape (canonicalisation
    #: materialises those broadcasts and folds scales through such ops).
    elementwise: ClassVar[bool]
    #: The state variables a parallel-in-time scan may solve (linear recurrences
    #: ``s[t] = a*s[t-1] + b``), in the order they can be solved one after the other.
    linear_states: ClassVar[tuple[str, ...]]
    #: Role in the ``fuse-synapse-neuron`` pass: ``"synapse"``, ``"neuron"`` or ``None``.
    fusion: ClassVar[str | None]

    def __post_init__(self) -> None:
        for f in _fields(type(self)):
            value = getattr(self, f.name)
            if not _is_param_field(f) or isinstance(value, ParamRef):
                continue
            if value is None and f.default is dataclasses.MISSING:
                self._fail(f"parameter {f.name!r} is required (@name: type), got None")
            if value is not None:
                self._fail(f"attribute {f.name!r} must be a parameter reference (@name: type)"
                           f" or omitted, got {value!r}")
        self.validate()

    # -- hooks for subclasses --------------------------------------------------------
    def validate(self) -> None:
        """Check static attributes; raise via :meth:`_fail`. Called on construction."""

    def infer_type(self, in_type: TensorType | None) -> TensorType:
        """The output type given the summed input type (``None`` for ops without inputs)."""
        raise NotImplementedError(type(self).__name__)

    def depends_same_step(self) -> bool:
        """Whether the output at step t reads the input at step t (False for pure delays)."""
        return True

    # -- generic helpers ------------------------------------------------------------
    def params(self) -> Iterator[tuple[str, ParamRef]]:
        """(field name, reference) for every parameter the op holds, in field order."""
        for name in _field_names(type(self))[0]:
            value = getattr(self, name)
            if isinstance(value, ParamRef):
                yield name, value

    def param_fields(self) -> tuple[str, ...]:
        """Names of all parameter fields (set or not)."""
        return _field_names(type(self))[1]

    def attributes(self) -> list[tuple[str, Any]]:
        """(name, value) of every field that differs from its default, in field order."""
        out = []
        for f in _fields(type(self)):
            value = getattr(self, f.name)
            if f.default is not dataclasses.MISSING and value == f.default and type(value) is type(
                f.default
            ):
                continue
            out.append((f.name, value))
        return out

    def replace(self, **changes: Any) -> Op:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def _fail(self, reason: str) -> None:
        raise AttributeError_(reason, op_name=self.mnemonic)

    # -- shared checks --------------------------------------------------------------
    def _check_broadcast(self, field: str, layer: tuple[int, ...]) -> None:
        ref = getattr(self, field)
        if ref is not None and not broadcastable(ref.type.shape, layer):
            raise OpError(
                f"parameter {field} @{ref.name} has shape {list(ref.type.shape)}, "
                f"which does not broadcast to the layer shape {list(layer)}"
            )

    def _require_input(self, in_type: TensorType | None) -> TensorType:
        if in_type is None:
            raise OpError("has no input")
        return in_type


@dataclass(frozen=True, kw_only=True)
class SelectableOutputNeuron(Op):
    """Base of neuron families whose ``output`` attribute picks what the node emits:
    ``"spikes"`` or one of :meth:`output_modes` (biophysical and user-defined neurons)."""

    category: ClassVar[str] = "neuron"
    spiking: ClassVar[bool] = True
    uses_dt: ClassVar[bool] = True
    nir_kind: ClassVar[str | None] = None
    elementwise: ClassVar[bool] = False
    linear_states: ClassVar[tuple[str, ...]] = ()
    fusion: ClassVar[str | None] = None

    def output_modes(self) -> tuple[str, ...]:
        """The accepted values of the ``output`` attribute."""
        raise NotImplementedError(type(self).__name__)

    def validate(self) -> None:
        output = getattr(self, "output", None)
        allowed = self.output_modes()
        if output not in allowed:
            self._fail(f"attribute 'output' must be one of {', '.join(map(repr, allowed))}, "
                       f"got {output!r}")

    def infer_type(self, in_type: TensorType | None) -> TensorType:
        x = self._require_input(in_type)
        for name in self.param_fields():
            self._check_broadcast(name, x.shape)
        return TensorType(x.shape, x.dtype, getattr(self, "output", None) == "spikes")


#: The class facts without a default on :class:`Op`, with the values each may take.
OP_FACTS: dict[str, str] = {
    "nir_kind": "a NIR primitive name or None",
    "elementwise": "True or False",
    "linear_states": "a tuple of state variable names",
    "fusion": "'synapse', 'neuron' or None",
}
FUSION_ROLES: tuple[str | None, ...] = ("synapse", "neuron", None)


def missing_facts(cls: type[Op]) -> list[str]:
    """What ``cls`` fails to state or states wrongly (empty for a complete op class)."""
    problems = [f"{name} ({what})" for name, what in OP_FACTS.items() if not hasattr(cls, name)]
    if problems:
        return problems
    if not cls.mnemonic or "." not in cls.mnemonic:
        problems.append("mnemonic ('dialect.name')")
    if not cls.category:
        problems.append("category")
    if cls.fusion not in FUSION_ROLES:
        problems.append(f"fusion ({OP_FACTS['fusion']}), got {cls.fusion!r}")
    if not set(cls.linear_states) <= set(cls.state_vars):
        problems.append(f"linear_states {cls.linear_states} (a subset of state_vars "
                        f"{cls.state_vars})")
    if cls.fusion == "neuron" and cls.category != "neuron":
        problems.append("fusion 'neuron' needs category 'neuron'")
    return problems


def _is_param_field(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata.get("param"))


_FIELDS: dict[type, tuple[dataclasses.Field[Any], ...]] = {}
_FIELD_NAMES: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _fields(cls: type[Op]) -> tuple[dataclasses.Field[Any], ...]:
    """``dataclasses.fields(cls)``, computed once per op class (it rebuilds its tuple on
    every call, and ops are built and asked for their parameters per node)."""
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = _FIELDS[cls] = dataclasses.fields(cls)
    return fields


def _field_names(cls: type[Op]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(every field, the parameter fields)`` of an op class, by name in field order."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        fields = _fields(cls)
        names = _FIELD_NAMES[cls] = (tuple(f.name for f in fields),
                                     tuple(f.name for f in fields if _is_param_field(f)))
    return names


def param(*, optional: bool = False) -> Any:
    """Declare a parameter field (a :class:`ParamRef`, or ``None`` when optional)."""
    if optional:
        return dataclasses.field(default=None, metadata={"param": True})
    return dataclasses.field(metadata={"param": True})


def int_tuple(op: Op, name: str, value: Any, length: int, *, minimum: int) -> tuple[int, ...]:
    """Normalise an int or sequence of ints to a tuple of ``length`` ints >= ``minimum``."""
    if isinstance(value, bool):
        op._fail(f"attribute {name!r} must be an integer or a list of {length} integers")
    if isinstance(value, int):
        value = (value,) * length
    if not isinstance(value, tuple | list) or len(value) != length:
        op._fail(f"attribute {name!r} must be an integer or a list of {length} integers, "
                 f"got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            op._fail(f"attribute {name!r} must hold integers >= {minimum}, got {list(value)}")
        out.append(int(v))
    return tuple(out)


def set_field(op: Op, name: str, value: Any) -> None:
    """Normalise a field of a frozen op during validation."""
    object.__setattr__(op, name, value)


def prod(shape: tuple[int, ...]) -> int:
    """Number of elements of a shape."""
    return math.prod(shape)
