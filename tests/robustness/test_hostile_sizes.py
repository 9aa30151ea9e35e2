"""Files whose sizes lie or explode: each is refused (or read) fast and in bounded memory.

Each case builds a small hostile file in ``tmp_path``: IR text of millions of blank lines,
a saved model whose deflated IR member inflates to tens of megabytes, an ``.npy`` header
declaring gigabytes in front of an empty zip's end record (``zipfile.is_zipfile`` says
zip, ``np.load`` reads an array), sparse files, zip directories and ``.npy`` header
lengths that claim more than the file holds. Memory is measured with ``tracemalloc``
(NumPy reports its array buffers to it), and must stay far below what the file declares.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers_robustness import max_bytes
from typer.testing import CliRunner

import spikejit
from spikejit.array_files import MAX_ZIP_DIRECTORY, check_array_file
from spikejit.cli import app
from spikejit.errors import ModelFileError, ParseError, SizeLimitError
from spikejit.ir.parser import parse, parse_file
from spikejit.limits import set_max_bytes
from spikejit.model_io import read_arrays, read_model

MODEL = Path(spikejit.__file__).parent / "examples" / "cuba_rsnn.nir"
MiB = 2**20


@contextlib.contextmanager
def bounded(seconds: float, peak: int) -> Iterator[None]:
    """The body must take less than ``seconds`` and allocate at most ``peak`` bytes more
    than it started with (tracemalloc)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        yield
    finally:
        took = time.perf_counter() - start
        _, high = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert took < seconds, f"took {took:.2f} s"
    assert high < peak, f"peak {high / MiB:.1f} MiB"


