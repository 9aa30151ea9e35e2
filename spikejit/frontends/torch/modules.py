"""The torch module registry: module type -> IR builder (and state-dict writer).

``from_torch`` traces a model with ``torch.fx``; every call of a module whose type is
registered here becomes IR made by that type's *builder*, and every registered type is a
leaf of the trace (its ``forward`` is not looked into). ``to_torch_state_dict`` asks the
type's *writer* for the state-dict entries that the converted parameters give back.

A builder gets a :class:`ModuleCall` (the module, its torch path, its summed input and a way
to add nodes and parameters) and returns the module's output value. A writer gets a
:class:`WriteContext` (the nodes one call produced and the trained params) and returns
``{state-dict key relative to the module: array}``. Without a writer, the default one
maps every parameter ``<path>.<attr>`` to the state-dict key ``<attr>``, which is right
for any module whose IR parameters are its own tensors unchanged (``nn.Linear``,
``nn.Conv2d``, most user layers).

Node ids are the torch module paths (``layers.0``); parameters are ``<path>.<field>``
(``layers.0.weight``); each node's ``loc`` is ``torch:<path> (<kind>)``, where ``kind``
names the registry entry the writer is found by (``torch.nn.Linear``). Extra nodes a
builder needs get ``<path>/<role>`` ids (``lif1/reset``) or, when they stand for a real
torch submodule, its path (``lif1.recurrent``).

This module imports torch only inside functions, so that importing it is cheap; the
builders for ``torch.nn`` layers are registered when :func:`default_rules` first runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spikejit.errors import FrontendError
from spikejit.ir.graph import Node, Use
from spikejit.ir.ops import Op
from spikejit.ir.types import ParamRef, TensorType


@dataclass(frozen=True)
class TorchValue:
    """A traced tensor: the summed outputs of ``uses`` (fan-in), of per-sample ``type``."""

    uses: tuple[Use, ...]
    type: TensorType


@dataclass(frozen=True)
class TupleResult:
    """A module output that is a tuple ``(main, *states)``, e.g. ``(spk, mem)``.

    ``result[0]`` is ``main``; the other elements are the module's own state, which
    spikejit keeps inside the graph (they may be returned by the model, where they are
    dropped, but not computed with).
    """

    main: TorchValue


Builder = Callable[["ModuleCall"], "TorchValue | TupleResult"]
Writer = Callable[["WriteContext"], Mapping[str, Any]]


@dataclass
class ModuleCall:
    """One call of a registered module, as a builder sees it.

    Attributes:
        module: The torch module.
        path: Its qualified name in the model (``""`` for the root module).
        node_id: The id for the node that stands for the module (``path``, ``root`` for
            the root, ``path:k`` for the k-th repeated call of a stateless module).
        param_base: The prefix of the module's parameter names (``path`` or ``root``).
        x: The module's (summed) input.
        dt: The graph's time step in seconds.
        kind: The registry entry's kind (written into each node's ``loc``).
        options: Short flags the writer needs (also written into the ``loc``).
    """

    module: Any
    path: str
    node_id: str
    param_base: str
    x: TorchValue
    dt: float
    kind: str
    add_node: Callable[[str, Op, Sequence[Use]], TorchValue]
    add_param: Callable[[str, np.ndarray], ParamRef]
    options: list[str] = field(default_factory=list)

    def where(self) -> str:
        """``module 'path' (Type)`` for messages."""
        name = self.path or "<root>"
        return f"module {name!r} ({type(self.module).__module__}.{type(self.module).__name__})"

    def error(self, reason: str) -> FrontendError:
        """A :class:`FrontendError` that names this module."""
        return FrontendError(f"{self.where()}: {reason}")

    def param(self, field_name: str, value: Any, *, owner: str | None = None) -> ParamRef:
        """Register ``value`` as parameter ``<owner or param_base>.<field_name>`` (float32)."""
        arr = np.asarray(to_numpy(value), dtype=np.float32)
        return self.add_param(f"{owner or self.param_base}.{field_name}", arr)

    def add(self, op: Op, inputs: Sequence[Use] | TorchValue, *,
            node_id: str | None = None) -> TorchValue:
        """Add a node (id ``node_id`` or this call's ``node_id``) and return its output."""
        uses = inputs.uses if isinstance(inputs, TorchValue) else tuple(inputs)
        return self.add_node(node_id or self.node_id, op, uses)

    def sub_id(self, role: str) -> str:
        """The id of an extra node this call adds: ``<node_id>/<role>``."""
        return f"{self.node_id}/{role}"


@dataclass(frozen=True)
class WriteContext:
    """What a writer sees: the nodes of one module call and the (trained) parameters.

    Attributes:
        path: The module's torch path (``""`` for the root).
        kind: The registry kind.
        options: The flags the builder recorded.
        nodes: The nodes the call produced, in graph order.
        params: ``{name: array}`` (numpy or JAX arrays).
        dt: The graph's time step (``None`` if unset).
        types: Every node's output type, by id (the whole graph, typed).
    """

    path: str
    kind: str
    options: tuple[str, ...]
    nodes: tuple[Node, ...]
    params: Mapping[str, Any]
    dt: float | None
    types: Mapping[str, TensorType]

    @property
    def param_base(self) -> str:
        """The prefix of this module's parameter names."""
        return self.path or "root"

    def error(self, reason: str) -> FrontendError:
        """A :class:`FrontendError` that names the module."""
        return FrontendError(f"to_torch_state_dict: module {self.path or '<root>'!r} "
                             f"({self.kind}): {reason}")

    def node(self, node_id: str) -> Node | None:
        """The node of this call with id ``node_id`` (``None`` if it has none)."""
        return next((n for n in self.nodes if n.id == node_id), None)

    def find(self, op_type: type[Op] | tuple[type[Op], ...]) -> Node | None:
        """The first node of this call whose op is an instance of ``op_type``."""
        return next((n for n in self.nodes if isinstance(n.op, op_type)), None)

    def value(self, node: Node, field_name: str) -> np.ndarray | None:
        """The float64 value of ``node``'s parameter ``field_name`` (``None`` if omitted)."""
        ref = getattr(node.op, field_name)
        if ref is None:
            return None
        return np.asarray(self.params[ref.name], dtype=np.float64)

    def param_name(self, node: Node, field_name: str) -> str:
        """The name of ``node``'s parameter ``field_name`` (the field name if omitted)."""
        ref = getattr(node.op, field_name)
        return ref.name if isinstance(ref, ParamRef) else field_name

    def input_type(self, node: Node) -> TensorType:
        """The type of ``node``'s first operand."""
        return self.types[node.inputs[0].node]

    def require_dt(self) -> float:
        """The graph's ``dt``; an error if the graph has none."""
        if self.dt is None:
            raise self.error("the graph has no dt, which this module's parameters need")
        return self.dt


@dataclass(frozen=True)
class TorchModuleRule:
    """A registry entry: how to build IR for a module type and how to write it back."""

    module_type: type
    build: Builder
    write: Writer | None
    kind: str
    summary: str


_RULES: dict[type, TorchModuleRule] = {}
_KINDS: dict[str, TorchModuleRule] = {}
_DEFAULTS_LOADED = False


def register_torch_module(module_type: type, build: Builder, write: Writer | None = None, *,
                          kind: str | None = None, summary: str = "",
                          replace: bool = False) -> TorchModuleRule:
    """Teach ``from_torch`` a module type.

    Args:
        module_type: The exact class (subclasses are not matched: a subclass may change
            ``forward``). Registered types are leaves of the trace.
        build: ``build(call: ModuleCall) -> TorchValue | TupleResult`` adds the module's
            nodes (via ``call.add`` and ``call.param``) and returns its output.
        write: ``write(ctx: WriteContext) -> {key: array}`` gives the module's state-dict
            entries (keys relative to the module); default: parameter ``<path>.<attr>``
            becomes key ``<attr>``.
        kind: The name recorded in each node's ``loc`` to find the writer again
            (default ``<module>.<qualname>`` of the class).
        summary: One line for the supported-module list in error messages.
        replace: Allow replacing an existing entry for ``module_type`` or ``kind``.

    Returns:
        The registry entry.
    """
    if not isinstance(module_type, type):
        raise FrontendError(f"register_torch_module: expected a class, got {module_type!r}")
    default_rules()  # so that a user entry replaces the built-in one, not the reverse
    kind = kind or f"{module_type.__module__}.{module_type.__qualname__}"
    if not replace and (module_type in _RULES or kind in _KINDS):
        raise FrontendError(f"register_torch_module: {kind} is already registered "
                            f"(pass replace=True to override it)")
    if any(c in kind for c in " ();"):
        raise FrontendError(f"register_torch_module: kind {kind!r} must not contain spaces, "
                            f"parentheses or ';'")
    rule = TorchModuleRule(module_type, build, write, kind, summary)
    old = _RULES.get(module_type)
    if old is not None:
        _KINDS.pop(old.kind, None)
    _RULES[module_type] = rule
    _KINDS[kind] = rule
    return rule


def rule_for_module(module: Any) -> TorchModuleRule | None:
    """The entry for ``type(module)`` exactly, or ``None``."""
    default_rules()
    return _RULES.get(type(module))


def rule_for_kind(kind: str) -> TorchModuleRule | None:
    """The entry with this kind, or ``None``."""
    default_rules()
    return _KINDS.get(kind)


def supported_modules() -> list[str]:
    """``kind`` (and summary) of every registered module type, sorted."""
    default_rules()
    return sorted(f"{r.kind}" + (f" ({r.summary})" if r.summary else "") for r in _RULES.values())


def default_write(ctx: WriteContext) -> dict[str, Any]:
    """Parameter ``<param_base>.<attr>`` -> state-dict key ``<attr>``, unchanged."""
    prefix = ctx.param_base + "."
    out: dict[str, Any] = {}
    for node in ctx.nodes:
        for _, ref in node.op.params():
            if not ref.name.startswith(prefix):
                raise ctx.error(f"parameter @{ref.name} of %{node.id} has no state-dict key "
                                f"(it is not named {prefix}<attr>); register a writer")
            out[ref.name[len(prefix):]] = np.asarray(ctx.params[ref.name], dtype=np.float32)
    return out


def to_numpy(value: Any) -> np.ndarray:
    """A torch tensor (detached, on CPU), number or array as a numpy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return np.asarray(value.numpy())
    return np.asarray(value)


def default_rules() -> None:
    """Register the builders for ``torch.nn`` layers (once; needs torch)."""
    global _DEFAULTS_LOADED
    if _DEFAULTS_LOADED:
        return
    _DEFAULTS_LOADED = True
    # Imported here: the torch.nn rules register through this module, like the
    # snnTorch/Norse ones.
    from spikejit.frontends.torch.nn import register_nn

    register_nn()
