"""The on-disk model format: the IR text plus the parameter arrays, in one ``.npz`` file.

A model file is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) holding:

* ``__spikejit__``: a ``uint8`` array of UTF-8 JSON, the header
  ``{"format": "spikejit-model", "version": 1, "semantics": "nir-euler-v1",
  "params": ["fc.weight", ...]}``;
* ``__ir__``: a ``uint8`` array of the UTF-8 IR text, printed with source locations;
* ``param_0``, ``param_1``, ...: the arrays, in the order of the header's ``params`` list.

``version`` is 1 for graphs without a ``params { ... }`` block (derived or retained
parameters) and 2 for graphs with one, so that a reader that predates the block refuses
such a file with "upgrade spikejit" instead of a parse error. Only the user's parameters
are stored; derived ones are computed from them.

Parameter names are stored in the header rather than as member names because names like
``S/lif1.tau`` or ``"my layer".w`` are not safe zip member names. ``bf16`` arrays are stored
as their ``uint16`` bit patterns (``.npy`` has no bfloat16) and viewed back on load. Nothing
is ever unpickled: members are read with ``allow_pickle=False``, so a file holding object
arrays is rejected, and only after every size the archive declares was checked. Loading
parses and verifies the graph and checks every array against the type its parameter
reference declares.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from spikejit.array_files import (
    ARCHIVE_ERRORS,
    NPY_MAGIC,
    NpzArchive,
    array_file_kind,
    read_npy_header,
)
from spikejit.atomic import atomic_open
from spikejit.errors import ModelFileError, ParamError, ParseError, SpikejitError
from spikejit.ir.graph import SEMANTICS, Graph
from spikejit.ir.parser import parse
from spikejit.ir.printer import print_graph
from spikejit.ir.verify import check_array, param_owners, verify, verify_params
from spikejit.limits import check_text_bytes

FORMAT = "spikejit-model"
FORMAT_VERSION = 2
HEADER_KEY = "__spikejit__"
IR_KEY = "__ir__"


def _param_key(i: int) -> str:
    return f"param_{i}"


def save(path: str | os.PathLike[str], graph: Graph, params: Mapping[str, Any], *,
         compress: bool = False) -> Path:
    """Write a model (graph and params) to one ``.npz`` file.

    The graph and params are verified first, so a file that ``save`` writes always loads.
    The file is written to a temporary name and renamed, so an interrupted save never
    leaves a half-written model at ``path``. The name is used exactly as given (NumPy's
    habit of appending ``.npz`` is not followed).

    Args:
        path: Destination file; ``.sjit.npz`` is the customary suffix.
        graph: The model's graph.
        params: ``{name: array}`` with exactly the graph's parameters, each of its
            declared shape and dtype (NumPy or JAX arrays).
        compress: Deflate the archive (smaller, slower to write and read).

    Returns:
        The path written.

    Raises:
        VerifyError: The graph is malformed.
        ParamError: The params do not match the graph.
        ModelFileError: The file cannot be written.
    """
    verify(graph)
    verify_params(graph, params)  # also when params is None: a model needs its params
    names = sorted(graph.user_param_refs())
    # Version 2 only where needed (a params block in the IR text), so version-1 readers
    # still read every file without one.
    version = 2 if graph.derived or graph.retained else 1
    header = {"format": FORMAT, "version": version, "semantics": SEMANTICS,
              "params": names}
    members: dict[str, np.ndarray] = {
        HEADER_KEY: _text_array(json.dumps(header, ensure_ascii=False)),
        IR_KEY: _text_array(print_graph(graph, debug_info=True)),
    }
    for i, name in enumerate(names):
        array = np.asarray(params[name])
        if array.dtype.name == "bfloat16":
            array = array.view(np.uint16)
        members[_param_key(i)] = array
    target = Path(path)
    writer = np.savez_compressed if compress else np.savez
    try:
        with atomic_open(target) as f:
            writer(f, allow_pickle=False, **members)
    except OSError as e:
        raise ModelFileError(f"cannot write model file {os.fspath(path)!r}: {e}") from None
    return target


def load(path: str | os.PathLike[str]) -> tuple[Graph, dict[str, np.ndarray]]:
    """Read a model written by :func:`save`.

    Args:
        path: The model file.

    Returns:
        ``(graph, params)``: the verified graph (with its source locations) and a dict of
        NumPy arrays, each checked against its parameter's declared type.

    Raises:
        ModelFileError: The file is missing, not a spikejit model, from a newer format
            version, corrupt, or its IR text does not parse.
        SizeLimitError: Its arrays declare more bytes than the limit, or its IR text is
            too long to parse within it (checked before any member is read; see
            :class:`~spikejit.array_files.NpzArchive`).
        VerifyError: The stored graph is malformed.
        ParamError: A stored array is missing, extra or of the wrong shape or dtype.
    """
    where = f"model file {os.fspath(path)!r}"
    try:
        with open(path, "rb") as f:
            members = _read_members(f, where)
    except SpikejitError:
        raise
    except FileNotFoundError:
        raise ModelFileError(f"{where} does not exist") from None
    except ARCHIVE_ERRORS as e:
        # zipfile and NumPy report foreign or truncated files as OSError/ValueError/
        # BadZipFile, and object (pickled) arrays as ValueError because allow_pickle is off.
        raise ModelFileError(f"{where} is not a readable .npz archive: {e}") from None
    header = _read_header(members, where)
    names: list[str] = header["params"]
    try:
        graph = parse(_read_text(members, IR_KEY, where))
    except ParseError as e:
        raise ModelFileError(f"{where}: its IR text does not parse: {e}") from None
    try:
        verify(graph)
    except SpikejitError as e:
        e.add_note(f"while loading {where}")
        raise
    expected = {HEADER_KEY, IR_KEY, *(_param_key(i) for i in range(len(names)))}
    extra = sorted(set(members) - expected)
    if extra:
        raise ModelFileError(f"{where} has unexpected member(s) {', '.join(extra)}")
    missing_members = sorted(expected - set(members))
    if missing_members:
        raise ModelFileError(f"{where} is truncated: member(s) {', '.join(missing_members)} "
                             f"listed in its header are missing")
    refs = graph.user_param_refs()
    owners = param_owners(graph)
    unknown = [n for n in names if n not in refs]
    if unknown:
        raise ParamError(f"{where} stores parameter(s) {', '.join('@' + n for n in unknown)} "
                         f"that no node of graph @{graph.name} references")
    absent = sorted(set(refs) - set(names))
    if absent:
        raise ParamError(f"{where} lacks parameter(s) {', '.join('@' + n for n in absent)} "
                         f"(used by {', '.join(owners[n] for n in absent)})")
    params: dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        array = members[_param_key(i)]
        if refs[name].type.dtype == "bf16" and array.dtype == np.uint16:
            import ml_dtypes  # installed with jax; only needed for bf16 models

            array = array.view(ml_dtypes.bfloat16)
        try:
            check_array(name, array, refs[name], owner=owners[name])
        except ParamError as e:
            raise ParamError(f"{where}: {e}") from None
        params[name] = array
    return graph, params


#: What reading the header for a size-limit message may raise (it is a damaged file).
_LABEL_ERRORS: tuple[type[BaseException], ...] = (
    *ARCHIVE_ERRORS, IndexError, AttributeError, UnicodeDecodeError)


def _read_members(f: BinaryIO, where: str) -> dict[str, np.ndarray]:
    """Every member of the archive ``f``, checked before any is read: the archive's
    declared sizes (:class:`~spikejit.array_files.NpzArchive`), then its text members' sizes
    counted as text to parse."""
    head = f.read(len(NPY_MAGIC))
    f.seek(0)
    kind = array_file_kind(head)  # as np.load decides, from the first bytes
    if kind == "npy":
        raise ModelFileError(f"{where} holds a single .npy array, not a spikejit model "
                             f"(an .npz archive)")
    if kind is None:
        found = "it is empty" if not head else f"it starts with {head!r}, not a zip prefix"
        raise ModelFileError(f"{where} is not a readable .npz archive: {found}")
    with NpzArchive(f, where, _member_label) as archive:
        for key in (HEADER_KEY, IR_KEY):
            header = archive.headers.get(key + ".npy")
            if header is not None:
                check_text_bytes(header.nbytes, f"{where}: member {key + '.npy'!r}")
        return {name.removesuffix(".npy"): archive.read(name) for name in archive.names}


def _member_label(archive: zipfile.ZipFile, member: str) -> str:
    """``parameter @name`` for a ``param_<i>.npy`` member when the header names it (and
    is small and sound enough to read safely), else the member name; for size-limit
    messages, which come before any member is read."""
    label = f"member {member!r}"
    index = member.removeprefix("param_").removesuffix(".npy")
    if not (member.startswith("param_") and index.isdigit()):
        return label
    try:
        info = archive.getinfo(HEADER_KEY + ".npy")
        if info.file_size > 2**16:  # a real header is a few hundred bytes
            return label
        with archive.open(info) as f:
            raw = f.read()  # at most file_size bytes: zipfile stops there
        header = read_npy_header(io.BytesIO(raw))
        if header.dtype != np.uint8 or header.nbytes > len(raw) - header.offset:
            return label
        text = raw[header.offset : header.offset + header.nbytes].decode("utf-8")
        return f"parameter @{json.loads(text)['params'][int(index)]}"
    except _LABEL_ERRORS:
        return label


def _text_array(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _read_text(members: Mapping[str, np.ndarray], key: str, where: str) -> str:
    array = members.get(key)
    if array is None:
        raise ModelFileError(f"{where} is not a spikejit model: it has no {key!r} member "
                             f"(members: {', '.join(sorted(members)) or 'none'})")
    if array.dtype != np.uint8 or array.ndim != 1:
        raise ModelFileError(f"{where}: member {key!r} must be a 1-d uint8 array of UTF-8 "
                             f"text, got {array.dtype} of shape {list(array.shape)}")
    try:
        return str(array.data, "utf-8")  # decoded in place: no copy of the bytes first
    except UnicodeDecodeError as e:
        raise ModelFileError(f"{where}: member {key!r} is not valid UTF-8 ({e})") from None


def _read_header(members: Mapping[str, np.ndarray], where: str) -> dict[str, Any]:
    text = _read_text(members, HEADER_KEY, where)
    try:
        header = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{where}: header {HEADER_KEY!r} is not JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{where}: header {HEADER_KEY!r} does not declare "
                             f"format {FORMAT!r}")
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{where}: header version {version!r} must be an integer >= 1")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{where} uses format version {version}; this spikejit reads "
                             f"versions up to {FORMAT_VERSION} (upgrade spikejit)")
    semantics = header.get("semantics")
    if semantics != SEMANTICS:
        raise ModelFileError(f"{where} was written for semantics {semantics!r}; this "
                             f"spikejit implements {SEMANTICS!r}")
    names = header.get("params")
    if (not isinstance(names, list) or not all(isinstance(n, str) and n for n in names)
            or len(set(names)) != len(names)):
        raise ModelFileError(f"{where}: header 'params' must be a list of distinct "
                             f"parameter names")
    return header
