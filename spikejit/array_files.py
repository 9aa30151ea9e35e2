"""Reading ``.npy`` and ``.npz`` files that may be hostile, within the size limit.

Told apart by their first bytes, as ``np.load`` does; for an archive the zip directory's
size, the members' sizes it declares, then the shapes in the ``.npy`` headers, summed over
the archive and each checked against what its file or member holds, all before any array
is read (:class:`NpzArchive`, :func:`read_array_file`). Limits come from
:mod:`spikejit.limits`.

This module is a leaf (like :mod:`spikejit.errors`): every layer may import it.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import IO, Any

from spikejit.errors import ModelFileError, SizeLimitError, SpikejitError
from spikejit.limits import check_bytes, format_bytes, max_bytes, nbytes

#: What reading a damaged zip archive or ``.npy`` member can raise: besides ``BadZipFile``,
#: ``zipfile`` raises ``NotImplementedError`` for unknown versions and compression methods,
#: ``RuntimeError`` for encrypted members, ``zlib.error`` for corrupt deflate streams and
#: ``struct.error`` for cut records; NumPy raises ``ValueError`` for bad headers.
ARCHIVE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, EOFError, ValueError, TypeError, KeyError, RuntimeError, NotImplementedError,
    OverflowError, zipfile.BadZipFile, zlib.error, struct.error)
#: What parsing a ``.npy`` header can raise besides (NumPy's literal parser: SyntaxError).
_HEADER_ERRORS: tuple[type[BaseException], ...] = (*ARCHIVE_ERRORS, SyntaxError)


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


__all__ = ["ARCHIVE_ERRORS", "MAX_NPY_HEADER", "MAX_ZIP_DIRECTORY", "NPY_MAGIC",
           "ZIP_PREFIXES", "MemberLabel", "NpyHeader", "NpzArchive", "array_file_kind",
           "check_array_file", "npy_header_bytes", "read_array_file", "read_npy_header"]
