"""``from_torch``: a torch model (``torch.nn``, snnTorch, Norse) in, spikejit IR out.

The model's ``forward`` is read as **one time step**: ``y[t] = forward(x[t])`` on
``[B, *input_shape]``, with every neuron keeping its state from step to step. It is
traced with ``torch.fx``; modules whose type is registered (:mod:`.torch_modules`, and
the snnTorch/Norse neurons when those libraries are loaded) are leaves, turned into IR by
their builders. Containers and user modules are traced through. Between modules the trace
may add tensors (``a + b`` becomes fan-in), flatten per sample (``x.flatten(1)``,
``x.view(x.size(0), -1)``), unpack neuron results (``spk, mem = lif(x)``) and return
neuron states (dropped: spikejit keeps state inside the graph). Anything else is a
:class:`FrontendError` naming the module or the line of ``forward``.

``to_torch_state_dict`` writes trained params back, found through each node's ``loc``
(``torch:<path> (<kind>)``).
"""

from __future__ import annotations

import inspect
import operator
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spikejit.errors import FrontendError
from spikejit.frontends.torch_modules import (
    ModuleCall,
    TorchValue,
    TupleResult,
    WriteContext,
    default_write,
    register_torch_module,
    rule_for_kind,
    rule_for_module,
    supported_modules,
    to_numpy,
)
from spikejit.ir.graph import Graph, GraphAttrs, Node, Use
from spikejit.ir.ops import Input, Op, OpError, Output
from spikejit.ir.shapes import infer_types
from spikejit.ir.types import ParamRef, TensorType
from spikejit.ir.verify import verify, verify_params

_LIBRARIES = {"snntorch": "spikejit.frontends.torch_snntorch",
              "norse": "spikejit.frontends.torch_norse"}


def _load_library_rules(force: str | None = None) -> None:
    """Register the snnTorch/Norse builders for libraries the user has imported."""
    import importlib

    for lib, mod in _LIBRARIES.items():
        if lib in sys.modules or lib == force:
            importlib.import_module(mod)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise FrontendError("the torch frontend needs PyTorch: pip install 'spikejit[torch]'"
                            ) from None
    return torch


class _State:
    """A neuron's state (``mem``, a Norse state tuple, ...): may only be returned."""

    def __init__(self, owner: str) -> None:
        self.owner = owner


class _Shape:
    """``x.shape`` / ``x.size()`` of a traced tensor."""

    def __init__(self, value: TorchValue) -> None:
        self.value = value


class _Batch:
    """The batch size (``x.size(0)``)."""