def npy_header(shape: tuple[int, ...], descr: str = "<f4", version: int = 1) -> bytes:
    buf = io.BytesIO()
    write = (np.lib.format.write_array_header_1_0 if version == 1
             else np.lib.format.write_array_header_2_0)
    write(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def text_member(text: bytes) -> bytes:
    return npy_header((len(text),), "|u1") + text


def saved_model_with_ir(path: Path, lines: int) -> Path:
    """A saved model whose IR member is ``lines`` newlines, deflated (~1 KB per MB)."""
    header = json.dumps({"format": "spikejit-model", "version": 1,
                         "semantics": "nir-euler-v1", "params": []}).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("__spikejit__.npy", text_member(header))
        with z.open("__ir__.npy", "w", force_zip64=True) as member:
            member.write(npy_header((lines,), "|u1"))
            chunk = b"\n" * MiB
            for _ in range(lines // MiB):
                member.write(chunk)
            member.write(b"\n" * (lines % MiB))
    return path


def patch_directory(path: Path, member: str, **fields: int) -> None:
    """Overwrite 4-byte fields of ``member``'s central directory entry (``crc``,
    ``compress_size``, ``file_size``): the directory is what zipfile believes."""
    offsets = {"crc": 16, "compress_size": 20, "file_size": 24}
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02" + data[data.index(b"PK\x01\x02") + 4:][:0])
    while True:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46: at + 46 + name_len] == member.encode():
            break
        at = data.index(b"PK\x01\x02", at + 46)
    for key, value in fields.items():
        struct.pack_into("<I", data, at + offsets[key], value)
    path.write_bytes(bytes(data))


# -- IR text (issue 15, item 4) ---------------------------------------------------------

@pytest.mark.parametrize("text", ["\n" * 20_000_000, "// c\n" * 4_000_000],
                         ids=["blank lines", "comments"])
def test_20_mb_of_blank_lines_parse_in_linear_small_memory(text: str) -> None:
    # A table of line starts made this 1.2 GB and 11 s; lines are now counted on error.
    with bounded(seconds=5, peak=4 * MiB), pytest.raises(ParseError) as info:
        parse(text)
    assert (info.value.line, info.value.column) == (text.count("\n") + 1, 1)
    assert "empty input" in info.value.reason


def test_ir_file_is_size_checked_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "blank.snir"
    path.write_text("\n" * 20_000_000)
    with max_bytes("1M"), bounded(seconds=5, peak=1 * MiB):
        with pytest.raises(SizeLimitError) as info:
            parse_file(path)
        with pytest.raises(SizeLimitError):
            read_model(path)
    assert str(info.value).startswith(
        f"IR file {str(path)!r} holds 19.1 MiB (20,000,000 bytes) of text, which would take "
        f"up to 610.4 MiB (640,000,000 bytes) parsed (32 bytes per byte of text), more than "
        f"the limit of 1.0 MiB")
    # Within the limit, it parses as above: the file is read once, then scanned.
    with bounded(seconds=5, peak=50 * MiB), pytest.raises(ParseError):
        parse_file(path)


def test_sparse_ir_file_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "sparse.snir"
    with path.open("wb") as f:
        f.truncate(2**40)  # 1 TiB claimed, nothing written
    with bounded(seconds=5, peak=1 * MiB), pytest.raises(SizeLimitError) as info:
        read_model(path)
    assert str(info.value).startswith(f"IR file {str(path)!r} holds 1.0 TiB")


def test_saved_model_ir_member_is_checked_before_it_is_inflated(tmp_path: Path) -> None:
    path = saved_model_with_ir(tmp_path / "blank.sjit.npz", 60_000_000)
    assert path.stat().st_size < 200_000  # deflated: 60 MB of newlines in ~60 KB
    with max_bytes("1G"), bounded(seconds=5, peak=1 * MiB), \
            pytest.raises(SizeLimitError) as info:
        spikejit.load(path)
    assert str(info.value).startswith(
        f"model file {str(path)!r}: member '__ir__.npy' holds 57.2 MiB (60,000,000 bytes) of "
        f"text, which would take up to 1.8 GiB")


def test_saved_model_ir_member_within_the_limit_parses_in_bounded_memory(
        tmp_path: Path) -> None:
    path = saved_model_with_ir(tmp_path / "blank.sjit.npz", 20_000_000)
    # The member (20 MB), its text (20 MB) and little else: this took 3.1 GB for 60 MB.
    with bounded(seconds=5, peak=60 * MiB), pytest.raises(ModelFileError) as info:
        spikejit.load(path)
    assert str(info.value).startswith(f"model file {str(path)!r}: its IR text does not "
                                      f"parse: line 20000001, column 1: empty input")


# -- zip members whose sizes lie -----------------------------------------------------------

def test_member_inflating_beyond_its_declared_size_is_not_inflated(tmp_path: Path) -> None:
    # The directory says 1,000 bytes, the stream inflates to 60 MB: zipfile stops at 1,000
    # (and finds the CRC wrong), whatever the stream or the .npy header say.
    path = saved_model_with_ir(tmp_path / "bomb.sjit.npz", 60_000_000)
    patch_directory(path, "__ir__.npy", file_size=1000)
    with bounded(seconds=5, peak=1 * MiB), pytest.raises(ModelFileError) as info:
        spikejit.load(path)
    assert str(info.value).startswith(f"model file {str(path)!r} is not a readable .npz "
                                      f"archive: member '__ir__.npy': ")


def test_member_header_declaring_more_than_the_member_holds(tmp_path: Path) -> None:
    path = tmp_path / "short.npz"
    with zipfile.ZipFile(path, "w") as z:  # 60 MB declared, 100 bytes held
        z.writestr("x.npy", npy_header((60_000_000,), "|u1") + bytes(100))
    with bounded(seconds=5, peak=1 * MiB), pytest.raises(ModelFileError) as info:
        read_arrays(path)
    assert str(info.value) == (f"{path}: member 'x.npy' is damaged: its .npy header declares "
                               f"57.2 MiB (60,000,000 bytes) of data, but the member holds "
                               f"100 bytes")


def test_member_declaring_more_than_the_limit_in_the_directory(tmp_path: Path) -> None:
    path = saved_model_with_ir(tmp_path / "big.sjit.npz", 1000)
    patch_directory(path, "__ir__.npy", file_size=0xFFFF_FFF0)
    with max_bytes("1M"), bounded(seconds=5, peak=1 * MiB), \
            pytest.raises(SizeLimitError) as info:
        spikejit.load(path)
    assert str(info.value).startswith(f"model file {str(path)!r}: its arrays (the largest: "
                                      f"member '__ir__.npy') would take 4.0 GiB")


def test_bzip2_members_are_refused(tmp_path: Path) -> None:
    # zipfile inflates bzip2 (and LZMA) without an output bound: kilobytes to gigabytes.
    path = tmp_path / "bz.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as z:
        z.writestr("x.npy", npy_header((4,)) + bytes(16))
    with pytest.raises(ModelFileError) as info:
        read_arrays(path)
    assert str(info.value) == (f"{path}: member 'x.npy' is compressed with zip method 12; "
                               f"spikejit reads stored or deflated members only")


def test_zip_directory_is_checked_before_zipfile_reads_it(tmp_path: Path) -> None:
    # An end record claiming a 64 MiB directory at the end of a sparse 80 MiB file.
    path = tmp_path / "dir.npz"
    size = 80 * MiB
    with path.open("wb") as f:
        f.truncate(size - 22)
        f.seek(size - 22)
        f.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, 64 * MiB,
                            size - 22 - 64 * MiB, 0))
        f.seek(0)
        f.write(b"PK\x03\x04")
    with bounded(seconds=5, peak=1 * MiB), pytest.raises(SizeLimitError) as info:
        read_arrays(path)
    assert str(info.value) == (f"{path}: its zip directory takes 64.0 MiB (67,108,864 bytes), "
                               f"more than the 4.0 MiB (4,194,304 bytes) spikejit reads (a "
                               f"fixed cap)")
    assert info.value.limit == MAX_ZIP_DIRECTORY
    path.write_bytes(b"PK\x05\x06" + struct.pack("<4H2LH", 0, 0, 1, 1, 2**31, 0, 0))
    with pytest.raises(ModelFileError, match=r"its zip directory of 2\.0 GiB .* is longer "
                                             r"than the file"):
        spikejit.load(path)


