"""What an interpreter rule sees, and the table the rules register in.

Each rule computes one time step of one node for the whole batch::

    rule(ctx, x, state) -> (y, new_state)

``x`` is the summed operand at step ``t`` with shape ``[B, *in_shape]`` (for ``io.input``
the data fed at step ``t``); ``state`` maps the op's ``state_vars`` to their values after
step ``t-1`` (``[B, *shape]``), plus ``"buffer"`` for ``snn.delay``; ``y`` is the node's
output at step ``t`` and ``new_state`` the op's state variables after step ``t``. Rules are
pure: they never modify their arguments.

Rule families register into :data:`INTERPRETER_RULES` where they are defined
(:mod:`~spikejit.ir.interp_rules` for the NIR ops, :mod:`~spikejit.ir.interp_biophysical`,
:mod:`~spikejit.ir.interp_fused`, :mod:`~spikejit.ir.user_neurons`); importing
:mod:`spikejit.ir.interp_rules` loads every built-in family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from spikejit.ir.graph import Node
from spikejit.ir.rule_table import RuleTable

Array = np.ndarray
#: The summed operand of a step (``None`` only for a ``snn.delay`` whose delays are all >= 1).
Operand = Array | None
#: A node's state before the step: its state variables (and ``buffer`` for ``snn.delay``).
State = Mapping[str, Array]
#: A rule's result: the step's output and the op's state variables after the step.
Result = tuple[Array, dict[str, Array]]


@dataclass(frozen=True)
class StepContext:
    """Everything a rule needs besides the step's input and state.

    Attributes:
        node: The node being run (its ``type`` is set).
        p: Every parameter field of the op as an array in the computation dtype; omitted
            optional neuron parameters hold their ``PARAM_DEFAULTS`` value, an omitted
            conv bias is absent.
        h: The time step ``dt`` as a 0-d array of the computation dtype (NaN when the graph
            has no ``dt``; the verifier guarantees that no op then reads it).
        reset: The effective reset mode: the node's own, else the graph's.
        cuba_current: ``"post"`` or ``"pre"`` (graph attribute).
        method: ``"euler"`` or ``"exp"`` (graph attribute).
        dtype: The computation dtype.
    """

    node: Node
    p: Mapping[str, Array]
    h: Array
    reset: str
    cuba_current: str
    method: str
    dtype: np.dtype


Rule = Callable[[StepContext, Operand, State], Result]

#: Interpreter rules by op class (see :class:`~spikejit.ir.rule_table.RuleTable`).
INTERPRETER_RULES: RuleTable[Rule] = RuleTable("interpreter")
