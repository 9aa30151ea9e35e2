"""bio.izhikevich presets reproduce their firing classes; bio.adex adapts; lowering = oracle."""

from __future__ import annotations

import numpy as np
import pytest

import spikejit
from spikejit.ir import interpret, parse, print_graph
from spikejit.ir.ops.biophysical import IZHIKEVICH_PRESETS

PRESETS = ("RS", "FS", "CH", "IB", "LTS")


def _izhikevich(presets: tuple[str, ...], **fields: object) -> tuple[spikejit.Graph, dict]:
    b = spikejit.GraphBuilder("izh")
    b.input("x", shape=(1,))
    for name in presets:
        b.add(name, "bio.izhikevich", inputs=["x"], preset=name, **fields)
        b.output(f"y_{name}", name)
    return b.build()


def _isi(z: np.ndarray, dt_ms: float) -> np.ndarray:
    return np.diff(np.nonzero(z)[0]) * dt_ms


@pytest.fixture(scope="module")
def izhikevich_runs() -> dict[str, dict[str, np.ndarray]]:
    """500 ms of I = 10 at the default dt (0.1 ms): oracle (float64) and compiled (float32)."""
    graph, params = _izhikevich(PRESETS)
    assert graph.attrs.dt == 1e-4
    x = np.full((5000, 1, 1), 10.0)
    oracle = interpret(graph, params, x)
    compiled = spikejit.compile((graph, params))(x.astype(np.float32))
    return {"oracle": {k[2:]: v[:, 0, 0] for k, v in oracle.items()},
            "compiled": {k[2:]: np.asarray(v)[:, 0, 0] for k, v in compiled.items()}}


@pytest.mark.parametrize("run", ["oracle", "compiled"])
def test_izhikevich_presets_reproduce_their_firing_classes(
        izhikevich_runs: dict[str, dict[str, np.ndarray]], run: str) -> None:
    z = izhikevich_runs[run]
    counts = {k: int(v.sum()) for k, v in z.items()}
    # Spike counts in the 500 ms window (Izhikevich 2003, Fig. 2 regimes; a dt = 0.01 ms
    # run gives RS 12, FS 68, CH 47, IB 18, LTS 41).
    assert 10 <= counts["RS"] <= 14
    assert 60 <= counts["FS"] <= 72
    assert 42 <= counts["CH"] <= 52
    assert 16 <= counts["IB"] <= 20
    assert 36 <= counts["LTS"] <= 44
    rs, fs, ch, ib = (_isi(z[k], 0.1) for k in ("RS", "FS", "CH", "IB"))
    # RS: tonic spiking with adaptation (the first interval is the shortest).
    assert rs[0] < 0.7 * rs[-1] and np.ptp(rs[2:]) < 1.0
    # FS: high-frequency tonic spiking without late adaptation.
    assert fs[-10:].mean() < 10.0 and np.ptp(fs[-10:]) < 1.0
    # CH: bursts of fast spikes (< 10 ms apart) separated by long pauses (> 30 ms).
    short, long_ = (ch < 10.0).sum(), (ch > 30.0).sum()
    assert short >= 0.7 * len(ch) and long_ >= 5 and short / long_ >= 4
    # IB: an initial burst, then regular spiking.
    assert ib[:2].max() < 10.0 and ib[3:].min() > 25.0


def test_izhikevich_preset_and_explicit_parameters_agree() -> None:
    graph, params = _izhikevich(("FS",))
    fs = IZHIKEVICH_PRESETS["FS"]
    b = spikejit.GraphBuilder("izh").input("x", shape=(1,))
    b.add("FS", "bio.izhikevich", inputs=["x"], **fs).output("y_FS", "FS")
    explicit, explicit_params = b.build()
    assert 'preset = "FS"' in print_graph(graph) and parse(print_graph(graph)) == graph
    x = np.full((2000, 1, 1), 10.0)
    # float32: the preset's constants and the explicit f32 parameters are the same numbers.
    np.testing.assert_array_equal(interpret(graph, params, x, dtype=np.float32),
                                  interpret(explicit, explicit_params, x, dtype=np.float32))


