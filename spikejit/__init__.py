"""spikejit: compile spiking neural network graphs to fast, differentiable JAX programs.

Public API (names are imported lazily, so ``import spikejit`` stays cheap and does not load
JAX until something that needs it is used)::

    graph, params = spikejit.from_nir("model.nir", dt=1e-3)   # NIR in
    y = spikejit.interpret(graph, params, x)                  # NumPy reference (oracle)
    model = spikejit.compile("model.nir", dt=1e-3)            # one jitted JAX function
    spikejit.save("model.sjit.npz", graph, params)            # IR text + params, no pickle
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from spikejit.version import __version__

# name -> module that defines it (PEP 562 lazy attributes).
_LAZY: dict[str, str] = {
    "errors": "spikejit.errors",
    "ir": "spikejit.ir",
    "passes": "spikejit.passes",
    "SpikejitError": "spikejit.errors",
    "Graph": "spikejit.ir.graph",
    "print_graph": "spikejit.ir.printer",
    "parse": "spikejit.ir.parser",
    "verify": "spikejit.ir.verify",
    "interpret": "spikejit.ir.interpreter",
    "save": "spikejit.ir.serialize",
    "load": "spikejit.ir.serialize",
    "from_nir": "spikejit.frontends.nir.importer",
    "to_nir": "spikejit.frontends.nir.exporter",
    "write_nir": "spikejit.frontends.nir.exporter",
    "from_torch": "spikejit.frontends.torch.importer",
    "to_torch_state_dict": "spikejit.frontends.torch.state_dict",
    "register_torch_module": "spikejit.frontends.torch.importer",
    "compile": "spikejit.compiler",
    "CompiledModel": "spikejit.compiler",
    "CompileOptions": "spikejit.options",
    "SURROGATES": "spikejit.lowering.surrogates",
    "register_surrogate": "spikejit.lowering.surrogates",
    "GraphBuilder": "spikejit.frontends.builder",
    "Param": "spikejit.frontends.builder",
    "from_networkx": "spikejit.frontends.networkx_io",
    "to_networkx": "spikejit.frontends.networkx_io",
    "from_layers": "spikejit.frontends.layers",
    "Layer": "spikejit.frontends.layers",
    "sequential_structure": "spikejit.frontends.layers",
    "traces_to_input": "spikejit.frontends.traces",
    "output_to_traces": "spikejit.frontends.traces",
    "define_neuron": "spikejit.ir.user_neurons",
    "undefine_neuron": "spikejit.ir.user_neurons",
    "IZHIKEVICH_PRESETS": "spikejit.ir.ops.biophysical",
}


#: Lazy names that are modules rather than attributes of a module.
_SUBMODULES = frozenset({"errors", "ir", "passes"})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spikejit' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if name in _SUBMODULES else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


if TYPE_CHECKING:
    from spikejit import errors, ir, passes
    from spikejit.compiler import CompiledModel, compile
    from spikejit.errors import SpikejitError
    from spikejit.frontends.builder import GraphBuilder, Param
    from spikejit.frontends.layers import Layer, from_layers, sequential_structure
    from spikejit.frontends.networkx_io import from_networkx, to_networkx
    from spikejit.frontends.nir.exporter import to_nir, write_nir
    from spikejit.frontends.nir.importer import from_nir
    from spikejit.frontends.torch.importer import from_torch, register_torch_module
    from spikejit.frontends.torch.state_dict import to_torch_state_dict
    from spikejit.frontends.traces import output_to_traces, traces_to_input
    from spikejit.ir.graph import Graph
    from spikejit.ir.interpreter import interpret
    from spikejit.ir.ops.biophysical import IZHIKEVICH_PRESETS
    from spikejit.ir.parser import parse
    from spikejit.ir.printer import print_graph
    from spikejit.ir.serialize import load, save
    from spikejit.ir.user_neurons import define_neuron, undefine_neuron
    from spikejit.ir.verify import verify
    from spikejit.lowering.surrogates import SURROGATES, register_surrogate
    from spikejit.options import CompileOptions

__all__ = [
    "IZHIKEVICH_PRESETS",
    "SURROGATES",
    "CompileOptions",
    "CompiledModel",
    "Graph",
    "GraphBuilder",
    "Layer",
    "Param",
    "SpikejitError",
    "__version__",
    "compile",
    "define_neuron",
    "errors",
    "from_layers",
    "from_networkx",
    "from_nir",
    "from_torch",
    "interpret",
    "ir",
    "load",
    "output_to_traces",
    "parse",
    "passes",
    "print_graph",
    "register_surrogate",
    "register_torch_module",
    "save",
    "sequential_structure",
    "to_networkx",
    "to_nir",
    "to_torch_state_dict",
    "traces_to_input",
    "undefine_neuron",
    "verify",
    "write_nir",
]
