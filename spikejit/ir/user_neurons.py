r"""User-defined neuron ops: declare the equations in Python, get a full IR op.

:func:`define_neuron` turns a declaration (state variables with their reference values,
parameters with defaults, a per-step update, a spike condition and a reset) into a new op
class ``user.<name>``, registered in the op registry (so the printer and parser know it
and the verifier types it). Its interpreter rule (here) and its lowering rule (in
:mod:`spikejit.lowering.biophysical`, because this module must stay JAX-free) are each one
rule for the family :class:`UserNeuron`: they cover every ``user.*`` op while it is
registered, so defining or removing one touches no rule table.

**One update function, two array libraries.** The interpreter is the NumPy oracle and may
not import JAX; the lowering must trace JAX. So the user's functions take the array
namespace as their first argument, ``xp``: the interpreter calls them with ``numpy``, the
lowering with ``jax.numpy``. Writing ``xp.exp(v)`` instead of ``jnp.exp(v)`` is the only
price, and the same function then runs in both, which is what makes the oracle comparison
meaningful. Functions must be pure, elementwise and use only what both namespaces share
(``exp``, ``log``, ``tanh``, ``where``, ``minimum``, ``clip``, arithmetic, ...).

The step semantics (documented in the generated op's docstring and ``docs/neurons.md``)::

    S      = stored + ref                     # absolute state (stored = deviation)
    S_new  = update(xp, S, p, x, h)           # one step, h = dt / time_unit
    z      = H(spike(xp, S_new, p))           # spike where the condition is > 0
             [* (1 - H(spike(xp, S, p)))]     # spike_on="crossing": upward crossings only
    S_new  = where(z, reset(xp, S_new, p), S_new)   # for the variables reset returns
    y      = z (output="spikes") or S_new[output]
    stored = S_new - ref

In the lowering, ``H`` is spikejit's spike primitive, so gradients flow through the
surrogate derivative of the spike condition and (unless ``detach_reset``) through the reset.
Nothing here reads code from a file: a saved graph names ``user.<name>``, and loading it
works only in a process that has defined that neuron.
"""

from __future__ import annotations

import dataclasses
import keyword
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from spikejit.errors import IRError, OptionError
from spikejit.ir.interp_context import INTERPRETER_RULES, Operand, Result, State, StepContext
from spikejit.ir.ops import OPS, Op, register_op
from spikejit.ir.ops.base import SelectableOutputNeuron, param
from spikejit.ir.types import ParamRef

#: ``xp, state, params -> array`` (a spike condition) or ``-> dict`` (a reset).
StateFn = Callable[[Any, Mapping[str, Any], Mapping[str, Any]], Any]
#: ``xp, state, params, x, h -> dict`` (the update).
UpdateFn = Callable[[Any, Mapping[str, Any], Mapping[str, Any], Any, Any], Mapping[str, Any]]
#: A reference value: a number, or ``xp, params -> array``.
RefValue = float | Callable[[Any, Mapping[str, Any]], Any]

SPIKE_MODES: tuple[str, ...] = ("level", "crossing")
_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
#: Names the state layout or the op class already use.
_RESERVED_STATE = frozenset({"out", "buffer", "history", "spikes"})
_RESERVED_PARAMS = frozenset({"output", *dir(Op)})

@dataclass(frozen=True)
class NeuronSpec:
    """Everything :func:`define_neuron` was given (held by the op class as ``spec``)."""

    name: str
    state: tuple[tuple[str, RefValue], ...]
    params: tuple[tuple[str, float], ...]
    update: UpdateFn
    spike: StateFn
    reset: StateFn | None
    spike_on: str
    time_unit: float

    def reference(self, xp: Any, p: Mapping[str, Any]) -> dict[str, Any]:
        """The reference (resting) value of every state variable, given the parameters."""
        return {k: (v(xp, p) if callable(v) else v) for k, v in self.state}


@dataclass(frozen=True, kw_only=True)
class UserNeuron(SelectableOutputNeuron):
    """Base of the classes :func:`define_neuron` makes (not an op itself)."""

    spec: ClassVar[NeuronSpec]

    def output_modes(self) -> tuple[str, ...]:
        return ("spikes", *self.state_vars)

    def defaults(self) -> dict[str, float]:
        """The value of every parameter field that is omitted."""
        return dict(self.spec.params)


def _check_name(kind: str, name: Any, reserved: frozenset[str] = frozenset()) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or keyword.iskeyword(name):
        raise OptionError(f"define_neuron: {kind} name {name!r} must be a lowercase Python "
                          f"identifier ([a-z_][a-z0-9_]*)")
    if name in reserved:
        raise OptionError(f"define_neuron: {kind} name {name!r} is reserved; avoid "
                          f"{', '.join(sorted(n for n in reserved if not n.startswith('_')))}")
    return name


