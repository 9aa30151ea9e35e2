"""Memory limits: refuse a model before allocating what it declares.

A model file is small, but the sizes it *declares* need not be: an HDF5 dataset, a ``.npy``
header or an IR type can ask for terabytes in a few bytes. Every place that would allocate
memory sized by a model asks :func:`check_bytes` first, which raises
:class:`~spikejit.errors.SizeLimitError` with the size when the limit is exceeded:

* reading a ``.nir`` file: the declared size of every dataset, summed over the file;
* reading a saved model or an ``.npy``/``.npz`` array file: the shapes in the ``.npy``
  headers, summed over the archive, before any array is read;
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
import struct
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from spikejit.errors import ModelFileError, OptionError, SizeLimitError

#: Name of the environment variable holding the limit.
ENV_VAR = "SPIKEJIT_MAX_BYTES"
#: The limit when nothing else is set: generous for a workstation, far below "absurd".
DEFAULT_MAX_BYTES = 8 * 2**30

#: What reading a damaged zip archive or ``.npy`` member can raise: besides ``BadZipFile``,
#: ``zipfile`` raises ``NotImplementedError`` for unknown versions and compression methods,
#: ``RuntimeError`` for encrypted members, ``zlib.error`` for corrupt deflate streams and
#: ``struct.error`` for cut records; NumPy raises ``ValueError`` for bad headers.
ARCHIVE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, EOFError, ValueError, TypeError, KeyError, RuntimeError, NotImplementedError,
    OverflowError, zipfile.BadZipFile, zlib.error, struct.error)
#: What parsing a ``.npy`` header can raise besides (NumPy's literal parser: SyntaxError).
_HEADER_ERRORS: tuple[type[BaseException], ...] = (*ARCHIVE_ERRORS, SyntaxError)

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


# -- .npy / .npz headers -------------------------------------------------------------------

def npy_header_bytes(f: IO[bytes]) -> int:
    """Bytes the ``.npy`` header at the start of ``f`` declares (the data is not read).

    Raises:
        ValueError: The header is not a ``.npy`` header this reader understands (callers
            turn it into a :class:`~spikejit.errors.ModelFileError` naming their file).
    """
    import numpy as np

    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy format version {version} is not supported")
    except ValueError:
        raise
    except _HEADER_ERRORS as e:
        raise ValueError(f"damaged .npy header ({e})") from None
    return nbytes(shape, dtype.itemsize)


def zip_member_bytes(archive: zipfile.ZipFile) -> dict[str, int]:
    """Bytes the ``.npy`` header of each member of an ``.npz`` archive declares, read
    before any array is (NumPy allocates what a header declares, then reads).

    Raises:
        ValueError: A member is not a readable ``.npy`` array.
    """
    sizes: dict[str, int] = {}
    for info in archive.infolist():
        with archive.open(info) as member:
            try:
                sizes[info.filename] = npy_header_bytes(member)
            except ValueError as e:
                raise ValueError(f"member {info.filename!r}: {e}") from None
    return sizes


def check_array_file(path: str | os.PathLike[str], what: str) -> None:
    """Check the sizes an ``.npy`` file or an ``.npz`` archive declares, before reading it.

    Raises:
        SizeLimitError: The arrays together exceed the limit.
        ModelFileError: A header cannot be read (a corrupt file).
    """
    p = Path(path)
    try:
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as archive:
                check_bytes(sum(zip_member_bytes(archive).values()), f"{what}: its arrays")
        else:
            with p.open("rb") as f:
                check_bytes(npy_header_bytes(f), f"{what}: its array")
    except ARCHIVE_ERRORS as e:
        raise ModelFileError(f"{what} is not a readable .npy/.npz file: {e}") from None


__all__ = ["ARCHIVE_ERRORS", "DEFAULT_MAX_BYTES", "ENV_VAR", "check_array_file", "check_bytes",
           "format_bytes", "max_bytes", "nbytes", "npy_header_bytes", "parse_size",
           "set_max_bytes", "zip_member_bytes"]
