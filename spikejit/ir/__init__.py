"""The spikejit IR: typed, immutable graphs of SNN ops, their text form, verifier and oracle.

This subpackage imports nothing from the rest of spikejit (and no JAX): the reference
interpreter here is the oracle the JAX lowering is checked against.
"""

from spikejit.ir import ops
from spikejit.ir.graph import SEMANTICS, Graph, GraphAttrs, Node, Use
from spikejit.ir.interpreter import interpret
from spikejit.ir.parser import parse
from spikejit.ir.printer import print_graph
from spikejit.ir.schedule import Schedule, Segment
from spikejit.ir.shapes import infer_types
from spikejit.ir.types import ParamRef, TensorType
from spikejit.ir.verify import verify, verify_params

__all__ = [
    "SEMANTICS",
    "Graph",
    "GraphAttrs",
    "Node",
    "ParamRef",
    "Schedule",
    "Segment",
    "TensorType",
    "Use",
    "infer_types",
    "interpret",
    "ops",
    "parse",
    "print_graph",
    "verify",
    "verify_params",
]
