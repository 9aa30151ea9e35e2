"""What a ``.nir`` (HDF5) file may ask of libhdf5, checked before libhdf5 is asked.

HDF5 holds more than arrays: a dataset can keep its bytes in another file (external
storage) or be assembled from datasets of other files (a virtual dataset); a link can name
another file or another path (external and soft links); one object can be linked under many
names; a compressed chunk can inflate to far more than its declared size; a
variable-length string can claim any length. libhdf5 follows all of these when asked to
read (it opens the other file, a FIFO included, and waits; it allocates what a string or a
chunk claims). :mod:`spikejit.frontends.nir.reader` calls the checks here before each
object is opened or read; they raise :class:`~spikejit.errors.ModelFileError`, whose
message starts with ``what`` (the file and the HDF5 path).

The byte-level walks follow the HDF5 file format specification, for the layouts h5py writes
(8-byte addresses and lengths; other files are refused by :func:`check_file`).
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spikejit.errors import ModelFileError
from spikejit.limits import nbytes

#: Filters libhdf5 may run on a chunk (HDF5 filter ids). Others are refused: libhdf5 loads
#: unknown ones as plugins, and lzf and szip trust sizes written in the file.
FILTERS = {1: "gzip", 2: "shuffle", 3: "fletcher32"}
#: What one text element costs once read, besides its characters (a Python bytes object).
TEXT_OVERHEAD = 64
_VLEN = np.dtype([("len", "<u4"), ("addr", "<u8"), ("index", "<u4")])  # a string on disk

#: Heap object sizes by (collection offset in the file, object index).
HeapObjects = dict[tuple[int, int], int]


@dataclass
class FileFacts:
    """What the byte-level walk of a file learned, for the per-dataset checks."""

    path: Path
    size: int
    heap: HeapObjects = field(default_factory=dict)
    base: int = 0  # where HDF5 addresses count from (after a user block)


# -- the whole file -----------------------------------------------------------------------

def check_global_heaps(path: Path) -> HeapObjects:
    """Refuse a file whose HDF5 global heap (where variable-length strings live) is
    damaged; return the size of every heap object.

    The HDF5 library loops forever on some damaged heap collections (an object header
    zeroed in the middle of a collection), so the collections are walked here first, using
    the layout of the HDF5 file format (version-1 collections, 8-byte lengths, as h5py
    writes them): ``"GCOL"``, version 1, 3 reserved bytes, the collection size, then objects
    ``(index: u16, refcount: u16, reserved: 4 bytes, size: u64, data padded to 8 bytes)``
    up to a free-space object (index 0) whose size is exactly the rest of the collection.
    """
    objects: HeapObjects = {}
    with path.open("rb") as fh:
        try:
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):  # an empty file cannot be mapped: h5py reports it
            return objects
        with data:
            start = data.find(b"GCOL")
            while start >= 0:
                # Version 1; the 3 reserved bytes are not looked at (libhdf5 does not).
                if data[start + 4:start + 5] == b"\x01":
                    problem = _heap_problem(data, start, objects)
                    if problem:
                        raise ModelFileError(f"NIR file {str(path)!r} is damaged: the HDF5 "
                                             f"global heap at byte {start} {problem}")
                start = data.find(b"GCOL", start + 4)
    return objects


def _heap_problem(data: Any, start: int, objects: HeapObjects) -> str | None:
    if start + 16 > len(data):
        return "is cut off"
    (size,) = struct.unpack_from("<Q", data, start + 8)
    end = start + size
    if size < 16 or end > len(data):
        return f"claims {size} bytes, beyond the end of the file"
    p = start + 16
    while p + 16 <= end:
        index = struct.unpack_from("<H", data, p)[0]
        (length,) = struct.unpack_from("<Q", data, p + 8)
        if index == 0:
            return None if length == end - p else "has a damaged free-space record"
        objects[(start, index)] = length
        p += 16 + (length + 7) // 8 * 8
    return None if p <= end else "has an object that runs past its end"


def check_file(f: Any, facts: FileFacts, what: str) -> None:
    """Refuse HDF5 layouts the byte-level checks do not know (4-byte addresses or lengths:
    h5py never writes them); note where addresses count from."""
    fcpl = f.id.get_create_plist()
    sizes = fcpl.get_sizes()
    if tuple(sizes) != (8, 8):
        raise ModelFileError(f"{what} uses {sizes[0]}-byte addresses and {sizes[1]}-byte "
                             f"lengths; only files with 8-byte ones (as h5py writes them) "
                             f"are read")
    facts.base = int(fcpl.get_userblock())


# -- links and objects --------------------------------------------------------------------

def check_links(group: Any, what: str, count: Callable[[int, str], None]) -> list[str]:
    """The names linked in ``group``, all hard links; soft, external and user-defined links
    are refused without being followed (never open a path because the file says so).
    ``count(1, path)`` is told of each link as it is listed (the reader bounds them)."""
    names = []
    for name in group:
        if not isinstance(name, str):  # h5py gives bytes for names that are not UTF-8
            raise ModelFileError(f"{what} holds a link named {name!r}, which is not UTF-8 "
                                 f"text")
        count(1, f"{what}/{name}")
        link_kind(group, name, f"{what}/{name}")
        names.append(name)
    return names


def link_kind(group: Any, name: str, what: str) -> bool:
    """Whether ``name`` is linked in ``group`` (False: absent). Raises unless it is a hard
    link. Only the link is read, never its target."""
    import h5py

    key = name.encode("utf8")
    links = group.id.links
    if not links.exists(key):
        return False
    kind = links.get_info(key).type
    if kind == h5py.h5l.TYPE_HARD:
        return True
    try:
        target = links.get_val(key)  # the link's own text: nothing is opened
    except (OSError, ValueError, TypeError, RuntimeError):
        target = None
    if kind == h5py.h5l.TYPE_SOFT:
        desc = f"a soft link to {_text(target)}"
    elif kind == h5py.h5l.TYPE_EXTERNAL and isinstance(target, tuple) and len(target) == 2:
        desc = f"an external link to {_text(target[1])} in file {_text(target[0])}"
    else:
        desc = f"a link of type {kind}"
    raise ModelFileError(f"{what} is {desc}; only plain (hard) links are read, links to "
                         f"other paths or files are refused")


def _text(value: Any) -> str:
    """A name the file gives, for a message (decoded, quoted, cut short)."""
    if isinstance(value, bytes):
        value = value.decode("utf8", "replace")
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def object_address(obj: Any) -> int:
    """Where the object's header is in its file: the same address means the same object."""
    import h5py

    return int(h5py.h5o.get_info(obj.id).addr)


