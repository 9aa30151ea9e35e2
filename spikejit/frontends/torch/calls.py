"""What ``from_torch`` accepts between modules: fan-in sums, per-sample flattens, shape
queries and the unpacking of neuron results (``spk, mem = lif(x)``).

``forward`` is traced with ``torch.fx``; each ``call_function``/``call_method`` node of the
trace comes here (:func:`call_function`) and becomes IR (a ``Flatten``), a traced value
(a sum is fan-in, nothing is added) or is refused with a :class:`FrontendError` that names
the line of ``forward``.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

from spikejit.errors import FrontendError
from spikejit.frontends.torch.modules import TorchValue, TupleResult

if TYPE_CHECKING:
    from spikejit.frontends.torch.importer import Trace


class NeuronState:
    """A neuron's state (``mem``, a Norse state tuple, ...): may only be returned."""

    def __init__(self, owner: str) -> None:
        self.owner = owner


class ShapeValue:
    """``x.shape`` / ``x.size()`` of a traced tensor."""

    def __init__(self, value: TorchValue) -> None:
        self.value = value


class BatchSize:
    """The batch size (``x.size(0)``)."""


def describe(value: Any) -> str:
    if isinstance(value, TorchValue):
        return f"a tensor {value.type}"
    if isinstance(value, NeuronState):
        return f"the state of neuron {value.owner!r}"
    if isinstance(value, TupleResult):
        return "a neuron's whole result tuple (unpack it: spk, mem = neuron(x))"
    return f"{type(value).__name__} {value!r}"[:120]


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


def call_function(b: Trace, n: Any, args: Any, kwargs: Any) -> Any:
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
            return x.main if key == 0 else NeuronState(n.name)
        if isinstance(x, NeuronState):
            return x
        if isinstance(x, ShapeValue):
            return BatchSize() if key == 0 else x.value.type.shape[key - 1 if key > 0 else key]
        if isinstance(x, tuple | list):
            return x[key]
        raise fail(f"indexing {describe(x)} is not supported")
    if target is getattr and isinstance(args[1], str):
        if isinstance(x, NeuronState):
            return x
        if isinstance(x, TorchValue) and args[1] == "shape":
            return ShapeValue(x)
        raise fail(f"attribute {args[1]!r} of {describe(x)} is not supported")
    if name == "size" and n.op == "call_method" and isinstance(x, TorchValue):
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        if dim is None:
            return ShapeValue(x)
        return BatchSize() if dim == 0 else x.type.shape[dim - 1 if dim > 0 else dim]
    if target in (operator.add, operator.iadd, torch.add) or (
            n.op == "call_method" and name in ("add", "add_")):
        y = args[1] if len(args) > 1 else kwargs.get("other")
        if kwargs.get("alpha", 1) != 1:
            raise fail("torch.add with alpha != 1 is not supported")
        if not (isinstance(x, TorchValue) and isinstance(y, TorchValue)):
            raise fail(f"adding {describe(x)} and {describe(y)}: only the sum of two traced "
                       f"tensors (fan-in) is supported")
        if x.type.shape != y.type.shape:
            raise fail(f"adding tensors of shapes {x.type} and {y.type}: fan-in needs equal "
                       f"shapes (no broadcasting)")
        return TorchValue(x.uses + y.uses, x.type.with_spike(False))
    if not isinstance(x, TorchValue):
        raise fail(f"{name} on {describe(x)} is not supported; supported between modules: "
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


def _flatten_node(b: Trace, n: Any, x: TorchValue, start: int, end: int,
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


def _view(b: Trace, n: Any, x: TorchValue, dims: list[Any], fail: Any) -> TorchValue:
    size = x.type.size
    lead = dims[0] if dims else None
    batch_ok = isinstance(lead, BatchSize) or (isinstance(lead, int) and lead >= 1)
    rest = [d.type.shape if isinstance(d, TorchValue) else d for d in dims[1:]]
    if batch_ok and tuple(rest) == x.type.shape:
        return x
    if len(dims) == 2 and (rest[0] in (-1, size) if batch_ok else lead == -1 and rest[0] == size):
        return _flatten_node(b, n, x, 1, -1, fail) if x.type.rank > 1 else x
    raise fail(f"reshaping [B, *{list(x.type.shape)}] to {dims} is not supported; only a "
               f"per-sample flatten (x.view(x.size(0), -1)) is")


__all__ = ["BatchSize", "NeuronState", "ShapeValue", "call_function", "describe"]
