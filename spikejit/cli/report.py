"""Rich tables the CLI prints: model summary, timings and output statistics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
from rich.table import Table

from spikejit.ir.graph import Graph


def model_table(graph: Graph, params: Mapping[str, Any]) -> Table:
    """Nodes by op, parameter count and the schedule."""
    table = Table(title=f"model @{graph.name}", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    ops = Counter(n.op.mnemonic for n in graph.nodes)
    table.add_row("nodes", f"{len(graph.nodes)} (" + ", ".join(
        f"{k} x{v}" for k, v in sorted(ops.items())) + ")")
    n_values = sum(int(np.prod(np.shape(v))) for v in params.values())
    table.add_row("params", f"{len(params)} arrays, {n_values:,} values")
    for name in graph.inputs:
        table.add_row(f"input %{name}", str(graph.node(name).type or "?"))
    for name in graph.outputs:
        table.add_row(f"output %{name}", str(graph.node(name).type or "?"))
    a = graph.attrs
    table.add_row("semantics", f"dt={a.dt}, reset={a.reset}, cuba_current={a.cuba_current}, "
                               f"method={a.method}")
    if graph.schedule is not None:
        for i, seg in enumerate(graph.schedule.segments):
            kind = seg.kind if seg.kind == "layerwise" else f"stepwise ({seg.order})"
            table.add_row(f"segment {i}", f"{kind}: " + ", ".join("%" + n for n in seg.nodes))
    return table


def timing_table(rows: list[tuple[str, float]]) -> Table:
    """``(label, seconds)`` rows, printed in milliseconds."""
    table = Table(title="timing", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("ms", justify="right")
    for label, seconds in rows:
        table.add_row(label, f"{seconds * 1e3:,.1f}")
    return table


def output_stats(outputs: Mapping[str, np.ndarray], spiking: Mapping[str, bool]) -> Table:
    """Per-output statistics: spike counts and rates, or value ranges for real outputs."""
    table = Table(title="outputs", title_justify="left")
    for col in ("output", "shape [T,B,...]", "statistics"):
        table.add_column(col)
    for name, y in outputs.items():
        y = np.asarray(y)
        if spiking.get(name, False):
            total = int(y.sum())
            per_neuron = y.reshape(y.shape[0], y.shape[1], -1).sum(axis=(0, 1))
            silent = float((per_neuron == 0).mean()) if per_neuron.size else 0.0
            rate = total / max(y.size, 1)
            stats = (f"{total:,} spikes, rate {rate:.4f} per neuron per step, "
                     f"{silent:.0%} neurons silent")
        else:
            stats = (f"mean {y.mean():.4g}, std {y.std():.4g}, min {y.min():.4g}, "
                     f"max {y.max():.4g}") if y.size else "empty"
        table.add_row("%" + name, str(list(y.shape)), stats)
    return table