# -- datasets -----------------------------------------------------------------------------

def check_dataset(ds: Any, what: str) -> None:
    """Refuse a dataset whose data is not plain bytes of this file, or whose type NIR does
    not use. Only the dataset's header is read; its shape is not asked for either (for an
    unlimited virtual dataset libhdf5 opens the other files to find it)."""
    import h5py

    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        raise ModelFileError(f"{what} is a virtual dataset (its data comes from other "
                             f"datasets or files); virtual datasets are refused")
    if layout not in (h5py.h5d.COMPACT, h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED):
        raise ModelFileError(f"{what} has HDF5 storage layout {layout}, which is not read")
    if dcpl.get_external_count() > 0:
        name = _text(dcpl.get_external(0)[0])
        raise ModelFileError(f"{what} keeps its data in another file ({name}); external "
                             f"storage is refused")
    _check_dtype(ds, dcpl, what)
    for i in range(dcpl.get_nfilters()):
        code = dcpl.get_filter(i)[0]
        if code not in FILTERS:
            raise ModelFileError(f"{what} is stored through HDF5 filter {code}; only "
                                 f"{', '.join(FILTERS.values())} are read (rewrite the file "
                                 f"with nir.write's default gzip compression)")


def _check_dtype(ds: Any, dcpl: Any, what: str) -> None:
    import h5py

    try:
        dt = ds.dtype
    except (TypeError, ValueError) as e:  # HDF5 types numpy has no equivalent for
        raise ModelFileError(f"{what} has an HDF5 type NIR does not use ({e})") from None
    if dt.kind in "biuf" and dt.fields is None and dt.subdtype is None:
        return
    if dt.kind == "S":
        return
    if dt.kind == "O" and h5py.check_string_dtype(dt) is not None:
        if dcpl.fill_value_defined() == h5py.h5d.FILL_VALUE_USER_DEFINED:
            # Chunks never written read as the fill value: one long string, many times.
            raise ModelFileError(f"{what} is text with a fill value; refused")
        return
    raise ModelFileError(f"{what} has type {_describe(dt)}; NIR datasets hold numbers "
                         f"(integers, floats, booleans) or text")


def _describe(dt: np.dtype) -> str:
    import h5py

    if h5py.check_ref_dtype(dt) is not None:
        return "reference"
    if h5py.check_vlen_dtype(dt) is not None:
        return f"variable-length sequence of {h5py.check_vlen_dtype(dt)}"
    if dt.fields is not None:
        return "compound"
    if dt.subdtype is not None:
        return f"array of {dt.subdtype[0]}"
    return {"c": f"complex ({dt})", "V": "opaque"}.get(dt.kind, str(dt))


def declared_bytes(ds: Any) -> tuple[int, int]:
    """Bytes reading ``ds`` needs as it declares itself, and the bytes of one chunk (which
    libhdf5 allocates on top while it decompresses). Text elements cost
    :data:`TEXT_OVERHEAD` each here; their characters are counted by
    :func:`check_storage`."""
    shape = ds.shape or ()  # None for an empty (null) dataspace
    item = TEXT_OVERHEAD if ds.dtype.kind == "O" else ds.dtype.itemsize
    chunks = ds.chunks
    chunk = nbytes(chunks, _disk_itemsize(ds)) if chunks else 0
    return nbytes(shape, item), chunk


def _disk_itemsize(ds: Any) -> int:
    # On disk a variable-length string is (length: u32, heap address: u64, index: u32).
    return _VLEN.itemsize if ds.dtype.kind == "O" else int(ds.id.get_type().get_size())


