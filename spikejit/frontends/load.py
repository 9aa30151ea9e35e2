"""Source dispatch: which frontend reads a given model source.

``spikejit.compile`` and ``spikejit.model_io.read_model`` accept many kinds of source: a
path (a ``.nir`` file, a model saved with ``spikejit.save``, IR text), a ``nir.NIRGraph``,
a ``Graph`` or ``(Graph, params)`` pair, a ``torch.nn.Module``. This module decides which
frontend reads it (:func:`load_source`) and tells model files apart by their first bytes,
never by their names (:func:`model_kind`). The frontends themselves are imported only when
a source needs them, so compiling a ``(Graph, params)`` pair never imports ``nir``,
``h5py`` or torch.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spikejit.array_files import NPY_MAGIC, ZIP_PREFIXES
from spikejit.errors import ModelFileError, OptionError, SpikejitError
from spikejit.ir.graph import Graph

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def model_kind(path: str | os.PathLike[str]) -> str:
    """``"nir"``, ``"saved"`` or ``"text"`` for a model file; :class:`ModelFileError` if
    the file is missing or unreadable."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"{p}: no such file")
    if p.is_dir():
        raise ModelFileError(f"{p}: is a directory, expected a model file (.nir, saved "
                             f"spikejit model or IR text)")
    try:
        with p.open("rb") as f:
            head = f.read(8)
    except OSError as e:
        raise ModelFileError(f"{p}: cannot be read ({e.strerror})") from None
    if head.startswith(HDF5_MAGIC):
        return "nir"
    # What np.load would read as an archive or an array: spikejit.load says which it is.
    if head.startswith((*ZIP_PREFIXES, NPY_MAGIC)):
        return "saved"
    return "text"


def load_source(source: Any, overrides: Mapping[str, Any]) -> tuple[Graph, dict[str, Any]]:
    """``(graph, params)`` from any accepted source, with graph attributes overridden.

    ``overrides`` holds graph attributes (``dt``, ``reset``, ``cuba_current``, ``method``)
    and, for NIR sources only, ``input_shape``. Errors are worded for ``compile``, the
    caller that takes every kind of source.
    """
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], Graph):
        graph, params = source
        if not isinstance(params, Mapping):
            raise OptionError(f"compile: the params of a (Graph, params) pair must be a dict, "
                              f"got {type(params).__name__}")
        return _with_attrs(graph, overrides), dict(params)
    if isinstance(source, Graph):
        if source.param_refs():
            raise OptionError(f"compile: graph @{source.name} references parameters; pass "
                              f"(graph, params)")
        return _with_attrs(source, overrides), {}
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        kind = model_kind(path)
        if kind == "nir":
            return _from_nir(path, overrides)
        if kind == "text":
            raise ModelFileError(f"compile: {path} is IR text, which holds no parameter values;"
                                 f" pass (spikejit.parse(text), params) or use "
                                 f"spikejit.model_io.read_model to fill default values")
        from spikejit.ir.serialize import load

        graph, params = load(path)
        return _with_attrs(graph, overrides), dict(params)
    if type(source).__module__.split(".")[0] == "nir":
        return _from_nir(source, overrides)
    if _is_torch_module(source):
        return _from_torch(source, overrides)
    raise OptionError(f"compile: cannot compile a {type(source).__name__}; give a .nir path, a "
                      f"nir.NIRGraph, a (Graph, params) pair, a saved spikejit model path or a "
                      f"torch.nn.Module (with input_shape= and dt=)")


def _is_torch_module(source: Any) -> bool:
    torch = sys.modules.get("torch")  # never import torch just to find out
    return torch is not None and isinstance(source, torch.nn.Module)


def _from_torch(module: Any, overrides: Mapping[str, Any]) -> tuple[Graph, dict[str, Any]]:
    from spikejit.frontends.torch.importer import from_torch

    if "input_shape" not in overrides or "dt" not in overrides:
        raise OptionError("compile: a torch module needs input_shape= (per-sample shape of one "
                          "time step) and dt=")
    rest = {k: v for k, v in overrides.items() if k not in ("input_shape", "dt")}
    graph, params = from_torch(module, tuple(overrides["input_shape"]), dt=overrides["dt"])
    return _with_attrs(graph, rest), dict(params)


def _from_nir(source: Any, overrides: Mapping[str, Any]) -> tuple[Graph, dict[str, Any]]:
    from spikejit.frontends.nir.importer import from_nir

    accepted = inspect.signature(from_nir).parameters
    passed = {k: v for k, v in overrides.items() if k in accepted}
    graph, params = from_nir(source, **passed)
    rest = {k: v for k, v in overrides.items() if k not in passed}
    return _with_attrs(graph, rest), dict(params)


def _with_attrs(graph: Graph, overrides: Mapping[str, Any]) -> Graph:
    if "input_shape" in overrides:
        raise OptionError("compile: input_shape applies to NIR sources only; this source "
                          "already has typed inputs")
    if not overrides:
        return graph
    try:
        attrs = dataclasses.replace(graph.attrs, **overrides)
    except SpikejitError as e:
        raise OptionError(f"compile: {e}") from None
    return graph.replace(attrs=attrs, schedule=None)


__all__ = ["HDF5_MAGIC", "load_source", "model_kind"]
