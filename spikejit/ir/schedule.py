"""The schedule: an IR-level result saying which nodes run how, and in what order.

A :class:`Schedule` is a sequence of segments executed in order once per call:

* ``layerwise``: each node in the segment runs over the whole time axis before the next
  (synapses as one op over ``T*B`` rows, neurons as a scan of their elementwise update);
* ``stepwise``: the segment's nodes form one ``lax.scan`` over time, in the listed order.

Stepwise segments come in two orders: ``dfs`` (the DFS rule of ``nir-euler-v1``: same-step
edges inside the segment) and ``jacobi`` (every edge inside the segment read from the
previous step). The scheduler pass (``passes/schedule.py``) computes it; the printer prints
it after the nodes, and the parser reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from spikejit.errors import SpikejitError

SEGMENT_KINDS: tuple[str, ...] = ("layerwise", "stepwise")
STEP_ORDERS: tuple[str, ...] = ("dfs", "jacobi")


@dataclass(frozen=True)
class Segment:
    """A run of nodes executed with one strategy."""

    kind: str
    nodes: tuple[str, ...]
    order: str = "dfs"

    def __post_init__(self) -> None:
        if self.kind not in SEGMENT_KINDS:
            raise SpikejitError(f"schedule segment kind {self.kind!r} is not one of {SEGMENT_KINDS}")
        if self.order not in STEP_ORDERS:
            raise SpikejitError(f"schedule order {self.order!r} is not one of {STEP_ORDERS}")
        if not isinstance(self.nodes, tuple):
            object.__setattr__(self, "nodes", tuple(self.nodes))


@dataclass(frozen=True)
class Schedule:
    """The ordered segments covering every node of a graph exactly once."""

    segments: tuple[Segment, ...]

    def node_order(self) -> tuple[str, ...]:
        """All node ids in execution order."""
        return tuple(n for s in self.segments for n in s.nodes)
