"""Whether numbers survive the dtype a model computes in: shared range checks of input
data and time values (the interpreter, the frontends, the lowering and the CLI use them).

NumPy only, like the rest of :mod:`spikejit.ir`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spikejit.errors import ParamError

#: The positive values float32 computes as themselves: ``1e300`` is ``inf`` and ``1e-300``
#: is ``0``, and XLA flushes the subnormal values below the smallest normal one to ``0``.
FLOAT32_RANGE: tuple[float, float] = (float(np.finfo(np.float32).tiny),
                                      float(np.finfo(np.float32).max))


def not_representable(values: Any, dtype: Any) -> np.ndarray:
    """Where nonzero, finite ``values`` become ``0`` or ``inf`` when a compiled model casts
    them to ``dtype``, counting the subnormal values XLA flushes to ``0`` (float32 and
    bfloat16; float16 is computed in float32, where its subnormal values are normal)."""
    with np.errstate(all="ignore"):
        cast = np.asarray(values).astype(dtype).astype(np.float64)
    tiny = np.finfo(np.float64 if np.dtype(dtype) == np.float64 else np.float32).tiny
    return ~np.isfinite(cast) | (np.abs(cast) < tiny)


def check_input_values(what: str, arr: np.ndarray, dtype: Any, *,
                       allow_nonfinite: bool = False) -> None:
    """:class:`ParamError` naming the first index of ``arr`` (``[T, B, ...]`` input data of
    bool, int or float) whose value is NaN or Inf (unless ``allow_nonfinite``), or becomes
    Inf in ``dtype`` (1e300 in float32), the dtype the model computes in: a cast would
    change such values silently.

    Costs a minimum and a maximum over ``arr``; the index is looked for only on failure.
    """
    if arr.dtype.kind not in "iuf" or arr.size == 0:
        return
    with np.errstate(all="ignore"):  # the overflow of the cast is what is looked for
        ends = np.array([arr.min(), arr.max()]).astype(dtype)  # NaN propagates
        if np.isfinite(ends).all():
            return
        bad = ~np.isfinite(arr.astype(dtype))
        if allow_nonfinite:
            bad &= np.isfinite(arr)
        if not bad.any():
            return
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), arr.shape))
    value = arr[index]
    where = f"at index [{', '.join(map(str, index))}] (time step {index[0]})"
    if np.isfinite(value):
        raise ParamError(f"{what} holds {float(value):.7g} {where}, beyond the range of "
                         f"{np.dtype(dtype).name}, the dtype the model computes in")
    raise ParamError(f"{what} holds {value} {where}; input data must be finite numbers")


__all__ = ["FLOAT32_RANGE", "check_input_values", "not_representable"]
