"""Memory limits: refuse a model before allocating what it declares.

A model file is small, but the sizes it *declares* need not be: an HDF5 dataset, a ``.npy``
header or an IR type can ask for terabytes in a few bytes. Every place that would allocate
memory sized by a model asks :func:`check_bytes` first, which raises
:class:`~spikejit.errors.SizeLimitError` with the size when the limit is exceeded:

* reading a ``.nir`` file: the declared size of every dataset, summed over the file;
* reading a saved model or an ``.npy``/``.npz`` array file (:mod:`spikejit.array_files`);
* IR text, counted :data:`TEXT_COST` bytes per byte for the graph parsed from it
  (:func:`check_text_bytes`), before it is read;
* default parameter values for IR text, and a compiled program's parameters (derived ones
  included);
* running: the state for a batch, and the inputs plus state plus the largest per-node
  ``[T, B, ...]`` array of a call (a lower bound of what the call needs).

The limit is :data:`DEFAULT_MAX_BYTES` (8 GiB), or the environment variable
``SPIKEJIT_MAX_BYTES`` (bytes, or a number with a ``K``/``M``/``G``/``T``/``P`` suffix,
powers of 1024), or what :func:`set_max_bytes` set (the CLI's ``--max-bytes``), in increasing
precedence.

This module is a leaf (like :mod:`spikejit.errors`): every layer may import it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable

from spikejit.errors import OptionError, SizeLimitError

#: Name of the environment variable holding the limit.
ENV_VAR = "SPIKEJIT_MAX_BYTES"
#: The limit when nothing else is set: generous for a workstation, far below "absurd".
DEFAULT_MAX_BYTES = 8 * 2**30

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40, "P": 2**50}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:i?B)?\s*", re.IGNORECASE)
_override: int | None = None

def parse_size(text: str, source: str = ENV_VAR) -> int:
    """``"8G"``, ``"512MiB"``, ``"1000000"`` -> bytes; :class:`OptionError` naming
    ``source`` (where the text came from) otherwise."""
    m = _SIZE.fullmatch(text)
    if m is None:
        raise OptionError(f"{source}: {text!r} is not a size (bytes, or a number with a "
                          f"K, M, G, T or P suffix, e.g. 8G)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def max_bytes() -> int:
    """The limit in force, in bytes (see the module docstring for where it comes from)."""
    if _override is not None:
        return _override
    env = os.environ.get(ENV_VAR)
    return DEFAULT_MAX_BYTES if env is None or not env.strip() else parse_size(env)


def set_max_bytes(limit: int | str | None, *, source: str = "set_max_bytes") -> None:
    """Set the limit for this process (``None``: back to the environment or the default).

    Args:
        limit: Bytes, or a size such as ``"16G"``.
        source: Where the value came from, for the error message (e.g. a CLI option).

    Raises:
        OptionError: ``limit`` is not a positive size.
    """
    global _override
    if limit is None:
        _override = None
        return
    value = parse_size(limit, source) if isinstance(limit, str) else limit
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise OptionError(f"{source}: the limit must be a positive number of bytes, "
                          f"got {limit!r}")
    _override = value


def format_bytes(n: int) -> str:
    """``12884901888`` -> ``"12.0 GiB (12,884,901,888 bytes)"``."""
    if n < 2**10:
        return f"{n:,} bytes"
    unit = max((u for u in _UNITS if u and _UNITS[u] <= n), key=_UNITS.__getitem__)
    return f"{n / _UNITS[unit]:.1f} {unit}iB ({n:,} bytes)"


def nbytes(shape: Iterable[int], itemsize: int) -> int:
    """Bytes of an array (Python integers: no overflow, however absurd the shape)."""
    return math.prod(int(d) for d in shape) * int(itemsize)


def check_bytes(size: int, what: str) -> None:
    """Raise :class:`SizeLimitError` if ``size`` bytes exceed the limit.

    Args:
        size: Bytes about to be needed.
        what: What needs them, for the message, e.g. ``"NIR file 'm.nir': its arrays"``.
    """
    limit = max_bytes()
    if size > limit:
        raise SizeLimitError(f"{what} would take {format_bytes(size)}, more than the limit of "
                             f"{format_bytes(limit)} (raise it with the environment variable "
                             f"{ENV_VAR} or spikejit.limits.set_max_bytes)",
                             nbytes=size, limit=limit)


# -- .npy / .npz files ----------------------------------------------------------------------


#: Bytes IR text counts for against the limit, per byte of text: the parsed graph takes up
#: to ~30 bytes of Python objects per byte of text (measured on graphs of tiny nodes).
TEXT_COST = 32


def check_text_bytes(size: int, what: str) -> None:
    """Check ``size`` bytes of text to be parsed (IR text, a JSON header), counted
    :data:`TEXT_COST` times over for what parsing makes of them."""
    limit = max_bytes()
    if size * TEXT_COST > limit:
        raise SizeLimitError(
            f"{what} holds {format_bytes(size)} of text, which would take up to "
            f"{format_bytes(size * TEXT_COST)} parsed ({TEXT_COST} bytes per byte of text), "
            f"more than the limit of {format_bytes(limit)} (raise it with the environment "
            f"variable {ENV_VAR} or spikejit.limits.set_max_bytes)",
            nbytes=size * TEXT_COST, limit=limit)


__all__ = ["DEFAULT_MAX_BYTES", "ENV_VAR", "TEXT_COST", "check_bytes", "check_text_bytes",
           "format_bytes", "max_bytes", "nbytes", "parse_size", "set_max_bytes"]
