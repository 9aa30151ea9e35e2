r"""The spike primitive: an exact Heaviside step forward, a surrogate derivative for autodiff.

``spike(v, threshold, surrogate)`` returns ``(v > threshold)`` as 0/1 in the dtype of ``v``
(strict ``>``, exactly the reference interpreter's comparison, so forward values are
bit-identical). Its derivative is the surrogate ``s'`` evaluated at ``x = v - threshold``::

    d spike = s'(v - threshold) * (dv - dthreshold)

so gradients reach both the membrane (and through it weights, ``tau``, ``r``, ``w_in``,
``v_leak``, ...) and the threshold parameter.

Why ``jax.custom_jvp`` and not ``jax.custom_vjp``: a ``custom_vjp`` function refuses
forward mode (``jax.jvp``/``jax.jacfwd`` raise), and the lowering must support both. A
``custom_jvp`` rule whose tangent is *linear* in the input tangents gives JAX everything:
forward mode uses it directly, and reverse mode linearises it and transposes the linear
map, which is exactly the surrogate VJP ``(g*s'(x), -g*s'(x))`` (summed over broadcast
axes for the threshold). :func:`spike_vjp` spells that VJP out with ``jax.custom_vjp``; the
tests check that both give identical gradients, and ``compile(..., spike_ad="vjp")``
selects it (reverse mode only). Both are defined once at module level, so JAX sees the
same function object in every trace.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp

from spikejit.lowering.surrogates import BoundSurrogate


def _heaviside(v: jax.Array, threshold: jax.Array) -> jax.Array:
    dtype = jnp.result_type(v, threshold)
    return (v > threshold).astype(dtype)


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def spike(v: jax.Array, threshold: jax.Array, surrogate: BoundSurrogate) -> jax.Array:
    """``(v > threshold)`` as 0/1; differentiates as ``s'(v - threshold)*(dv - dthreshold)``.

    Args:
        v: Membrane values ``[B, *shape]``.
        threshold: Threshold, broadcastable to ``v``.
        surrogate: The surrogate derivative (static, hashable).

    Returns:
        Spikes with the broadcast shape of ``v`` and ``threshold``.
    """
    return _heaviside(v, threshold)


@spike.defjvp
def _spike_jvp(
    surrogate: BoundSurrogate,
    primals: tuple[jax.Array, jax.Array],
    tangents: tuple[jax.Array, jax.Array],
) -> tuple[jax.Array, jax.Array]:
    v, threshold = primals
    dv, dthreshold = tangents
    z = _heaviside(v, threshold)
    slope = surrogate(v - threshold).astype(z.dtype)
    # Linear in (dv, dthreshold): reverse mode transposes this into the surrogate VJP.
    return z, slope * (dv - dthreshold)


def _unbroadcast(g: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Sum ``g`` over the axes along which an array of ``shape`` was broadcast."""
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead))) if lead else g
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def spike_vjp(v: jax.Array, threshold: jax.Array, surrogate: BoundSurrogate) -> jax.Array:
    """The same primitive as :func:`spike`, with the surrogate VJP written by hand.

    Reverse mode only: ``jax.jvp`` through it raises (a JAX rule for ``custom_vjp``).
    """
    return _heaviside(v, threshold)


def _spike_vjp_fwd(
    v: jax.Array, threshold: jax.Array, surrogate: BoundSurrogate
) -> tuple[jax.Array, tuple[jax.Array, jax.Array, jax.Array]]:
    v = jnp.asarray(v)
    threshold = jnp.asarray(threshold)
    # Keep x = v - threshold (one array) and the two shapes as zero-size witnesses.
    return _heaviside(v, threshold), (v - threshold, jnp.zeros((*v.shape, 0), v.dtype),
                                      jnp.zeros((*threshold.shape, 0), threshold.dtype))


def _spike_vjp_bwd(
    surrogate: BoundSurrogate,
    res: tuple[jax.Array, jax.Array, jax.Array],
    g: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    x, v_witness, th_witness = res
    gs = g * surrogate(x).astype(g.dtype)
    dv = _unbroadcast(gs, v_witness.shape[:-1]).astype(v_witness.dtype)
    dth = _unbroadcast(-gs, th_witness.shape[:-1]).astype(th_witness.dtype)
    return dv, dth


spike_vjp.defvjp(_spike_vjp_fwd, _spike_vjp_bwd)

#: ``spike_ad`` compile option -> spike function.
SPIKE_FUNCTIONS: dict[str, Callable[[jax.Array, jax.Array, BoundSurrogate], jax.Array]] = {
    "jvp": spike, "vjp": spike_vjp}

__all__ = ["SPIKE_FUNCTIONS", "spike", "spike_vjp"]