# -- .npy files (issue 15, item 5) -------------------------------------------------------

def lying_npy(path: Path) -> Path:
    """An .npy header declaring 8 GiB, a little data, then the end record of an empty zip:
    zipfile.is_zipfile says zip (it looks at the end), np.load reads an array (it looks at
    the start)."""
    path.write_bytes(npy_header((2**31,), version=2) + bytes(8000)
                     + b"PK\x05\x06" + bytes(18))
    assert zipfile.is_zipfile(path)
    return path


def test_npy_header_with_an_empty_zip_trailer_is_checked_as_npy(tmp_path: Path) -> None:
    path = lying_npy(tmp_path / "hostile.npy")
    with max_bytes("1M"), bounded(seconds=5, peak=1 * MiB):
        for read in (read_arrays, lambda p: check_array_file(p, str(p))):
            with pytest.raises(SizeLimitError) as info:
                read(path)
            assert str(info.value).startswith(f"{path}: its array would take 8.0 GiB")
    with bounded(seconds=5, peak=1 * MiB), pytest.raises(ModelFileError) as e:
        spikejit.load(path)
    assert str(e.value) == (f"model file {str(path)!r} holds a single .npy array, not a "
                            f"spikejit model (an .npz archive)")


def test_npy_declaring_more_than_the_file_holds(tmp_path: Path) -> None:
    path = tmp_path / "short.npy"
    path.write_bytes(npy_header((2**20,)) + bytes(100))  # 4 MiB declared, 100 bytes held
    with bounded(seconds=5, peak=1 * MiB), pytest.raises(ModelFileError) as info:
        read_arrays(path)
    assert str(info.value) == (f"{path} is truncated: its .npy header declares 4.0 MiB "
                               f"(4,194,304 bytes) of data, but the file holds 100 bytes")


def test_sparse_npy_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "sparse.npy"
    with path.open("wb") as f:
        f.write(npy_header((2**38,)))
        f.truncate(2**40)  # 1 TiB of holes
    with bounded(seconds=5, peak=1 * MiB):
        with pytest.raises(SizeLimitError, match=r"sparse\.npy: its array would take 1\.0 TiB"):
            read_arrays(path)
        with pytest.raises(ModelFileError, match=r"holds a single \.npy array"):
            spikejit.load(path)
        with pytest.raises(ModelFileError, match=r"holds a single \.npy array"):
            read_model(path)
    with pytest.raises(ModelFileError, match=r"holds a single \.npy array"):
        spikejit.compile(path)  # outside: compile imports JAX, which takes seconds


@pytest.mark.parametrize("in_zip", [False, True], ids=["npy", "npz member"])
def test_npy_header_length_is_checked_before_numpy_reads_it(tmp_path: Path,
                                                            in_zip: bool) -> None:
    # Version 2 headers give their length in 4 bytes; NumPy reads that many, then checks.
    hostile = b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xFFFF_FFF0)
    path = tmp_path / "long.npz"
    if in_zip:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, \
                z.open("x.npy", "w", force_zip64=True) as member:
            member.write(hostile)
            for _ in range(64):
                member.write(bytes(MiB))
    else:
        with path.open("wb") as f:
            f.write(hostile)
            f.truncate(2**33)
    with bounded(seconds=5, peak=1 * MiB), pytest.raises(ModelFileError) as info:
        read_arrays(path)
    assert "the .npy header declares 4,294,967,280 bytes, more than the 10,000 NumPy reads" \
        in str(info.value)


@pytest.mark.parametrize("head", [b"", b"\x80\x04\x95pickle", b"garbage"])
def test_neither_zip_nor_npy_is_refused_unread(tmp_path: Path, head: bytes) -> None:
    path = tmp_path / "x.npy"
    path.write_bytes(head)
    with pytest.raises(ModelFileError, match=r"is neither an \.npz archive nor an \.npy file"):
        read_arrays(path)
    with pytest.raises(ModelFileError, match=r"is not a readable \.npz archive: it "):
        spikejit.load(path)


def test_cli_refuses_a_hostile_input_with_one_line(tmp_path: Path) -> None:
    path = lying_npy(tmp_path / "hostile.npy")
    try:
        start = time.perf_counter()
        result = CliRunner().invoke(app, ["--max-bytes", "1M", "run", str(MODEL), "--dt",
                                          "1e-3", "--input", str(path)])
        took = time.perf_counter() - start
    finally:
        set_max_bytes(None)  # the option sets the limit for the (test) process
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {path}: its array would take 8.0 GiB")
    assert result.stderr.count("\n") == 1 and "more than the limit of 1.0 MiB" in result.stderr
    assert took < 10
