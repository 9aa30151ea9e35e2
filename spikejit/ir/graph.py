"""The graph: immutable nodes with delayed uses, semantic attributes and an optional schedule.

A :class:`Graph` is a frozen, hashable value, so it can be a static argument of
``jax.jit`` and a cache key. It holds no arrays: parameters are :class:`ParamRef` names
resolved against a separate params dict (``{name: array}``), which is a pytree that
``jax.grad`` and Optax take as is.

Edges are stored on the consumer: ``Node.inputs`` is a tuple of :class:`Use` (producer id
and a delay in steps). Several inputs are summed (NIR fan-in). A use with ``delay=k > 0``
reads the producer's output from step ``t-k`` (zeros before the start).

Passes that fold parameters add :class:`~spikejit.ir.derived.DerivedParam` entries
(``Graph.derived``), and record user parameters that nothing reads any more in
``Graph.retained``, so the parameters a graph takes (:meth:`Graph.user_param_refs`) never
change under optimisation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from spikejit.errors import IRError, SpikejitError, VerifyError
from spikejit.ir.derived import DerivedParam
from spikejit.ir.ops import RESET_MODES, Input, Op, Output
from spikejit.ir.schedule import Schedule
from spikejit.ir.types import ParamRef, TensorType

if TYPE_CHECKING:
    import networkx as nx

#: Graph-level resets: a node may also say ``"none"`` (:data:`~spikejit.ir.ops.RESET_MODES`).
RESET_OPTIONS: tuple[str, ...] = tuple(m for m in RESET_MODES if m != "none")
CUBA_CURRENT_OPTIONS: tuple[str, ...] = ("post", "pre")
METHOD_OPTIONS: tuple[str, ...] = ("euler", "exp")
SEMANTICS = "nir-euler-v1"


@dataclass(frozen=True)
class GraphAttrs:
    """Every graph-level option that changes what the graph computes.

    Attributes:
        dt: The time step ``h`` in seconds (``None`` only for graphs without dynamics).
        reset: ``"value"`` (``v = v_reset`` on a spike, NIR's meaning) or ``"subtract"``
            (``v -= v_threshold``); a neuron's own ``reset`` attribute overrides it.
        cuba_current: ``"post"`` (the membrane sees the updated current, default) or
            ``"pre"`` (strict simultaneous Euler: the old current).
        method: ``"euler"`` (explicit Euler, default) or ``"exp"`` (exact exponential
            integration of the linear leak for constant input over a step).
    """

    dt: float | None = None
    reset: str = "value"
    cuba_current: str = "post"
    method: str = "euler"

    def __post_init__(self) -> None:
        if self.dt is not None:
            if isinstance(self.dt, bool) or not isinstance(self.dt, int | float):
                raise SpikejitError(f"graph attribute dt must be a number, got {self.dt!r}")
            dt = float(self.dt)
            if not (dt > 0 and dt < float("inf")):
                raise SpikejitError(f"graph attribute dt must be finite and > 0, got {self.dt!r}")
            object.__setattr__(self, "dt", dt)
        for name, allowed in (("reset", RESET_OPTIONS), ("cuba_current", CUBA_CURRENT_OPTIONS),
                              ("method", METHOD_OPTIONS)):
            value = getattr(self, name)
            if value not in allowed:
                raise SpikejitError(
                    f"graph attribute {name} must be one of {', '.join(map(repr, allowed))}, "
                    f"got {value!r}"
                )


@dataclass(frozen=True)
class Use:
    """One operand of a node: the producer's id and how many steps back it is read."""

    node: str
    delay: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.node, str) or not self.node:
            raise SpikejitError(f"use: producer id {self.node!r} must be a non-empty string")
        if isinstance(self.delay, bool) or not isinstance(self.delay, int) or self.delay < 0:
            raise SpikejitError(f"use of %{self.node}: delay {self.delay!r} must be an "
                                "integer >= 0")


