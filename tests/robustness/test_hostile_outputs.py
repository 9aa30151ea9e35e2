"""Output paths that are not plain files (issue 15): spikejit writes only regular files.

A FIFO, a directory, a socket or a device at the destination is refused with OutputError
(CLI: exit 2, one ``error:`` line) and left as it was; a symlink is written through to its
target and stays a link; an existing file keeps its mode (and owner, as root). Every case
runs under a time limit, since opening a FIFO for writing would wait for a reader forever.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers_robustness import save_model, time_limit
from typer.testing import CliRunner

import spikejit
from spikejit.atomic import atomic_path, check_writable_destination, write_bytes_atomic
from spikejit.cli import app
from spikejit.errors import OutputError
from spikejit.model_io import write_npz_atomic

LIMIT = 10.0  # seconds; every case takes well under one
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, dict[str, Any]]:
    return save_model(tmp_path_factory.mktemp("model") / "m.sjit.npz")


def _writers(model: Any) -> dict[str, Callable[[Path], Any]]:
    _, graph, params = model
    return {
        "bytes": lambda p: write_bytes_atomic(p, b"data"),
        "npz": lambda p: write_npz_atomic(p, {"a": np.ones(3)}),
        "save": lambda p: spikejit.save(p, graph, params),
        "write_nir": lambda p: spikejit.write_nir(p, graph, params),
    }


WRITERS = ["bytes", "npz", "save", "write_nir"]


@pytest.fixture
def no_hang() -> Iterator[None]:
    with time_limit(LIMIT, "writing to a hostile destination"):
        yield


def _only(directory: Path, *names: str) -> None:
    """No temporary file was left behind."""
    assert sorted(p.name for p in directory.iterdir()) == sorted(names)


# --- refused destinations ------------------------------------------------------------------

@pytest.mark.parametrize("writer", WRITERS)
def test_fifo_is_refused_and_left_alone(tmp_path: Path, model: Any, writer: str,
                                        no_hang: None) -> None:
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    with pytest.raises(OutputError) as info:
        _writers(model)[writer](fifo)
    assert str(info.value) == (f"cannot write {str(fifo)!r}: it is a FIFO (named pipe); "
                               f"spikejit writes only regular files")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    _only(tmp_path, "out")


@pytest.mark.parametrize("writer", WRITERS)
def test_directory_is_refused(tmp_path: Path, model: Any, writer: str, no_hang: None) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep").write_bytes(b"x")
    with pytest.raises(OutputError, match=r"'.*out': it is a directory; spikejit writes only"):
        _writers(model)[writer](target)
    assert (target / "keep").read_bytes() == b"x"
    _only(tmp_path, "out")


def test_socket_is_refused(tmp_path: Path, no_hang: None) -> None:
    path = tmp_path / "s"
    if len(os.fsencode(path)) >= 100:  # pragma: no cover - AF_UNIX path limit
        pytest.skip("temporary directory path too long for a unix socket")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(os.fspath(path))
        with pytest.raises(OutputError, match="it is a socket"):
            write_bytes_atomic(path, b"x")
        assert stat.S_ISSOCK(os.lstat(path).st_mode)


@pytest.mark.skipif(not ROOT, reason="os.mknod of a device needs root")
def test_character_device_is_refused_directly_and_through_a_link(tmp_path: Path,
                                                                 no_hang: None) -> None:
    # A private twin of /dev/null (same device numbers) in tmp_path: a regression would
    # replace this node, never the real /dev/null.
    dev = tmp_path / "null"
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (tmp_path / "link").symlink_to("null")
    with pytest.raises(OutputError, match=r"'.*null': it is a character device"):
        write_bytes_atomic(dev, b"x")
    with pytest.raises(OutputError, match=r"'.*link' \(a symlink to '.*null'\): it is a "
                                          r"character device"):
        write_bytes_atomic(tmp_path / "link", b"x")
    assert stat.S_ISCHR(os.lstat(dev).st_mode)
    assert os.lstat(dev).st_rdev == os.makedev(1, 3)
    _only(tmp_path, "null", "link")


def test_character_device_is_refused_without_root(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # The refusal path without root: the destination looks like a character device.
    dev = tmp_path / "dev"
    real_lstat = os.lstat

    def lstat(p: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if Path(p) == dev:
            return os.stat_result((stat.S_IFCHR | 0o666, 1, 1, 1, 0, 0, 0, 0, 0, 0))
        return real_lstat(p, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", lstat)
    with pytest.raises(OutputError, match="it is a character device"):
        write_bytes_atomic(dev, b"x")
    with pytest.raises(OutputError, match="it is a character device"):
        check_writable_destination(dev)
    _only(tmp_path)


def test_destination_turning_into_a_fifo_while_writing(tmp_path: Path, no_hang: None) -> None:
    target = tmp_path / "out"
    target.write_bytes(b"old")
    with pytest.raises(OutputError, match=r"it is a FIFO \(named pipe\) \(it changed while "
                                          r"spikejit was writing\)"), \
            atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
        target.unlink()
        os.mkfifo(target)  # swapped in after the first check, before the rename
    assert stat.S_ISFIFO(os.lstat(target).st_mode)
    _only(tmp_path, "out")


# --- symlinks ------------------------------------------------------------------------------

@pytest.mark.parametrize("writer", WRITERS)
def test_symlink_is_written_through(tmp_path: Path, model: Any, writer: str) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    (there / "real").write_bytes(b"old")
    (here / "link").symlink_to("../there/real")  # relative to the link's directory
    (here / "chain").symlink_to("link")
    _writers(model)[writer](here / "chain")
    assert os.readlink(here / "link") == "../there/real"
    assert os.readlink(here / "chain") == "link"
    assert (there / "real").read_bytes() != b"old"
    _only(here, "link", "chain")  # the temporary file was made beside the target
    _only(there, "real")
    if writer == "save":
        _, params = spikejit.load(here / "chain")
        assert sorted(params) == sorted(model[2])


def test_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("new.bin")
    write_bytes_atomic(tmp_path / "link", b"x")
    assert (tmp_path / "new.bin").read_bytes() == b"x"
    assert os.readlink(tmp_path / "link") == "new.bin"
    (tmp_path / "far").symlink_to("no/such/dir/f.bin")
    with pytest.raises(OutputError, match=r"'.*far' \(a symlink to '.*no/such/dir/f\.bin'\): "
                                          r"the directory '.*no/such/dir' does not exist"):
        check_writable_destination(tmp_path / "far")
    with pytest.raises(FileNotFoundError):
        write_bytes_atomic(tmp_path / "far", b"x")
    _only(tmp_path, "link", "new.bin", "far")


@pytest.mark.parametrize("links", [{"a": "a"}, {"a": "b", "b": "a"}])
def test_symlink_loop_is_refused(tmp_path: Path, links: dict[str, str], no_hang: None) -> None:
    for name, to in links.items():
        (tmp_path / name).symlink_to(to)
    with pytest.raises(OutputError) as info:
        write_bytes_atomic(tmp_path / "a", b"x")
    assert str(info.value) == (f"cannot write {str(tmp_path / 'a')!r}: its symlinks form a "
                               f"loop (or a chain of more than 40 links)")
    with pytest.raises(OutputError, match="has a symlink loop"):
        write_bytes_atomic(tmp_path / "a" / "f.bin", b"x")  # the loop is a directory part
    _only(tmp_path, *links)


# --- metadata of a replaced file -----------------------------------------------------------

@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
@pytest.mark.parametrize("writer", ["bytes", "save", "write_nir"])
def test_existing_file_keeps_its_mode(tmp_path: Path, model: Any, mode: int,
                                      writer: str) -> None:
    target = tmp_path / "out"
    target.write_bytes(b"old")
    target.chmod(mode)
    _writers(model)[writer](target)
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert target.read_bytes() != b"old"


def test_symlink_target_keeps_its_mode(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"old")
    (tmp_path / "real").chmod(0o600)
    (tmp_path / "link").symlink_to("real")
    write_bytes_atomic(tmp_path / "link", b"new")
    assert stat.S_IMODE((tmp_path / "real").stat().st_mode) == 0o600
    assert (tmp_path / "real").read_bytes() == b"new"


@pytest.mark.skipif(not ROOT, reason="only root may give a file to another user")
def test_existing_file_keeps_its_owner(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_bytes(b"old")
    os.chown(target, 12345, 23456)
    target.chmod(0o640)
    write_bytes_atomic(target, b"new")
    st = target.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (12345, 23456, 0o640)


# --- the command line ----------------------------------------------------------------------

def _cli(*args: str) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    with time_limit(LIMIT, f"spikejit {' '.join(args)}"):
        result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stderr, time.perf_counter() - t0


@pytest.mark.parametrize("command", ["run", "compile", "viz"])
def test_cli_refuses_a_fifo_before_loading_the_model(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "out.dot"
    os.mkfifo(fifo)
    # The model does not even exist: the output is checked first, before any compile or run.
    flag = "--output" if command == "run" else "-o"
    code, err, _ = _cli(command, str(tmp_path / "missing.nir"), flag, str(fifo))
    assert code == 2
    assert err == (f"error: cannot write {str(fifo)!r}: it is a FIFO (named pipe); spikejit "
                   f"writes only regular files\n")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    _only(tmp_path, "out.dot")


def test_cli_refuses_a_directory_and_a_missing_directory(tmp_path: Path, model: Any) -> None:
    code, err, _ = _cli("compile", str(model[0]), "-o", str(tmp_path))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: cannot write {str(tmp_path)!r}: it is a directory")
    code, err, _ = _cli("run", str(model[0]), "--output", str(tmp_path / "no" / "y.npz"))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: cannot write {str(tmp_path / 'no' / 'y.npz')!r}: the "
                          f"directory {str(tmp_path / 'no')!r} does not exist")
    _only(tmp_path)


def test_cli_writes_through_a_symlink(tmp_path: Path, model: Any) -> None:
    (tmp_path / "real.sjit.npz").write_bytes(b"old")
    (tmp_path / "real.sjit.npz").chmod(0o600)
    (tmp_path / "m.sjit.npz").symlink_to("real.sjit.npz")
    code, err, _ = _cli("compile", str(model[0]), "-o", str(tmp_path / "m.sjit.npz"))
    assert code == 0, err
    assert os.readlink(tmp_path / "m.sjit.npz") == "real.sjit.npz"
    assert stat.S_IMODE((tmp_path / "real.sjit.npz").stat().st_mode) == 0o600
    spikejit.load(tmp_path / "real.sjit.npz")
    _only(tmp_path, "m.sjit.npz", "real.sjit.npz")


def test_cli_compile_of_the_bundled_example_to_a_fifo(tmp_path: Path) -> None:
    """The reproducer as a user types it, in a real process that a hang could not hold."""
    from spikejit.examples import BUNDLED_DT, bundled_model_path

    fifo = tmp_path / "out.sjit.npz"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "spikejit", "compile",
                           str(bundled_model_path()), "--dt", str(BUNDLED_DT), "-o", str(fifo)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"error: cannot write {str(fifo)!r}: it is a FIFO "
                                        f"(named pipe); spikejit writes only regular files"]
    assert time.perf_counter() - t0 < 30
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    _only(tmp_path, "out.sjit.npz")
