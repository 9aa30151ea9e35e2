"""Write a suite result as JSON, a markdown report and (with matplotlib) a plot.

The markdown has one table per workload: times with ratios to the hand-written JAX baseline,
achieved GFLOP/s against the measured matmul roofline, compile phases, memory and the
cross-library check, then the implementations that did not run and why, then the issue's
targets evaluated on this run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

BASELINE = "jax"


def write_json(result: dict[str, Any], path: Path) -> Path:
    """``result`` as indented JSON (NaN becomes null)."""
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    path.write_text(json.dumps(clean(result), indent=1) + "\n")
    return path


def _ms(s: float | None, best: float | None = None) -> str:
    if s is None:
        return "—"
    text = f"{s * 1e3:,.0f}" if s >= 0.1 else f"{s * 1e3:.1f}"
    return text if best is None else f"{text} ({_ms(best)})"


def _ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or not b else f"{a / b:.2f}x"


def _paired(paired: float | None, a: float | None, b: float | None) -> str:
    """The per-round ratio to the baseline when measured, else the ratio of medians."""
    return f"{paired:.2f}x" if paired is not None else _ratio(a, b)


def _mb(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**20:,.0f}"


def _get(rec: dict[str, Any], phase: str, key: str) -> Any:
    return rec.get(phase, {}).get(key)


def _compile_cell(rec: dict[str, Any]) -> str:
    """Training-function compile phases: ``IR + trace + XLA`` (JAX) or first-call excess."""
    c = rec.get("compile_s", {})
    if "train_xla" in c:
        parts = ([f"{c['ir']:.2f}"] if "ir" in c else []) + [f"{c['train_trace']:.2f}",
                                                            f"{c['train_xla']:.2f}"]
        return " + ".join(parts)
    first, med = _get(rec, "train", "first_call_s"), _get(rec, "train", "median_s")
    if rec["impl"] == "norse-compile" and first is not None and med is not None:
        return f"~{first - med:.1f} (1st call)"
    return "eager"


def _fmt(v: float | None, spec: str) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def workload_table(records: list[dict[str, Any]], peak_gflops: float) -> list[str]:
    """Markdown lines for one workload's records."""
    base = next((r for r in records if r["impl"] == BASELINE and r.get("status") == "ok"), {})
    b_fwd, b_train = _get(base, "fwd", "median_s"), _get(base, "train", "median_s")
    lines = ["| impl | fwd ms (best) | fwd vs JAX | fwd+bwd ms (best) | fwd+bwd vs JAX | "
             "GFLOP/s fwd / fwd+bwd | % of matmul peak (fwd+bwd) | compile s: IR + trace + "
             "XLA (fwd+bwd fn) | peak RSS MB (fwd+bwd) | XLA buffers MB (fwd+bwd) | "
             "spikes = JAX | grad cos vs JAX |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    failed = []
    for r in records:
        if r.get("status") != "ok":
            failed.append(f"- **{r['impl']}**: {r.get('status')}: {r.get('reason', '')}")
            continue
        fwd, train = _get(r, "fwd", "median_s"), _get(r, "train", "median_s")
        rf, rt = _get(r, "fwd", "ratio_paired"), _get(r, "train", "ratio_paired")
        gf, gt = _get(r, "fwd", "gflops"), _get(r, "train", "gflops")
        peak = _mb(_get(r, "train", "peak_rss_bytes"))
        if r.get("process_peak_rss_bytes") is not None:  # long sequence: child process
            peak += f" ({_mb(r['process_peak_rss_bytes'])} process)"
        lines.append(
            f"| {r['impl']} | {_ms(fwd, _get(r, 'fwd', 'best_s'))} | {_paired(rf, fwd, b_fwd)} | "
            f"{_ms(train, _get(r, 'train', 'best_s'))} | "
            f"{_paired(rt, train, b_train)} | {_fmt(gf, '.0f')} / {_fmt(gt, '.0f')} | "
            f"{_fmt(None if gt is None else 100 * gt / peak_gflops, '.0f')}% | "
            f"{_compile_cell(r)} | {peak} | {_mb(r.get('xla_bytes', {}).get('train'))} | "
            f"{_fmt(r.get('spike_agreement'), '.5f')} | {_fmt(r.get('grad_cosine'), '.4f')} |")
    return lines + (["", *failed] if failed else [])


def targets(result: dict[str, Any]) -> list[str]:
    """The issue's targets, checked on this run (ratios within the run)."""
    by = {(r["workload"], r["impl"]): r for r in result["records"] if r.get("status") == "ok"}
    out = ["| target | measured | met |", "|---|---|---|"]

    def med(wname: str, impl: str, phase: str) -> float | None:
        return _get(by.get((wname, impl), {}), phase, "median_s")

    for phase, label in (("fwd", "forward"), ("train", "forward+backward")):
        ratio = _get(by.get(("mlp", "spikejit"), {}), phase, "ratio_paired")
        if ratio:
            out.append(f"| MLP {label}: spikejit within 1.05x of JAX | {ratio:.2f}x | "
                       f"{'yes' if ratio <= 1.05 else 'no'} |")
    for wname in ("mlp", "recurrent"):
        for phase in ("fwd", "train"):
            sj = med(wname, "spikejit", phase)
            peers: dict[str, float] = {}
            for w_, i in by:
                if w_ == wname and i not in (BASELINE, "spikejit", "spikejit-remat"):
                    v = med(wname, i, phase)
                    if v:
                        peers[i] = v
            if sj and peers:
                best = min(peers, key=lambda k: peers[k])
                out.append(f"| {wname} {phase}: spikejit faster than every peer | "
                           f"{sj * 1e3:.0f} ms vs best peer {best} {peers[best] * 1e3:.0f} ms | "
                           f"{'yes' if sj < peers[best] else 'no'} |")
    c = by.get(("mlp", "spikejit"), {}).get("compile_s", {})
    if c:
        total = c.get("ir", 0) + c.get("train_trace", 0) + c.get("train_xla", 0)
        out.append(f"| MLP compile (IR + trace + XLA, training fn) < 2 s | {total:.2f} s | "
                   f"{'yes' if total < 2 else 'no'} |")
    ir = result.get("ir_pipeline")
    if ir:
        out.append(f"| IR pipeline on a {ir['nodes']:.0f}-node graph well under 1 s | "
                   f"{ir['median']:.3f} s | {'yes' if ir['median'] < 0.5 else 'no'} |")
    rm = by.get(("long", "spikejit-remat"))
    if rm:
        peak = _get(rm, "train", "peak_rss_bytes")
        met = "yes" if peak and peak < 4 * 2**30 else "no"
        out.append(f"| long sequence with remat: training-step memory < 4 GB | "
                   f"{_mb(peak)} MB (process peak {_mb(rm.get('process_peak_rss_bytes'))}) "
                   f"| {met} |")
    return out


def markdown(result: dict[str, Any]) -> str:
    """The whole report as markdown."""
    meta = result["meta"]
    roof = result["roofline"]
    lines = [f"# Benchmark run {meta['date']} ({meta['mode']} mode)", "",
             f"Machine: {meta['machine']}. Load average before/after: "
             f"{meta['load_before']} / {meta['load_after']}.", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
             "", f"Measured fp32 matmul peak: **{roof['peak']:.0f} GFLOP/s** ("
             + ", ".join(f"{k} {v:.0f}" for k, v in roof.items() if k != "peak") + ").", "",
             "Times are medians (ms) after warm-up, timed in interleaved rounds; ratios are "
             "the median over rounds of (time / JAX baseline time in the same round); "
             "(best) is the fastest run. "
             "GFLOP/s count only the synapse matmul/conv FLOPs.", ""]
    for wname, title in result["workload_titles"].items():
        recs = [r for r in result["records"] if r["workload"] == wname]
        if recs:
            lines += [f"## {title}", "", *workload_table(recs, roof["peak"]), ""]
    lines += ["## Targets (issue 9), this run", "", *targets(result), ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> Path | None:
    """Bar chart of forward+backward time relative to the JAX baseline (log scale)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = list(result["workload_titles"])
    impls = sorted({r["impl"] for r in result["records"]}, key=lambda i: (i != BASELINE, i))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(len(impls), 1)
    for k, impl in enumerate(impls):
        vals = []
        for wname in names:
            rec = next((r for r in result["records"] if r["workload"] == wname
                        and r["impl"] == impl and r.get("status") == "ok"), None)
            base = next((r for r in result["records"] if r["workload"] == wname
                         and r["impl"] == BASELINE and r.get("status") == "ok"), None)
            if rec is not None and base is not None and "train" in rec:
                vals.append(rec["train"]["median_s"] / base["train"]["median_s"])
            else:
                vals.append(0)
        ax.bar([i + k * width for i in range(len(names))], vals, width, label=impl)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names)
    ax.set_yscale("log")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_ylabel("forward+backward time / JAX baseline")
    ax.set_title(f"spikejit benchmark {result['meta']['date']} ({result['meta']['mode']})")
    ax.legend(fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
