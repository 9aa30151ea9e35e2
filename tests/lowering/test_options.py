"""``spikejit.CompileOptions``: the keyword and ``options=`` forms build the same object,
every invalid value and incompatible combination is a named ``OptionError``, and
``check_finite`` works under the one time-tiling path (``time_block`` and checkpointed
tiles)."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers_lowering import params_for, recurrent, ref

import spikejit
from spikejit.errors import NonFiniteError, OptionError, PassError
from spikejit.ir import Graph, GraphAttrs, Node, TensorType, Use, infer_types
from spikejit.ir import ops as O
from spikejit.lowering.surrogates import DEFAULT_SURROGATE
from spikejit.options import CHOICES, GROUPS, KNOWN, CompileOptions, choices


def _source() -> tuple[Graph, dict[str, np.ndarray]]:
    g = recurrent()
    return g, params_for(g, seed=3)


def scaled() -> tuple[Graph, dict[str, np.ndarray]]:
    """``x -> s (x 1e30) -> lif -> y``: a big input overflows at ``s``, a computed node."""
    nodes = (
        Node("x", O.Input(type=TensorType((3,)))),
        Node("s", O.Scale(scale=ref("s.scale", (3,))), (Use("x"),)),
        Node("lif", O.LIF(tau=ref("lif.tau", ()), v_threshold=ref("lif.v_threshold", ())),
             (Use("s"),)),
        Node("y", O.Output(), (Use("lif"),)),
    )
    g = infer_types(Graph(nodes, attrs=GraphAttrs(dt=1e-3)))
    params = {"s.scale": np.full(3, 1e30, np.float32), "lif.tau": np.float32(5e-3),
              "lif.v_threshold": np.float32(0.5)}
    return g, params


# -- the two forms ---------------------------------------------------------------------------
def test_keyword_and_options_forms_build_the_same_model() -> None:
    src = _source()
    kw = spikejit.compile(src, schedule="stepwise", remat=3, unroll=2, spike_ad="vjp")
    opts = CompileOptions(schedule="stepwise", remat=3, unroll=2, spike_ad="vjp")
    ob = spikejit.compile(src, options=opts)
    assert kw.options == ob.options == opts
    assert kw.program is ob.program  # same lowering options: the same cached program
    x = np.random.default_rng(0).random((7, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(kw(x), ob(x))


def test_keywords_override_options() -> None:
    base = CompileOptions(schedule="stepwise", unroll=2)
    model = spikejit.compile(_source(), options=base, unroll=4)
    assert model.options == CompileOptions(schedule="stepwise", unroll=4)
    assert model.options.replace(unroll=2) == base
    # The combination is checked as a whole.
    with pytest.raises(OptionError, match="both set the steps per time tile"):
        spikejit.compile(_source(), options=CompileOptions(remat=4), time_block=2)


def test_defaults_and_groups() -> None:
    opts = CompileOptions()
    assert spikejit.compile(_source()).options == opts
    assert set(GROUPS) == set(KNOWN) == {f.name for f in _fields()}
    assert {GROUPS[k] for k in KNOWN} == {"frontend", "pipeline", "lowering", "execution"}
    assert CompileOptions.group("remat") == "execution"
    assert opts.lowering().surrogate.surrogate.name == DEFAULT_SURROGATE
    assert opts.data_parallel() is None and opts.frontend_overrides() == {}
    assert CompileOptions(dt=1e-3, reset="subtract").frontend_overrides() == {
        "dt": 1e-3, "reset": "subtract"}
    assert CompileOptions(passes=["cse", "dce"]) == CompileOptions(passes=("cse", "dce"))


def _fields() -> Any:
    return [f for f in dataclasses.fields(CompileOptions) if f.init]


def test_with_params_keeps_the_options() -> None:
    model = spikejit.compile(_source(), remat=2)
    again = model.with_params(model.params)
    assert again.options is model.options and again.remat == 2


def test_cli_choices_are_the_options_choices() -> None:
    cli_app = importlib.import_module("spikejit.cli.app")  # the package exports the Typer app
    assert tuple(m.value for m in cli_app.Schedule) == CHOICES["schedule"]
    assert tuple(m.value for m in cli_app.Reset) == CHOICES["reset"]
    assert choices("spike_ad") == ("jvp", "vjp")
    assert "custom_vjp" in choices("conv_impl")


# -- every invalid value and combination, named ----------------------------------------------
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"schedule": "fast"}, "compile: schedule must be one of auto, layerwise, stepwise"),
    ({"order": "gauss"}, "compile: order must be one of dfs, jacobi, got 'gauss'"),
    ({"parallel_scan": True}, "compile: parallel_scan must be one of auto, off, on"),
    ({"reset": "zero"}, "compile: reset must be one of 'value', 'subtract', got 'zero'"),
    ({"cuba_current": "mid"}, "compile: cuba_current must be one of 'post', 'pre'"),
    ({"method": "rk4"}, "compile: method must be one of 'euler', 'exp', got 'rk4'"),
    ({"spike_ad": "fwd"}, "spike_ad must be one of 'jvp', 'vjp', got 'fwd'"),
    ({"detach_reset": 1}, "detach_reset must be True or False, got 1"),
    ({"unroll": 0}, "unroll must be an integer >= 1, got 0"),
    ({"unroll": True}, "unroll must be an integer >= 1, got True"),
    ({"conv_impl": "im2col"}, "conv_impl must be one of 'auto', 'xla'"),
    ({"check_finite": "yes"}, "check_finite must be True or False, got 'yes'"),
    ({"remat": 0}, "compile: remat must be a number of steps per checkpointed chunk"),
    ({"remat": 2.5}, "compile: remat must be a number of steps per checkpointed chunk"),
    ({"time_block": "always"}, "time_block must be 'auto', 'off' or a number of steps"),
    ({"time_block": 0}, "time_block must be 'auto', 'off' or a number of steps"),
    ({"mesh": "batch"}, "compile: mesh must be a jax.sharding.Mesh"),
    ({"mesh_axis": "batch"}, "compile: mesh_axis='batch' needs mesh="),
    ({"surrogate": "erf"}, "unknown surrogate 'erf'"),
    ({"surrogate_params": {"beta": 1.0}}, "surrogate 'fast_sigmoid' has no parameter 'beta'"),
    ({"passes": 3}, "compile: passes must be a pipeline string, a list of pass names"),
    ({"passes": "schedule"}, "compile: leave 'schedule' out of passes"),
    # incompatible combinations
    ({"remat": 4, "time_block": 2}, "compile: remat=4 and time_block=2 both set the steps per "
                                    "time tile; give one of them"),
])
def test_invalid_options_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionError) as err:
        CompileOptions(**kwargs)
    assert message in str(err.value)
    with pytest.raises(OptionError) as err:  # the keyword form: the same check, before I/O
        spikejit.compile("no-such-file.nir", **kwargs)
    assert message in str(err.value)


def test_unknown_keyword_and_wrong_options_type() -> None:
    with pytest.raises(OptionError, match=r"compile: unknown option\(s\) speed; known: dt,"):
        spikejit.compile(_source(), speed="max")
    with pytest.raises(OptionError, match=r"options must be a spikejit\.CompileOptions, got dict"):
        spikejit.compile(_source(), options={"remat": 3})  # type: ignore[arg-type]
    with pytest.raises(PassError, match="unknown pass 'fold-everything'"):
        CompileOptions(passes="fold-everything")
    with pytest.raises(dataclasses.FrozenInstanceError):
        CompileOptions().remat = 3  # type: ignore[misc]


def test_remat_with_time_block_policy_is_allowed() -> None:
    # A policy name leaves the tile size to remat: only two sizes conflict.
    assert CompileOptions(remat=4, time_block="off").remat == 4
    assert CompileOptions(remat=4).time_block == "auto"


# -- check_finite under time tiling ----------------------------------------------------------
@pytest.mark.parametrize("block", [2, 3])
@pytest.mark.parametrize("step", [0, 1, 4, 5])
def test_check_finite_names_node_and_step_across_time_blocks(block: int, step: int) -> None:
    g, params = scaled()
    x = np.zeros((6, 2, 3), np.float32)
    x[step, 1, 2] = 1e20  # finite input; x 1e30 overflows at %s
    plain = spikejit.compile((g, params), time_block="off", check_finite=True)
    tiled = spikejit.compile((g, params), time_block=block, check_finite=True)
    errors = []
    for model in (plain, tiled):
        with pytest.raises(NonFiniteError) as err:
            model(x)
        errors.append(err.value)
    assert [(e.node_id, e.step) for e in errors] == [("s", step)] * 2
    assert str(errors[1]) == str(errors[0])


def test_check_finite_under_time_blocks_keeps_values_and_gradients() -> None:
    g, params = scaled()
    params = {**params, "s.scale": np.full(3, 2.0, np.float32)}
    x = jnp.asarray(np.random.default_rng(1).random((6, 2, 3)), jnp.float32)
    plain = spikejit.compile((g, params), time_block="off")
    tiled = spikejit.compile((g, params), time_block=2, check_finite=True)
    y0, s0, t0 = plain(x, return_state=True, trace=True)
    y1, s1, t1 = tiled(x, return_state=True, trace=True)
    jax.tree_util.tree_map(np.testing.assert_allclose, (y1, s1, t1), (y0, s0, t0))

    def loss(model: spikejit.CompiledModel) -> Any:
        return jax.grad(lambda p: jnp.sum(model.apply(p, x) * jnp.arange(6.0)[:, None, None]))

    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5),
                           loss(tiled)(tiled.params), loss(plain)(plain.params))


@pytest.mark.parametrize(("tile", "step"), [(2, 3), (4, 5), (4, 1)])
def test_check_finite_in_checkpointed_tiles(tile: int, step: int) -> None:
    """The remat path (checkpointed tiles, one shorter tile for the rest) carries the same
    report, in the program and through ``compile(..., remat=C, check_finite=True)``."""
    g, params = scaled()
    model = spikejit.compile((g, params), time_block="off", check_finite=True)
    x = np.zeros((6, 2, 3), np.float32)
    x[step, 0, 1] = 1e20
    _, _, _, report = model.program(model.params, x, None, (), tile=tile)
    assert model.program.nonfinite_node(report) == ("s", step)
    _, _, _, clean = model.program(model.params, np.zeros_like(x), None, (), tile=tile)
    assert model.program.nonfinite_node(clean) is None
    remat = spikejit.compile((g, params), remat=tile, check_finite=True)
    with pytest.raises(NonFiniteError) as err:
        remat(x)
    assert (err.value.node_id, err.value.step) == ("s", step)
    np.testing.assert_array_equal(np.asarray(remat(np.zeros_like(x))),
                                  np.asarray(model(np.zeros_like(x))))
