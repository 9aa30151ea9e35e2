"""``run_suite``: the whole benchmark, from machine facts to the written report."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import os
import platform
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import report, suite
from benchmarks import workloads as wl

_VERSIONED = ("spikejit", "jax", "jaxlib", "numpy", "torch", "snntorch", "norse", "spyx",
              "flax", "nir")


def machine_info() -> dict[str, Any]:
    """CPU model, core count, RAM, versions and git commit of this run."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    versions["python"] = platform.python_version()
    root = Path(__file__).resolve().parent.parent
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                            capture_output=True, text=True, check=False).stdout.strip()
    return {"machine": f"{cpu}, {os.cpu_count()} cores, {ram:.0f} GB RAM, "
                       f"{platform.system()} {platform.release()}",
            "versions": versions, "commit": commit or "unknown"}


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def run_suite(quick: bool, out_dir: Path, *, mode: suite.Mode | None = None,
              only: Sequence[str] | None = None, impls: Sequence[str] | None = None,
              mem_limit_gb: float = 12.0, child_timeout_s: float = 1800.0,
              log: Callable[[str], None] = print) -> Path:
    """Run the benchmark suite and write ``bench-<mode>.json``, ``.md`` and ``.png``.

    Args:
        quick: Smaller CNN batch and long sequence (a few minutes); ``False`` is the
            issue's full specification.
        out_dir: Where the files go (created if missing).
        mode: ``"full"``, ``"quick"`` or ``"smoke"`` (tiny sizes, one run); overrides
            ``quick``.
        only: Workload names to run (default: all four).
        impls: Implementations to run (default: all; see ``suite.IMPLS``).
        mem_limit_gb: Address-space limit of each long-sequence child process.
        child_timeout_s: Wall-time limit of each long-sequence child process.
        log: Progress sink (one line per measurement).

    Returns:
        The path of the JSON file; the markdown report and plot sit beside it.
    """
    mode = mode or ("quick" if quick else "full")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = tuple(impls or suite.IMPLS)
    unknown = sorted(set(chosen) - set(suite.IMPLS))
    if unknown:
        raise ValueError(f"unknown implementation(s) {unknown}; known: {list(suite.IMPLS)}")
    works = [w for w in wl.workloads(mode) if not only or w.name in only]
    meta = {"date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "mode": mode, "load_before": _load(), **machine_info(),
            "budget": vars(suite.BUDGETS[mode]), "long_budget": vars(suite.LONG_BUDGETS[mode])}
    from benchmarks.harness import matmul_roofline

    # The peak is re-measured after every workload and the best value kept: one
    # measurement taken while a neighbour's job runs would understate the hardware.
    roof_args = (64, 64, 1) if mode == "smoke" else ()
    roof = matmul_roofline(*roof_args)
    log(f"matmul peak {roof['peak']:.0f} GFLOP/s")
    result: dict[str, Any] = {"meta": meta, "roofline": roof, "records": [],
                              "workload_titles": {w.name: w.title for w in works}}
    if "spikejit" in chosen:
        from benchmarks.spikejit_runner import ir_pipeline_seconds

        result["ir_pipeline"] = ir_pipeline_seconds(40 if mode == "smoke" else 1000)
        log(f"IR pipeline, {result['ir_pipeline']['nodes']:.0f} nodes: "
            f"{result['ir_pipeline']['median']:.3f} s")
    for w in works:
        if w.name == "long":
            for impl in chosen:
                result["records"].append(suite.run_isolated(w, impl, mode, mem_limit_gb, log,
                                                              child_timeout_s))
        else:
            result["records"] += suite.run_workload(w, chosen, suite.BUDGETS[mode], log)
        again = matmul_roofline(*roof_args)
        roof.update({k: max(v, roof.get(k, 0.0)) for k, v in again.items()})
    log(f"matmul peak (best of all measurements) {roof['peak']:.0f} GFLOP/s")
    meta["load_after"] = _load()
    json_path = report.write_json(result, out_dir / f"bench-{mode}.json")
    (out_dir / f"bench-{mode}.md").write_text(report.markdown(result))
    report.plot(result, out_dir / f"bench-{mode}.png")
    return json_path
