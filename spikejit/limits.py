"""Memory limits: refuse a model before allocating what it declares.

A model file is small, but the sizes it *declares* need not be: an HDF5 dataset, a ``.npy``
header or an IR type can ask for terabytes in a few bytes. Every place that would allocate
memory sized by a model asks :func:`check_bytes` first, which raises
:class:`~spikejit.errors.SizeLimitError` with the size when the limit is exceeded:

* reading a ``.nir`` file: the declared size of every dataset, summed over the file;
* reading a saved model or an ``.npy``/``.npz`` array file (:class:`NpzArchive`,
  :func:`read_array_file`): told apart by their first bytes, as ``np.load`` does; the zip
  directory's size, the members' sizes it declares, then the shapes in the ``.npy``
  headers, summed over the archive and each checked against what its file or member
  holds, before any array is read;
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

import dataclasses
import io
import math
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from typing import IO, Any

from spikejit.errors import ModelFileError, OptionError, SizeLimitError, SpikejitError

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


# -- .npy / .npz files ----------------------------------------------------------------------

#: How ``np.load`` tells the formats apart (``numpy/lib/_npyio_impl.py``, ``load``): by the
#: first six bytes, never by the name or by what ``zipfile.is_zipfile`` (which looks at the
#: end of the file) says. A zip prefix (a member's local header, or the end record of an
#: empty archive) means an archive, the ``.npy`` magic an array; anything else NumPy would
#: unpickle (or refuse without ``allow_pickle``), and spikejit refuses.
ZIP_PREFIXES = (b"PK\x03\x04", b"PK\x05\x06")
NPY_MAGIC = b"\x93NUMPY"
#: Longest ``.npy`` header NumPy accepts (``max_header_size``). NumPy reads the length a
#: header declares (up to 4 GiB for version 2) before comparing it, so it is checked here.
MAX_NPY_HEADER = 10_000
#: Largest zip directory read: ``zipfile`` reads it whole and makes a Python object of about
#: 500 bytes per entry (47 bytes or more). A fixed cap, whatever the limit: a saved model
#: needs about 100 bytes per parameter.
MAX_ZIP_DIRECTORY = 4 * 2**20
#: Bytes IR text counts for against the limit, per byte of text: the parsed graph takes up
#: to ~30 bytes of Python objects per byte of text (measured on graphs of tiny nodes).
TEXT_COST = 32


@dataclasses.dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` header declares, and where its data starts."""

    shape: tuple[int, ...]
    fortran_order: bool
    dtype: Any  # numpy.dtype (NumPy is imported lazily)
    offset: int

    @property
    def nbytes(self) -> int:
        return nbytes(self.shape, self.dtype.itemsize)


def array_file_kind(head: bytes) -> str | None:
    """``"zip"``, ``"npy"`` or ``None`` for the first six bytes of a file, by np.load's
    rule (see :data:`ZIP_PREFIXES`)."""
    if head.startswith(ZIP_PREFIXES):
        return "zip"
    return "npy" if head == NPY_MAGIC else None


def read_npy_header(f: IO[bytes]) -> NpyHeader:
    """The ``.npy`` header at the cursor of ``f``; reads at most :data:`MAX_NPY_HEADER`
    and a few bytes, never the data.

    Raises:
        ValueError: The header is not a ``.npy`` header this reader understands (callers
            turn it into a :class:`~spikejit.errors.ModelFileError` naming their file).
    """
    import numpy as np

    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f".npy format version {version} is not supported")
        length_format = "<H" if version == (1, 0) else "<I"
        raw = f.read(struct.calcsize(length_format))
        if len(raw) < struct.calcsize(length_format):
            raise ValueError("the .npy header is cut short")
        (length,) = struct.unpack(length_format, raw)
        if length > MAX_NPY_HEADER:
            raise ValueError(f"the .npy header declares {length:,} bytes, more than the "
                             f"{MAX_NPY_HEADER:,} NumPy reads")
        header = f.read(length)
        if len(header) < length:
            raise ValueError("the .npy header is cut short")
        parse = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran_order, dtype = parse(io.BytesIO(raw + header))
    except ValueError:
        raise
    except _HEADER_ERRORS as e:
        raise ValueError(f"damaged .npy header ({e})") from None
    return NpyHeader(tuple(shape), bool(fortran_order), dtype, 8 + len(raw) + length)


