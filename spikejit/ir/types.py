"""Value types of the IR: per-step tensor types and references to parameters.

A :class:`TensorType` describes what one node emits at one time step for one sample: the
shape excludes both the batch and the time axis (NIR's convention). ``spike`` marks values
that are 0/1 spike trains, which matters for printing, for fusion decisions and for the
lowering (spikes may be stored in narrower types).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from spikejit.errors import SpikejitError

DType = Literal["f16", "bf16", "f32", "f64"]
DTYPES: tuple[str, ...] = ("f16", "bf16", "f32", "f64")

#: numpy dtype names for each IR dtype (bf16 has no numpy name; ml_dtypes provides it).
NUMPY_DTYPE_NAMES: dict[str, str] = {
    "f16": "float16",
    "bf16": "bfloat16",
    "f32": "float32",
    "f64": "float64",
}

#: Bytes per element of each IR dtype.
ITEMSIZE: dict[str, int] = {"f16": 2, "bf16": 2, "f32": 4, "f64": 8}


@dataclass(frozen=True)
class TensorType:
    """Per-time-step shape and dtype of a value; the batch and time axes are implicit.

    Printed as ``f32[4,3]`` for real values and ``spike<f32[4,3]>`` for spike trains.
    """

    shape: tuple[int, ...]
    dtype: str = "f32"
    spike: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.shape, tuple):
            object.__setattr__(self, "shape", tuple(self.shape))
        for d in self.shape:
            if isinstance(d, bool) or not isinstance(d, int) or d < 0:
                raise SpikejitError(
                    f"tensor type: dimension {d!r} of shape {self.shape} must be an integer >= 0"
                )
        if self.dtype not in DTYPES:
            raise SpikejitError(
                f"tensor type: dtype {self.dtype!r} is not one of {', '.join(DTYPES)}"
            )

    @property
    def size(self) -> int:
        """Number of elements per sample and step."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes per sample and step (a Python integer: no overflow for absurd shapes)."""
        return self.size * ITEMSIZE[self.dtype]

    @property
    def rank(self) -> int:
        """Number of per-sample dimensions."""
        return len(self.shape)

    def with_spike(self, spike: bool) -> TensorType:
        """The same shape and dtype with the given spike flag."""
        return TensorType(self.shape, self.dtype, spike)

    def with_shape(self, shape: tuple[int, ...]) -> TensorType:
        """The same dtype and spike flag with another shape."""
        return TensorType(tuple(shape), self.dtype, self.spike)

    def __str__(self) -> str:
        core = f"{self.dtype}[{','.join(map(str, self.shape))}]"
        return f"spike<{core}>" if self.spike else core


@dataclass(frozen=True)
class ParamRef:
    """A named reference to an array in the params pytree, with its declared type.

    The graph never holds parameter values: ``@lif1.tau: f32[128]`` names the array
    ``params["lif1.tau"]`` and says what it must look like. A parameter whose shape is
    ``[]`` (a scalar) broadcasts over the layer.
    """

    name: str
    type: TensorType

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SpikejitError(f"parameter reference: name {self.name!r} must be a "
                                "non-empty string")
        if not isinstance(self.type, TensorType):
            raise SpikejitError(f"parameter reference @{self.name}: type must be a TensorType")

    def __str__(self) -> str:
        from spikejit.ir.names import format_name

        return f"@{format_name(self.name)}: {self.type}"


def broadcastable(param_shape: tuple[int, ...], layer_shape: tuple[int, ...]) -> bool:
    """Whether a parameter of ``param_shape`` broadcasts (numpy rules) to ``layer_shape``."""
    if len(param_shape) > len(layer_shape):
        return False
    # Trailing dimensions are aligned; the parameter may have fewer (strict=False).
    for p, d in zip(reversed(param_shape), reversed(layer_shape), strict=False):
        if p not in (1, d):
            return False
    return True
