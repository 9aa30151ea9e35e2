"""Inlining nested NIR graphs: one flat list of nodes and edges with ``S/k`` ids.

Rules (``nir-euler-v1``, graph rules):

* inner node ``k`` of subgraph ``S`` gets the id ``S/k`` (``S/T/k`` deeper down);
* an edge into ``S`` goes to its single inner ``Input``, an edge out of ``S`` leaves its
  single inner ``Output``; those inner nodes, and NIR ``Identity`` nodes, are identities
  and disappear, every path through them becoming one edge (so fan-in stays a sum);
* nir 1.0.8 itself defines no ports, but nirtorch and Spyx name inner nodes ``S.k``: an
  edge endpoint that is not a node of its graph is therefore also looked up as
  ``S.k`` = node ``k`` of subgraph ``S``. That is also how a subgraph with several inner
  Inputs/Outputs can be addressed; without it such a subgraph is an error naming it.

Edges keep the order in which the graphs list them; a node's operands are summed in that
order (an identity contributes its own operands in their order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spikejit.errors import FrontendError
from spikejit.frontends.nir_reader import RawGraph, RawNode
from spikejit.frontends.nir_schema import IDENTITY_KINDS, unescape_name


@dataclass
class FlatNode:
    """A node of the inlined graph.

    Attributes:
        id: ``S/k`` path of the node.
        kind: NIR type name.
        fields: Stored fields (arrays, ints, strings).
        metadata: The node's metadata.
        where: File/dataset location for messages.
    """

    id: str
    kind: str
    fields: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    where: str = ""


@dataclass
class FlatGraph:
    """Nodes (identities removed) in discovery order, and edges ``(src, dst)`` in order."""

    nodes: dict[str, FlatNode]
    edges: list[tuple[str, str]]


def flatten(raw: RawGraph, label: str, *, escaped: bool = False) -> FlatGraph:
    """Inline every nested graph of ``raw`` and remove identity nodes.

    Args:
        raw: The top-level graph.
        label: Name of the source for messages (a file path or ``"NIR graph"``).
        escaped: Node names are percent-escaped (files spikejit wrote); decode them.

    Raises:
        FrontendError: An edge names a node that does not exist, addresses a subgraph whose
            inner Input/Output is not unique, two nodes get the same id, or identities
            form a cycle among themselves.
    """
    state = _State(label, escaped)
    state.expand(raw, "", top=True)
    return FlatGraph(
        {k: v for k, v in state.nodes.items() if k not in state.identities},
        state.remove_identities(),
    )


class _State:
    def __init__(self, label: str, escaped: bool) -> None:
        self.label = label
        self.escaped = escaped
        self.nodes: dict[str, FlatNode] = {}
        self.identities: set[str] = set()
        self.edges: list[tuple[str, str]] = []
        # Each graph's nodes by decoded name, built once per graph (not once per edge).
        self._by_name: dict[int, tuple[RawGraph, dict[str, RawNode | RawGraph]]] = {}

    def name(self, raw: str) -> str:
        return unescape_name(raw) if self.escaped else raw

    def expand(self, graph: RawGraph, prefix: str, *, top: bool) -> None:
        for raw_name, node in graph.nodes.items():
            name = self.name(raw_name)
            if not name:
                raise FrontendError(f"{self.label}: a node of graph {prefix or '/'} has an "
                                    f"empty name")
            nid = prefix + name
            if isinstance(node, RawGraph):
                self.expand(node, nid + "/", top=False)
                continue
            if nid in self.nodes:
                raise FrontendError(f"{self.label}: two nodes get the id {nid!r} (nested graphs "
                                    f"are inlined as 'S/k'); rename one of them")
            self.nodes[nid] = FlatNode(nid, node.kind, node.fields, node.metadata, node.where)
            if node.kind in IDENTITY_KINDS or (not top and node.kind in ("Input", "Output")):
                self.identities.add(nid)
        seen: set[tuple[str, str]] = set()
        for a, b in graph.edges:
            edge = (self.name(a), self.name(b))
            if edge in seen:
                # nir 1.0.8 rejects these too: a repeated edge is a listing mistake, and
                # summing the value twice would silently double a weight.
                raise FrontendError(f"{self.label}: graph {prefix or '/'} lists the edge "
                                    f"{edge[0]!r} -> {edge[1]!r} twice")
            seen.add(edge)
            self.edges.append((self.resolve(graph, prefix, edge[0], "src", edge),
                               self.resolve(graph, prefix, edge[1], "dst", edge)))

    def resolve(self, graph: RawGraph, prefix: str, name: str, role: str,
                edge: tuple[str, str]) -> str:
        found = self._lookup(graph, prefix, name, role, edge)
        if found:
            if len(found) > 1:
                raise FrontendError(f"{self.label}: edge {edge[0]!r} -> {edge[1]!r} in graph "
                                    f"{prefix or '/'}: {name!r} is ambiguous, it could mean "
                                    f"{', '.join(map(repr, found))}")
            return found[0]
        known = ", ".join(repr(self.name(k)) for k in graph.nodes)
        raise FrontendError(f"{self.label}: edge {edge[0]!r} -> {edge[1]!r} in graph "
                            f"{prefix or '/'} names {name!r}, which is not a node there "
                            f"(nodes: {known})")

    def _lookup(self, graph: RawGraph, prefix: str, name: str, role: str,
                edge: tuple[str, str]) -> list[str]:
        by_name = self.by_name(graph)
        if name in by_name:
            return [self._endpoint(by_name[name], prefix + name, role, edge)]
        # Port-style 'S.k': node k inside subgraph S (nirtorch / Spyx naming).
        found: list[str] = []
        for i, ch in enumerate(name):
            if ch != ".":
                continue
            sub = by_name.get(name[:i])
            if isinstance(sub, RawGraph):
                found += self._lookup(sub, prefix + name[:i] + "/", name[i + 1:], role, edge)
        return found

    def by_name(self, graph: RawGraph) -> dict[str, RawNode | RawGraph]:
        """The nodes of ``graph`` by decoded name (cached: graphs are not changed here)."""
        entry = self._by_name.get(id(graph))
        if entry is None or entry[0] is not graph:
            entry = (graph, {self.name(k): v for k, v in graph.nodes.items()})
            self._by_name[id(graph)] = entry
        return entry[1]

    def _endpoint(self, node: RawNode | RawGraph, nid: str, role: str,
                  edge: tuple[str, str]) -> str:
        if not isinstance(node, RawGraph):
            return nid
        want = "Output" if role == "src" else "Input"
        inner = [k for k, n in node.nodes.items() if isinstance(n, RawNode) and n.kind == want]
        if len(inner) != 1:
            what = "leaves" if role == "src" else "enters"
            names = ", ".join(repr(self.name(k)) for k in inner) or "none"
            raise FrontendError(
                f"{self.label}: edge {edge[0]!r} -> {edge[1]!r} {what} subgraph {nid!r}, which "
                f"has {len(inner)} inner {want} nodes ({names}); NIR edges can only address a "
                f"subgraph with exactly one (name the inner node as '{nid.rsplit('/', 1)[-1]}"
                f".<name>' instead)")
        return f"{nid}/{self.name(inner[0])}"

    def remove_identities(self) -> list[tuple[str, str]]:
        into: dict[str, list[str]] = {i: [] for i in self.identities}
        for a, b in self.edges:
            if b in self.identities:
                into[b].append(a)
        out: list[tuple[str, str]] = []
        for a, b in self.edges:
            if b in self.identities:
                continue
            for src in self._sources(a, into, ()):
                out.append((src, b))
        return out

    def _sources(self, nid: str, into: dict[str, list[str]], path: tuple[str, ...]) -> list[str]:
        if nid not in self.identities:
            return [nid]
        if nid in path:
            cycle = " -> ".join((*path[path.index(nid):], nid))
            raise FrontendError(f"{self.label}: identity nodes form a cycle ({cycle}); a cycle "
                                f"needs a node that computes something")
        found: list[str] = []
        for a in into[nid]:
            found += self._sources(a, into, (*path, nid))
        return found
