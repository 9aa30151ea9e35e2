"""The program's calling convention (ABI): the formats of parameters, inputs, state and
traces, their checks, and the size limits of a run.

The formats are the project-wide conventions shared with the reference interpreter
(``docs/compile.md``): inputs ``[T, B, *shape]`` (or a dict keyed by io.input id), state
``{node_id: {var: [B, *shape]}}`` plus ``{"buffer": [K, B, *shape]}`` for ``snn.delay``
nodes and ``{"history": [D, B, *shape]}`` for nodes read through delayed uses (oldest
first). Every check reads static properties only (shapes, dtypes, names), so it works on
tracers and costs no device work; NumPy input values are the one exception
(:meth:`ProgramABI.check_input_values`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.dtypes import canonicalize_dtype as canonical_dtype

from spikejit.errors import OptionError, ParamError
from spikejit.ir.graph import Graph, Node
from spikejit.ir.ops import Delay
from spikejit.ir.types import ITEMSIZE
from spikejit.ir.values import check_input_values
from spikejit.ir.verify import check_param_names
from spikejit.limits import check_bytes, max_bytes, nbytes

Array = jax.Array
StateDict = dict[str, dict[str, Array]]
#: ``{node_id: {"out" or state variable: [T, B, *shape]}}``.
Traces = dict[str, dict[str, Array]]

JNP_DTYPES: dict[str, Any] = {"f16": jnp.float16, "bf16": jnp.bfloat16, "f32": jnp.float32,
                              "f64": jnp.float64}


def node_dtype(node: Node) -> Any:
    """The JAX dtype of a typed node's values."""
    assert node.type is not None
    return JNP_DTYPES[node.type.dtype]


