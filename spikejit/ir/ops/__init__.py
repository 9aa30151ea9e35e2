"""The op registry: every concrete op, keyed by its printed mnemonic.

``OPS`` is explicit (no import side effects); the printer, parser, verifier, interpreter and
lowering each keep their own rule table keyed by these classes, and a test checks that all
tables cover all ops.
"""

from __future__ import annotations

from spikejit.ir.ops.base import Op, OpError
from spikejit.ir.ops.biophysical import AdEx, HodgkinHuxley, Izhikevich
from spikejit.ir.ops.fused import FUSED_OPS, FusedLayer
from spikejit.ir.ops.io import Input, Output
from spikejit.ir.ops.neurons import (
    IF,
    LI,
    LIF,
    PARAM_DEFAULTS,
    RESET_MODES,
    CubaLI,
    CubaLIF,
    Integrator,
    Threshold,
)
from spikejit.ir.ops.pad import Pad
from spikejit.ir.ops.structural import AvgPool2d, Delay, Flatten, SumPool2d
from spikejit.ir.ops.synapses import Affine, Conv1d, Conv2d, Linear, Scale

OPS: dict[str, type[Op]] = {
    cls.mnemonic: cls
    for cls in (
        Input,
        Output,
        Affine,
        Linear,
        Scale,
        Conv1d,
        Conv2d,
        SumPool2d,
        AvgPool2d,
        Flatten,
        Delay,
        Threshold,
        Integrator,
        IF,
        LI,
        LIF,
        CubaLI,
        CubaLIF,
        HodgkinHuxley,
        AdEx,
        Izhikevich,
        Pad,
        *FUSED_OPS.values(),
    )
}


def register_op(cls: type[Op]) -> type[Op]:
    """Add an op class to the registry (for extensions such as biophysical neurons)."""
    if not cls.mnemonic or "." not in cls.mnemonic:
        raise ValueError(f"op class {cls.__name__} needs a 'dialect.name' mnemonic")
    OPS[cls.mnemonic] = cls
    return cls


__all__ = [
    "FUSED_OPS",
    "IF",
    "LI",
    "LIF",
    "OPS",
    "PARAM_DEFAULTS",
    "RESET_MODES",
    "AdEx",
    "Affine",
    "AvgPool2d",
    "Conv1d",
    "Conv2d",
    "CubaLI",
    "CubaLIF",
    "Delay",
    "Flatten",
    "FusedLayer",
    "HodgkinHuxley",
    "Input",
    "Integrator",
    "Izhikevich",
    "Linear",
    "Op",
    "OpError",
    "Output",
    "Pad",
    "Scale",
    "SumPool2d",
    "Threshold",
    "register_op",
]
