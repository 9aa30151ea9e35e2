"""Reading any model file spikejit understands, and writing result arrays safely.

``read_model`` tells the three model formats apart by their first bytes, not their names
(:func:`spikejit.frontends.load.model_kind`, shared with ``compile``):
HDF5 (a ``.nir`` file), a zip archive (a saved spikejit model, ``spikejit.save``; an
``.npy`` array is refused as one) or text
(IR text, which holds no parameter values: they are filled by
:func:`spikejit.ir.init.init_params` from a seed).
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spikejit.array_files import read_array_file
from spikejit.atomic import atomic_open
from spikejit.errors import ModelFileError, SpikejitError
from spikejit.frontends.load import HDF5_MAGIC as HDF5_MAGIC  # re-exported (file sniffing)
from spikejit.frontends.load import model_kind as model_kind
from spikejit.ir.graph import Graph, GraphAttrs


def read_model(
    path: str | os.PathLike[str],
    *,
    dt: float | None = None,
    reset: str | None = None,
    cuba_current: str | None = None,
    method: str | None = None,
    seed: int = 0,
) -> tuple[Graph, dict[str, Any]]:
    """Load ``(graph, params)`` from a ``.nir`` file, a saved model or IR text.

    Options given here override what the file says (for NIR files, which carry no time
    step, ``dt`` is required when the graph has dynamics). Every kind of file gives a
    verified graph.

    Raises:
        SpikejitError: The file cannot be read or holds no valid model; the error names
            the file (in its message or, failing that, in a note).
    """
    with about_file(path):
        return _read_model(path, dt, reset, cuba_current, method, seed)


def _read_model(path: str | os.PathLike[str], dt: float | None, reset: str | None,
                cuba_current: str | None, method: str | None,
                seed: int) -> tuple[Graph, dict[str, Any]]:
    kind = model_kind(path)
    if kind == "nir":
        from spikejit.frontends.nir.importer import from_nir

        options: dict[str, Any] = {k: v for k, v in (("reset", reset),
                                                      ("cuba_current", cuba_current),
                                                      ("method", method)) if v is not None}
        return from_nir(path, dt=dt, **options)
    if kind == "saved":
        from spikejit.ir.serialize import load

        graph, params = load(path)
    else:
        from spikejit.ir.init import init_params
        from spikejit.ir.parser import parse_file
        from spikejit.ir.verify import verify

        graph = parse_file(path)
        graph = _override(graph, dt, reset, cuba_current, method)
        verify(graph)  # before default values are made for what it declares
        return graph, dict(init_params(graph, seed))
    return _override(graph, dt, reset, cuba_current, method), dict(params)


@contextlib.contextmanager
def about_file(path: str | os.PathLike[str]) -> Iterator[None]:
    """Make every :class:`SpikejitError` raised inside name ``path``: errors whose first
    line or notes do not mention it get the note ``in model file '<path>'`` (the CLI
    prints notes on its one error line)."""
    try:
        yield
    except SpikejitError as e:
        name = str(Path(path))
        lines = [str(e).split("\n", 1)[0], *getattr(e, "__notes__", ())]
        if not any(name in line for line in lines):
            e.add_note(f"in model file {name!r}")
        raise


def _override(graph: Graph, dt: float | None, reset: str | None, cuba_current: str | None,
              method: str | None) -> Graph:
    a = graph.attrs
    attrs = GraphAttrs(
        dt=a.dt if dt is None else dt,
        reset=a.reset if reset is None else reset,
        cuba_current=a.cuba_current if cuba_current is None else cuba_current,
        method=a.method if method is None else method,
    )
    return graph if attrs == a else graph.replace(attrs=attrs)


def write_npz_atomic(path: str | os.PathLike[str], arrays: Mapping[str, Any]) -> Path:
    """Write ``arrays`` to an ``.npz`` file via a temporary file and a rename, so a failed
    or interrupted write never leaves a partial file at ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(target) as f, zipfile.ZipFile(f, "w") as zf:
        for key, value in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
    return target


def read_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Arrays from a ``.npy`` (key ``""``) or ``.npz`` file, never unpickling anything; the
    format is decided by the first bytes, as ``np.load`` decides it, and every size the
    file declares is checked against the limit and against the file before reading
    (:func:`spikejit.array_files.read_array_file`)."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"{p}: no such file")
    return read_array_file(p, str(p))
