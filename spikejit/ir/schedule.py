"""The schedule: an IR-level result saying which nodes run how, and in what order.

A :class:`Schedule` is a sequence of segments executed in order once per call:

* ``layerwise``: each node in the segment runs over the whole time axis before the next
  (synapses as one op over ``T*B`` rows, neurons as a scan of their elementwise update);
* ``stepwise``: the segment's nodes form one ``lax.scan`` over time, in the listed order.

Stepwise segments come in two orders: ``dfs`` (the DFS rule of ``nir-euler-v1``: same-step
edges inside the segment) and ``jacobi`` (every edge inside the segment read from the
previous step). A layerwise segment may name some of its nodes ``parallel``: neurons with
reset-free linear dynamics (or a linear synaptic current) whose recurrence over time runs
as a parallel-in-time associative scan instead of a sequential one (same values up to
float rounding; see ``spikejit.lowering.parallel_scan``). The scheduler pass
(``passes/schedule.py``) computes it; the printer prints it after the nodes, and the parser
reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from spikejit.errors import SpikejitError
from spikejit.ir.ops.base import Op

SEGMENT_KINDS: tuple[str, ...] = ("layerwise", "stepwise")


def linear_states(op: Op) -> tuple[str, ...]:
    """The state variables of ``op`` that a parallel-in-time scan can compute: the op's
    ``linear_states`` fact (reset-free linear dynamics ``s[t] = a*s[t-1] + b(x[t], earlier
    variables)``, in solving order; a fused ``layer.*`` op has its neuron's); ``()`` if
    none."""
    return op.linear_states
STEP_ORDERS: tuple[str, ...] = ("dfs", "jacobi")


@dataclass(frozen=True)
class Segment:
    """A run of nodes executed with one strategy."""

    kind: str
    nodes: tuple[str, ...]
    order: str = "dfs"
    #: Nodes of a layerwise segment whose time recurrence runs as an associative scan.
    parallel: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in SEGMENT_KINDS:
            raise SpikejitError(f"schedule segment kind {self.kind!r} is not one of "
                                f"{SEGMENT_KINDS}")
        if self.order not in STEP_ORDERS:
            raise SpikejitError(f"schedule order {self.order!r} is not one of {STEP_ORDERS}")
        if not isinstance(self.nodes, tuple):
            object.__setattr__(self, "nodes", tuple(self.nodes))
        if not isinstance(self.parallel, tuple):
            object.__setattr__(self, "parallel", tuple(self.parallel))
        if self.parallel:
            self._check_parallel()

    def _check_parallel(self) -> None:
        if self.kind != "layerwise":
            raise SpikejitError("only a layerwise schedule segment can name parallel nodes")
        members = set(self.nodes)
        outside = [n for n in self.parallel if n not in members]
        if outside:
            raise SpikejitError(f"schedule segment names {outside[0]!r} parallel, but it is "
                                f"not one of the segment's nodes")
        if len(set(self.parallel)) != len(self.parallel):
            raise SpikejitError("schedule segment names a parallel node twice")


@dataclass(frozen=True)
class Schedule:
    """The ordered segments covering every node of a graph exactly once."""

    segments: tuple[Segment, ...]

    def node_order(self) -> tuple[str, ...]:
        """All node ids in execution order."""
        return tuple(n for s in self.segments for n in s.nodes)
