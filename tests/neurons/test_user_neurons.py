"""spikejit.define_neuron: registry, printing/parsing, verification, oracle vs lowering, and
gradients through the surrogate spike (checked against the built-in ops they re-implement)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import spikejit
from spikejit.errors import AttributeError_, IRError, OptionError, ParseError
from spikejit.ir import interpret, parse, print_graph
from spikejit.ir.interp_rules import INTERPRETER_RULES
from spikejit.ir.ops import OPS
from spikejit.lowering.rules import LOWERINGS


@pytest.fixture
def define() -> Iterator[Callable[..., Any]]:
    """``define_neuron`` that undefines everything it defined after the test, so the global
    registries (checked by the completeness tests) are left as they were."""
    names: list[str] = []

    def _define(name: str, **kwargs: Any) -> Any:
        cls = spikejit.define_neuron(name, **kwargs)
        names.append(name)
        return cls

    yield _define
    for name in names:
        if f"user.{name}" in OPS:
            spikejit.undefine_neuron(name)


def _lif(define: Callable[..., Any]) -> Any:
    """snn.lif re-implemented by the user (time unit: seconds, like NIR)."""
    return define(
        "ulif",
        state={"v": 0.0},
        params={"tau": 0.02, "v_threshold": 1.0},
        update=lambda xp, s, p, x, h: {"v": s["v"] + h / p["tau"] * (0.0 - s["v"] + x)},
        spike=lambda xp, s, p: s["v"] - p["v_threshold"],
        reset=lambda xp, s, p: {"v": xp.zeros_like(s["v"])},
        time_unit=1.0,
        doc="Leaky integrate-and-fire, written by hand.",
    )


def _network(neuron: str, **fields: Any) -> tuple[spikejit.Graph, dict]:
    rng = np.random.default_rng(0)
    b = spikejit.GraphBuilder("net", dt=1e-3)
    b.input("x", shape=(3,))
    b.add("fc", "nn.linear", inputs=["x"], weight=rng.uniform(0, 2, (4, 3)))
    b.add("n", neuron, inputs=["fc", ("rec", 1)], **fields)
    b.add("rec", "nn.linear", inputs=["n"], weight=rng.uniform(-0.5, 0.5, (4, 4)))
    return b.output("y", "n").build()


def test_registration_printing_parsing(define: Callable[..., Any]) -> None:
    cls = _lif(define)
    assert OPS["user.ulif"] is cls and cls in INTERPRETER_RULES and cls in LOWERINGS
    assert cls.state_vars == ("v",) and cls.__doc__.startswith("Leaky integrate-and-fire")
    graph, _ = _network("user.ulif", tau=np.full(4, 0.01))
    text = print_graph(graph)
    assert "%n = user.ulif(%fc, %rec[t-1]) {tau = @n.tau: f32[4]} : spike<f32[4]>" in text
    assert parse(text) == graph
    spikejit.undefine_neuron("ulif")
    assert "user.ulif" not in OPS and cls not in INTERPRETER_RULES and cls not in LOWERINGS
    with pytest.raises(ParseError, match=r"unknown op 'user\.ulif'"):
        parse(text)


def test_user_lif_matches_snn_lif_forward_and_gradients(define: Callable[..., Any]) -> None:
    import jax

    _lif(define)
    mine, mine_params = _network("user.ulif", tau=np.full(4, 0.01), v_threshold=np.ones(4))
    ref, ref_params = _network("snn.lif", tau=np.full(4, 0.01), v_threshold=np.ones(4))
    x = (np.random.default_rng(1).random((200, 2, 3)) < 0.3).astype(np.float32)
    want = interpret(ref, ref_params, x, dtype=np.float32)
    np.testing.assert_array_equal(interpret(mine, mine_params, x, dtype=np.float32), want)
    assert want.sum() > 20
    for detach in (True, False):
        m1 = spikejit.compile((mine, mine_params), detach_reset=detach)
        m2 = spikejit.compile((ref, ref_params), detach_reset=detach)
        np.testing.assert_array_equal(np.asarray(m1(x)), want)

        def loss(p: dict, m: Any) -> Any:
            return (m.apply(p, x) * np.linspace(0, 1, 200)[:, None, None]).sum()

        g1 = jax.grad(loss)(m1.params, m1)
        g2 = jax.grad(loss)(m2.params, m2)
        assert set(g1) == set(g2)
        for name in g1:
            assert np.any(np.asarray(g2[name]) != 0), name
            np.testing.assert_allclose(np.asarray(g1[name]), np.asarray(g2[name]), rtol=1e-4,
                                       atol=1e-6, err_msg=name)


def _user_hh(define: Callable[..., Any]) -> Any:
    """bio.hh re-implemented with a computed reference state and upward-crossing spikes."""

    def rates(xp: Any, v: Any) -> tuple[Any, ...]:
        def efun(z: Any) -> Any:
            small = xp.abs(z) < 1e-4
            safe = xp.where(small, 1.0, z)
            return xp.where(small, 1.0 - z / 2.0, safe / xp.expm1(safe))

        return (efun(-(v + 40.0) / 10.0), 4.0 * xp.exp(-(v + 65.0) / 18.0),
                0.07 * xp.exp(-(v + 65.0) / 20.0), 1.0 / (1.0 + xp.exp(-(v + 35.0) / 10.0)),
                0.1 * efun(-(v + 55.0) / 10.0), 0.125 * xp.exp(-(v + 65.0) / 80.0))

    def gate_rest(i: int) -> Callable[[Any, Any], Any]:
        def ref(xp: Any, p: Any) -> Any:
            r = rates(xp, xp.asarray(-65.0))
            return r[2 * i] / (r[2 * i] + r[2 * i + 1])
        return ref

    def update(xp: Any, s: Any, p: Any, x: Any, h: Any) -> dict:
        v, m, hh, n = s["v"], s["m"], s["h"], s["n"]
        am, bm, ah, bh, an, bn = rates(xp, v)
        i_ion = (p["g_na"] * m**3 * hh * (v - 50.0) + 36.0 * n**4 * (v + 77.0)
                 + 0.3 * (v + 54.387))
        return {"v": v + h / 1.0 * (x - i_ion), "m": m + h * (am * (1.0 - m) - bm * m),
                "h": hh + h * (ah * (1.0 - hh) - bh * hh), "n": n + h * (an * (1.0 - n) - bn * n)}

    return define("uhh", state={"v": -65.0, "m": gate_rest(0), "h": gate_rest(1),
                                "n": gate_rest(2)},
                  params={"g_na": 120.0}, update=update, spike=lambda xp, s, p: s["v"],
                  spike_on="crossing")


@pytest.mark.parametrize("schedule", ["auto", "stepwise"])
def test_user_hh_matches_bio_hh(define: Callable[..., Any], schedule: str) -> None:
    _user_hh(define)
    g1, p1 = (spikejit.GraphBuilder("g", dt=1e-5).input("x", shape=(3,))
              .add("n", "user.uhh", inputs=["x"]).output("y", "n").build())
    g2, p2 = (spikejit.GraphBuilder("g").input("x", shape=(3,))
              .add("n", "bio.hh", inputs=["x"]).output("y", "n").build())
    x = np.broadcast_to(np.array([0.0, 7.0, 15.0], np.float32), (3000, 1, 3))
    want = interpret(g2, p2, x, dtype=np.float32)
    assert want[:, 0, 0].sum() == 0 and want[:, 0, 2].sum() >= 3
    np.testing.assert_array_equal(interpret(g1, p1, x, dtype=np.float32), want)
    np.testing.assert_array_equal(np.asarray(spikejit.compile((g1, p1), schedule=schedule)(x)),
                                  want)


def test_output_attribute_and_zero_state_is_the_reference(define: Callable[..., Any]) -> None:
    _user_hh(define)
    graph, params = (spikejit.GraphBuilder("g", dt=1e-5).input("x", shape=(2,))
                     .add("n", "user.uhh", inputs=["x"], output="m").output("y", "n").build())
    assert 'output = "m"' in print_graph(graph) and not graph.node("n").type.spike
    y, traces = interpret(graph, params, np.zeros((100, 1, 2)), trace=["n"])
    np.testing.assert_allclose(y, 0.0529, atol=1e-3)  # m_inf(-65 mV), absolute
    np.testing.assert_allclose(traces["n"]["m"], 0.0, atol=1e-4)  # stored as a deviation
    with pytest.raises(AttributeError_, match=r"%n \(user.uhh\): attribute 'output' must be "
                                              r"one of 'spikes', 'v', 'm', 'h', 'n', got 'w'"):
        spikejit.GraphBuilder("g").input("x", shape=(2,)).add("n", "user.uhh", output="w")


def test_update_errors_name_the_node(define: Callable[..., Any]) -> None:
    define("broken", state={"v": 0.0, "u": 0.0}, params={},
           update=lambda xp, s, p, x, h: {"v": s["v"] + x},
           spike=lambda xp, s, p: s["v"] - 1.0)
    graph, params = (spikejit.GraphBuilder("g", dt=1e-3).input("x", shape=(2,))
                     .add("bad", "user.broken", inputs=["x"]).output("y", "bad").build())
    message = (r"%bad \(user.broken\): the update function returned missing 'u' \(state "
               r"variables: 'v', 'u'\)")
    with pytest.raises(IRError, match=message):
        interpret(graph, params, np.zeros((3, 1, 2)))
    with pytest.raises(IRError, match=message):
        spikejit.compile((graph, params))(np.zeros((3, 1, 2), np.float32))


def test_exceptions_in_user_functions_name_the_node(define: Callable[..., Any]) -> None:
    define("raises", state={"v": 0.0}, params={},
           update=lambda xp, s, p, x, h: {"v": s["v"] + xp.no_such_function(x)},
           spike=lambda xp, s, p: s["v"])
    graph, params = (spikejit.GraphBuilder("g", dt=1e-3).input("x", shape=(1,))
                     .add("r", "user.raises", inputs=["x"]).output("y", "r").build())
    message = r"%r \(user.raises\): the update function raised AttributeError: .*no_such_function"
    with pytest.raises(IRError, match=message):
        interpret(graph, params, np.zeros((2, 1, 1)))
    with pytest.raises(IRError, match=message):
        spikejit.compile((graph, params))(np.zeros((2, 1, 1), np.float32))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "Bad-Name"}, "neuron name 'Bad-Name' must be a lowercase Python identifier"),
    ({"state": {}}, "state must be a non-empty dict"),
    ({"state": {"out": 0.0}}, "state variable name 'out' is reserved"),
    ({"params": {"output": 1.0}}, "parameter name 'output' is reserved"),
    ({"params": {"tau": "fast"}}, "the default of parameter 'tau' must be a number"),
    ({"spike_on": "edge"}, "spike_on must be one of 'level', 'crossing', got 'edge'"),
    ({"output": "w"}, "output must be 'spikes' or a state variable, got 'w'"),
    ({"time_unit": 0}, "time_unit must be a number > 0, got 0"),
    ({"reset": 3}, "reset must be a function or None"),
])
def test_bad_declarations(kwargs: dict, message: str) -> None:
    args: dict[str, Any] = {"name": "ok", "state": {"v": 0.0}, "params": {"tau": 1.0},
                            "update": lambda xp, s, p, x, h: s,
                            "spike": lambda xp, s, p: s["v"], **kwargs}
    name = args.pop("name")
    with pytest.raises(OptionError, match=message):
        spikejit.define_neuron(name, **args)
    assert "user.ok" not in OPS


def test_interpreter_stays_jax_free() -> None:
    import subprocess
    import sys

    code = ("import sys, numpy as np, spikejit\n"
            "spikejit.define_neuron('q', state={'v': 1.0}, params={'a': 2.0},\n"
            "    update=lambda xp, s, p, x, h: {'v': s['v'] + h * xp.tanh(x) * p['a']},\n"
            "    spike=lambda xp, s, p: s['v'] - 1.5, spike_on='crossing')\n"
            "g, p = (spikejit.GraphBuilder('g', dt=1e-3).input('x', shape=(1,))\n"
            "        .add('q', 'user.q', inputs=['x']).output('y', 'q').build())\n"
            "y = spikejit.interpret(g, p, np.ones((1000, 1, 1)))\n"
            "assert y.sum() == 1, y.sum()\n"
            "assert 'jax' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