@dataclass(frozen=True)
class Node:
    """One op application.

    Attributes:
        id: Unique, stable name used in every message (``lif1``, ``S/lif``).
        op: The op with its attributes and parameter references.
        inputs: Operands, summed; empty only for ``io.input``.
        type: The output type per step and sample; ``None`` until shape inference.
        loc: Where the node came from (``nir:S/lif1``, ``torch:layers.0``); not part of
            equality, printed only with ``debug_info=True``.
    """

    id: str
    op: Op
    inputs: tuple[Use, ...] = ()
    type: TensorType | None = None
    loc: str = field(default="", compare=False, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise SpikejitError(f"node id {self.id!r} must be a non-empty string")
        if not isinstance(self.op, Op):
            raise SpikejitError(f"node %{self.id}: op must be an Op instance, got {self.op!r}")
        if not isinstance(self.inputs, tuple):
            object.__setattr__(self, "inputs", tuple(self.inputs))
        for u in self.inputs:
            if not isinstance(u, Use):
                raise SpikejitError(f"node %{self.id}: inputs must be Use values, got {u!r}")
        if self.type is not None and not isinstance(self.type, TensorType):
            raise SpikejitError(f"node %{self.id}: type must be a TensorType or None")

    def replace(self, **changes: Any) -> Node:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Graph:
    """An immutable SNN graph. Node order is the print order (not necessarily run order).

    Attributes:
        nodes: The nodes, in print order.
        name: The graph's name.
        attrs: Graph-level options that change what the graph computes.
        schedule: How to execute it (set by the ``schedule`` pass), or ``None``.
        derived: Parameters computed from other parameters (set by folding passes), in
            dependency order: each reads user parameters or earlier entries only.
        retained: User parameters that no node and no derivation reads any more (a pass
            removed their users); they stay part of the graph's parameter signature, so
            the params pytree stays what the user gave.
    """

    nodes: tuple[Node, ...]
    name: str = "main"
    attrs: GraphAttrs = GraphAttrs()
    schedule: Schedule | None = None
    derived: tuple[DerivedParam, ...] = ()
    retained: tuple[ParamRef, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.nodes, tuple):
            object.__setattr__(self, "nodes", tuple(self.nodes))
        for n in self.nodes:
            if not isinstance(n, Node):
                raise SpikejitError(f"graph @{self.name}: nodes must be Node values, got {n!r}")
        if not isinstance(self.name, str) or not self.name:
            raise SpikejitError(f"graph name {self.name!r} must be a non-empty string")
        for field_name, cls in (("derived", DerivedParam), ("retained", ParamRef)):
            value = getattr(self, field_name)
            if not isinstance(value, tuple):
                object.__setattr__(self, field_name, value := tuple(value))
            for item in value:
                if not isinstance(item, cls):
                    raise SpikejitError(f"graph @{self.name}: {field_name} must hold "
                                        f"{cls.__name__} values, got {item!r}")

    def __hash__(self) -> int:
        # Cached: graphs are jit static arguments and hashed on every call.
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.nodes, self.name, self.attrs, self.schedule, self.derived,
                      self.retained))
            object.__setattr__(self, "_hash", h)
        return h

    # -- lookup ----------------------------------------------------------------------
    @cached_property
    def _index(self) -> dict[str, Node]:
        index: dict[str, Node] = {}
        for n in self.nodes:
            if n.id in index:
                raise VerifyError("duplicate node id", node_id=n.id, op_name=n.op.mnemonic,
                                  loc=n.loc)
            index[n.id] = n
        return index

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._index

    def node(self, node_id: str) -> Node:
        """The node with this id; :class:`VerifyError` if there is none."""
        try:
            return self._index[node_id]
        except KeyError:
            raise VerifyError(f"no node %{node_id} in graph @{self.name}") from None

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def inputs(self) -> tuple[str, ...]:
        """Ids of the ``io.input`` nodes, in node order."""
        return tuple(n.id for n in self.nodes if isinstance(n.op, Input))

    @property
    def outputs(self) -> tuple[str, ...]:
        """Ids of the ``io.output`` nodes, in node order."""
        return tuple(n.id for n in self.nodes if isinstance(n.op, Output))

    @cached_property
    def users(self) -> dict[str, tuple[tuple[str, Use], ...]]:
        """For every node id, the ``(consumer id, use)`` pairs that read it."""
        out: dict[str, list[tuple[str, Use]]] = {n.id: [] for n in self.nodes}
        for n in self.nodes:
            for u in n.inputs:
                out.setdefault(u.node, []).append((n.id, u))
        return {k: tuple(v) for k, v in out.items()}

    def max_use_delay(self, node_id: str) -> int:
        """The longest delay with which any consumer reads this node (0 if none)."""
        return max((u.delay for _, u in self.users.get(node_id, ())), default=0)

    def param_refs(self) -> dict[str, ParamRef]:
        """Every parameter reference of the nodes by name, derived ones included (first
        occurrence wins; the verifier checks that repeated names agree)."""
        cached = self.__dict__.get("_param_refs")
        if cached is None:
            # Cached (the graph is immutable): passes and the verifier ask often.
            cached = {}
            for n in self.nodes:
                for _, ref in n.op.params():
                    cached.setdefault(ref.name, ref)
            object.__setattr__(self, "_param_refs", cached)
        return dict(cached)

    @cached_property
    def derived_index(self) -> dict[str, DerivedParam]:
        """The derived parameters by name."""
        return {d.name: d for d in self.derived}

    def user_param_refs(self) -> dict[str, ParamRef]:
        """The parameters the graph takes from the user: every reference of the nodes that
        is not a derived parameter, then the derivations' arguments that are not derived,
        then the retained ones (first occurrence wins)."""
        cached = self.__dict__.get("_user_param_refs")
        if cached is None:
            derived = self.derived_index
            cached = {}
            refs = [*self.param_refs().values(), *(a for d in self.derived for a in d.args),
                    *self.retained]
            for ref in refs:
                if ref.name not in derived:
                    cached.setdefault(ref.name, ref)
            object.__setattr__(self, "_user_param_refs", cached)
        return dict(cached)

    # -- rebuilding ------------------------------------------------------------------
    def replace(self, **changes: Any) -> Graph:
        """A copy with some fields changed (e.g. ``nodes=...``, ``schedule=None``)."""
        return dataclasses.replace(self, **changes)

    def with_nodes(self, nodes: Iterable[Node]) -> Graph:
        """The same graph with another node list; any schedule is dropped."""
        return dataclasses.replace(self, nodes=tuple(nodes), schedule=None)

    def to_networkx(self) -> nx.MultiDiGraph[str]:
        """A ``networkx.MultiDiGraph``: one node per IR node (attribute ``node``), one edge
        per use from producer to consumer (attributes ``delay`` and ``index``)."""
        import networkx as nx

        g: nx.MultiDiGraph[str] = nx.MultiDiGraph(name=self.name)
        for n in self.nodes:
            g.add_node(n.id, node=n)
        for n in self.nodes:
            for i, u in enumerate(n.inputs):
                g.add_edge(u.node, n.id, delay=u.delay, index=i)
        return g

    # -- diagnostics -----------------------------------------------------------------
    def error(self, cls: type[IRError], node_id: str, reason: str) -> IRError:
        """An error of class ``cls`` about ``node_id``, with the printed IR around it."""
        node = self._index.get(node_id) if node_id in self else None
        if node is None:
            return cls(reason, node_id=node_id, op_name="?", loc="")
        from spikejit.ir.printer import excerpt

        return cls(reason, node_id=node.id, op_name=node.op.mnemonic, loc=node.loc,
                   context=excerpt(self, node.id, reason))
