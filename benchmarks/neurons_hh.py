"""Time per step of a 10,000-neuron Hodgkin-Huxley population (``bio.hh``).

Three ways to run the same 10,000 neurons, each compiled once (``spikejit.compile``) and
timed warm (best of ``--repeats`` calls, after ``block_until_ready``):

* ``layer``: one graph whose HH layer has 10,000 neurons, batch 1;
* ``batch``: one neuron per sample, batch 10,000 (the same program vectorised over B);
* ``vmap``: ``jax.vmap`` of ``model.apply`` over 10,000 parameter sets (a per-neuron
  ``g_na`` sweep) of a one-neuron graph.

The NumPy reference interpreter is timed on the ``layer`` graph for comparison (fewer
steps). Usage: ``python benchmarks/neurons_hh.py [--neurons 10000] [--steps 2000] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

import spikejit


def _graph(n: int, **fields: Any) -> tuple[spikejit.Graph, dict[str, np.ndarray]]:
    b = spikejit.GraphBuilder("hh_population")
    b.input("i", shape=(n,)).add("hh", "bio.hh", inputs=["i"], **fields)
    return b.output("spikes", "hh").build()


def _best(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def _timed(name: str, fn: Callable[[], Any], steps: int, repeats: int) -> dict[str, Any]:
    start = time.perf_counter()
    out = jax.block_until_ready(fn())  # first call: trace + XLA compile + run
    first = time.perf_counter() - start
    warm = _best(fn, repeats)
    return {"mode": name, "first_call_s": first, "warm_s": warm,
            "us_per_step": warm / steps * 1e6, "spikes": float(np.asarray(out).sum())}


def run(neurons: int, steps: int, repeats: int, interp_steps: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    current = rng.uniform(0.0, 20.0, neurons).astype(np.float32)  # uA/cm^2, constant step
    results = []

    graph, params = _graph(neurons)
    model = spikejit.compile((graph, params))
    x_layer = np.broadcast_to(current, (steps, 1, neurons))
    results.append(_timed("layer", lambda: model(x_layer), steps, repeats))

    g1, p1 = _graph(1)
    single = spikejit.compile((g1, p1))
    x_batch = np.ascontiguousarray(current.reshape(1, neurons, 1).repeat(steps, axis=0))
    results.append(_timed("batch", lambda: single(x_batch), steps, repeats))

    g_na = rng.uniform(100.0, 140.0, neurons).astype(np.float32)
    g2, p2 = _graph(1, g_na=np.float32(120.0))
    swept = spikejit.compile((g2, p2))
    x_one = np.full((steps, 1, 1), 10.0, np.float32)
    sweep = jax.jit(jax.vmap(lambda g: swept.apply({"hh.g_na": g}, x_one)))
    results.append(_timed("vmap", lambda: sweep(g_na), steps, repeats))

    x_small = np.asarray(x_layer[:interp_steps])
    start = time.perf_counter()
    spikejit.interpret(graph, params, x_small, dtype=np.float32)
    seconds = time.perf_counter() - start
    results.append({"mode": "interpreter (numpy)", "first_call_s": seconds, "warm_s": seconds,
                    "us_per_step": seconds / interp_steps * 1e6, "spikes": float("nan")})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=2_000, help="default 2000 = 20 ms")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--interp-steps", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = run(args.neurons, args.steps, args.repeats, args.interp_steps)
    if args.json:
        print(json.dumps({"neurons": args.neurons, "steps": args.steps, "dt_s": 1e-5,
                          "backend": jax.default_backend(), "results": results}, indent=2))
        return
    print(f"bio.hh, {args.neurons} neurons, {args.steps} steps of 0.01 ms, "
          f"jax {jax.__version__} on {jax.default_backend()} ({platform.processor() or '?'})")
    print(f"{'mode':<22}{'first call s':>14}{'warm s':>10}{'us/step':>10}{'ns/neuron-step':>16}")
    for r in results:
        per_neuron = r["us_per_step"] * 1e3 / args.neurons
        print(f"{r['mode']:<22}{r['first_call_s']:>14.3f}{r['warm_s']:>10.3f}"
              f"{r['us_per_step']:>10.1f}{per_neuron:>16.2f}")


if __name__ == "__main__":
    main()
