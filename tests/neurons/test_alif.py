"""snn.alif (adaptive-threshold LIF, the worked example of docs/adding-an-op.md): the
interpreter against a hand-written loop, every schedule and the fused layer against the
interpreter, and gradients against the same neuron written with define_neuron."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
import pytest

import spikejit
from spikejit.ir import interpret, parse, print_graph
from spikejit.ir.ops import OPS

DT = 1e-3
T, B, N_IN, N = 120, 2, 3, 4


def network(neuron: str = "snn.alif", recurrent: bool = False, **fields: Any,
            ) -> tuple[spikejit.Graph, dict]:
    rng = np.random.default_rng(0)
    b = spikejit.GraphBuilder("net", dt=DT)
    b.input("x", shape=(N_IN,))
    b.add("fc", "nn.linear", inputs=["x"], weight=rng.uniform(0, 2, (N, N_IN)))
    inputs: list[Any] = ["fc", ("rec", 1)] if recurrent else ["fc"]
    b.add("n", neuron, inputs=inputs, **fields)
    if recurrent:
        b.add("rec", "nn.linear", inputs=["n"], weight=rng.uniform(-0.5, 0.5, (N, N)))
    return b.output("y", "n").build()


FIELDS = {"tau": np.full(N, 0.01), "v_threshold": np.full(N, 0.5),
          "tau_adapt": np.linspace(0.02, 0.08, N), "beta": np.full(N, 0.3)}


def spikes() -> np.ndarray:
    return (np.random.default_rng(1).random((T, B, N_IN)) < 0.3).astype(np.float32)


def reference(x: np.ndarray, w: np.ndarray, reset: str) -> np.ndarray:
    """The op's docstring, step by step, in float64."""
    tau, th, tau_a, beta = (FIELDS[k] for k in ("tau", "v_threshold", "tau_adapt", "beta"))
    v = np.zeros((B, N))
    a = np.zeros((B, N))
    out = []
    for t in range(T):
        a = a + DT / tau_a * (-a)
        v = v + DT / tau * (0.0 - v + x[t] @ w.T)
        threshold = th + beta * a
        z = (v > threshold).astype(float)
        v = np.where(z > 0, 0.0, v) if reset == "value" else v - threshold * z
        a = a + z
        out.append(z)
    return np.stack(out)


@pytest.mark.parametrize("reset", ["value", "subtract"])
def test_interpreter_follows_the_docstring(reset: str) -> None:
    graph, params = network(**FIELDS)
    graph = graph.replace(attrs=graph.attrs.__class__(dt=DT, reset=reset))
    want = reference(spikes().astype(float), params["fc.weight"].astype(float), reset)
    got = interpret(graph, params, spikes())
    np.testing.assert_array_equal(got, want)
    assert 10 < want.sum() < want.size / 2  # adaptation keeps rates moderate
    plain = network("snn.lif", tau=FIELDS["tau"], v_threshold=FIELDS["v_threshold"])
    plain = (plain[0].replace(attrs=graph.attrs), plain[1])
    assert interpret(*plain, spikes()).sum() > want.sum()  # ... below plain LIF's


def test_text_form_round_trips() -> None:
    graph, _ = network(**FIELDS)
    text = print_graph(graph)
    assert "snn.alif" in text
    assert print_graph(parse(text)) == text


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("opt", ["O0", "O2"])
@pytest.mark.parametrize("schedule", ["auto", "stepwise"])
def test_every_schedule_matches_the_interpreter(recurrent: bool, opt: str, schedule: str) -> None:
    graph, params = network(recurrent=recurrent, **FIELDS)
    model = spikejit.compile((graph, params), passes=opt, schedule=schedule)
    if opt == "O2" and not recurrent:
        assert "layer.linear_alif" in print_graph(model.graph)  # fused where LIF fuses
    want = interpret(graph, params, spikes(), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(model(spikes())), want)


@pytest.fixture
def user_alif() -> Iterator[None]:
    """snn.alif written with define_neuron: an independent lowering to compare gradients."""
    spikejit.define_neuron(
        "ualif", state={"v": 0.0, "a": 0.0},
        params={"tau": 0.01, "v_threshold": 0.5, "tau_adapt": 0.05, "beta": 0.3},
        update=lambda xp, s, p, x, h: {"a": s["a"] + h / p["tau_adapt"] * (-s["a"]),
                                       "v": s["v"] + h / p["tau"] * (0.0 - s["v"] + x)},
        spike=lambda xp, s, p: s["v"] - (p["v_threshold"] + p["beta"] * s["a"]),
        reset=lambda xp, s, p: {"v": xp.zeros_like(s["v"]), "a": s["a"] + 1.0},
        time_unit=1.0)
    yield
    if "user.ualif" in OPS:
        spikejit.undefine_neuron("ualif")


@pytest.mark.parametrize("detach_reset", [True, False])
def test_gradients_equal_the_user_defined_twin(user_alif: None, detach_reset: bool) -> None:
    x = spikes()
    mine = spikejit.compile(network(recurrent=True, **FIELDS), detach_reset=detach_reset)
    twin = spikejit.compile(network("user.ualif", recurrent=True, **FIELDS),
                            detach_reset=detach_reset)
    np.testing.assert_array_equal(np.asarray(mine(x)), np.asarray(twin(x)))

    def loss(p: dict, m: Any) -> Any:
        return (m.apply(p, x) * np.linspace(0, 1, T)[:, None, None]).sum()

    g1, g2 = jax.grad(loss)(mine.params, mine), jax.grad(loss)(twin.params, twin)
    assert set(g1) == set(g2)
    for name in g1:
        assert np.any(np.asarray(g1[name]) != 0), name
        np.testing.assert_allclose(np.asarray(g1[name]), np.asarray(g2[name]), rtol=1e-4,
                                   atol=1e-6, err_msg=name)


def test_nir_export_names_the_op() -> None:
    graph, params = network(**FIELDS)
    with pytest.raises(spikejit.errors.FrontendError, match=r"snn.alif, which NIR cannot express"):
        spikejit.to_nir(graph, params)
