"""The benchmark workloads: sizes, weights, inputs and FLOP counts, shared by every library.

Every implementation (hand-written JAX, spikejit, snnTorch, Norse, Spyx) is built from the
same :class:`Workload`: the same NumPy weights (``[out, in]`` / ``[Cout, Cin, kH, kW]``, the
NIR and PyTorch layout), the same Bernoulli input ``x[T, B, ...]`` and the same LIF
constants. The LIF follows NIR's ``nir-euler-v1`` step::

    v += dt/tau * (v_leak - v + r*I);   z = v > v_th;   v = v_reset where z

With ``tau = 10*dt``, ``r = tau/dt``, ``v_leak = v_reset = 0`` and ``v_th = 1`` this is
``v = 0.9*v + I`` followed by a reset to zero: exactly snnTorch's ``Leaky(beta=0.9)`` and
Norse's ``LIFBoxCell`` fed with ``r*I``.

The loss of the training step is ``mean(y)`` over the last layer's spikes ``y[T, B, ...]``;
the gradient is taken w.r.t. every weight and bias.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Kind = Literal["mlp", "cnn", "recurrent"]

#: Simulation constants shared by all implementations.
DT = 1e-3
TAU = 1e-2
BETA = 1.0 - DT / TAU  # 0.9
R = TAU / DT  # 10: makes the Euler step v = BETA*v + I
V_TH = 1.0
#: Surrogate: SuperSpike / fast sigmoid 1/(1 + SLOPE*|v - v_th|)^2 everywhere.
SLOPE = 25.0
INPUT_P = 0.2


@dataclass(frozen=True)
class Workload:
    """One benchmark network with its sizes.

    Attributes:
        name: Key in reports (``mlp``, ``cnn``, ``recurrent``, ``long``).
        kind: The network family.
        steps: T, the number of time steps.
        batch: B.
        n_in: Input features (MLP, recurrent) or input channels (CNN).
        hidden: Neurons per hidden layer (MLP, recurrent) or conv channels (CNN).
        image: Spatial input size (CNN only).
        n_out: Readout neurons (CNN only).
        train_only: Only the training step is measured (the long sequence).
        title: Human-readable description for the report.
    """

    name: str
    kind: Kind
    steps: int
    batch: int
    n_in: int
    hidden: int
    image: int = 0
    n_out: int = 0
    train_only: bool = False
    title: str = field(default="", compare=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample input shape (channels first for the CNN)."""
        if self.kind == "cnn":
            return (self.n_in, self.image, self.image)
        return (self.n_in,)

    @property
    def flat_features(self) -> int:
        """Features entering the CNN's readout (conv output, padding keeps the size)."""
        return self.hidden * self.image * self.image


def workloads(mode: Literal["full", "quick", "smoke"]) -> list[Workload]:
    """The four workloads at the sizes of ``mode``.

    ``full`` is the issue's specification; ``quick`` keeps every shape family but shrinks
    T, the batch and the long sequence so a routine run takes a few minutes; ``smoke`` is
    tiny and only proves that the code runs.
    """
    if mode == "full":
        return [
            Workload("mlp", "mlp", 100, 32, 2048, 2048, title="MLP 2048-2048-2048, T=100, B=32"),
            Workload("cnn", "cnn", 10, 32, 2, 32, image=48, n_out=10,
                     title="CNN 2x48x48 -conv3-> 32 -conv3-> 32 -> 10, T=10, B=32"),
            Workload("recurrent", "recurrent", 100, 32, 1024, 1024,
                     title="recurrent LIF 1024 (W_rec), T=100, B=32"),
            Workload("long", "mlp", 10_000, 32, 2048, 2048, train_only=True,
                     title="MLP 2048-2048-2048, T=10,000, B=32, training step"),
        ]
    if mode == "quick":
        return [
            Workload("mlp", "mlp", 100, 32, 2048, 2048, title="MLP 2048-2048-2048, T=100, B=32"),
            Workload("cnn", "cnn", 10, 8, 2, 32, image=48, n_out=10,
                     title="CNN 2x48x48 -conv3-> 32 -conv3-> 32 -> 10, T=10, B=8 (quick)"),
            Workload("recurrent", "recurrent", 100, 32, 1024, 1024,
                     title="recurrent LIF 1024 (W_rec), T=100, B=32"),
            Workload("long", "mlp", 1_000, 32, 512, 512, train_only=True,
                     title="MLP 512-512-512, T=1,000, B=32, training step (quick)"),
        ]
    return [
        Workload("mlp", "mlp", 6, 2, 12, 16, title="MLP smoke"),
        Workload("cnn", "cnn", 3, 2, 2, 4, image=6, n_out=3, title="CNN smoke"),
        Workload("recurrent", "recurrent", 6, 2, 10, 12, title="recurrent smoke"),
        Workload("long", "mlp", 40, 2, 12, 16, train_only=True, title="long smoke"),
    ]


