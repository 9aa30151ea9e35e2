"""Shared checks of the pass tests: a pass must change nothing a user can observe."""

from __future__ import annotations

from typing import Any

import numpy as np
from strategies import random_input, random_params

from spikejit.ir import Graph, interpret, verify
from spikejit.ir.types import TensorType
from spikejit.passes import ALL_PASSES


def user_params(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Random values for exactly the graph's user parameters: ``random_params`` for those
    nodes read, a value chosen by the name's last part for those only derivations read."""
    rng = np.random.default_rng(seed + 1000)
    base = random_params(graph, seed)
    out: dict[str, np.ndarray] = {}
    dt = graph.attrs.dt or 1.0
    for name, ref in graph.user_param_refs().items():
        if name in base:
            out[name] = base[name]
            continue
        shape, field = ref.type.shape, name.rsplit(".", 1)[-1]
        if field == "weight":
            value = rng.normal(0.0, 1.5 / np.sqrt(max(shape[-1] if shape else 1, 1)), shape)
        elif field.startswith("tau"):
            value = dt * rng.uniform(1.5, 8.0, shape)
        elif "threshold" in field:
            value = rng.uniform(0.1, 0.8, shape)
        else:
            value = rng.uniform(-1.0, 1.0, shape)
        out[name] = value.astype(np.float32)
    return out


def assert_same_outputs(before: Graph, after: Graph, params: dict[str, Any], x: Any,
                        *, exact: bool = False) -> None:
    """Interpret both graphs in float64: spikes identical, values within 1e-6 (or
    bit-identical with ``exact``)."""
    y0 = interpret(before, params, x, dtype=np.float64)
    y1 = interpret(after, params, x, dtype=np.float64)
    if not isinstance(y0, dict):
        y0, y1 = {"y": y0}, {"y": y1}
    assert set(y0) == set(y1)
    for k in y0:
        node = before.node(k) if k in before else None
        spike = node is not None and isinstance(node.type, TensorType) and node.type.spike
        if exact or spike:
            np.testing.assert_array_equal(y1[k], y0[k], err_msg=f"output {k}")
        else:
            np.testing.assert_allclose(y1[k], y0[k], rtol=0, atol=1e-6, err_msg=f"output {k}")


def check_pass(graph: Graph, pipeline: str, seed: int = 0, steps: int = 6,
               exact: bool = False) -> Graph:
    """Run ``pipeline`` and check everything a pass promises; returns the result."""
    from spikejit.passes import run_passes

    after = run_passes(graph, pipeline)
    verify(after)
    assert after.user_param_refs() == graph.user_param_refs()
    params = user_params(graph, seed)
    x = random_input(graph, steps, 2, seed)
    assert_same_outputs(graph, after, params, x, exact=exact)
    return after


__all__ = ["ALL_PASSES", "assert_same_outputs", "check_pass", "user_params"]
