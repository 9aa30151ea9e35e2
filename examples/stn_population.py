"""A population of subthalamic nucleus (STN) neurons written with ``spikejit.define_neuron``.

The STN model of Terman, Rubin, Yew & Wilson (2002, J. Neurosci. 22:2963), with the
parameters of Rubin & Terman (2004, J. Comput. Neurosci. 16:211): a Hodgkin-Huxley type
neuron with six ionic currents and intracellular calcium::

    C dv/dt = -I_L - I_K - I_Na - I_T - I_Ca - I_AHP + i_bias + x
    I_L   = g_l (v - e_l)                       leak
    I_K   = g_k n^4 (v - e_k)                   delayed-rectifier potassium
    I_Na  = g_na m_inf(v)^3 h (v - e_na)        sodium (instantaneous activation)
    I_T   = g_t a_inf(v)^3 b_inf(r)^2 (v - e_ca)  low-threshold (T-type) calcium
    I_Ca  = g_ca s_inf(v)^2 (v - e_ca)          high-threshold calcium
    I_AHP = g_ahp (v - e_k) ca / (ca + k1)      calcium-activated potassium
    dq/dt = phi_q (q_inf(v) - q) / tau_q(v)     for q in h, n, r
    dca/dt = eps (-I_Ca - I_T - k_ca ca)

with ``X_inf(v) = 1/(1 + exp(-(v - theta_X)/sigma_X))``,
``tau_X(v) = tau0_X + tau1_X/(1 + exp(-(v - theta_tau_X)/sigma_tau_X))`` and
``b_inf(r) = 1/(1 + exp((r - 0.4)/0.1)) - 1/(1 + exp(-0.4/0.1))``. Units: mV, ms,
conductances nS/um^2, capacitance pF/um^2, currents (also the input ``x``) pA/um^2.

The cell fires spontaneously at a few Hz and answers the release from hyperpolarisation
(inhibition from the globus pallidus, here a current pulse) with a rebound burst carried
by ``I_T``. The example simulates a heterogeneous population (a per-neuron bias current),
reports the spontaneous rate and the rebound burst, and checks the compiled model against
the NumPy reference interpreter on a short window.

Run: ``python examples/stn_population.py --neurons 200 --ms 1500``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

import spikejit

#: Rubin & Terman (2004), STN: conductances nS/um^2, potentials mV, time constants ms.
STN_PARAMS: dict[str, float] = {
    "c_m": 1.0, "g_l": 2.25, "g_k": 45.0, "g_na": 37.5, "g_t": 0.5, "g_ca": 0.5,
    "g_ahp": 9.0, "e_l": -60.0, "e_k": -80.0, "e_na": 55.0, "e_ca": 140.0, "k1": 15.0,
    "k_ca": 22.5, "eps": 5e-5, "phi_h": 0.75, "phi_n": 0.75, "phi_r": 0.5, "i_bias": 0.0,
    "v_spike": -20.0,
}
#: The resting reference the zero state stands for: v = -60 mV, gates at steady state.
V_REF = -60.0
DT = 1e-5  # s (0.01 ms)


def _inf(xp: Any, v: Any, theta: float, sigma: float) -> Any:
    return 1.0 / (1.0 + xp.exp(-(v - theta) / sigma))


def _tau(xp: Any, v: Any, tau0: float, tau1: float, theta: float, sigma: float) -> Any:
    return tau0 + tau1 / (1.0 + xp.exp(-(v - theta) / sigma))


def _b_inf(xp: Any, r: Any) -> Any:
    return 1.0 / (1.0 + xp.exp((r - 0.4) / 0.1)) - 1.0 / (1.0 + np.exp(-0.4 / 0.1))


def stn_update(xp: Any, s: dict[str, Any], p: dict[str, Any], x: Any, h: Any) -> dict:
    """One explicit Euler step of the STN equations (module docstring); ``h`` in ms."""
    v, hh, n, r, ca = s["v"], s["h"], s["n"], s["r"], s["ca"]
    i_l = p["g_l"] * (v - p["e_l"])
    i_k = p["g_k"] * n**4 * (v - p["e_k"])
    i_na = p["g_na"] * _inf(xp, v, -30.0, 15.0) ** 3 * hh * (v - p["e_na"])
    i_t = p["g_t"] * _inf(xp, v, -63.0, 7.8) ** 3 * _b_inf(xp, r) ** 2 * (v - p["e_ca"])
    i_ca = p["g_ca"] * _inf(xp, v, -39.0, 8.0) ** 2 * (v - p["e_ca"])
    i_ahp = p["g_ahp"] * (v - p["e_k"]) * ca / (ca + p["k1"])
    dv = (-i_l - i_k - i_na - i_t - i_ca - i_ahp + p["i_bias"] + x) / p["c_m"]
    dh = p["phi_h"] * (_inf(xp, v, -39.0, -3.1) - hh) / _tau(xp, v, 1.0, 500.0, -57.0, -3.0)
    dn = p["phi_n"] * (_inf(xp, v, -32.0, 8.0) - n) / _tau(xp, v, 1.0, 100.0, -80.0, -26.0)
    dr = p["phi_r"] * (_inf(xp, v, -67.0, -2.0) - r) / _tau(xp, v, 40.0, 17.5, 68.0, -2.2)
    dca = p["eps"] * (-i_ca - i_t - p["k_ca"] * ca)
    return {"v": v + h * dv, "h": hh + h * dh, "n": n + h * dn, "r": r + h * dr,
            "ca": ca + h * dca}


def define_stn() -> type:
    """Register ``user.stn`` (redefining it if it exists) and return the op class."""
    return spikejit.define_neuron(
        "stn",
        state={"v": V_REF,
               "h": lambda xp, p: _inf(xp, xp.asarray(V_REF), -39.0, -3.1),
               "n": lambda xp, p: _inf(xp, xp.asarray(V_REF), -32.0, 8.0),
               "r": lambda xp, p: _inf(xp, xp.asarray(V_REF), -67.0, -2.0),
               "ca": 0.1},
        params=STN_PARAMS,
        update=stn_update,
        spike=lambda xp, s, p: s["v"] - p["v_spike"],
        spike_on="crossing",
        doc="Subthalamic nucleus neuron (Terman et al. 2002; Rubin & Terman 2004).",
    )


def build_population(n: int, seed: int = 0) -> tuple[spikejit.Graph, dict[str, np.ndarray]]:
    """``n`` STN neurons, each with its own bias current in [-0.5, 0.5] pA/um^2."""
    bias = np.random.default_rng(seed).uniform(-0.5, 0.5, n)
    b = spikejit.GraphBuilder("stn_population", dt=DT)
    b.input("i_syn", shape=(n,))
    b.add("stn", "user.stn", inputs=["i_syn"], i_bias=bias)
    return b.output("spikes", "stn").build()


def pulse_input(n: int, duration_ms: float, pulse_ms: tuple[float, float],
                amplitude: float) -> np.ndarray:
    """``[T, 1, n]``: a hyperpolarising step (pA/um^2) during ``pulse_ms``, zero elsewhere."""
    t_ms = np.arange(round(duration_ms * 1e-3 / DT)) * DT * 1e3
    on = (t_ms >= pulse_ms[0]) & (t_ms < pulse_ms[1])
    return np.broadcast_to(np.where(on, amplitude, 0.0)[:, None, None], (len(t_ms), 1, n)) \
        .astype(np.float32)


def main(neurons: int = 100, duration_ms: float = 1500.0,
         pulse_ms: tuple[float, float] = (500.0, 800.0), amplitude: float = -25.0,
         check_ms: float = 50.0, verbose: bool = True) -> dict[str, float]:
    """Simulate, summarise and check against the oracle; returns the numbers it prints."""
    define_stn()
    graph, params = build_population(neurons)
    model = spikejit.compile((graph, params))
    x = pulse_input(neurons, duration_ms, pulse_ms, amplitude)
    start = time.perf_counter()
    z = np.asarray(model(x))[:, 0, :]
    seconds = time.perf_counter() - start
    t_ms = np.arange(len(z)) * DT * 1e3
    before = z[t_ms < pulse_ms[0]].sum(axis=0) / (pulse_ms[0] * 1e-3)
    during = z[(t_ms >= pulse_ms[0]) & (t_ms < pulse_ms[1])].sum()
    rebound = z[(t_ms >= pulse_ms[1]) & (t_ms < pulse_ms[1] + 100.0)].sum(axis=0)
    # The oracle on a short window and a few neurons: same spikes, same membrane.
    k = round(check_ms * 1e-3 / DT)
    small_graph, small_params = build_population(min(neurons, 3))
    small_x = pulse_input(min(neurons, 3), check_ms, (10.0, 30.0), amplitude)[:k]
    want, want_tr = spikejit.interpret(small_graph, small_params, small_x, trace=["stn"],
                                       dtype=np.float32)
    got, got_tr = spikejit.compile((small_graph, small_params))(small_x, trace=["stn"])
    v_error = float(np.max(np.abs(np.asarray(got_tr["stn"]["v"]) - want_tr["stn"]["v"])))
    summary = {
        "spontaneous_rate_hz": float(before.mean()),
        "spikes_during_pulse": float(during),
        "rebound_spikes_per_neuron": float(rebound.mean()),
        "seconds": seconds,
        "oracle_spikes_equal": float(np.array_equal(np.asarray(got), want)),
        "oracle_max_v_error_mv": v_error,
    }
    if verbose:
        steps = len(z)
        print(f"{neurons} STN neurons, {duration_ms:g} ms ({steps} steps of {DT * 1e3:g} ms) "
              f"in {seconds:.2f} s ({seconds / steps * 1e6:.1f} us/step, incl. first-call "
              f"compilation)")
        print(f"spontaneous rate {summary['spontaneous_rate_hz']:.1f} Hz; "
              f"{during:g} spikes during the {amplitude:g} pA/um^2 pulse; "
              f"{summary['rebound_spikes_per_neuron']:.1f} rebound spikes per neuron in the "
              f"100 ms after release")
        print(f"oracle check ({check_ms:g} ms, 3 neurons): spikes equal = "
              f"{bool(summary['oracle_spikes_equal'])}, max |dv| = {v_error:.2e} mV")
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=100)
    parser.add_argument("--ms", type=float, default=1500.0)
    args = parser.parse_args()
    main(args.neurons, args.ms)
