"""Data parallelism over a device mesh (``compile(..., mesh=mesh, mesh_axis=...)``).

A spiking network treats the samples of a batch independently, so the batch can be split
over the devices of a :class:`jax.sharding.Mesh` with no communication in the forward pass:

* the inputs ``[T, B, ...]``, the outputs and the traces are split along ``B`` (axis 1);
* the state is split along its batch axis: ``[B, ...]`` for neuron variables (axis 0),
  ``[K, B, ...]`` for delay buffers and histories (axis 1);
* the parameters are replicated on every device.

The program runs under :func:`jax.shard_map`: each device runs the unchanged lowered
program on its ``B / n`` samples, so nothing in a forward call crosses devices (a
constraint-only GSPMD version was tried first: XLA all-gathered the ``[T, B] -> [T*B]``
reshapes of the layerwise segments). Reverse mode transposes the replicated parameters'
broadcast into one all-reduce of their gradients, so ``jax.grad`` gives the single-device
gradient. ``check_finite``'s report is reduced over the devices (earliest step, then
schedule order), so the node named is the same as on one device.

The mesh's axes may be ``Auto`` or ``Explicit`` (``jax.make_mesh``'s default). Unless a
mesh is set with ``jax.set_mesh``, the program uses an ``Auto`` copy of the mesh (same
devices, same axis names), so results carry no explicit sharding type and the caller's code
needs no mesh context; under ``jax.set_mesh(mesh)`` it uses that mesh itself, as
``shard_map`` requires.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from spikejit.errors import OptionError
from spikejit.lowering.abi import Traces
from spikejit.lowering.emit import Program, StateDict

#: State entries ``[K, B, ...]`` (batch on axis 1); every other state variable is ``[B, ...]``.
TIME_MAJOR_STATE = ("buffer", "history")


@dataclass(frozen=True)
class DataParallel:
    """The batch split over ``axes`` of ``mesh``; everything else replicated.

    Build it with :meth:`from_options` (which validates); ``compile(..., mesh=...)`` does.

    Attributes:
        mesh: The user's mesh.
        axes: The mesh axes the batch is split over (their devices multiply).
    """

    mesh: Mesh
    axes: tuple[str, ...]

    @classmethod
    def from_options(cls, mesh: Any, mesh_axis: Any = None) -> DataParallel | None:
        """Validate ``compile``'s ``mesh`` and ``mesh_axis`` options (``None`` without mesh).

        ``mesh_axis`` is an axis name, a sequence of axis names, or ``None`` for every axis
        of the mesh (pure data parallelism over all its devices).

        Raises:
            OptionError: ``mesh`` is not a ``jax.sharding.Mesh``, ``mesh_axis`` is given
                without a mesh, names no or an unknown or repeated axis, or mixes
                ``Explicit`` and ``Auto`` axes.
        """
        if mesh is None:
            if mesh_axis is not None:
                raise OptionError(f"compile: mesh_axis={mesh_axis!r} needs mesh= (a "
                                  f"jax.sharding.Mesh)")
            return None
        if not isinstance(mesh, Mesh):
            raise OptionError(f"compile: mesh must be a jax.sharding.Mesh (e.g. "
                              f"jax.make_mesh((4,), ('batch',))), got {type(mesh).__name__}")
        names = tuple(mesh.axis_names)
        if mesh_axis is None:
            axes = names
        elif isinstance(mesh_axis, str):
            axes = (mesh_axis,)
        elif (isinstance(mesh_axis, tuple | list) and mesh_axis
              and all(isinstance(a, str) for a in mesh_axis)):
            axes = tuple(mesh_axis)
        else:
            raise OptionError(f"compile: mesh_axis must be a mesh axis name, a tuple of them "
                              f"or None (every axis), got {mesh_axis!r}")
        unknown = [a for a in axes if a not in names]
        if unknown:
            raise OptionError(f"compile: mesh_axis {', '.join(map(repr, unknown))} is not an "
                              f"axis of the mesh; its axes: {', '.join(map(repr, names))}")
        if len(set(axes)) != len(axes):
            raise OptionError(f"compile: mesh_axis names an axis twice: {axes!r}")
        types = dict(zip(names, mesh.axis_types, strict=True))
        kinds = {types[a] for a in axes}
        if not kinds <= {AxisType.Auto, AxisType.Explicit} or len(kinds) > 1:
            raise OptionError(f"compile: the batch axes {axes!r} of mesh must be all Explicit "
                              f"or all Auto, got {[str(types[a]) for a in axes]}")
        return cls(mesh, axes)

    # -- shardings -------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """The number of devices the batch is split over (the batch must be a multiple)."""
        shape = dict(self.mesh.shape)
        return int(functools.reduce(lambda a, b: a * b, (shape[a] for a in self.axes), 1))

    @functools.cached_property
    def auto_mesh(self) -> Mesh:
        """The mesh with every axis ``Auto`` (used unless a mesh is set with ``set_mesh``)."""
        return Mesh(self.mesh.devices, self.mesh.axis_names,
                    axis_types=(AxisType.Auto,) * len(self.mesh.axis_names))

    def spec(self, batch_dim: int | None) -> P:
        """The partition spec of an array whose batch axis is ``batch_dim`` (``None``:
        replicated)."""
        if batch_dim is None:
            return P()
        axes = self.axes[0] if len(self.axes) == 1 else self.axes
        return P(*(None,) * batch_dim, axes)

    def sharding(self, batch_dim: int | None = 1) -> NamedSharding:
        """The :class:`~jax.sharding.NamedSharding` of an array whose batch axis is
        ``batch_dim`` (1: inputs, outputs, traces, buffers; 0: neuron state; ``None``:
        parameters), e.g. for ``jax.make_array_from_process_local_data`` on several hosts."""
        return NamedSharding(self.auto_mesh, self.spec(batch_dim))

    def check_batch(self, batch: int) -> None:
        """Raise :class:`OptionError` unless ``batch`` splits evenly over the devices."""
        if batch % self.size:
            raise OptionError(f"mesh: the batch size B={batch} does not split over the "
                              f"{self.size} devices of mesh axis {self._axes_text()}; use a "
                              f"multiple of {self.size}")

    def _axes_text(self) -> str:
        return " x ".join(repr(a) for a in self.axes)

    def state_specs(self, state: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, P]]:
        """The spec of every state entry (batch on axis 1 for buffers and histories)."""
        return {nid: {var: self.spec(1 if var in TIME_MAJOR_STATE else 0) for var in entry}
                for nid, entry in state.items()}

    # -- placing concrete values -------------------------------------------------------------
    def put_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Concrete parameters replicated on every device of the mesh."""
        return {k: _put(v, self.sharding(None)) for k, v in params.items()}

    def put_state(self, state: Mapping[str, Mapping[str, Any]]) -> StateDict:
        """A concrete state split along its batch axes (batch size checked)."""
        out: StateDict = {}
        for nid, entry in state.items():
            out[nid] = {}
            for var, value in entry.items():
                dim = 1 if var in TIME_MAJOR_STATE else 0
                self.check_batch(value.shape[dim])
                out[nid][var] = _put(value, self.sharding(dim))
        return out

    def _put_batched(self, tree: Any, dim_of: Callable[[tuple[Any, ...]], int]) -> Any:
        """Concrete leaves of ``tree`` split along their batch axis where it fits; other
        leaves are left to the program's own checks (which give the errors)."""

        def put(path: tuple[Any, ...], leaf: Any) -> Any:
            dim = dim_of(path)
            shape = getattr(leaf, "shape", ())
            if (isinstance(leaf, jax.core.Tracer) or len(shape) <= dim
                    or shape[dim] % self.size):
                return leaf
            return jax.device_put(leaf, self.sharding(dim))

        return jax.tree_util.tree_map_with_path(put, tree)

    # -- the call ----------------------------------------------------------------------------
    def call(self, program: Program, params: Any, x: Any, state: Any,
             trace: tuple[str, ...], remat: int | None = None, reduce: str | None = None
             ) -> tuple[dict[str, Any], StateDict, Traces, Any]:
        """``program(params, x, state, trace, tile=remat, reduce=reduce)`` (checkpointed
        time tiles with ``remat``, outputs reduced over time with ``reduce``) split over the
        mesh: ``(outputs, state, traces, report)`` as one device would return them.

        Raises:
            OptionError: the batch size is not a multiple of the devices (also under
                ``jax.jit``: the shapes are static), or a different mesh is set with
                ``jax.set_mesh``.
        """
        if isinstance(params, Mapping):
            params = self.put_params(params)
        x = self._put_batched(x, lambda path: 1)
        if state is not None:
            state = self._put_batched(state, lambda path: 1 if _var(path) in TIME_MAJOR_STATE
                                      else 0)
        # One jitted function per (program, mesh), in the program's jit cache, so models
        # that share a program share JAX's compilation cache (with_params does not retrace).
        fn = program.function(self, lambda prog: jax.jit(
            functools.partial(self._run, prog), static_argnames=("trace", "tile", "reduce")))
        return fn(params, x, state, trace=trace, tile=remat, reduce=reduce)

    def _run(self, program: Program, params: Any, x: Any, state: Any, trace: tuple[str, ...],
             tile: int | None, reduce: str | None
             ) -> tuple[dict[str, Any], StateDict, Traces, Any]:
        """The traced body of :meth:`call` (inside ``jax.jit``)."""
        inputs, _, batch = program.check_inputs(x)
        self.check_batch(batch)
        state = program.init_state(batch) if state is None else program.check_state(state,
                                                                                     batch)
        params = program.check_params(params)
        mesh = self._mesh_in_context()
        explicit = all(t == AxisType.Explicit for name, t in
                       zip(mesh.axis_names, mesh.axis_types, strict=True) if name in self.axes)
        sspecs = self.state_specs(state)
        rows, repl = self.spec(1), P()

        def place(tree: Any, specs: Any) -> Any:
            if explicit:
                return jax.tree_util.tree_map(
                    lambda a, s: jax.sharding.reshard(a, NamedSharding(mesh, s)), tree, specs)
            return jax.tree_util.tree_map(
                lambda a, s: lax.with_sharding_constraint(a, NamedSharding(mesh, s)), tree,
                specs)

        params = place(params, {k: repl for k in params})
        inputs = place(inputs, {k: rows for k in inputs})
        state = place(state, sspecs)
        check = program.options.check_finite

        def local(p: Any, xs: Any, s: Any) -> tuple[Any, ...]:
            outputs, new_state, traces, report = program(p, xs, s, trace, tile=tile,
                                                         reduce=reduce)
            if report is None:
                return outputs, new_state, traces
            return outputs, new_state, traces, _first_over_devices(report, self.axes)

        out_rows = self.spec(1 if reduce is None else 0)  # reduced outputs: [B, ...]
        out_specs: tuple[Any, ...] = (out_rows, sspecs, rows) + ((repl,) if check else ())
        # check_vma=False: the lowered program starts scans from invariant zeros and wraps
        # scans in custom_vjp rules; the replicated parameters' gradients are still summed.
        run = jax.shard_map(local, mesh=mesh, in_specs=(repl, rows, sspecs),
                            out_specs=out_specs, check_vma=False)
        result = run(params, inputs, state)
        return (*result, None) if not check else result

    def _mesh_in_context(self) -> Mesh:
        """The mesh to run on: the user's one under a matching ``jax.set_mesh``, else the
        ``Auto`` copy."""
        context = jax.sharding.get_abstract_mesh()
        if context.empty:
            return self.auto_mesh
        if context == self.mesh.abstract_mesh:
            return self.mesh
        if context == self.auto_mesh.abstract_mesh:
            return self.auto_mesh
        raise OptionError(f"mesh: the mesh set with jax.set_mesh ({context}) is not the mesh "
                          f"given to compile ({self.mesh}); use the same mesh or none")


def _var(path: tuple[Any, ...]) -> Any:
    """The state variable name of a state leaf's path (``state[node][var]``)."""
    return getattr(path[-1], "key", None) if path else None


def _put(value: Any, sharding: NamedSharding) -> Any:
    return value if isinstance(value, jax.core.Tracer) else jax.device_put(value, sharding)


def _first_over_devices(report: jax.Array, axes: tuple[str, ...]) -> jax.Array:
    """``check_finite``'s ``(node index, step)`` over all devices: the earliest step, then
    the first node in schedule order; ``(-1, -1)`` if no device found one."""
    big = jnp.iinfo(jnp.int32).max
    index, step = report[0], report[1]
    step = jnp.where(index < 0, big, step)
    first_step = lax.pmin(step, axes)
    first_index = lax.pmin(jnp.where(step == first_step, index, big), axes)
    found = jnp.stack([first_index, first_step]).astype(jnp.int32)
    return jnp.where(first_step < big, found, jnp.array([-1, -1], jnp.int32))


__all__ = ["TIME_MAJOR_STATE", "DataParallel"]
