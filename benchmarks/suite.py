"""Run the suite: every implementation on every workload, one record per (workload, impl).

Workloads 1-3 run all implementations in this process, one after the other, on the same
arrays. The long sequence runs each implementation in a child process under an address-space
limit (``RLIMIT_AS``): several of them need more memory than the machine has, and a child
that fails to allocate reports "out of memory" instead of taking the suite (or a colleague's
job) down with the kernel's OOM killer. Its peak memory is then the child's own.
"""

from __future__ import annotations

import gc
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmarks import harness
from benchmarks import workloads as wl

Mode = Literal["full", "quick", "smoke"]

#: Every implementation, baseline first (ratios and agreement are relative to it).
IMPLS: tuple[str, ...] = ("jax", "spikejit", "spikejit-remat", "snntorch", "norse",
                          "norse-compile", "spyx", "spyx-layerwise")
BASELINE = "jax"


@dataclass(frozen=True)
class Budget:
    """How often to run: ``warmup`` untimed calls, then ``repeats`` timed ones."""

    repeats: int
    warmup: int


BUDGETS: dict[Mode, Budget] = {"full": Budget(5, 1), "quick": Budget(5, 1),
                               "smoke": Budget(1, 1)}
#: One T = 10,000 training step takes about a minute here: 3 timed runs, first call apart.
LONG_BUDGETS: dict[Mode, Budget] = {"full": Budget(3, 1), "quick": Budget(5, 1),
                                    "smoke": Budget(1, 1)}


def skip_reason(impl: str, w: wl.Workload) -> str | None:
    """Why ``impl`` does not run workload ``w`` (``None``: it runs)."""
    if impl == "spikejit-remat":
        if w.name != "long":
            return "remat is only measured on the long sequence"
        if remat_options(w) is None:
            return "spikejit.compile has no remat option in this build"
    if impl == "norse-compile" and w.name == "long":
        return (f"torch.compile unrolls the Python time loop: a {w.steps}-step graph "
                "(compilation alone would dominate; the T=100 MLP already shows its cost)")
    return None


def remat_chunk(steps: int) -> int:
    """Steps per checkpointed chunk for a ``steps``-long sequence: ``round(sqrt(T))``.

    Memory is about ``C`` steps of activations plus ``T/C`` chunk-boundary states, smallest
    near ``C = sqrt(T)`` (100 at T = 10,000); speed is flat from 25 to 200 there (a chunk's
    matmuls still have ``C*B`` rows) and falls beyond (docs/performance.md).
    """
    return max(1, round(math.sqrt(steps)))


def remat_options(w: wl.Workload) -> dict[str, Any] | None:
    """The ``spikejit.compile`` options that switch on gradient checkpointing for ``w``, if
    this build has them."""
    from spikejit import compiler

    if "remat" in getattr(compiler, "EXTRA_OPTIONS", {}):
        return {"remat": remat_chunk(w.steps)}
    return None


def input_dtype(impl: str) -> type:
    """The dtype ``impl`` takes its spike input in: ``spikejit-remat`` takes ``uint8``
    (exact for spikes, a quarter of float32's memory); every other implementation float32."""
    return np.uint8 if impl == "spikejit-remat" else np.float32


def build(impl: str, w: wl.Workload, params: dict[str, np.ndarray],
          x: np.ndarray) -> harness.Prepared:
    """Build implementation ``impl`` (a name from ``IMPLS``) on workload ``w``."""
    if impl == "jax":
        from benchmarks import peers_jax

        return peers_jax.build(w, params, x)
    if impl.startswith("spikejit"):
        from benchmarks import spikejit_runner

        if impl == "spikejit-remat":  # the long-sequence recipe: docs/compile.md
            return spikejit_runner.build(w, params, x.astype(input_dtype(impl), copy=False),
                                         reduce="mean", **(remat_options(w) or {}))
        return spikejit_runner.build(w, params, x)
    if impl in ("snntorch", "norse", "norse-compile"):
        from benchmarks import peers_torch

        return peers_torch.build(impl, w, params, x)
    if impl in ("spyx", "spyx-layerwise"):
        from benchmarks import peers_spyx

        return peers_spyx.build(impl, w, params, x)
    raise ValueError(f"unknown implementation {impl!r}; known: {', '.join(IMPLS)}")


