"""Norse cells -> spikejit IR: LIFBoxCell, LIFCell (current-based), LIBoxCell, LICell.

Importing this module imports Norse and registers the builders; ``from_torch`` does so
when the user has imported ``norse``. Norse integrates with explicit Euler, as
``nir-euler-v1`` does; with ``h = dt`` (the cell's ``dt``, which must equal the graph's):

* box cells: ``v += h*tau_mem_inv*(v_leak - v + x)`` is ``snn.li``/``snn.lif`` with
  ``tau = 1/tau_mem_inv`` (``r = 1``); spikes ``v - v_th > 0``; ``reset_value`` is
  ``reset="value"`` with ``v_reset``, ``reset_subtract`` is ``reset="subtract"``.
* current-based cells (``LIFCell``, ``LICell``): Norse adds the input to the current
  first (``j = i + x``), moves ``v`` with ``j``, then decays ``i = j*(1 - h*tau_syn_inv)``.
  With ``I = j`` that is ``snn.cuba_lif``/``snn.cuba_li`` with ``post`` current,
  ``tau_syn = 1/tau_syn_inv``, ``w_in = 1/(h*tau_syn_inv)`` (so ``h/tau_syn*w_in = 1``)
  and ``tau_mem = 1/tau_mem_inv``; Norse's stored ``i`` is spikejit's ``i`` times
  ``1 - h*tau_syn_inv``.
* Norse starts ``v`` at ``v_leak``, spikejit at 0: only ``v_leak = 0`` is exact.

Norse keeps the parameters in the cell's ``p`` tuple, not in the state dict, so
:func:`~spikejit.frontends.torch.state_dict.to_torch_state_dict` writes no key for them; use
:func:`norse_parameters` to rebuild ``p`` from trained params.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import norse.torch as norse
import numpy as np
from norse.torch.functional import reset as norse_reset
from norse.torch.functional.leaky_integrator import li_feed_forward_step
from norse.torch.functional.leaky_integrator_box import li_box_feed_forward_step
from norse.torch.functional.lif import lif_feed_forward_step
from norse.torch.functional.lif_box import lif_box_feed_forward_step

from spikejit.errors import FrontendError
from spikejit.frontends.torch.modules import (
    ModuleCall,
    TupleResult,
    WriteContext,
    register_torch_module,
    to_numpy,
)
from spikejit.ir.graph import Graph
from spikejit.ir.ops import LI, LIF, CubaLI, CubaLIF

_METHODS = ("heaviside", "super", "triangle", "tanh", "circ", "heavi_erfc")


def _check(call: ModuleCall, step: Any) -> Any:
    """Shared checks; returns the cell's parameter tuple."""
    m = call.module
    if m.activation is not step:
        raise call.error(f"its step function {getattr(m.activation, '__name__', m.activation)}"
                         f" is not {step.__name__} (p.method='adjoint' is not supported)")
    if not math.isclose(float(m.dt), call.dt, rel_tol=1e-9):
        raise call.error(f"the cell's dt = {m.dt} differs from from_torch's dt = {call.dt}; "
                         f"pass dt={m.dt}")
    p = m.p
    if np.any(to_numpy(p.v_leak) != 0):
        raise call.error("v_leak != 0 is not supported: Norse starts the membrane at v_leak, "
                         "spikejit starts every state at 0")
    method = getattr(p, "method", "heaviside")
    if method not in _METHODS:
        raise call.error(f"p.method={method!r} is not one of {', '.join(_METHODS)}")
    return p


def _inv(call: ModuleCall, value: Any, name: str) -> np.ndarray:
    arr = to_numpy(value).astype(np.float64)
    if np.any(arr <= 0):
        raise call.error(f"{name} must be > 0 (it is 1/tau)")
    return arr


def _lif_box(call: ModuleCall) -> TupleResult:
    p = _check(call, lif_box_feed_forward_step)
    if p.reset_method is norse_reset.reset_value:
        reset, v_reset = "value", call.param("v_reset", p.v_reset)
    elif p.reset_method is norse_reset.reset_subtract:
        reset, v_reset = "subtract", None
    else:
        raise call.error(f"reset_method {p.reset_method!r} is not supported "
                         f"(reset_value or reset_subtract)")
    tau = 1.0 / _inv(call, p.tau_mem_inv, "tau_mem_inv")
    op = LIF(tau=call.param("tau", tau), v_threshold=call.param("v_threshold", p.v_th),
             v_reset=v_reset, reset=reset)
    return TupleResult(call.add(op, call.x))


