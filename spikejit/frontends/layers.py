"""SNNAX-style graphs: ``spikejit.from_layers(layers, *, input_layer_ids, final_layer_ids,
input_connectivity, ...)``.

SNNAX (``snnax.snn.architecture``) describes a network as a list of layers plus a
``GraphStructure(num_layers, input_layer_ids, final_layer_ids, input_connectivity)``:

* ``input_connectivity[i]``: the ids of the layers feeding layer ``i``;
* ``input_layer_ids[i]``: the ids of the external inputs feeding layer ``i``;
* ``final_layer_ids``: the layers whose outputs the model returns.

SNNAX runs the layers in list order inside one ``lax.scan`` step. In the default
("straight-through") mode, an edge from an earlier layer (``j < i``) carries the same step's
output and an edge from the same or a later layer (``j >= i``, recurrent connectivity)
carries the previous step's output, because that layer has not run yet in this step.
SNNAX's one-step-delayed forward function (``delayed=True`` here) makes every layer read
every other layer's previous-step output; external inputs are always same-step. spikejit
writes each such edge as a delayed use (``%l[t-1]``).

One difference: SNNAX *concatenates* the inputs of a layer with several sources, spikejit
(like NIR) *sums* them, so all sources of a layer must have the same shape. A SNNAX layer
that concatenates ``[a, b]`` into a linear layer ``W = [W_a | W_b]`` is two linear layers
``W_a`` and ``W_b`` feeding the same consumer.

Layers are :class:`Layer` specs (an op and its fields, as for ``GraphBuilder.add``). Node ids
are ``input{k}`` for external inputs, the layer's ``name`` or ``layer{i}``, and
``output{j}`` for ``final_layer_ids[j]``, in that order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spikejit.errors import FrontendError
from spikejit.frontends.builder import GraphBuilder
from spikejit.ir.graph import Graph
from spikejit.ir.ops import Op


class Layer:
    """One layer: an op (mnemonic, short name or class) and its fields.

    ``Layer("snn.lif", tau=0.02, v_threshold=1.0, name="lif1")``; ``name`` sets the node id
    (default ``layer{i}``). Fields are given as to :meth:`GraphBuilder.add`.
    """

    def __init__(self, op: str | type[Op], *, name: str | None = None, **fields: Any) -> None:
        self.op = op
        self.name = name
        self.fields = fields

    def __repr__(self) -> str:
        op = self.op if isinstance(self.op, str) else self.op.mnemonic
        return f"Layer({op!r}, name={self.name!r}, fields={sorted(self.fields)})"


def sequential_structure(num_layers: int) -> dict[str, list[Any]]:
    """The structure of SNNAX's ``Sequential``: input 0 feeds layer 0, each layer the next,
    the last layer is the output (``from_layers(layers, input_shapes=..., **structure)``)."""
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise FrontendError(f"sequential_structure: num_layers must be an integer >= 1, got "
                            f"{num_layers!r}")
    return {"input_layer_ids": [[0]] + [[] for _ in range(num_layers - 1)],
            "final_layer_ids": [num_layers - 1],
            "input_connectivity": [[]] + [[i] for i in range(num_layers - 1)]}


def _ids(what: str, value: Any, bound: int, where: str) -> list[int]:
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise FrontendError(f"from_layers: {what} of {where} must be a list of integers, got "
                            f"{value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or not 0 <= v < bound:
            raise FrontendError(f"from_layers: {what} of {where} names {v!r}, expected an "
                                f"integer in [0, {bound})")
        out.append(int(v))
    return out


def _layer(spec: Any, i: int) -> tuple[str | type[Op], str | None, dict[str, Any]]:
    if isinstance(spec, Layer):
        return spec.op, spec.name, dict(spec.fields)
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
        return spec[0], None, dict(spec[1])
    raise FrontendError(f"from_layers: layer {i} must be a spikejit.Layer or an (op, fields) "
                        f"pair, got {type(spec).__name__}")


def from_layers(
    layers: Sequence[Any],
    *,
    input_layer_ids: Sequence[Sequence[int]],
    final_layer_ids: Sequence[int],
    input_connectivity: Sequence[Sequence[int]],
    input_shapes: Sequence[int] | Sequence[Sequence[int]],
    num_layers: int | None = None,
    delayed: bool = False,
    name: str = "main",
    dt: float | None = None,
    dtype: str = "f32",
    **graph_options: Any,
) -> tuple[Graph, dict[str, np.ndarray]]:
    """Build ``(Graph, params)`` from SNNAX-style layers and connectivity.

    Args:
        layers: :class:`Layer` specs (or ``(op, fields)`` pairs), in SNNAX's list order.
        input_layer_ids: Per layer, the external inputs feeding it.
        final_layer_ids: The layers whose outputs are the graph's outputs.
        input_connectivity: Per layer, the layers feeding it (recurrent entries allowed).
        input_shapes: The per-step shape of each external input (one shape, or a list of
            shapes, one per input id used).
        num_layers: Optional; checked against ``len(layers)`` (SNNAX's first field, so that
            ``from_layers(layers, **structure._asdict(), input_shapes=...)`` works).
        delayed: SNNAX's one-step-delayed mode: every layer-to-layer edge reads the
            previous step. Default: same step from earlier layers, previous step from the
            same or later layers.
        name: The graph's name.
        dt: The time step in seconds (see :class:`GraphBuilder`).
        dtype: IR dtype of parameters and inputs.
        **graph_options: ``reset``, ``cuba_current``, ``method``.

    Returns:
        The typed, verified graph and its params.

    Raises:
        FrontendError: malformed structure, naming the layer and the expected form.
        SpikejitError: the builder's and verifier's errors (e.g. mismatched shapes).
    """
    n = len(layers)
    if num_layers is not None and num_layers != n:
        raise FrontendError(f"from_layers: num_layers = {num_layers!r}, but {n} layers given")
    if n == 0:
        raise FrontendError("from_layers: no layers")
    for what, value in (("input_layer_ids", input_layer_ids),
                        ("input_connectivity", input_connectivity)):
        if not isinstance(value, Sequence) or len(value) != n:
            got = len(value) if isinstance(value, Sequence) else type(value).__name__
            raise FrontendError(f"from_layers: {what} must have one entry per layer ({n}), "
                                f"got {got}")
    shapes = _input_shapes(input_shapes)
    b = GraphBuilder(name, dt=dt, dtype=dtype, **graph_options)
    for k, shape in enumerate(shapes):
        b.input(f"input{k}", shape, loc=f"layers:input{k}")
    specs = [_layer(spec, i) for i, spec in enumerate(layers)]
    ids = [layer_name or f"layer{i}" for i, (_, layer_name, _) in enumerate(specs)]
    for i, (op, _, fields) in enumerate(specs):
        where = f"layer {i} (%{ids[i]})"
        sources = _ids("input_connectivity", input_connectivity[i], n, where)
        external = _ids("input_layer_ids", input_layer_ids[i], len(shapes), where)
        if not sources and not external:
            raise FrontendError(f"from_layers: {where} has no input: give it a layer in "
                                f"input_connectivity[{i}] or an input in input_layer_ids[{i}]")
        b.add(ids[i], op, loc=f"layers:{i}", **fields)
        # SNNAX order: layer sources first, then external inputs.
        for j in sources:
            b.connect(ids[j], ids[i], delay=1 if (delayed or j >= i) else 0)
        for k in external:
            b.connect(f"input{k}", ids[i])
    finals = _ids("final_layer_ids", final_layer_ids, n, "the graph")
    if not finals:
        raise FrontendError("from_layers: final_layer_ids is empty; name at least one layer")
    for j, i in enumerate(finals):
        b.output(f"output{j}", ids[i], loc=f"layers:output{j}")
    return b.build()


def _input_shapes(value: Any) -> list[tuple[int, ...]]:
    if isinstance(value, Sequence) and value and all(
            isinstance(d, int | np.integer) and not isinstance(d, bool) for d in value):
        return [tuple(int(d) for d in value)]
    if isinstance(value, Sequence) and value and all(isinstance(s, Sequence) for s in value):
        return [tuple(s) for s in value]
    raise FrontendError(f"from_layers: input_shapes must be a shape such as (3,) or a list "
                        f"of shapes, got {value!r}")


__all__ = ["Layer", "from_layers", "sequential_structure"]