class ProgramABI:
    """The calling convention of one scheduled graph (the base of ``Program``).

    Args:
        graph: A typed graph.
        allow_nonfinite: NumPy inputs may hold NaN or Inf (``check_finite`` reports them).
    """

    def __init__(self, graph: Graph, *, allow_nonfinite: bool = False) -> None:
        self.graph = graph
        self.allow_nonfinite = allow_nonfinite
        #: Node id -> the most steps back any use reads it (only nodes read with a delay).
        self.history = {n.id: graph.max_use_delay(n.id) for n in graph.nodes
                        if graph.max_use_delay(n.id) > 0}
        #: (largest node, its bytes per sample and step, state bytes per sample), cached.
        self._run_sizes: tuple[str, int, int] | None = None

    # -- state ---------------------------------------------------------------------------
    def init_state(self, batch_size: int) -> StateDict:
        """All-zero state for ``batch_size`` samples (the convention's format)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise OptionError(f"batch_size must be an integer >= 0, got {batch_size!r}")
        total = self.state_nbytes(batch_size)
        if total > max_bytes():
            check_bytes(total, f"the state of graph @{self.graph.name} for a batch of "
                               f"{batch_size} (the largest: %{self._largest_state(batch_size)})")
        state: StateDict = {}
        for n in self.graph.nodes:
            entry = {name: jnp.zeros(shape, node_dtype(n))
                     for name, shape in self._state_shapes(n, batch_size).items()}
            if entry:
                state[n.id] = entry
        return state

    def state_nbytes(self, batch_size: int) -> int:
        """Bytes of the whole state for ``batch_size`` samples (from the types)."""
        return sum(self._node_state_nbytes(n, batch_size) for n in self.graph.nodes)

    def _node_state_nbytes(self, n: Node, batch_size: int) -> int:
        assert n.type is not None
        return sum(nbytes(shape, ITEMSIZE[n.type.dtype])
                   for shape in self._state_shapes(n, batch_size).values())

    def _largest_state(self, batch_size: int) -> str:
        return max(self.graph.nodes, key=lambda n: self._node_state_nbytes(n, batch_size)).id

    def check_run_size(self, steps: int, batch: int) -> None:
        """Refuse a call whose memory would exceed the size limit: the state plus the
        largest ``[T, B, ...]`` node output, a lower bound of what the call needs.

        O(1): runs on every ``CompiledModel.apply`` call, before ``jax.jit``.
        """
        if self._run_sizes is None:  # the state is linear in the batch size
            largest = max(self.graph.nodes, key=lambda n: n.type.nbytes if n.type else 0)
            assert largest.type is not None
            self._run_sizes = (largest.id, largest.type.nbytes, self.state_nbytes(1))
        nid, per_step, state_per_sample = self._run_sizes
        total = (state_per_sample + per_step * steps) * batch
        if total > max_bytes():
            check_bytes(total, f"a run of graph @{self.graph.name} over T={steps} steps with a "
                               f"batch of {batch} (its state and its largest [T, B, ...] node "
                               f"output, %{nid})")


    def _state_shapes(self, n: Node, batch: int) -> dict[str, tuple[int, ...]]:
        assert n.type is not None
        shape = (batch, *n.type.shape)
        out = {var: shape for var in n.op.state_vars}
        if isinstance(n.op, Delay) and n.op.max_steps >= 1:
            out["buffer"] = (n.op.max_steps, *shape)
        if n.id in self.history:
            out["history"] = (self.history[n.id], *shape)
        return out

    def check_state(self, state: Any, batch: int) -> StateDict:
        """Validate a carried-in state against the graph (names, shapes); cast dtypes."""
        if not isinstance(state, Mapping):
            raise ParamError(f"state must be a dict node id -> dict of arrays (as returned "
                              f"with return_state=True), got {type(state).__name__}")
        out: StateDict = {}
        expected_nodes = set()
        for n in self.graph.nodes:
            shapes = self._state_shapes(n, batch)
            if not shapes:
                continue
            expected_nodes.add(n.id)
            entry = state.get(n.id)
            if not isinstance(entry, Mapping) or set(entry) != set(shapes):
                got = sorted(entry) if isinstance(entry, Mapping) else entry
                raise ParamError(f"state[{n.id!r}] must hold {sorted(shapes)}, got {got!r}")
            out[n.id] = {}
            for name, shape in shapes.items():
                value = entry[name]
                if tuple(getattr(value, "shape", ())) != shape:
                    raise ParamError(f"state[{n.id!r}][{name!r}] must have shape {list(shape)}"
                                      f", got {list(getattr(value, 'shape', ()))}")
                out[n.id][name] = jnp.asarray(value, node_dtype(n))
        extra = sorted(set(state) - expected_nodes)
        if extra:
            raise ParamError(f"state has entries for nodes without state: {extra}")
        return out

    # -- inputs and params ---------------------------------------------------------------
    def check_inputs(self, x: Any) -> tuple[dict[str, Array], int, int]:
        """``(inputs by id, T, B)``; data cast to the input types' dtypes."""
        data, steps, batch = self.input_arrays(x)
        out = {nid: jnp.asarray(value, node_dtype(self.graph.node(nid)))
               for nid, value in data.items()}
        return out, steps, batch

    def input_arrays(self, x: Any) -> tuple[dict[str, Any], int, int]:
        """``(inputs by id, T, B)``, nothing cast: :class:`ParamError` for wrong names,
        shapes or complex dtypes. Reads static properties only, so it works on tracers
        and costs no device work (``CompiledModel.apply`` runs it before ``jax.jit``)."""
        ids = self.graph.inputs
        if isinstance(x, Mapping):
            if set(x) != set(ids):
                raise ParamError(f"inputs must be keyed by the io.input ids {list(ids)}, "
                                  f"got {sorted(x)}")
            data = dict(x)
        elif len(ids) == 1:
            data = {ids[0]: x}
        else:
            raise ParamError(f"the graph has several inputs {list(ids)}; pass a dict")
        tb: tuple[int, int] | None = None
        for nid in ids:
            node = self.graph.node(nid)
            assert node.type is not None
            value = data[nid]
            shape = tuple(getattr(value, "shape", ()))
            if len(shape) != 2 + node.type.rank or shape[2:] != node.type.shape:
                raise ParamError(f"input %{nid}: expected data [T, B, "
                                  f"{', '.join(map(str, node.type.shape))}] (time-major), "
                                  f"got shape {list(shape)}")
            if tb is not None and shape[:2] != tb:
                raise ParamError(f"input %{nid} has [T, B] = {list(shape[:2])}, but other "
                                  f"inputs have {list(tb)}")
            tb = (shape[0], shape[1])
            dtype = getattr(value, "dtype", None)
            if dtype is not None and jnp.issubdtype(dtype, jnp.complexfloating):
                # A cast would drop the imaginary part with only a warning.
                raise ParamError(f"input %{nid} has complex dtype {dtype}; expected real "
                                  f"numbers (bool, integers or floats)")
        assert tb is not None
        return data, tb[0], tb[1]

    def check_input_values(self, data: Mapping[str, Any]) -> None:
        """:class:`ParamError` for NumPy input data holding values beyond the input's dtype
        (1e300 for float32), or NaN or Inf unless ``check_finite`` is on (its report names
        the input and the step), naming the first index
        (:func:`spikejit.ir.interpreter.check_input_values`). JAX arrays are skipped: their
        values live on the device (a check would be a device reduction per call) or are
        not known at all (tracers)."""
        for nid, value in data.items():
            if isinstance(value, np.ndarray | np.generic):
                check_input_values(f"input %{nid}", np.asarray(value),
                                   node_dtype(self.graph.node(nid)),
                                   allow_nonfinite=self.allow_nonfinite)

    def check_params(self, params: Any) -> dict[str, Array]:
        """The params as arrays of their declared dtypes; :class:`ParamError` if a name is
        missing or extra or a shape is wrong."""
        if not isinstance(params, Mapping):
            raise ParamError(f"params must be a dict name -> array, got {type(params).__name__}")
        refs = check_param_names(self.graph, params)  # derived ones are computed
        out = {}
        for name, ref in refs.items():
            value = params[name]
            shape = tuple(getattr(value, "shape", ()))
            if shape != ref.type.shape:
                raise ParamError(f"parameter @{name}: expected {ref.type}, got shape {list(shape)}")
            dtype = JNP_DTYPES[ref.type.dtype]
            if isinstance(value, np.ndarray) and value.dtype == dtype == canonical_dtype(dtype):
                # Already the dtype: asarray without one takes JAX's fast path (~2x faster
                # per array, which counts for the thousands of a big graph).
                out[name] = jnp.asarray(value)
            else:
                out[name] = jnp.asarray(value, dtype)
        return out



