"""snnTorch models run by snnTorch and by spikejit (interpreter, compiled) from from_torch."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
snn = pytest.importorskip("snntorch")

from helpers_torch import Probe, compare, randn, run_torch  # noqa: E402

import spikejit  # noqa: E402
from spikejit.errors import FrontendError  # noqa: E402
from spikejit.ir.ops import IF, LI, LIF, CubaLIF, Scale  # noqa: E402

nn = torch.nn
T, B = 40, 4


def probe(graph, traces, records, path: str, module) -> Probe:
    """Probe of one snnTorch neuron: IR %path against the module's recorded mem/syn."""
    rec = records[path]
    spikes, mem = rec["out"], rec["mem"]
    if module.reset_mechanism == "zero" and module.reset_delay:
        mem = mem * (1 - spikes)  # snnTorch keeps the pre-reset membrane until next step
    extra = []
    if "syn" in rec:
        node = graph.node(path)
        ours = traces[path]["i"] if isinstance(node.op, CubaLIF) else traces[path + "/syn"]["v"]
        extra.append(("syn", ours, rec["syn"]))
    return Probe(path, traces[path]["v"], mem, to_np(module.threshold), traces[path]["out"],
                 spikes, extra)


def to_np(t):
    return t.detach().numpy()


def check(model, in_shape, neurons: list[str], *, dt=1e-3, scale=1.0, seed=0, pick=None,
          compiled=False):
    """Run both sides and compare; return (graph, params, report)."""
    graph, params = spikejit.from_torch(model, in_shape, dt=dt)
    x = randn((T, B, *in_shape), scale, seed)
    y, traces = spikejit.interpret(graph, params, x, trace=True)
    y_torch, records = run_torch(model, x, pick=pick)
    mods = dict(model.named_modules())
    probes = [probe(graph, traces, records, n, mods[n]) for n in neurons]
    report = compare(probes, [(y, y_torch)])
    assert report.spikes > 0, "the test input should make the neurons spike"
    if compiled:
        model_jax = spikejit.compile((graph, params))
        y_jax, tr_jax = model_jax(x, trace=True)
        for p in probes:
            p.ir_v, p.ir_spikes = np.asarray(tr_jax[p.node]["v"]), np.asarray(tr_jax[p.node]["out"])
            p.extra = []
        compare(probes, [(np.asarray(y_jax), y_torch)])
    return graph, params, report


NEURONS = [
    ("Leaky", {"reset_mechanism": "subtract"}),
    ("Leaky", {"reset_mechanism": "zero"}),
    ("Leaky", {"reset_mechanism": "none"}),
    ("Leaky", {"reset_mechanism": "zero", "reset_delay": False}),
    ("Synaptic", {"reset_mechanism": "subtract"}),
    ("Synaptic", {"reset_mechanism": "none"}),
    ("Synaptic", {"reset_mechanism": "zero", "reset_delay": False}),
    ("RLeaky", {"reset_mechanism": "subtract"}),
    ("RLeaky", {"reset_mechanism": "none"}),
    ("RLeaky", {"reset_mechanism": "zero", "reset_delay": False}),
    ("RSynaptic", {"reset_mechanism": "subtract"}),
    ("RSynaptic", {"reset_mechanism": "none"}),
]


def make_neuron(cls: str, n: int, **kw):
    extra = {"linear_features": n} if cls.startswith("R") else {}
    if "Synaptic" in cls:
        extra["alpha"] = 0.7
    return getattr(snn, cls)(beta=0.85, threshold=0.8, init_hidden=True, **extra, **kw)


