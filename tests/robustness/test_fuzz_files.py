"""Corrupted ``.nir`` files through from_nir, spikejit.model_io.read_model and the CLI.

Files are damaged two ways: in their bytes (truncation, overwritten spans) and in their
structure, with h5py (missing datasets, wrong dtypes, strings where arrays belong, groups
where datasets belong, absurd declared sizes, renamed nodes). Every file is read in a
worker process with a time limit per case (see ``helpers_robustness.FileWorker``): a hang
inside the HDF5 library could not be interrupted in this process. Each case must end in a
spikejit error that names the file (or load, if the damage was harmless).
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import nir
import numpy as np
import pytest
from helpers_nir import chain, lif, primitive_graphs
from helpers_robustness import FileWorker, Outcome, budget
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import spikejit

F32 = np.float32
SUPPRESS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


@pytest.fixture(scope="module")
def worker() -> Iterator[FileWorker]:
    w = FileWorker()
    yield w
    w.close()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Valid files: spikejit-written (with metadata) and nir-written (foreign)."""
    d = tmp_path_factory.mktemp("pristine")
    files = []
    graphs = primitive_graphs()
    for name in ("LIF", "CubaLIF", "Conv2d", "Delay", "Affine", "Flatten"):
        graph, params = spikejit.from_nir(graphs[name], dt=1e-3)
        path = d / f"sj_{name}.nir"
        spikejit.write_nir(path, graph, params)
        files.append(path)
    rec = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([3])),
               "fc": nir.Affine(weight=np.ones((3, 3), F32), bias=np.zeros(3, F32)),
               "lif": lif(3), "rec": nir.Linear(weight=np.eye(3, dtype=F32)),
               "y": nir.Output(output_type=np.array([3]))},
        edges=[("x", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "y")])
    for name, g in (("rec", rec), ("lif", chain(("lif", lif(3))))):
        path = d / f"nir_{name}.nir"
        nir.write(path, g)
        files.append(path)
    return files


def _objects(path: Path) -> tuple[list[str], list[str]]:
    """Paths of every dataset and every group under /node."""
    datasets: list[str] = []
    groups: list[str] = []
    with h5py.File(path, "r") as f:
        def visit(name: str, obj: Any) -> None:
            (datasets if isinstance(obj, h5py.Dataset) else groups).append("/node/" + name)
        f["node"].visititems(visit)
    return datasets, groups


def _replace(f: h5py.File, name: str, make: Any) -> None:
    del f[name]
    make(f, name)


VALUES = st.sampled_from([
    ("string", lambda f, n: f.create_dataset(n, data="abc", dtype=h5py.string_dtype())),
    ("bytes", lambda f, n: f.create_dataset(n, data=np.bytes_(b"\xff\xfe"))),
    ("int8", lambda f, n: f.create_dataset(n, data=np.arange(3, dtype=np.int8))),
    ("uint64", lambda f, n: f.create_dataset(n, data=np.array([2**64 - 1], np.uint64))),
    ("bool", lambda f, n: f.create_dataset(n, data=np.array([True, False]))),
    ("complex", lambda f, n: f.create_dataset(n, data=np.array([1 + 2j], np.complex64))),
    ("float16", lambda f, n: f.create_dataset(n, data=np.ones(3, np.float16))),
    ("compound", lambda f, n: f.create_dataset(
        n, data=np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]))),
    ("nan", lambda f, n: f.create_dataset(n, data=np.full(3, np.nan, F32))),
    ("inf", lambda f, n: f.create_dataset(n, data=np.array([np.inf, 1, 1], F32))),
    ("scalar", lambda f, n: f.create_dataset(n, data=np.float64(0.5))),
    ("empty", lambda f, n: f.create_dataset(n, data=np.zeros((0,), F32))),
    ("null", lambda f, n: f.create_dataset(n, data=h5py.Empty("f4"))),
    ("3d", lambda f, n: f.create_dataset(n, data=np.ones((2, 1, 2), F32))),
    ("strings", lambda f, n: f.create_dataset(n, data=np.array([b"a", b"b"], dtype=object),
                                              dtype=h5py.string_dtype())),
    ("group", lambda f, n: f.create_group(n)),
    ("huge_int", lambda f, n: f.create_dataset(n, data=np.array([2**62, 2**62], np.int64))),
])


def _huge(f: h5py.File, name: str) -> None:
    # A few bytes of file, 4 TiB declared: chunked and compressed, never written.
    f.create_dataset(name, shape=(2**20, 2**20), dtype="f4", chunks=(64, 64),
                     compression="gzip", fillvalue=1.0)


def _check(out: Outcome, path: Path, case: str) -> None:
    out.assert_clean(case)
    if out.status == "error":
        assert str(path) in out.message, f"{case}: the message does not name the file: " \
                                         f"{out.message}"
        event(f"refused: {out.cls.rsplit('.', 1)[-1]}")
    else:
        event("accepted")


@settings(max_examples=budget(150), suppress_health_check=SUPPRESS)
@given(st.data())
def test_structurally_damaged_files(worker: FileWorker, pristine: list[Path],
                                    tmp_path: Path, data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(pristine))
    path = tmp_path / f"damaged_{next(_ids)}.nir"
    shutil.copy(source, path)
    datasets, groups = _objects(path)
    action = data.draw(st.sampled_from(["delete", "retype", "retype", "group_to_data",
                                        "rename", "extra"]))
    with h5py.File(path, "r+") as f:
        if action == "delete":
            del f[data.draw(st.sampled_from(datasets + groups))]
        elif action == "retype":
            label, make = data.draw(VALUES)
            action += f" {label}"
            _replace(f, data.draw(st.sampled_from(datasets)), make)
        elif action == "group_to_data":
            _replace(f, data.draw(st.sampled_from(groups)),
                     lambda f, n: f.create_dataset(n, data=np.ones(3)))
        elif action == "rename":
            g = data.draw(st.sampled_from([g for g in groups if "/nodes/" in g]))
            f.move(g, g.rsplit("/", 1)[0] + "/" + data.draw(st.sampled_from(["", "x y", "ü"]))
                   + "renamed")
        else:
            g = data.draw(st.sampled_from(groups))
            f[g].create_dataset("surprise", data=np.ones(2))
    event(action)
    op = data.draw(st.sampled_from(["from_nir", "read_model"]))
    _check(worker.run(op, path), path, f"{action} on {source.name} via {op}")