def _docstring(spec: NeuronSpec, doc: str) -> str:
    def where(fn: Callable[..., Any] | None) -> str:
        if fn is None:
            return "none"
        return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"

    summary = (doc.strip().splitlines() or [""])[0].rstrip(".") or \
        f"User-defined neuron {spec.name}"
    state = ", ".join(f"``{k}`` (reference {'computed from the parameters' if callable(v) else v})"
                      for k, v in spec.state)
    params = ", ".join(f"``{k} = {v!r}``" for k, v in spec.params) or "none"
    crossing = " and was not > 0 before the step" if spec.spike_on == "crossing" else ""
    return (f"{summary} (user-defined neuron ``user.{spec.name}``).\n\n"
            f"Defined in Python with ``spikejit.define_neuron``; one step with "
            f"``h = dt / {spec.time_unit!r}``::\n\n"
            f"    S_new = update(xp, S, p, x, h)         # {where(spec.update)}\n"
            f"    z = spike(xp, S_new, p) > 0{crossing}  # {where(spec.spike)}\n"
            f"    where z: S_new = reset(xp, S_new, p)   # {where(spec.reset)}\n\n"
            f"State (stored relative to its reference): {state}. Parameter defaults: "
            f"{params}. Output: spikes, or the state variable named by ``output``.\n")


def define_neuron(
    name: str,
    *,
    state: Mapping[str, RefValue],
    params: Mapping[str, float],
    update: UpdateFn,
    spike: StateFn,
    reset: StateFn | None = None,
    spike_on: str = "level",
    output: str = "spikes",
    time_unit: float = 1e-3,
    doc: str = "",
) -> type[UserNeuron]:
    """Declare a neuron model and register the op ``user.<name>`` for it.

    Args:
        name: The op is ``user.<name>`` (a lowercase identifier). Defining a name again
            replaces the registry entry; graphs built with the old class keep working.
        state: State variable -> its reference (resting) value: a number, or a function
            ``(xp, params) -> array``. The stored state is the deviation from it, so the
            all-zero initial state is the neuron at its reference point.
        params: Parameter -> default value. Each becomes an optional parameter field:
            omitted, it is this constant; given, an array that broadcasts to the layer.
        update: ``(xp, state, params, x, h) -> {var: new value}`` for every state
            variable: one step with the absolute state, the summed input ``x`` and the
            step ``h`` in ``time_unit``.
        spike: ``(xp, state, params) -> condition``: a spike where the condition is > 0
            (e.g. ``state["v"] - params["v_th"]``); its surrogate derivative drives the
            gradients.
        reset: ``(xp, state, params) -> {var: value}`` applied where a spike occurred, for
            the variables it returns; ``None`` for no reset (e.g. Hodgkin-Huxley types).
        spike_on: ``"level"`` (spike whenever the condition holds after the step) or
            ``"crossing"`` (only when it did not hold before the step).
        output: The default of the op's ``output`` attribute: ``"spikes"`` or a state
            variable name (then the op emits that variable, absolute, after the reset).
        time_unit: Seconds per unit of ``h`` (default ms): ``h = dt / time_unit``.
        doc: A description; its first line becomes the op's summary.

    Returns:
        The op class, usable like any op (``GraphBuilder.add(id, "user.<name>", ...)``).

    Raises:
        OptionError: a malformed declaration.
    """
    _check_name("neuron", name)
    if not isinstance(state, Mapping) or not state:
        raise OptionError("define_neuron: state must be a non-empty dict var -> reference value")
    for var, ref in state.items():
        _check_name("state variable", var, _RESERVED_STATE)
        if not callable(ref) and not isinstance(ref, int | float):
            raise OptionError(f"define_neuron: the reference value of state variable {var!r} "
                              f"must be a number or a function (xp, params) -> array")
    if not isinstance(params, Mapping):
        raise OptionError("define_neuron: params must be a dict name -> default value")
    for pname, default in params.items():
        _check_name("parameter", pname, _RESERVED_PARAMS)
        if isinstance(default, bool) or not isinstance(default, int | float):
            raise OptionError(f"define_neuron: the default of parameter {pname!r} must be a "
                              f"number, got {default!r}")
    for what, fn in (("update", update), ("spike", spike)):
        if not callable(fn):
            raise OptionError(f"define_neuron: {what} must be a function")
    if reset is not None and not callable(reset):
        raise OptionError("define_neuron: reset must be a function or None")
    if spike_on not in SPIKE_MODES:
        raise OptionError(f"define_neuron: spike_on must be one of "
                          f"{', '.join(map(repr, SPIKE_MODES))}, got {spike_on!r}")
    if output != "spikes" and output not in state:
        raise OptionError(f"define_neuron: output must be 'spikes' or a state variable, "
                          f"got {output!r}")
    if isinstance(time_unit, bool) or not isinstance(time_unit, int | float) or not (
            math.isfinite(time_unit) and time_unit > 0):
        raise OptionError(f"define_neuron: time_unit must be a number > 0, got {time_unit!r}")

    spec = NeuronSpec(name, tuple(state.items()), tuple((k, float(v)) for k, v in params.items()),
                      update, spike, reset, spike_on, float(time_unit))
    fields: list[tuple[str, Any, Any]] = [(k, ParamRef | None, param(optional=True))
                                          for k in params]
    fields.append(("output", str, dataclasses.field(default=output)))
    cls_name = "User_" + name
    namespace = {"mnemonic": f"user.{name}", "state_vars": tuple(state), "spec": spec,
                 "__doc__": _docstring(spec, doc), "__module__": __name__}
    cls = dataclasses.make_dataclass(cls_name, fields, bases=(UserNeuron,), frozen=True,
                                     kw_only=True, namespace=namespace)
    register_op(cls)
    return cls


