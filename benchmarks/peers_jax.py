"""The hand-written JAX baseline: each workload in its fastest plain-JAX form.

"Fastest form" (measured on this machine, see the shared performance notes): every synapse
that does not sit on a cycle is one big matmul/conv over all ``T*B`` rows at once, and
``lax.scan`` runs only the elementwise LIF update. The recurrent workload needs its
``W_rec`` matmul inside the scan (it depends on the previous step's spikes); its input
matmul stays outside. Weights stay in ``[out, in]`` layout and are contracted on their last
axis, which XLA:CPU runs faster inside loops.

The neuron is NIR's Euler LIF (see ``workloads``) with value reset; the reset does not
carry gradient (the spike is ``stop_gradient``-ed in the reset, as in spikejit's default
and snnTorch), and the spike's backward is the SuperSpike surrogate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks import workloads as wl
from benchmarks.harness import Prepared
from benchmarks.jaxutil import prepare_jax

Params = dict[str, jax.Array]


@jax.custom_vjp
def spike(x: jax.Array) -> jax.Array:
    """Heaviside ``x > 0`` forward; SuperSpike ``1/(1 + SLOPE*|x|)^2`` backward."""
    return (x > 0).astype(x.dtype)


def _spike_fwd(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return spike(x), x


def _spike_bwd(x: jax.Array, g: jax.Array) -> tuple[jax.Array]:
    return (g / (1.0 + wl.SLOPE * jnp.abs(x)) ** 2,)


spike.defvjp(_spike_fwd, _spike_bwd)


def lif_step(v: jax.Array, cur: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One ``nir-euler-v1`` LIF step: ``(v, I) -> (v', z)`` with value reset to 0."""
    v = v + (wl.DT / wl.TAU) * (-v + wl.R * cur)
    z = spike(v - wl.V_TH)
    # where() passes gradient only to the kept branch: the reset is detached from z.
    return jnp.where(z > 0, 0.0, v), z


def lif_layer(cur: jax.Array) -> jax.Array:
    """Run a LIF population over time: ``I[T, B, ...] -> z[T, B, ...]`` (state starts at 0)."""
    _, z = lax.scan(lif_step, jnp.zeros_like(cur[0]), cur)
    return z


def dense(x: jax.Array, w: jax.Array, b: jax.Array | None = None) -> jax.Array:
    """``x @ w.T + b`` over all leading axes: one matmul for all time steps."""
    y = jnp.einsum("...i,oi->...o", x, w)
    return y if b is None else y + b


def conv_nhwc(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """3x3 'same' convolution of ``x[N, H, W, C]`` with an ``[O, I, 3, 3]`` (NIR) weight."""
    k = jnp.transpose(w, (2, 3, 1, 0))  # HWIO
    return lax.conv_general_dilated(x, k, (1, 1), ((1, 1), (1, 1)),
                                    dimension_numbers=("NHWC", "HWIO", "NHWC")) + b


def mlp(p: Params, x: jax.Array) -> jax.Array:
    """Two Affine+LIF layers."""
    z1 = lif_layer(dense(x, p["w1"], p["b1"]))
    return lif_layer(dense(z1, p["w2"], p["b2"]))


def cnn(p: Params, x: jax.Array) -> jax.Array:
    """Conv+LIF, conv+LIF, flatten, Affine+LIF readout.

    Channels-last (NHWC) from the input on: XLA:CPU convolves NHWC faster than NCHW, and the
    LIF is elementwise, so the only costs of the layout are one input transpose and a
    permutation of the readout weight (it indexes the NCHW flattening). Measured about 10%
    faster forward than converting around each conv.
    """
    t, b, c, h, wd = x.shape
    xs = jnp.transpose(x.reshape(t * b, c, h, wd), (0, 2, 3, 1))
    c1 = conv_nhwc(xs, p["c1"], p["cb1"])
    z1 = lif_layer(c1.reshape(t, b, *c1.shape[1:]))
    c2 = conv_nhwc(z1.reshape(t * b, *z1.shape[2:]), p["c2"], p["cb2"])
    z2 = lif_layer(c2.reshape(t, b, *c2.shape[1:]))
    n_out, co = p["w3"].shape[0], p["c2"].shape[0]
    w3 = p["w3"].reshape(n_out, co, h, wd).transpose(0, 2, 3, 1).reshape(n_out, -1)
    return lif_layer(dense(z2.reshape(t, b, -1), w3, p["b3"]))


def recurrent(p: Params, x: jax.Array) -> jax.Array:
    """Affine input, then one scan of ``I = ff[t] + W_rec z[t-1]`` and the LIF update."""
    ff = dense(x, p["w_in"], p["b_in"])
    w_rec = p["w_rec"]

    def step(carry: tuple[jax.Array, jax.Array], f: jax.Array
             ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        v, z = carry
        v, z = lif_step(v, f + dense(z, w_rec))
        return (v, z), z

    zero = jnp.zeros_like(ff[0])
    _, zs = lax.scan(step, (zero, zero), ff)
    return zs


NETWORKS: dict[str, Callable[[Params, jax.Array], jax.Array]] = {
    "mlp": mlp, "cnn": cnn, "recurrent": recurrent}


def build(w: wl.Workload, params: dict[str, np.ndarray], x: np.ndarray) -> Prepared:
    """The baseline for workload ``w``, compiled ahead of time."""
    net = NETWORKS[w.kind]
    p = {k: jnp.asarray(v) for k, v in params.items()}
    xj = jnp.asarray(x)

    def loss(pp: Params, xx: jax.Array) -> Any:
        return jnp.mean(net(pp, xx))

    prep = prepare_jax(None if w.train_only else net, loss, p, xj)
    prep.notes.append("reference network (NIR Euler LIF, value reset detached from the "
                      "gradient, SuperSpike surrogate)")
    return prep