class _GraphBuilder:
    """Collects nodes, types and params while the trace is walked."""

    def __init__(self, root: Any, dt: float) -> None:
        self.root = root
        self.dt = dt
        self.nodes: list[Node] = []
        self.types: dict[str, TensorType] = {}
        self.params: dict[str, np.ndarray] = {}
        self.locs: dict[str, ModuleCall | str] = {}
        self.calls: dict[str, int] = {}
        self.taken = {name for name, _ in root.named_modules() if name} | {"root"}

    def fresh_id(self, want: str) -> str:
        nid, k = want, 1
        while nid in self.taken or nid in self.types:
            nid, k = f"{want}_{k}", k + 1
        self.taken.add(nid)
        return nid

    def add_node(self, node_id: str, op: Op, uses: Sequence[Use],
                 owner: ModuleCall | str) -> TorchValue:
        where = owner.where() if isinstance(owner, ModuleCall) else f"{owner!r} in forward"
        if node_id in self.types:
            raise FrontendError(f"{where}: node id %{node_id} is used twice")
        known = [self.types[u.node] for u in uses if u.node in self.types]
        in_type: TensorType | None = None
        if known:
            if any(t.shape != known[0].shape for t in known):
                raise FrontendError(f"{where}: operands of %{node_id} have different shapes "
                                    f"{', '.join(str(t) for t in known)}")
            in_type = known[0] if len(uses) == 1 else known[0].with_spike(False)
        elif uses:
            raise FrontendError(f"{where}: no operand of %{node_id} is known yet")
        try:
            out = op.infer_type(in_type)
        except OpError as e:
            raise FrontendError(f"{where}: {op.mnemonic} %{node_id}: {e.reason}") from None
        self.nodes.append(Node(node_id, op, tuple(uses)))
        self.types[node_id] = out
        self.taken.add(node_id)
        self.locs[node_id] = owner
        return TorchValue((Use(node_id),), out)

    def add_param(self, name: str, value: np.ndarray) -> ParamRef:
        old = self.params.get(name)
        if old is not None and (old.shape != value.shape or not np.array_equal(old, value)):
            raise FrontendError(f"parameter @{name} is made twice with different values")
        self.params[name] = value
        return ParamRef(name, TensorType(tuple(value.shape), "f32"))

    def call_module(self, module: Any, path: str, x: Any, extra: Sequence[Any]) -> Any:
        rule = rule_for_module(module)
        name = path or "<root>"
        what = f"module {name!r} ({type(module).__module__}.{type(module).__qualname__})"
        if rule is None:
            raise FrontendError(
                f"{what} is not supported. Supported modules: {'; '.join(supported_modules())}"
                f". Register others with spikejit.register_torch_module(type, builder).")
        if not isinstance(x, TorchValue):
            raise FrontendError(f"{what}: its first argument must be a tensor computed from the"
                                f" model input, got {_describe(x)}")
        for i, arg in enumerate(extra, start=1):
            if arg is not None:
                # A constant state would restart the neuron at every step in torch; a state
                # computed in forward cannot exist in one step. Threaded state is None here.
                raise FrontendError(
                    f"{what}: argument {i} is {_describe(arg)}, but only the input may be "
                    f"given: from_torch converts one time step and keeps each neuron's state "
                    f"(starting at 0) inside the graph; pass state only through forward "
                    f"arguments that default to None, or not at all")
        base = path or "root"
        count = self.calls.get(base, 0)
        self.calls[base] = count + 1
        node_id = base if count == 0 else self.fresh_id(f"{base}:{count}")
        before = len(self.nodes)
        call = ModuleCall(module=module, path=path, node_id=node_id, param_base=base, x=x,
                          dt=self.dt, kind=rule.kind, add_node=lambda *a: self._add(call, *a),
                          add_param=self.add_param)
        result = rule.build(call)
        made = self.nodes[before:]
        if count > 0 and any(n.op.state_vars for n in made):
            raise FrontendError(f"{what} is called {count + 1} times in one step; a neuron "
                                f"module holds one state, so from_torch needs one call per step "
                                f"(write forward for a single time step)")
        if not isinstance(result, TorchValue | TupleResult):
            raise FrontendError(f"{what}: its builder returned {type(result).__name__}, "
                                f"expected TorchValue or TupleResult")
        return result

    def _add(self, call: ModuleCall, node_id: str, op: Op, uses: Sequence[Use]) -> TorchValue:
        return self.add_node(node_id, op, uses, call)

    def finish(self, name: str) -> tuple[Graph, dict[str, np.ndarray]]:
        nodes = []
        for node in self.nodes:
            owner = self.locs[node.id]
            if isinstance(owner, ModuleCall):
                opts = f"; {','.join(owner.options)}" if owner.options else ""
                loc = f"torch:{owner.path} ({owner.kind}{opts})"
            else:
                loc = f"torch:{owner}"
            nodes.append(node.replace(loc=loc))
        graph = infer_types(Graph(tuple(nodes), name=name, attrs=GraphAttrs(dt=self.dt)))
        verify(graph, self.params)
        return graph, dict(self.params)


def _describe(value: Any) -> str:
    if isinstance(value, TorchValue):
        return f"a tensor {value.type}"
    if isinstance(value, _State):
        return f"the state of neuron {value.owner!r}"
    if isinstance(value, TupleResult):
        return "a neuron's whole result tuple (unpack it: spk, mem = neuron(x))"
    return f"{type(value).__name__} {value!r}"[:120]


