"""spikejit on the benchmark workloads: each network is written as a ``nir.NIRGraph`` in code
and compiled with ``spikejit.compile(graph, dt=DT)``, the way a user brings a NIR model.

The LIF nodes carry the workload's constants as per-neuron arrays (``tau = 10*dt``,
``r = tau/dt``, ``v_leak = v_reset = 0``, ``v_threshold = 1``), so spikejit runs exactly
the baseline's Euler step. The recurrent workload is the cycle ``fc -> lif <-> rec``; NIR's
back-edge rule gives ``lif_in[t] = fc(x[t]) + W_rec z[t-1]``.

The training step differentiates the weights and biases only; the LIF constants are passed
as a second, non-differentiated argument (the baseline keeps them as Python constants).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import nir
import numpy as np

from benchmarks import workloads as wl
from benchmarks.harness import Prepared
from benchmarks.jaxutil import prepare_jax

#: NIR node + field -> the workload's parameter name (for gradient comparison).
PARAM_NAMES: dict[str, dict[str, str]] = {
    "mlp": {"fc1.weight": "w1", "fc1.bias": "b1", "fc2.weight": "w2", "fc2.bias": "b2"},
    "cnn": {"conv1.weight": "c1", "conv1.bias": "cb1", "conv2.weight": "c2",
            "conv2.bias": "cb2", "fc3.weight": "w3", "fc3.bias": "b3"},
    "recurrent": {"fc.weight": "w_in", "fc.bias": "b_in", "rec.weight": "w_rec"},
}


def lif(shape: tuple[int, ...]) -> nir.LIF:
    """A NIR LIF population with the workload's constants."""
    def full(value: float) -> np.ndarray:
        return np.full(shape, value, dtype=np.float32)

    return nir.LIF(tau=full(wl.TAU), r=full(wl.R), v_leak=full(0.0),
                   v_threshold=full(wl.V_TH), v_reset=full(0.0))


def nir_graph(w: wl.Workload, p: Mapping[str, np.ndarray]) -> nir.NIRGraph:
    """The workload's network as a NIR graph with the given weights."""
    def io(shape: tuple[int, ...], node: type) -> Any:
        arr = np.array(shape)
        return node(input_type={"input": arr}) if node is nir.Input else node(
            output_type={"output": arr})

    h = w.hidden
    if w.kind == "mlp":
        nodes = {"input": io((w.n_in,), nir.Input), "fc1": nir.Affine(p["w1"], p["b1"]),
                 "lif1": lif((h,)), "fc2": nir.Affine(p["w2"], p["b2"]), "lif2": lif((h,)),
                 "output": io((h,), nir.Output)}
        edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
                 ("lif2", "output")]
    elif w.kind == "recurrent":
        nodes = {"input": io((w.n_in,), nir.Input), "fc": nir.Affine(p["w_in"], p["b_in"]),
                 "lif": lif((h,)), "rec": nir.Linear(p["w_rec"]), "output": io((h,), nir.Output)}
        edges = [("input", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"),
                 ("lif", "output")]
    else:
        img = (w.image, w.image)
        conv_shape = (h, *img)

        def conv(weight: np.ndarray, bias: np.ndarray) -> nir.Conv2d:
            return nir.Conv2d(input_shape=img, weight=weight, stride=1, padding=1,
                              dilation=1, groups=1, bias=bias)

        nodes = {"input": io(w.input_shape, nir.Input), "conv1": conv(p["c1"], p["cb1"]),
                 "lif1": lif(conv_shape), "conv2": conv(p["c2"], p["cb2"]),
                 "lif2": lif(conv_shape),
                 "flat": nir.Flatten(input_type={"input": np.array(conv_shape)}, start_dim=0,
                                     end_dim=-1),
                 "fc3": nir.Affine(p["w3"], p["b3"]), "lif3": lif((w.n_out,)),
                 "output": io((w.n_out,), nir.Output)}
        edges = [("input", "conv1"), ("conv1", "lif1"), ("lif1", "conv2"), ("conv2", "lif2"),
                 ("lif2", "flat"), ("flat", "fc3"), ("fc3", "lif3"), ("lif3", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def build(w: wl.Workload, params: dict[str, np.ndarray], x: np.ndarray,
          reduce: str | None = None, **options: Any) -> Prepared:
    """Compile the workload with spikejit (``options`` go to ``spikejit.compile``).

    ``x`` may hold the spikes in any dtype (``uint8``: a quarter of float32's memory).
    With ``reduce="mean"`` the loss is ``mean(model.apply(p, x, reduce="mean"))``: the
    output is averaged over time inside the program (under ``remat``, chunk by chunk) and
    the loss value is the same ``mean(y)`` as without.
    """
    import spikejit

    graph = nir_graph(w, params)
    t0 = time.perf_counter()
    model = spikejit.compile(graph, dt=wl.DT, **options)
    ir_s = time.perf_counter() - t0
    names = PARAM_NAMES[w.kind]
    train = {k: v for k, v in model.params.items() if k in names}
    const = {k: v for k, v in model.params.items() if k not in names}
    xj = jnp.asarray(x)

    def forward(p: dict[str, jax.Array], xc: tuple[jax.Array, dict[str, jax.Array]]) -> Any:
        return model.apply({**p, **xc[1]}, xc[0])

    def loss(p: dict[str, jax.Array], xc: tuple[jax.Array, dict[str, jax.Array]]) -> Any:
        if reduce is not None:
            return jnp.mean(model.apply({**p, **xc[1]}, xc[0], reduce=reduce))
        return jnp.mean(forward(p, xc))

    prep = prepare_jax(None if w.train_only else forward, loss, train, (xj, const),
                       grad_names=lambda g: {names[k]: v for k, v in g.items()}, ir_s=ir_s)
    opts = ", ".join(f"{k}={v!r}" for k, v in options.items()) or "defaults"
    prep.notes.append(f"spikejit.compile(nir_graph, dt={wl.DT}, {opts}): {model!r}")
    if reduce is not None or x.dtype != np.float32:
        prep.notes.append(f"input {x.dtype}; loss mean(model.apply(p, x, reduce={reduce!r}))"
                          f" (the same value as mean(y))")
    return prep


def chain_graph(n_nodes: int, width: int = 16, seed: int = 0) -> nir.NIRGraph:
    """A generated feed-forward NIR graph of ``n_nodes`` Affine/LIF nodes (plus I/O)."""
    rng = np.random.default_rng(seed)
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([width])})}
    edges = []
    prev = "input"
    for i in range(n_nodes // 2):
        weight = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        nodes[f"fc{i}"] = nir.Affine(weight, np.zeros(width, np.float32))
        nodes[f"lif{i}"] = lif((width,))
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        prev = f"lif{i}"
    nodes["output"] = nir.Output(output_type={"output": np.array([width])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def ir_pipeline_seconds(n_nodes: int = 1000, repeats: int = 3) -> dict[str, float]:
    """Seconds of ``spikejit.compile`` (frontend + passes + lowering set-up, no XLA) on a
    generated ``n_nodes`` graph: the first call and the median of fresh repeats.

    The program cache is cleared before each call so every repeat does the full work.
    """
    import spikejit
    from spikejit.compiler import clear_cache

    graph = chain_graph(n_nodes)
    times = []
    for _ in range(repeats):
        clear_cache()
        t0 = time.perf_counter()
        spikejit.compile(graph, dt=wl.DT)
        times.append(time.perf_counter() - t0)
    return {"nodes": float(n_nodes), "first": times[0], "median": float(np.median(times))}
