"""Shared machinery of the optimisation passes: use substitution, fresh parameter names,
and :func:`finish`, which every pass calls to build its result graph.

The one invariant :func:`finish` enforces for every pass: the parameters a graph takes
from the user (:meth:`~spikejit.ir.graph.Graph.user_param_refs`) are the same before and
after, so ``model.params`` keeps working. Derived parameters that nothing reads any more
are dropped, and user parameters that nothing reads any more are recorded in
``Graph.retained``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from spikejit.errors import PassError
from spikejit.ir.derived import DerivedParam, make_derived
from spikejit.ir.graph import Graph, Node, Use
from spikejit.ir.ops import Input, Op, Output
from spikejit.ir.shapes import infer_types
from spikejit.ir.types import ParamRef

#: ``subst[node_id](delay)``: what a use ``Use(node_id, delay)`` of a removed node becomes.
Substitution = Mapping[str, Callable[[int], Sequence[Use]]]


def typed(graph: Graph) -> Graph:
    """The graph with every node typed (passes reason about shapes)."""
    if all(n.type is not None for n in graph.nodes):
        return graph
    return infer_types(graph)


def single_user(graph: Graph, node_id: str) -> tuple[str, Use] | None:
    """``(consumer, use)`` if exactly one use anywhere reads ``node_id``, else ``None``."""
    users = graph.users.get(node_id, ())
    return users[0] if len(users) == 1 else None


def is_io(op: Op) -> bool:
    """``io.input`` and ``io.output`` nodes are observable by id and never rewritten away."""
    return isinstance(op, Input | Output)


def shifted(uses: Iterable[Use], delay: int) -> tuple[Use, ...]:
    """The uses read ``delay`` more steps back."""
    return tuple(Use(u.node, u.delay + delay) for u in uses)


def forward_to(uses: Sequence[Use]) -> Callable[[int], Sequence[Use]]:
    """A substitution entry for a removed identity-like node that read ``uses``: a use of
    it ``delay`` steps back reads those uses ``delay`` more steps back."""
    return lambda delay: shifted(uses, delay)


def rename_to(node_id: str) -> Callable[[int], Sequence[Use]]:
    """A substitution entry for a removed node whose value another node now computes."""
    return lambda delay: (Use(node_id, delay),)


def substitute(nodes: Iterable[Node], subst: Substitution,
               keep: frozenset[str] = frozenset()) -> list[Node]:
    """Drop the nodes in ``subst`` (except those in ``keep``) and replace every use of them
    (chains resolved), keeping the order of operands, so sums are computed in the same
    order and results stay bit-identical where a bypassed node had one operand."""
    memo: dict[Use, tuple[Use, ...]] = {}

    def resolve(use: Use, active: frozenset[str]) -> tuple[Use, ...]:
        if use.node not in subst:
            return (use,)
        if use in memo:
            return memo[use]
        if use.node in active:
            raise PassError(f"cannot remove %{use.node}: it reads itself through removed "
                            f"nodes only")
        out: list[Use] = []
        for u in subst[use.node](use.delay):
            out.extend(resolve(u, active | {use.node}))
        memo[use] = tuple(out)
        return memo[use]

    result = []
    for n in nodes:
        if n.id in subst and n.id not in keep:
            continue
        if any(u.node in subst for u in n.inputs):
            inputs = tuple(v for u in n.inputs for v in resolve(u, frozenset()))
            n = n.replace(inputs=inputs)
        result.append(n)
    return result


class ParamNames:
    """Fresh names for new derived parameters, unique among all of a graph's names."""

    def __init__(self, graph: Graph) -> None:
        self.taken = {*graph.user_param_refs(), *graph.param_refs(),
                      *(d.name for d in graph.derived)}

    def fresh(self, base: str) -> str:
        """``base``, or ``base_1``, ``base_2``, ... whichever is free (then taken)."""
        name, i = base, 0
        while name in self.taken:
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name


class Derivations:
    """Collects the derived parameters a pass adds, reusing identical ones."""

    def __init__(self, graph: Graph) -> None:
        self.names = ParamNames(graph)
        self.entries: list[DerivedParam] = list(graph.derived)
        self._index = {d.name: d for d in graph.derived}
        self._same: dict[tuple[object, ...], ParamRef] = {
            (d.fn, d.args, d.attrs): d.ref for d in graph.derived}

    def add(self, base: str, fn: str, args: Sequence[ParamRef], **attrs: object) -> ParamRef:
        """A reference to ``fn(*args) {attrs}``, named after ``base`` when new."""
        probe = make_derived("?", fn, args, **attrs)
        key = (probe.fn, probe.args, probe.attrs)
        if key in self._same:
            return self._same[key]
        d = DerivedParam(self.names.fresh(base), probe.type, probe.fn, probe.args, probe.attrs)
        self.entries.append(d)
        self._index[d.name] = d
        self._same[key] = d.ref
        return d.ref

    def source(self, ref: ParamRef) -> ParamRef:
        """What a ``broadcast`` derivation broadcasts (``ref`` itself otherwise): folding
        passes look through the scalar broadcasts that ``canonicalize`` introduces."""
        d = self._index.get(ref.name)
        while d is not None and d.fn == "broadcast":
            ref = d.args[0]
            d = self._index.get(ref.name)
        return ref


def finish(before: Graph, nodes: Iterable[Node], derived: Iterable[DerivedParam] | None = None,
           *, retype: bool = False) -> Graph:
    """The result graph of a pass: unused derivations pruned, unused user parameters
    retained, types recomputed, schedule dropped.

    Args:
        before: The pass's input graph.
        nodes: The new nodes in print order.
        derived: All derived parameters the new nodes may read (default: ``before``'s).
        retype: Recompute every node type. Not needed by the passes here: each keeps the
            type of every node it keeps (a folded node computes a value of the same
            type, a bypassed identity passes its operand's type on), and the pipeline's
            verifier checks recorded types against inferred ones after every pass.

    Raises:
        PassError: The pass changed the user's parameter signature (an internal bug).
    """
    nodes = tuple(nodes)
    entries = tuple(before.derived if derived is None else derived)
    by_name = {d.name: d for d in entries}
    live: set[str] = set()
    stack = [ref.name for n in nodes for _, ref in n.op.params()]
    while stack:
        name = stack.pop()
        if name in live:
            continue
        live.add(name)
        if name in by_name:
            stack.extend(a.name for a in by_name[name].args)
    kept = tuple(d for d in entries if d.name in live)
    user = before.user_param_refs()
    retained = tuple(sorted((ref for name, ref in user.items() if name not in live),
                            key=lambda r: r.name))
    after = Graph(nodes, before.name, before.attrs, None, kept, retained)
    if retype:
        after = infer_types(after.replace(nodes=tuple(n.replace(type=None) for n in nodes)))
    if after.user_param_refs() != user:
        raise PassError(f"internal error: a pass changed the user parameters of graph "
                        f"@{before.name}")
    return after
