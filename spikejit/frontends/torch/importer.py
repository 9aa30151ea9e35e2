"""``from_torch``: a torch model (``torch.nn``, snnTorch, Norse) in, spikejit IR out.

The model's ``forward`` is read as **one time step**: ``y[t] = forward(x[t])`` on
``[B, *input_shape]``, with every neuron keeping its state from step to step. It is
traced with ``torch.fx``; modules whose type is registered (:mod:`.modules`, and
the snnTorch/Norse neurons when those libraries are loaded) are leaves, turned into IR by
their builders. Containers and user modules are traced through. Between modules the trace
may add tensors (``a + b`` becomes fan-in), flatten per sample (``x.flatten(1)``,
``x.view(x.size(0), -1)``), unpack neuron results (``spk, mem = lif(x)``) and return
neuron states (dropped: spikejit keeps state inside the graph). Anything else is a
:class:`FrontendError` naming the module or the line of ``forward``.

``to_torch_state_dict`` (:mod:`.state_dict`) writes trained params back, found through
each node's ``loc`` (``torch:<path> (<kind>)``). What the trace accepts between modules is
in :mod:`.calls`.
"""

from __future__ import annotations

import inspect
import itertools
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from spikejit.errors import FrontendError
from spikejit.frontends.draft import GraphDraft, fan_in_type, first_mismatch
from spikejit.frontends.torch.calls import NeuronState, call_function, describe
from spikejit.frontends.torch.modules import (
    ModuleCall,
    TorchValue,
    TupleResult,
    register_torch_module,
    rule_for_module,
    supported_modules,
)
from spikejit.ir.graph import Graph, GraphAttrs, Use
from spikejit.ir.ops import Input, Op, OpError, Output
from spikejit.ir.shapes import infer_types
from spikejit.ir.types import ParamRef, TensorType
from spikejit.ir.verify import verify

#: The SNN libraries with rule modules, loaded once the user has imported the library.
LIBRARIES = {"snntorch": "spikejit.frontends.torch.snntorch",
             "norse": "spikejit.frontends.torch.norse"}


def load_library_rules(force: str | None = None) -> None:
    """Register the snnTorch/Norse builders for libraries the user has imported."""
    import importlib

    for lib, mod in LIBRARIES.items():
        if lib in sys.modules or lib == force:
            importlib.import_module(mod)


def import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise FrontendError("the torch frontend needs PyTorch: pip install 'spikejit[torch]'"
                            ) from None
    return torch


class Trace:
    """Builds the graph (through the frontends' one :class:`GraphDraft`) while the trace
    is walked: node ids from module paths, each node typed as it is added."""

    def __init__(self, root: Any, dt: float) -> None:
        self.root = root
        self.dt = dt
        self.draft = GraphDraft()
        self.owners: dict[str, ModuleCall | str] = {}
        self.calls: dict[str, int] = {}
        self.taken = {name for name, _ in root.named_modules() if name} | {"root"}

    def fresh_id(self, want: str) -> str:
        nid, k = want, 1
        while nid in self.taken or nid in self.draft:
            nid, k = f"{want}_{k}", k + 1
        self.taken.add(nid)
        return nid

    def add_node(self, node_id: str, op: Op, uses: Sequence[Use],
                 owner: ModuleCall | str) -> TorchValue:
        where = owner.where() if isinstance(owner, ModuleCall) else f"{owner!r} in forward"
        if node_id in self.draft:
            raise FrontendError(f"{where}: node id %{node_id} is used twice")
        known = self.draft.known_operands(uses)
        if first_mismatch(known) is not None:
            raise FrontendError(f"{where}: operands of %{node_id} have different shapes "
                                f"{', '.join(str(t) for _, t in known)}")
        if uses and not known:
            raise FrontendError(f"{where}: no operand of %{node_id} is known yet")
        in_type = fan_in_type(known, len(uses))
        try:
            out = op.infer_type(in_type)
        except OpError as e:
            raise FrontendError(f"{where}: {op.mnemonic} %{node_id}: {e.reason}") from None
        # The loc is written by finish(): a module's builder may still add options to it.
        self.draft.add(node_id, op, uses, type=out)
        self.taken.add(node_id)
        self.owners[node_id] = owner
        return TorchValue((Use(node_id),), out)

    def add_param(self, name: str, value: np.ndarray) -> ParamRef:
        ref = self.draft.bind_param(name, value, "f32")
        if ref is None:
            raise FrontendError(f"parameter @{name} is made twice with different values")
        return ref

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
                                f" model input, got {describe(x)}")
        for i, arg in enumerate(extra, start=1):
            if arg is not None:
                # A constant state would restart the neuron at every step in torch; a state
                # computed in forward cannot exist in one step. Threaded state is None here.
                raise FrontendError(
                    f"{what}: argument {i} is {describe(arg)}, but only the input may be "
                    f"given: from_torch converts one time step and keeps each neuron's state "
                    f"(starting at 0) inside the graph; pass state only through forward "
                    f"arguments that default to None, or not at all")
        base = path or "root"
        count = self.calls.get(base, 0)
        self.calls[base] = count + 1
        node_id = base if count == 0 else self.fresh_id(f"{base}:{count}")
        before = len(self.draft.ops)
        call = ModuleCall(module=module, path=path, node_id=node_id, param_base=base, x=x,
                          dt=self.dt, kind=rule.kind, add_node=lambda *a: self._add(call, *a),
                          add_param=self.add_param)
        result = rule.build(call)
        # The ops this call added, newest first (O(added), not O(graph)).
        made = itertools.islice(reversed(self.draft.ops.values()), len(self.draft.ops) - before)
        if count > 0 and any(op.state_vars for op in made):
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
        for node_id, owner in self.owners.items():
            if isinstance(owner, ModuleCall):
                opts = f"; {','.join(owner.options)}" if owner.options else ""
                self.draft.locs[node_id] = f"torch:{owner.path} ({owner.kind}{opts})"
            else:
                self.draft.locs[node_id] = f"torch:{owner}"
        graph = infer_types(self.draft.graph(name, GraphAttrs(dt=self.dt)))
        verify(graph, self.draft.params)
        return graph, dict(self.draft.params)


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
    torch = import_torch()
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
    load_library_rules()
    b = Trace(module, float(dt))
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


def _walk(module: Any, shape: tuple[int, ...], b: Trace) -> list[Any]:
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
            if lib in LIBRARIES and not isinstance(m, torch.nn.Sequential):
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
            env[n] = call_function(b, n, fx.node.map_arg(n.args, env.__getitem__),
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
    elif value is not None and not isinstance(value, NeuronState):
        raise FrontendError(f"from_torch: the model returns {describe(value)}; only tensors "
                            f"computed from the input (and neuron states, which are dropped) "
                            f"can be returned")


__all__ = ["Trace", "from_torch", "import_torch", "load_library_rules", "register_torch_module"]