@pytest.mark.parametrize(("cls", "kw"), NEURONS, ids=lambda v: str(v))
def test_neuron_matches_snntorch(cls, kw) -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 6), make_neuron(cls, 6, **kw), nn.Linear(6, 5),
                          snn.Leaky(beta=0.9, init_hidden=True))
    graph, _, report = check(model, (3,), ["1", "3"], compiled=True)
    assert report.near_threshold <= 2
    neuron = graph.node("1").op
    assert isinstance(neuron, LIF | CubaLIF)
    if kw["reset_mechanism"] == "subtract":
        loop = graph.node("1/reset")
        assert isinstance(loop.op, Scale) and loop.inputs[0].delay == 1
        assert neuron.reset == "none"
    if cls.startswith("R"):
        assert graph.node("1.recurrent").inputs[0].delay == 1
    options = "" if kw.get("reset_delay", True) else "; no-reset-delay"
    assert graph.node("1").loc == f"torch:1 (snntorch.{cls}{options})"


def test_conv_model_matches_snntorch_compiled() -> None:
    torch.manual_seed(2)

    class ConvNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
            self.pool1 = nn.AvgPool2d(2)
            self.lif1 = snn.Leaky(beta=0.8, init_hidden=True)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.lif2 = snn.Leaky(beta=0.8, init_hidden=True, reset_mechanism="zero")
            self.pool2 = nn.MaxPool2d(2)
            self.flat = nn.Flatten()
            self.fc = nn.Linear(4 * 2 * 2, 3)
            self.lif3 = snn.Leaky(beta=0.9, init_hidden=True, output=True)

        def forward(self, x):
            s = self.lif1(self.pool1(self.conv1(x)))
            s = self.pool2(self.lif2(self.conv2(s)))
            spk, mem = self.lif3(self.fc(self.flat(s)))
            return spk, mem

    model = ConvNet()
    graph, _, report = check(model, (2, 8, 8), ["lif1", "lif2", "lif3"], scale=2.0,
                             pick=lambda out: out[0], compiled=True)
    assert [n.id for n in graph.nodes if n.op.mnemonic == "io.output"] == ["output"]
    assert report.near_threshold == 0


def test_rleaky_model_compiled() -> None:
    torch.manual_seed(3)

    class RNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(4, 8)
            self.rlif = snn.RLeaky(beta=0.9, linear_features=8)
            self.fc2 = nn.Linear(8, 2)
            self.out = snn.Leaky(beta=0.9)

        def forward(self, x):
            spk, _ = self.rlif(self.fc1(x))
            spk2, mem2 = self.out(self.fc2(spk))
            return spk2, mem2

    model = RNet()
    check(model, (4,), ["rlif", "out"], scale=1.5, pick=lambda o: o[0], compiled=True)


def test_state_styles() -> None:
    """State threaded through forward arguments (None) and tuple results, returned states."""
    torch.manual_seed(4)

    class Explicit(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 5)
            self.lif = snn.Leaky(beta=0.8)
            self.syn = snn.Synaptic(alpha=0.5, beta=0.8)

        def forward(self, x, mem=None):
            spk, mem = self.lif(self.fc(x), mem)
            spk2, syn2, mem2 = self.syn(spk)
            return [spk2, {"mem": mem2, "syn": syn2}]

    model = Explicit()
    graph, _, _ = check(model, (3,), ["lif", "syn"], scale=2.0, pick=lambda o: o[0])
    assert graph.inputs == ("x",)
    assert graph.outputs == ("output",)