def from_torch(module: Any, input_shape: Sequence[int], *, dt: float,
               name: str | None = None) -> tuple[Graph, dict[str, np.ndarray]]:
    """Convert a torch model (one time step of it) to a spikejit graph and params.

    Args:
        module: A ``torch.nn.Module``; ``forward(x)`` computes one time step on
            ``[B, *input_shape]``. Further ``forward`` arguments must have defaults (they
            are fixed to them, typically ``state=None``).
        input_shape: The per-sample input shape, channels first (no batch, no time).
        dt: The time step in seconds (the graph's ``dt``). snnTorch neurons are exact for
            any ``dt`` (their ``beta`` becomes ``tau = dt/(1-beta)``); Norse cells must
            have this ``dt``.
        name: The graph name (default: the model's class name).

    Returns:
        ``(graph, params)``: node ids are torch module paths, params ``{path}.{field}``
        float32 arrays, ``loc`` is ``torch:<path> (<kind>)``.

    Raises:
        FrontendError: an unsupported module, function, option or argument (named).
    """
    torch = _import_torch()
    if not isinstance(module, torch.nn.Module):
        raise FrontendError(f"from_torch: expected a torch.nn.Module, got {type(module).__name__}")
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise FrontendError(f"from_torch: input_shape must be a sequence of ints, got "
                            f"{input_shape!r}") from None
    if any(d < 1 for d in shape):
        raise FrontendError(f"from_torch: input_shape {list(shape)} must hold sizes >= 1")
    if isinstance(dt, bool) or not isinstance(dt, int | float) or not 0 < dt < float("inf"):
        raise FrontendError(f"from_torch: dt must be a positive number of seconds, got {dt!r}")
    _load_library_rules()
    b = _GraphBuilder(module, float(dt))
    if rule_for_module(module) is not None:
        x = b.add_node(b.fresh_id("input"), Input(type=TensorType(shape)), (), "forward(input)")
        outputs = [b.call_module(module, "", x, ())]
    else:
        outputs = _walk(module, shape, b)
    values = [o.main if isinstance(o, TupleResult) else o for o in outputs]
    if not values:
        raise FrontendError("from_torch: the model returns no tensor (only neuron states?)")
    for i, v in enumerate(values):
        label = "return" if len(values) == 1 else f"return[{i}]"
        b.add_node(b.fresh_id("output" if len(values) == 1 else f"output{i}"), Output(),
                   v.uses, label)
    return b.finish(name or type(module).__name__)


def _walk(module: Any, shape: tuple[int, ...], b: _GraphBuilder) -> list[Any]:
    """Trace ``module.forward`` with torch.fx and build IR for every traced operation."""
    import torch
    import torch.fx as fx

    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
             inspect.Parameter.KEYWORD_ONLY)
    sig = inspect.signature(module.forward).parameters.values()
    if any(p.kind not in kinds for p in sig):
        raise FrontendError(f"from_torch: {type(module).__name__}.forward takes *args or "
                            f"**kwargs; give it named arguments (input first)")
    args = list(sig)
    if not args or args[0].kind == inspect.Parameter.KEYWORD_ONLY:
        raise FrontendError(f"from_torch: {type(module).__name__}.forward must take the input "
                            f"as its first argument")
    concrete: dict[str, Any] = {}
    for p in args[1:]:
        if p.default is inspect.Parameter.empty:
            raise FrontendError(
                f"from_torch: argument {p.name!r} of {type(module).__name__}.forward has no "
                f"default; from_torch feeds only the input and keeps neuron state inside the "
                f"graph, so other arguments (e.g. state=None) need defaults")
        concrete[p.name] = p.default

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m: Any, qualname: str) -> bool:
            if rule_for_module(m) is not None:
                return True
            # Unregistered neurons of the SNN libraries are leaves too, so that they are
            # reported as unsupported modules instead of failing inside library code.
            lib = type(m).__module__.split(".")[0]
            if lib in _LIBRARIES and not isinstance(m, torch.nn.Sequential):
                return True
            return super().is_leaf_module(m, qualname)

    tracer = Tracer()
    tracer.record_stack_traces = True
    try:
        traced = tracer.trace(module, concrete_args=concrete or None)
    except FrontendError:
        raise
    except Exception as e:  # fx raises many types (TraceError, TypeError, ...)
        raise FrontendError(
            f"from_torch: torch.fx cannot trace {type(module).__name__}.forward ({e}). Write "
            f"forward as one time step without data-dependent control flow, or register the "
            f"module type that cannot be traced with spikejit.register_torch_module") from e
    env: dict[Any, Any] = {}
    outputs: list[Any] = []
    # fx renames specialised placeholders (state -> state_1); they come in signature order.
    names = iter([args[0].name, *concrete])
    for n in traced.nodes:
        if n.op == "placeholder":
            pname = next(names)
            if pname == args[0].name:
                env[n] = b.add_node(b.fresh_id(pname), Input(type=TensorType(shape)), (),
                                    f"forward({pname})")
            else:
                env[n] = concrete[pname]
        elif n.op == "get_attr":
            env[n] = _fetch_attr(module, n.target)
        elif n.op == "call_module":
            cargs = fx.node.map_arg(n.args, env.__getitem__)
            ckw = fx.node.map_arg(n.kwargs, env.__getitem__)
            first, rest = (cargs[0], cargs[1:]) if cargs else (None, ())
            env[n] = b.call_module(module.get_submodule(n.target), n.target, first,
                                   [*rest, *ckw.values()])
        elif n.op in ("call_function", "call_method"):
            env[n] = _call(b, n, fx.node.map_arg(n.args, env.__getitem__),
                           fx.node.map_arg(n.kwargs, env.__getitem__))
        elif n.op == "output":
            _collect(fx.node.map_arg(n.args[0], env.__getitem__), outputs)
    return outputs