def _adex(currents: np.ndarray, **fields: object) -> tuple[spikejit.Graph, dict]:
    b = spikejit.GraphBuilder("adex")
    b.input("x", shape=(len(currents),)).add("n", "bio.adex", inputs=["x"], **fields)
    return b.output("y", "n").build()


@pytest.mark.parametrize("run", ["oracle", "compiled"])
def test_adex_adapts(run: str) -> None:
    currents = np.array([500.0, 800.0, 1000.0])  # pA; rheobase of the defaults is in between
    graph, params = _adex(currents)
    x = np.broadcast_to(currents, (5000, 1, 3))
    if run == "oracle":
        z = interpret(graph, params, x)[:, 0]
    else:
        z = np.asarray(spikejit.compile((graph, params))(x.astype(np.float32)))[:, 0]
    assert z[:, 0].sum() == 0
    for k in (1, 2):
        isi = _isi(z[:, k], 0.1)
        assert len(isi) >= 7
        # Spike-frequency adaptation: intervals grow, to more than twice the first.
        assert np.all(np.diff(isi) > -0.5) and isi[-1] > 2.0 * isi[0]


@pytest.mark.parametrize("schedule", ["auto", "stepwise"])
def test_adex_and_izhikevich_compiled_match_the_oracle(schedule: str) -> None:
    rng = np.random.default_rng(3)
    b = spikejit.GraphBuilder("net")
    b.input("x", shape=(3,))
    b.add("fc", "nn.linear", inputs=["x"], weight=rng.uniform(500, 1500, (4, 3)))
    b.add("adex", "bio.adex", inputs=["fc", ("rec", 1)], b=rng.uniform(40, 120, 4))
    b.add("w", "nn.linear", inputs=["adex"], weight=rng.uniform(0, 300, (4, 4)))
    b.add("izh", "bio.izhikevich", inputs=["w"], preset="CH", d=np.full(4, 3.0))
    b.add("probe", "bio.izhikevich", inputs=["w"], output="v")
    b.add("rec", "nn.scale", inputs=["izh"], scale=np.full(4, 300.0))
    b.output("spikes", "adex").output("bursts", "izh").output("v", "probe")
    graph, params = b.build()
    x = (rng.random((3000, 2, 3)) < 0.5).astype(np.float32)
    want = interpret(graph, params, x, dtype=np.float32)
    got = spikejit.compile((graph, params), schedule=schedule)(x)
    assert want["spikes"].sum() > 10 and want["bursts"].sum() > 10
    for key in ("spikes", "bursts"):
        np.testing.assert_array_equal(np.asarray(got[key]), want[key])
    # The quadratic upstroke amplifies float32 rounding differences (XLA fuses into FMAs).
    np.testing.assert_allclose(np.asarray(got["v"]), want["v"], rtol=5e-3, atol=1e-2)


def test_reset_gradients_respect_detach_reset() -> None:
    import jax

    graph, params = _izhikevich(("RS",), d=np.array([8.0]))
    x = np.full((3000, 1, 1), 10.0, np.float32)
    grads = {}
    for detach in (True, False):
        model = spikejit.compile((graph, params), detach_reset=detach)
        grads[detach] = jax.grad(lambda p, m=model: m.apply(p, x).sum())(model.params)["RS.d"]
    assert np.all(np.isfinite(grads[True])) and np.all(np.isfinite(grads[False]))
    assert np.any(np.asarray(grads[True]) != np.asarray(grads[False]))


def test_default_param_init_uses_the_ops_own_defaults() -> None:
    from spikejit.ir.init import init_params

    graph, _ = _izhikevich(("FS",), a=0.5, v_peak=25.0)
    b = spikejit.GraphBuilder("g").input("x", shape=(2,))
    b.add("hh", "bio.hh", inputs=["x"], c_m=2.0, v_threshold=-10.0).output("y", "hh")
    hh_graph, _ = b.build()
    init = init_params(graph)
    assert init["FS.a"] == np.float32(0.1) and init["FS.v_peak"] == np.float32(30.0)
    init = init_params(hh_graph)
    assert init["hh.c_m"] == np.float32(1.0) and init["hh.v_threshold"] == np.float32(0.0)