def npy_header_bytes(f: IO[bytes]) -> int:
    """Bytes the ``.npy`` header at the start of ``f`` declares (the data is not read).

    Raises:
        ValueError: As :func:`read_npy_header`.
    """
    return read_npy_header(f).nbytes


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


#: Names a member for a size-limit message, given the open archive (e.g. the parameter
#: a saved model stores in it).
MemberLabel = Callable[[zipfile.ZipFile, str], str]


def _check_total(archive: zipfile.ZipFile, sizes: list[tuple[str, int]], what: str,
                 label: MemberLabel | None) -> None:
    """Check the sum of ``(member, bytes)``, naming the largest member when it is over."""
    total = sum(size for _, size in sizes)
    if total > max_bytes():
        largest = max(sizes, key=lambda item: item[1])[0]
        name = label(archive, largest) if label is not None else f"member {largest!r}"
        check_bytes(total, f"{what}: its arrays (the largest: {name})")


class NpzArchive:
    """A zip of ``.npy`` members, opened only after every size it declares was checked.

    Opening checks, before anything is decompressed: the directory's size (at most
    :data:`MAX_ZIP_DIRECTORY`); the members' uncompressed sizes from the directory, summed,
    against the limit; their compression (stored or deflated: ``zipfile`` decompresses
    bzip2 and LZMA without an output bound); then each member's ``.npy`` header, summed
    against the limit, and each within its member's size. ``zipfile`` never returns more
    than the directory's size of a member (a stream that inflates further fails its CRC),
    so no read can grow beyond what was checked.

    Raises:
        SizeLimitError: The directory or the members are too big.
        ModelFileError: A member declares more data than it holds, or is compressed in a
            way spikejit does not read.
        zipfile.BadZipFile, ValueError, ...: One of :data:`ARCHIVE_ERRORS` for an archive
            that ``zipfile`` or the header reader cannot read (callers name their file).
    """

    def __init__(self, f: IO[bytes], what: str, label: MemberLabel | None = None) -> None:
        self.what = what
        _check_zip_directory(f, what)
        self.zip = zipfile.ZipFile(f)
        try:
            self.headers = self._check_members(label)
        except BaseException:
            self.zip.close()
            raise

    def _check_members(self, label: MemberLabel | None) -> dict[str, NpyHeader]:
        infos = self.zip.infolist()
        _check_total(self.zip, [(i.filename, i.file_size) for i in infos], self.what, label)
        for info in infos:
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ModelFileError(f"{self.what}: member {info.filename!r} is compressed "
                                     f"with zip method {info.compress_type}; spikejit reads "
                                     f"stored or deflated members only")
        headers: list[tuple[zipfile.ZipInfo, NpyHeader]] = []
        for info in infos:
            with self.zip.open(info) as member:
                try:
                    headers.append((info, read_npy_header(member)))
                except ValueError as e:
                    raise ValueError(f"member {info.filename!r}: {e}") from None
        _check_total(self.zip, [(i.filename, h.nbytes) for i, h in headers], self.what, label)
        for info, header in headers:
            held = max(info.file_size - header.offset, 0)
            if header.nbytes > held:
                raise ModelFileError(
                    f"{self.what}: member {info.filename!r} is damaged: its .npy header "
                    f"declares {format_bytes(header.nbytes)} of data, but the member holds "
                    f"{format_bytes(held)}")
        return {info.filename: header for info, header in headers}

    @property
    def names(self) -> list[str]:
        """Member names, in the archive's order."""
        return list(self.headers)

    def read(self, name: str) -> Any:
        """The array of member ``name`` (a numpy.ndarray; never unpickled)."""
        import numpy as np

        with self.zip.open(name) as member:
            return np.lib.format.read_array(member, allow_pickle=False)

    def close(self) -> None:
        self.zip.close()

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_zip_directory(f: IO[bytes], what: str) -> None:
    """Check the directory's size, from the end record ``zipfile`` itself finds (its
    ``_EndRecData``, so both agree), before ``zipfile`` reads the directory whole."""
    size = f.seek(0, os.SEEK_END)
    try:
        end = zipfile._EndRecData(f)  # type: ignore[attr-defined]
    except OSError:  # shorter than an end record (as zipfile itself reports it)
        end = None
    if not end:
        raise zipfile.BadZipFile("File is not a zip file")
    directory = end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    if directory > size:
        raise ModelFileError(f"{what} is damaged: its zip directory of "
                             f"{format_bytes(directory)} is longer than the file "
                             f"({format_bytes(size)})")
    if directory > MAX_ZIP_DIRECTORY:
        raise SizeLimitError(f"{what}: its zip directory takes {format_bytes(directory)}, "
                             f"more than the {format_bytes(MAX_ZIP_DIRECTORY)} spikejit reads "
                             f"(a fixed cap)", nbytes=directory, limit=MAX_ZIP_DIRECTORY)
    f.seek(0)