def check_storage(ds: Any, what: str, facts: FileFacts,
                  count: Callable[[int, str], None]) -> int:
    """Check the stored bytes of ``ds`` against what libhdf5 will do with them; return
    the bytes of its text (0 for numbers).

    * every compressed chunk must inflate to at most its declared size (libhdf5's gzip
      filter grows its buffer until a stream ends: a few kilobytes can claim gigabytes);
    * every variable-length string must name a global heap object of the length it
      claims (libhdf5 allocates the claimed length first, up to 4 GiB, then compares).

    ``count(n, what)`` is told of the chunks visited (the reader bounds their number).
    """
    import h5py

    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    text = ds.dtype.kind == "O"
    if layout == h5py.h5d.CHUNKED:
        pipeline = [dcpl.get_filter(i) for i in range(dcpl.get_nfilters())]
        if not pipeline and not text:
            return 0
        return _check_chunks(ds, what, facts, pipeline, text, count)
    if not text:
        return 0
    if layout != h5py.h5d.CONTIGUOUS:
        raise ModelFileError(f"{what} is text stored in the dataset header (compact "
                             f"layout); only contiguous or chunked text is read")
    offset = ds.id.get_offset()
    if offset is None:  # never written: every element is the (empty) default string
        return 0
    length = nbytes(ds.shape or (), _VLEN.itemsize)
    if offset + length > facts.size:
        raise ModelFileError(f"{what} runs past the end of the file")
    with facts.path.open("rb") as fh:
        fh.seek(offset)
        return _text_bytes(fh.read(length), facts, what)


def _check_chunks(ds: Any, what: str, facts: FileFacts, pipeline: list[Any], text: bool,
                  count: Callable[[int, str], None]) -> int:
    chunk_bytes = nbytes(ds.chunks, _disk_itemsize(ds))
    chunks: list[Any] = []

    def visit(info: Any) -> None:
        count(1, what)
        chunks.append(info)

    if hasattr(ds.id, "chunk_iter"):
        ds.id.chunk_iter(visit)
    else:  # older libhdf5: by index (each lookup walks the index; fine for NIR's few)
        for i in range(ds.id.get_num_chunks()):
            visit(ds.id.get_chunk_info(i))
    total = 0
    for info in chunks:
        where = f"{what}, chunk at {tuple(int(x) for x in info.chunk_offset)}"
        if info.size > facts.size:
            raise ModelFileError(f"{where} claims {info.size} bytes, more than the whole "
                                 f"file")
        mask, raw = ds.id.read_direct_chunk(info.chunk_offset)
        data = _unfilter(bytes(raw), pipeline, mask, chunk_bytes, where, keep=text)
        if text:
            total += _text_bytes(data, facts, where)
    return total


def _unfilter(raw: bytes, pipeline: list[Any], mask: int, limit: int, where: str, *,
              keep: bool) -> bytes:
    """Undo the filters of one chunk as libhdf5 will (last applied first), refusing a gzip
    stream that inflates beyond ``limit``; the bytes are exact only if ``keep``."""
    for i in reversed(range(len(pipeline))):
        if mask >> i & 1:  # this filter was skipped for this chunk
            continue
        code, _flags, opts, _name = pipeline[i]
        if code == 3:  # fletcher32: a 4-byte checksum at the end
            raw = raw[:-4]
        elif code == 1:
            inflate = zlib.decompressobj()
            try:
                out = inflate.decompress(raw, limit + 1)
            except zlib.error as e:
                raise ModelFileError(f"{where} is not a valid gzip stream ({e})") from None
            if len(out) > limit:
                raise ModelFileError(f"{where} inflates to more than its declared "
                                     f"{limit:,} bytes (a compression bomb); refused")
            raw = out
        elif code == 2 and keep:
            raw = _unshuffle(raw, int(opts[0]) if opts else 1)
    return raw


def _unshuffle(raw: bytes, size: int) -> bytes:
    n = len(raw) // size if size > 0 else 0
    if n == 0:
        return raw
    body = np.frombuffer(raw, np.uint8, n * size).reshape(size, n).T.tobytes()
    return body + raw[n * size:]


def _text_bytes(raw: bytes, facts: FileFacts, where: str) -> int:
    """Characters the string descriptors in ``raw`` point to, each checked against the
    heap object it names."""
    strings = np.frombuffer(raw, _VLEN, len(raw) // _VLEN.itemsize)
    strings = strings[strings["addr"] != 0]  # address 0: an empty string, nothing read
    if strings.size == 0:
        return 0
    unique, counts = np.unique(strings, return_counts=True)
    total = 0
    for (length, addr, index), n in zip(unique.tolist(), counts.tolist(), strict=True):
        stored = facts.heap.get((addr + facts.base, index))
        if stored != length:
            held = "no such object" if stored is None else f"{stored} bytes"
            raise ModelFileError(f"{where} holds a string of {length} bytes in the HDF5 "
                                 f"global heap at {addr}, object {index}, where the file "
                                 f"has {held}")
        total += length * n
    return total
