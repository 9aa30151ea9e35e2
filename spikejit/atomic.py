"""Writing files safely: regular files only, atomically, keeping the old file's metadata.

Every file spikejit writes (saved models, NIR files, CLI outputs, drawings) goes through
:func:`atomic_path` or :func:`atomic_open`:

* The destination must be a regular file or not exist yet. Directories, devices, FIFOs
  and sockets are refused with :class:`~spikejit.errors.OutputError` before anything is
  written (``--output /dev/null`` run as root would otherwise replace ``/dev/null``).
* A symlink is followed to its final target, and the target is replaced; the link stays.
  A dangling link creates its target (as ``open(path, "w")`` would); a loop is refused.
* The data goes to a temporary file in the target's directory (``.{name}.{random}.tmp``,
  created exclusively, never through a symlink), is synced, and renamed over the target,
  so a failed or interrupted write (an exception, Ctrl-C, a full disk) never leaves a
  partial file there. The temporary file is removed on failure; only a hard kill can leave
  one behind.
* An existing file keeps its permission bits and, where the system allows it, its owner
  and group. A new file gets the usual permissions (``0o666`` minus the umask).

:func:`check_writable_destination` runs the same checks without writing, for callers (the
CLI) that want to fail before a long computation.

This module is a leaf (like :mod:`spikejit.errors`): every layer may import it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from spikejit.errors import OutputError

_MAX_LINKS = 40  # Linux's MAXSYMLINKS: a longer chain is refused like a loop
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO must fail, not wait for a peer

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symlink"))


@dataclass(frozen=True)
class _Destination:
    given: Path  # as the caller named it
    final: Path  # after following symlinks; the file that is replaced
    old: os.stat_result | None  # the regular file there now, if any

    def describe(self) -> str:
        if self.given == self.final:
            return repr(os.fspath(self.given))
        return f"{os.fspath(self.given)!r} (a symlink to {os.fspath(self.final)!r})"


def check_writable_destination(path: str | os.PathLike[str]) -> Path:
    """Check, without writing, that spikejit could write ``path``; return the file written.

    The returned path is ``path`` with its symlinks followed. Call it before a long
    computation whose result goes to ``path``; the writers check again when they write.

    Raises:
        OutputError: ``path`` (or the file its symlinks lead to) is a directory, a device,
            a FIFO or a socket, its symlinks form a loop, or its directory does not exist.
        OSError: ``path`` cannot be examined (e.g. a parent is not a directory).
    """
    dest = _resolve(path)
    parent = dest.final.parent
    if dest.old is None and not parent.is_dir():
        raise OutputError(f"cannot write {dest.describe()}: the directory "
                          f"{os.fspath(parent)!r} does not exist")
    return dest.final


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``'s target; on success it replaces it.

    For writers that want a file name (h5py); the temporary file exists, empty, and the
    writer may truncate and fill it.

    Raises:
        OutputError: The destination is not a regular file (see the module docstring), or
            became one of those while the data was written.
        OSError: The directory does not exist or cannot be written (nothing is left
            behind).
    """
    dest = _resolve(path)
    tmp, fd = _reserve(dest)
    os.close(fd)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
        try:
            _finish(fd, tmp, dest)
        finally:
            os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file to write; on success it is flushed, synced and renamed to ``path``
    (to its target, if ``path`` is a symlink).

    Syncing before the rename makes the new content durable before it becomes visible, so
    a crash right after the rename cannot leave an empty file under the final name. The
    file object is the descriptor that created the temporary file: nothing reopens it by
    name.

    Raises:
        OutputError: As :func:`atomic_path`.
    """
    dest = _resolve(path)
    tmp, fd = _reserve(dest)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            _finish(f.fileno(), tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path) as f:
        f.write(data)
    return Path(path)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _refuse(dest: _Destination, mode: int, when: str = "") -> OutputError:
    return OutputError(f"cannot write {dest.describe()}: it is {_kind(mode)}{when}; spikejit "
                       f"writes only regular files")


def _resolve(path: str | os.PathLike[str]) -> _Destination:
    """Follow ``path``'s symlinks to the file to replace, and check that it is regular."""
    given = Path(path)
    final = given
    seen: set[Path] = set()
    for _ in range(_MAX_LINKS + 1):
        try:
            st = os.lstat(final)
        except FileNotFoundError:  # a new file (or a missing directory: the write says so)
            return _Destination(given, final, None)
        except OSError as e:
            if e.errno == errno.ELOOP:  # in a directory part of the path
                raise OutputError(f"cannot write {os.fspath(given)!r}: its path has a symlink "
                                  f"loop") from None
            raise
        if not stat.S_ISLNK(st.st_mode):
            dest = _Destination(given, final, st)
            if not stat.S_ISREG(st.st_mode):
                raise _refuse(dest, st.st_mode)
            return dest
        if final in seen:
            break
        seen.add(final)
        # Relative to the link's own directory; not normalised, so that '..' after a
        # symlinked directory means what the kernel makes of it.
        final = final.parent / os.readlink(final)
    raise OutputError(f"cannot write {os.fspath(given)!r}: its symlinks form a loop (or a "
                      f"chain of more than {_MAX_LINKS} links)")


def _reserve(dest: _Destination) -> tuple[Path, int]:
    """Create an empty, exclusively owned temporary file beside ``dest.final``; returns it
    and its open descriptor."""
    # Owner-only while it is written when it replaces a file (whose mode comes at the end,
    # which may be stricter than the umask's); a new file gets the usual permissions.
    mode = 0o600 if dest.old is not None else 0o666
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | _NOFOLLOW | _CLOEXEC
    while True:
        # The name is cut so that the temporary name fits where the target's name fits.
        tmp = dest.final.with_name(f".{dest.final.name[:200]}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, flags, mode)
        except FileExistsError:  # pragma: no cover - 2**32 names; try another
            continue


def _finish(fd: int, tmp: Path, dest: _Destination) -> None:
    """Give the written temporary file (open as ``fd``) the old file's metadata, check the
    destination once more, and rename the file over it."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # pragma: no cover - someone swapped our file
        raise OutputError(f"cannot write {dest.describe()}: the temporary file "
                          f"{os.fspath(tmp)!r} was replaced by {_kind(st.st_mode)}")
    if dest.old is not None:
        _keep_owner_and_mode(fd, st, dest.old)
    # The destination may have changed since it was checked (a FIFO or a symlink put in
    # its place): look again right before the rename, which would replace it.
    try:
        now = os.lstat(dest.final)
    except FileNotFoundError:
        now = None
    if now is not None and not stat.S_ISREG(now.st_mode):
        raise _refuse(dest, now.st_mode, " (it changed while spikejit was writing)")
    os.replace(tmp, dest.final)


def _keep_owner_and_mode(fd: int, st: os.stat_result, old: os.stat_result) -> None:
    """Owner and group first (changing them may clear mode bits), then the permission bits.

    Only root may give a file away; others keep the group if they belong to it, else the
    new file is theirs. Set-id and sticky bits are not copied.
    """
    if (st.st_uid, st.st_gid) != (old.st_uid, old.st_gid):
        with contextlib.suppress(OSError):
            try:
                os.fchown(fd, old.st_uid, old.st_gid)
            except PermissionError:
                os.fchown(fd, -1, old.st_gid)
    os.fchmod(fd, stat.S_IMODE(old.st_mode) & 0o777)


__all__ = ["atomic_open", "atomic_path", "check_writable_destination", "write_bytes_atomic"]