def _read_npy(f: IO[bytes], what: str) -> Any:
    """The array of an open ``.npy`` file, checked from its header and its size first."""
    import numpy as np

    header = read_npy_header(f)
    check_bytes(header.nbytes, f"{what}: its array")
    size = f.seek(0, os.SEEK_END)
    held = max(size - header.offset, 0)
    if header.nbytes > held:
        raise ModelFileError(f"{what} is truncated: its .npy header declares "
                             f"{format_bytes(header.nbytes)} of data, but the file holds "
                             f"{format_bytes(held)}")
    f.seek(0)
    return np.lib.format.read_array(f, allow_pickle=False)


def _open_kind(f: IO[bytes], what: str) -> str:
    head = f.read(len(NPY_MAGIC))
    f.seek(0)
    kind = array_file_kind(head)
    if kind is None:
        raise ModelFileError(f"{what} is neither an .npz archive nor an .npy file: it "
                             + ("is empty" if not head else f"starts with {head!r}"))
    return kind


def read_array_file(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """The arrays of an ``.npy`` file (key ``""``) or an ``.npz`` archive (keys: member
    names without ``.npy``, as NumPy gives them), each size checked before it is read.

    The format is decided as ``np.load`` decides it (:data:`ZIP_PREFIXES`); what
    :class:`NpzArchive` checks applies to archives, and an ``.npy`` file must hold the
    data its header declares.

    Raises:
        SizeLimitError: The arrays together exceed the limit.
        ModelFileError: The file is neither format, or is damaged (the message names
            ``what``).
    """
    try:
        with open(path, "rb") as f:
            if _open_kind(f, what) == "npy":
                return {"": _read_npy(f, what)}
            with NpzArchive(f, what) as archive:
                return {name.removesuffix(".npy"): archive.read(name)
                        for name in archive.names}
    except SpikejitError:
        raise
    except ARCHIVE_ERRORS as e:
        raise ModelFileError(f"{what} is not a readable .npy/.npz file: {e}") from None


def check_array_file(path: str | os.PathLike[str], what: str) -> None:
    """Check the sizes an ``.npy`` file or an ``.npz`` archive declares, reading headers
    only (:func:`read_array_file` checks the same, then reads).

    Raises:
        SizeLimitError: The arrays together exceed the limit.
        ModelFileError: A header cannot be read (a corrupt file).
    """
    try:
        with open(path, "rb") as f:
            if _open_kind(f, what) == "npy":
                check_bytes(read_npy_header(f).nbytes, f"{what}: its array")
            else:
                NpzArchive(f, what).close()
    except SpikejitError:
        raise
    except ARCHIVE_ERRORS as e:
        raise ModelFileError(f"{what} is not a readable .npy/.npz file: {e}") from None


__all__ = ["ARCHIVE_ERRORS", "DEFAULT_MAX_BYTES", "ENV_VAR", "MAX_NPY_HEADER",
           "MAX_ZIP_DIRECTORY", "NPY_MAGIC", "TEXT_COST", "ZIP_PREFIXES", "MemberLabel",
           "NpyHeader", "NpzArchive", "array_file_kind", "check_array_file", "check_bytes",
           "check_text_bytes", "format_bytes", "max_bytes", "nbytes", "npy_header_bytes",
           "parse_size", "read_array_file", "read_npy_header", "set_max_bytes"]