def undefine_neuron(name: str) -> None:
    """Remove ``user.<name>`` from the registries (for notebooks and tests)."""
    cls = OPS.get(f"user.{name}")
    if cls is None or not issubclass(cls, UserNeuron):
        raise OptionError(f"undefine_neuron: no user-defined neuron user.{name}")
    del OPS[cls.mnemonic]


def user_neurons() -> dict[str, type[UserNeuron]]:
    """The user-defined neuron classes currently registered, by mnemonic."""
    return {k: v for k, v in OPS.items() if isinstance(v, type) and issubclass(v, UserNeuron)}


def call_user(node_id: str, op: Op, what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call one of the user's functions; an exception it raises is re-raised as an
    :class:`IRError` naming the node (the original is chained)."""
    try:
        return fn(*args)
    except IRError:
        raise
    except Exception as e:
        raise IRError(f"the {what} function raised {type(e).__name__}: {e}", node_id=node_id,
                      op_name=op.mnemonic) from e


def checked_update(node_id: str, op: Op, new: Any, shape: tuple[int, ...],
                   broadcast: Callable[[Any, tuple[int, ...]], Any], *,
                   what: str = "update", partial: bool = False) -> dict[str, Any]:
    """The dict returned by a user function, checked and broadcast to the state shape."""
    names = op.state_vars
    if not isinstance(new, Mapping):
        raise IRError(f"the {what} function must return a dict of state variables, got "
                      f"{type(new).__name__}", node_id=node_id, op_name=op.mnemonic)
    unknown = sorted(set(new) - set(names))
    missing = [] if partial else [k for k in names if k not in new]
    if unknown or missing:
        parts = ([f"missing {', '.join(map(repr, missing))}"] if missing else []) + (
            [f"unknown {', '.join(map(repr, unknown))}"] if unknown else [])
        raise IRError(f"the {what} function returned {'; '.join(parts)} (state variables: "
                      f"{', '.join(map(repr, names))})", node_id=node_id, op_name=op.mnemonic)
    return {k: broadcast(new[k], shape) for k in names if k in new}


def _interpret_user(ctx: StepContext, x: Operand, state: State) -> Result:
    """The reference rule of every user neuron: the module docstring's step with numpy."""
    assert x is not None
    op = ctx.node.op
    assert isinstance(op, UserNeuron)
    spec, dtype = op.spec, ctx.dtype
    defaults = op.defaults()
    p = {k: np.asarray(ctx.p[k] if getattr(op, k) is not None else defaults[k], dtype=dtype)
         for k in op.param_fields()}
    shape = x.shape

    def cast(value: Any, shp: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(np.asarray(value, dtype=dtype), shp)

    nid = ctx.node.id
    ref = {k: cast(v, shape) for k, v in
           call_user(nid, op, "reference", spec.reference, np, p).items()}
    s = {k: state[k] + ref[k] for k in op.state_vars}
    h = (ctx.h / dtype.type(spec.time_unit)).astype(dtype)
    new = checked_update(nid, op, call_user(nid, op, "update", spec.update, np, s, p, x, h),
                         shape, cast)
    z = (cast(call_user(nid, op, "spike", spec.spike, np, new, p), shape) > 0).astype(dtype)
    if spec.spike_on == "crossing":
        before = cast(call_user(nid, op, "spike", spec.spike, np, s, p), shape)
        z = z * (1 - (before > 0).astype(dtype))
    if spec.reset is not None:
        after = checked_update(nid, op, call_user(nid, op, "reset", spec.reset, np, new, p),
                               shape, cast, what="reset", partial=True)
        new = {**new, **{k: np.where(z > 0, v, new[k]) for k, v in after.items()}}
    output = op.output  # type: ignore[attr-defined]
    y = z if output == "spikes" else new[output]
    return y.astype(dtype), {k: (new[k] - ref[k]).astype(dtype) for k in op.state_vars}


INTERPRETER_RULES.define_family(UserNeuron, _interpret_user)

__all__ = [
    "SPIKE_MODES",
    "NeuronSpec",
    "UserNeuron",
    "define_neuron",
    "undefine_neuron",
    "user_neurons",
]
