"""Multi-device checks of ``compile(..., mesh=...)``, run in a subprocess.

``XLA_FLAGS=--xla_force_host_platform_device_count=4`` must be set before JAX is imported,
so ``tests/lowering/test_sharding.py`` runs this file as a script (``python
helpers_sharding.py``) with that environment. Every check compares the sharded model with
the same model on one device (outputs, final state, traces, parameter gradients); the script
prints one JSON line ``{check name: "ok" or the traceback}``.
"""

from __future__ import annotations

import json
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from helpers_lowering import chain, params_for, recurrent, ref, spike_input

import spikejit
from spikejit.errors import NonFiniteError, OptionError
from spikejit.ir import ops as O

DEVICES = 4
ROOT = Path(__file__).resolve().parents[1]
COLLECTIVES = r"all-gather|all-reduce|all-to-all|collective-permute|reduce-scatter"


def feedforward() -> Any:
    """``x -> fc -> lif -> ro -> li -> y``: every node layerwise."""
    return chain((3,),
                 ("fc", O.Affine(weight=ref("fc.weight", (5, 3)), bias=ref("fc.bias", (5,)))),
                 ("lif", O.LIF(tau=ref("lif.tau", (5,)), v_threshold=ref("lif.v_threshold",
                                                                          (5,)))),
                 ("ro", O.Linear(weight=ref("ro.weight", (2, 5)))),
                 ("li", O.LI(tau=ref("li.tau", (2,)))))


def _graph(kind: str) -> tuple[Any, dict[str, np.ndarray]]:
    graph = feedforward() if kind == "feedforward" else recurrent(3, 4, delay=2)
    params = params_for(graph, seed=1)
    for name in params:  # enough drive for spikes in a few steps
        if name.endswith("weight"):
            params[name] = params[name] * 3.0
    return graph, params


def _close(got: Any, want: Any, what: str, rtol: float = 1e-6, atol: float = 1e-6) -> None:
    got_leaves, want_leaves = jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want), what
    for g, w in zip(got_leaves, want_leaves, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=rtol, atol=atol,
                                   err_msg=what)


def _split_over_devices(a: jax.Array, batch_dim: int) -> None:
    """``a`` lives on all devices, each holding ``B / DEVICES`` samples."""
    assert len(a.sharding.device_set) == DEVICES, a.sharding
    shard = a.addressable_shards[0].data.shape
    assert shard[batch_dim] == a.shape[batch_dim] // DEVICES, (a.shape, shard)


def _loss(model: Any, x: Any) -> Callable[[Any], jax.Array]:
    def loss(params: Any) -> jax.Array:
        y = model.apply(params, x)
        weights = jnp.arange(1.0, y.shape[-1] + 1.0)
        return jnp.mean(y * weights) + jnp.mean(y ** 2)
    return loss


def _same_as_one_device(kind: str) -> None:
    graph, params = _graph(kind)
    mesh = jax.make_mesh((DEVICES,), ("batch",))
    one = spikejit.compile((graph, params))
    many = spikejit.compile((graph, params), mesh=mesh)
    x = spike_input((11, 8, 3), seed=2, p=0.5)
    y1, s1, t1 = one(x, return_state=True, trace=True)
    y4, s4, t4 = many(x, return_state=True, trace=True)
    assert float(jnp.mean(y1)) != 0.0
    _close(y4, y1, "outputs")
    _close(s4, s1, "state")
    _close(t4, t1, "traces")
    _split_over_devices(y4, 1)
    for entry in s4.values():
        for var, value in entry.items():
            _split_over_devices(value, 1 if var in ("buffer", "history") else 0)
    for entry in t4.values():
        for value in entry.values():
            _split_over_devices(value, 1)
    # Continuing from the returned (sharded) state.
    _close(many(x, s4), one(x, s1), "outputs after a carried state")
    # Gradients: plain jax.grad, and under the caller's own jax.jit.
    g1 = jax.grad(_loss(one, x))(one.params)
    g4 = jax.grad(_loss(many, x))(many.params)
    assert any(float(jnp.max(jnp.abs(v))) > 0 for v in g1.values())
    _close(g4, g1, "gradients", rtol=1e-5, atol=1e-7)
    g4j = jax.jit(jax.grad(_loss(many, x)))(many.params)
    _close(g4j, g1, "gradients under jax.jit", rtol=1e-5, atol=1e-7)
    for value in g4j.values():
        assert len(value.sharding.device_set) == DEVICES and value.sharding.is_fully_replicated