@dataclass
class Entry:
    """One implementation being measured: its record so far and its prepared callables."""

    impl: str
    rec: dict[str, Any]
    prep: harness.Prepared | None = None
    outputs: dict[str, Any] = field(default_factory=dict)

    def fail(self, exc: BaseException) -> None:
        """Record ``exc`` as the reason this implementation cannot run; drop its callables."""
        msg = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]
        if isinstance(exc, MemoryError) or "alloc" in msg.lower() or "memory" in msg.lower():
            msg = "out of memory: " + msg
        self.rec.update(status="failed", reason=msg, traceback=traceback.format_exc()[-2000:])
        self.prep = None

    def fn(self, phase: str) -> Callable[[], Any] | None:
        """The callable of ``phase`` ("fwd"/"train"), if this entry is still running."""
        if self.prep is None or "status" in self.rec:
            return None
        return self.prep.forward if phase == "fwd" else self.prep.train_step


def prepare(impl: str, w: wl.Workload, params: dict[str, np.ndarray],
            x: np.ndarray) -> Entry:
    """Build ``impl`` (compiling what it compiles ahead of time); errors become records."""
    entry = Entry(impl, {"workload": w.name, "impl": impl})
    reason = skip_reason(impl, w)
    if reason is not None:
        entry.rec.update(status="skipped", reason=reason)
        return entry
    try:
        t0 = time.perf_counter()
        entry.prep = build(impl, w, params, x)
        entry.rec["build_s"] = time.perf_counter() - t0
        prep = entry.prep
        entry.rec.update(compile_s=prep.compile_s, xla_bytes=prep.xla_bytes, notes=prep.notes)
        too_big = _exceeds_memory_limit(prep)
        if too_big is not None:
            entry.rec.update(status="failed", reason=too_big)
            entry.prep = None
    except Exception as e:  # a peer that cannot build a workload is reported, not fatal
        entry.fail(e)
    return entry


def _call(entry: Entry, fn: Callable[[], Any]) -> tuple[float, Any] | None:
    """Time one call; on error mark the entry failed and return ``None``."""
    try:
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out
    except Exception as e:
        entry.fail(e)
        return None


def run_entries(entries: Sequence[Entry], w: wl.Workload, budget: Budget) -> list[dict[str, Any]]:
    """Time every entry, interleaved, and check it against the baseline.

    The machine is shared, so its load drifts during a run. Timed calls therefore go in
    rounds (every implementation once per round, baseline first) rather than one
    implementation's runs back to back: a load change hits all of them alike, and the
    per-round ratio to the baseline (``ratio_paired``, median over rounds) stays
    meaningful even when absolute times move.
    """
    flops = dict(zip(("fwd", "train"), wl.matmul_flops(w), strict=True))
    base = next((e for e in entries if e.impl == BASELINE), None)
    for phase in ("fwd", "train"):
        live = [e for e in entries if e.fn(phase) is not None]
        gc.collect()
        for e in live:  # warm-up; the first call is reported (torch.compile compiles here)
            for k in range(max(budget.warmup, 1)):
                got = _call(e, e.fn(phase))  # type: ignore[arg-type]
                if got is None:
                    break
                if k == 0:
                    e.rec[phase] = {"first_call_s": got[0], "runs_s": []}
                e.outputs[phase] = got[1]
        for _ in range(budget.repeats):
            for e in live:
                fn = e.fn(phase)
                got = None if fn is None else _call(e, fn)
                if got is not None:
                    e.rec[phase]["runs_s"].append(got[0])
        for e in live:
            fn = e.fn(phase)
            if fn is None:
                continue
            r = e.rec[phase]
            r["median_s"] = statistics.median(r["runs_s"])
            # The fastest run: on a shared machine, the closest to the unloaded speed.
            r["best_s"] = min(r["runs_s"])
            r["gflops"] = flops[phase] / r["median_s"] / 1e9
            if base is not None and base.fn(phase) is not None:
                pairs = zip(r["runs_s"], base.rec[phase]["runs_s"], strict=True)
                r["ratio_paired"] = statistics.median(a / b for a, b in pairs)
            try:
                r["peak_rss_bytes"] = harness.peak_rss_growth(fn)
            except Exception as exc:
                e.fail(exc)
    for e in entries:
        if "status" in e.rec:
            continue
        if "fwd" in e.outputs:
            e.rec["spike_rate"] = float(np.mean(np.asarray(e.outputs["fwd"])))
        if base is not None and e is not base:
            for phase, key, check in (("fwd", "spike_agreement", harness.spike_agreement),
                                      ("train", "grad_cosine", harness.grad_cosine)):
                if phase in e.outputs and phase in base.outputs:
                    e.rec[key] = check(e.outputs[phase], base.outputs[phase])
        e.rec["status"] = "ok"
    return [e.rec for e in entries]


def measure(impl: str, w: wl.Workload, params: dict[str, np.ndarray], x: np.ndarray,
            budget: Budget) -> dict[str, Any]:
    """Build, time and record one implementation on its own; never raises."""
    return run_entries([prepare(impl, w, params, x)], w, budget)[0]


