"""The op registry: every concrete op, keyed by its printed mnemonic.

Each family module (``io``, ``synapses``, ``structural``, ``neurons``, ``biophysical``,
``pad``) defines its op classes and lists them in its ``__all__``; :data:`OPS` collects
them in that order, then the fused ``layer.*`` ops generated from the ``fusion`` facts.
:func:`register_op` refuses a class that does not state every fact of
:data:`~spikejit.ir.ops.base.OP_FACTS`, so no op can silently miss a pass or a table:
those read the facts, not hand-kept lists.

Adding an op: define the class in its family module (and its ``__all__``), then its
interpreter rule and its lowering rule (``docs/adding-an-op.md``).
"""

from __future__ import annotations

from types import ModuleType

from spikejit.ir.ops import biophysical, io, neurons, pad, structural, synapses
from spikejit.ir.ops.base import OP_FACTS, Op, OpError, missing_facts
from spikejit.ir.ops.biophysical import *  # noqa: F403
from spikejit.ir.ops.fused import FUSED_OPS, FusedLayer, generate_fused_ops
from spikejit.ir.ops.io import *  # noqa: F403
from spikejit.ir.ops.neurons import *  # noqa: F403
from spikejit.ir.ops.neurons import PARAM_DEFAULTS, RESET_MODES
from spikejit.ir.ops.pad import *  # noqa: F403
from spikejit.ir.ops.structural import *  # noqa: F403
from spikejit.ir.ops.synapses import *  # noqa: F403

#: The family modules, in the order their ops are listed.
FAMILIES: tuple[ModuleType, ...] = (io, synapses, structural, neurons, biophysical, pad)

OPS: dict[str, type[Op]] = {}


def register_op(cls: type[Op]) -> type[Op]:
    """Add an op class to the registry (families at import, user-defined neurons later).

    Raises:
        ValueError: The class lacks a ``dialect.name`` mnemonic or a fact of
            :data:`~spikejit.ir.ops.base.OP_FACTS`, or its mnemonic is taken by another
            class.
    """
    problems = missing_facts(cls)
    if problems:
        raise ValueError(f"op class {cls.__name__} does not state: {'; '.join(problems)}")
    other = OPS.get(cls.mnemonic)
    if other is not None and other is not cls:
        raise ValueError(f"op class {cls.__name__}: the mnemonic {cls.mnemonic!r} belongs to "
                         f"{other.__name__}")
    OPS[cls.mnemonic] = cls
    return cls


def family_ops(module: ModuleType) -> list[type[Op]]:
    """The op classes a family module exports, in the order of its ``__all__``."""
    found = (getattr(module, name) for name in module.__all__)
    return [c for c in found if isinstance(c, type) and issubclass(c, Op) and c.mnemonic]


for _module in FAMILIES:
    for _cls in family_ops(_module):
        register_op(_cls)
for _cls in generate_fused_ops(list(OPS.values())):
    register_op(_cls)

__all__ = [
    "FAMILIES",
    "FUSED_OPS",
    "OPS",
    "OP_FACTS",
    "PARAM_DEFAULTS",
    "RESET_MODES",
    "FusedLayer",
    "Op",
    "OpError",
    "family_ops",
    "missing_facts",
    "register_op",
    *(name for module in FAMILIES for name in module.__all__),
]
