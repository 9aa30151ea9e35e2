"""Hostile ``.nir`` files: HDF5 features that make libhdf5 read other files, follow links,
walk shared objects, or allocate what the file claims (issue 15).

Each file starts as a real NIR file (``nir.write`` of Input -> Affine -> LIF -> Output) and
gets one HDF5 feature added with h5py. The reader must refuse it with a ModelFileError that
names the file and the HDF5 path, before libhdf5 reads any data (the "secret" file's bytes
never reach spikejit) and without hanging: the cases that could hang inside libhdf5 (a FIFO)
run in a worker process with a time limit.
"""

from __future__ import annotations

import mmap
import os
import shutil
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import nir
import numpy as np
import pytest
from helpers_robustness import FileWorker, max_bytes, time_limit
from typer.testing import CliRunner

import spikejit
from spikejit import graph_limits
from spikejit.cli import app
from spikejit.errors import FrontendError, ModelFileError, SizeLimitError

F32 = np.float32
WEIGHT = "/node/nodes/affine/weight"
SECRET = b"TOP-SECRET-TOKEN" * 4  # 64 bytes: a [2, 3] float32 weight reads 24 of them


def _graph() -> nir.NIRGraph:
    return nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([3])),
        nir.Affine(weight=np.arange(6, dtype=F32).reshape(2, 3), bias=np.zeros(2, F32)),
        nir.LIF(tau=np.full(2, 1e-2, F32), r=np.ones(2, F32), v_leak=np.zeros(2, F32),
                v_threshold=np.ones(2, F32)),
        nir.Output(output_type=np.array([2])))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile_hdf5") / "base.nir"
    nir.write(path, _graph())  # gzip-compressed datasets, variable-length strings
    return path


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.bin"
    path.write_bytes(SECRET)
    return path


@pytest.fixture(scope="module")
def worker() -> Iterator[FileWorker]:
    w = FileWorker()
    yield w
    w.close()


def _edit(base: Path, tmp_path: Path, change: Callable[[h5py.File], Any]) -> Path:
    path = tmp_path / "m.nir"
    shutil.copy(base, path)
    with h5py.File(path, "r+") as f:
        change(f)
    return path


def _replace(name: str, make: Callable[[h5py.File, str], Any]) -> Callable[[h5py.File], Any]:
    def change(f: h5py.File) -> None:
        del f[name]
        make(f, name)
    return change


