"""Every convolution lowering (``compile(..., conv_impl=...)``) against the reference
interpreter, and its gradients against plain ``lax.conv_general_dilated`` autodiff."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers_lowering import chain, check_model, params_for, ref, spike_input
from jax import lax

import spikejit
from spikejit.errors import OptionError
from spikejit.ir import ops as O
from spikejit.lowering import conv as C

IMPLS = C.CONV_IMPLS

#: (input shape, conv op): stride, padding (ints, 'same', 'valid'), dilation, groups, 1-d/2-d.
CONVS: dict[str, tuple[tuple[int, ...], O.Op]] = {
    "2d_pad1": ((2, 7, 7), O.Conv2d(weight=ref("c.weight", (4, 2, 3, 3)),
                                    bias=ref("c.bias", (4,)), padding=1)),
    "2d_stride_dil": ((2, 9, 8), O.Conv2d(weight=ref("c.weight", (4, 2, 3, 2)),
                                          bias=ref("c.bias", (4,)), stride=(2, 1),
                                          padding=(1, 0), dilation=(1, 2))),
    "2d_same_groups": ((4, 7, 6), O.Conv2d(weight=ref("c.weight", (6, 2, 3, 3)), stride=2,
                                           padding="same", groups=2)),
    "2d_same_dil_depthwise": ((3, 8, 8), O.Conv2d(weight=ref("c.weight", (3, 1, 2, 3)),
                                                  padding="same", dilation=2, groups=3)),
    "2d_valid": ((1, 6, 5), O.Conv2d(weight=ref("c.weight", (2, 1, 2, 2)), padding="valid")),
    "1d_same_stride_dil_groups": ((2, 11), O.Conv1d(weight=ref("c.weight", (4, 1, 3)),
                                                    bias=ref("c.bias", (4,)), stride=2,
                                                    padding="same", dilation=2, groups=2)),
}


def _lif(shape: tuple[int, ...]) -> O.Op:
    return O.LIF(tau=ref("l.tau", ()), v_threshold=ref("l.v_threshold", ()))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", sorted(CONVS))
def test_conv_lif_matches_the_interpreter(case: str, impl: str) -> None:
    shape, op = CONVS[case]
    g = chain(shape, ("c", op), ("l", _lif(())))
    x = spike_input((6, 3, *shape), seed=11, p=0.4)
    # Every schedule: layerwise runs the conv over T*B samples, stepwise over B per step.
    assert check_model(g, params_for(g, seed=12), x, conv_impl=impl).flips == 0


def _conv_args(case: str) -> tuple[tuple[int, ...], tuple, int, tuple, tuple]:
    shape, op = CONVS[case]
    assert isinstance(op, O.Conv1d | O.Conv2d)
    return shape, op.weight.type.shape, op.groups, op.stride, (op.pads(), op.dilation)


# custom_vjp with many weight-gradient chunks (N padded to a multiple) and with one chunk;
# "auto" is custom_vjp (tested through the compiler below); chunks do not affect the others.
@pytest.mark.parametrize(("impl", "chunk_bytes"), [("xla", 1 << 30), ("xla_nhwc", 1 << 30),
                                                   ("custom_vjp", 64), ("custom_vjp", 1 << 30)])
@pytest.mark.parametrize("case", sorted(CONVS))
def test_gradients_match_plain_lax_conv(case: str, impl: str, chunk_bytes: int,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(C, "CHUNK_BYTES", chunk_bytes)
    shape, wshape, groups, stride, (pads, dilation) = _conv_args(case)
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(7, *shape)), jnp.float32)  # 7 samples: chunks pad N
    w = jnp.asarray(rng.normal(size=wshape), jnp.float32)
    sp = "HW"[2 - len(stride):]
    dims = ("NC" + sp, "OI" + sp, "NC" + sp)

    def plain(x: Any, w: Any) -> Any:
        return lax.conv_general_dilated(x, w, stride, pads, rhs_dilation=dilation,
                                        feature_group_count=groups, dimension_numbers=dims)

    def variant(x: Any, w: Any) -> Any:
        return C.conv(x, w, stride, pads, dilation, groups, impl)

    y = plain(x, w)
    ct = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
    np.testing.assert_allclose(variant(x, w), y, rtol=1e-5, atol=1e-5)
    want = jax.grad(lambda x, w: jnp.vdot(plain(x, w), ct), (0, 1))(x, w)
    got = jax.jit(jax.grad(lambda x, w: jnp.vdot(variant(x, w), ct), (0, 1)))(x, w)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(b))))


def _cnn() -> Any:
    return chain((2, 8, 8),
                 ("c1", O.Conv2d(weight=ref("c1.weight", (4, 2, 3, 3)),
                                 bias=ref("c1.bias", (4,)), padding=1)),
                 ("l1", O.LIF(tau=ref("l1.tau", ()), v_threshold=ref("l1.v_threshold", ()))),
                 ("c2", O.Conv2d(weight=ref("c2.weight", (4, 4, 3, 3)), padding="same")),
                 ("l2", O.LIF(tau=ref("l2.tau", ()), v_threshold=ref("l2.v_threshold", ()))))


@pytest.mark.parametrize("schedule", ["layerwise", "stepwise"])
@pytest.mark.parametrize("impl", ["auto", "xla_nhwc", "custom_vjp"])
def test_network_gradients_equal_the_plain_xla_lowering(schedule: str, impl: str) -> None:
    """The stepwise schedule puts each conv (and its weight gradient) inside the scan."""
    g = _cnn()
    params = {k: jnp.asarray(v) for k, v in params_for(g, seed=21).items()}
    for k in ("c1.weight", "c2.weight"):  # strong enough that the second layer spikes
        params[k] = params[k] * 4.0
    x = jnp.asarray(spike_input((8, 3, 2, 8, 8), seed=22, p=0.4))

    def grads(conv_impl: str) -> dict[str, Any]:
        model = spikejit.compile((g, params), schedule=schedule, conv_impl=conv_impl)
        return jax.jit(jax.grad(lambda p: jnp.sum(model.apply(p, x))))(params)

    want, got = grads("xla"), grads(impl)
    model = spikejit.compile((g, params), schedule=schedule)
    assert 0 < float(jnp.mean(model.apply(params, x))) < 1  # the output layer spikes
    assert any(float(jnp.max(jnp.abs(v))) > 0 for v in want.values())  # non-trivial
    for k in want:
        scale = float(jnp.max(jnp.abs(want[k])))
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4 * scale + 1e-7,
                                   err_msg=k)


def test_default_passes_keep_the_spikes() -> None:
    """With the default passes the conv is the ``pre`` map of a fused conv+LIF layer."""
    g = _cnn()
    params = params_for(g, seed=31)
    x = spike_input((6, 2, 2, 8, 8), seed=32, p=0.4)
    want = spikejit.interpret(g, params, x, dtype=np.float32)
    for impl in IMPLS:
        got = spikejit.compile((g, params), conv_impl=impl)(x)
        np.testing.assert_array_equal(np.asarray(got["y"] if isinstance(got, dict) else got),
                                      np.asarray(want["y"] if isinstance(want, dict) else want))


def test_unknown_conv_impl_is_an_option_error() -> None:
    with pytest.raises(OptionError, match="conv_impl"):
        spikejit.compile(_cnn(), conv_impl="im2col")


def _recurrent_cnn() -> Any:
    """A conv layer whose LIF also receives its own spikes through a second conv one step
    later: a cycle, so the schedule must be stepwise with both convs inside the scan."""
    from spikejit.ir import Graph, GraphAttrs, Node, TensorType, Use, infer_types

    nodes = (
        Node("x", O.Input(type=TensorType((2, 6, 6)))),
        Node("c1", O.Conv2d(weight=ref("c1.weight", (3, 2, 3, 3)), bias=ref("c1.bias", (3,)),
                            padding=1), (Use("x"),)),
        Node("l1", O.LIF(tau=ref("l1.tau", ()), v_threshold=ref("l1.v_threshold", ())),
             (Use("c1"), Use("rec", 1))),
        Node("rec", O.Conv2d(weight=ref("rec.weight", (3, 3, 3, 3)), padding="same",
                             dilation=2), (Use("l1"),)),
        Node("y", O.Output(), (Use("l1"),)),
    )
    return infer_types(Graph(nodes, attrs=GraphAttrs(dt=1e-3)))


@pytest.mark.parametrize("passes", ["O0", None])
def test_recurrent_conv_hoisted_gradient_equals_plain_autodiff(passes: str | None) -> None:
    from spikejit.lowering.hoist import conv_op, hoisted_convs

    g = _recurrent_cnn()
    params = {k: jnp.asarray(v) for k, v in params_for(g, seed=41).items()}
    for k in ("c1.weight", "rec.weight"):
        params[k] = params[k] * 4.0
    x = jnp.asarray(spike_input((7, 2, 2, 6, 6), seed=42, p=0.5))
    opts = {} if passes is None else {"passes": passes}
    want_y = spikejit.interpret(g, {k: np.asarray(v) for k, v in params.items()},
                                np.asarray(x), dtype=np.float32)
    grads = {}
    for impl in ("xla", "custom_vjp"):
        model = spikejit.compile((g, params), conv_impl=impl, **opts)
        sched = model.graph.schedule
        stepwise = [s for s in sched.segments if s.kind == "stepwise"]
        assert stepwise  # the cycle forces a scan
        members = stepwise[0].nodes
        convs = [m for m in members if conv_op(model.graph.node(m)) is not None]
        assert "rec" in convs  # the recurrent conv is inside the scan
        # Fused with its LIF or not, every conv in the scan is hoisted (custom_vjp only).
        assert hoisted_convs(model.graph, members, impl) == (
            () if impl == "xla" else tuple(convs))
        y = model.apply(params, x)
        assert 0 < float(jnp.mean(y)) < 1
        np.testing.assert_array_equal(np.asarray(y), np.asarray(
            want_y["y"] if isinstance(want_y, dict) else want_y))
        grads[impl] = jax.jit(jax.grad(lambda p, m=model: jnp.sum(m.apply(p, x))))(params)
    for k, want in grads["xla"].items():
        scale = float(jnp.max(jnp.abs(want)))
        np.testing.assert_allclose(grads["custom_vjp"][k], want, rtol=1e-4,
                                   atol=1e-4 * scale + 1e-7, err_msg=k)
    assert float(jnp.max(jnp.abs(grads["xla"]["rec.weight"]))) > 0
