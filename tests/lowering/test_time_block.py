"""Time blocking (``compile(..., time_block=...)``): the policy, and the same values, state,
traces and gradients as the unblocked program and the reference interpreter."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers_lowering import chain, check_model, params_for, recurrent, ref, spike_input

import spikejit
from spikejit.errors import NonFiniteError, OptionError
from spikejit.ir import Graph, GraphAttrs, Node, TensorType, Use, infer_types
from spikejit.ir import ops as O
from spikejit.lowering import time_block as TB


def _lif(name: str) -> O.Op:
    return O.LIF(tau=ref(f"{name}.tau", ()), v_threshold=ref(f"{name}.v_threshold", ()))


def conv_net(delay: int = 0) -> Graph:
    """``x -> conv -> lif -> conv -> lif -> flatten -> affine -> lif -> y``; with
    ``delay``, the second conv reads the first LIF ``delay`` steps back (a history)."""
    c1 = O.Conv2d(weight=ref("c1.weight", (3, 2, 3, 3)), bias=ref("c1.bias", (3,)), padding=1)
    c2 = O.Conv2d(weight=ref("c2.weight", (2, 3, 3, 3)), padding=1, stride=2)
    nodes = [
        Node("x", O.Input(type=TensorType((2, 6, 6)))),
        Node("c1", c1, (Use("x"),)),
        Node("l1", _lif("l1"), (Use("c1"),)),
        Node("c2", c2, (Use("l1", delay),)),
        Node("l2", _lif("l2"), (Use("c2"),)),
        Node("flat", O.Flatten(), (Use("l2"),)),
        Node("fc", O.Affine(weight=ref("fc.weight", (4, 18)), bias=ref("fc.bias", (4,))),
             (Use("flat"),)),
        Node("l3", _lif("l3"), (Use("fc"),)),
        Node("y", O.Output(), (Use("l3"),)),
    ]
    return infer_types(Graph(tuple(nodes), attrs=GraphAttrs(dt=1e-3)))


def _scan_lengths(model: spikejit.CompiledModel, x: Any) -> list[int]:
    """Lengths of the scans at the top level of the model's jaxpr."""
    jaxpr = model.make_jaxpr(x).jaxpr
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "pjit":  # the jitted program
            found += [e.params["length"] for e in eqn.params["jaxpr"].jaxpr.eqns
                      if e.primitive.name == "scan"]
        elif eqn.primitive.name == "scan":
            found.append(eqn.params["length"])
    return found


# -- the policy ------------------------------------------------------------------------------
def _scheduled(graph: Graph, schedule: str = "auto") -> Graph:
    return spikejit.compile((graph, params_for(graph)), schedule=schedule).graph


def test_auto_blocks_conv_graphs_to_fit_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    g = _scheduled(conv_net())
    per_sample = TB.conv_output_bytes(g)
    assert per_sample == 3 * 6 * 6 * 4  # c1's output, the largest conv output
    # Blocks of at most BLOCK_BYTES, the largest divisor of T.
    monkeypatch.setattr(TB, "BLOCK_BYTES", per_sample * 4 * 3)  # batch 4: three steps fit
    assert TB.block_steps(g, "auto", 12, 4) == 3
    assert TB.block_steps(g, "auto", 10, 4) == 2  # 3 does not divide 10
    assert TB.block_steps(g, "auto", 7, 4) == 1  # prime T: single steps
    assert TB.block_steps(g, "auto", 3, 4) is None  # the whole call fits: no blocking
    # At least MIN_AUTO_STEPS (2) steps per block, even when one step is already bigger.
    assert TB.block_steps(g, "auto", 12, 100) == 2
    assert TB.block_steps(g, "auto", 9, 100) == 1  # unless T has no such divisor
    assert TB.block_steps(g, "auto", 1, 4) is None


