"""The array-first bridge for external traces: ``spikejit.traces_to_input`` and back.

Voltage or current traces from other simulators come as 2-D or 3-D arrays whose axis order
is a matter of convention: ``[T, N]`` (time-major, like spikejit), ``[N, T]`` (one row per
neuron) or ``[R, T]`` (Jaxley's ``jx.integrate`` returns one row per recording). Guessing
the order from the shape is wrong whenever ``T == N``, so the layout is always named:

* ``T``: time steps;
* ``N``: channels of one sample: neurons, compartments, recordings (``R`` is a synonym,
  for Jaxley's ``(num_recordings, num_timesteps)``);
* ``B``: independent samples (batch), optional.

``traces_to_input(a, layout="NT")`` returns the time-major ``[T, B, N]`` array a compiled
graph takes (``B = 1`` without a ``B`` axis), as float32 by default. With ``dt_in`` (the
traces' step) and ``dt`` (the graph's step, both in seconds) the traces are resampled by
linear interpolation at ``t_k = k*dt`` over the traces' span (Jaxley's traces include the
initial value at ``t = 0``). :func:`output_to_traces` turns a ``[T, B, N]`` output back
into the named layout.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spikejit.errors import OptionError

_CHANNEL = ("N", "R")


def _parse_layout(layout: Any, ndim: int) -> tuple[int, int, int | None]:
    """``(time axis, channel axis, batch axis or None)`` of a layout such as ``"NT"``."""
    if not isinstance(layout, str):
        raise OptionError(f"layout must be a string naming the axes, such as 'TN', 'NT', "
                          f"'RT' or 'BTN', got {layout!r}")
    letters = layout.upper()
    channel = [i for i, c in enumerate(letters) if c in _CHANNEL]
    ok = (len(letters) == ndim and set(letters) <= {"T", "B", *_CHANNEL}
          and letters.count("T") == 1 and letters.count("B") <= 1 and len(channel) == 1)
    if not ok:
        raise OptionError(f"layout {layout!r} does not describe a {ndim}-D array: use one "
                          f"letter per axis, T (time) and N or R (channels) once each, "
                          f"optionally B (batch), e.g. 'TN', 'NT', 'RT', 'BTN'")
    batch = letters.find("B")
    return letters.index("T"), channel[0], (batch if batch >= 0 else None)


def _resample(a: np.ndarray, dt_in: float, dt: float) -> np.ndarray:
    """``a[T_in, ...]`` sampled at ``k*dt`` for every ``k*dt <= (T_in - 1)*dt_in``."""
    span = (a.shape[0] - 1) * dt_in
    steps = int(np.floor(span / dt + 1e-9)) + 1
    t_in = np.arange(a.shape[0]) * dt_in
    t_out = np.arange(steps) * dt
    flat = a.reshape(a.shape[0], -1)
    out = np.stack([np.interp(t_out, t_in, flat[:, j]) for j in range(flat.shape[1])], axis=1)
    return out.reshape(steps, *a.shape[1:])


def traces_to_input(array: Any, layout: str, *, dt_in: float | None = None,
                    dt: float | None = None, dtype: Any = np.float32) -> np.ndarray:
    """External traces as the time-major input ``[T, B, N]`` of a compiled graph.

    Args:
        array: A 2-D (``[T, N]``-like) or 3-D (with a batch axis) numeric array.
        layout: Its axes, one letter each: ``T`` time, ``N``/``R`` channels, ``B`` batch;
            e.g. ``"TN"``, ``"NT"``, ``"RT"`` (Jaxley), ``"BNT"``.
        dt_in: The traces' time step in seconds (give it with ``dt`` to resample).
        dt: The graph's time step in seconds.
        dtype: The result's dtype.

    Returns:
        ``[T, B, N]`` (``B = 1`` when the layout has no ``B``).

    Raises:
        OptionError: the layout does not fit the array, or only one of ``dt_in``/``dt``.
    """
    a = np.asarray(array)
    if a.dtype.kind not in "biuf":
        raise OptionError(f"traces must be a numeric array, got dtype {a.dtype}")
    if a.ndim not in (2, 3):
        raise OptionError(f"traces must be a 2-D or 3-D array, got shape {list(a.shape)}")
    t_axis, n_axis, b_axis = _parse_layout(layout, a.ndim)
    if b_axis is None:
        a = np.moveaxis(a, (t_axis, n_axis), (0, 1))[:, None, :]
    else:
        a = np.moveaxis(a, (t_axis, b_axis, n_axis), (0, 1, 2))
    if (dt_in is None) != (dt is None):
        raise OptionError("give both dt_in (the traces' step) and dt (the graph's step) to "
                          "resample, or neither")
    if dt_in is not None and dt is not None:
        for what, v in (("dt_in", dt_in), ("dt", dt)):
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise OptionError(f"{what} must be a number of seconds > 0, got {v!r}")
        a = _resample(a.astype(np.float64), float(dt_in), float(dt))
    return np.ascontiguousarray(a, dtype=dtype)


def output_to_traces(y: Any, layout: str = "TN") -> np.ndarray:
    """A compiled graph's output ``[T, B, N]`` in a named layout (``"TN"``, ``"NT"``,
    ``"BNT"``, ...); layouts without ``B`` need ``B = 1``."""
    a = np.asarray(y)
    if a.ndim != 3:
        raise OptionError(f"output must be [T, B, N], got shape {list(a.shape)}")
    letters = layout.upper() if isinstance(layout, str) else layout
    ndim = 3 if isinstance(letters, str) and "B" in letters else 2
    t_axis, n_axis, b_axis = _parse_layout(layout, ndim)
    if b_axis is None:
        if a.shape[1] != 1:
            raise OptionError(f"layout {layout!r} has no batch axis, but the output has "
                              f"B = {a.shape[1]}; use a layout with B, e.g. 'BTN'")
        return np.moveaxis(a[:, 0, :], (0, 1), (t_axis, n_axis))
    return np.moveaxis(a, (0, 1, 2), (t_axis, b_axis, n_axis))


__all__ = ["output_to_traces", "traces_to_input"]
