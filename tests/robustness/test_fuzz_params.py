"""Malformed parameters and model files: spikejit.load, compile with params, read_arrays.

Saved models are damaged member by member (missing, extra, wrongly shaped or typed arrays,
pickled objects, broken headers and IR text, absurd declared sizes) and byte by byte
(truncated and corrupted zips), then loaded in a worker process with a time limit per
case. Params given in memory to compile / apply are damaged the same way.
"""

from __future__ import annotations

import io
import itertools
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest
from helpers_robustness import (
    FileWorker,
    Outcome,
    budget,
    expect_spikejit_error,
    max_bytes,
    save_model,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import spikejit
from spikejit.errors import OptionError, ParamError, SizeLimitError, SpikejitError
from spikejit.limits import format_bytes

SUPPRESS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
_ids = itertools.count()


@pytest.fixture(scope="module")
def worker() -> Iterator[FileWorker]:
    w = FileWorker()
    yield w
    w.close()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, dict[str, Any]]:
    return save_model(tmp_path_factory.mktemp("saved") / "model.sjit.npz")


def members_of(path: Path) -> dict[str, bytes]:
    """Raw member bytes of a zip, by member name."""
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def npy(array: Any) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(array), allow_pickle=True)
    return buf.getvalue()


def npy_header_only(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    """An .npy header declaring ``shape`` followed by no data at all."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue()


def text_npy(text: str) -> bytes:
    return npy(np.frombuffer(text.encode("utf-8"), dtype=np.uint8))


def header_of(members: dict[str, bytes]) -> dict[str, Any]:
    arr = np.lib.format.read_array(io.BytesIO(members["__spikejit__.npy"]))
    return json.loads(arr.tobytes().decode())


@st.composite
def damaged_members(draw: st.DrawFn, members: dict[str, bytes]
                    ) -> tuple[str, dict[str, bytes], tuple[str, ...]]:
    """One member-level defect; also the error classes it may give (empty: any spikejit
    error, or success)."""
    members = dict(members)
    params = sorted(k for k in members if k.startswith("param_"))
    kind = draw(st.sampled_from(["drop", "extra", "reshape", "retype", "pickle", "header",
                                 "ir", "huge", "not_npy"]))
    if kind == "drop":
        del members[draw(st.sampled_from(sorted(members)))]
        return kind, members, ("ModelFileError", "ParamError")
    if kind == "extra":
        members[draw(st.sampled_from(["extra.npy", "param_99.npy", "x"]))] = npy(np.ones(2))
        return kind, members, ("ModelFileError",)
    victim = draw(st.sampled_from(params))
    old = np.lib.format.read_array(io.BytesIO(members[victim]))
    if kind == "reshape":
        shape = draw(st.lists(st.integers(0, 5), max_size=3).filter(
            lambda s: tuple(s) != old.shape))
        members[victim] = npy(np.zeros(shape, np.float32))
        return kind, members, ("ParamError",)
    if kind == "retype":
        dtype = draw(st.sampled_from(["f8", "f2", "i4", "u1", "?", "c8", "S3", "U2"]))
        members[victim] = npy(np.zeros(old.shape, dtype))
        return kind, members, ("ParamError",)
    if kind == "pickle":
        members[victim] = npy(np.array([{"evil": 1}], dtype=object))
        return kind, members, ("ModelFileError",)
    if kind == "huge":
        members[victim] = npy_header_only((draw(st.integers(2**30, 2**40)), 4))
        return kind, members, ("SizeLimitError",)
    if kind == "not_npy":
        members[victim] = draw(st.binary(max_size=40))
        return kind, members, ("ModelFileError",)
    if kind == "header":
        header = header_of(members)
        change = draw(st.sampled_from(["version", "format", "semantics", "params_dup",
                                       "params_unknown", "params_type", "not_json"]))
        if change == "not_json":
            members["__spikejit__.npy"] = text_npy("{not json")
            return kind, members, ("ModelFileError",)
        if change == "version":
            header["version"] = draw(st.sampled_from([0, 99, "1", None, 1.5, True]))
        elif change == "format":
            header["format"] = "pickle"
        elif change == "semantics":
            header["semantics"] = "nir-euler-v0"
        elif change == "params_dup":
            header["params"] = [*header["params"], header["params"][0]]
        elif change == "params_unknown":
            header["params"] = ["ghost", *header["params"][1:]]
        else:
            header["params"] = draw(st.sampled_from([None, "x", [1, 2], {}]))
        members["__spikejit__.npy"] = text_npy(json.dumps(header))
        return kind, members, ("ModelFileError", "ParamError")
    # ir: damage the IR text
    ir = np.lib.format.read_array(io.BytesIO(members["__ir__.npy"])).tobytes().decode()
    pos = draw(st.integers(0, len(ir)))
    token = draw(st.sampled_from(["}", "%", "@ghost: f32[3]", "f32[9]", "io.nope", "\x00",
                                  "[t-1]", "99999999999999999999999"]))
    members["__ir__.npy"] = text_npy(ir[:pos] + token + ir[pos + draw(st.integers(0, 5)):])
    return kind, members, ()


def _check(out: Outcome, path: Path, case: str, allowed: tuple[str, ...]) -> None:
    out.assert_clean(case)
    if out.status == "ok":
        assert not allowed, f"{case}: loaded, expected {allowed}"
        event("loaded")
        return
    cls = out.cls.rsplit(".", 1)[-1]
    assert not allowed or cls in allowed, f"{case}: {cls}: {out.message}"
    assert str(path) in out.message, f"{case}: the file is not named: {out.message}"
    event(f"refused: {cls}")


@settings(max_examples=budget(200), suppress_health_check=SUPPRESS)
@given(st.data())
def test_damaged_members(worker: FileWorker, saved: tuple[Path, Any, Any], tmp_path: Path,
                         data: st.DataObject) -> None:
    kind, members, allowed = data.draw(damaged_members(members_of(saved[0])))
    event(kind)
    path = tmp_path / f"m{next(_ids)}.sjit.npz"
    write_zip(path, members)
    op = data.draw(st.sampled_from(["load", "read_model"]))
    _check(worker.run(op, path), path, f"{kind} via {op}", allowed)


@settings(max_examples=budget(100), suppress_health_check=SUPPRESS)
@given(st.data())
def test_damaged_zip_bytes(worker: FileWorker, saved: tuple[Path, Any, Any], tmp_path: Path,
                           data: st.DataObject) -> None:
    blob = bytearray(saved[0].read_bytes())
    how = data.draw(st.sampled_from(["truncate", "zero", "random", "flip"]))
    if how == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    else:
        start = data.draw(st.integers(0, len(blob) - 1))
        size = data.draw(st.integers(1, 32))
        end = min(start + size, len(blob))
        if how == "zero":
            blob[start:end] = bytes(end - start)
        elif how == "random":
            blob[start:end] = data.draw(st.binary(min_size=end - start, max_size=end - start))
        else:
            blob[start] ^= 1 << data.draw(st.integers(0, 7))
    event(how)
    path = tmp_path / f"b{next(_ids)}.sjit.npz"
    path.write_bytes(bytes(blob))
    _check(worker.run(data.draw(st.sampled_from(["load", "read_model"])), path), path, how,
           ())


@settings(max_examples=budget(60), suppress_health_check=SUPPRESS)
@given(st.data())
def test_damaged_input_arrays(worker: FileWorker, tmp_path: Path, data: st.DataObject) -> None:
    # The CLI's --input files: .npy or .npz, read without pickle and size-checked first.
    path = tmp_path / f"in{next(_ids)}.npz"
    kind = data.draw(st.sampled_from(["huge", "pickle", "bytes", "ok"]))
    member = {"huge": npy_header_only((2**40,)), "pickle": npy(np.array([None], object)),
              "bytes": data.draw(st.binary(max_size=64)), "ok": npy(np.ones((2, 1, 3)))}[kind]
    if data.draw(st.booleans()):
        path = path.with_suffix(".npy")
        path.write_bytes(member)
    else:
        write_zip(path, {"x.npy": member})
    out = worker.run("read_arrays", path)
    allowed = {"huge": ("SizeLimitError",), "pickle": ("ModelFileError",),
               "bytes": ("ModelFileError",), "ok": ()}[kind]
    _check(out, path, kind, allowed)


# -- params in memory ------------------------------------------------------------------------

BAD_VALUES = st.sampled_from([None, "abc", 1.5, [1.0, 2.0], np.zeros((9, 9), np.float32),
                              np.zeros((), np.float32), np.zeros(4, np.float64)[None],
                              {"a": np.zeros(3)}])


@settings(max_examples=budget(80), suppress_health_check=SUPPRESS)
@given(st.data())
def test_wrong_params_in_memory(saved: tuple[Path, Any, dict[str, Any]],
                                data: st.DataObject) -> None:
    _, graph, params = saved
    params = dict(params)
    kind = data.draw(st.sampled_from(["missing", "extra", "bad_value", "not_a_dict"]))
    name = data.draw(st.sampled_from(sorted(params)))
    if kind == "missing":
        del params[name]
        words = f"missing parameter(s) @{name}"
    elif kind == "extra":
        params["ghost.w"] = np.ones(3, np.float32)
        words = "@ghost.w"
    elif kind == "bad_value":
        params[name] = data.draw(BAD_VALUES)
        words = f"@{name}"
    else:
        params = data.draw(st.sampled_from([None, [1, 2], "params", 3]))
        words = "params must be a"
    event(kind)
    where = data.draw(st.sampled_from(["compile", "apply", "save"]))
    cls: type[SpikejitError] = ParamError
    if where == "compile":
        e = expect_spikejit_error(spikejit.compile, (graph, params))
        if kind == "not_a_dict":  # the source, not the params, is malformed
            cls, words = OptionError, "the params of a (Graph, params) pair must be a dict"
    elif where == "apply":
        model = spikejit.compile((graph, saved[2]))
        x = np.zeros((2, 1, 3), np.float32)
        e = expect_spikejit_error(model.apply, params, x)
    else:
        e = expect_spikejit_error(spikejit.save, saved[0].with_name("never.npz"), graph, params)
        assert not saved[0].with_name("never.npz").exists()
    assert isinstance(e, cls), f"{kind} via {where}: {type(e).__name__}: {e}"
    assert words in str(e), f"{kind} via {where}: {words!r} not in {e}"


def test_absurd_time_axis_is_refused_when_traced(saved: tuple[Path, Any, Any]) -> None:
    _, graph, params = saved
    model = spikejit.compile((graph, params))
    x = jax.ShapeDtypeStruct((10**9, 10**3, 3), np.float32)
    with max_bytes("1G"), pytest.raises(SizeLimitError) as info:
        jax.eval_shape(model, x)
    # The state for B = 1000, plus the largest node output: [T, B, 4] float32.
    need = model.program.state_nbytes(1000) + 10**9 * 10**3 * 4 * 4
    assert str(info.value) == (
        f"a run of graph @main over T=1000000000 steps with a batch of 1000 (its state and "
        f"its largest [T, B, ...] node output, %fc) would take {format_bytes(need)}, more than "
        f"the limit of 1.0 GiB (1,073,741,824 bytes) (raise it with the environment variable "
        f"SPIKEJIT_MAX_BYTES or spikejit.limits.set_max_bytes)")