def test_auto_leaves_matmul_and_recurrent_graphs_alone() -> None:
    mlp = chain((5,), ("fc", O.Affine(weight=ref("fc.weight", (3, 5)),
                                      bias=ref("fc.bias", (3,)))), ("l", _lif("l")))
    assert TB.block_steps(_scheduled(mlp), "auto", 100, 32) is None
    assert TB.block_steps(_scheduled(recurrent()), "auto", 100, 32) is None
    # A conv graph scheduled stepwise already runs one step at a time.
    assert TB.block_steps(_scheduled(conv_net(), "stepwise"), "auto", 100, 32) is None


def test_integer_and_off_policies() -> None:
    g = _scheduled(conv_net())
    assert TB.block_steps(g, 2, 6, 3) == 2
    assert TB.block_steps(g, 4, 6, 3) is None  # does not divide T
    assert TB.block_steps(g, 6, 6, 3) is None  # one block is the whole call
    assert TB.block_steps(g, "off", 600, 300) is None


@pytest.mark.parametrize("bad", ["on", 0, -2, True, 1.5, None])
def test_bad_policy_is_an_option_error(bad: Any) -> None:
    g = conv_net()
    with pytest.raises(OptionError) as err:
        spikejit.compile((g, params_for(g)), time_block=bad)
    assert str(err.value) == (f"time_block must be 'auto', 'off' or a number of steps per "
                              f"block (an integer >= 1), got {bad!r}")


# -- equivalence -----------------------------------------------------------------------------
@pytest.mark.parametrize("delay", [0, 2])
@pytest.mark.parametrize("block", [1, 2, 3])
def test_blocked_program_matches_the_interpreter(block: int, delay: int) -> None:
    g = conv_net(delay)
    params = params_for(g, seed=4)
    x = spike_input((6, 3, 2, 6, 6), seed=5, p=0.4)
    model = spikejit.compile((g, params), passes="O0", time_block=block)
    assert 6 // block in _scan_lengths(model, x)  # really blocked: one scan over the blocks
    assert check_model(g, params, x, modes=("auto",), time_block=block).flips == 0


def test_blocked_program_continues_from_a_carried_state() -> None:
    g = conv_net(delay=1)
    params = params_for(g, seed=6)
    x = spike_input((8, 2, 2, 6, 6), seed=7, p=0.4)
    model = spikejit.compile((g, params), time_block=2)
    y_all, s_all, tr_all = model(x, return_state=True, trace=True)
    y1, s1 = model(x[:4], return_state=True)
    y2, s2, tr2 = model(x[4:], s1, return_state=True, trace=True)
    np.testing.assert_array_equal(np.concatenate([y1, y2]), y_all)
    jax.tree_util.tree_map(np.testing.assert_allclose, s2, s_all)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b[4:]), tr2, tr_all)


def test_gradients_equal_the_unblocked_program() -> None:
    g = conv_net(delay=1)
    params = {k: jnp.asarray(v) for k, v in params_for(g, seed=8).items()}
    x = jnp.asarray(spike_input((6, 3, 2, 6, 6), seed=9, p=0.4))
    grads = {}
    for block in ("off", 1, 3):
        model = spikejit.compile((g, params), time_block=block)

        def loss(p: dict[str, Any], xx: Any, model: spikejit.CompiledModel = model) -> Any:
            y, tr = model.apply(p, xx, trace=["l2"])
            return jnp.mean(y) + jnp.mean(tr["l2"]["v"] ** 2)

        grads[block] = jax.grad(loss, argnums=(0, 1))(params, x)
    for block in (1, 3):
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                                       atol=1e-6),
                               grads[block], grads["off"])


def test_check_finite_counts_steps_of_the_whole_call() -> None:
    g = conv_net()
    params = params_for(g, seed=1)
    x = spike_input((6, 2, 2, 6, 6), seed=2)
    x[4, 1, 0, 2, 3] = np.nan
    model = spikejit.compile((g, params), time_block=2, check_finite=True)
    with pytest.raises(NonFiniteError) as err:
        model(x)
    assert err.value.step == 4 and err.value.node_id == "x"
