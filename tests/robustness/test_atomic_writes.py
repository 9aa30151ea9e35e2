"""Every file spikejit writes appears whole or not at all.

Each writer is made to fail midway (an exception after part of the data is written, or an
interruption just before the rename); afterwards there is no output file and no temporary
file, and a file that was there before is unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nir
import numpy as np
import pytest
from helpers_robustness import save_model
from typer.testing import CliRunner

import spikejit
from spikejit.atomic import atomic_open, atomic_path, write_bytes_atomic
from spikejit.cli import app
from spikejit.errors import ModelFileError
from spikejit.model_io import write_npz_atomic


class Boom(Exception):
    """The failure injected into a writer."""


def _fail_after_writing(*args: Any, **kwargs: Any) -> None:
    """A stand-in writer: writes some bytes to its file (object or name), then fails."""
    target = args[0]
    if isinstance(target, str | os.PathLike):
        Path(target).write_bytes(b"partial")
    else:
        target.write(b"partial")
    raise Boom("disk on fire")


def _interrupt_fsync(fd: int) -> None:
    raise KeyboardInterrupt  # Ctrl-C after the data is written, before the rename


@pytest.fixture
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, dict[str, Any]]:
    return save_model(tmp_path_factory.mktemp("model") / "m.sjit.npz")


def test_save_failing_midway_leaves_nothing(tmp_path: Path, model: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _, graph, params = model
    monkeypatch.setattr(np, "savez", _fail_after_writing)
    with pytest.raises(Boom):
        spikejit.save(tmp_path / "m.sjit.npz", graph, params)
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_file(tmp_path: Path, model: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _, graph, params = model
    path = tmp_path / "m.sjit.npz"
    spikejit.save(path, graph, params)
    before = path.read_bytes()
    monkeypatch.setattr(os, "fsync", _interrupt_fsync)
    with pytest.raises(KeyboardInterrupt):
        spikejit.save(path, graph, {k: v + 1 for k, v in params.items()})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.sjit.npz"]


def test_write_nir_failing_midway_leaves_nothing(tmp_path: Path, model: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _, graph, params = model
    monkeypatch.setattr(nir, "write", _fail_after_writing)
    with pytest.raises(Boom):
        spikejit.write_nir(tmp_path / "m.nir", graph, params)
    assert list(tmp_path.iterdir()) == []


def test_write_nir_reports_an_unwritable_place(tmp_path: Path, model: Any) -> None:
    _, graph, params = model
    with pytest.raises(ModelFileError, match=r"cannot write NIR file '.*no/such/m\.nir'"):
        spikejit.write_nir(tmp_path / "no" / "such" / "m.nir", graph, params)
    assert list(tmp_path.iterdir()) == []


def test_npz_writer_failing_on_the_second_array(tmp_path: Path) -> None:
    class Unconvertible:
        def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
            raise Boom("cannot convert")

    with pytest.raises(Boom):
        write_npz_atomic(tmp_path / "out.npz", {"a": np.ones(1000), "b": Unconvertible()})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["run", "compile", "viz"])
def test_cli_outputs_interrupted_before_the_rename(tmp_path: Path, model: Any, command: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = model[0]
    out = tmp_path / {"run": "y.npz", "compile": "c.sjit.npz", "viz": "g.dot"}[command]
    args = {"run": ["run", str(path), "--steps", "3", "--output", str(out)],
            "compile": ["compile", str(path), "-o", str(out)],
            "viz": ["viz", str(path), "-o", str(out)]}[command]
    monkeypatch.setattr(os, "fsync", _interrupt_fsync)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 130, (result.stdout, result.stderr)  # click's Ctrl-C status
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    result = CliRunner().invoke(app, args)  # and without the interruption it is written
    assert result.exit_code == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_atomic_primitives(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    with pytest.raises(Boom), atomic_open(target) as f:
        f.write(b"half")
        raise Boom("midway")
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise Boom("midway")
    assert list(tmp_path.iterdir()) == []
    write_bytes_atomic(target, b"whole")
    assert target.read_bytes() == b"whole"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    with pytest.raises(FileNotFoundError):
        write_bytes_atomic(tmp_path / "missing" / "f.bin", b"x")


def test_written_files_get_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    write_bytes_atomic(tmp_path / "f.bin", b"x")
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
