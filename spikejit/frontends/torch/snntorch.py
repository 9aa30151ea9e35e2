"""snnTorch neurons -> spikejit IR: Leaky, Synaptic, RLeaky, RSynaptic (exact mappings).

Importing this module imports snnTorch and registers the builders; ``from_torch`` does so
when the user has imported ``snntorch``. Derivations (``h = dt``, ``b = clamp(beta, 0, 1)``,
``a = clamp(alpha, 0, 1)``, ``z[t] = mem[t] > threshold``) — see ``docs/torch.md``:

* ``mem = b*mem + x`` is ``snn.lif`` with ``tau = h/(1-b)``, ``r = 1/(1-b) (= tau/h)``:
  ``v += h/tau*(-v + r*x) = b*v + x``. With ``b = 1`` everywhere it is ``snn.if``,
  ``r = 1/h``.
* ``syn = a*syn + x`` likewise: ``tau_syn = h/(1-a)``, ``w_in = 1/(1-a)`` (``snn.cuba_lif``
  with ``post`` current) or an ``snn.li`` with ``tau = tau_syn``, ``r = w_in``.
* Resets. snnTorch computes ``reset = mem[t-1] > threshold`` at the start of step ``t``:
  ``subtract``: ``mem[t] = b*mem[t-1] + x[t] - threshold*z[t-1]`` — the subtraction is
  **not** decayed by ``b`` (spikejit's ``reset="subtract"`` would give ``b*threshold``),
  so it becomes ``reset="none"`` plus a self-loop ``%<id>/reset = nn.scale(%<id>[t-1])``
  with ``scale = -threshold`` into the neuron's input. ``zero`` (Leaky): the old membrane
  is zeroed before the decay, exactly ``reset="value"`` (``v_reset = 0``). ``zero`` in
  Synaptic/RLeaky/RSynaptic zeroes the *new* membrane one step after the spike (a
  one-step refractory period) — no spikejit neuron does that: an error.
  ``reset_delay=False`` with ``zero`` and ``threshold >= 0`` is ``reset="value"``; with
  ``subtract`` snnTorch subtracts again whenever the membrane stays above threshold
  after a reset: an error.
* RLeaky/RSynaptic: ``recurrent(spk[t-1])`` is a node ``%<id>.recurrent`` reading the
  neuron with delay 1 (its bias is added from ``t = 0``, as in snnTorch).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import snntorch

from spikejit.frontends.torch.modules import (
    ModuleCall,
    TorchValue,
    TupleResult,
    WriteContext,
    default_write,
    register_torch_module,
    rule_for_module,
    to_numpy,
)
from spikejit.ir.graph import Use
from spikejit.ir.ops import IF, LI, LIF, CubaLIF, Scale

#: reset_mechanism -> snnTorch's reset_mechanism_val buffer.
_RESET_CODES = {"subtract": 0, "zero": 1, "none": 2}
_STATE_FUNCTIONS = {"_base_sub": "subtract", "_base_zero": "zero", "_base_int": "none"}


def _check_common(call: ModuleCall) -> str:
    """Refuse options without an exact form; return the reset mechanism forward uses."""
    import torch

    m = call.module
    if m.inhibition:
        raise call.error("inhibition=True (winner-take-all spiking) is not supported")
    if m.state_quant:
        raise call.error("state_quant is not supported (spikejit membranes are not quantised)")
    if np.any(to_numpy(m.graded_spikes_factor) != 1):
        raise call.error("graded_spikes_factor != 1 is not supported (spikes are 0/1)")
    probe = torch.tensor([-1.0, -1e-6, 0.0, 1e-6, 1.0])
    try:
        with torch.no_grad():
            fired = m.spike_grad(probe)
    except Exception as e:  # a user surrogate may fail on a plain tensor
        raise call.error(f"spike_grad could not be checked ({e})") from None
    if not torch.equal(fired.float(), (probe > 0).float()):
        raise call.error("spike_grad's forward pass is not the Heaviside step (mem > "
                         "threshold), which every spikejit neuron uses")
    # forward() runs state_function, chosen in __init__; reset_mechanism is only a label.
    mech = _STATE_FUNCTIONS.get(getattr(m.state_function, "__name__", ""))
    if mech is None or _RESET_CODES[mech] != int(m.reset_mechanism_val):
        raise call.error(f"reset_mechanism {m.reset_mechanism!r} disagrees with the state "
                         f"function forward uses; rebuild the module instead of setting it")
    return mech


def _reset_plan(call: ModuleCall, mech: str, *, refractory_zero: bool) -> tuple[str, bool]:
    """(node reset attribute, whether a subtract self-loop is needed)."""
    m = call.module
    delayed = bool(getattr(m, "reset_delay", True))
    if mech == "none":
        return "none", False
    if mech == "subtract":
        if not delayed:
            raise call.error(
                "reset_mechanism='subtract' with reset_delay=False is not supported: snnTorch "
                "then subtracts the threshold a second time whenever the membrane stays above "
                "it after a reset, which no spikejit neuron does; use reset_delay=True")
        return "none", True
    if delayed and refractory_zero:
        raise call.error(
            f"reset_mechanism='zero' with reset_delay=True is not supported for "
            f"{type(m).__name__}: snnTorch zeroes the membrane one step after the spike, "
            f"including that step's input (a one-step refractory period), which no spikejit "
            f"neuron does; use reset_delay=False (= spikejit reset 'value') or 'subtract'")
    if not delayed:
        if np.any(to_numpy(m.threshold) < 0):
            raise call.error("reset_mechanism='zero' with reset_delay=False is exact only "
                             "for threshold >= 0")
        call.options.append("no-reset-delay")
    return "value", False


def _leak(call: ModuleCall, value: Any, name: str, *, allow_one: bool) -> np.ndarray | None:
    """``1/(1 - clamp(value))`` (= tau/dt = r), or ``None`` when the factor is 1 (no leak)."""
    factor = np.clip(to_numpy(value).astype(np.float64), 0.0, 1.0)
    if np.all(factor == 1) and allow_one:
        return None
    if np.any(factor == 1):
        raise call.error(f"{name} = 1 (no decay) for some neurons has no finite time "
                         f"constant here; use {name} < 1")
    return 1.0 / (1.0 - factor)


def _returns(call: ModuleCall, out: TorchValue) -> TorchValue | TupleResult:
    m = call.module
    return out if m.init_hidden and not m.output else TupleResult(out)


def _loop(call: ModuleCall, neuron_id: str) -> None:
    """The undecayed subtract reset: ``-threshold * z[t-1]`` into the neuron."""
    reset_id = neuron_id + "/reset"
    scale = -to_numpy(call.module.threshold).astype(np.float64)
    call.add(Scale(scale=call.param("scale", scale, owner=reset_id)), [Use(neuron_id, 1)],
             node_id=reset_id)


def _recurrent(call: ModuleCall, out: TorchValue) -> None:
    """``recurrent(spk[t-1])`` as node ``<id>.recurrent`` reading the neuron with delay 1."""
    m = call.module
    rec_id = call.node_id + ".recurrent"
    spikes = TorchValue((Use(call.node_id, 1),), out.type)
    if not m.all_to_all:
        call.add(Scale(scale=call.param("V", m.V)), spikes, node_id=rec_id)
        if "recurrent.V" in m.state_dict():
            call.options.append("recurrent.V")
        return
    sub = m.recurrent
    rule = rule_for_module(sub)
    if rule is None:
        raise call.error(f"its recurrent layer {type(sub).__name__} is not supported")
    sub_call = ModuleCall(module=sub, path=f"{call.path}.recurrent" if call.path else "recurrent",
                          node_id=rec_id, param_base=f"{call.param_base}.recurrent", x=spikes,
                          dt=call.dt, kind=call.kind, add_node=call.add_node,
                          add_param=call.add_param, options=call.options)
    result = rule.build(sub_call)
    if not isinstance(result, TorchValue) or result.type.shape != out.type.shape:
        raise call.error(f"its recurrent layer maps {out.type} to "
                         f"{getattr(result, 'type', result)}; it must keep the shape")


def _build_leaky(call: ModuleCall, *, recurrent: bool = False) -> TorchValue | TupleResult:
    m = call.module
    mech = _check_common(call)
    reset, loop = _reset_plan(call, mech, refractory_zero=recurrent)
    r = _leak(call, m.beta, "beta", allow_one=True)
    thr = call.param("v_threshold", m.threshold)
    uses = list(call.x.uses)
    if recurrent:
        uses.append(Use(call.node_id + ".recurrent"))
    if loop:
        uses.append(Use(call.node_id + "/reset"))
    if r is None:
        op: Any = IF(v_threshold=thr, r=call.param("r", np.full(np.shape(to_numpy(m.beta)),
                                                                1.0 / call.dt)), reset=reset)
    else:
        op = LIF(tau=call.param("tau", call.dt * r), v_threshold=thr, r=call.param("r", r),
                 reset=reset)
    out = call.add(op, uses)
    if recurrent:
        _recurrent(call, out)
    if loop:
        _loop(call, call.node_id)
    return _returns(call, out)


def _build_synaptic(call: ModuleCall, *, recurrent: bool = False) -> TorchValue | TupleResult:
    m = call.module
    mech = _check_common(call)
    if recurrent and not getattr(m, "reset_delay", True):
        raise call.error("reset_delay=False is not supported for RSynaptic: snnTorch 1.0 "
                         "applies that reset to a local variable (or fails), not the state")
    reset, loop = _reset_plan(call, mech, refractory_zero=True)
    w = _leak(call, m.alpha, "alpha", allow_one=False)
    r = _leak(call, m.beta, "beta", allow_one=False)
    assert w is not None and r is not None
    thr = call.param("v_threshold", m.threshold)
    syn_in = list(call.x.uses) + ([Use(call.node_id + ".recurrent")] if recurrent else [])
    if not loop:
        op = CubaLIF(tau_syn=call.param("tau_syn", call.dt * w),
                     tau_mem=call.param("tau_mem", call.dt * r), v_threshold=thr,
                     r=call.param("r", r), w_in=call.param("w_in", w), reset=reset)
        out = call.add(op, syn_in)
    else:
        # The undecayed subtraction must enter the membrane, not the current: split the
        # CubaLIF into its LI (the current) and a LIF with the reset loop.
        syn_id = call.sub_id("syn")
        li = LI(tau=call.param("tau", call.dt * w, owner=syn_id),
                r=call.param("r", w, owner=syn_id))
        call.add(li, syn_in, node_id=syn_id)
        out = call.add(LIF(tau=call.param("tau", call.dt * r), v_threshold=thr,
                           r=call.param("r", r), reset="none"),
                       [Use(syn_id), Use(call.node_id + "/reset")])
        _loop(call, call.node_id)
    if recurrent:
        _recurrent(call, out)
    return _returns(call, out)


# -- writing back --------------------------------------------------------------------------

def _tied(ctx: WriteContext, node: Any, field: str, want: np.ndarray, rule: str) -> None:
    got = ctx.value(node, field)
    if got is None or not np.allclose(got, want, rtol=1e-5, atol=1e-12):
        raise ctx.error(
            f"parameter @{ctx.param_name(node, field)} must stay {rule} for snnTorch, but it "
            f"was changed independently; keep it out of training (see docs/torch.md)")


def _decay_back(ctx: WriteContext, node: Any, tau_field: str, r_field: str) -> np.ndarray:
    """``1 - h/tau`` after checking ``r == tau/h``."""
    h = ctx.require_dt()
    if isinstance(node.op, IF):
        r = ctx.value(node, "r")
        assert r is not None
        _tied(ctx, node, "r", np.full(r.shape, 1.0 / h), "1/dt")
        return np.ones(r.shape)
    tau = ctx.value(node, tau_field)
    assert tau is not None
    _tied(ctx, node, r_field, tau / h, f"{tau_field}/dt")
    return 1.0 - h / tau


def _write_neuron(ctx: WriteContext) -> dict[str, Any]:
    neuron = ctx.find((IF, LIF, CubaLIF))
    if neuron is None:
        raise ctx.error("no snn.if, snn.lif or snn.cuba_lif node")
    op: Any = neuron.op
    thr = ctx.value(neuron, "v_threshold")
    assert thr is not None
    loop = ctx.node(neuron.id + "/reset")
    if loop is not None:
        _tied(ctx, loop, "scale", -thr, f"-{op.v_threshold.name}")
        code = _RESET_CODES["subtract"]
    else:
        code = _RESET_CODES["zero" if op.reset == "value" else "none"]
        if code == 1 and "no-reset-delay" in ctx.options and np.any(thr < 0):
            raise ctx.error("threshold < 0 with reset 'zero' and reset_delay=False has no "
                            "exact snnTorch form")
    out: dict[str, Any] = {"threshold": thr.astype(np.float32),
                           "graded_spikes_factor": np.asarray(1.0, np.float32),
                           "reset_mechanism_val": np.asarray(code, np.int64)}
    if isinstance(neuron.op, CubaLIF):
        h = ctx.require_dt()
        tau_syn = ctx.value(neuron, "tau_syn")
        assert tau_syn is not None
        _tied(ctx, neuron, "w_in", tau_syn / h, "tau_syn/dt")
        out["alpha"] = (1.0 - h / tau_syn).astype(np.float32)
        out["beta"] = _decay_back(ctx, neuron, "tau_mem", "r").astype(np.float32)
    else:
        out["beta"] = _decay_back(ctx, neuron, "tau", "r").astype(np.float32)
        syn = ctx.node(neuron.id + "/syn")
        if syn is not None:
            out["alpha"] = _decay_back(ctx, syn, "tau", "r").astype(np.float32)
    rec_nodes = tuple(n for n in ctx.nodes if n.id == neuron.id + ".recurrent")
    if rec_nodes:
        sub = WriteContext(ctx.path, ctx.kind, ctx.options, rec_nodes, ctx.params, ctx.dt,
                           ctx.types)
        rec = default_write(sub)
        out.update(rec)
        if "recurrent.V" in ctx.options:
            out["recurrent.V"] = rec["V"]
    return out


def register() -> None:
    """Register the snnTorch builders (idempotent)."""
    table = [
        (snntorch.Leaky, lambda c: _build_leaky(c), "snn.lif/snn.if"),
        (snntorch.RLeaky, lambda c: _build_leaky(c, recurrent=True),
         "snn.lif/snn.if + recurrent node"),
        (snntorch.Synaptic, lambda c: _build_synaptic(c), "snn.cuba_lif, or snn.li + snn.lif"),
        (snntorch.RSynaptic, lambda c: _build_synaptic(c, recurrent=True),
         "snn.cuba_lif, or snn.li + snn.lif, + recurrent node"),
    ]
    for cls, build, summary in table:
        register_torch_module(cls, build, _write_neuron, kind=f"snntorch.{cls.__name__}",
                              summary=summary, replace=True)


register()
