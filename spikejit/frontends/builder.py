"""``spikejit.GraphBuilder``: build IR graphs from Python, one node and one edge at a time.

::

    b = spikejit.GraphBuilder("net", dt=1e-3)
    b.input("x", shape=(3,))
    b.add("fc", "nn.affine", weight=w, bias=bias)      # arrays become @fc.weight, @fc.bias
    b.add("lif", "snn.lif", tau=0.02, v_threshold=1.0, reset="subtract")
    b.add("rec", "nn.linear", weight=w_rec)
    b.chain("x", "fc", "lif", "rec")
    b.connect("rec", "lif", delay=1)                     # recurrent: read %rec[t-1]
    b.output("y", "lif")
    graph, params = b.build()                            # typed, verified

Every method returns the builder, so calls chain. Parameter fields of an op take arrays
(or numbers), which become parameters named ``{node}.{field}`` in the builder's dtype;
:class:`Param` gives another name (to share one array between nodes) or dtype. Other
fields are the op's static attributes, passed through. The networkx and SNNAX-style
frontends build through this class, so the same network gives the same IR text whichever
way it was written; its core (:class:`~spikejit.frontends.draft.GraphDraft`) is the one
``from_torch`` and ``from_nir`` build through too.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spikejit.errors import AttributeError_, OptionError, ParamError, SpikejitError, VerifyError
from spikejit.frontends.draft import GraphDraft
from spikejit.ir.graph import Graph, GraphAttrs, Use
from spikejit.ir.ops import OPS, Input, Op, Output
from spikejit.ir.shapes import infer_types
from spikejit.ir.types import DTYPES, NUMPY_DTYPE_NAMES, ParamRef, TensorType
from spikejit.ir.verify import verify


@dataclass(frozen=True)
class Param:
    """A parameter value with an explicit name and/or dtype.

    Attributes:
        value: The array (or number).
        name: The parameter's name (default ``{node}.{field}``); nodes that give the same
            name share one array, which must then be equal.
        dtype: An IR dtype (``f16``, ``bf16``, ``f32``, ``f64``); default the builder's.
    """

    value: Any
    name: str | None = None
    dtype: str | None = None


def resolve_op(op: str | type[Op], *, node_id: str | None = None) -> type[Op]:
    """The op class for a mnemonic (``"snn.lif"``), an unambiguous short name (``"lif"``)
    or an op class."""
    if isinstance(op, type) and issubclass(op, Op):
        if op.mnemonic not in OPS or OPS[op.mnemonic] is not op:
            raise AttributeError_(f"op class {op.__name__} is not registered",
                                  node_id=node_id, op_name=op.mnemonic or "?")
        return op
    if isinstance(op, str):
        if op in OPS:
            return OPS[op]
        matches = [cls for name, cls in OPS.items() if name.split(".", 1)[1] == op]
        if len(matches) == 1:
            return matches[0]
    known = ", ".join(sorted(OPS))
    raise AttributeError_(f"unknown op {op!r}; known ops: {known}", node_id=node_id,
                          op_name="?")


def as_array(value: Any, dtype: str, *, what: str) -> np.ndarray:
    """``value`` as a numpy array of an IR dtype; :class:`ParamError` if it is not numeric."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise ParamError(f"{what}: expected a number or numeric array, got "
                         f"{type(value).__name__} ({e})") from None
    if arr.dtype.kind not in "biuf" or arr.dtype == object:
        raise ParamError(f"{what}: expected a number or numeric array, got dtype {arr.dtype}")
    name = NUMPY_DTYPE_NAMES[dtype]
    if name == "bfloat16":
        import ml_dtypes

        return arr.astype(ml_dtypes.bfloat16)
    return arr.astype(name)


@dataclass
class _Edge:
    src: str
    dst: str
    delay: int | None
    delay_time: float | None


