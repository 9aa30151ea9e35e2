"""``merge-fanin``: parallel projections summed into one node become one matrix product.

A node sums its operands (NIR fan-in). When several of them are linear projections
``P_i`` (``nn.linear``/``nn.affine`` with a matrix weight ``[m, n_i]``) that nothing else
reads, the sum ``sum_i (W_i x_i + b_i)`` can be computed by one projection:

* **Same operand** (every ``x_i`` is the same: same uses, same delays):
  ``(sum_i W_i) x + sum_i b_i``, weight ``add(@W1, @W2)`` (chained for more), bias the
  sum of the biases. Always cheaper: one matrix product instead of ``k``, no sum of
  ``k`` outputs (the weights are added once per call, not per time step).
* **Different operands**: ``[W_1 ... W_k] concat(x_1, ..., x_k) + sum_i b_i``, one wider
  product with weight ``concat(@W1, ..., @Wk) {axis = 1}``. The IR sums operands, so the
  concatenation is a sum of zero-padded operands, one new ``nn.pad`` node per source.
  Cost per sample, in multiply-adds plus elements moved: ``sum_i m n_i + (k-1) m`` before,
  ``k K + m K`` after (``K = sum_i n_i``; each padded copy counted in full although XLA
  fuses them), so it merges only when ``(k-1) m > k K``: outputs much wider than inputs.
  It also merges only projections that the scheduler runs alike: none on a cycle, or all
  in the same recurrent component (merging an input projection into a recurrent one would
  move it from one product over all time steps into the per-step scan).

Legality: each merged projection is read only by this node (a projection it reads
twice, at the same delay, counts twice); read at the same step, or, for an ``nn.linear``
(zeros map to zeros), with a delay that moves onto its operands.
The merged node takes the first projection's id and its place among the operands; the
other projections are removed. Results differ by rounding only (sums regrouped).

Options: ``wide=false`` disables the different-operand case.

Pre: the graph verifies. Post: it verifies, takes the same user parameters, and computes
the same outputs (up to rounding); no node sums two projections of the same operand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from spikejit.ir.graph import Graph, Node, Use
from spikejit.ir.ops import Affine, Linear
from spikejit.ir.ops.pad import Pad
from spikejit.ir.types import ParamRef
from spikejit.passes.base import Pass
from spikejit.passes.rewrite import (
    Derivations,
    finish,
    rename_to,
    shifted,
    substitute,
    typed,
)
from spikejit.passes.schedule import cyclic_components


def _projection(graph: Graph, node: Node, use: Use) -> Node | None:
    """The producer of ``use`` if it is a mergeable projection read only by ``node`` (maybe
    several times: each use counts as one term of the sum)."""
    p = graph.node(use.node)
    op = p.op
    if not isinstance(op, Linear | Affine) or op.weight.type.rank != 2 or p.id == node.id:
        return None
    users = graph.users[p.id]
    # All uses by this node and at one delay: a merge then rewrites every use of ``p``.
    if any(c != node.id for c, _ in users) or len({u.delay for _, u in users}) != 1:
        return None
    if use.delay and not isinstance(op, Linear):
        return None  # an affine map does not send the zeros before the start to zeros
    return p


def _width(item: tuple[int, Node, tuple[Use, ...]]) -> tuple[int, int]:
    """``(m, n)`` of a projection's weight."""
    w = item[1].op.weight  # type: ignore[attr-defined]
    return w.type.shape[0], w.type.shape[1]


def _may_pay(items: Sequence[tuple[int, Node, tuple[Use, ...]]]) -> bool:
    """Whether some subset of these same-width projections passes the cost test
    ``(k-1) m > k K`` (the ``k`` narrowest ones do if any subset of size ``k`` does)."""
    if len(items) < 2:
        return False
    m = _width(items[0])[0]
    widths = sorted(_width(item)[1] for item in items)
    return any((k - 1) * m > k * sum(widths[:k]) for k in range(2, len(widths) + 1))


def _bias(der: Derivations, base: str, projections: Sequence[Node]) -> ParamRef | None:
    total: ParamRef | None = None
    for p in projections:
        if isinstance(p.op, Affine):
            b = p.op.bias
            total = b if total is None else der.add(f"{base}.bias.merged", "add", (total, b))
    return total


def _merged_op(weight: ParamRef, bias: ParamRef | None) -> Linear | Affine:
    return Linear(weight=weight) if bias is None else Affine(weight=weight, bias=bias)


