"""Train a recurrent spiking network, given as a NIR graph, with spikejit and Optax.

The example is self-contained: it builds the NIR graph in code, generates its own task, and
trains the compiled model with surrogate gradients.

Task (temporal order): 32 input channels in two groups A and B of 16. Every sample has three
bursts of Poisson spikes (rate 0.3 per step) on background noise (0.05), at steps 4-11,
18-25 and 32-39, each from group A or B: the eight classes are AAA, AAB, ..., BBB. Classes
with the same number of A bursts (AAB, ABA, BAA) have the same expected spike rate in every
channel, so only the order tells them apart: the network has to remember earlier bursts.

Network (NIR)::

    input[32] -> fc1 (Affine 32->64) -> lif (LIF, reset by subtraction) -> fc2 (Affine 64->8)
                   ^                        |                                 -> out (LI) -> output
                   +--- rec (Linear 64->64) +   (the cycle: rec is read at t-1, NIR's DFS rule)

The readout is the time-averaged membrane of the LI layer; the loss is softmax cross-entropy.
Only weights and biases are trained (time constants and thresholds stay as built).

Run::

    python examples/train_nir_optax.py          # full: 400 Adam steps, >= 97% test accuracy
    python examples/train_nir_optax.py --fast   # the tests' version: 150 steps, >= 90%
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import jax
import jax.numpy as jnp
import nir
import numpy as np
import optax

import spikejit

STEPS, CHANNELS, HIDDEN, CLASSES = 44, 32, 64, 8
BURSTS = ((4, 12), (18, 26), (32, 40))
DT = 1e-3
#: The accuracy each mode promises on the held-out set (the test checks the fast one).
TARGET = {"full": 0.97, "fast": 0.90}


def make_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples ``[T, n, CHANNELS]`` of 0/1 spikes and their labels ``[n]``."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, size=n)
    x = (rng.random((STEPS, n, CHANNELS)) < 0.05).astype(np.float32)  # background noise
    group = CHANNELS // 2
    for i in range(n):
        for k, (t0, t1) in enumerate(BURSTS):
            g = (labels[i] >> (len(BURSTS) - 1 - k)) & 1  # bit k of the label: A (0) or B (1)
            burst = rng.random((t1 - t0, group)) < 0.3
            window = x[t0:t1, i, g * group:(g + 1) * group]
            x[t0:t1, i, g * group:(g + 1) * group] = np.maximum(window, burst)
    return x, labels


def make_nir_graph(seed: int = 0) -> nir.NIRGraph:
    """The network above as a NIR graph with freshly initialised weights."""
    rng = np.random.default_rng(seed)

    def w(n_out: int, n_in: int, gain: float) -> np.ndarray:
        return (rng.normal(size=(n_out, n_in)) * gain / np.sqrt(n_in)).astype(np.float32)

    tau_mem = np.full(HIDDEN, 20e-3, np.float32)
    return nir.NIRGraph(
        nodes={
            "input": nir.Input({"input": np.array([CHANNELS])}),
            "fc1": nir.Affine(w(HIDDEN, CHANNELS, 3.0), np.zeros(HIDDEN, np.float32)),
            "lif": nir.LIF(tau=tau_mem, r=np.full(HIDDEN, 20.0, np.float32),
                           v_leak=np.zeros(HIDDEN, np.float32),
                           v_threshold=np.ones(HIDDEN, np.float32)),
            "rec": nir.Linear(w(HIDDEN, HIDDEN, 0.5)),
            "fc2": nir.Affine(w(CLASSES, HIDDEN, 1.0), np.zeros(CLASSES, np.float32)),
            "out": nir.LI(tau=np.full(CLASSES, 10e-3, np.float32),
                          r=np.full(CLASSES, 10.0, np.float32),
                          v_leak=np.zeros(CLASSES, np.float32)),
            "output": nir.Output({"output": np.array([CLASSES])}),
        },
        edges=[("input", "fc1"), ("fc1", "lif"), ("lif", "rec"), ("rec", "lif"),
               ("lif", "fc2"), ("fc2", "out"), ("out", "output")],
    )


def is_trained(name: str) -> bool:
    return name.endswith((".weight", ".bias"))


def main(fast: bool = False, seed: int = 0, verbose: bool = True) -> float:
    """Train and return the held-out accuracy."""
    start = time.perf_counter()
    model = spikejit.compile(make_nir_graph(seed), dt=DT, reset="subtract",
                             surrogate="fast_sigmoid", surrogate_params={"slope": 5.0})
    if verbose:
        print(model)
    n_train, n_steps = (512, 150) if fast else (2048, 400)
    x_train, y_train = make_task(n_train, seed + 1)
    x_test, y_test = make_task(512, seed + 2)
    trained = {k: v for k, v in model.params.items() if is_trained(k)}
    fixed = {k: v for k, v in model.params.items() if not is_trained(k)}

    def logits(p: dict[str, Any], x: jax.Array) -> jax.Array:
        return model.apply({**fixed, **p}, x).mean(axis=0)  # time-averaged LI membrane

    def loss(p: dict[str, Any], x: jax.Array, y: jax.Array) -> jax.Array:
        return optax.softmax_cross_entropy_with_integer_labels(logits(p, x), y).mean()

    optimizer = optax.adam(2e-2)
    opt_state = optimizer.init(trained)

    @jax.jit
    def train_step(p: dict, state: Any, x: jax.Array, y: jax.Array) -> tuple[dict, Any, jax.Array]:
        value, grads = jax.value_and_grad(loss)(p, x, y)
        updates, state = optimizer.update(grads, state, p)
        return optax.apply_updates(p, updates), state, value

    @jax.jit
    def accuracy(p: dict, x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.mean(jnp.argmax(logits(p, x), axis=-1) == y)

    rng = np.random.default_rng(seed + 3)
    batch = 128
    for step in range(n_steps):
        idx = rng.choice(n_train, size=batch, replace=False)
        trained, opt_state, value = train_step(trained, opt_state, x_train[:, idx],
                                               y_train[idx])
        if verbose and (step % 20 == 0 or step == n_steps - 1):
            print(f"step {step:4d}  loss {float(value):.4f}")
    acc = float(accuracy(trained, x_test, y_test))
    if verbose:
        mode = "fast" if fast else "full"
        print(f"test accuracy {acc:.3f} (target {TARGET[mode]:.2f}) in "
              f"{time.perf_counter() - start:.1f} s")
    return acc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="the short version run by the tests")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    accuracy = main(fast=args.fast, seed=args.seed)
    target = TARGET["fast" if args.fast else "full"]
    if accuracy < target:
        raise SystemExit(f"accuracy {accuracy:.3f} is below the stated {target:.2f}")
