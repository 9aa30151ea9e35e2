"""The verifier: every invariant of a well-formed graph, checked with node-naming errors.

Checks, in order: non-empty, unique ids, operands exist, arity per op, at least one input
and one output, every node reachable from an input, no cycle of same-step dependencies
(every cycle must carry a delay), types (recomputed by inference and compared with the
recorded ones), parameter references agree on their declared type, derived parameters
(their functions' type rules, dependency order, no clash with user parameters), ``dt`` set
when an op needs it, and a schedule (if present) covering every node once.
``verify_params`` checks a params dict against the parameters the graph takes from the
user (:meth:`~spikejit.ir.graph.Graph.user_param_refs`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from spikejit.errors import ParamError, ShapeError, VerifyError
from spikejit.ir.analysis import reachable_from_inputs, same_step_cycle
from spikejit.ir.derived import DerivedTypeError, derived_type
from spikejit.ir.graph import Graph
from spikejit.ir.ops import Input
from spikejit.ir.shapes import inferred_types
from spikejit.ir.types import NUMPY_DTYPE_NAMES, ParamRef


def verify(graph: Graph, params: Mapping[str, Any] | None = None, *,
           since: Graph | None = None) -> None:
    """Raise a :class:`VerifyError` (or subclass) if ``graph`` is malformed.

    A graph that passed is remembered as such (it is immutable), so verifying it again
    costs nothing.

    Args:
        graph: The graph to check. Untyped graphs are checked by inferring their types;
            typed graphs must carry exactly the inferred types.
        params: If given, also checked with :func:`verify_params`.
        since: A graph that passed before, e.g. a pass's input: if ``graph`` differs from
            it only in its schedule (the very same node tuple, derived and retained
            parameters, equal name and attributes), only the schedule is checked.
    """
    if not _passed(graph):
        if since is not None and _passed(since) and _same_but_schedule(graph, since):
            if graph.schedule is not None:
                _verify_schedule(graph)
        else:
            _verify_graph(graph)
        # The checks depend on the graph alone, so a graph that passed once passes
        # again: pipelines verify after every pass, and a pass that changes nothing
        # returns its input.
        object.__setattr__(graph, "_verified", True)
    if params is not None:
        verify_params(graph, params)


def _passed(graph: Graph) -> bool:
    return graph.__dict__.get("_verified", False)


def _same_but_schedule(graph: Graph, other: Graph) -> bool:
    return (graph.nodes is other.nodes and graph.derived is other.derived
            and graph.retained is other.retained and graph.name == other.name
            and graph.attrs == other.attrs)


def _verify_graph(graph: Graph) -> None:
    if not graph.nodes:
        raise VerifyError(f"graph @{graph.name} has no nodes")
    seen: set[str] = set()
    for n in graph.nodes:
        if n.id in seen:
            raise VerifyError("node id is used by more than one node", node_id=n.id,
                              op_name=n.op.mnemonic, loc=n.loc)
        seen.add(n.id)
    for n in graph.nodes:
        for u in n.inputs:
            if u.node not in seen:
                raise graph.error(VerifyError, n.id,
                                  f"operand %{u.node} is not a node of the graph")
        count, lo, hi = len(n.inputs), n.op.min_inputs, n.op.max_inputs
        if count < lo or (hi is not None and count > hi):
            want = f"exactly {lo}" if lo == hi else (f"at least {lo}" if hi is None else
                                                     f"{lo} to {hi}")
            raise graph.error(VerifyError, n.id, f"has {count} operands, expected {want}")
    if not graph.inputs:
        raise VerifyError(f"graph @{graph.name} has no io.input node")
    if not graph.outputs:
        raise VerifyError(f"graph @{graph.name} has no io.output node")
    reachable = reachable_from_inputs(graph)
    for n in graph.nodes:
        if n.id not in reachable:
            raise graph.error(VerifyError, n.id, "is not reachable from any io.input (dangling)")
    cycle = same_step_cycle(graph)
    if cycle is not None:
        path = " -> ".join("%" + c for c in cycle)
        raise graph.error(VerifyError, cycle[0],
                          f"is on a cycle of same-step edges ({path}); every cycle needs a "
                          f"delay (an edge read at [t-1] or a snn.delay node)")
    _verify_types(graph)
    _verify_param_refs(graph)
    if graph.attrs.dt is None:
        for n in graph.nodes:
            if n.op.uses_dt:
                raise graph.error(VerifyError, n.id,
                                  "needs the time step, but the graph attribute dt is not set")
    if graph.schedule is not None:
        _verify_schedule(graph)


def _verify_types(graph: Graph) -> None:
    types = inferred_types(graph)
    for before in graph.nodes:
        declared = before.op.type if isinstance(before.op, Input) else None
        if declared is not None and before.type is not None and before.type != declared:
            raise graph.error(ShapeError, before.id,
                              f"type {before.type} differs from its declared input type "
                              f"{declared}")
        after = types[before.id]
        if before.type is not None and before.type != after:
            raise graph.error(ShapeError, before.id,
                              f"records type {before.type}, but its operands give {after}")


def _verify_param_refs(graph: Graph) -> None:
    # Derived parameters declare their own type first, so a node that reads one with
    # another type is reported at the node.
    first: dict[str, tuple[str, ParamRef]] = {
        d.name: (f"derived parameter @{d.name}", d.ref) for d in graph.derived}
    for n in graph.nodes:
        for field, ref in n.op.params():
            if ref.name in first and first[ref.name][1].type != ref.type:
                other, prev = first[ref.name]
                where = other if other.startswith("derived") else "%" + other
                raise graph.error(
                    VerifyError, n.id,
                    f"parameter {field} @{ref.name} is declared {ref.type}, but {where} "
                    f"declares it {prev.type}",
                )
            first.setdefault(ref.name, (n.id, ref))
    _verify_derived(graph, first)


def _verify_derived(graph: Graph, first: dict[str, tuple[str, ParamRef]]) -> None:
    """Derived parameters: unique names, arguments defined earlier (so no cycle), argument
    types that agree with every other reference, and the type their function gives."""
    names = {d.name for d in graph.derived}
    done: set[str] = set()
    for d in graph.derived:
        where = f"derived parameter @{d.name}"
        if d.name in done:
            raise VerifyError(f"{where} is defined twice")
        for a in d.args:
            if a.name in names and a.name not in done:
                raise VerifyError(f"{where} reads @{a.name}, which is not defined before "
                                  f"it (derived parameters are listed in dependency order, "
                                  f"so they cannot form a cycle)")
            if a.name in first and first[a.name][1].type != a.type:
                owner, prev = first[a.name]
                owner = owner if owner.startswith("derived") else "%" + owner
                raise VerifyError(f"{where} reads @{a.name} as {a.type}, but {owner} "
                                  f"declares it {prev.type}")
            first.setdefault(a.name, (f"derived parameter @{d.name}", a))
        try:
            want = derived_type(d.fn, d.args, dict(d.attrs))
        except DerivedTypeError as e:
            raise VerifyError(f"{where} = {d.fn}(...): {e.reason}") from None
        if want != d.type:
            raise VerifyError(f"{where} is declared {d.type}, but {d.fn} of its arguments "
                              f"gives {want}")
        done.add(d.name)
    seen: set[str] = set()
    for ref in graph.retained:
        if ref.name in names:
            raise VerifyError(f"retained parameter @{ref.name} clashes with the derived "
                              f"parameter of that name")
        if ref.name in first or ref.name in seen:
            raise VerifyError(f"retained parameter @{ref.name} is read by the graph or "
                              f"listed twice; retained parameters are those nothing reads")
        seen.add(ref.name)


def _verify_schedule(graph: Graph) -> None:
    assert graph.schedule is not None
    count: dict[str, int] = {}
    for seg in graph.schedule.segments:
        for nid in seg.nodes:
            if nid not in graph:
                raise VerifyError(f"schedule names %{nid}, which is not a node of the graph")
            count[nid] = count.get(nid, 0) + 1
    for n in graph.nodes:
        times = count.get(n.id, 0)
        if times != 1:
            raise graph.error(VerifyError, n.id,
                              f"appears {times} times in the schedule, expected once")


def param_owners(graph: Graph) -> dict[str, str]:
    """For every user parameter, who reads it, for messages: ``%node``, ``derived
    parameter @name`` or ``no node (retained)``."""
    owners: dict[str, str] = {}
    for n in graph.nodes:
        for _, ref in n.op.params():
            owners.setdefault(ref.name, "%" + n.id)
    for d in graph.derived:
        for a in d.args:
            owners.setdefault(a.name, f"derived parameter @{d.name}")
    for ref in graph.retained:
        owners.setdefault(ref.name, "no node (retained)")
    return owners


def verify_params(graph: Graph, params: Mapping[str, Any]) -> None:
    """Raise :class:`ParamError` unless ``params`` holds exactly the parameters the graph
    takes from the user (derived ones excluded), each an array of its declared shape and
    dtype."""
    if not isinstance(params, Mapping):
        raise ParamError("params must be a mapping from names to arrays, got "
                         f"{type(params).__name__}")
    refs = check_param_names(graph, params)
    for name, ref in refs.items():
        if not _is_array_of(params[name], ref):  # the owners only for the message
            check_array(name, params[name], ref, owner=param_owners(graph)[name])


def check_param_names(graph: Graph, params: Mapping[str, Any]) -> dict[str, ParamRef]:
    """The graph's user parameters by name; :class:`ParamError` unless ``params`` names
    exactly them (missing ones with the nodes that read them, derived ones called so)."""
    refs = graph.user_param_refs()
    missing = sorted(set(refs) - set(params))
    if missing:
        owners = param_owners(graph)
        names = ", ".join("@" + m for m in missing)
        raise ParamError(f"missing parameter(s) {names} (used by "
                         f"{', '.join(owners[m] for m in missing)})")
    extra = sorted(set(params) - set(refs))
    if extra:
        derived = [e for e in extra if e in graph.derived_index]
        if derived:
            raise ParamError(f"parameter(s) {', '.join('@' + e for e in derived)} are derived "
                             f"(computed from the others); do not pass them")
        raise ParamError(f"unexpected parameter(s) {', '.join('@' + e for e in extra)}: "
                         f"no node of graph @{graph.name} references them")
    return refs


def _is_array_of(value: Any, ref: ParamRef) -> bool:
    """Whether ``value`` is an array of ``ref``'s type (what :func:`check_array` checks)."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is None or dtype is None:
        return False
    return (tuple(shape) == ref.type.shape
            and _dtype_name(np.dtype(dtype)) == NUMPY_DTYPE_NAMES[ref.type.dtype])


@functools.cache
def _dtype_name(dtype: np.dtype[Any]) -> str:
    return dtype.name  # a slow property of numpy's, asked once per parameter


def check_array(name: str, value: Any, ref: ParamRef, *, owner: str | None = None) -> None:
    """Raise :class:`ParamError` unless ``value`` is an array of ``ref``'s type.

    ``owner`` says who reads the parameter (``%fc``, as :func:`param_owners` gives it).
    """
    where = f"parameter @{name}" + (f" of {owner}" if owner else "")
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is None or dtype is None:
        raise ParamError(f"{where}: expected an array {ref.type}, got {type(value).__name__}")
    got = np.dtype(dtype).name
    want = NUMPY_DTYPE_NAMES[ref.type.dtype]
    if tuple(shape) != ref.type.shape or got != want:
        raise ParamError(f"{where}: expected {ref.type} ({want}), got {got} array of shape "
                         f"{list(shape)}")
