"""``to_torch_state_dict``: trained params back into the state dict of the torch model a
graph came from, found through each node's ``loc`` (``torch:<path> (<kind>)``, written by
``from_torch``) and written by each module kind's writer (:mod:`.modules`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from spikejit.errors import FrontendError
from spikejit.frontends.torch.importer import LIBRARIES, import_torch, load_library_rules
from spikejit.frontends.torch.modules import WriteContext, default_write, rule_for_kind, to_numpy
from spikejit.ir.graph import Graph, Node
from spikejit.ir.shapes import infer_types
from spikejit.ir.verify import verify_params


def parse_loc(loc: str) -> tuple[str, str, tuple[str, ...]] | None:
    """``(path, kind, options)`` from ``torch:<path> (<kind>[; opt,...])``."""
    if not loc.startswith("torch:") or not loc.endswith(")") or " (" not in loc:
        return None
    path, _, rest = loc[len("torch:"):].rpartition(" (")
    kind, _, opts = rest[:-1].partition("; ")
    return path, kind, tuple(o for o in opts.split(",") if o)


def to_torch_state_dict(graph: Graph, params: Mapping[str, Any]) -> dict[str, Any]:
    """The state dict that loads (``strict=True``) into the model ``graph`` came from.

    Every node made by :func:`from_torch` records its module path and kind in ``loc``;
    each kind's writer turns the (trained) params back into the module's tensors (e.g.
    snnTorch ``beta = 1 - dt/tau``) and checks that params the module cannot represent
    were kept as converted (e.g. ``r = tau/dt``), naming any that were not.

    Args:
        graph: The graph from :func:`from_torch` (ids and locs unchanged).
        params: ``{name: array}`` (numpy or JAX) with exactly the graph's parameters.

    Returns:
        ``{key: torch.Tensor}``. Norse cells keep their parameters outside the state dict
        and contribute no keys (see ``spikejit.frontends.torch.norse.norse_parameters``).
    """
    torch = import_torch()
    verify_params(graph, params)
    typed = infer_types(graph)
    groups: dict[str, list[Node]] = {}
    for node in typed.nodes:
        if parse_loc(node.loc) is None:
            if any(True for _ in node.op.params()):
                raise FrontendError(f"to_torch_state_dict: %{node.id} has parameters but no "
                                    f"torch origin (loc {node.loc!r}); was the graph made by "
                                    f"from_torch?")
            continue
        groups.setdefault(node.loc, []).append(node)
    types = {n.id: n.type for n in typed.nodes if n.type is not None}
    out: dict[str, Any] = {}
    for loc, nodes in groups.items():
        path, kind, options = parse_loc(loc)  # type: ignore[misc]
        rule = rule_for_kind(kind)
        if rule is None:
            lib = kind.split(".")[0]
            if lib in LIBRARIES:
                load_library_rules(force=lib)
                rule = rule_for_kind(kind)
        if rule is None:
            raise FrontendError(f"to_torch_state_dict: no module kind {kind!r} is registered "
                                f"(needed for {path!r}); register it with "
                                f"spikejit.register_torch_module")
        ctx = WriteContext(path, kind, options, tuple(nodes), params, graph.attrs.dt, types)
        for key, value in (rule.write or default_write)(ctx).items():
            full = f"{path}.{key}" if path else key
            arr = np.array(to_numpy(value))
            if full in out and not np.array_equal(out[full].numpy(), arr):
                raise FrontendError(f"to_torch_state_dict: {full!r} gets two different values")
            out[full] = torch.from_numpy(arr)
    return out


__all__ = ["parse_loc", "to_torch_state_dict"]
