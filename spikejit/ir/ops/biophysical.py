r"""Biophysical neuron ops: Hodgkin-Huxley, adaptive exponential (AdEx) and Izhikevich.

These neurons are written in the units of their literature, not in NIR's unit-free form:
membrane potentials in mV and time in ms. The graph attribute ``dt`` stays in **seconds**
like everywhere else in spikejit; the rules convert it to the step ``s = 1000*dt`` in ms.
The input ``x[t]`` is the summed synaptic input of step ``t`` (fan-in is summed, as for
every neuron), held constant over the step; its unit is op specific (see each op).

Integration is explicit Euler of every state variable with step ``h``, driven by ``x[t]``,
followed by the spike test and (AdEx, Izhikevich) the reset. The graph attributes ``reset``,
``cuba_current`` and ``method`` concern the NIR neurons and do not change these ops.

**State is stored relative to rest.** spikejit's convention is that a simulation starts
from an all-zero state. A zero membrane is unphysical for these models, so each op defines
a *reference state* (the resting point) and the state arrays hold the deviation from it:
``state["v"] = V - V_ref`` and likewise for the other variables. An all-zero state is
therefore the neuron at rest, traces of state variables are deviations, and the reference
interpreter and the JAX lowering use the same convention. Outputs are absolute (spikes, or
``V`` in mV with ``output="v"``).

Every parameter is optional: an omitted one takes the documented default (a Python
constant, not an entry of the params dict). Give a parameter to make it trainable or to
vary it per neuron (any shape that broadcasts to the layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, final

from spikejit.ir.ops.base import Op, SelectableOutputNeuron, param
from spikejit.ir.types import ParamRef

#: Values of the ``output`` attribute: emit 0/1 spikes or the membrane potential in mV.
OUTPUT_MODES: tuple[str, ...] = ("spikes", "v")

#: Classic squid giant axon (Hodgkin & Huxley 1952) in the modern sign convention, resting
#: near -65 mV (as in Gerstner et al., *Neuronal Dynamics*, and Brian2's HH example).
HH_DEFAULTS: dict[str, float] = {
    "c_m": 1.0,          # uF/cm^2
    "g_na": 120.0,       # mS/cm^2
    "g_k": 36.0,         # mS/cm^2
    "g_l": 0.3,          # mS/cm^2
    "e_na": 50.0,        # mV
    "e_k": -77.0,        # mV
    "e_l": -54.387,      # mV
    "v_threshold": 0.0,  # mV, spike = upward crossing
    "v_rest": -65.0,     # mV, reference state (gates at their steady state there)
}

#: Brette & Gerstner (2005), J. Neurophysiol. 94:3637, Table 1.
ADEX_DEFAULTS: dict[str, float] = {
    "c_m": 281.0,      # pF
    "g_l": 30.0,       # nS
    "e_l": -70.6,      # mV
    "v_t": -50.4,      # mV
    "delta_t": 2.0,    # mV
    "tau_w": 144.0,    # ms
    "a": 4.0,          # nS
    "b": 80.5,         # pA
    "v_reset": -70.6,  # mV
    "v_peak": 20.0,    # mV
}

#: Izhikevich (2003), IEEE Trans. Neural Netw. 14:1569, Fig. 2: the (a, b, c, d) of each
#: firing class. ``RS`` regular spiking, ``FS`` fast spiking, ``CH`` chattering (bursting),
#: ``IB`` intrinsically bursting, ``LTS`` low-threshold spiking.
IZHIKEVICH_PRESETS: dict[str, dict[str, float]] = {
    "RS": {"a": 0.02, "b": 0.2, "c": -65.0, "d": 8.0},
    "FS": {"a": 0.1, "b": 0.2, "c": -65.0, "d": 2.0},
    "CH": {"a": 0.02, "b": 0.2, "c": -50.0, "d": 2.0},
    "IB": {"a": 0.02, "b": 0.2, "c": -55.0, "d": 4.0},
    "LTS": {"a": 0.02, "b": 0.25, "c": -65.0, "d": 2.0},
}

#: Izhikevich parameters that do not depend on the preset.
IZHIKEVICH_DEFAULTS: dict[str, float] = {"v_peak": 30.0, "v_init": -65.0}

#: Recommended time steps in seconds (the accuracy the tests check is stated in
#: ``docs/neurons.md``). ``GraphBuilder`` uses the smallest one of a graph when no ``dt``
#: is given.
DEFAULT_DT: dict[str, float] = {"bio.hh": 1e-5, "bio.adex": 1e-4, "bio.izhikevich": 1e-4}


@dataclass(frozen=True, kw_only=True)
class _Biophysical(SelectableOutputNeuron):
    #: Recommended ``dt`` in seconds.
    default_dt: ClassVar[float] = 1e-4

    # NOTE: every subclass declares ``output: str = "spikes"`` as its last field, so that
    # it prints after the parameters.

    def output_modes(self) -> tuple[str, ...]:
        return OUTPUT_MODES

    def defaults(self) -> dict[str, float]:
        """The value of every parameter field that is omitted."""
        raise NotImplementedError(type(self).__name__)


@final
@dataclass(frozen=True, kw_only=True)
class HodgkinHuxley(_Biophysical):
    r"""Hodgkin-Huxley neuron (squid giant axon, 1952), one compartment.

    Units: ``V`` mV, time ms, ``c_m`` uF/cm^2, conductances mS/cm^2, input ``x`` a current
    density in uA/cm^2 (positive depolarises). With the step ``s = 1000*dt`` in ms::

        I_ion = g_na*m^3*h*(V - e_na) + g_k*n^4*(V - e_k) + g_l*(V - e_l)
        V    += s/c_m*(x - I_ion)
        q    += s*(alpha_q(V)*(1 - q) - beta_q(V)*q)        for q in m, h, n
        z     = (V_new > v_threshold) and not (V_old > v_threshold)

    (all right-hand sides use the values before the step), with the rates in 1/ms::

        alpha_m = 0.1*(V+40)/(1 - exp(-(V+40)/10))   beta_m = 4*exp(-(V+65)/18)
        alpha_h = 0.07*exp(-(V+65)/20)               beta_h = 1/(1 + exp(-(V+35)/10))
        alpha_n = 0.01*(V+55)/(1 - exp(-(V+55)/10))  beta_n = 0.125*exp(-(V+65)/80)

    (the removable singularities at ``V = -40`` and ``-55`` take their limits). A spike is
    an upward crossing of ``v_threshold``; there is no reset, the channels repolarise.
    Output: spikes, or ``V`` in mV with ``output="v"``.

    State ``v, m, h, n``, stored relative to rest: ``V - v_rest`` and each gate minus its
    steady state ``alpha/(alpha + beta)`` at ``v_rest``, so the zero state is the resting
    neuron. Defaults (``HH_DEFAULTS``): ``c_m = 1``, ``g_na = 120``, ``g_k = 36``,
    ``g_l = 0.3``, ``e_na = 50``, ``e_k = -77``, ``e_l = -54.387``, ``v_threshold = 0``,
    ``v_rest = -65``. Recommended ``dt = 1e-5`` s (0.01 ms).
    """

    mnemonic: ClassVar[str] = "bio.hh"
    state_vars: ClassVar[tuple[str, ...]] = ("v", "m", "h", "n")
    default_dt: ClassVar[float] = DEFAULT_DT["bio.hh"]

    c_m: ParamRef | None = param(optional=True)
    g_na: ParamRef | None = param(optional=True)
    g_k: ParamRef | None = param(optional=True)
    g_l: ParamRef | None = param(optional=True)
    e_na: ParamRef | None = param(optional=True)
    e_k: ParamRef | None = param(optional=True)
    e_l: ParamRef | None = param(optional=True)
    v_threshold: ParamRef | None = param(optional=True)
    v_rest: ParamRef | None = param(optional=True)
    output: str = "spikes"

    def defaults(self) -> dict[str, float]:
        return dict(HH_DEFAULTS)


@final
@dataclass(frozen=True, kw_only=True)
class AdEx(_Biophysical):
    r"""Adaptive exponential integrate-and-fire neuron (Brette & Gerstner 2005).

    Units: ``V`` mV, time ms, ``c_m`` pF, conductances nS, ``w`` and ``b`` and the input
    ``x`` in pA (nS*mV = pA, pF*mV/ms = pA). With the step ``s = 1000*dt`` in ms::

        V += s/c_m*(-g_l*(V - e_l) + g_l*delta_t*exp((min(V, v_peak) - v_t)/delta_t) - w + x)
        w += s/tau_w*(a*(V_old - e_l) - w)
        z  = V > v_peak;   where z: V = v_reset, w += b

    (right-hand sides use the values before the step). Clamping the exponent at
    ``v_peak`` changes nothing below the peak and keeps the update finite. Output: spikes,
    or ``V`` (after the reset) with ``output="v"``.

    State ``v, w``, stored relative to rest: ``V - e_l`` and ``w`` (whose rest is 0).
    Defaults (``ADEX_DEFAULTS``, Brette & Gerstner's Table 1): ``c_m = 281``,
    ``g_l = 30``, ``e_l = -70.6``, ``v_t = -50.4``, ``delta_t = 2``, ``tau_w = 144``,
    ``a = 4``, ``b = 80.5``, ``v_reset = -70.6``, ``v_peak = 20``. Recommended
    ``dt = 1e-4`` s (0.1 ms).
    """

    mnemonic: ClassVar[str] = "bio.adex"
    state_vars: ClassVar[tuple[str, ...]] = ("v", "w")
    default_dt: ClassVar[float] = DEFAULT_DT["bio.adex"]

    c_m: ParamRef | None = param(optional=True)
    g_l: ParamRef | None = param(optional=True)
    e_l: ParamRef | None = param(optional=True)
    v_t: ParamRef | None = param(optional=True)
    delta_t: ParamRef | None = param(optional=True)
    tau_w: ParamRef | None = param(optional=True)
    a: ParamRef | None = param(optional=True)
    b: ParamRef | None = param(optional=True)
    v_reset: ParamRef | None = param(optional=True)
    v_peak: ParamRef | None = param(optional=True)
    output: str = "spikes"

    def defaults(self) -> dict[str, float]:
        return dict(ADEX_DEFAULTS)


@final
@dataclass(frozen=True, kw_only=True)
class Izhikevich(_Biophysical):
    r"""Izhikevich simple model (2003).

    Units: ``V`` mV, time ms; the input ``x`` is in the model's own current unit (it adds
    to ``dV/dt`` in mV/ms, as ``I`` in Izhikevich's paper). With the step
    ``s = 1000*dt`` in ms::

        V += s*(0.04*V^2 + 5*V + 140 - u + x)
        u += s*a*(b*V_old - u)
        z  = V > v_peak;   where z: V = c, u += d

    (right-hand sides use the values before the step; Izhikevich's own code tests
    ``V >= 30``, spikejit's spike test is strict everywhere). Output: spikes, or ``V``
    (after the reset) with ``output="v"``.

    ``preset`` picks the defaults of omitted ``a, b, c, d`` from ``IZHIKEVICH_PRESETS``:
    ``"RS"`` regular spiking (0.02, 0.2, -65, 8, the default), ``"FS"`` fast spiking
    (0.1, 0.2, -65, 2), ``"CH"`` chattering (0.02, 0.2, -50, 2), ``"IB"`` intrinsically
    bursting (0.02, 0.2, -55, 4), ``"LTS"`` low-threshold spiking (0.02, 0.25, -65, 2).
    Other defaults: ``v_peak = 30``, ``v_init = -65``.

    State ``v, u``, stored relative to the reference point Izhikevich starts from:
    ``V - v_init`` and ``u - b*v_init``. Recommended ``dt = 1e-4`` s (0.1 ms).
    """

    mnemonic: ClassVar[str] = "bio.izhikevich"
    state_vars: ClassVar[tuple[str, ...]] = ("v", "u")
    default_dt: ClassVar[float] = DEFAULT_DT["bio.izhikevich"]

    a: ParamRef | None = param(optional=True)
    b: ParamRef | None = param(optional=True)
    c: ParamRef | None = param(optional=True)
    d: ParamRef | None = param(optional=True)
    v_peak: ParamRef | None = param(optional=True)
    v_init: ParamRef | None = param(optional=True)
    preset: str = "RS"
    output: str = "spikes"

    def validate(self) -> None:
        super().validate()
        if self.preset not in IZHIKEVICH_PRESETS:
            self._fail(f"attribute 'preset' must be one of "
                       f"{', '.join(map(repr, IZHIKEVICH_PRESETS))}, got {self.preset!r}")

    def defaults(self) -> dict[str, float]:
        return {**IZHIKEVICH_PRESETS[self.preset], **IZHIKEVICH_DEFAULTS}


BIOPHYSICAL_OPS: tuple[type[Op], ...] = (HodgkinHuxley, AdEx, Izhikevich)

__all__ = [
    "ADEX_DEFAULTS",
    "BIOPHYSICAL_OPS",
    "DEFAULT_DT",
    "HH_DEFAULTS",
    "IZHIKEVICH_DEFAULTS",
    "IZHIKEVICH_PRESETS",
    "OUTPUT_MODES",
    "AdEx",
    "HodgkinHuxley",
    "Izhikevich",
]