def _fetch_attr(module: Any, target: str) -> Any:
    obj = module
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _collect(value: Any, out: list[Any]) -> None:
    if isinstance(value, TorchValue | TupleResult):
        out.append(value)
    elif isinstance(value, tuple | list):
        for v in value:
            _collect(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _collect(v, out)
    elif value is not None and not isinstance(value, _State):
        raise FrontendError(f"from_torch: the model returns {_describe(value)}; only tensors "
                            f"computed from the input (and neuron states, which are dropped) "
                            f"can be returned")


_FUNCTION_HELP = ("a + b (fan-in), torch.add(a, b), x.flatten(1), torch.flatten(x, 1), "
                  "x.view(x.size(0), -1), x.reshape(x.shape[0], -1), x.size(), x.shape, "
                  "spk, mem = neuron(x)")


def _source(n: Any) -> str:
    """``file:line: code`` of the forward line that made fx node ``n`` (if recorded)."""
    import os

    import torch

    internal = os.path.dirname(torch.__file__)
    trace = (n.stack_trace or "").strip().splitlines()
    for i in range(len(trace) - 1, -1, -1):
        line = trace[i].strip()
        if line.startswith("File ") and internal not in line:
            code = trace[i + 1].strip() if i + 1 < len(trace) else ""
            return f"{line}: {code}"
    return f"fx node {n.name}"


def _call(b: _GraphBuilder, n: Any, args: Any, kwargs: Any) -> Any:
    """Build (or evaluate) one call_function / call_method node of the trace."""
    import torch
    import torch.fx as fx

    target = n.target
    name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    if target is getattr(fx._symbolic_trace, "_assert_is_none", None):
        return None
    x = args[0] if args else None

    def fail(reason: str) -> FrontendError:
        return FrontendError(f"from_torch: at {_source(n)}: {reason}")

    if target is operator.getitem:
        key = args[1]
        if isinstance(x, TupleResult):
            return x.main if key == 0 else _State(n.name)
        if isinstance(x, _State):
            return x
        if isinstance(x, _Shape):
            return _Batch() if key == 0 else x.value.type.shape[key - 1 if key > 0 else key]
        if isinstance(x, tuple | list):
            return x[key]
        raise fail(f"indexing {_describe(x)} is not supported")
    if target is getattr and isinstance(args[1], str):
        if isinstance(x, _State):
            return x
        if isinstance(x, TorchValue) and args[1] == "shape":
            return _Shape(x)
        raise fail(f"attribute {args[1]!r} of {_describe(x)} is not supported")
    if name == "size" and n.op == "call_method" and isinstance(x, TorchValue):
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        if dim is None:
            return _Shape(x)
        return _Batch() if dim == 0 else x.type.shape[dim - 1 if dim > 0 else dim]
    if target in (operator.add, operator.iadd, torch.add) or (
            n.op == "call_method" and name in ("add", "add_")):
        y = args[1] if len(args) > 1 else kwargs.get("other")
        if kwargs.get("alpha", 1) != 1:
            raise fail("torch.add with alpha != 1 is not supported")
        if not (isinstance(x, TorchValue) and isinstance(y, TorchValue)):
            raise fail(f"adding {_describe(x)} and {_describe(y)}: only the sum of two traced "
                       f"tensors (fan-in) is supported")
        if x.type.shape != y.type.shape:
            raise fail(f"adding tensors of shapes {x.type} and {y.type}: fan-in needs equal "
                       f"shapes (no broadcasting)")
        return TorchValue(x.uses + y.uses, x.type.with_spike(False))
    if not isinstance(x, TorchValue):
        raise fail(f"{name} on {_describe(x)} is not supported; supported between modules: "
                   f"{_FUNCTION_HELP}")
    if name == "contiguous":
        return x
    if target is torch.flatten or (n.op == "call_method" and name == "flatten"):
        start = args[1] if len(args) > 1 else kwargs.get("start_dim", 0)
        end = args[2] if len(args) > 2 else kwargs.get("end_dim", -1)
        return _flatten_node(b, n, x, start, end, fail)
    if target is torch.reshape or (n.op == "call_method" and name in ("view", "reshape")):
        dims = args[1:] if len(args) != 2 or not isinstance(args[1], tuple | list) else args[1]
        return _view(b, n, x, list(dims), fail)
    raise fail(f"{name} is not supported between modules; supported: {_FUNCTION_HELP}. "
               f"Wrap other computations in a module and register it with "
               f"spikejit.register_torch_module")


def _flatten_node(b: _GraphBuilder, n: Any, x: TorchValue, start: int, end: int,
                  fail: Any) -> TorchValue:
    from spikejit.ir.ops import Flatten

    full = x.type.rank + 1
    s = start + full if start < 0 else start
    e = end + full if end < 0 else end
    if s < 1:
        raise fail(f"flattening from dim {start} merges the batch axis; use start_dim >= 1 "
                   f"(spikejit keeps batch and time apart)")
    if not s <= e < full:
        raise fail(f"flatten dims ({start}, {end}) do not fit [B, *{list(x.type.shape)}]")
    if s == e:
        return x
    return b.add_node(b.fresh_id(n.name), Flatten(start_dim=s - 1, end_dim=e - 1), x.uses,
                      n.name)


def _view(b: _GraphBuilder, n: Any, x: TorchValue, dims: list[Any], fail: Any) -> TorchValue:
    size = x.type.size
    lead = dims[0] if dims else None
    batch_ok = isinstance(lead, _Batch) or (isinstance(lead, int) and lead >= 1)
    rest = [d.type.shape if isinstance(d, TorchValue) else d for d in dims[1:]]
    if batch_ok and tuple(rest) == x.type.shape:
        return x
    if len(dims) == 2 and (rest[0] in (-1, size) if batch_ok else lead == -1 and rest[0] == size):
        return _flatten_node(b, n, x, 1, -1, fail) if x.type.rank > 1 else x
    raise fail(f"reshaping [B, *{list(x.type.shape)}] to {dims} is not supported; only a "
               f"per-sample flatten (x.view(x.size(0), -1)) is")


def _parse_loc(loc: str) -> tuple[str, str, tuple[str, ...]] | None:
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
        and contribute no keys (see ``spikejit.frontends.torch_norse.norse_parameters``).
    """
    torch = _import_torch()
    verify_params(graph, params)
    typed = infer_types(graph)
    groups: dict[str, list[Node]] = {}
    for node in typed.nodes:
        if _parse_loc(node.loc) is None:
            if any(True for _ in node.op.params()):
                raise FrontendError(f"to_torch_state_dict: %{node.id} has parameters but no "
                                    f"torch origin (loc {node.loc!r}); was the graph made by "
                                    f"from_torch?")
            continue
        groups.setdefault(node.loc, []).append(node)
    types = {n.id: n.type for n in typed.nodes if n.type is not None}
    out: dict[str, Any] = {}
    for loc, nodes in groups.items():
        path, kind, options = _parse_loc(loc)  # type: ignore[misc]
        rule = rule_for_kind(kind)
        if rule is None:
            lib = kind.split(".")[0]
            if lib in _LIBRARIES:
                _load_library_rules(force=lib)
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


__all__ = ["from_torch", "register_torch_module", "to_torch_state_dict"]
