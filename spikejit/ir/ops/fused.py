r"""Fused layers: a synapse op and the neuron it feeds, as one op (``fuse-synapse-neuron``).

For every op ``S`` stating ``fusion = "synapse"`` (``nn.linear``, ``nn.affine``,
``nn.conv1d``, ``nn.conv2d``) and every op ``N`` stating ``fusion = "neuron"`` (``snn.i``,
``snn.if``, ``snn.li``, ``snn.lif``, ``snn.cuba_li``, ``snn.cuba_lif``, ...) the registry
generates one op ``layer.<s>_<n>`` (``layer.affine_lif``, class ``AffineLIF``) computing

    y[t] = N(S(x[t]))    with N's state and output, S applied to the summed operand

Its fields are the synapse's followed by the neuron's (they never share a name), so it is
printed, parsed and documented like any op::

    %lif1 = layer.affine_lif(%x) {weight = @fc1.weight: f32[4,3], bias = @fc1.bias: f32[4],
                                  tau = @lif1.tau: f32[4], v_threshold = ...} : spike<f32[4]>

The interpreter and the lowering run the two ops' own rules one after the other; the
lowering applies the synapse to the whole ``[T*B, ...]`` block before the neuron's scan
in layerwise segments (one matrix product and one scan per layer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from spikejit.ir.ops.base import Op, set_field
from spikejit.ir.types import TensorType


@dataclass(frozen=True, kw_only=True)
class FusedLayer(Op):
    """Base of the fused layer ops (not an op by itself): ``neuron(synapse(x))``."""

    category: ClassVar[str] = "neuron"
    uses_dt: ClassVar[bool] = True
    nir_kind: ClassVar[str | None] = None
    elementwise: ClassVar[bool] = False
    fusion: ClassVar[str | None] = None
    synapse_cls: ClassVar[type[Op]] = Op
    neuron_cls: ClassVar[type[Op]] = Op

    @classmethod
    def synapse_fields(cls) -> tuple[str, ...]:
        """Names of the fields that belong to the synapse."""
        return tuple(f.name for f in dataclasses.fields(cls.synapse_cls))

    @classmethod
    def neuron_fields(cls) -> tuple[str, ...]:
        """Names of the fields that belong to the neuron."""
        return tuple(f.name for f in dataclasses.fields(cls.neuron_cls))

    @classmethod
    def fuse(cls, synapse: Op, neuron: Op) -> FusedLayer:
        """The fused op of ``FUSED_OPS[(type(synapse), type(neuron))]``."""
        fused = FUSED_OPS[(type(synapse), type(neuron))]
        values = {f: getattr(synapse, f) for f in fused.synapse_fields()}
        values |= {f: getattr(neuron, f) for f in fused.neuron_fields()}
        return fused(**values)

    def synapse(self) -> Op:
        """The synapse op alone."""
        return self.synapse_cls(**{f: getattr(self, f) for f in self.synapse_fields()})

    def neuron(self) -> Op:
        """The neuron op alone."""
        return self.neuron_cls(**{f: getattr(self, f) for f in self.neuron_fields()})

    def validate(self) -> None:
        # Each part validates itself; normalised attributes (conv strides as tuples, ...)
        # are copied back so the fused op prints like its parts.
        synapse = self.synapse()
        for f in self.synapse_fields():
            set_field(self, f, getattr(synapse, f))
        neuron = self.neuron()
        for f in self.neuron_fields():
            set_field(self, f, getattr(neuron, f))

    def infer_type(self, in_type: TensorType | None) -> TensorType:
        return self.neuron().infer_type(self.synapse().infer_type(in_type))


def _short(cls: type[Op]) -> str:
    return cls.mnemonic.partition(".")[2]


def _make(synapse: type[Op], neuron: type[Op]) -> type[FusedLayer]:
    fields: list[tuple[str, Any, dataclasses.Field[Any]]] = []
    for f in (*dataclasses.fields(synapse), *dataclasses.fields(neuron)):
        kwargs: dict[str, Any] = {"metadata": f.metadata}
        if f.default is not dataclasses.MISSING:
            kwargs["default"] = f.default
        fields.append((f.name, f.type, dataclasses.field(**kwargs)))
    name = synapse.__name__ + neuron.__name__
    doc = (f"Fused ``{synapse.mnemonic}`` then ``{neuron.mnemonic}``: ``y[t] = "
           f"{_short(neuron)}({_short(synapse)}(x[t]))``.\n\n"
           f"The fields are those of ``{synapse.mnemonic}`` followed by those of "
           f"``{neuron.mnemonic}``, with their meanings; state and output are the neuron's. "
           f"Made by the ``fuse-synapse-neuron`` pass.")
    namespace = {
        "mnemonic": f"layer.{_short(synapse)}_{_short(neuron)}",
        "state_vars": neuron.state_vars,
        "linear_states": neuron.linear_states,
        "spiking": neuron.spiking,
        "synapse_cls": synapse,
        "neuron_cls": neuron,
        "__doc__": doc,
        "__module__": __name__,
    }
    cls = dataclasses.make_dataclass(name, fields, bases=(FusedLayer,), namespace=namespace,
                                     frozen=True, kw_only=True)
    cls.__qualname__ = name
    return cls


#: Every fused op by (synapse class, neuron class); filled by :func:`generate_fused_ops`.
FUSED_OPS: dict[tuple[type[Op], type[Op]], type[FusedLayer]] = {}


def generate_fused_ops(ops: Iterable[type[Op]]) -> list[type[FusedLayer]]:
    """Make ``layer.<s>_<n>`` for every synapse and neuron among ``ops`` (by their
    ``fusion`` fact), add them to :data:`FUSED_OPS` and return the new classes."""
    ops = list(ops)
    made = []
    for s in (c for c in ops if c.fusion == "synapse"):
        for n in (c for c in ops if c.fusion == "neuron"):
            if (s, n) not in FUSED_OPS:
                FUSED_OPS[(s, n)] = _make(s, n)
                made.append(FUSED_OPS[(s, n)])
    return made
