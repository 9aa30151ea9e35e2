"""``compile(..., check_finite=True)``: the first node and time step that produced NaN or
Inf, as a NonFiniteError; nothing traced for it when the option is off."""

from __future__ import annotations

from typing import Any

import jax
import nir
import numpy as np
import pytest
from jax.experimental import checkify

import spikejit
from spikejit.errors import NonFiniteError, OptionError

F32 = np.float32
SCHEDULES = ["auto", "layerwise", "stepwise"]


def scaled_lif(scale: float = 1e30) -> nir.NIRGraph:
    """x -> fc (identity) -> s (scale) -> lif -> y: a big input overflows at ``s``."""
    return nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([3])),
               "fc": nir.Linear(weight=np.eye(3, dtype=F32)),
               "s": nir.Scale(scale=np.full(3, scale, F32)),
               "lif": nir.LIF(tau=np.full(3, 5e-3, F32), r=np.ones(3, F32),
                              v_leak=np.zeros(3, F32), v_threshold=np.full(3, 0.5, F32),
                              v_reset=np.zeros(3, F32)),
               "y": nir.Output(output_type=np.array([3]))},
        edges=[("x", "fc"), ("fc", "s"), ("s", "lif"), ("lif", "y")])


def primitive_names(jaxpr: Any) -> set[str]:
    """Every primitive in a closed jaxpr, sub-jaxprs (scan bodies, pjit) included."""
    names: set[str] = set()

    def walk(j: Any) -> None:
        for eqn in j.eqns:
            names.add(eqn.primitive.name)
            for sub in jax.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jaxpr.jaxpr)
    return names


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_off_by_default_and_free_when_off(schedule: str) -> None:
    x = np.zeros((4, 2, 3), F32)
    plain = spikejit.compile(scaled_lif(), dt=1e-3, schedule=schedule)
    off = spikejit.compile(scaled_lif(), dt=1e-3, schedule=schedule, check_finite=False)
    on = spikejit.compile(scaled_lif(), dt=1e-3, schedule=schedule, check_finite=True)
    assert off.program is plain.program  # the option off is the very same program
    names = primitive_names(plain.make_jaxpr(x))
    assert "is_finite" not in names and "check" not in names, names
    assert "is_finite" in primitive_names(on.make_jaxpr(x))


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_inf_fed_in_names_the_input_and_the_step(schedule: str) -> None:
    model = spikejit.compile(scaled_lif(), dt=1e-3, schedule=schedule, check_finite=True)
    x = np.zeros((6, 2, 3), F32)
    x[4, 1, 0] = np.inf
    with pytest.raises(NonFiniteError) as info:
        model(x)
    assert str(info.value) == ("%x (io.input) from nir:x: the input data holds NaN or Inf at "
                               "time step 4 (found by check_finite=True)")
    assert (info.value.node_id, info.value.step) == ("x", 4)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_overflow_names_the_node_where_it_happens(schedule: str) -> None:
    model = spikejit.compile(scaled_lif(), dt=1e-3, schedule=schedule, check_finite=True)
    x = np.zeros((6, 2, 3), F32)
    x[3, 0, 2] = 1e10  # finite; times 1e30 overflows float32 at %s, not before
    with pytest.raises(NonFiniteError) as info:
        model(x)
    assert str(info.value).startswith("%s (nn.scale) from nir:s: produced NaN or Inf at time "
                                      "step 3, in its output or state")
    assert info.value.step == 3


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_non_finite_state_behind_finite_spikes_is_found(schedule: str) -> None:
    # w_in = 1e30 makes the synaptic current of %clif infinite while its output, spikes
    # and a membrane that is reset, stays finite: only the state shows it.
    g = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([2])),
               "clif": nir.CubaLIF(tau_syn=np.full(2, 5e-3, F32), tau_mem=np.full(2, 5e-3, F32),
                                   r=np.ones(2, F32), v_leak=np.zeros(2, F32),
                                   v_threshold=np.ones(2, F32), v_reset=np.zeros(2, F32),
                                   w_in=np.full(2, 1e30, F32)),
               "y": nir.Output(output_type=np.array([2]))},
        edges=[("x", "clif"), ("clif", "y")])
    model = spikejit.compile(g, dt=1e-3, schedule=schedule, check_finite=True)
    x = np.zeros((5, 1, 2), F32)
    x[1:, 0, 0] = 1e20
    with pytest.raises(NonFiniteError) as info:
        model(x)
    assert (info.value.node_id, info.value.step) == ("clif", 1)


def test_the_earliest_step_wins_over_the_schedule_order() -> None:
    g = nir.NIRGraph(
        nodes={"a": nir.Input(input_type=np.array([1])), "b": nir.Input(input_type=np.array([1])),
               "sa": nir.Scale(scale=np.full(1, 1e30, F32)),
               "sb": nir.Scale(scale=np.full(1, 1e30, F32)),
               "ya": nir.Output(output_type=np.array([1])),
               "yb": nir.Output(output_type=np.array([1]))},
        edges=[("a", "sa"), ("sa", "ya"), ("b", "sb"), ("sb", "yb")])
    model = spikejit.compile(g, check_finite=True)
    xa, xb = np.zeros((6, 1, 1), F32), np.zeros((6, 1, 1), F32)
    xa[4], xb[2] = 1e10, 1e10
    with pytest.raises(NonFiniteError) as info:
        model({"a": xa, "b": xb})
    assert (info.value.node_id, info.value.step) == ("sb", 2)


def test_finite_runs_give_the_same_outputs() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 2, 3)).astype(F32)
    on = spikejit.compile(scaled_lif(2.0), dt=1e-3, check_finite=True)
    off = spikejit.compile(scaled_lif(2.0), dt=1e-3)
    y_on, state_on = on(x, return_state=True)
    y_off, state_off = off(x, return_state=True)
    np.testing.assert_array_equal(np.asarray(y_on), np.asarray(y_off))
    assert jax.tree_util.tree_structure(state_on) == jax.tree_util.tree_structure(state_off)


def test_under_your_own_jit_it_is_a_checkify_check() -> None:
    model = spikejit.compile(scaled_lif(), dt=1e-3, check_finite=True)
    x = np.zeros((6, 1, 3), F32)
    x[5, 0, 1] = 1e10
    err, _ = checkify.checkify(jax.jit(lambda xx: model(xx)))(x)
    assert err.get() is not None
    assert err.get().startswith("%s (nn.scale): produced NaN or Inf at time step 5")
    # Under jit without checkify the check is silent (no Python error can come out of
    # jit); under grad alone the report is a concrete value, so the error is raised.
    jax.jit(lambda xx: model(xx))(x)
    with pytest.raises(NonFiniteError, match="time step 5"):
        jax.grad(lambda p: model.apply(p, x).sum())(model.params)
    grads = jax.grad(lambda p: model.apply(p, x * 0).sum())(model.params)
    assert set(grads) == set(model.params)


def test_the_option_is_a_bool() -> None:
    with pytest.raises(OptionError, match="check_finite must be True or False, got 'yes'"):
        spikejit.compile(scaled_lif(), dt=1e-3, check_finite="yes")