def _refused(path: Path, *words: str) -> str:
    with time_limit(20, str(path)), pytest.raises(ModelFileError) as info:
        spikejit.from_nir(path, dt=1e-3)
    message = str(info.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, message
    return message


def _external(target: Path) -> Callable[[h5py.File], Any]:
    return _replace(WEIGHT, lambda f, n: f.create_dataset(
        n, shape=(2, 3), dtype=F32, external=[(str(target), 0, 24)]))


def _virtual(target: Path, *, unlimited: bool = False) -> Callable[[h5py.File], Any]:
    def make(f: h5py.File, name: str) -> None:
        if unlimited:  # libhdf5 opens the source file to learn the shape
            layout = h5py.VirtualLayout(shape=(2, 3), maxshape=(None, 3), dtype=F32)
            src = h5py.VirtualSource(str(target), "w", shape=(2, 3), maxshape=(None, 3),
                                     dtype=F32)
            layout[0:h5py.h5s.UNLIMITED, :] = src[0:h5py.h5s.UNLIMITED, :]
        else:
            layout = h5py.VirtualLayout(shape=(2, 3), dtype=F32)
            layout[:] = h5py.VirtualSource(str(target), "w", shape=(2, 3), dtype=F32)
        f.create_virtual_dataset(name, layout)
    return _replace(WEIGHT, make)


def _secret_file(path: Path) -> Path:
    """An HDF5 file holding the secret as a dataset /w (what a virtual dataset reads)."""
    with h5py.File(path, "w") as f:
        f["w"] = np.frombuffer(SECRET[:24], F32).reshape(2, 3)
    return path


# -- the real file ----------------------------------------------------------------------------

def test_a_nir_written_file_loads(base: Path) -> None:
    _, params = spikejit.from_nir(base, dt=1e-3)
    assert np.array_equal(np.asarray(params["affine.weight"]),
                          np.arange(6, dtype=F32).reshape(2, 3)), params.keys()


def test_gzip_shuffle_fletcher32_and_compressed_text_load(base: Path, tmp_path: Path) -> None:
    def change(f: h5py.File) -> None:
        w = f[WEIGHT][()]
        del f[WEIGHT]
        f.create_dataset(WEIGHT, data=w, chunks=(1, 3), compression="gzip", shuffle=True,
                         fletcher32=True)
        edges = f["/node/edges"][()]
        del f["/node/edges"]
        f.create_dataset("/node/edges", data=edges, dtype=h5py.string_dtype(), chunks=(2, 2),
                         compression="gzip", shuffle=True)
    _, params = spikejit.from_nir(_edit(base, tmp_path, change), dt=1e-3)
    assert np.array_equal(np.asarray(params["affine.weight"]),
                          np.arange(6, dtype=F32).reshape(2, 3))


def test_a_file_with_a_user_block_loads(base: Path, tmp_path: Path) -> None:
    # HDF5 addresses then count from byte 512: the string checks must follow.
    path = tmp_path / "ub.nir"
    with h5py.File(base, "r") as src, h5py.File(path, "w", userblock_size=512) as dst:
        src.copy(src["node"], dst, "node")
    spikejit.from_nir(path, dt=1e-3)


# -- data from elsewhere ------------------------------------------------------------------------

def test_external_storage_is_refused_before_reading(base: Path, tmp_path: Path,
                                                    secret: Path) -> None:
    message = _refused(_edit(base, tmp_path, _external(secret)), WEIGHT, "another file",
                       str(secret), "external storage is refused")
    assert "TOP-SECRET" not in message


@pytest.mark.parametrize("unlimited", [False, True], ids=["fixed", "unlimited"])
def test_virtual_datasets_are_refused(base: Path, tmp_path: Path, unlimited: bool) -> None:
    source = _secret_file(tmp_path / "source.h5")
    _refused(_edit(base, tmp_path, _virtual(source, unlimited=unlimited)), WEIGHT,
             "virtual dataset")


def test_external_links_are_refused_without_being_followed(base: Path, tmp_path: Path) -> None:
    source = _secret_file(tmp_path / "source.h5")
    change = _replace(WEIGHT, lambda f, n: f.__setitem__(n, h5py.ExternalLink(str(source),
                                                                              "/w")))
    _refused(_edit(base, tmp_path, change), WEIGHT, "external link", str(source))


@pytest.mark.parametrize("name,target", [(WEIGHT, "/node/nodes/lif/tau"),
                                         ("/node/nodes/lif", "/node/nodes/affine"),
                                         ("/node/nodes/lif/metadata", "/node/nodes/affine")])
def test_soft_links_are_refused(base: Path, tmp_path: Path, name: str, target: str) -> None:
    def change(f: h5py.File) -> None:
        if name in f:
            del f[name]
        f[name] = h5py.SoftLink(target)
    _refused(_edit(base, tmp_path, change), name, "soft link", repr(target))


@pytest.mark.parametrize("kind", ["external storage", "unlimited virtual", "external link"])
def test_a_fifo_never_blocks_the_reader(base: Path, tmp_path: Path, worker: FileWorker,
                                        kind: str) -> None:
    # libhdf5 opens a FIFO and waits for a writer forever: the refusal must come first.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    change = {"external storage": _external(fifo),
              "unlimited virtual": _virtual(fifo, unlimited=True),
              "external link": _replace(WEIGHT, lambda f, n: f.__setitem__(
                  n, h5py.ExternalLink(str(fifo), "/w")))}[kind]
    path = _edit(base, tmp_path, change)
    start = time.monotonic()
    out = worker.run("cli", path, "inspect", "{path}", "--dt", "1e-3", timeout=20)
    assert time.monotonic() - start < 20
    out.assert_clean(kind)
    assert out.code == 2 and WEIGHT in out.message and str(path) in out.message, out


