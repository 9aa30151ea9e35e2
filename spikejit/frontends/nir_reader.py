"""Reading NIR graphs into plain data, from ``.nir`` (HDF5) files or ``nir.NIRGraph`` objects.

Nothing here constructs ``nir`` node objects: their constructors assert shapes that real
exporter files violate (scalar parameters, ``input_shape=None``, missing pooling types), and
``assert`` vanishes under ``python -O``. Instead the file is walked with ``h5py`` into
:class:`RawGraph`/:class:`RawNode` values holding numpy arrays, ints and strings, and every
failure becomes a :class:`~spikejit.errors.ModelFileError` (the file cannot be read) or a
:class:`~spikejit.errors.FrontendError` (it holds something that is not NIR), naming the
file and the HDF5 path of the dataset.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spikejit.errors import FrontendError, ModelFileError
from spikejit.frontends.nir_schema import NIR_NODES, supported_kinds
from spikejit.limits import check_bytes, nbytes

#: Deeper nesting than this is refused (it only happens in damaged or hostile files).
MAX_DEPTH = 32


@dataclass
class RawNode:
    """One NIR node as plain data.

    Attributes:
        kind: The NIR type name (``LIF``, ``Conv2d``, ...).
        fields: Field name -> numpy array, int or str, as stored.
        metadata: The node's metadata entries (strings decoded).
        where: Where it came from, for messages (``model.nir:/node/nodes/lif1``).
    """

    kind: str
    fields: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    where: str = ""


@dataclass
class RawGraph:
    """A NIR graph (top level or nested) as plain data; node order is the stored order."""

    nodes: dict[str, RawNode | RawGraph]
    edges: list[tuple[str, str]]
    metadata: dict[str, Any] = field(default_factory=dict)
    where: str = ""
    kind: str = "NIRGraph"


@dataclass
class _Budget:
    """Bytes the datasets read so far declare, checked against the size limit before each
    read (a few bytes of HDF5 can declare a terabyte-sized, compressed dataset)."""

    label: str
    total: int = 0

    def take(self, dataset: Any, path: str) -> None:
        shape = dataset.shape or ()  # None for an empty (null) dataspace
        self.total += nbytes(shape, dataset.dtype.itemsize)
        check_bytes(self.total, f"NIR file {self.label!r}: dataset {path} and those read "
                                f"before it")


# -- files --------------------------------------------------------------------------------

def read_nir_file(path: str | os.PathLike[str]) -> RawGraph:
    """Read a ``.nir`` file without ``nir``'s constructors or type check.

    Raises:
        ModelFileError: The file is missing, not HDF5, truncated, or lacks the NIR layout.
        FrontendError: A node has a type that NIR 1.0.8 does not define.
        SizeLimitError: Its datasets declare more bytes than the limit
            (:mod:`spikejit.limits`); checked before each is read.
    """
    import h5py

    path = Path(path)
    label = str(path)
    if not path.is_file():
        raise ModelFileError(f"NIR file {label!r} does not exist or is not a file")
    # The heap check below reads the whole file: a file beyond the limit (a sparse one
    # can claim terabytes) is refused first.
    check_bytes(path.stat().st_size, f"NIR file {label!r} (the file itself)")
    check_global_heaps(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ModelFileError(f"NIR file {label!r} is not a readable HDF5 file ({e})") from None
    try:
        with f:
            if "node" not in f or not isinstance(f["node"], h5py.Group):
                raise ModelFileError(f"NIR file {label!r} has no '/node' group; is it a NIR file?")
            graph = _read_group(f["node"], label, "/node", 0, _Budget(label))
            if not isinstance(graph, RawGraph):
                raise ModelFileError(f"NIR file {label!r}: '/node' is a {graph.kind} node, "
                                     f"expected the top-level NIRGraph")
            return graph
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as e:
        # h5py raises these for damaged B-trees, bad chunks or truncated files.
        raise ModelFileError(f"NIR file {label!r} is damaged: {e}") from None


def check_global_heaps(path: Path) -> None:
    """Refuse a file whose HDF5 global heap (where variable-length strings live) is damaged.

    The HDF5 library loops forever on some damaged heap collections (an object header
    zeroed in the middle of a collection), so the collections are walked here first, using
    the layout of the HDF5 file format (version-1 collections, 8-byte lengths, as h5py
    writes them): ``"GCOL"``, version 1, 3 reserved bytes, the collection size, then objects
    ``(index: u16, refcount: u16, reserved: 4 bytes, size: u64, data padded to 8 bytes)``
    up to a free-space object (index 0) whose size is exactly the rest of the collection.
    """
    with path.open("rb") as fh:
        try:
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):  # an empty file cannot be mapped: h5py reports it
            return
        with data:
            start = data.find(b"GCOL")
            while start >= 0:
                if data[start + 4:start + 8] == b"\x01\x00\x00\x00":
                    problem = _heap_problem(data, start)
                    if problem:
                        raise ModelFileError(f"NIR file {str(path)!r} is damaged: the HDF5 "
                                             f"global heap at byte {start} {problem}")
                start = data.find(b"GCOL", start + 4)


def _heap_problem(data: Any, start: int) -> str | None:
    if start + 16 > len(data):
        return "is cut off"
    (size,) = struct.unpack_from("<Q", data, start + 8)
    end = start + size
    if size < 16 or end > len(data):
        return f"claims {size} bytes, beyond the end of the file"
    p = start + 16
    while p + 16 <= end:
        index = struct.unpack_from("<H", data, p)[0]
        (length,) = struct.unpack_from("<Q", data, p + 8)
        if index == 0:
            return None if length == end - p else "has a damaged free-space record"
        p += 16 + (length + 7) // 8 * 8
    return None if p <= end else "has an object that runs past its end"


def _read_group(group: Any, label: str, path: str, depth: int,
                budget: _Budget) -> RawNode | RawGraph:
    import h5py

    if depth > MAX_DEPTH:
        raise ModelFileError(f"NIR file {label!r}: graphs nested deeper than {MAX_DEPTH} "
                             f"levels at {path}")
    if "type" not in group:
        raise ModelFileError(f"NIR file {label!r}: node group {path} has no 'type' dataset")
    kind = _as_str(_dataset(group, "type", label, path, budget), label, f"{path}/type")
    where = f"{label}:{path}"
    metadata = _read_metadata(group, label, path, budget)
    if kind == "NIRGraph":
        nodes_group = group.get("nodes")
        if not isinstance(nodes_group, h5py.Group):
            raise ModelFileError(f"NIR file {label!r}: graph {path} has no 'nodes' group")
        nodes: dict[str, RawNode | RawGraph] = {}
        for name in nodes_group:
            child = nodes_group[name]
            if not isinstance(child, h5py.Group):
                raise ModelFileError(f"NIR file {label!r}: {path}/nodes/{name} is not a group")
            nodes[name] = _read_group(child, label, f"{path}/nodes/{name}", depth + 1, budget)
        edges = _read_edges(group, label, path, budget) if "edges" in group else []
        return RawGraph(nodes, edges, metadata, where)
    if kind not in NIR_NODES:
        raise FrontendError(f"NIR file {label!r}: node {path} has type {kind!r}, which NIR "
                            f"1.0.8 does not define; supported: {supported_kinds()}")
    fields: dict[str, Any] = {}
    for key in group:
        if key in ("type", "metadata"):
            continue
        item = group[key]
        if not isinstance(item, h5py.Dataset):
            raise ModelFileError(f"NIR file {label!r}: {path}/{key} should be a dataset")
        value = _dataset(group, key, label, path, budget)
        fields[key] = _as_str(value, label, f"{path}/{key}") if _is_text(value) else value
    return RawNode(kind, fields, metadata, where)


def _dataset(group: Any, key: str, label: str, path: str, budget: _Budget) -> Any:
    import h5py

    try:
        item = group[key]
        if not isinstance(item, h5py.Dataset):
            raise ModelFileError(f"NIR file {label!r}: {path}/{key} should be a dataset")
        budget.take(item, f"{path}/{key}")
        return item[()]
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as e:
        raise ModelFileError(f"NIR file {label!r}: dataset {path}/{key} cannot be read "
                             f"({e})") from None


def _is_text(value: Any) -> bool:
    return isinstance(value, bytes | str) or (
        isinstance(value, np.ndarray) and value.dtype.kind in "SUO" and value.ndim == 0)


def _as_str(value: Any, label: str, path: str) -> str:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bytes):
        try:
            return value.decode("utf8")
        except UnicodeDecodeError:
            raise ModelFileError(f"NIR file {label!r}: dataset {path} is not UTF-8 text") from None
    if isinstance(value, str):
        return value
    raise ModelFileError(f"NIR file {label!r}: dataset {path} should hold text, got {value!r}")


def _read_edges(group: Any, label: str, path: str, budget: _Budget) -> list[tuple[str, str]]:
    raw = np.asarray(_dataset(group, "edges", label, path, budget))
    if raw.size == 0:
        return []
    if raw.ndim != 2 or raw.shape[1] != 2:
        raise ModelFileError(f"NIR file {label!r}: dataset {path}/edges should be a list of "
                             f"(source, target) pairs, got shape {list(raw.shape)}")
    where = f"{path}/edges"
    return [(_as_str(a, label, where), _as_str(b, label, where)) for a, b in raw]


def _read_metadata(group: Any, label: str, path: str, budget: _Budget) -> dict[str, Any]:
    import h5py

    meta = group.get("metadata")
    if not isinstance(meta, h5py.Group):
        return {}
    out: dict[str, Any] = {}
    for key in meta:
        item = meta[key]
        if isinstance(item, h5py.Dataset):
            value = _dataset(meta, key, label, f"{path}/metadata", budget)
            out[key] = _as_str(value, label, f"{path}/metadata/{key}") if _is_text(value) else value
    return out


# -- nir objects --------------------------------------------------------------------------

def read_nir_object(graph: Any, *, label: str = "NIR graph") -> RawGraph:
    """Turn an in-memory ``nir.NIRGraph`` into a :class:`RawGraph`.

    Parameters may be numpy arrays, Python numbers or torch tensors (exporters pass those
    through); they are copied into numpy arrays.

    Raises:
        FrontendError: A node is not a NIR node (e.g. ``None`` left by an exporter that
            could not convert a layer) or has a type NIR 1.0.8 does not define.
    """
    return _object_graph(graph, label, "", 0)


def _object_graph(graph: Any, label: str, path: str, depth: int) -> RawGraph:
    if depth > MAX_DEPTH:
        raise FrontendError(f"{label}: graphs nested deeper than {MAX_DEPTH} levels at {path!r}")
    nodes_attr = getattr(graph, "nodes", None)
    edges_attr = getattr(graph, "edges", None)
    if not isinstance(nodes_attr, dict) or edges_attr is None:
        raise FrontendError(f"{label}: expected a nir.NIRGraph (with 'nodes' and 'edges'), "
                            f"got {type(graph).__name__}")
    nodes: dict[str, RawNode | RawGraph] = {}
    for name, node in nodes_attr.items():
        where = f"{label}:{path}{name}"
        if not isinstance(name, str):
            raise FrontendError(f"{label}: node name {name!r} is not a string")
        kind = _object_kind(node)
        if kind is None:
            raise FrontendError(
                f"{label}: node {path + name!r} is {type(node).__name__}, not a NIR node (an "
                f"exporter that could not convert a layer leaves such entries); supported: "
                f"{supported_kinds()}")
        if kind == "NIRGraph":
            nodes[name] = _object_graph(node, label, f"{path}{name}/", depth + 1)
        else:
            fields = _object_fields(node, kind, f"{label}: node {path + name!r}")
            nodes[name] = RawNode(kind, fields, _metadata(node), where)
    try:
        edges = [(str(a), str(b)) for a, b in edges_attr]
    except (TypeError, ValueError):
        raise FrontendError(f"{label}: edges of graph {path or '/'} must be (source, target) "
                            f"pairs") from None
    return RawGraph(nodes, edges, _metadata(graph), f"{label}:{path or '/'}")


def _object_kind(node: Any) -> str | None:
    import nir

    for cls in type(node).__mro__:
        if cls.__module__.startswith("nir") and cls.__name__ in NIR_NODES:
            return cls.__name__
    if isinstance(node, nir.NIRNode):  # a NIR class spikejit does not know
        raise FrontendError(f"NIR node type {type(node).__name__!r} is not supported; "
                            f"supported: {supported_kinds()}")
    return None


def _object_fields(node: Any, kind: str, where: str) -> dict[str, Any]:
    spec = NIR_NODES[kind]
    out: dict[str, Any] = {}
    if kind in ("Input", "Flatten"):
        out["shape" if kind == "Input" else "input_type"] = _port(node, "input_type", where)
    elif kind == "Output":
        out["shape"] = _port(node, "output_type", where)
    names = [*spec.params, *(a for a in spec.attrs if a not in out)]
    for name in names:
        value = getattr(node, name, None)
        out[name] = value if isinstance(value, str) else _to_numpy(value)
    return {k: v for k, v in out.items() if v is not None}


def _port(node: Any, attr: str, where: str) -> Any:
    """The shape in ``node.input_type["input"]`` / ``node.output_type["output"]``."""
    types = getattr(node, attr, None)
    if types is None:
        return None
    key = attr.split("_")[0]
    if not isinstance(types, dict):
        raise FrontendError(f"{where}: {attr} must be a dict {{{key!r}: shape}}, got "
                            f"{type(types).__name__}")
    return _to_numpy(types.get(key))


def _to_numpy(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        return np.array(value)
    except (TypeError, ValueError):
        return value


def _metadata(obj: Any) -> dict[str, Any]:
    meta = getattr(obj, "metadata", None)
    if not isinstance(meta, dict):
        return {}
    return {str(k): (v.decode("utf8", "replace") if isinstance(v, bytes) else v)
            for k, v in meta.items()}
