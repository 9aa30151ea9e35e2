"""compile(..., mesh=...): data parallelism over the devices of a jax.sharding.Mesh.

The multi-device checks need ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` before
JAX is imported, so they run in one subprocess (``tests/helpers_sharding.py``, which also
runs the code of docs/scaling.md); each check is reported as its own test here. The
in-process tests use a one-device mesh and the compile-time option errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers_lowering import params_for, recurrent, spike_input
from helpers_sharding import CHECKS

import spikejit
from spikejit.errors import OptionError

HELPER = Path(__file__).resolve().parents[1] / "helpers_sharding.py"


@pytest.fixture(scope="module")
def four_devices() -> dict[str, str]:
    """``{check: "ok" or traceback}`` from one run of every check on 4 CPU devices."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    # This checkout's spikejit and test helpers, whatever is installed.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HELPER.parents[1]), str(HELPER.parent), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run([sys.executable, str(HELPER)], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    return json.loads(lines[-1])


@pytest.mark.slow
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_on_four_devices(four_devices: dict[str, str], check: str) -> None:
    result = four_devices.get(check, "not run")
    assert result == "ok", result


def _rnn() -> tuple[object, dict[str, np.ndarray]]:
    graph = recurrent(3, 4, delay=2)
    return graph, params_for(graph, seed=1)


def test_one_device_mesh_equals_no_mesh() -> None:
    graph, params = _rnn()
    mesh = jax.make_mesh((1,), ("batch",))
    plain = spikejit.compile((graph, params))
    model = spikejit.compile((graph, params), mesh=mesh)
    assert model.data_parallel is not None and model.data_parallel.size == 1
    x = spike_input((9, 3, 3), seed=2, p=0.5)
    want = plain(x, return_state=True, trace=["lif"])
    got = model(x, return_state=True, trace=["lif"])
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want),
                    strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)

    def loss(m: spikejit.CompiledModel) -> object:
        return lambda p: jnp.sum(m.apply(p, x) ** 2)

    g0 = jax.grad(loss(plain))(plain.params)
    g1 = jax.jit(jax.grad(loss(model)))(model.params)
    for name in g0:
        np.testing.assert_allclose(np.asarray(g1[name]), np.asarray(g0[name]), rtol=1e-5,
                                   atol=1e-7, err_msg=name)
    y = model(x, model.init_state(3))
    np.testing.assert_allclose(np.asarray(y), np.asarray(want[0]), atol=1e-6)
    assert model.with_params(model.params).data_parallel == model.data_parallel


@pytest.mark.parametrize(("options", "message"), [
    ({"mesh": "batch"}, "mesh must be a jax.sharding.Mesh"),
    ({"mesh": jax.devices()}, "mesh must be a jax.sharding.Mesh"),
    ({"mesh_axis": "batch"}, "mesh_axis='batch' needs mesh="),
    ({"mesh_axis": "data", "mesh": "M"}, "mesh_axis 'data' is not an axis of the mesh; its "
                                         "axes: 'batch'"),
    ({"mesh_axis": ("batch", "batch"), "mesh": "M"}, "mesh_axis names an axis twice"),
    ({"mesh_axis": 0, "mesh": "M"}, "mesh_axis must be a mesh axis name"),
    ({"mesh_axis": (), "mesh": "M"}, "mesh_axis must be a mesh axis name"),
])
def test_option_errors(options: dict[str, object], message: str) -> None:
    if options.get("mesh") == "M":
        options = {**options, "mesh": jax.make_mesh((1,), ("batch",))}
    with pytest.raises(OptionError, match=r"^compile: ") as err:
        spikejit.compile(_rnn(), **options)
    assert message in str(err.value)


def test_no_mesh_no_data_parallel() -> None:
    assert spikejit.compile(_rnn()).data_parallel is None
