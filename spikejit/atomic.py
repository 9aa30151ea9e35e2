"""Writing files atomically: a temporary file in the same directory, then a rename.

Every file spikejit writes (saved models, NIR files, CLI outputs, drawings) goes through
:func:`atomic_path`, so a failed or interrupted write (an exception, Ctrl-C, a full disk)
never leaves a partial file at the destination, and an existing file there is replaced
only by a complete one. The temporary file is removed on failure; only a hard kill can
leave one behind (named ``.{name}.{random}.tmp``, next to the destination).

This module is a leaf (like :mod:`spikejit.errors`): every layer may import it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; on success it is renamed to ``path``.

    For writers that want a file name (h5py, graphviz); the caller creates the file. The
    temporary name is created exclusively with mode ``0o666`` (the umask applies, as for
    a plain ``open``), so the result has the usual permissions.

    Raises:
        OSError: The directory does not exist or cannot be written (nothing is left
            behind).
    """
    target = Path(path)
    tmp = _reserve(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file to write; on success it is flushed, synced and renamed to ``path``.

    Syncing before the rename makes the new content durable before it becomes visible, so
    a crash right after the rename cannot leave an empty file under the final name.
    """
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path) as f:
        f.write(data)
    return Path(path)


def _reserve(target: Path) -> Path:
    """Create an empty, exclusively owned temporary file next to ``target``."""
    while True:
        # The name is cut so that the temporary name fits where the target's name fits.
        tmp = target.with_name(f".{target.name[:200]}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:  # pragma: no cover - 2**32 names; try another
            continue
        os.close(fd)
        return tmp


__all__ = ["atomic_open", "atomic_path", "write_bytes_atomic"]
