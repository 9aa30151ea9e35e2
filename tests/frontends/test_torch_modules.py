"""torch.nn layers, tracing and the module registry of the torch frontend."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from helpers_torch import randn, run_torch  # noqa: E402

import spikejit  # noqa: E402
from spikejit.errors import FrontendError  # noqa: E402
from spikejit.frontends.torch.modules import ModuleCall, TorchValue  # noqa: E402
from spikejit.ir.ops import Threshold  # noqa: E402

nn = torch.nn
T, B = 3, 2


class Heaviside(nn.Module):
    """A user spiking module: x > 0. Registered below to show the extension point."""

    def forward(self, x):
        return (x > 0).float()


def build_heaviside(call: ModuleCall) -> TorchValue:
    return call.add(Threshold(threshold=call.param("threshold", 0.0)), call.x)


def register_heaviside() -> None:
    spikejit.register_torch_module(Heaviside, build_heaviside, lambda ctx: {},
                                   kind="tests.Heaviside", summary="snn.threshold",
                                   replace=True)


def same_outputs(model, in_shape, *, scale=1.0, compiled=False, **kw):
    graph, params = spikejit.from_torch(model.eval(), in_shape, dt=1e-3, **kw)
    x = randn((T, B, *in_shape), scale)
    y = spikejit.interpret(graph, params, x)
    y_torch, _ = run_torch(model, x)
    np.testing.assert_allclose(y, y_torch, rtol=1e-5, atol=1e-5)
    if compiled:
        np.testing.assert_allclose(np.asarray(spikejit.compile((graph, params))(x)), y_torch,
                                   rtol=1e-5, atol=1e-5)
    return graph, params


@pytest.mark.parametrize("layer", [
    lambda: nn.Conv2d(2, 4, 3),
    lambda: nn.Conv2d(2, 4, (3, 2), stride=2, padding=(1, 0), dilation=(1, 2), bias=False),
    lambda: nn.Conv2d(2, 4, 3, padding="same", groups=2),
    lambda: nn.AvgPool2d(2),
    lambda: nn.AvgPool2d(3, stride=2, padding=1),
    lambda: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
    lambda: nn.AvgPool2d(2, divisor_override=3),
    lambda: nn.AvgPool2d(2, ceil_mode=True),  # 6x6: ceil adds no window
    lambda: nn.LPPool2d(1, 2),
    lambda: nn.Flatten(),
    lambda: nn.Flatten(2),
    lambda: nn.Flatten(-2, -1),
    lambda: nn.Identity(),
    lambda: nn.Dropout(0.5),
])
def test_layer_matches_torch(layer) -> None:
    torch.manual_seed(0)
    same_outputs(nn.Sequential(layer()), (2, 6, 6))


def test_conv1d_and_linear_on_leading_axes() -> None:
    torch.manual_seed(0)
    same_outputs(nn.Sequential(nn.Conv1d(3, 4, 3, stride=2, padding=2), nn.Linear(6, 2)),
                 (3, 9))


def test_maxpool_on_spikes_is_exact() -> None:
    register_heaviside()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), Heaviside(),
                          nn.MaxPool2d(3, stride=2, padding=1), nn.Flatten(), nn.Linear(18, 3))
    graph, _ = same_outputs(model, (1, 6, 6), compiled=True)
    assert graph.node("2").type.spike
    assert [n.op.mnemonic for n in graph.nodes][2:5] == ["snn.threshold", "nn.sumpool2d",
                                                          "snn.threshold"]


def test_tracing_functions_skips_and_nesting() -> None:
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4, bias=False)

        def forward(self, x):
            return self.a(x) + self.b(x) + x  # fan-in of three

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)
            self.blocks = nn.Sequential(Block(), nn.Dropout(), Block())
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            h = self.conv(x)
            h = h.view(h.size(0), -1) if True else h
            h = torch.flatten(h.reshape(x.shape[0], -1).contiguous(), 1)
            h = torch.add(self.blocks(h), h)
            return self.head(h), self.head(h.flatten(1))

    graph, params = spikejit.from_torch(Net().eval(), (1, 2, 2), dt=1e-3)
    assert graph.outputs == ("output0", "output1")
    assert graph.node("head:1").op == graph.node("head").op  # shared module, shared params
    assert {"blocks.0.a.weight", "blocks.2.b.weight", "head.weight"} <= set(params)
    assert [u.node for u in graph.node("blocks.0.a").inputs] == ["view"]
    assert graph.node("blocks.0.a").loc == "torch:blocks.0.a (torch.nn.Linear)"
    x = randn((T, B, 1, 2, 2))
    y = spikejit.interpret(graph, params, x)
    model = Net().eval()
    model.load_state_dict(spikejit.to_torch_state_dict(graph, params), strict=True)
    with torch.no_grad():
        want = [model(torch.from_numpy(xt)) for xt in x]
    for i in range(2):
        np.testing.assert_allclose(y[f"output{i}"], np.stack([w[i].numpy() for w in want]),
                                   rtol=1e-5, atol=1e-6)


def test_root_module_can_be_a_registered_layer() -> None:
    layer = nn.Linear(3, 2)
    graph, params = spikejit.from_torch(layer, (3,), dt=1e-3)
    assert sorted(params) == ["root.bias", "root.weight"]
    state = spikejit.to_torch_state_dict(graph, params)
    assert sorted(state) == ["bias", "weight"]
    layer.load_state_dict(state, strict=True)


def test_write_back_of_trained_weights() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.AvgPool2d(2, divisor_override=2),
                          nn.Flatten(), nn.Linear(12, 4))
    graph, params = spikejit.from_torch(model, (2, 6, 6), dt=1e-3)
    rng = np.random.default_rng(1)
    trained = {k: (v + rng.normal(0, 0.1, v.shape)).astype(np.float32)
               if k.endswith(("weight", "bias")) else v for k, v in params.items()}
    model.load_state_dict(spikejit.to_torch_state_dict(graph, trained), strict=True)
    x = randn((T, B, 2, 6, 6))
    y_torch, _ = run_torch(model, x)
    np.testing.assert_allclose(spikejit.interpret(graph, trained, x), y_torch, rtol=1e-5,
                               atol=1e-5)
    bad = dict(trained, **{"1.scale": np.asarray(0.3, np.float32)})
    with pytest.raises(FrontendError, match=r"module '1' \(torch.nn.AvgPool2d\).*1/divisor"):
        spikejit.to_torch_state_dict(graph, bad)


def test_unknown_module_names_path_and_lists_supported() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU()))
    with pytest.raises(FrontendError) as info:
        spikejit.from_torch(model, (2,), dt=1e-3)
    msg = str(info.value)
    assert msg.startswith("module '1.0' (torch.nn.modules.activation.ReLU) is not supported. "
                          "Supported modules: ")
    assert "torch.nn.Linear (nn.affine, or nn.linear without bias)" in msg
    assert "register_torch_module" in msg


@pytest.mark.parametrize(("layer", "shape", "message"), [
    (lambda: nn.AvgPool2d(2, ceil_mode=True), (1, 5, 5), "ceil_mode=True adds a partial"),
    (lambda: nn.MaxPool2d(2), (1, 4, 4), "spike trains only"),
    (lambda: nn.MaxPool2d(2, dilation=2), (1, 4, 4), "dilation"),
    (lambda: nn.LPPool2d(2, 2), (1, 4, 4), "norm_type=2 is not supported"),
    (lambda: nn.Flatten(0), (1, 4, 4), "start_dim=0 flattens the batch axis"),
    (lambda: nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"), (1, 4, 4), "padding_mode"),
    (lambda: nn.Linear(3, 2), (1, 4, 4), "has 4 features on its last axis"),
])
def test_layer_errors_name_the_module(layer, shape, message) -> None:
    with pytest.raises(FrontendError, match=message) as info:
        spikejit.from_torch(nn.Sequential(layer()), shape, dt=1e-3)
    assert str(info.value).startswith("module '0' (torch.nn.")


def test_function_errors_name_the_source_line() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(x) * 2.0

    with pytest.raises(FrontendError, match=r"test_torch_modules\.py.*return self\.fc\(x\) "
                                            r"\* 2\.0: mul is not supported"):
        spikejit.from_torch(Scaled(), (2,), dt=1e-3)

    class Batchy(nn.Module):
        def forward(self, x):
            return torch.flatten(x)

    with pytest.raises(FrontendError, match=r"merges the batch axis"):
        spikejit.from_torch(Batchy(), (2, 2), dt=1e-3)

    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(FrontendError, match=r"torch.fx cannot trace Branchy.forward"):
        spikejit.from_torch(Branchy(), (2,), dt=1e-3)

    class TwoInputs(nn.Module):
        def forward(self, x, y):
            return x + y

    with pytest.raises(FrontendError, match=r"argument 'y' .* has no default"):
        spikejit.from_torch(TwoInputs(), (2,), dt=1e-3)


def test_bad_arguments() -> None:
    with pytest.raises(FrontendError, match=r"expected a torch.nn.Module"):
        spikejit.from_torch(object(), (2,), dt=1e-3)
    with pytest.raises(FrontendError, match=r"dt must be a positive number"):
        spikejit.from_torch(nn.Linear(2, 2), (2,), dt=0)
    with pytest.raises(FrontendError, match=r"input_shape"):
        spikejit.from_torch(nn.Linear(2, 2), (0,), dt=1e-3)


def test_registry_refuses_duplicates_without_replace() -> None:
    register_heaviside()
    with pytest.raises(FrontendError, match=r"tests.Heaviside is already registered"):
        spikejit.register_torch_module(Heaviside, build_heaviside, kind="tests.Heaviside")


def test_import_spikejit_does_not_import_torch() -> None:
    code = ("import sys, spikejit, spikejit.ir, spikejit.frontends.torch.modules, "
            "spikejit.frontends.torch.importer; "
            "assert 'torch' not in sys.modules, 'torch was imported'; "
            "spikejit.from_torch; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_docs_list_every_builtin_module() -> None:
    from pathlib import Path

    from spikejit.frontends.torch.modules import supported_modules

    pytest.importorskip("snntorch")
    pytest.importorskip("norse")
    import spikejit.frontends.torch.norse
    import spikejit.frontends.torch.snntorch  # noqa: F401

    doc = (Path(__file__).resolve().parents[2] / "docs" / "torch.md").read_text()
    table = "\n".join(line for line in doc.splitlines() if line.startswith("| `"))
    kinds = [s.split(" ")[0] for s in supported_modules() if not s.startswith("tests.")]
    missing = [k for k in kinds
               if f"`{k}`" not in table and f"`{k.rsplit('.', 1)[-1]}`" not in table]
    assert not missing, f"docs/torch.md does not list {missing}"


def test_compare_counts_only_rounding_mismatches() -> None:
    from helpers_torch import Probe, compare

    v = np.full((4, 2, 1), 0.5)
    spikes = np.zeros((4, 2, 1))
    ours = spikes.copy()
    ours[2, 1, 0] = 1.0  # we spike, torch does not: its membrane decides
    near = v.copy()
    near[2, 1, 0] = 1.0 - 3e-6
    report = compare([Probe("n", v, near, 1.0, ours, spikes)])
    assert (report.near_threshold, report.truncated) == (1, {1: 2})
    with pytest.raises(AssertionError, match="not a rounding case"):
        compare([Probe("n", v, v, 1.0, ours, spikes)])
    with pytest.raises(AssertionError, match="%n v sample 0"):
        compare([Probe("n", v, v + 1e-3, 1.0, spikes, spikes)])