def check_feedforward() -> None:
    _same_as_one_device("feedforward")


def check_recurrent() -> None:
    _same_as_one_device("recurrent")


def check_init_state_and_jit_apply() -> None:
    graph, params = _graph("recurrent")
    mesh = jax.make_mesh((DEVICES,), ("batch",))
    one = spikejit.compile((graph, params))
    many = spikejit.compile((graph, params), mesh=mesh)
    state = many.init_state(8)
    for entry in state.values():
        for var, value in entry.items():
            _split_over_devices(value, 1 if var == "history" else 0)
    x = spike_input((9, 8, 3), seed=3, p=0.5)
    fn = jax.jit(lambda p, xx, s: many.apply(p, xx, s, return_state=True, trace=["lif"]))
    y4, s4, t4 = fn(many.params, x, state)
    y1, s1, t1 = one(x, return_state=True, trace=["lif"])
    _close((y4, s4, t4), (y1, s1, t1), "apply under jax.jit")
    _split_over_devices(y4, 1)
    # with_params keeps the mesh and shares the jitted function (no retrace).
    many(x)
    count = many.trace_count
    many.with_params(many.params)(x)
    many(x)
    assert many.trace_count == count, (many.trace_count, count)


def check_remat() -> None:
    graph, params = _graph("recurrent")
    mesh = jax.make_mesh((DEVICES,), ("batch",))
    one = spikejit.compile((graph, params))
    many = spikejit.compile((graph, params), mesh=mesh, remat=4)
    x = spike_input((11, 8, 3), seed=4, p=0.5)
    _close(many(x, return_state=True, trace=True), one(x, return_state=True, trace=True),
           "remat outputs, state, traces")
    _split_over_devices(many(x), 1)
    _close(jax.grad(_loss(many, x))(many.params), jax.grad(_loss(one, x))(one.params),
           "remat gradients", rtol=1e-5, atol=1e-7)


def check_forward_is_local() -> None:
    """Each device runs its samples alone: the forward program has no collective; the
    gradient has the all-reduce of the replicated parameters."""
    graph, params = _graph("recurrent")
    many = spikejit.compile((graph, params), mesh=jax.make_mesh((DEVICES,), ("batch",)))
    x = spike_input((6, 8, 3), seed=5)
    forward = jax.jit(lambda p: many.apply(p, x)).lower(many.params).compile().as_text()
    assert not re.findall(COLLECTIVES, forward), sorted(set(re.findall(COLLECTIVES, forward)))
    backward = jax.jit(jax.grad(_loss(many, x))).lower(many.params).compile().as_text()
    assert "all-reduce" in backward


def check_two_axis_mesh() -> None:
    graph, params = _graph("recurrent")
    mesh = jax.make_mesh((2, 2), ("data", "model"))
    one = spikejit.compile((graph, params))
    x = spike_input((7, 8, 3), seed=6, p=0.5)
    want = one(x, return_state=True)
    g1 = jax.grad(_loss(one, x))(one.params)
    for axis, devices in ((None, 4), ("data", 2), (("model", "data"), 4)):
        many = spikejit.compile((graph, params), mesh=mesh, mesh_axis=axis)
        assert many.data_parallel is not None and many.data_parallel.size == devices
        got = many(x, return_state=True)
        _close(got, want, f"mesh_axis={axis!r}")
        shard = got[0].addressable_shards[0].data.shape
        assert shard[1] == 8 // devices, (axis, shard)
        _close(jax.grad(_loss(many, x))(many.params), g1, f"gradients, mesh_axis={axis!r}",
               rtol=1e-5, atol=1e-7)


