"""Norse cells run by Norse and by spikejit (interpreter, compiled) from from_torch."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
norse = pytest.importorskip("norse.torch")

from helpers_torch import Probe, compare, randn, run_torch  # noqa: E402
from norse.torch.functional.reset import reset_subtract  # noqa: E402

import spikejit  # noqa: E402
from spikejit.errors import FrontendError  # noqa: E402
from spikejit.frontends.torch.norse import norse_parameters  # noqa: E402
from spikejit.ir.ops import LI, LIF, CubaLI, CubaLIF  # noqa: E402

nn = torch.nn
T, B, DT = 50, 3, 1e-3
tensor = torch.tensor


def cells():
    n = 5
    return {
        "LIFBoxCell-value": norse.LIFBoxCell(norse.LIFBoxParameters(
            tau_mem_inv=tensor(80.0), v_th=tensor(0.4), v_reset=tensor(-0.1))),
        "LIFBoxCell-subtract": norse.LIFBoxCell(norse.LIFBoxParameters(
            tau_mem_inv=torch.linspace(50, 150, n), v_th=tensor(0.3),
            reset_method=reset_subtract)),
        "LIFCell": norse.LIFCell(norse.LIFParameters(
            tau_syn_inv=torch.linspace(150, 250, n), v_th=tensor(0.3))),
        "LIBoxCell": norse.LIBoxCell(norse.LIBoxParameters(tau_mem_inv=tensor(60.0))),
        "LICell": norse.LICell(norse.LIParameters(tau_syn_inv=tensor(300.0))),
    }


def probe(traces, records, path: str, cell) -> Probe:
    rec, ours = records[path], traces[path]
    spiking = "LIF" in type(cell).__name__
    extra = []
    if "i" in ours:
        # Norse stores the current after this step's decay; spikejit the one v used.
        decay = 1 - DT * cell.p.tau_syn_inv.numpy()
        extra.append(("i", ours["i"] * decay, rec["i"]))
    return Probe(path, ours["v"], rec["v"], cell.p.v_th.numpy() if spiking else None,
                 ours["out"] if spiking else None, rec["out"] if spiking else None, extra)


@pytest.mark.parametrize("name", list(cells()))
def test_cell_matches_norse(name) -> None:
    torch.manual_seed(0)
    cell = cells()[name]
    model = norse.SequentialState(nn.Linear(3, 5), cell, nn.Linear(5, 4),
                                  norse.LIFBoxCell(norse.LIFBoxParameters(v_th=tensor(0.2))))
    graph, params = spikejit.from_torch(model, (3,), dt=DT)
    op = graph.node("1").op
    assert isinstance(op, {"LIFBoxCell": LIF, "LIFCell": CubaLIF, "LIBoxCell": LI,
                           "LICell": CubaLI}[type(cell).__name__])
    assert graph.node("1").loc == f"torch:1 (norse.{type(cell).__name__})"
    x = randn((T, B, 3), 4.0, seed=1)
    y, traces = spikejit.interpret(graph, params, x, trace=True)
    y_torch, records = run_torch(model, x, norse_state=True)
    probes = [probe(traces, records, "1", cell), probe(traces, records, "3", model[3])]
    report = compare(probes, [(y, y_torch)])
    assert report.spikes > 0
    y_jax, tr_jax = spikejit.compile((graph, params))(x, trace=True)
    tr_jax = {k: {v: np.asarray(a) for v, a in d.items()} for k, d in tr_jax.items()}
    compare([probe(tr_jax, records, "1", cell), probe(tr_jax, records, "3", model[3])],
            [(np.asarray(y_jax), y_torch)])
    assert set(spikejit.to_torch_state_dict(graph, params)) == set(model.state_dict())


def test_cuba_lif_model_compiled() -> None:
    torch.manual_seed(1)
    model = norse.SequentialState(nn.Linear(4, 5), cells()["LIFCell"], nn.Linear(5, 2),
                                  cells()["LICell"])
    graph, params = spikejit.from_torch(model, (4,), dt=DT)
    x = randn((T, B, 4), 4.0, seed=2)
    y_torch, records = run_torch(model, x, norse_state=True)
    compiled = spikejit.compile((graph, params))
    y, traces = compiled(x, trace=True)
    traces = {k: {v: np.asarray(a) for v, a in d.items()} for k, d in traces.items()}
    report = compare([probe(traces, records, "1", model[1]), probe(traces, records, "3", model[3])],
                     [(np.asarray(y), y_torch)])
    assert report.spikes > 0


def test_norse_parameters_write_back() -> None:
    torch.manual_seed(2)
    model = norse.SequentialState(nn.Linear(3, 5), cells()["LIFBoxCell-value"], nn.Linear(5, 5),
                                  cells()["LIFCell"])
    graph, params = spikejit.from_torch(model, (3,), dt=DT)
    trained = {k: np.asarray(v * 1.1, np.float32) for k, v in params.items()}
    trained["3.w_in"] = (trained["3.tau_syn"] / DT).astype(np.float32)
    model.load_state_dict(spikejit.to_torch_state_dict(graph, trained), strict=True)
    for path, p in norse_parameters(graph, trained).items():
        model.get_submodule(path).p = p
    x = randn((T, B, 3), 4.0, seed=3)
    y, traces = spikejit.interpret(graph, trained, x, trace=True)
    y_torch, records = run_torch(model, x, norse_state=True)
    report = compare([probe(traces, records, "1", model[1]), probe(traces, records, "3", model[3])],
                     [(y, y_torch)])
    assert report.spikes > 0
    bad = dict(trained, **{"3.w_in": trained["3.w_in"] * 2})
    with pytest.raises(FrontendError, match=r"w_in must stay tau_syn/dt"):
        norse_parameters(graph, bad)


@pytest.mark.parametrize(("make", "dt", "message"), [
    (lambda: norse.LIFBoxCell(), 1e-4, "the cell's dt = 0.001 differs"),
    (lambda: norse.LIFBoxCell(norse.LIFBoxParameters(v_leak=tensor(0.1))), DT, "v_leak != 0"),
    (lambda: norse.LIFCell(norse.LIFParameters(method="adjoint")), DT, "adjoint"),
    (lambda: norse.LIBoxCell(norse.LIBoxParameters(tau_mem_inv=tensor(0.0))), DT,
     "tau_mem_inv must be > 0"),
])
def test_unrepresentable_cells_are_named(make, dt, message) -> None:
    model = norse.SequentialState(nn.Linear(2, 3), make())
    with pytest.raises(FrontendError, match=message) as info:
        spikejit.from_torch(model, (2,), dt=dt)
    assert "module '1' (norse." in str(info.value)


def test_full_sequence_module_is_unknown() -> None:
    model = norse.SequentialState(nn.Linear(2, 3), norse.LIF())
    with pytest.raises(FrontendError, match=r"'1' .*LIF.*not supported.*norse.LIFBoxCell"):
        spikejit.from_torch(model, (2,), dt=DT)
