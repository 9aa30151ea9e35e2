"""The size limit itself: where it comes from, how it is written, and the CLI honouring it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from helpers_robustness import max_bytes, save_model
from typer.testing import CliRunner

from spikejit.array_files import check_array_file
from spikejit.cli import app
from spikejit.errors import ModelFileError, OptionError, SizeLimitError
from spikejit.limits import DEFAULT_MAX_BYTES, check_bytes, format_bytes, parse_size, set_max_bytes
from spikejit.limits import (
    max_bytes as current_limit,
)


@pytest.mark.parametrize(("text", "size"), [
    ("1000", 1000), ("8G", 8 * 2**30), ("8GiB", 8 * 2**30), ("512 MB", 512 * 2**20),
    ("1.5k", 1536), (" 2T ", 2 * 2**40), ("0", 0),
])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1", "8X", "1e9", "G"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_size(text)
    assert str(info.value) == (f"SPIKEJIT_MAX_BYTES: {text!r} is not a size (bytes, or a "
                               f"number with a K, M, G, T or P suffix, e.g. 8G)")


def test_where_the_limit_comes_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPIKEJIT_MAX_BYTES", raising=False)
    assert current_limit() == DEFAULT_MAX_BYTES == 8 * 2**30
    monkeypatch.setenv("SPIKEJIT_MAX_BYTES", "1M")
    assert current_limit() == 2**20
    with max_bytes(123):  # set_max_bytes wins over the environment
        assert current_limit() == 123
    assert current_limit() == 2**20
    monkeypatch.setenv("SPIKEJIT_MAX_BYTES", "much")
    with pytest.raises(OptionError, match="SPIKEJIT_MAX_BYTES: 'much' is not a size"):
        check_bytes(1, "anything")


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "nope"])
def test_set_max_bytes_refuses(bad: object) -> None:
    with pytest.raises(OptionError):
        set_max_bytes(bad)  # type: ignore[arg-type]
    assert current_limit() > 0


def test_format_bytes() -> None:
    assert format_bytes(999) == "999 bytes"
    assert format_bytes(8 * 2**30) == "8.0 GiB (8,589,934,592 bytes)"
    assert format_bytes(3 * 2**40 + 1) == "3.0 TiB (3,298,534,883,329 bytes)"


def test_limit_is_inclusive() -> None:
    with max_bytes(100):
        check_bytes(100, "exactly the limit")
        with pytest.raises(SizeLimitError):
            check_bytes(101, "one byte more")


def test_array_files_are_checked_from_their_headers(tmp_path: Path) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**9, 10**3)})
    path = tmp_path / "x.npy"
    path.write_bytes(header.getvalue())  # 8 TB declared, no data at all
    with pytest.raises(SizeLimitError) as info:
        check_array_file(path, str(path))
    assert str(info.value).startswith(f"{path}: its array would take 7.3 TiB")
    path.write_bytes(b"\x93NUMPY\x09\x00garbage")
    with pytest.raises(ModelFileError, match=r"x\.npy is not a readable \.npy/\.npz file"):
        check_array_file(path, str(path))


def test_the_cli_honours_the_environment(tmp_path: Path) -> None:
    path, _, _ = save_model(tmp_path / "m.sjit.npz")
    runner = CliRunner()
    result = runner.invoke(app, ["inspect", str(path)], env={"SPIKEJIT_MAX_BYTES": "100"})
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: model file {str(path)!r}: its arrays (the "
                                    f"largest: member '__ir__.npy') would take ")
    assert "more than the limit of 100 bytes" in result.stderr
    result = runner.invoke(app, ["inspect", str(path)], env={"SPIKEJIT_MAX_BYTES": "1M"})
    assert result.exit_code == 0, result.stderr


def test_the_cli_option_wins_and_is_checked(tmp_path: Path) -> None:
    path, _, _ = save_model(tmp_path / "m.sjit.npz")
    runner = CliRunner()
    try:
        result = runner.invoke(app, ["--max-bytes", "100", "inspect", str(path)],
                               env={"SPIKEJIT_MAX_BYTES": "1G"})
        assert result.exit_code == 2 and "more than the limit of 100 bytes" in result.stderr
        result = runner.invoke(app, ["--max-bytes", "lots", "inspect", str(path)])
        assert result.exit_code == 2
        assert result.stderr == ("error: --max-bytes: 'lots' is not a size (bytes, or a "
                                 "number with a K, M, G, T or P suffix, e.g. 8G)\n")
    finally:
        set_max_bytes(None)  # the option sets the limit for the (test) process


def test_a_nir_file_beyond_the_limit_is_not_even_scanned(tmp_path: Path) -> None:
    import spikejit

    path = tmp_path / "sparse.nir"
    with path.open("wb") as f:  # a sparse file: 1 TiB claimed, nothing written
        f.truncate(2**40)
    with pytest.raises(SizeLimitError) as info:
        spikejit.from_nir(path, dt=1e-3)
    assert str(info.value).startswith(f"NIR file {str(path)!r} (the file itself) would take "
                                      f"1.0 TiB")