_ids = itertools.count()


@settings(max_examples=budget(60), suppress_health_check=SUPPRESS)
@given(st.data())
def test_absurd_declared_sizes_are_refused_before_reading(
        worker: FileWorker, pristine: list[Path], tmp_path: Path, data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(pristine))
    path = tmp_path / f"huge_{next(_ids)}.nir"
    shutil.copy(source, path)
    datasets, _ = _objects(path)
    target = data.draw(st.sampled_from(datasets))
    with h5py.File(path, "r+") as f:
        _replace(f, target, _huge)
    out = worker.run(data.draw(st.sampled_from(["from_nir", "read_model"])), path)
    assert out.status == "error" and out.cls == "spikejit.errors.SizeLimitError", out
    assert f"NIR file {str(path)!r}: dataset {target}" in out.message, out.message
    assert "would take 4.0 TiB" in out.message, out.message


@settings(max_examples=budget(150), suppress_health_check=SUPPRESS)
@given(st.data())
def test_byte_damaged_files(worker: FileWorker, pristine: list[Path], tmp_path: Path,
                            data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(pristine))
    blob = bytearray(source.read_bytes())
    how = data.draw(st.sampled_from(["truncate", "zero", "random", "flip", "heap"]))
    if how == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    else:
        start = data.draw(st.integers(0, len(blob) - 1))
        heap = blob.find(b"GCOL")
        if how == "heap" and heap >= 0:
            # Damage inside the HDF5 global heap (variable-length strings), where the HDF5
            # library can loop forever: the reader must refuse such files first.
            start = heap + data.draw(st.integers(0, 200))
            how = data.draw(st.sampled_from(["zero", "random"]))
            event("in the global heap")
        size = data.draw(st.integers(1, 64))
        if how == "zero":
            blob[start:start + size] = bytes(len(blob[start:start + size]))
        elif how == "random":
            chunk = data.draw(st.binary(min_size=size, max_size=size))
            blob[start:start + size] = chunk[: len(blob[start:start + size])]
        else:
            blob[start] ^= 1 << data.draw(st.integers(0, 7))
    event(how)
    path = tmp_path / f"bytes_{next(_ids)}.nir"
    path.write_bytes(bytes(blob))
    op = data.draw(st.sampled_from(["from_nir", "read_model"]))
    _check(worker.run(op, path), path, f"{how} on {source.name} via {op}")


@settings(max_examples=budget(30), suppress_health_check=SUPPRESS)
@given(st.data())
def test_cli_on_damaged_files_exits_2_with_one_line(worker: FileWorker, pristine: list[Path],
                                                    tmp_path: Path, data: st.DataObject
                                                    ) -> None:
    source = data.draw(st.sampled_from(pristine))
    path = tmp_path / f"cli_{next(_ids)}.nir"
    shutil.copy(source, path)
    datasets, _ = _objects(path)
    with h5py.File(path, "r+") as f:
        label, make = data.draw(VALUES)
        _replace(f, data.draw(st.sampled_from(datasets)), make)
    out = worker.run("cli", path, "inspect", "{path}", "--dt", "1e-3")
    out.assert_clean(f"{label} via the CLI")
    if out.code == 2:
        assert str(path) in out.message, out.message
    event(f"exit {out.code}")


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2, 2**40), st.floats(allow_nan=False),
              st.sampled_from(["", "x", "f64", "bf16", "f33", "value", "subtract", "c.weight",
                               "input", "output", "spikejit-nir-v1"])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["weight", "bias", "tau", "x", "c"]), inner, max_size=3),
    max_leaves=6)
META_KEYS = st.sampled_from(["omit", "shapes", "dtypes", "names", "reset", "edge_delay",
                             "input_dtype", "input_spike", "format", "name", "order",
                             "escaped"])


@settings(max_examples=budget(60), suppress_health_check=SUPPRESS)
@given(st.data())
def test_damaged_spikejit_metadata(worker: FileWorker, pristine: list[Path], tmp_path: Path,
                                   data: st.DataObject) -> None:
    # The JSON entry spikejit writes on graphs and nodes, filled with arbitrary values.
    source = data.draw(st.sampled_from([p for p in pristine if p.name.startswith("sj_")]))
    path = tmp_path / f"meta_{next(_ids)}.nir"
    shutil.copy(source, path)
    with h5py.File(path, "r+") as f:
        groups = ["node", *(f"node/nodes/{n}" for n in f["node/nodes"])]
        for group in data.draw(st.lists(st.sampled_from(groups), min_size=1, max_size=3)):
            entry = f"{group}/metadata/spikejit"
            meta = json.loads(f[entry][()]) if entry in f else {}
            meta.update(data.draw(st.dictionaries(META_KEYS, JSON_VALUES, min_size=1,
                                                  max_size=3)))
            if entry in f:
                del f[entry]
            f[entry] = json.dumps(meta)
    _check(worker.run("from_nir", path), path, f"metadata of {source.name}")
