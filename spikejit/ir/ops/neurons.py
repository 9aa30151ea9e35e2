"""Neuron ops: stateful integrators and spiking neurons, and the stateless threshold.

Dynamics are ``nir-euler-v1``: one explicit Euler step of size ``h = dt`` (a graph
attribute) driven by the summed input ``x[t]``, then the output for step ``t``. All state
starts at 0. Spikes are strict (``v > v_threshold``). On a spike the membrane is reset by
the graph's ``reset`` attribute, unless the node overrides it:

* ``value``:    ``v = v_reset`` where ``z`` (NIR's meaning; ``v_reset`` defaults to 0),
* ``subtract``: ``v = v - v_threshold * z``,
* ``none``:     no reset.

Omitted optional parameters take NIR's neutral values: ``r = 1``, ``v_leak = 0``,
``v_reset = 0``, ``w_in = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

from spikejit.ir.ops.base import Op, param
from spikejit.ir.types import ParamRef, TensorType

RESET_MODES: tuple[str, ...] = ("value", "subtract", "none")

#: Values of omitted optional neuron parameters.
PARAM_DEFAULTS: dict[str, float] = {"r": 1.0, "v_leak": 0.0, "v_reset": 0.0, "w_in": 1.0}


@dataclass(frozen=True, kw_only=True)
class _Neuron(Op):
    category: ClassVar[str] = "neuron"
    uses_dt: ClassVar[bool] = True
    elementwise: ClassVar[bool] = True
    fusion: ClassVar[str | None] = 'neuron'

    def infer_type(self, in_type: TensorType | None) -> TensorType:
        x = self._require_input(in_type)
        for name in self.param_fields():
            self._check_broadcast(name, x.shape)
        return TensorType(x.shape, x.dtype, self.spiking)


@dataclass(frozen=True, kw_only=True)
class _Spiking(_Neuron):
    spiking: ClassVar[bool] = True

    def validate(self) -> None:
        reset = getattr(self, "reset", None)
        if reset is not None and reset not in RESET_MODES:
            self._fail(f"attribute 'reset' must be one of {', '.join(map(repr, RESET_MODES))} "
                       f"or omitted (graph default), got {reset!r}")


@final
@dataclass(frozen=True, kw_only=True)
class Threshold(Op):
    r"""Threshold (NIR ``Threshold``): ``z[t] = x[t] > threshold``; stateless."""

    mnemonic: ClassVar[str] = "snn.threshold"
    category: ClassVar[str] = "neuron"
    spiking: ClassVar[bool] = True
    nir_kind: ClassVar[str | None] = 'Threshold'
    elementwise: ClassVar[bool] = True
    linear_states: ClassVar[tuple[str, ...]] = ()
    fusion: ClassVar[str | None] = None

    threshold: ParamRef = param()

    def infer_type(self, in_type: TensorType | None) -> TensorType:
        x = self._require_input(in_type)
        self._check_broadcast("threshold", x.shape)
        return TensorType(x.shape, x.dtype, True)


@final
@dataclass(frozen=True, kw_only=True)
class Integrator(_Neuron):
    r"""Integrator (NIR ``I``): ``v += h*r*x``; output ``v``. State: ``v``."""

    mnemonic: ClassVar[str] = "snn.i"
    state_vars: ClassVar[tuple[str, ...]] = ("v",)
    nir_kind: ClassVar[str | None] = 'I'
    linear_states: ClassVar[tuple[str, ...]] = ('v',)

    r: ParamRef | None = param(optional=True)


@final
@dataclass(frozen=True, kw_only=True)
class IF(_Spiking):
    r"""Integrate-and-fire (NIR ``IF``).

    ``v += h*r*x``; ``z = v > v_threshold``; reset where ``z``; output ``z``. State: ``v``.
    """

    mnemonic: ClassVar[str] = "snn.if"
    state_vars: ClassVar[tuple[str, ...]] = ("v",)
    nir_kind: ClassVar[str | None] = 'IF'
    linear_states: ClassVar[tuple[str, ...]] = ()

    v_threshold: ParamRef = param()
    r: ParamRef | None = param(optional=True)
    v_reset: ParamRef | None = param(optional=True)
    reset: str | None = None


@final
@dataclass(frozen=True, kw_only=True)
class LI(_Neuron):
    r"""Leaky integrator (NIR ``LI``): ``v += h/tau*(v_leak - v + r*x)``; output ``v``.

    State: ``v``.
    """

    mnemonic: ClassVar[str] = "snn.li"
    state_vars: ClassVar[tuple[str, ...]] = ("v",)
    nir_kind: ClassVar[str | None] = 'LI'
    linear_states: ClassVar[tuple[str, ...]] = ('v',)

    tau: ParamRef = param()
    r: ParamRef | None = param(optional=True)
    v_leak: ParamRef | None = param(optional=True)


@final
@dataclass(frozen=True, kw_only=True)
class LIF(_Spiking):
    r"""Leaky integrate-and-fire (NIR ``LIF``).

    ``v += h/tau*(v_leak - v + r*x)``; ``z = v > v_threshold``; reset where ``z``;
    output ``z``. State: ``v``.
    """

    mnemonic: ClassVar[str] = "snn.lif"
    state_vars: ClassVar[tuple[str, ...]] = ("v",)
    nir_kind: ClassVar[str | None] = 'LIF'
    linear_states: ClassVar[tuple[str, ...]] = ()

    tau: ParamRef = param()
    v_threshold: ParamRef = param()
    r: ParamRef | None = param(optional=True)
    v_leak: ParamRef | None = param(optional=True)
    v_reset: ParamRef | None = param(optional=True)
    reset: str | None = None


@final
@dataclass(frozen=True, kw_only=True)
class CubaLI(_Neuron):
    r"""Current-based leaky integrator (NIR ``CubaLI``).

    ``I_new = I + h/tau_syn*(-I + w_in*x)``; then with the graph's ``cuba_current``:
    ``post`` (default) ``v += h/tau_mem*(v_leak - v + r*I_new)``, ``pre``
    ``v += h/tau_mem*(v_leak - v + r*I)``; ``I = I_new``; output ``v``. State: ``i``, ``v``.
    """

    mnemonic: ClassVar[str] = "snn.cuba_li"
    state_vars: ClassVar[tuple[str, ...]] = ("i", "v")
    nir_kind: ClassVar[str | None] = 'CubaLI'
    linear_states: ClassVar[tuple[str, ...]] = ('i', 'v')

    tau_syn: ParamRef = param()
    tau_mem: ParamRef = param()
    r: ParamRef | None = param(optional=True)
    v_leak: ParamRef | None = param(optional=True)
    w_in: ParamRef | None = param(optional=True)


@final
@dataclass(frozen=True, kw_only=True)
class CubaLIF(_Spiking):
    r"""Current-based leaky integrate-and-fire (NIR ``CubaLIF``).

    As ``snn.cuba_li``, then ``z = v > v_threshold``; the membrane is reset where ``z``
    (the current ``I`` is never reset); output ``z``. State: ``i``, ``v``.
    """

    mnemonic: ClassVar[str] = "snn.cuba_lif"
    state_vars: ClassVar[tuple[str, ...]] = ("i", "v")
    nir_kind: ClassVar[str | None] = 'CubaLIF'
    linear_states: ClassVar[tuple[str, ...]] = ('i',)

    tau_syn: ParamRef = param()
    tau_mem: ParamRef = param()
    v_threshold: ParamRef = param()
    r: ParamRef | None = param(optional=True)
    v_leak: ParamRef | None = param(optional=True)
    v_reset: ParamRef | None = param(optional=True)
    w_in: ParamRef | None = param(optional=True)
    reset: str | None = None


@final
@dataclass(frozen=True, kw_only=True)
class ALIF(_Spiking):
    r"""Adaptive-threshold leaky integrate-and-fire (LSNN, Bellec et al. 2018); not in NIR.

    The LIF fields plus ``tau_adapt`` (the adaptation's time constant) and ``beta`` (how
    much one unit of adaptation raises the threshold). Per step, with ``h = dt``:
    ``a += h/tau_adapt*(-a)`` (``method = exp``: ``a *= exp(-h/tau_adapt)``); ``v`` as
    ``snn.lif``; ``z = v > v_threshold + beta*a`` (updated ``v`` and ``a``); where ``z``:
    the reset of ``v`` (``value``: ``v = v_reset``; ``subtract``: ``v -= v_threshold +
    beta*a``, the threshold that was crossed) and ``a += 1``; output ``z``. State: ``v``,
    ``a``.
    """

    mnemonic: ClassVar[str] = "snn.alif"
    nir_kind: ClassVar[str | None] = None
    state_vars: ClassVar[tuple[str, ...]] = ("v", "a")
    linear_states: ClassVar[tuple[str, ...]] = ()

    tau: ParamRef = param()
    v_threshold: ParamRef = param()
    tau_adapt: ParamRef = param()
    beta: ParamRef = param()
    r: ParamRef | None = param(optional=True)
    v_leak: ParamRef | None = param(optional=True)
    v_reset: ParamRef | None = param(optional=True)
    reset: str | None = None


__all__ = ["ALIF", "IF", "LI", "LIF", "CubaLI", "CubaLIF", "Integrator", "Threshold"]
