"""compile(..., remat=C): chunked, checkpointed time axis gives the same values, state,
traces and gradients as one call, and really checkpoints (the jaxpr holds a remat)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from strategies import random_input, random_params

import spikejit
from spikejit.errors import OptionError
from spikejit.ir import Graph, GraphAttrs, Node, ParamRef, TensorType, Use, infer_types
from spikejit.ir import ops as O


def rnn() -> Graph:
    t = lambda *s: TensorType(tuple(s))  # noqa: E731
    return infer_types(Graph((
        Node("x", O.Input(type=t(3))),
        Node("fc", O.Affine(weight=ParamRef("fc.weight", t(5, 3)), bias=ParamRef("fc.bias", t(5))),
             (Use("x"),)),
        Node("lif", O.LIF(tau=ParamRef("lif.tau", t(5)), v_threshold=ParamRef("lif.v_threshold",
                                                                             t(5))),
             (Use("fc"), Use("rec", 1))),
        Node("rec", O.Linear(weight=ParamRef("rec.weight", t(5, 5))), (Use("lif"),)),
        Node("ro", O.Linear(weight=ParamRef("ro.weight", t(2, 5))), (Use("lif"),)),
        Node("li", O.LI(tau=ParamRef("li.tau", t(2))), (Use("ro"),)),
        Node("y", O.Output(), (Use("li"),)),
    ), attrs=GraphAttrs(dt=1e-3)))


@pytest.mark.parametrize("chunk", [1, 4, 7, 50])
def test_remat_equals_one_call(chunk: int) -> None:
    graph = rnn()
    params = random_params(graph, seed=1)
    x = random_input(graph, 23, 2, seed=2)
    plain = spikejit.compile((graph, params))
    chunked = spikejit.compile((graph, params), remat=chunk)
    y0, s0, t0 = plain(x, return_state=True, trace=["lif"])
    y1, s1, t1 = chunked(x, return_state=True, trace=["lif"])
    np.testing.assert_allclose(np.asarray(y1), np.asarray(y0), rtol=1e-6, atol=1e-6)
    for a, b in zip(jax.tree_util.tree_leaves((s0, t0)), jax.tree_util.tree_leaves((s1, t1)),
                    strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6, atol=1e-6)

    def loss(model):
        return lambda p: jnp.sum(model.apply(p, x) ** 2)

    g0 = jax.grad(loss(plain))(plain.params)
    g1 = jax.grad(loss(chunked))(chunked.params)
    for name in g0:
        np.testing.assert_allclose(np.asarray(g1[name]), np.asarray(g0[name]), rtol=1e-4,
                                   atol=1e-6, err_msg=name)


def test_remat_checkpoints_and_validates() -> None:
    graph = rnn()
    params = random_params(graph)
    model = spikejit.compile((graph, params), remat=5)
    x = random_input(graph, 20, 1)
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda p: jnp.sum(model.apply(p, x))))(model.params))
    assert "remat" in jaxpr or "checkpoint" in jaxpr
    with pytest.raises(OptionError, match="remat must be a number of steps"):
        spikejit.compile((graph, params), remat=0)
    # check_finite works with remat since the one time-tiling path (issue 16): see
    # tests/lowering/test_options.py::test_check_finite_in_checkpointed_tiles.
    spikejit.compile((graph, params), remat=5, check_finite=True)