def test_cli_compile_refuses_external_storage_and_writes_nothing(
        base: Path, tmp_path: Path, secret: Path) -> None:
    path = _edit(base, tmp_path, _external(secret))
    output = tmp_path / "out" / "m.sjit.npz"
    output.parent.mkdir()
    with time_limit(20):
        result = CliRunner().invoke(app, ["compile", str(path), "-o", str(output),
                                          "--dt", "1e-3"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert WEIGHT in lines[0] and "external storage" in lines[0], lines
    assert list(output.parent.iterdir()) == []


# -- shared objects and counts --------------------------------------------------------------------

def test_a_dataset_linked_twice_is_refused(base: Path, tmp_path: Path) -> None:
    def change(f: h5py.File) -> None:
        del f["/node/nodes/lif/r"]
        f["/node/nodes/lif/r"] = f["/node/nodes/affine/bias"]  # a second hard link
    _refused(_edit(base, tmp_path, change), "/node/nodes/lif/r", "/node/nodes/affine/bias",
             "linked under two names")


def test_a_group_linked_into_itself_is_refused(base: Path, tmp_path: Path) -> None:
    def change(f: h5py.File) -> None:
        f["/node/nodes/loop"] = f["/node"]
    _refused(_edit(base, tmp_path, change), "/node/nodes/loop", "same HDF5 object as /node")


def _level(group: h5py.Group, *, twice: bool = True) -> h5py.Group:
    """Make ``group`` a subgraph Input -> {a, b} -> Output; return the group a and b are
    (without ``twice``: Input -> a -> Output)."""
    group.create_dataset("type", data="NIRGraph", dtype=h5py.string_dtype())
    nodes = group.create_group("nodes")
    for name, kind in (("i", "Input"), ("o", "Output")):
        n = nodes.create_group(name)
        n.create_dataset("type", data=kind, dtype=h5py.string_dtype())
        n.create_dataset("shape", data=np.array([2]))
    edges = [["i", "a"], ["a", "o"]] + ([["i", "b"], ["b", "o"]] if twice else [])
    group.create_dataset("edges", data=np.array(edges, dtype=object),
                         dtype=h5py.string_dtype())
    inner = nodes.create_group("a")
    if twice:
        nodes["b"] = inner  # the same group under a second name
    return inner


def test_subgraphs_hard_linked_twice_level_after_level_are_refused_fast(
        tmp_path: Path) -> None:
    # 30 levels, each node of the next level twice: 2**30 nodes to walk, in a few kB.
    path = tmp_path / "levels.nir"
    with h5py.File(path, "w") as f:
        group = f.create_group("node")
        for _ in range(30):
            group = _level(group)
        group.create_dataset("type", data="Scale", dtype=h5py.string_dtype())
        group.create_dataset("scale", data=np.ones(2, F32))
    start = time.monotonic()
    _refused(path, "/node/nodes/b is the same HDF5 object as /node/nodes/a")
    assert time.monotonic() - start < 5


@pytest.fixture
def limits() -> Iterator[None]:
    graph_limits.reset_limits()
    yield
    graph_limits.reset_limits()


def test_nodes_are_counted_as_they_are_read(base: Path, limits: None) -> None:
    graph_limits.set_limits(nodes=3)
    with pytest.raises(SizeLimitError, match=r"more than 3 nodes .*SPIKEJIT_MAX_NODES"):
        spikejit.from_nir(base, dt=1e-3)


@pytest.mark.parametrize("what", ["datasets", "chunks"])
def test_hdf5_objects_are_counted_as_they_are_read(base: Path, tmp_path: Path, limits: None,
                                                   what: str) -> None:
    # 5 nodes allow 80 groups, datasets and chunks; one node holds 100 of them.
    def change(f: h5py.File) -> None:
        if what == "datasets":
            for i in range(100):
                f[f"/node/nodes/lif/extra{i}"] = np.ones(1)
        else:
            del f["/node/nodes/lif/r"]
            f.create_dataset("/node/nodes/lif/r", data=np.ones(100, F32), chunks=(1,),
                             compression="gzip")
    path = _edit(base, tmp_path, change)
    graph_limits.set_limits(nodes=5)
    with pytest.raises(SizeLimitError, match="more than 80 HDF5 groups, datasets and chunks"):
        spikejit.from_nir(path, dt=1e-3)


def test_nesting_is_bounded_by_the_depth_limit(tmp_path: Path, limits: None) -> None:
    path = tmp_path / "deep.nir"
    with h5py.File(path, "w") as f:
        group = f.create_group("node")
        for _ in range(40):
            group = _level(group, twice=False)
    with time_limit(10), pytest.raises(SizeLimitError, match="SPIKEJIT_MAX_DEPTH"):
        spikejit.from_nir(path, dt=1e-3)


# -- types and filters ----------------------------------------------------------------------------

TYPES = {
    "compound": lambda f, n: f.create_dataset(n, data=np.zeros(2, [("a", "i4"), ("b", "f8")])),
    "complex": lambda f, n: f.create_dataset(n, data=np.ones(6, np.complex64)),
    "reference": lambda f, n: f.create_dataset(n, data=[f["/node"].ref],
                                               dtype=h5py.ref_dtype),
    "region reference": lambda f, n: f.create_dataset(
        n, data=[f["/node/nodes/lif/r"].regionref[0:1]], dtype=h5py.regionref_dtype),
    "sequence": lambda f, n: f.create_dataset(n, shape=(1,), dtype=h5py.vlen_dtype("i4")),
    "opaque": lambda f, n: f.create_dataset(n, data=np.zeros(3, "V4")),
    "array": lambda f, n: f.create_dataset(n, shape=(2,), dtype=np.dtype((F32, (3,)))),
}


@pytest.mark.parametrize("kind", list(TYPES))
def test_types_nir_does_not_use_are_refused(base: Path, tmp_path: Path, kind: str) -> None:
    _refused(_edit(base, tmp_path, _replace(WEIGHT, TYPES[kind])), f"dataset {WEIGHT} has type",
             "NIR datasets hold numbers")


@pytest.mark.parametrize("options,code", [({"compression": "lzf"}, "32000"),
                                          ({"scaleoffset": 0}, "6")])
def test_filters_other_than_gzip_are_refused(base: Path, tmp_path: Path,
                                             options: dict[str, Any], code: str) -> None:
    change = _replace(WEIGHT, lambda f, n: f.create_dataset(
        n, data=np.ones((2, 3), "i4"), chunks=(2, 3), **options))
    _refused(_edit(base, tmp_path, change), WEIGHT, f"HDF5 filter {code}")


def test_a_gzip_bomb_is_refused_before_inflating(base: Path, tmp_path: Path) -> None:
    # 8 kB of gzip that inflates to 8 MiB, in a chunk declared as 24 bytes: libhdf5 would
    # grow its buffer until the stream ends.
    def change(f: h5py.File) -> None:
        f[WEIGHT].id.write_direct_chunk((0, 0), zlib.compress(bytes(2**23), 9))
    _refused(_edit(base, tmp_path, change), WEIGHT, "chunk at (0, 0)",
             "inflates to more than its declared 24 bytes")


def test_a_huge_chunk_counts_against_the_limit(base: Path, tmp_path: Path) -> None:
    # Six values, in one (never written) chunk of 2**28 values that libhdf5 would allocate.
    change = _replace(WEIGHT, lambda f, n: f.create_dataset(
        n, shape=(2, 3), maxshape=(None, 3), chunks=(2**28 // 3, 3), dtype=F32,
        compression="gzip"))
    path = _edit(base, tmp_path, change)
    with max_bytes("512M"), pytest.raises(SizeLimitError, match=f"dataset {WEIGHT}"):
        spikejit.from_nir(path, dt=1e-3)


# -- variable-length text -------------------------------------------------------------------------

def _edges_descriptors(path: Path) -> tuple[int, int]:
    """File offset and element count of the contiguous /node/edges strings."""
    with h5py.File(path, "r") as f:
        ds = f["/node/edges"]
        return ds.id.get_offset(), ds.size


def test_a_string_claiming_4_gib_is_refused_before_allocating(base: Path,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "m.nir"
    shutil.copy(base, path)
    offset, _ = _edges_descriptors(path)
    with path.open("r+b") as fh, mmap.mmap(fh.fileno(), 0) as m:
        m[offset:offset + 4] = struct.pack("<I", 0xFFFFFFF0)  # the length of the first one
    _refused(path, "/node/edges", "holds a string of 4294967280 bytes")


def test_one_long_string_named_many_times_counts_each_time(base: Path, tmp_path: Path) -> None:
    # 2000 edges all naming one 64 kB string: 128 MB read from a file of 100 kB.
    def change(f: h5py.File) -> None:
        del f["/node/edges"]
        edges = np.array([["x" * 2**16, "y"]] + [["a", "b"]] * 999, dtype=object)
        f["/node"].create_dataset("edges", data=edges, dtype=h5py.string_dtype())
    path = _edit(base, tmp_path, change)
    offset, count = _edges_descriptors(path)
    with path.open("r+b") as fh, mmap.mmap(fh.fileno(), 0) as m:
        first = m[offset:offset + 16]
        m[offset:offset + 16 * count] = first * count
    assert path.stat().st_size < 2**20
    with max_bytes("64M"), pytest.raises(SizeLimitError, match="dataset /node/edges"):
        spikejit.from_nir(path, dt=1e-3)


def test_text_with_a_fill_value_is_refused(base: Path, tmp_path: Path) -> None:
    change = _replace("/node/nodes/lif/type", lambda f, n: f.create_dataset(
        n, shape=(), dtype=h5py.string_dtype(), fillvalue=b"LIF"))
    _refused(_edit(base, tmp_path, change), "/node/nodes/lif/type", "fill value")


# -- graph objects ---------------------------------------------------------------------------------

def _sub() -> nir.NIRGraph:
    return nir.NIRGraph(nodes={"i": nir.Input(input_type=np.array([2])),
                               "s": nir.Scale(scale=np.ones(2, F32)),
                               "o": nir.Output(output_type=np.array([2]))},
                        edges=[("i", "s"), ("s", "o")], type_check=False)


def test_a_graph_object_containing_itself_is_refused() -> None:
    g = _sub()
    g.nodes["me"] = g
    with time_limit(10), pytest.raises(FrontendError, match="'me' contains itself"):
        spikejit.from_nir(g, dt=1e-3)


def test_a_subgraph_object_shared_level_after_level_is_refused_fast() -> None:
    g = _sub()
    for _ in range(25):  # 2**25 nodes once expanded
        g = nir.NIRGraph(nodes={"i": nir.Input(input_type=np.array([2])), "a": g, "b": g,
                                "o": nir.Output(output_type=np.array([2]))},
                         edges=[("i", "a"), ("i", "b"), ("a", "o"), ("b", "o")],
                         type_check=False)
    start = time.monotonic()
    with time_limit(10), pytest.raises(SizeLimitError, match=r"more than 1,000,000 nodes"):
        spikejit.from_nir(g, dt=1e-3)
    assert time.monotonic() - start < 5


def test_a_subgraph_object_used_twice_still_loads() -> None:
    sub = _sub()
    g = nir.NIRGraph(nodes={"x": nir.Input(input_type=np.array([2])), "s1": sub, "s2": sub,
                            "y": nir.Output(output_type=np.array([2]))},
                     edges=[("x", "s1"), ("s1", "s2"), ("s2", "y")], type_check=False)
    spikejit.from_nir(g, dt=1e-3)
