"""Every op, compiled in every schedule, against the float32 reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_lowering import (
    chain,
    check_model,
    compare_traces,
    membrane_margin,
    params_for,
    recurrent,
    ref,
    spike_input,
)

from spikejit.ir import Graph, GraphAttrs, Node, TensorType, Use, infer_types, interpret
from spikejit.ir import ops as O
from spikejit.lowering.rules import LOWERINGS


def test_every_op_has_a_lowering_rule() -> None:
    missing = sorted(cls.mnemonic for cls in O.OPS.values() if cls not in LOWERINGS)
    assert missing == []
    assert {r.kind for r in LOWERINGS.values()} == {"map", "neuron", "delay"}


def _fc(n_in: int, n_out: int) -> tuple[str, O.Op]:
    return "fc", O.Affine(weight=ref("fc.weight", (n_out, n_in)), bias=ref("fc.bias", (n_out,)))


def _neuron(kind: str, shape: tuple[int, ...], reset: str | None) -> O.Op:
    def p(name: str) -> O.ParamRef:  # type: ignore[name-defined]
        return ref(f"n.{name}", shape)

    if kind == "i":
        return O.Integrator(r=p("r"))
    if kind == "if":
        return O.IF(v_threshold=p("v_threshold"), r=p("r"), v_reset=p("v_reset"), reset=reset)
    if kind == "li":
        return O.LI(tau=p("tau"), r=p("r"), v_leak=p("v_leak"))
    if kind == "lif":
        return O.LIF(tau=p("tau"), v_threshold=p("v_threshold"), r=p("r"), v_leak=p("v_leak"),
                     v_reset=p("v_reset"), reset=reset)
    if kind == "cuba_li":
        return O.CubaLI(tau_syn=p("tau_syn"), tau_mem=p("tau_mem"), r=p("r"), v_leak=p("v_leak"),
                        w_in=p("w_in"))
    return O.CubaLIF(tau_syn=p("tau_syn"), tau_mem=p("tau_mem"), v_threshold=p("v_threshold"),
                     r=p("r"), v_leak=p("v_leak"), v_reset=p("v_reset"), w_in=p("w_in"),
                     reset=reset)


NEURON_CASES = [
    (kind, reset, method, cuba)
    for kind in ("i", "if", "li", "lif", "cuba_li", "cuba_lif")
    for reset in ((None, "subtract", "none") if kind in ("if", "lif", "cuba_lif") else (None,))
    for method in ("euler", "exp")
    for cuba in (("post", "pre") if kind.startswith("cuba") else ("post",))
]


@pytest.mark.parametrize(("kind", "reset", "method", "cuba"), NEURON_CASES)
def test_neuron(kind: str, reset: str | None, method: str, cuba: str) -> None:
    g = chain((3,), _fc(3, 5), ("n", _neuron(kind, (5,), reset)), method=method,
              cuba_current=cuba)
    x = np.random.default_rng(1).normal(0, 1.5, (25, 3, 3)).astype(np.float32)
    params = params_for(g, seed=2)
    report = check_model(g, params, x)
    assert report.flips == 0, report
    if g.node("n").op.spiking:  # the case is only meaningful if the neuron does fire
        rate = interpret(g, params, x, dtype=np.float32).mean()
        assert 0.02 < rate < 0.98, rate


def test_neuron_with_default_params_and_scalar_params() -> None:
    g = chain((4,), _fc(4, 4),
              ("n", O.LIF(tau=ref("n.tau", ()), v_threshold=ref("n.v_threshold", ()))))
    x = spike_input((20, 2, 4), seed=3, p=0.5)
    assert check_model(g, params_for(g), x).flips == 0


STATELESS_CASES = {
    "affine": ((3,), [_fc(3, 4)]),
    "affine_batched_weight": ((2, 3), [("fc", O.Affine(weight=ref("fc.weight", (2, 4, 3)),
                                                       bias=ref("fc.bias", (4,))))]),
    "linear": ((3,), [("lin", O.Linear(weight=ref("lin.weight", (2, 3))))]),
    "scale_full": ((2, 3), [("s", O.Scale(scale=ref("s.scale", (2, 3))))]),
    "scale_scalar": ((3,), [("s", O.Scale(scale=ref("s.scale", ())))]),
    "threshold": ((4,), [("th", O.Threshold(threshold=ref("th.threshold", (4,))))]),
    "conv1d": ((2, 9), [("c", O.Conv1d(weight=ref("c.weight", (4, 1, 3)), bias=ref("c.bias", (4,)),
                                       stride=2, padding="same", dilation=2, groups=2))]),
    "conv1d_valid": ((1, 6), [("c", O.Conv1d(weight=ref("c.weight", (2, 1, 2)), padding="valid"))]),
    "conv2d": ((2, 6, 5), [("c", O.Conv2d(weight=ref("c.weight", (4, 2, 3, 2)),
                                          bias=ref("c.bias", (4,)), stride=(2, 1),
                                          padding=(1, 0), dilation=(1, 2)))]),
    "conv2d_same_groups": ((2, 5, 6), [("c", O.Conv2d(weight=ref("c.weight", (4, 1, 3, 3)),
                                                      stride=2, padding="same", groups=2))]),
    "sumpool2d": ((2, 5, 6), [("p", O.SumPool2d(kernel_size=2, stride=(2, 1), padding=1))]),
    "avgpool2d": ((2, 6, 6), [("p", O.AvgPool2d(kernel_size=(3, 2), padding=(1, 1)))]),
    "flatten": ((2, 3, 4), [("f", O.Flatten(start_dim=1, end_dim=-1))]),
    "flatten_all": ((2, 3, 4), [("f", O.Flatten())]),
    "delay_uniform": ((3,), [("d", O.Delay(steps=2))]),
    "delay_zero": ((3,), [("d", O.Delay(steps=0))]),
    "delay_per_element": ((2, 2), [("d", O.Delay(steps=(0, 3, 1, 3)))]),
}


@pytest.mark.parametrize("case", sorted(STATELESS_CASES))
def test_stateless_and_structural(case: str) -> None:
    shape, layers = STATELESS_CASES[case]
    g = chain(shape, *layers)
    x = np.random.default_rng(4).normal(size=(7, 3, *shape)).astype(np.float32)
    assert check_model(g, params_for(g, seed=5), x).flips == 0


def test_conv_lif_pool_network() -> None:
    g = chain((2, 8, 8),
              ("c1", O.Conv2d(weight=ref("c1.weight", (4, 2, 3, 3)), bias=ref("c1.bias", (4,)),
                              padding=1)),
              ("l1", O.LIF(tau=ref("l1.tau", ()), v_threshold=ref("l1.v_threshold", ()))),
              ("p1", O.SumPool2d(kernel_size=2)),
              ("f", O.Flatten()),
              _fc(64, 3),
              ("l2", O.LIF(tau=ref("l2.tau", (3,)), v_threshold=ref("l2.v_threshold", (3,)))))
    x = spike_input((8, 2, 2, 8, 8), seed=6, p=0.4)
    assert check_model(g, params_for(g, seed=7), x).flips == 0


def test_recurrent_and_delays_and_fanin() -> None:
    """Fan-in of three operands (one delayed twice), a delay node inside the cycle, and a
    node reading itself."""
    t = TensorType((3,))
    nodes = (
        Node("x", O.Input(type=t)),
        Node("a", O.LIF(tau=ref("a.tau", (3,)), v_threshold=ref("a.v_threshold", (3,))),
             (Use("x"), Use("w", 2), Use("a", 1))),
        Node("d", O.Delay(steps=(1, 2, 3)), (Use("a"),)),
        Node("w", O.Linear(weight=ref("w.weight", (3, 3))), (Use("d"), Use("x", 1))),
        Node("li", O.LI(tau=ref("li.tau", (3,))), (Use("w"), Use("a", 3))),
        Node("y", O.Output(), (Use("li"),)),
        Node("z", O.Output(), (Use("a"),)),
    )
    g = infer_types(Graph(nodes, attrs=GraphAttrs(dt=1e-3, reset="subtract")))
    x = spike_input((30, 2, 3), seed=8, p=0.6) * 3
    assert check_model(g, params_for(g, seed=9), x).flips == 0


def test_several_inputs_and_outputs() -> None:
    nodes = (
        Node("a", O.Input(type=TensorType((3,)))),
        Node("b", O.Input(type=TensorType((3,)))),
        Node("s", O.Scale(scale=ref("s.scale", (3,))), (Use("a"), Use("b"))),
        Node("n", O.LI(tau=ref("n.tau", ())), (Use("s"),)),
        Node("y1", O.Output(), (Use("n"),)),
        Node("y2", O.Output(), (Use("b", 1),)),
    )
    g = infer_types(Graph(nodes, attrs=GraphAttrs(dt=1.0)))
    rng = np.random.default_rng(0)
    x = {"a": rng.normal(size=(6, 2, 3)).astype(np.float32),
         "b": rng.normal(size=(6, 2, 3)).astype(np.float32)}
    assert check_model(g, params_for(g), x).flips == 0


def test_comparison_catches_a_wrong_value_and_a_far_spike_flip() -> None:
    """The checker itself must fail on real differences (so the tests above can fail)."""
    g = recurrent(3, 4)
    params = params_for(g, seed=1)
    x = spike_input((10, 2, 3), seed=2, p=0.7)
    _, _, want = interpret(g, params, x, dtype=np.float32, return_state=True, trace=True)
    got = {k: {v: a.copy() for v, a in e.items()} for k, e in want.items()}
    got["rec"]["out"][3, 0, 0] += 1e-3
    with pytest.raises(AssertionError, match="rec"):
        compare_traces(g, params, got, want)
    got = {k: {v: a.copy() for v, a in e.items()} for k, e in want.items()}
    margin = membrane_margin(g, params, want, "lif")
    t, b, e = np.argwhere(margin > 1e-2)[0]
    got["lif"]["out"][t, b, e] = 1.0 - got["lif"]["out"][t, b, e]
    with pytest.raises(AssertionError, match="spike differs"):
        compare_traces(g, params, got, want)


def test_recurrent_reference_graph() -> None:
    g = recurrent(4, 6, delay=1)
    x = spike_input((40, 3, 4), seed=10, p=0.5)
    assert check_model(g, params_for(g, seed=11), x).flips == 0