class _Round:
    """One sweep over the nodes; merges never overlap within a sweep."""

    def __init__(self, graph: Graph, wide: bool) -> None:
        self.graph, self.wide = graph, wide
        self.der = Derivations(graph)
        self.claimed: set[str] = set()
        self.replaced: dict[str, Node] = {}
        self.before: dict[str, list[Node]] = {}  # new pad nodes, printed before a node
        self.subst: dict[str, Callable[[int], Sequence[Use]]] = {}
        self._cycles: dict[str, int] | None = None
        self.ids = {n.id for n in graph.nodes}

    def cycle(self, node_id: str) -> int | None:
        """The recurrent component ``node_id`` lies on (``None``: on no cycle). Computed
        on first use: only the different-operand case needs it, and it is the costly
        part of the pass (a networkx SCC decomposition)."""
        if self._cycles is None:
            self._cycles = {nid: i for i, c in enumerate(cyclic_components(self.graph))
                            for nid in c}
        return self._cycles.get(node_id)

    def fresh_id(self, base: str) -> str:
        nid, i = base, 0
        while nid in self.ids:
            i += 1
            nid = f"{base}_{i}"
        self.ids.add(nid)
        return nid

    def visit(self, n: Node) -> None:
        if n.id in self.claimed:
            return
        found: list[tuple[int, Node, tuple[Use, ...]]] = []
        for i, u in enumerate(n.inputs):
            p = _projection(self.graph, n, u)
            if p is not None and p.id not in self.claimed:
                found.append((i, p, shifted(p.inputs, u.delay)))
        groups: dict[tuple[object, ...], list[tuple[int, Node, tuple[Use, ...]]]] = {}
        for item in found:
            p = item[1]
            w = p.op.weight  # type: ignore[attr-defined]
            groups.setdefault((w.type.shape[0], w.type.dtype), []).append(item)
        merged: dict[int, Use | None] = {}
        for group in groups.values():
            merged |= self.merge_same(group)
            if not self.wide:
                continue
            # Only projections the scheduler runs alike are merged (see the docstring).
            rest = [item for item in group if item[1].id not in self.claimed]
            alike: dict[int | None, list[tuple[int, Node, tuple[Use, ...]]]] = {}
            for item in rest if _may_pay(rest) else ():
                alike.setdefault(self.cycle(item[1].id), []).append(item)
            for items in alike.values():
                merged |= self.merge_wide(items)
        if merged:
            inputs = [merged.get(i, u) for i, u in enumerate(n.inputs)]
            node = self.replaced.get(n.id, n)
            self.replaced[n.id] = node.replace(inputs=tuple(u for u in inputs if u is not None))
            self.claimed.add(n.id)

    def merge_same(self, group: list[tuple[int, Node, tuple[Use, ...]]]) -> dict[int, Use | None]:
        by_source: dict[tuple[Use, ...], list[tuple[int, Node, tuple[Use, ...]]]] = {}
        for item in group:
            by_source.setdefault(item[2], []).append(item)
        out: dict[int, Use | None] = {}
        for items in by_source.values():
            if len(items) < 2:
                continue
            first = items[0][1]
            weight = first.op.weight  # type: ignore[attr-defined]
            for _, p, _ in items[1:]:
                weight = self.der.add(f"{first.id}.weight.merged", "add",
                                      (weight, p.op.weight))  # type: ignore[attr-defined]
            op = _merged_op(weight, _bias(self.der, first.id, [p for _, p, _ in items]))
            self.replaced[first.id] = first.replace(op=op, inputs=items[0][2])
            out[items[0][0]] = Use(first.id)
            for i, _, _ in items[1:]:
                out[i] = None
            self.remove(items)
        return out

    def remove(self, items: list[tuple[int, Node, tuple[Use, ...]]]) -> None:
        """Claim the merged projections and drop all but the first (which now computes
        the merged product). None is read elsewhere: their only reader was rewritten."""
        first = items[0][1].id
        for _, p, _ in items:
            self.claimed.add(p.id)
            if p.id != first:
                self.subst[p.id] = rename_to(first)

    def merge_wide(self, items: list[tuple[int, Node, tuple[Use, ...]]]) -> dict[int, Use | None]:
        if len(items) < 2:
            return {}
        widths = [p.op.weight.type.shape[1] for _, p, _ in items]  # type: ignore[attr-defined]
        m, k, total = items[0][1].op.weight.type.shape[0], len(items), sum(widths)  # type: ignore[attr-defined]
        if not (k - 1) * m > k * total:
            return {}
        first = items[0][1]
        weight = self.der.add(f"{first.id}.weight.merged", "concat",
                              [p.op.weight for _, p, _ in items], axis=1)  # type: ignore[attr-defined]
        pads, offset = [], 0
        for (_, p, src), n_i in zip(items, widths, strict=True):
            pad = Node(self.fresh_id(f"{p.id}.pad"),
                       Pad(before=offset, after=total - offset - n_i), src, loc=p.loc)
            pads.append(pad)
            offset += n_i
        op = _merged_op(weight, _bias(self.der, first.id, [p for _, p, _ in items]))
        self.replaced[first.id] = first.replace(op=op, inputs=tuple(Use(q.id) for q in pads))
        self.before[first.id] = pads
        out: dict[int, Use | None] = {items[0][0]: Use(first.id)}
        for i, _, _ in items[1:]:
            out[i] = None
        self.remove(items)
        return out

    def result(self) -> Graph | None:
        if not self.replaced:
            return None
        nodes: list[Node] = []
        for n in self.graph.nodes:
            nodes.extend(self.before.get(n.id, ()))
            nodes.append(self.replaced.get(n.id, n))
        # New pad nodes and merged projections have new types: infer them all again.
        return finish(self.graph, substitute(nodes, self.subst), self.der.entries,
                      retype=bool(self.before))


def merge_fanin(graph: Graph, *, wide: bool = True) -> Graph:
    """Merge projections summed into one node (see the module docstring).

    Args:
        graph: The graph.
        wide: Also merge projections of different operands when the cost model says the
            wider product is cheaper.
    """
    graph = typed(graph)
    while True:
        r = _Round(graph, wide)
        for n in graph.nodes:
            r.visit(n)
        result = r.result()
        if result is None:
            return graph
        graph = result


MERGE_FANIN = Pass("merge-fanin", merge_fanin,
                   "merge projections summed into one node into one matrix product (same "
                   "operand: weights added; different operands: concatenated when cheaper)")
