"""``shape-inference``: give every node its output type.

Pre: the graph is structurally valid (operands exist, no same-step cycle).
Post: every ``Node.type`` is set and consistent with its operands and parameters.
"""

from __future__ import annotations

from spikejit.ir.graph import Graph
from spikejit.ir.shapes import infer_types
from spikejit.passes.base import Pass


def shape_inference(graph: Graph) -> Graph:
    """Fill in every node's output type (see :func:`spikejit.ir.infer_types`)."""
    return infer_types(graph)


SHAPE_INFERENCE = Pass("shape-inference", shape_inference,
                       "infer every node's per-step output type from the inputs")
