"""Spyx (1.0, Flax NNX) peers, in the two forms its documentation supports.

* ``spyx``: the documented form, ``spyx.nn.Sequential`` of ``nnx.Linear``/``nnx.Conv`` and
  ``spyx.nn.LIF`` layers driven over time by ``spyx.nn.run`` (one ``lax.scan`` of the whole
  network, so the matmuls run per step, stepwise).
* ``spyx-layerwise``: the same Spyx modules composed by hand the fast way: each
  ``nnx.Linear``/``nnx.Conv`` applied once to all ``T*B`` rows, ``spyx.nn.run`` only over
  each ``LIF`` (what the hand-written JAX baseline does).

What Spyx's neuron computes differs from the common network, and cannot be configured away:
``spyx.nn.LIF`` emits ``z = H(V - th)`` from the membrane *before* the update, then
``V = beta*V + I - z*th`` (subtractive reset, not detached), and ``beta`` is a trainable
parameter (so it gets a gradient). Every layer's spikes are thus one step later than the
other libraries', and the spike trains differ. The recurrent workload uses ``spyx.nn.RLIF``
(``V = beta*V + I + z@W_rec - z*th`` with the same pre-update spike). Costs are the same.
NNX stores ``Linear`` kernels as ``[in, out]`` and convolutions as ``NHWC``/``HWIO``: the
weights are transposed on the way in and the input to the CNN is transposed once per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import workloads as wl
from benchmarks.harness import Prepared
from benchmarks.jaxutil import prepare_jax


def _linear(w: np.ndarray, b: np.ndarray | None, rngs: Any) -> Any:
    from flax import nnx

    out, inp = w.shape
    lin = nnx.Linear(inp, out, use_bias=b is not None, rngs=rngs)
    lin.kernel[...] = jnp.asarray(w.T)
    if b is not None:
        assert lin.bias is not None  # use_bias=True
        lin.bias[...] = jnp.asarray(b)
    return lin


def _conv(w: np.ndarray, b: np.ndarray, rngs: Any) -> Any:
    from flax import nnx

    cout, cin = w.shape[:2]
    conv = nnx.Conv(cin, cout, kernel_size=(3, 3), padding=((1, 1), (1, 1)), rngs=rngs)
    conv.kernel[...] = jnp.asarray(np.transpose(w, (2, 3, 1, 0)))
    assert conv.bias is not None  # use_bias defaults to True
    conv.bias[...] = jnp.asarray(b)
    return conv


def _layers(w: wl.Workload, p: Mapping[str, np.ndarray]) -> list[Any]:
    """The network as a list of NNX modules (synapse, neuron, synapse, neuron, ...)."""
    import spyx
    from flax import nnx

    rngs = nnx.Rngs(0)
    act = spyx.axn.superspike(k=wl.SLOPE)

    def lif(shape: tuple[int, ...]) -> Any:
        return spyx.nn.LIF(shape, beta=wl.BETA, threshold=wl.V_TH, activation=act, rngs=rngs)

    h = w.hidden
    if w.kind == "mlp":
        return [_linear(p["w1"], p["b1"], rngs), lif((h,)),
                _linear(p["w2"], p["b2"], rngs), lif((h,))]
    if w.kind == "recurrent":
        rlif = spyx.nn.RLIF((h,), beta=wl.BETA, threshold=wl.V_TH, activation=act, rngs=rngs)
        rlif.recurrent_w[...] = jnp.asarray(p["w_rec"].T)  # Spyx computes z @ W
        return [_linear(p["w_in"], p["b_in"], rngs), rlif]
    # The readout weight indexes the NCHW flattening; Spyx flattens NHWC.
    w3 = p["w3"].reshape(w.n_out, h, w.image, w.image).transpose(0, 2, 3, 1)
    shape = (w.image, w.image, h)
    return [_conv(p["c1"], p["cb1"], rngs), lif(shape), _conv(p["c2"], p["cb2"], rngs),
            lif(shape), spyx.nn.Flatten(), _linear(w3.reshape(w.n_out, -1), p["b3"], rngs),
            lif((w.n_out,))]


def _to_nhwc(w: wl.Workload, x: jax.Array) -> jax.Array:
    return jnp.transpose(x, (0, 1, 3, 4, 2)) if w.kind == "cnn" else x


def build(impl: str, w: wl.Workload, params: Mapping[str, np.ndarray],
          x: np.ndarray) -> Prepared:
    """``spyx`` (``spyx.nn.run`` over a ``Sequential``) or ``spyx-layerwise``."""
    import spyx
    from flax import nnx

    layers = _layers(w, params)
    stepwise = impl == "spyx"
    model: Any = spyx.nn.Sequential(*layers) if stepwise else nnx.List(layers)
    graphdef, *states = nnx.split(model, nnx.Param, ...)
    state, rest = states  # the parameters, everything else

    def forward(st: Any, xx: jax.Array) -> jax.Array:
        m = nnx.merge(graphdef, st, rest)
        h = _to_nhwc(w, xx)
        if stepwise:
            return spyx.nn.run(m, h)[0]
        for layer in m:
            if hasattr(layer, "initial_state"):
                h = spyx.nn.run(layer, h)[0]
            else:  # synapse or flatten: one call over all T*B rows
                t, b = h.shape[:2]
                h = layer(h.reshape(t * b, *h.shape[2:]))
                h = h.reshape(t, b, *h.shape[1:])
        return h

    def loss(st: Any, xx: jax.Array) -> Any:
        return jnp.mean(forward(st, xx))

    prep = prepare_jax(None if w.train_only else forward, loss, state, jnp.asarray(x),
                       grad_names=lambda g: _grad_names(w, nnx.merge(graphdef, g, rest)))
    form = ("spyx.nn.run over the whole Sequential" if stepwise
            else "layers batched over T*B, run() per LIF")
    prep.notes.append(f"spike from the pre-update membrane, subtractive reset, trainable beta "
                      f"({form})")
    return prep


def _grad_names(w: wl.Workload, m: Any) -> dict[str, Any]:
    """Gradients in the workload's names and layouts (for the cross-library check)."""
    layers = list(m.layers) if hasattr(m, "layers") else list(m)
    syn = [layer for layer in layers if hasattr(layer, "kernel")]
    out: dict[str, Any] = {}
    if w.kind == "cnn":
        for (kw, kb), conv in zip((("c1", "cb1"), ("c2", "cb2")), syn[:2], strict=True):
            out[kw] = jnp.transpose(conv.kernel[...], (3, 2, 0, 1))
            out[kb] = conv.bias[...]
        return out
    keys = (("w1", "b1"), ("w2", "b2")) if w.kind == "mlp" else (("w_in", "b_in"),)
    for (kw, kb), lin in zip(keys, syn, strict=True):
        out[kw], out[kb] = lin.kernel[...].T, lin.bias[...]
    if w.kind == "recurrent":
        out["w_rec"] = layers[1].recurrent_w[...].T
    return out
