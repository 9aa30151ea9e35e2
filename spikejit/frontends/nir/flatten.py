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
order (an identity contributes its own operands in the order they first reach it).

Everything here runs in time linear in the nodes and edges, without recursion (a file
controls the depth): paths through identities are *counted*, not enumerated, so a chain
of Identity "diamonds" (``a -> b1, a -> b2, b1 -> c, b2 -> c``, repeated) is one edge
``a -> c`` taken ``2**n`` times. A source reaching a node by up to :data:`MAX_REPEAT`
paths becomes that many operands (the sum the paths mean); by more, one ``Scale`` node
``{dst}.paths.{src}`` multiplies it by the number of paths. Counts of nodes, edges and
nesting are checked against :mod:`spikejit.graph_limits` as they grow.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spikejit.errors import FrontendError
from spikejit.frontends.nir.reader import RawGraph, RawNode
from spikejit.frontends.nir.schema import IDENTITY_KINDS, unescape_name
from spikejit.graph_limits import check_count

#: Up to this many paths from one source to one node through identities are written as
#: repeated operands; more become one ``Scale`` node (the sum of k equal operands is k times
#: the operand).
MAX_REPEAT = 8
#: Path counts stop growing here: any count beyond float32's range is an error anyway, and
#: unbounded Python integers would make a long chain of diamonds quadratic.
_COUNT_CAP = 2**130
_FLOAT32_MAX = float(np.finfo(np.float32).max)


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
            inner Input/Output is not unique, two nodes get the same id, identities form
            a cycle among themselves, or more paths join two nodes than float32 can count.
        SizeLimitError: More nodes, edges or levels of nesting than
            :mod:`spikejit.graph_limits` allows.
    """
    state = _State(label, escaped)
    state.expand(raw)
    nodes = {k: v for k, v in state.nodes.items() if k not in state.identities}
    edges = _IdentityRemover(state, nodes).edges()
    return FlatGraph(nodes, edges)


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

    def expand(self, raw: RawGraph) -> None:
        """Collect nodes depth-first in stored order; a graph's edges after its nodes.

        An explicit stack of node iterators replaces recursion, visiting in the same order.
        """
        stack: list[tuple[RawGraph, str, bool, Iterator[tuple[str, RawNode | RawGraph]]]] = [
            (raw, "", True, iter(raw.nodes.items()))]
        where = self.label
        while stack:
            graph, prefix, top, items = stack[-1]
            entry = next(items, None)
            if entry is None:
                stack.pop()
                self._add_edges(graph, prefix)
                continue
            raw_name, node = entry
            name = self.name(raw_name)
            if not name:
                raise FrontendError(f"{self.label}: a node of graph {prefix or '/'} has an "
                                    f"empty name")
            nid = prefix + name
            check_count("nodes", len(self.nodes) + len(stack), where)
            if isinstance(node, RawGraph):
                check_count("depth", len(stack), f"{where}: graph {nid!r}")
                stack.append((node, nid + "/", False, iter(node.nodes.items())))
                continue
            if nid in self.nodes:
                raise FrontendError(f"{self.label}: two nodes get the id {nid!r} (nested graphs "
                                    f"are inlined as 'S/k'); rename one of them")
            self.nodes[nid] = FlatNode(nid, node.kind, node.fields, node.metadata, node.where)
            if node.kind in IDENTITY_KINDS or (not top and node.kind in ("Input", "Output")):
                self.identities.add(nid)

    def _add_edges(self, graph: RawGraph, prefix: str) -> None:
        check_count("edges", len(self.edges) + len(graph.edges), self.label)
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
        """Every node ``name`` can mean: a node of ``graph``, or port-style ``S.k`` (node
        ``k`` inside subgraph ``S``, nirtorch / Spyx naming), at any depth.

        A worklist, not recursion: the name's dots bound the depth, and a file controls it.
        """
        found: list[str] = []
        todo = [(graph, prefix, name)]
        while todo:
            g, pre, rest = todo.pop()
            by_name = self.by_name(g)
            if rest in by_name:
                found.append(self._endpoint(by_name[rest], pre + rest, role, edge))
                continue
            for i, ch in enumerate(rest):
                if ch != ".":
                    continue
                sub = by_name.get(rest[:i])
                if isinstance(sub, RawGraph):
                    todo.append((sub, pre + rest[:i] + "/", rest[i + 1:]))
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


class _IdentityRemover:
    """Replaces every path through identity nodes by edges from the computing nodes.

    ``sources[i]`` maps each computing node that reaches identity ``i`` to its number of
    paths, in the order the sources first reach ``i``; identities are visited in a
    post-order computed with an explicit stack, each once.
    """

    def __init__(self, state: _State, nodes: dict[str, FlatNode]) -> None:
        self.state = state
        self.nodes = nodes
        self.into: dict[str, list[str]] = {i: [] for i in state.identities}
        for a, b in state.edges:
            if b in state.identities:
                self.into[b].append(a)
        self.sources: dict[str, dict[str, int]] = {}
        self.produced = 0  # entries of all source maps and output edges: bounded work

    def edges(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for a, b in self.state.edges:
            if b in self.state.identities:
                continue
            if a not in self.state.identities:
                self._emit(out, a, b, 1)
                continue
            for src, count in self._sources_of(a).items():
                self._emit(out, src, b, count)
        return out

    def _emit(self, out: list[tuple[str, str]], src: str, dst: str, count: int) -> None:
        if count > MAX_REPEAT:
            scale = self._scale_node(src, dst, count)
            self._grow(2)
            out += [(src, scale), (scale, dst)]
            return
        self._grow(count)
        out.extend([(src, dst)] * count)

    def _grow(self, n: int) -> None:
        """Count work done (source-map entries combined, edges written) against the edge
        limit: identities can multiply edges, and the limit bounds the time that takes."""
        self.produced += n
        check_count("edges", self.produced,
                    f"{self.state.label}: paths through identity nodes")

    def _scale_node(self, src: str, dst: str, count: int) -> str:
        if count >= _COUNT_CAP or float(count) > _FLOAT32_MAX:
            many = "more than 2**130" if count >= _COUNT_CAP else f"{count:,}"
            raise FrontendError(f"{self.state.label}: node {src!r} reaches node {dst!r} along "
                                f"{many} paths through identity nodes; their sum is beyond "
                                f"float32's range")
        base = nid = f"{dst}.paths.{src}"
        k = 1
        while nid in self.nodes or nid in self.state.nodes:
            k += 1
            nid = f"{base}_{k}"
        where = f"{self.state.label}: {count:,} paths from {src!r} to {dst!r} through identities"
        self.nodes[nid] = FlatNode(nid, "Scale", {"scale": np.float32(count)}, {}, where)
        return nid

    def _sources_of(self, start: str) -> dict[str, int]:
        if start in self.sources:
            return self.sources[start]
        # Iterative post-order over the identities feeding `start`; `on_stack` finds cycles.
        on_stack: dict[str, int] = {start: 0}
        path = [start]
        stack = [iter(self.into[start])]
        while stack:
            a = next(stack[-1], None)
            if a is None:
                done = path.pop()
                del on_stack[done]
                stack.pop()
                self.sources[done] = self._combine(done)
                continue
            if a not in self.state.identities or a in self.sources:
                continue
            if a in on_stack:
                cycle = " -> ".join((*path[on_stack[a]:], a))
                raise FrontendError(f"{self.state.label}: identity nodes form a cycle ({cycle}); "
                                    f"a cycle needs a node that computes something")
            on_stack[a] = len(path)
            path.append(a)
            stack.append(iter(self.into[a]))
        return self.sources[start]

    def _combine(self, identity: str) -> dict[str, int]:
        found: dict[str, int] = {}
        for a in self.into[identity]:
            if a in self.state.identities:
                self._grow(len(self.sources[a]))
                for src, count in self.sources[a].items():
                    found[src] = min(found.get(src, 0) + count, _COUNT_CAP)
            else:
                self._grow(1)
                found[a] = found.get(a, 0) + 1
        return found
