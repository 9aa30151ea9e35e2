"""What spikejit accepts from NIR: the node table and the metadata models at the boundary.

:data:`NIR_NODES` lists every primitive of nir 1.0.8 with the fields spikejit reads, which
of them are parameter arrays (``{node}.{field}`` in the params dict) and which must be
present. Fields that a file leaves out take nir's neutral values (``r = 1``, ``v_leak = 0``,
``v_reset = 0``, ``w_in = 1``, conv ``stride = 1`` ...), and the IR op then simply omits
the parameter.

Metadata that spikejit itself writes is JSON inside one string entry (``"spikejit"``), read
back through the pydantic models below. Everything in it is either information only
(``dt``, ``reset``, ... also written as plain entries for humans and other tools) or makes
an IR -> NIR -> IR round trip exact (print order, names, parameter shapes, omitted optional
parameters, per-node reset overrides, delays on edges). A file without it, or with a
damaged one, loads with the documented defaults.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from spikejit.ir.ops import OPS, Op

#: Key of the JSON metadata entry spikejit writes on graphs and nodes.
META_KEY = "spikejit"
#: Value of ``GraphMeta.format``; bump when the meaning of the JSON changes.
META_FORMAT = "spikejit-nir-v1"


@dataclass(frozen=True)
class NirNodeSpec:
    """How one NIR primitive maps to the IR.

    Attributes:
        kind: NIR class name, as written in files (``type`` dataset).
        params: Fields that become parameter arrays, in the IR op's field order.
        required: Fields without which the node means nothing.
        attrs: Static fields (shapes, strides, dims) read as numbers or strings.
    """

    kind: str
    params: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    attrs: tuple[str, ...] = ()

    @property
    def mnemonic(self) -> str:
        """The IR op it becomes (the op whose ``nir_kind`` fact is this kind), ``""`` for
        nodes that disappear (nested graphs, identities)."""
        cls = nir_op(self.kind)
        return cls.mnemonic if cls is not None else ""


def nir_op(kind: str) -> type[Op] | None:
    """The registered op class whose ``nir_kind`` is ``kind``, if any."""
    for cls in OPS.values():
        if cls.nir_kind == kind:
            return cls
    return None


def nir_kinds() -> dict[type[Op], str]:
    """Every registered op class that NIR can express, with its NIR kind."""
    return {cls: cls.nir_kind for cls in OPS.values() if cls.nir_kind is not None}


_CONV_ATTRS = ("stride", "padding", "dilation", "groups", "input_shape")
_POOL_ATTRS = ("kernel_size", "stride", "padding")

NIR_NODES: dict[str, NirNodeSpec] = {
    s.kind: s
    for s in (
        NirNodeSpec("Input", attrs=("shape",), required=("shape",)),
        NirNodeSpec("Output", attrs=("shape",)),
        NirNodeSpec("Affine", ("weight", "bias"), ("weight", "bias")),
        NirNodeSpec("Linear", ("weight",), ("weight",)),
        NirNodeSpec("Scale", ("scale",), ("scale",)),
        NirNodeSpec("Conv1d", ("weight", "bias"), ("weight",), _CONV_ATTRS),
        NirNodeSpec("Conv2d", ("weight", "bias"), ("weight",), _CONV_ATTRS),
        NirNodeSpec("SumPool2d", (), ("kernel_size",), _POOL_ATTRS),
        NirNodeSpec("AvgPool2d", (), ("kernel_size",), _POOL_ATTRS),
        NirNodeSpec("Flatten", attrs=("start_dim", "end_dim", "input_type")),
        NirNodeSpec("Delay", attrs=("delay",), required=("delay",)),
        NirNodeSpec("Threshold", ("threshold",), ("threshold",)),
        NirNodeSpec("I", ("r",)),
        NirNodeSpec("IF", ("v_threshold", "r", "v_reset"), ("v_threshold",)),
        NirNodeSpec("LI", ("tau", "r", "v_leak"), ("tau",)),
        NirNodeSpec("LIF", ("tau", "v_threshold", "r", "v_leak", "v_reset"),
                    ("tau", "v_threshold")),
        NirNodeSpec("CubaLI", ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
                    ("tau_syn", "tau_mem")),
        NirNodeSpec("CubaLIF",
                    ("tau_syn", "tau_mem", "v_threshold", "r", "v_leak", "v_reset", "w_in"),
                    ("tau_syn", "tau_mem", "v_threshold")),
        NirNodeSpec("NIRGraph"),
        NirNodeSpec("Identity"),
    )
}

#: Kinds whose nodes vanish on import (rewired through) when nested or explicit.
IDENTITY_KINDS: tuple[str, ...] = ("Identity",)

#: Defaults of attributes a file may leave out (nir 1.0.8's constructor defaults).
ATTR_DEFAULTS: dict[str, Any] = {
    "stride": 1,
    "padding": 0,
    "dilation": 1,
    "groups": 1,
    "start_dim": 1,
    "end_dim": -1,
}

#: Parameters that are time constants: they must be > 0 (``inf`` means no leak).
TIME_CONSTANTS: tuple[str, ...] = ("tau", "tau_mem", "tau_syn")


def supported_kinds() -> str:
    """The NIR node types spikejit reads, for error messages."""
    return ", ".join(sorted(NIR_NODES))


class NodeMeta(BaseModel):
    """Per-node facts spikejit writes so that IR -> NIR -> IR is exact.

    Attributes:
        omit: Optional parameters the IR op did not have (written with neutral values).
        shapes: Original parameter shapes when the file holds them broadcast to the layer.
        dtypes: Parameter dtypes other than ``f32``.
        names: Parameter names other than ``{node}.{field}``.
        reset: The neuron's own reset override (``None``: the graph's).
        edge_delay: The node is a NIR ``Delay`` standing for a delay on one edge.
        input_type: Printed type of an ``io.input`` other than plain ``f32[...]``.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    omit: tuple[str, ...] = ()
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, str] = {}
    names: dict[str, str] = {}
    reset: str | None = None
    edge_delay: bool = False
    input_dtype: str | None = None
    input_spike: bool = False


