"""Reading NIR graphs into plain data, from ``.nir`` (HDF5) files (``nir.NIRGraph`` objects:
:mod:`.objects`).

Nothing here constructs ``nir`` node objects: their constructors assert shapes that real
exporter files violate (scalar parameters, ``input_shape=None``, missing pooling types), and
``assert`` vanishes under ``python -O``. Instead the file is walked with ``h5py`` into
:class:`RawGraph`/:class:`RawNode` values holding numpy arrays, ints and strings, and every
failure becomes a :class:`~spikejit.errors.ModelFileError` (the file cannot be read) or a
:class:`~spikejit.errors.FrontendError` (it holds something that is not NIR), naming the
file and the HDF5 path of the dataset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spikejit.errors import FrontendError, ModelFileError, SizeLimitError
from spikejit.frontends.nir.hdf5 import (
    FileFacts,
    check_dataset,
    check_file,
    check_global_heaps,
    check_links,
    check_storage,
    declared_bytes,
    link_kind,
    object_address,
)
from spikejit.frontends.nir.schema import NIR_NODES, supported_kinds
from spikejit.graph_limits import check_count, limit
from spikejit.limits import check_bytes

#: HDF5 groups, datasets and chunks read from one file, per node the node limit allows
#: (:mod:`spikejit.graph_limits`): a node is a group with a few datasets, a large weight a
#: few hundred chunks; this bounds the work of a small file of many tiny objects.
OBJECTS_PER_NODE = 16


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

    def take(self, size: int, path: str, transient: int = 0) -> None:
        """Add ``size`` bytes for the dataset at ``path``; ``transient`` more are needed
        only while it is read (a chunk being decompressed)."""
        self.total += size
        check_bytes(self.total + transient, f"NIR file {self.label!r}: dataset {path} and "
                                            f"those read before it")


# -- files --------------------------------------------------------------------------------

def read_nir_file(path: str | os.PathLike[str]) -> RawGraph:
    """Read a ``.nir`` file without ``nir``'s constructors or type check.

    Only what a NIR file holds is read: groups and numeric or text datasets of this file,
    each reached through one plain link. External storage, virtual datasets, soft and
    external links, objects linked twice, filters other than gzip/shuffle/fletcher32 and
    text or chunks whose stored size lies are refused before libhdf5 reads any data
    (see :mod:`spikejit.frontends.nir.hdf5`).

    Raises:
        ModelFileError: The file is missing, not HDF5, truncated, lacks the NIR layout, or
            holds one of the HDF5 features above.
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
    size = path.stat().st_size
    check_bytes(size, f"NIR file {label!r} (the file itself)")
    facts = FileFacts(path, size, check_global_heaps(path))
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ModelFileError(f"NIR file {label!r} is not a readable HDF5 file ({e})") from None
    try:
        with f:
            check_file(f, facts, f"NIR file {label!r}")
            walk = _FileWalk(label, facts)
            walk.seen[object_address(f)] = "/"
            node = walk.child(f, "", "node")
            if not isinstance(node, h5py.Group):
                raise ModelFileError(f"NIR file {label!r} has no '/node' group; is it a NIR file?")
            graph = walk.tree(node)
            if not isinstance(graph, RawGraph):
                raise ModelFileError(f"NIR file {label!r}: '/node' is a {graph.kind} node, "
                                     f"expected the top-level NIRGraph")
            return graph
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as e:
        # h5py raises these for damaged B-trees, bad chunks or truncated files.
        raise ModelFileError(f"NIR file {label!r} is damaged: {e}") from None