def test_state_reset_inside_forward_is_refused() -> None:
    class Reinit(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lif = snn.Leaky(beta=0.8)

        def forward(self, x):
            mem = self.lif.init_leaky()  # torch would restart the neuron at every step
            return self.lif(x, mem)[0]

    with pytest.raises(FrontendError, match=r"module 'lif' .*argument 1 is"):
        spikejit.from_torch(Reinit(), (3,), dt=1e-3)


def test_learnable_and_per_neuron_parameters() -> None:
    torch.manual_seed(5)
    beta = torch.linspace(0.5, 0.95, 6)
    thr = torch.linspace(0.5, 1.5, 6)
    lif = snn.Leaky(beta=beta, threshold=thr, learn_beta=True, learn_threshold=True,
                    init_hidden=True)
    model = nn.Sequential(nn.Linear(3, 6), lif)
    _, params, _ = check(model, (3,), ["1"], scale=2.0)
    np.testing.assert_allclose(1 - 1e-3 / params["1.tau"], beta.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(params["1.v_threshold"], thr.numpy())
    np.testing.assert_allclose(params["1.r"], params["1.tau"] / 1e-3, rtol=1e-6)


def test_beta_one_is_if_and_dt_free() -> None:
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(3, 4), snn.Leaky(beta=1.0, init_hidden=True))
    graph, _, _ = check(model, (3,), ["1"], dt=0.25)
    assert isinstance(graph.node("1").op, IF)
    model = nn.Sequential(nn.Linear(3, 4), snn.Leaky(beta=0.5, init_hidden=True))
    check(model, (3,), ["1"], dt=7.0)  # any dt: tau = dt/(1-beta), r = tau/dt


def test_rleaky_one_to_one_and_conv_recurrence() -> None:
    torch.manual_seed(7)
    learn = snn.RLeaky(beta=0.9, all_to_all=False, V=torch.full((5,), -0.4), init_hidden=True)
    fixed = snn.RLeaky(beta=0.9, all_to_all=False, V=0.3, learn_recurrent=False,
                       init_hidden=True)
    model = nn.Sequential(nn.Linear(3, 5), learn, nn.Linear(5, 5), fixed)
    graph, params, _ = check(model, (3,), ["1", "3"], scale=2.0)
    assert isinstance(graph.node("1.recurrent").op, Scale)
    assert set(spikejit.to_torch_state_dict(graph, params)) == set(model.state_dict())
    conv = snn.RLeaky(beta=0.8, conv2d_channels=2, kernel_size=3, init_hidden=True)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), conv)
    graph, _, _ = check(model, (1, 5, 5), ["1"], scale=2.0)
    assert graph.node("1.recurrent").op.mnemonic == "nn.conv2d"


def test_synaptic_subtract_is_split() -> None:
    model = nn.Sequential(nn.Linear(2, 3), snn.Synaptic(alpha=0.6, beta=0.7, init_hidden=True))
    graph, _ = spikejit.from_torch(model, (2,), dt=1e-3)
    assert isinstance(graph.node("1/syn").op, LI)
    assert [u.node for u in graph.node("1").inputs] == ["1/syn", "1/reset"]


def perturbed(params, rng):
    """Trained-looking params: weights, taus, thresholds moved; tied params kept tied."""
    new = {k: np.asarray(v).copy() for k, v in params.items()}
    for k in new:
        if k.endswith((".weight", ".bias")):
            new[k] = (new[k] + rng.normal(0, 0.1, new[k].shape)).astype(np.float32)
    ties = {".tau": ".r", ".tau_mem": ".r", ".tau_syn": ".w_in"}
    for suffix, tied in ties.items():
        for k in [k for k in new if k.endswith(suffix)]:
            new[k] = (new[k] * 1.3).astype(np.float32)
            new[k[: -len(suffix)] + tied] = (new[k] / 1e-3).astype(np.float32)
    for k in [k for k in new if k.endswith(".v_threshold")]:
        new[k] = (new[k] * 0.9).astype(np.float32)
        loop = k[: -len(".v_threshold")] + "/reset.scale"
        if loop in new:
            new[loop] = -new[k]
    return new


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_write_back_gives_same_outputs(reset) -> None:
    torch.manual_seed(8)
    opts = {"reset_mechanism": reset, "init_hidden": True}
    if reset == "zero":
        opts["reset_delay"] = False  # the recurrent and synaptic neurons need it for 'zero'
    model = nn.Sequential(
        nn.Linear(3, 6),
        snn.Leaky(beta=0.8, learn_beta=True, learn_threshold=True, **opts),
        nn.Linear(6, 4),
        snn.RLeaky(beta=0.9, linear_features=4, **opts),
        nn.Linear(4, 4),
        snn.Synaptic(alpha=0.6, beta=0.8, learn_alpha=True, **opts),
    )
    graph, params = spikejit.from_torch(model, (3,), dt=1e-3)
    trained = perturbed(params, np.random.default_rng(0))
    state = spikejit.to_torch_state_dict(graph, trained)
    model.load_state_dict(state, strict=True)
    x = randn((T, B, 3), 2.0, seed=9)
    y, traces = spikejit.interpret(graph, trained, x, trace=True)
    y_torch, records = run_torch(model, x)
    mods = dict(model.named_modules())
    report = compare([probe(graph, traces, records, n, mods[n]) for n in ("1", "3", "5")],
                     [(y, y_torch)])
    assert report.spikes > 0
    np.testing.assert_allclose(to_np(model[1].beta), 1 - 1e-3 / trained["1.tau"], rtol=1e-6)
    syn_tau = trained["5/syn.tau" if reset == "subtract" else "5.tau_syn"]
    np.testing.assert_allclose(to_np(model[5].alpha), 1 - 1e-3 / syn_tau, rtol=1e-6)


