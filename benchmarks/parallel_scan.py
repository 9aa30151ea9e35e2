"""Sequential vs parallel-in-time scan of linear neurons (``compile(parallel_scan=...)``).

For each neuron (``snn.li``, ``snn.cuba_li``, ``snn.cuba_lif``) and shape ``[T, B, N]`` a
graph ``x -> neuron -> y`` is compiled twice, ``parallel_scan="off"`` (a ``lax.scan`` of
the step) and ``"on"`` (``jax.lax.associative_scan``; for ``snn.cuba_lif`` only the
current), and timed on the forward pass and on the gradient of ``sum(y**2)`` with respect
to the parameters and the input. Both programs are compiled ahead of time and called
*interleaved* (one call of each per round), so a change in the machine's load hits both
alike; the table gives the median time and the median over rounds of the ratio
``sequential / parallel`` (above 1: the parallel scan is faster). No result is asserted.

Usage: ``python -m benchmarks.parallel_scan [--quick] [--rounds 5] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import spikejit

#: ``(T, B, N)`` of the full run; ``[T, B, N]`` float32 arrays up to 330 MB (T = 10,000
#: with N = 2,048 would need 2.6 GB per array and is left out).
FULL_SHAPES: tuple[tuple[int, int, int], ...] = (
    (100, 32, 256), (100, 32, 2048), (1000, 32, 256), (1000, 32, 2048), (10000, 32, 256),
    (100, 1, 16), (1000, 1, 64), (10000, 1, 64))
QUICK_SHAPES: tuple[tuple[int, int, int], ...] = ((100, 32, 256), (1000, 1, 64))
SMOKE_SHAPES: tuple[tuple[int, int, int], ...] = ((8, 2, 4),)
NEURONS: tuple[str, ...] = ("snn.li", "snn.cuba_li", "snn.cuba_lif")


def graph(neuron: str, n: int) -> tuple[spikejit.Graph, dict[str, np.ndarray]]:
    """``x -> neuron -> y`` with ``n`` neurons, ``dt = 1 ms``, taus of 5-20 ms."""
    rng = np.random.default_rng(0)
    fields: dict[str, Any] = {"r": np.ones(n, "f4")}
    if neuron == "snn.li":
        fields["tau"] = rng.uniform(5e-3, 2e-2, n).astype("f4")
    else:
        fields["tau_syn"] = rng.uniform(5e-3, 1e-2, n).astype("f4")
        fields["tau_mem"] = rng.uniform(1e-2, 2e-2, n).astype("f4")
    if neuron == "snn.cuba_lif":
        fields["v_threshold"] = np.full(n, 0.5, "f4")
    b = spikejit.GraphBuilder("bench", dt=1e-3)
    b.input("x", shape=(n,)).add("nrn", neuron, inputs=["x"], **fields)
    return b.output("y", "nrn").build()


def _programs(model: spikejit.CompiledModel, x: jax.Array
              ) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Ahead-of-time compiled forward and gradient calls of ``model`` on ``x``."""
    def loss(p: dict[str, jax.Array], x: jax.Array) -> jax.Array:
        return jnp.sum(model.apply(p, x) ** 2)

    fwd = jax.jit(model.apply).lower(model.params, x).compile()
    grad = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(model.params, x).compile()
    return (lambda: fwd(model.params, x)), (lambda: grad(model.params, x))


def measure(neuron: str, shape: tuple[int, int, int], rounds: int) -> dict[str, Any]:
    """Median times (s) and ratios of both variants, forward and gradient."""
    steps, batch, n = shape
    g, params = graph(neuron, n)
    x = jnp.asarray(np.random.default_rng(1).normal(size=shape).astype("f4"))
    record: dict[str, Any] = {"neuron": neuron, "T": steps, "B": batch, "N": n}
    for phase in ("fwd", "grad"):
        calls = {}
        for mode in ("off", "on"):
            model = spikejit.compile((g, params), parallel_scan=mode)
            fwd, grad = _programs(model, x)
            calls[mode] = fwd if phase == "fwd" else grad
            jax.block_until_ready(calls[mode]())  # warm-up
        times: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(rounds):
            for mode, call in calls.items():
                start = time.perf_counter()
                jax.block_until_ready(call())
                times[mode].append(time.perf_counter() - start)
        ratios = [s / p for s, p in zip(times["off"], times["on"], strict=True)]
        record[phase] = {"sequential_s": float(np.median(times["off"])),
                         "parallel_s": float(np.median(times["on"])),
                         "ratio": float(np.median(ratios))}
    return record


def run(shapes: Sequence[tuple[int, int, int]], rounds: int,
        neurons: Sequence[str] = NEURONS) -> list[dict[str, Any]]:
    """Every neuron on every shape."""
    return [measure(neuron, shape, rounds) for shape in shapes for neuron in neurons]


def table(records: Sequence[dict[str, Any]]) -> str:
    """A markdown table of :func:`run`'s records."""
    lines = ["| neuron | T | B | N | fwd seq (ms) | fwd par (ms) | fwd seq/par | "
             "grad seq (ms) | grad par (ms) | grad seq/par |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        cells = [r["neuron"], str(r["T"]), str(r["B"]), str(r["N"])]
        for phase in ("fwd", "grad"):
            p = r[phase]
            cells += [f"{p['sequential_s'] * 1e3:.2f}", f"{p['parallel_s'] * 1e3:.2f}",
                      f"{p['ratio']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small shapes")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print JSON instead")
    args = parser.parse_args(argv)
    shapes = SMOKE_SHAPES if args.smoke else QUICK_SHAPES if args.quick else FULL_SHAPES
    records = run(shapes, 1 if args.smoke else args.rounds)
    if args.json:
        print(json.dumps({"machine": platform.platform(), "backend": jax.default_backend(),
                          "records": records}, indent=1))
    else:
        print(f"{jax.default_backend()} backend, {platform.processor() or platform.machine()}; "
              f"ratio = sequential / parallel (> 1: parallel faster)")
        print(table(records))


if __name__ == "__main__":
    main()
