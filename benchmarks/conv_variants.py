"""Convolution lowering variants on the CNN workload, against the torch peers, in one process.

Run: ``python -m benchmarks.conv_variants [--steps 10 50] [--batch 32] [--rounds 5]
[--impls ...]``. Every implementation is built from the same workload (``benchmarks.
workloads``), then timed in interleaved rounds (each round runs every implementation once,
forward then training step), so a change in the machine's load hits all alike; the table
shows medians in milliseconds and the median per-round ratio to ``norse-compile``.

Implementations: ``spikejit:<conv_impl>[:<time_block>]`` for each value of ``compile(...,
conv_impl=...)`` (and optionally of ``time_block=``: ``auto``, ``off`` or steps per block),
``spikejit-stepwise:<conv_impl>`` (``schedule="stepwise"``: one scan of the whole
network), the hand-written JAX baseline ``jax`` and the torch peers. XLA flags cannot be
changed inside a process once JAX has started: run this module under different
``XLA_FLAGS`` to compare them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import peers_jax, spikejit_runner
from benchmarks import workloads as wl
from benchmarks.harness import Prepared

DEFAULT_IMPLS = ("norse-compile", "snntorch", "jax", "spikejit:auto", "spikejit:xla:off",
                 "spikejit:custom_vjp:off", "spikejit:custom_vjp:1", "spikejit:custom_vjp:2",
                 "spikejit-stepwise:custom_vjp")
#: One implementation's measurements: ``{"fwd": [s], "train": [s], "spikes": array}``.
Result = dict[str, Any]


def build(impl: str, w: wl.Workload, params: dict[str, np.ndarray], x: np.ndarray) -> Prepared:
    """One implementation of the CNN workload ``w``."""
    if impl == "jax":
        return peers_jax.build(w, params, x)
    if impl.startswith("spikejit"):
        kind, _, rest = impl.partition(":")
        conv_impl, _, block = rest.partition(":")
        opts: dict[str, Any] = {"conv_impl": conv_impl or "auto"}
        if block:
            opts["time_block"] = int(block) if block.isdigit() else block
        if kind == "spikejit-stepwise":
            opts["schedule"] = "stepwise"
        return spikejit_runner.build(w, params, x, **opts)
    if impl in ("spyx", "spyx-layerwise"):
        from benchmarks import peers_spyx

        return peers_spyx.build(impl, w, params, x)
    from benchmarks import peers_torch  # torch only when asked for

    return peers_torch.build(impl, w, params, x)


def _time(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(steps: int, batch: int, impls: tuple[str, ...], rounds: int) -> dict[str, Result]:
    """``{impl: {"fwd": [s], "train": [s], "spikes": array}}`` for one T."""
    w = wl.Workload("cnn", "cnn", steps, batch, 2, 32, image=48, n_out=10)
    params, x = wl.make_params(w), wl.make_input(w)
    built = {i: build(i, w, params, x) for i in impls}
    out: dict[str, Result] = {i: {"fwd": [], "train": []} for i in impls}
    for i, p in built.items():  # warm-up (compiles torch.compile and fills caches)
        assert p.forward is not None and p.train_step is not None
        out[i]["spikes"] = np.asarray(p.forward())
        p.train_step()
    for _ in range(rounds):
        for i, p in built.items():
            assert p.forward is not None and p.train_step is not None
            out[i]["fwd"].append(_time(p.forward))
            out[i]["train"].append(_time(p.train_step))
    return out


def table(steps: int, res: dict[str, Result], ref: str) -> str:
    """Markdown rows: median ms and median per-round ratio to ``ref``."""
    lines = [f"| impl (T={steps}) | fwd ms | fwd+bwd ms | fwd / {ref} | fwd+bwd / {ref} | "
             f"spikes = {ref} |", "|---|---:|---:|---:|---:|---:|"]
    base = res.get(ref)
    for i, r in res.items():
        fwd, tr = statistics.median(r["fwd"]) * 1e3, statistics.median(r["train"]) * 1e3
        if base is not None:
            rf = statistics.median(a / b for a, b in zip(r["fwd"], base["fwd"], strict=True))
            rt = statistics.median(a / b for a, b in zip(r["train"], base["train"], strict=True))
            same = float(np.mean(r["spikes"] == base["spikes"]))
            lines.append(f"| {i} | {fwd:.0f} | {tr:.0f} | {rf:.2f} | {rt:.2f} | {same:.4f} |")
        else:
            lines.append(f"| {i} | {fwd:.0f} | {tr:.0f} | - | - | - |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--impls", nargs="+", default=list(DEFAULT_IMPLS))
    args = ap.parse_args(argv)
    impls = tuple(args.impls)
    ref = "norse-compile" if "norse-compile" in impls else impls[0]
    for steps in args.steps:
        res = run(steps, args.batch, impls, args.rounds)
        print(table(steps, res, ref), flush=True)


if __name__ == "__main__":
    main()
