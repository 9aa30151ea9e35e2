"""Hostile *values* (issue 15, items 6-9): an input with no time steps, time steps and time
constants float32 cannot hold, complex or non-finite inputs, and size errors raised while
``jax.jit`` traces. Each must be a spikejit error naming what is wrong, never a traceback,
silent NaN outputs or a silently changed input."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import nir
import numpy as np
import pytest
from helpers_robustness import max_bytes, time_limit
from typer.testing import CliRunner

import spikejit
from spikejit.cli import app
from spikejit.errors import (
    FrontendError,
    NonFiniteError,
    OptionError,
    ParamError,
    SizeLimitError,
)
from spikejit.examples import BUNDLED_DT, bundled_model_path

F32 = np.float32
JAX_NOTE = "JAX_TRACEBACK_FILTERING"
runner = CliRunner()


@pytest.fixture(scope="module")
def model() -> spikejit.CompiledModel:
    """The bundled model: input %input f32[8], output f32[4], recurrent CubaLIF."""
    return spikejit.compile(bundled_model_path(), dt=BUNDLED_DT)


def neuron(kind: str = "LIF", dt_tau: float = 5e-3, r: float = 1.0,
           threshold: float = 0.5) -> nir.NIRGraph:
    """x -> one neuron -> y, float64 fields so that values float32 cannot hold survive."""
    n = 3
    full = lambda v: np.full(n, v, np.float64)  # noqa: E731 - local shorthand
    node = (nir.IF(r=full(r), v_threshold=full(threshold), v_reset=full(0.0))
            if kind == "IF" else
            nir.LIF(tau=full(dt_tau), r=full(r), v_leak=full(0.0), v_threshold=full(threshold),
                    v_reset=full(0.0)))
    return nir.NIRGraph(nodes={"x": nir.Input(input_type=np.array([n])), "lif": node,
                               "y": nir.Output(output_type=np.array([n]))},
                        edges=[("x", "lif"), ("lif", "y")])


def no_jax_note(e: BaseException) -> bool:
    return not any(JAX_NOTE in n for n in getattr(e, "__notes__", ()))


def cli_error(*args: str) -> str:
    """Run the CLI: exit status 2 and exactly one line ``error: ...``, returned bare."""
    with time_limit():
        result = runner.invoke(app, list(args))
    assert result.exit_code == 2, (args, result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0].removeprefix("error: ")


# -- 6. no time steps -------------------------------------------------------------------------
@pytest.mark.parametrize("options", [{}, {"remat": 2}, {"time_block": 2}])
def test_zero_steps_give_empty_outputs_and_keep_the_state(options: dict[str, Any]) -> None:
    m = spikejit.compile(bundled_model_path(), dt=BUNDLED_DT, **options)
    x = np.zeros((0, 2, 8), F32)
    y, state = m(x, return_state=True)
    assert y.shape == (0, 2, 4)
    jax.tree_util.tree_map(np.testing.assert_array_equal, state, m.init_state(2))
    assert m(x, reduce="sum").shape == (2, 4)
    for how in ("mean", "last"):  # no step to average or to take: an error, not NaN
        with pytest.raises(ParamError, match=rf"reduce='{how}' needs at least one time step"):
            m(x, reduce=how)
    assert spikejit.interpret(m.graph, m.params, x).shape == (0, 2, 4)


def test_cli_zero_steps_is_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "x0.npy"
    np.save(path, np.zeros((0, 1, 8), F32))
    line = cli_error("run", "--input", str(path))
    assert line == (f"{path}: input %input has T = 0 time steps (shape [0, 1, 8]); give at "
                    f"least one step")
    result = runner.invoke(app, ["run", "--steps", "0"])  # typer's min=1: its usage error
    assert result.exit_code == 2 and "--steps" in result.stderr


# -- 7. time values float32 cannot hold --------------------------------------------------------
@pytest.mark.parametrize("dt", [1e300, 1e-300, 1e-40])
def test_dt_beyond_float32_is_an_option_error(dt: float) -> None:
    with pytest.raises(OptionError, match=r"dt=.* cannot be represented in float32"):
        spikejit.compile(neuron(), dt=dt)
    graph, params = spikejit.from_nir(neuron(), dt=1e-3)  # or a saved model, IR text
    with pytest.raises(OptionError, match=r"^dt=.* cannot be represented in float32, which "
                                          r"%lif \(snn.lif\) computes in"):
        spikejit.compile((graph, params), dt=dt)
    if dt == 1e-40:  # subnormal: NumPy keeps it (XLA does not), only 0 and inf are refused
        assert spikejit.interpret(graph.replace(attrs=dataclasses.replace(graph.attrs, dt=dt)),
                                  params, np.ones((2, 1, 3)), dtype=np.float32).shape
        return
    with pytest.raises(OptionError, match=r"^dt=.* cannot be represented in float32, the "
                                          r"dtype of the simulation \(%lif"):
        spikejit.interpret(graph.replace(attrs=dataclasses.replace(graph.attrs, dt=dt)),
                           params, np.ones((2, 1, 3)), dtype=np.float32)


def test_cli_dt_beyond_float32_is_one_error_line() -> None:
    line = cli_error("run", "--dt", "1e300", "--steps", "5")
    assert line.startswith("--dt 1e+300: the time step must be a number of seconds from "
                           "1.175e-38 to 3.403e+38"), line


@pytest.mark.parametrize("tau", [1e-300, 1e-40])
def test_a_time_constant_that_is_zero_in_float32_names_node_and_field(tau: float) -> None:
    with pytest.raises(FrontendError) as info:
        spikejit.compile(neuron(dt_tau=tau), dt=1e-3)
    assert str(info.value).startswith(
        f"NIR graph: node 'lif' (LIF -> snn.lif): time constant 'tau' has values too small "
        f"for f32, e.g. {tau:.7g}: they would run as 0")


def test_coefficients_that_overflow_float32_name_node_and_field() -> None:
    with pytest.raises(FrontendError, match=r"node 'lif' .*dt/tau overflows f32 "
                                            r"\(dt=10000000000.0 s, tau=1e-30\)"):
        spikejit.compile(neuron(dt_tau=1e-30), dt=1e10)
    with pytest.raises(FrontendError, match=r"node 'lif' \(IF -> snn.if\): dt\*r overflows"):
        spikejit.compile(neuron("IF", r=1e30), dt=1e10)


@pytest.mark.parametrize(("tau", "dt", "threshold"), [
    (np.inf, 1e-3, 0.5),     # no leak
    (5e-3, 1e-4, np.inf),    # never fires
    (5.0, 1.0, 0.5),         # time constants in steps (sinabs, Spyx)
    (1e-3, 1.0, 0.5),        # an unstable Euler step is finite: not this check's business
])
def test_legitimate_time_values_still_run(tau: float, dt: float, threshold: float) -> None:
    y = spikejit.compile(neuron(dt_tau=tau, threshold=threshold), dt=dt)(np.ones((4, 1, 3), F32))
    assert np.isfinite(np.asarray(y)).all()


# -- 8. inputs that a cast would change --------------------------------------------------------
def test_complex_inputs_are_refused_numpy_and_jax(model: spikejit.CompiledModel) -> None:
    x = np.ones((3, 1, 8), np.complex64) * (1 + 1j)
    for data in (x, jnp.asarray(x)):
        with pytest.raises(ParamError, match=r"^input %input has complex dtype complex64; "
                                             r"expected real numbers"):
            model(data)
    with pytest.raises(ParamError, match="input %input: expected a numeric array, got dtype"):
        spikejit.interpret(model.graph, model.params, x)


@pytest.mark.parametrize(("value", "says"), [
    (np.nan, "holds nan at index [2, 0, 5] (time step 2); input data must be finite"),
    (-np.inf, "holds -inf at index [2, 0, 5] (time step 2); input data must be finite"),
    (1e300, "holds 1e+300 at index [2, 0, 5] (time step 2), beyond the range of float32"),
])
def test_non_finite_numpy_inputs_name_the_first_index(model: spikejit.CompiledModel,
                                                      value: float, says: str) -> None:
    x = np.zeros((4, 1, 8))  # float64, as np.zeros gives
    x[2, 0, 5] = value
    x[3, 0, 0] = value  # later: not the one named
    for call in (lambda: model(x), lambda: model.apply(model.params, x, reduce="sum"),
                 lambda: jax.grad(lambda p: jnp.sum(model.apply(p, x)))(model.params),
                 lambda: spikejit.interpret(model.graph, model.params, x, dtype=np.float32)):
        with pytest.raises(ParamError) as info:
            call()
        assert str(info.value).startswith(f"input %input {says}"), str(info.value)
    assert spikejit.interpret(model.graph, model.params, 0 * x[:2]).shape == (2, 1, 4)


def test_jax_arrays_are_not_searched_and_check_finite_still_reports() -> None:
    # A device array's values would cost a reduction per call to search: documented.
    x = np.zeros((4, 1, 8), F32)
    x[1, 0, 2] = np.nan
    m = spikejit.compile(bundled_model_path(), dt=BUNDLED_DT)
    _, state = m(jnp.asarray(x), return_state=True)  # runs: NaN membranes behind spikes
    assert any(np.isnan(np.asarray(v)).any() for v in jax.tree_util.tree_leaves(state))
    checked = spikejit.compile(bundled_model_path(), dt=BUNDLED_DT, check_finite=True)
    with pytest.raises(NonFiniteError) as info:
        checked(x)  # the program's own report: the input node and the step
    assert (info.value.node_id, info.value.step) == ("input", 1)
    big = np.zeros((4, 1, 8))
    big[2, 0, 1] = 1e300  # finite as given: a cast would change it, refused in any mode
    with pytest.raises(ParamError, match=r"holds 1e\+300 at index \[2, 0, 1\]"):
        checked(big)


def test_cli_complex_and_non_finite_inputs_are_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "xc.npy"
    np.save(path, np.ones((5, 1, 8), np.complex64) * (1 + 1j))
    assert cli_error("run", "--input", str(path)) == (
        f"{path}: input %input has dtype complex64, expected real numbers (bool, integers "
        f"or floats)")
    big = np.zeros((5, 1, 8))
    big[1, 0, 3] = 1e300
    np.save(path := tmp_path / "big.npy", big)
    assert cli_error("run", "--input", str(path)).startswith(
        f"{path}: input %input holds 1e+300 at index [1, 0, 3] (time step 1), beyond the "
        f"range of float32")


# -- 9. size errors from inside jax.jit ----------------------------------------------------------
def test_run_size_error_comes_without_jax_note(model: spikejit.CompiledModel) -> None:
    x = np.zeros((10_000, 2, 8), F32)
    with max_bytes(100_000), pytest.raises(SizeLimitError) as info:
        model(x)
    assert str(info.value).startswith("a run of graph @main over T=10000 steps with a batch "
                                      "of 2")
    assert no_jax_note(info.value), info.value.__notes__
    with max_bytes(100_000), pytest.raises(SizeLimitError) as info:
        spikejit.compile(bundled_model_path(), dt=BUNDLED_DT, remat=5000)(x)
    assert "over T=5000 steps" in str(info.value) and no_jax_note(info.value)


def test_errors_raised_while_tracing_drop_jax_note(model: spikejit.CompiledModel) -> None:
    name = next(iter(model.params))
    bad = {**model.params, name: jnp.zeros((99,))}  # checked inside the jitted program
    with pytest.raises(ParamError, match=rf"^parameter @{re.escape(name)}: expected") as info:
        model.apply(bad, np.zeros((3, 1, 8), F32))
    assert no_jax_note(info.value)


def test_cli_run_size_error_starts_with_the_message(tmp_path: Path) -> None:
    path = tmp_path / "long.npy"
    np.save(path, np.zeros((10_000, 1, 8), F32))  # 320 kB: under the limit; the run is not
    with max_bytes("8G"):  # --max-bytes sets the limit for the process: restored after
        line = cli_error("--max-bytes", "400000", "run", "--input", str(path), "--chunk",
                         "10000")
    assert line.startswith("a run of graph @main over T=10000 steps with a batch of 1"), line