def check_leaves(**trees: Any) -> None:
    """Raise :class:`ParamError` for a leaf ``jax.jit`` cannot take as an array (a string,
    an object, an array of text), naming where it is; the program checks names and shapes.

    ``jax.jit`` would refuse such a leaf with a ``TypeError`` before the program's own
    checks run; this keeps the promise that a bad argument is a spikejit error.
    """
    for what, tree in trees.items():
        if all(array_like(leaf) for leaf in jax.tree_util.tree_leaves(tree)):
            continue  # the common case: no paths computed
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            if not array_like(leaf):
                key = getattr(path[0], "key", None) if len(path) == 1 else None
                where = (f"parameter @{key}" if what == "params" and isinstance(key, str)
                         else what + jax.tree_util.keystr(path))
                raise ParamError(f"{where} must be an array of numbers, got "
                                 f"{type(leaf).__name__} {short_repr(leaf)}")


def array_like(leaf: Any) -> bool:
    """Whether ``jax.jit`` takes ``leaf`` as an array (a number, or numbers or bools)."""
    if isinstance(leaf, bool | int | float | complex):
        return True
    dtype = getattr(leaf, "dtype", None)
    if dtype is None or not hasattr(leaf, "shape"):
        return False
    try:
        return bool(jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_))
    except TypeError:  # not a dtype numpy or JAX knows
        return False


def short_repr(value: Any) -> str:
    """``repr(value)``, cut to 40 characters (for error messages)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


__all__ = ["JNP_DTYPES", "ProgramABI", "StateDict", "Traces", "array_like", "check_leaves",
           "node_dtype", "short_repr"]