def _lif(call: ModuleCall) -> TupleResult:
    p = _check(call, lif_feed_forward_step)
    ts = _inv(call, p.tau_syn_inv, "tau_syn_inv")
    tm = _inv(call, p.tau_mem_inv, "tau_mem_inv")
    op = CubaLIF(tau_syn=call.param("tau_syn", 1.0 / ts), tau_mem=call.param("tau_mem", 1.0 / tm),
                 v_threshold=call.param("v_threshold", p.v_th),
                 v_reset=call.param("v_reset", p.v_reset),
                 w_in=call.param("w_in", 1.0 / (call.dt * ts)), reset="value")
    return TupleResult(call.add(op, call.x))


def _li_box(call: ModuleCall) -> TupleResult:
    p = _check(call, li_box_feed_forward_step)
    tau = 1.0 / _inv(call, p.tau_mem_inv, "tau_mem_inv")
    return TupleResult(call.add(LI(tau=call.param("tau", tau)), call.x))


def _li(call: ModuleCall) -> TupleResult:
    p = _check(call, li_feed_forward_step)
    ts = _inv(call, p.tau_syn_inv, "tau_syn_inv")
    tm = _inv(call, p.tau_mem_inv, "tau_mem_inv")
    op = CubaLI(tau_syn=call.param("tau_syn", 1.0 / ts), tau_mem=call.param("tau_mem", 1.0 / tm),
                w_in=call.param("w_in", 1.0 / (call.dt * ts)))
    return TupleResult(call.add(op, call.x))


def _write_nothing(ctx: WriteContext) -> dict[str, Any]:
    return {}


def norse_parameters(graph: Graph, params: Mapping[str, Any]) -> dict[str, Any]:
    """Norse parameter tuples rebuilt from (trained) params, by module path.

    Assign them to the cells (``model.get_submodule(path).p = value``) after loading the
    state dict; surrogate settings (``method``, ``alpha``) take Norse's defaults.

    Raises:
        FrontendError: a ``w_in`` that no longer equals ``tau_syn/dt``.
    """
    import torch

    from spikejit.frontends.torch.state_dict import parse_loc

    def t(x: Any) -> Any:
        return torch.as_tensor(np.asarray(x, dtype=np.float32))

    dt = graph.attrs.dt
    out: dict[str, Any] = {}
    for node in graph.nodes:
        parsed = parse_loc(node.loc)
        if parsed is None or not parsed[1].startswith("norse."):
            continue
        path = parsed[0]
        v = {f: np.asarray(params[ref.name], np.float64) for f, ref in node.op.params()}
        if "w_in" in v and dt is not None and not np.allclose(v["w_in"], v["tau_syn"] / dt,
                                                              rtol=1e-5):
            raise FrontendError(f"norse_parameters: %{node.id}: w_in must stay tau_syn/dt")
        zero = t(0.0)
        if isinstance(node.op, LIF):
            reset = (norse_reset.reset_value if node.op.reset == "value"
                     else norse_reset.reset_subtract)
            out[path] = norse.LIFBoxParameters(
                tau_mem_inv=t(1 / v["tau"]), v_leak=zero, v_th=t(v["v_threshold"]),
                v_reset=t(v.get("v_reset", 0.0)), reset_method=reset)
        elif isinstance(node.op, CubaLIF):
            out[path] = norse.LIFParameters(
                tau_syn_inv=t(1 / v["tau_syn"]), tau_mem_inv=t(1 / v["tau_mem"]), v_leak=zero,
                v_th=t(v["v_threshold"]), v_reset=t(v.get("v_reset", 0.0)))
        elif isinstance(node.op, LI):
            out[path] = norse.LIBoxParameters(tau_mem_inv=t(1 / v["tau"]), v_leak=zero)
        elif isinstance(node.op, CubaLI):
            out[path] = norse.LIParameters(tau_syn_inv=t(1 / v["tau_syn"]),
                                           tau_mem_inv=t(1 / v["tau_mem"]), v_leak=zero)
    return out


def register() -> None:
    """Register the Norse builders (idempotent)."""
    table = [
        (norse.LIFBoxCell, _lif_box, "snn.lif"),
        (norse.LIFCell, _lif, "snn.cuba_lif (post current)"),
        (norse.LIBoxCell, _li_box, "snn.li"),
        (norse.LICell, _li, "snn.cuba_li (post current)"),
    ]
    for cls, build, summary in table:
        register_torch_module(cls, build, _write_nothing, kind=f"norse.{cls.__name__}",
                              summary=summary, replace=True)


register()
