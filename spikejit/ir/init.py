"""Deterministic default parameter values for a graph whose params are not given.

IR text holds no parameter values, so running a bare ``.snir`` file needs values from
somewhere: weights are drawn ``N(0, 1/fan_in)`` (scaled so that spiking layers are
driven), time constants are ``10*dt``, thresholds 1, and neutral values elsewhere
(``r = 1``, leaks and resets 0, ``w_in = 1``). Ops that document their own defaults
(biophysical and user-defined neurons, ``op.defaults()``) get those. The same graph and seed
always give the same arrays.
"""

from __future__ import annotations

import numpy as np

from spikejit.ir.graph import Graph
from spikejit.ir.ops import PARAM_DEFAULTS, Integrator
from spikejit.ir.ops.neurons import IF
from spikejit.ir.types import NUMPY_DTYPE_NAMES
from spikejit.ir.verify import param_owners
from spikejit.limits import check_bytes, max_bytes


def init_params(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Default values for every parameter the graph takes from the user (see module
    docstring); derived parameters are computed from these, never initialised.

    Raises:
        SizeLimitError: The declared parameters exceed the size limit.
    """
    user = graph.user_param_refs()
    # IR text may declare any shape: refuse absurd ones before allocating anything.
    total = sum(ref.type.nbytes for ref in user.values())
    if user and total > max_bytes():
        name = max(user, key=lambda n: user[n].type.nbytes)
        check_bytes(total, f"default values for the parameters of graph @{graph.name} (the "
                           f"largest: @{name} of {param_owners(graph)[name]})")
    rng = np.random.default_rng(seed)
    dt = graph.attrs.dt or 1.0
    # The op field that reads a parameter decides its value; a user parameter that only a
    # derivation or nothing reads (after optimisation) is known by its name's last part.
    fields: dict[str, tuple[str, object]] = {}
    for node in graph.nodes:
        for field, ref in node.op.params():
            if ref.name in user:
                fields.setdefault(ref.name, (field, node.op))
    params: dict[str, np.ndarray] = {}
    for name, ref in user.items():
        field, op = fields.get(name, (name.rsplit(".", 1)[-1], None))
        shape = ref.type.shape
        own = getattr(op, "defaults", None)  # biophysical and user-defined neurons
        defaults: dict[str, float] = own() if callable(own) else {}
        if field in defaults:
            value = np.full(shape, defaults[field])
        elif field == "weight":
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            value = rng.normal(0.0, 2.0 / np.sqrt(max(fan_in, 1)), size=shape)
        elif field.startswith("tau"):  # tau, tau_mem, tau_syn, tau_adapt, ...: time constants
            value = np.full(shape, 10.0 * dt)
        elif field in ("v_threshold", "threshold"):
            value = np.ones(shape)
        elif field == "r" and isinstance(op, Integrator | IF):
            value = np.full(shape, 1.0 / dt)  # one unit of input moves v by one per step
        elif field == "scale":
            value = np.ones(shape)
        else:
            value = np.full(shape, PARAM_DEFAULTS.get(field, 0.0))
        dtype = NUMPY_DTYPE_NAMES[ref.type.dtype]
        params[name] = np.asarray(value, dtype="float32" if dtype == "bfloat16" else dtype)
    return params