def check_explicit_mesh_context() -> None:
    """Under ``jax.set_mesh`` with an Explicit mesh (``jax.make_mesh``'s default) and data
    placed with ``jax.device_put(x, P(None, 'batch'))``."""
    graph, params = _graph("recurrent")
    mesh = jax.make_mesh((DEVICES,), ("batch",))
    one = spikejit.compile((graph, params))
    many = spikejit.compile((graph, params), mesh=mesh)
    x = spike_input((7, 8, 3), seed=7, p=0.5)
    g1 = jax.grad(_loss(one, x))(one.params)
    with jax.set_mesh(mesh):
        xs = jax.device_put(x, jax.P(None, "batch"))
        grads = jax.jit(jax.grad(lambda p, xx: _loss(many, xx)(p)))(many.params, xs)
        y = jax.jit(many.apply)(many.params, xs)
    _close(grads, g1, "gradients under set_mesh", rtol=1e-5, atol=1e-7)
    _close(y, one(x), "outputs under set_mesh")
    other = jax.make_mesh((2, 2), ("a", "b"))
    with jax.set_mesh(other):
        try:
            jax.jit(many.apply)(many.params, x)
        except OptionError as e:
            assert "jax.set_mesh" in str(e), e
        else:
            raise AssertionError("a different context mesh was accepted")


def check_vmap_over_params() -> None:
    graph, params = _graph("feedforward")
    many = spikejit.compile((graph, params), mesh=jax.make_mesh((DEVICES,), ("batch",)))
    one = spikejit.compile((graph, params))
    x = spike_input((5, 8, 3), seed=8, p=0.5)
    stack = jax.tree_util.tree_map(lambda a: jnp.stack([a, 0.5 * a]), many.params)
    ys = jax.vmap(lambda p: many.apply(p, x))(stack)
    _close(ys[0], one(x), "vmap member 0")
    _close(ys[1], one.with_params(jax.tree_util.tree_map(lambda a: 0.5 * a, one.params))(x),
           "vmap member 1")


def check_check_finite() -> None:
    graph, params = _graph("recurrent")
    mesh = jax.make_mesh((DEVICES,), ("batch",))
    x = spike_input((9, 8, 3), seed=9)
    x[6, 1, 0] = np.nan  # on device 0, step 6
    x[4, 7, 2] = np.inf  # on device 3, step 4: the earliest
    found = []
    for options in ({}, {"mesh": mesh}):
        model = spikejit.compile((graph, params), check_finite=True, **options)
        try:
            model(x)
        except NonFiniteError as e:
            found.append((e.node_id, e.step))
        else:
            raise AssertionError("no NonFiniteError")
    assert found[0] == found[1] == ("x", 4), found
    clean = np.where(np.isfinite(x), x, 0)
    spikejit.compile((graph, params), check_finite=True, mesh=mesh)(clean)  # no error


def check_batch_not_divisible() -> None:
    graph, params = _graph("recurrent")
    many = spikejit.compile((graph, params), mesh=jax.make_mesh((DEVICES,), ("batch",)))
    x = spike_input((5, 6, 3))
    for call in (lambda: many(x), lambda: jax.jit(many.apply)(many.params, x),
                 lambda: many.init_state(6)):
        try:
            call()
        except OptionError as e:
            text = str(e)
            assert "mesh" in text and "B=6" in text and "4 devices" in text, text
        else:
            raise AssertionError("a batch of 6 over 4 devices was accepted")


def check_reduce() -> None:
    """Outputs reduced over time (``apply(..., reduce=...)``) come back ``[B, ...]``, split."""
    graph, params = _graph("recurrent")
    mesh = jax.make_mesh((DEVICES,), ("batch",))
    one = spikejit.compile((graph, params))
    x = spike_input((10, 8, 3), seed=10, p=0.5)
    for remat in (None, 3):
        many = spikejit.compile((graph, params), mesh=mesh, remat=remat)
        for how in ("sum", "mean", "last"):
            got = many(x, reduce=how, return_state=True)
            _close(got, one(x, reduce=how, return_state=True), f"reduce={how}, remat={remat}")
            _split_over_devices(got[0], 0)


def check_docs_snippet() -> None:
    """The code blocks of docs/scaling.md marked ``python`` run as written, in order."""
    doc = ROOT / "docs" / "scaling.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    assert blocks
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(doc), "exec"), namespace)  # our own docs


CHECKS: dict[str, Callable[[], None]] = {
    name[len("check_"):]: fn for name, fn in sorted(globals().items())
    if name.startswith("check_") and callable(fn)
}


def main(names: list[str]) -> int:
    assert len(jax.devices()) == DEVICES, jax.devices()
    report = {}
    for name in names or list(CHECKS):
        try:
            CHECKS[name]()
            report[name] = "ok"
        except Exception:  # reported to the test, which shows it
            report[name] = traceback.format_exc()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
