"""Derived parameters in ``jax.numpy``: the twin of ``spikejit.ir.derived``'s NumPy table.

:func:`eval_derived` runs once at the start of every call of a lowered program. It is
ordinary traced JAX, so ``jax.grad`` with respect to the user's parameters flows through
the derivations (``W2 @ W1``, ``W * s``, ...) that folding passes introduced. A test
checks that :data:`JNP_DERIVED` covers every function of
:data:`spikejit.ir.derived.DERIVED_FUNCTIONS` and agrees with its NumPy implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from spikejit.errors import LoweringError
from spikejit.ir.graph import Graph

Array = jax.Array
JnpFn = Callable[[Sequence[Array], Mapping[str, Any]], Array]


def _scale_axis(args: Sequence[Array], attrs: Mapping[str, Any]) -> Array:
    a, s = args
    shape = [1] * a.ndim
    shape[attrs["axis"]] = s.size
    return a * jnp.reshape(s, shape)


def _matvec(args: Sequence[Array], attrs: Mapping[str, Any]) -> Array:
    w, v = args
    return w @ jnp.broadcast_to(v, w.shape[1:])


#: One ``jax.numpy`` implementation per derived function (same formulas as the NumPy ones).
JNP_DERIVED: dict[str, JnpFn] = {
    "mul": lambda x, k: x[0] * x[1],
    "add": lambda x, k: x[0] + x[1],
    "broadcast": lambda x, k: jnp.broadcast_to(x[0], k["shape"]),
    "matmul": lambda x, k: x[0] @ x[1],
    "matvec": _matvec,
    "scale_axis": _scale_axis,
    "concat": lambda x, k: jnp.concatenate(list(x), axis=k["axis"]),
}


def eval_derived(graph: Graph, params: Mapping[str, Array]) -> dict[str, Array]:
    """The user's params plus every derived parameter of ``graph``, computed in order.

    Args:
        graph: The graph whose ``derived`` entries to compute.
        params: The user's parameters (already checked and cast to their dtypes).

    Returns:
        A new dict with the user's arrays and one array per derived parameter, in its
        declared dtype.
    """
    out = dict(params)
    for d in graph.derived:
        fn = JNP_DERIVED.get(d.fn)
        if fn is None:
            raise LoweringError(f"derived parameter @{d.name}: no jax.numpy rule for "
                                f"{d.fn!r}; have {', '.join(sorted(JNP_DERIVED))}")
        value = fn([out[a.name] for a in d.args], dict(d.attrs))
        # The declared dtype wins (as in the NumPy evaluation), whatever promotion did.
        out[d.name] = value.astype(_JNP_DTYPES[d.type.dtype])
    return out


_JNP_DTYPES: dict[str, Any] = {"f16": jnp.float16, "bf16": jnp.bfloat16, "f32": jnp.float32,
                               "f64": jnp.float64}
