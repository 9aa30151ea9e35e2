"""Helpers for the torch frontend tests: run a torch model step by step, compare with IR.

Spikes must be identical, except where float32 rounding puts the membrane within
``NEAR`` of the threshold: such a mismatch is counted (and printed), and that batch
element is compared only up to the step before it (after it, the two runs legitimately
differ). Membranes agree within ``ATOL`` plus ``RTOL`` relative (float32 resolution).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

NEAR = 1e-5
ATOL = 1e-5
RTOL = 1e-5


def _is_neuron(module: torch.nn.Module) -> bool:
    mod = type(module).__module__
    return (mod.startswith("snntorch") and hasattr(module, "reset_mem")) or (
        mod.startswith("norse") and type(module).__name__.endswith("Cell"))


def run_torch(model: torch.nn.Module, x: np.ndarray, *, norse_state: bool = False,
              pick: Callable[[Any], Any] | None = None
              ) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """Run ``model`` over ``x[T, B, ...]`` one step at a time.

    Returns ``(y, records)``: ``y[T, B, ...]`` and, per neuron module path, ``"out"`` (its
    first result), snnTorch's ``"mem"``/``"syn"`` attributes or Norse's ``"v"``/``"i"``
    state, each stacked over time.
    """
    rec: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    hooks = []
    for name, mod in model.named_modules():
        if not _is_neuron(mod):
            continue
        if hasattr(mod, "reset_mem"):
            mod.reset_mem()

        def hook(m: Any, _inp: Any, out: Any, name: str = name) -> None:
            r = rec[name]
            r["out"].append((out[0] if isinstance(out, tuple) else out).numpy().copy())
            if type(m).__module__.startswith("norse"):
                for var in ("v", "i"):
                    if hasattr(out[1], var):
                        r[var].append(getattr(out[1], var).numpy().copy())
            else:
                for var in ("mem", "syn"):
                    if hasattr(m, var):
                        r[var].append(getattr(m, var).numpy().copy())

        hooks.append(mod.register_forward_hook(hook))
    ys = []
    state = None
    try:
        with torch.no_grad():
            for xt in x:
                if norse_state:
                    y, state = model(torch.from_numpy(xt), state)
                else:
                    y = model(torch.from_numpy(xt))
                if pick is not None:
                    y = pick(y)
                ys.append(y.numpy().copy())
    finally:
        for h in hooks:
            h.remove()
    records = {k: {var: np.stack(v) for var, v in r.items()} for k, r in rec.items()}
    return np.stack(ys), records


@dataclass
class Probe:
    """One neuron layer to compare: IR node id, spikes (None for LI), membranes."""

    node: str
    ir_v: np.ndarray
    torch_v: np.ndarray
    threshold: Any = None
    ir_spikes: np.ndarray | None = None
    torch_spikes: np.ndarray | None = None
    extra: list[tuple[str, np.ndarray, np.ndarray]] = field(default_factory=list)


@dataclass
class Report:
    near_threshold: int
    truncated: dict[int, int]
    spikes: int


def compare(probes: Sequence[Probe], outputs: Sequence[tuple[np.ndarray, np.ndarray]] = ()
            ) -> Report:
    """Check spikes, membranes, other states and outputs; return the near-threshold count.

    ``probes`` must be in execution order (upstream first), so that the first layer with a
    mismatch at a step is the one whose membrane is checked against the threshold.
    """
    steps, batch = probes[0].ir_v.shape[:2]
    stop = {b: steps for b in range(batch)}
    near = 0
    for b in range(batch):
        for t in range(steps):
            culprit = next((p for p in probes if p.ir_spikes is not None
                            and np.any(p.ir_spikes[t, b] != p.torch_spikes[t, b])), None)
            if culprit is None:
                continue
            bad = culprit.ir_spikes[t, b] != culprit.torch_spikes[t, b]
            # The side that did not spike holds the un-reset membrane of this step.
            v = np.where(culprit.torch_spikes[t, b] == 0, culprit.torch_v[t, b],
                         culprit.ir_v[t, b])
            thr = np.broadcast_to(np.asarray(culprit.threshold, np.float64), v.shape)
            gap = np.abs(v - thr)[bad]
            assert np.all(gap <= NEAR * np.maximum(1.0, np.abs(thr[bad]))), (
                f"%{culprit.node}: spikes differ at step {t}, sample {b}, with the membrane "
                f"{gap.max():.3g} away from the threshold (not a rounding case)")
            near += int(bad.sum())
            stop[b] = t
            break
    for p in probes:
        pairs = [("v", p.ir_v, p.torch_v), *p.extra]
        if p.ir_spikes is not None:
            pairs.append(("spikes", p.ir_spikes, p.torch_spikes))
        for label, ours, theirs in pairs:
            for b in range(batch):
                np.testing.assert_allclose(ours[:stop[b], b], theirs[:stop[b], b], rtol=RTOL,
                                           atol=ATOL, err_msg=f"%{p.node} {label} sample {b}")
    for ours, theirs in outputs:
        for b in range(batch):
            np.testing.assert_allclose(ours[:stop[b], b], theirs[:stop[b], b], rtol=RTOL,
                                       atol=ATOL, err_msg=f"output sample {b}")
    spikes = sum(int(p.torch_spikes.sum()) for p in probes if p.torch_spikes is not None)
    truncated = {b: s for b, s in stop.items() if s < steps}
    if near:
        print(f"near-threshold spike mismatches: {near}; samples compared up to: {truncated}")
    return Report(near, truncated, spikes)


def randn(shape: Sequence[int], scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """Reproducible float32 normal data."""
    return (np.random.default_rng(seed).normal(size=tuple(shape)) * scale).astype(np.float32)