def make_params(w: Workload, seed: int = 0) -> dict[str, np.ndarray]:
    """The network's weights and biases, float32, in NIR/PyTorch layout.

    Keys: MLP ``w1 b1 w2 b2``; CNN ``c1 cb1 c2 cb2 w3 b3``; recurrent ``w_in b_in w_rec``.
    Scales are chosen so every layer spikes at a moderate rate (neither silent nor
    saturated), which keeps the surrogate gradients non-trivial.
    """
    rng = np.random.default_rng(seed)

    def normal(shape: tuple[int, ...], fan_in: int, gain: float) -> np.ndarray:
        return (rng.standard_normal(shape) * gain / np.sqrt(fan_in)).astype(np.float32)

    h = w.hidden
    if w.kind == "mlp":
        return {"w1": normal((h, w.n_in), w.n_in, 1.0), "b1": normal((h,), 1, 0.01),
                "w2": normal((h, h), h, 1.0), "b2": normal((h,), 1, 0.01)}
    if w.kind == "recurrent":
        return {"w_in": normal((h, w.n_in), w.n_in, 1.0), "b_in": normal((h,), 1, 0.01),
                "w_rec": normal((h, h), h, 0.5)}
    return {"c1": normal((h, w.n_in, 3, 3), w.n_in * 9, 1.0), "cb1": normal((h,), 1, 0.01),
            "c2": normal((h, h, 3, 3), h * 9, 1.0), "cb2": normal((h,), 1, 0.01),
            "w3": normal((w.n_out, w.flat_features), w.flat_features, 3.0),
            "b3": normal((w.n_out,), 1, 0.01)}


def make_input(w: Workload, seed: int = 1, dtype: type | np.dtype = np.float32) -> np.ndarray:
    """Bernoulli(``INPUT_P``) spikes ``x[T, B, *input_shape]`` (float32 by default).

    The same values for every ``dtype`` (``np.uint8`` or ``bool`` hold the spikes exactly
    in a quarter of the memory). Drawn a block of time steps at a time, so making the
    input never needs more than the result plus one small block.
    """
    rng = np.random.default_rng(seed)
    shape = (w.steps, w.batch, *w.input_shape)
    out = np.empty(shape, dtype)
    block = 256
    for t in range(0, w.steps, block):
        n = min(block, w.steps - t)
        out[t:t + n] = rng.random((n, *shape[1:]), dtype=np.float32) < INPUT_P
    return out


def matmul_flops(w: Workload) -> tuple[float, float]:
    """Multiply-add FLOPs (2 per MAC) of the synapses: ``(forward, forward+backward)``.

    Forward: every matmul/conv. Backward: each weight gradient (same cost as the forward
    op) plus each input gradient except the first layer's (the data needs none). The
    elementwise neuron update is left out: it is O(T*B*N), not O(T*B*N^2).
    """
    rows = w.steps * w.batch
    if w.kind == "mlp":
        l1 = 2.0 * rows * w.n_in * w.hidden
        l2 = 2.0 * rows * w.hidden * w.hidden
        return l1 + l2, (l1 + l2) + (l1 + l2) + l2
    if w.kind == "recurrent":
        inp = 2.0 * rows * w.n_in * w.hidden
        rec = 2.0 * rows * w.hidden * w.hidden
        return inp + rec, (inp + rec) + (inp + rec) + rec
    pix = w.image * w.image
    c1 = 2.0 * rows * pix * w.hidden * w.n_in * 9
    c2 = 2.0 * rows * pix * w.hidden * w.hidden * 9
    ro = 2.0 * rows * w.flat_features * w.n_out
    return c1 + c2 + ro, (c1 + c2 + ro) + (c1 + c2 + ro) + (c2 + ro)


def activation_bytes(w: Workload) -> int:
    """Bytes of one float32 ``[T, B, hidden-layer]`` array: the unit of training memory."""
    per_sample = w.flat_features if w.kind == "cnn" else w.hidden
    return 4 * w.steps * w.batch * per_sample