def _exceeds_memory_limit(prep: harness.Prepared) -> str | None:
    """A reason when XLA's buffer assignment alone exceeds this process's memory limit.

    Running such a program would only end in an allocation failure after minutes.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    need = prep.xla_bytes.get("train", 0)
    if soft == resource.RLIM_INFINITY or need <= 0.9 * soft:
        return None
    return (f"out of memory: XLA's buffer assignment needs {need / 2**30:.1f} GB for the "
            f"training step, over the {soft / 2**30:g} GB limit")


def run_workload(w: wl.Workload, impls: Sequence[str], budget: Budget,
                 log: Callable[[str], None]) -> list[dict[str, Any]]:
    """All ``impls`` on one workload in this process, timed in interleaved rounds."""
    params, x = wl.make_params(w), wl.make_input(w)
    entries = []
    for impl in sorted(impls, key=lambda i: i != BASELINE):
        if impl == "spikejit-remat":  # only meaningful (and only reported) on "long"
            continue
        entries.append(prepare(impl, w, params, x))
        log(f"{w.name:>9} {impl:<15} built in {entries[-1].rec.get('build_s', 0):.1f} s")
    records = run_entries(entries, w, budget)
    for rec in records:
        log(summary_line(rec))
    del entries
    _reset_torch_compile()
    return records


def run_isolated(w: wl.Workload, impl: str, mode: Mode, mem_limit_gb: float,
                 log: Callable[[str], None], timeout_s: float = 1800.0) -> dict[str, Any]:
    """One implementation of ``w`` in a child process limited to ``mem_limit_gb`` of
    address space and ``timeout_s`` seconds of wall time (both reported when hit)."""
    reason = skip_reason(impl, w)
    if reason is not None:
        rec: dict[str, Any] = {"workload": w.name, "impl": impl, "status": "skipped",
                               "reason": reason}
        log(summary_line(rec))
        return rec
    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "benchmarks", "--child", f"{w.name}:{impl}", "--mode", mode,
           "--mem-limit-gb", str(mem_limit_gb)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True,
                              check=False, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        rec = {"workload": w.name, "impl": impl, "status": "failed",
               "reason": f"timed out: not finished after {timeout_s:.0f} s (warm-up + "
                         f"{LONG_BUDGETS[mode].repeats} timed training steps)",
               "child_wall_s": time.perf_counter() - t0, "mem_limit_gb": mem_limit_gb}
        log(summary_line(rec))
        return rec
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        rec = json.loads(lines[-1])
    else:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        oom = any(s in proc.stderr for s in ("MemoryError", "alloc", "Resource exhausted",
                                              "bad_alloc", "out of memory"))
        rec = {"workload": w.name, "impl": impl, "status": "failed",
               "reason": (f"out of memory under the {mem_limit_gb:g} GB address-space limit: "
                          if oom else f"exit {proc.returncode}: ") + tail}
    rec["child_wall_s"] = time.perf_counter() - t0
    rec["mem_limit_gb"] = mem_limit_gb
    log(summary_line(rec))
    return rec


def child_main(spec: str, mode: Mode, mem_limit_gb: float) -> dict[str, Any]:
    """Entry point of a child process: measure ``workload:impl`` and return its record.

    The address-space limit is set first, before JAX or PyTorch start threads (setting it
    from the parent would need ``fork`` + ``preexec_fn`` in a multithreaded process). Also
    records the child's peak resident set (``ru_maxrss``), the whole process's
    high-water mark including imports and the input array.
    """
    limit = int(mem_limit_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    name, impl = spec.split(":")
    w = next(x for x in wl.workloads(mode) if x.name == name)
    budget = (LONG_BUDGETS if w.name == "long" else BUDGETS)[mode]
    rec = measure(impl, w, wl.make_params(w), wl.make_input(w, dtype=input_dtype(impl)),
                  budget)
    rec["process_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return rec


def summary_line(rec: dict[str, Any]) -> str:
    """One human-readable progress line for a record."""
    head = f"{rec['workload']:>9} {rec['impl']:<15}"
    if rec.get("status") != "ok":
        return f"{head} {rec.get('status')}: {rec.get('reason', '')}"
    parts = [f"{ph} {rec[ph]['median_s'] * 1e3:9.1f} ms" for ph in ("fwd", "train") if ph in rec]
    return f"{head} " + "  ".join(parts)


def _reset_torch_compile() -> None:
    """Drop torch.compile caches between workloads so recompiles do not hit dynamo's limit."""
    mod = sys.modules.get("torch._dynamo")
    if mod is not None:
        mod.reset()
