"""PyTorch peers: snnTorch, Norse, and Norse under ``torch.compile``.

Each network is written the way each library's documentation writes it, in its fastest
natural form: ``nn.Linear``/``nn.Conv2d`` run once over all ``T*B`` rows (PyTorch layers
accept the extra time axis), and a Python loop over time runs only the neuron. The same
NumPy weights are copied in.

Semantics against the common network (NIR Euler LIF, ``v = 0.9 v + I``, reset to 0):

* snnTorch ``Leaky(beta=0.9, reset_mechanism="zero")``: identical dynamics (the reset is
  applied at the start of the next step, which gives the same values) and the same detached
  reset and fast-sigmoid surrogate. The recurrent layer is ``Leaky`` plus an
  ``nn.Linear(bias=False)`` on the previous spikes: ``RLeaky``'s zero reset evaluates its
  state function (and so the recurrent matmul) twice and drops the input on the step after
  a spike, a different network.
* Norse ``LIFBoxCell`` (LIF without synaptic current): the same Euler step when fed
  ``r*I``, so the same spikes. Gradients differ for two reasons: its reset
  ``v = (1-z) v + z v_reset`` is *not* detached, and Norse 1.1.0's ``SuperSpike`` backward
  ignores ``alpha`` (it computes ``g/(|x| + 1)^2``, i.e. ``alpha = 1``, whatever is passed).
  With both changes the baseline's gradient equals Norse's (cosine 1.0, checked by hand).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks import workloads as wl
from benchmarks.harness import Prepared

#: Neuron factory: () -> a module with ``step(I_t, state) -> (z_t, state)`` semantics.
StepFn = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]


class SnnTorchLIF(nn.Module):
    """snnTorch ``Leaky`` run over the time axis of ``I[T, B, ...]``."""

    def __init__(self) -> None:
        super().__init__()
        import snntorch as snn
        from snntorch import surrogate

        self.lif = snn.Leaky(beta=wl.BETA, threshold=wl.V_TH, reset_mechanism="zero",
                             spike_grad=surrogate.fast_sigmoid(slope=wl.SLOPE))

    def forward(self, cur: torch.Tensor, rec: nn.Module | None = None) -> torch.Tensor:
        """Spikes ``z[T, B, ...]``; with ``rec``, ``I[t] += rec(z[t-1])``."""
        mem = torch.zeros_like(cur[0])
        spk = torch.zeros_like(cur[0])
        out = []
        for t in range(cur.shape[0]):
            inp = cur[t] if rec is None else cur[t] + rec(spk)
            spk, mem = self.lif(inp, mem)
            out.append(spk)
        return torch.stack(out)


class NorseLIF(nn.Module):
    """Norse ``LIFBoxCell`` run over the time axis, fed ``r*I``."""

    def __init__(self) -> None:
        super().__init__()
        import norse.torch as norse

        p = norse.LIFBoxParameters(tau_mem_inv=torch.as_tensor(1.0 / wl.TAU),
                                   v_leak=torch.as_tensor(0.0), v_th=torch.as_tensor(wl.V_TH),
                                   v_reset=torch.as_tensor(0.0), method="super",
                                   alpha=torch.as_tensor(wl.SLOPE))
        self.cell = norse.LIFBoxCell(p, dt=wl.DT)

    def forward(self, cur: torch.Tensor, rec: nn.Module | None = None) -> torch.Tensor:
        """Spikes ``z[T, B, ...]``; with ``rec``, ``I[t] += rec(z[t-1])``."""
        cur = wl.R * cur
        state = None
        spk = torch.zeros_like(cur[0])
        out = []
        for t in range(cur.shape[0]):
            inp = cur[t] if rec is None else cur[t] + wl.R * rec(spk)
            spk, state = self.cell(inp, state)
            out.append(spk)
        return torch.stack(out)


class Net(nn.Module):
    """The workload's network with a pluggable neuron (``SnnTorchLIF`` or ``NorseLIF``)."""

    def __init__(self, w: wl.Workload, neuron: type[nn.Module]) -> None:
        super().__init__()
        self.kind = w.kind
        h = w.hidden
        if w.kind == "mlp":
            self.fc1, self.fc2 = nn.Linear(w.n_in, h), nn.Linear(h, h)
        elif w.kind == "recurrent":
            self.fc1, self.rec = nn.Linear(w.n_in, h), nn.Linear(h, h, bias=False)
        else:
            self.conv1 = nn.Conv2d(w.n_in, h, 3, padding=1)
            self.conv2 = nn.Conv2d(h, h, 3, padding=1)
            self.fc3 = nn.Linear(w.flat_features, w.n_out)
        self.lif1, self.lif2, self.lif3 = neuron(), neuron(), neuron()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x[T, B, ...] -> spikes[T, B, ...]`` of the last layer."""
        if self.kind == "mlp":
            return self.lif2(self.fc2(self.lif1(self.fc1(x))))
        if self.kind == "recurrent":
            return self.lif1(self.fc1(x), self.rec)
        t, b = x.shape[:2]
        z1 = self.lif1(self.conv1(x.flatten(0, 1)).unflatten(0, (t, b)))
        z2 = self.lif2(self.conv2(z1.flatten(0, 1)).unflatten(0, (t, b)))
        return self.lif3(self.fc3(z2.flatten(2)))


#: torch parameter name -> workload parameter name.
PARAM_NAMES: dict[str, dict[str, str]] = {
    "mlp": {"fc1.weight": "w1", "fc1.bias": "b1", "fc2.weight": "w2", "fc2.bias": "b2"},
    "recurrent": {"fc1.weight": "w_in", "fc1.bias": "b_in", "rec.weight": "w_rec"},
    "cnn": {"conv1.weight": "c1", "conv1.bias": "cb1", "conv2.weight": "c2",
            "conv2.bias": "cb2", "fc3.weight": "w3", "fc3.bias": "b3"},
}

NEURONS: dict[str, type[nn.Module]] = {"snntorch": SnnTorchLIF, "norse": NorseLIF,
                                       "norse-compile": NorseLIF}


def build(impl: str, w: wl.Workload, params: Mapping[str, np.ndarray],
          x: np.ndarray) -> Prepared:
    """A PyTorch peer (``snntorch``, ``norse`` or ``norse-compile``) on workload ``w``."""
    torch.manual_seed(0)
    net = Net(w, NEURONS[impl])
    names = PARAM_NAMES[w.kind]
    with torch.no_grad():
        for tname, p in net.named_parameters():
            p.copy_(torch.from_numpy(np.ascontiguousarray(params[names[tname]])))
    xt = torch.from_numpy(x)
    fn: Callable[[torch.Tensor], torch.Tensor] = net
    prep = Prepared(forward=None, train_step=None)
    if impl == "norse-compile":
        # Dynamo unrolls the Python time loop into one graph; the first call of each
        # (grad mode) variant compiles, the harness reports it as "first call".
        fn = torch.compile(net, dynamic=False)
        prep.notes.append("torch.compile(model), default mode; compile time = first call "
                          "minus a steady-state call")
    if impl.startswith("norse"):
        prep.notes.append("LIFBoxCell: reset not detached from the gradient; Norse's "
                          "SuperSpike backward ignores alpha (acts as alpha=1)")

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return fn(xt)

    def train_step() -> dict[str, torch.Tensor | None]:
        for p in net.parameters():
            p.grad = None
        fn(xt).mean().backward()
        return {names[n]: p.grad for n, p in net.named_parameters()}

    if not w.train_only:
        prep.forward = forward
    prep.train_step = train_step
    return prep
