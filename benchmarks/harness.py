"""Timing, memory and roofline measurement shared by every implementation.

An implementation hands the harness a :class:`Prepared` benchmark: two zero-argument
callables that run the forward pass and one training step (loss + gradients) to completion,
plus what it measured while compiling. The harness times each callable after warm-up
(median of ``repeats`` runs), and measures the peak resident memory of one extra run.

Memory: JAX (XLA:CPU) and PyTorch allocate outside Python, so ``tracemalloc`` sees nothing.
The harness instead resets the kernel's resident-set high-water mark (``/proc/self/
clear_refs``, Linux) and reads ``VmHWM`` after one call: *peak RSS growth during the call*.
glibc's heap is trimmed first so memory freed by earlier runs is not counted as already
resident. For JAX programs the XLA buffer assignment (arguments + outputs + temporaries) is
reported as well; it is exact for what XLA allocates and independent of the allocator.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_PROC = Path("/proc/self")


@dataclass
class Prepared:
    """A built benchmark, ready to run.

    Attributes:
        forward: Runs the forward pass, waits for it, returns the output spikes
            (anything ``np.asarray`` accepts), or ``None`` if not measured.
        train_step: Runs loss + gradients, waits, returns ``{name: grad}`` in the
            workload's layout, or ``None`` if not measured.
        compile_s: Compile phases in seconds, e.g. ``{"fwd_ir": .., "fwd_trace": ..,
            "fwd_xla": ..}`` (JAX) or ``{"train_first_call": ..}`` (torch.compile).
        xla_bytes: XLA buffer totals per function (JAX only): ``{"train": bytes}``.
        notes: What differs from the common network in this implementation.
    """

    forward: Callable[[], Any] | None
    train_step: Callable[[], Mapping[str, Any]] | None
    compile_s: dict[str, float] = field(default_factory=dict)
    xla_bytes: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Timing:
    """Wall-clock seconds of repeated runs of one callable."""

    runs: list[float]
    first_call: float

    @property
    def median(self) -> float:
        """Median of the timed runs (the number reported)."""
        return statistics.median(self.runs)


def time_call(fn: Callable[[], Any], repeats: int, warmup: int) -> tuple[Timing, Any]:
    """Time ``fn``: ``warmup`` untimed calls (the first one is timed separately), then
    ``repeats`` timed calls. Returns the timings and the last call's result.

    The first call is reported on its own because for lazily compiling libraries
    (``torch.compile``) it contains the compilation.
    """
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    for _ in range(max(warmup - 1, 0)):
        out = fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return Timing(runs, first), out


def _call_and_wait(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, waiting for JAX's asynchronous dispatch to finish."""
    return fn(*args).block_until_ready()


def _trim_heap() -> None:
    """Give freed heap pages back to the kernel so RSS reflects live memory (glibc only)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _status_kb(key: str) -> int | None:
    try:
        for line in (_PROC / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_growth(fn: Callable[[], Any]) -> int | None:
    """Peak resident-memory growth in bytes while ``fn`` runs, or ``None`` if this platform
    cannot reset the high-water mark."""
    _trim_heap()
    try:
        (_PROC / "clear_refs").write_text("5")  # "5" resets VmHWM to the current RSS
    except OSError:
        return None
    before = _status_kb("VmRSS")
    fn()
    peak = _status_kb("VmHWM")
    if before is None or peak is None:
        return None
    return max(peak - before, 0) * 1024


def rss_bytes() -> int | None:
    """Current resident set size of this process in bytes."""
    kb = _status_kb("VmRSS")
    return None if kb is None else kb * 1024


def spike_agreement(a: Any, b: Any) -> float:
    """Fraction of equal elements of two spike arrays (1.0: identical)."""
    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape:
        return float("nan")
    return float(np.mean(x == y))


def grad_cosine(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """Cosine similarity of two gradient dicts flattened over their common keys."""
    keys = sorted(set(a) & set(b))
    if not keys:
        return float("nan")
    x = np.concatenate([np.asarray(a[k], np.float64).ravel() for k in keys])
    y = np.concatenate([np.asarray(b[k], np.float64).ravel() for k in keys])
    den = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(x @ y / den) if den > 0 else float("nan")


def matmul_roofline(size: int = 2048, rows: int = 3200,
                    repeats: int = 10) -> dict[str, float]:
    """Measured fp32 matmul throughput of this machine in GFLOP/s.

    A peak, so the *fastest* of ``repeats`` runs counts (on a shared machine the median
    would measure the neighbours' load). Times ``[rows, size] @ [size, size]`` (the MLP's
    layer shape, ``rows = T*B``) and a square ``size^3`` product in JAX and in PyTorch;
    ``peak`` is the best of them, the "hardware limit" the workloads' GFLOP/s are compared
    with.
    """
    import jax
    import jax.numpy as jnp

    out: dict[str, float] = {}
    rng = np.random.default_rng(0)
    shapes = {"mlp_shape": (rows, size), "square": (size, size)}
    for label, (m, k) in shapes.items():
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, size), dtype=np.float32)
        flops = 2.0 * m * k * size
        ja, jb = jnp.asarray(a), jnp.asarray(b)
        mm = jax.jit(jnp.matmul).lower(ja, jb).compile()
        t, _ = time_call(functools.partial(_call_and_wait, mm, ja, jb), repeats, 2)
        out[f"jax_{label}"] = flops / min(t.runs) / 1e9
        try:
            import torch
        except ImportError:
            continue
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        with torch.no_grad():
            t, _ = time_call(functools.partial(torch.matmul, ta, tb), repeats, 2)
        out[f"torch_{label}"] = flops / min(t.runs) / 1e9
    out["peak"] = max(out.values())
    return out