def test_write_back_refuses_untied_params() -> None:
    model = nn.Sequential(nn.Linear(3, 4), snn.Leaky(beta=0.8, init_hidden=True))
    graph, params = spikejit.from_torch(model, (3,), dt=1e-3)
    bad = dict(params, **{"1.r": params["1.r"] * 2})
    with pytest.raises(FrontendError, match=r"@1\.r must stay tau/dt"):
        spikejit.to_torch_state_dict(graph, bad)
    bad = dict(params, **{"1/reset.scale": np.asarray(-0.5, np.float32)})
    with pytest.raises(FrontendError, match=r"@1/reset\.scale must stay -1\.v_threshold"):
        spikejit.to_torch_state_dict(graph, bad)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: snn.Synaptic(alpha=0.5, beta=0.5, reset_mechanism="zero"),
     "one-step refractory period"),
    (lambda: snn.RLeaky(beta=0.5, linear_features=4, reset_mechanism="zero"),
     "one-step refractory period"),
    (lambda: snn.Leaky(beta=0.5, reset_delay=False), "subtracts the threshold a second time"),
    (lambda: snn.RSynaptic(alpha=0.5, beta=0.5, linear_features=4, reset_delay=False,
                           reset_mechanism="none"), "local variable"),
    (lambda: snn.Leaky(beta=0.5, graded_spikes_factor=2.0), "graded_spikes_factor"),
    (lambda: snn.Leaky(beta=0.5, spike_grad=lambda v: torch.sigmoid(v)), "Heaviside"),
    (lambda: snn.Synaptic(alpha=1.0, beta=0.5), "alpha = 1"),
    (lambda: snn.Leaky(beta=torch.tensor([0.5, 1.0, 0.5, 0.5])), "beta = 1"),
    (lambda: snn.Leaky(beta=0.5, threshold=-1.0, reset_mechanism="zero", reset_delay=False),
     "threshold >= 0"),
])
def test_unrepresentable_options_are_named(make, message) -> None:
    model = nn.Sequential(nn.Linear(2, 4), make())
    with pytest.raises(FrontendError, match=message) as info:
        spikejit.from_torch(model, (2,), dt=1e-3)
    assert "module '1' (snntorch." in str(info.value)


def test_time_loop_in_forward_is_refused() -> None:
    class Loop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 3)
            self.lif = snn.Leaky(beta=0.5)

        def forward(self, x):
            out = []
            for _ in range(3):
                spk, _ = self.lif(self.fc(x))
                out.append(spk)
            return torch.stack(out)

    with pytest.raises(FrontendError, match=r"'lif' .* is called 2 times in one step"):
        spikejit.from_torch(Loop(), (2,), dt=1e-3)


def test_state_may_not_be_computed_with() -> None:
    class UsesMem(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lif = snn.Leaky(beta=0.5)
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            _, mem = self.lif(x)
            return self.fc(mem)

    with pytest.raises(FrontendError, match=r"module 'fc'.*the state of neuron"):
        spikejit.from_torch(UsesMem(), (2,), dt=1e-3)