class GraphBuilder:
    """A small fluent API that produces ``(Graph, params)``.

    Args:
        name: The graph's name.
        dt: The time step in seconds. If omitted, the smallest recommended step of the
            biophysical neurons in the graph (``bio.hh``: 1e-5, ``bio.adex`` and
            ``bio.izhikevich``: 1e-4); otherwise unset, which is an error (from the
            verifier) when an op needs it.
        reset: Graph reset mode (``"value"`` or ``"subtract"``).
        cuba_current: ``"post"`` or ``"pre"``.
        method: ``"euler"`` or ``"exp"``.
        dtype: IR dtype of parameters and inputs unless a :class:`Param` or ``input()``
            says otherwise.
    """

    def __init__(self, name: str = "main", *, dt: float | None = None, reset: str = "value",
                 cuba_current: str = "post", method: str = "euler", dtype: str = "f32") -> None:
        if dtype not in DTYPES:
            raise OptionError(f"GraphBuilder: dtype must be one of {', '.join(DTYPES)}, "
                              f"got {dtype!r}")
        self.name = name
        self.dtype = dtype
        self._attrs = GraphAttrs(dt=dt, reset=reset, cuba_current=cuba_current, method=method)
        self._draft = GraphDraft()
        self._edges: list[_Edge] = []

    # -- nodes -----------------------------------------------------------------------------
    def input(self, node_id: str, shape: Sequence[int], *, dtype: str | None = None,
              spike: bool = False, loc: str = "") -> GraphBuilder:
        """Add an ``io.input`` node fed with data ``[T, B, *shape]``."""
        self._check_new(node_id, Input.mnemonic)
        try:
            ty = TensorType(tuple(shape), dtype or self.dtype, bool(spike))
        except (TypeError, SpikejitError) as e:
            raise AttributeError_(f"shape must be a sequence of integers >= 0 and dtype one "
                                  f"of {', '.join(DTYPES)} ({e})", node_id=node_id,
                                  op_name=Input.mnemonic) from None
        self._draft.add(node_id, Input(type=ty), loc=loc)
        return self

    def add(self, node_id: str, op: str | type[Op], *, inputs: Iterable[Any] = (),
            loc: str = "", **fields: Any) -> GraphBuilder:
        """Add a node.

        Args:
            node_id: Unique id (used in every message and in parameter names).
            op: A mnemonic (``"snn.lif"``), an unambiguous short name (``"lif"``) or an op
                class (including classes from ``spikejit.define_neuron``).
            inputs: Producers to connect now: ids, ``(id, delay_in_steps)`` pairs or
                :class:`~spikejit.ir.Use` values (same as calling :meth:`connect`).
            loc: Source location recorded on the node.
            **fields: The op's fields: arrays, numbers or :class:`Param` for parameters
                (``None`` omits an optional one), plain values for attributes.
        """
        cls = resolve_op(op, node_id=node_id)
        if cls is Input:
            raise AttributeError_("use GraphBuilder.input(id, shape) for graph inputs",
                                  node_id=node_id, op_name=cls.mnemonic)
        self._check_new(node_id, cls.mnemonic)
        self._draft.add(node_id, self._make_op(node_id, cls, fields), loc=loc)
        for item in inputs:
            if isinstance(item, Use):
                self.connect(item.node, node_id, delay=item.delay)
            elif isinstance(item, tuple) and len(item) == 2:
                self.connect(item[0], node_id, delay=item[1])
            else:
                self.connect(item, node_id)
        return self

    def output(self, node_id: str, *sources: str, loc: str = "") -> GraphBuilder:
        """Add an ``io.output`` node reading (the sum of) ``sources``."""
        self._check_new(node_id, Output.mnemonic)
        self._draft.add(node_id, Output(), loc=loc)
        for src in sources:
            self.connect(src, node_id)
        return self

    # -- edges -----------------------------------------------------------------------------
    def connect(self, src: str, dst: str, *, delay: int = 0,
                delay_time: float | None = None) -> GraphBuilder:
        """Feed ``src``'s output into ``dst`` (fan-in is summed, in connection order).

        Args:
            src: Producer id (may be added later).
            dst: Consumer id (may be added later).
            delay: Read ``src`` from ``delay`` steps earlier (zeros before the start).
            delay_time: The delay in seconds instead; it must be a whole number of steps
                of the graph's ``dt`` (checked by :meth:`build`).
        """
        for end in (src, dst):
            if not isinstance(end, str) or not end:
                raise VerifyError(f"connect: node ids must be non-empty strings, got {end!r}")
        if delay_time is not None:
            if delay:
                raise OptionError(f"connect %{src} -> %{dst}: give delay (steps) or "
                                  f"delay_time (seconds), not both")
            if isinstance(delay_time, bool) or not isinstance(delay_time, int | float) or not (
                    math.isfinite(delay_time) and delay_time >= 0):
                raise OptionError(f"connect %{src} -> %{dst}: delay_time must be a number of "
                                  f"seconds >= 0, got {delay_time!r}")
            self._edges.append(_Edge(src, dst, None, float(delay_time)))
            return self
        if isinstance(delay, bool) or not isinstance(delay, int | np.integer) or delay < 0:
            raise OptionError(f"connect %{src} -> %{dst}: delay must be an integer number of "
                              f"steps >= 0, got {delay!r}")
        self._edges.append(_Edge(src, dst, int(delay), None))
        return self

    def chain(self, *node_ids: str) -> GraphBuilder:
        """Connect each node to the next (delay 0)."""
        for a, b in itertools.pairwise(node_ids):
            self.connect(a, b)
        return self

    # -- result ----------------------------------------------------------------------------
    def build(self) -> tuple[Graph, dict[str, np.ndarray]]:
        """The typed, verified graph and its params ``{name: array}``.

        Raises:
            VerifyError: an edge names an unknown node, a delay in time is not a whole
                number of steps, or the graph breaks an IR invariant (the verifier's errors
                name the node).
        """
        graph_attrs = self._attrs
        if graph_attrs.dt is None:
            steps = [op.default_dt for op in self._draft.ops.values() if hasattr(op, "default_dt")]
            if steps:
                graph_attrs = dataclasses.replace(graph_attrs, dt=min(steps))
        inputs: dict[str, list[Use]] = {nid: [] for nid in self._draft.ops}
        for e in self._edges:
            for end in (e.src, e.dst):
                if end not in self._draft.ops:
                    raise VerifyError(f"edge %{e.src} -> %{e.dst}: %{end} is not a node of "
                                      f"graph @{self.name} (nodes: "
                                      f"{', '.join('%' + n for n in self._draft.ops)})")
            delay = e.delay if e.delay is not None else self._steps(e, graph_attrs.dt)
            inputs[e.dst].append(Use(e.src, delay))
        graph = self._draft.graph(self.name, graph_attrs, inputs=inputs)
        verify(graph, self._draft.params)
        return infer_types(graph), dict(self._draft.params)

    # -- helpers ---------------------------------------------------------------------------
    def _check_new(self, node_id: str, mnemonic: str) -> None:
        if not isinstance(node_id, str) or not node_id:
            raise VerifyError(f"node id {node_id!r} must be a non-empty string",
                              op_name=mnemonic)
        if node_id in self._draft.ops:
            raise VerifyError("node id is used by more than one node", node_id=node_id,
                              op_name=mnemonic)

    def _steps(self, e: _Edge, dt: float | None) -> int:
        assert e.delay_time is not None
        if dt is None:
            raise VerifyError(f"a delay of {e.delay_time!r} s needs the time step, but dt is "
                              f"not set", node_id=e.dst, op_name=self._draft.ops[e.dst].mnemonic)
        steps = e.delay_time / dt
        if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
            raise VerifyError(f"the delay of its operand %{e.src} ({e.delay_time!r} s) is "
                              f"{steps:.6g} steps of dt = {dt!r} s, not a whole number",
                              node_id=e.dst, op_name=self._draft.ops[e.dst].mnemonic)
        return round(steps)

    def _make_op(self, node_id: str, cls: type[Op], given: Mapping[str, Any]) -> Op:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = [k for k in given if k not in fields]
        if unknown:
            raise AttributeError_(f"unknown attribute(s) {', '.join(map(repr, unknown))}; "
                                  f"{cls.mnemonic} has {', '.join(fields) or 'no attributes'}",
                                  node_id=node_id, op_name=cls.mnemonic)
        missing = [k for k, f in fields.items() if f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING and given.get(k) is None]
        if missing:
            raise AttributeError_(f"missing required field(s) {', '.join(map(repr, missing))}",
                                  node_id=node_id, op_name=cls.mnemonic)
        kwargs: dict[str, Any] = {}
        for key, value in given.items():
            if fields[key].metadata.get("param") and value is not None:
                kwargs[key] = self._param(node_id, cls.mnemonic, key, value)
            else:
                kwargs[key] = value
        try:
            return cls(**kwargs)
        except AttributeError_ as e:
            raise AttributeError_(e.reason, node_id=node_id, op_name=cls.mnemonic) from None

    def _param(self, node_id: str, mnemonic: str, field: str, value: Any) -> ParamRef:
        spec = value if isinstance(value, Param) else Param(value)
        dtype = spec.dtype or self.dtype
        if dtype not in DTYPES:
            raise AttributeError_(f"parameter {field}: dtype must be one of "
                                  f"{', '.join(DTYPES)}, got {dtype!r}", node_id=node_id,
                                  op_name=mnemonic)
        name = spec.name or f"{node_id}.{field}"
        arr = as_array(spec.value, dtype, what=f"%{node_id} ({mnemonic}): parameter {field}")
        ref = self._draft.bind_param(name, arr, dtype)
        if ref is None:
            raise ParamError(f"%{node_id} ({mnemonic}): parameter {field} is named "
                             f"@{name}, which another node already set to a different "
                             f"array")
        return ref


__all__ = ["GraphBuilder", "Param", "as_array", "resolve_op"]