class _FileWalk:
    """One pass over a file's ``/node`` tree: every object is reached once, through hard
    links only, and datasets are checked before they are read."""

    def __init__(self, label: str, facts: FileFacts) -> None:
        self.label = label
        self.facts = facts
        self.budget = _Budget(label)
        self.seen: dict[int, str] = {}  # object header address -> the path it was reached by
        self.nodes = 1  # the top-level graph
        self.objects = 0
        self.max_objects = OBJECTS_PER_NODE * limit("nodes")

    def count(self, n: int, path: str) -> None:
        """Count HDF5 objects (links in the groups walked, chunks) as they are listed."""
        self.objects += n
        if self.objects > self.max_objects:
            at = path.removeprefix(f"NIR file {self.label!r}: ")  # as the checks name it
            raise SizeLimitError(
                f"NIR file {self.label!r}: more than {self.max_objects:,} HDF5 groups, "
                f"datasets and chunks (at {at}; {OBJECTS_PER_NODE} per node of the node "
                f"limit: raise it with the CLI's --max-nodes, the environment variable "
                f"SPIKEJIT_MAX_NODES or spikejit.graph_limits.set_limits)",
                nbytes=self.objects, limit=self.max_objects)

    def links(self, group: Any, path: str) -> list[str]:
        """The names in ``group`` (at ``path``), all hard links, counted."""
        return check_links(group, f"NIR file {self.label!r}: {path}", self.count)

    def child(self, group: Any, path: str, name: str) -> Any:
        """The object linked as ``name`` in ``group`` (None if absent), through a hard link,
        and not reached before under another name."""
        where = f"{path}/{name}"
        if not link_kind(group, name, f"NIR file {self.label!r}: {where}"):
            return None
        obj = group[name]
        addr = object_address(obj)
        first = self.seen.setdefault(addr, where)
        if first != where:
            # Real writers never share objects; shared subgraphs, level after level, would
            # make the walk exponential.
            raise ModelFileError(f"NIR file {self.label!r}: {where} is the same HDF5 object "
                                 f"as {first} (linked under two names); refused")
        return obj

    def tree(self, top: Any) -> RawNode | RawGraph:
        """The nodes under ``top``, depth-first in stored order, with a stack: the file sets
        the depth (up to the limit), not Python's recursion limit."""
        root, stack = self.node(top, "/node", 0)
        stack.reverse()
        while stack:
            nodes, name, group, path, depth = stack.pop()
            nodes[name], children = self.node(group, path, depth)
            stack.extend(reversed(children))
        return root

    def node(self, group: Any, path: str, depth: int) -> tuple[RawNode | RawGraph, list[Any]]:
        """One node group read; for a graph, its subgroups still to read, as
        ``(graph.nodes, name, group, path, depth)``."""
        import h5py

        names = self.links(group, path)
        if "type" not in names:
            raise ModelFileError(f"NIR file {self.label!r}: node group {path} has no 'type' "
                                 f"dataset")
        kind = _as_str(self.dataset(group, path, "type"), self.label, f"{path}/type")
        where = f"{self.label}:{path}"
        metadata = self.metadata(group, path)
        if kind == "NIRGraph":
            check_count("depth", depth, f"NIR file {self.label!r}: graph {path}")
            nodes_group = self.child(group, path, "nodes")
            if not isinstance(nodes_group, h5py.Group):
                raise ModelFileError(f"NIR file {self.label!r}: graph {path} has no 'nodes' "
                                     f"group")
            graph = RawGraph({}, [], metadata, where)
            children = []
            for name in self.links(nodes_group, f"{path}/nodes"):
                child = self.child(nodes_group, f"{path}/nodes", name)
                if not isinstance(child, h5py.Group):
                    raise ModelFileError(f"NIR file {self.label!r}: {path}/nodes/{name} is "
                                         f"not a group")
                self.nodes += 1
                check_count("nodes", self.nodes, f"NIR file {self.label!r}")
                children.append((graph.nodes, name, child, f"{path}/nodes/{name}", depth + 1))
            graph.edges = self.edges(group, path) if "edges" in names else []
            return graph, children
        if kind not in NIR_NODES:
            raise FrontendError(f"NIR file {self.label!r}: node {path} has type {kind!r}, "
                                f"which NIR 1.0.8 does not define; supported: "
                                f"{supported_kinds()}")
        fields: dict[str, Any] = {}
        for key in names:
            if key in ("type", "metadata"):
                continue
            value = self.dataset(group, path, key)
            fields[key] = _as_str(value, self.label, f"{path}/{key}") if _is_text(value) \
                else value
        return RawNode(kind, fields, metadata, where), []

    def dataset(self, group: Any, path: str, key: str) -> Any:
        """Check, then read, the dataset linked as ``key`` in ``group``."""
        import h5py

        where = f"{path}/{key}"
        try:
            item = self.child(group, path, key)
        except (OSError, KeyError, RuntimeError, ValueError, TypeError) as e:
            raise ModelFileError(f"NIR file {self.label!r}: {where} cannot be opened "
                                 f"({e})") from None
        if not isinstance(item, h5py.Dataset):
            raise ModelFileError(f"NIR file {self.label!r}: {where} should be a dataset")
        return self.read(item, where)

    def read(self, item: Any, where: str) -> Any:
        what = f"NIR file {self.label!r}: dataset {where}"
        try:
            check_dataset(item, what)  # first: nothing here opens another file
            size, chunk = declared_bytes(item)
            self.budget.take(size, where, transient=chunk)
            text = check_storage(item, what, self.facts, self.count)
            self.budget.take(text, where, transient=chunk)
            return item[()]
        except (OSError, KeyError, RuntimeError, ValueError, TypeError) as e:
            raise ModelFileError(f"{what} cannot be read ({e})") from None

    def edges(self, group: Any, path: str) -> list[tuple[str, str]]:
        raw = np.asarray(self.dataset(group, path, "edges"))
        if raw.size == 0:
            return []
        if raw.ndim != 2 or raw.shape[1] != 2:
            raise ModelFileError(f"NIR file {self.label!r}: dataset {path}/edges should be a "
                                 f"list of (source, target) pairs, got shape "
                                 f"{list(raw.shape)}")
        where = f"{path}/edges"
        return [(_as_str(a, self.label, where), _as_str(b, self.label, where))
                for a, b in raw]

    def metadata(self, group: Any, path: str) -> dict[str, Any]:
        import h5py

        meta = self.child(group, path, "metadata")
        if not isinstance(meta, h5py.Group):
            return {}
        where = f"{path}/metadata"
        out: dict[str, Any] = {}
        for key in self.links(meta, where):
            item = self.child(meta, where, key)
            if isinstance(item, h5py.Dataset):  # nested groups (nir writes dicts so) are skipped
                value = self.read(item, f"{where}/{key}")
                out[key] = _as_str(value, self.label, f"{where}/{key}") if _is_text(value) \
                    else value
        return out


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