#: The metadata of a node that has none (shared: the model is frozen and only read).
_NO_NODE_META = NodeMeta()


class GraphMeta(BaseModel):
    """Graph-level facts spikejit writes (see :class:`NodeMeta`).

    Attributes:
        format: :data:`META_FORMAT`.
        name: The IR graph's name.
        order: Node ids in IR print order.
        escaped: Whether node names are percent-escaped (``/`` cannot appear in HDF5 names).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    format: str = META_FORMAT
    name: str = "main"
    order: tuple[str, ...] = ()
    escaped: bool = False


def dump_meta(model: BaseModel) -> str:
    """The JSON string stored under :data:`META_KEY` (defaults left out, keys sorted)."""
    data = model.model_dump(mode="json", exclude_defaults=True)
    if isinstance(model, GraphMeta):
        data["format"] = META_FORMAT  # always present: it marks the file as spikejit's
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def load_node_meta(metadata: dict[str, Any]) -> NodeMeta:
    """The :class:`NodeMeta` in a node's metadata; the defaults if absent or damaged."""
    raw = metadata.get(META_KEY)
    if not isinstance(raw, str):
        return _NO_NODE_META
    try:
        return NodeMeta.model_validate_json(raw)
    except ValidationError:
        return _NO_NODE_META


def load_graph_meta(metadata: dict[str, Any]) -> GraphMeta | None:
    """The :class:`GraphMeta` of a file spikejit wrote, else ``None`` (foreign or damaged)."""
    raw = metadata.get(META_KEY)
    if not isinstance(raw, str):
        return None
    try:
        meta = GraphMeta.model_validate_json(raw)
    except ValidationError:
        return None
    return meta if meta.format == META_FORMAT else None


def escape_name(name: str) -> str:
    """``name`` made safe as an HDF5 link name: ``%`` -> ``%25``, ``/`` -> ``%2F``, and the
    names ``.``/``..`` (reserved in HDF5 paths) -> ``%2E``/``%2E%2E``."""
    out = name.replace("%", "%25").replace("/", "%2F")
    if out in (".", ".."):
        out = out.replace(".", "%2E")
    return out


def unescape_name(name: str) -> str:
    """The inverse of :func:`escape_name` (one left-to-right pass, so ``%252F`` -> ``%2F``)."""
    return _ESCAPES.sub(lambda m: _UNESCAPE[m.group(0)], name)


_UNESCAPE = {"%25": "%", "%2F": "/", "%2E": "."}
_ESCAPES = re.compile("|".join(_UNESCAPE))
