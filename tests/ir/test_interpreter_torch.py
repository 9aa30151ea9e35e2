"""Convolution, pooling and flatten in the reference interpreter against torch."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_interp import graph, inp, node, out, ref
from hypothesis import given, settings
from hypothesis import strategies as st

from spikejit.ir.interpreter import interpret
from spikejit.ir.ops import Affine, AvgPool2d, Conv1d, Conv2d, Flatten, SumPool2d

torch = pytest.importorskip("torch")
F = torch.nn.functional

T, B = 2, 3


def _run(op, in_shape, params, seed=0):
    """Interpret ``input -> op -> output`` on random data; return x and y as [T*B, ...]."""
    g = graph(inp("x", in_shape, "f32"), node("n", op, "x"), out("y", "n"), dt=None)
    x = np.random.default_rng(seed).normal(size=(T, B, *in_shape))
    y = interpret(g, params, x)
    return torch.from_numpy(x.reshape(T * B, *in_shape)), y.reshape(T * B, *y.shape[2:])


def _conv_op(nd, c_in, c_out, kernel, stride, padding, dilation, groups, bias, rng):
    kernel = (kernel,) * nd if isinstance(kernel, int) else tuple(kernel)
    w = rng.normal(size=(c_out, c_in // groups, *kernel)).astype(np.float32)
    params = {"n.w": w}
    b_ref = None
    if bias:
        params["n.b"] = rng.normal(size=(c_out,)).astype(np.float32)
        b_ref = ref("n.b", (c_out,), "f32")
    cls = Conv1d if nd == 1 else Conv2d
    op = cls(weight=ref("n.w", w.shape, "f32"), bias=b_ref, stride=stride, padding=padding,
             dilation=dilation, groups=groups)
    return op, params


def _torch_conv(nd, x, params, op):
    w = torch.from_numpy(params["n.w"].astype(np.float64))
    b = torch.from_numpy(params["n.b"].astype(np.float64)) if "n.b" in params else None
    conv = F.conv1d if nd == 1 else F.conv2d
    padding = op.padding
    if padding == "same" and max(op.stride) > 1:
        # torch refuses 'same' with stride > 1: pad explicitly as the contract says,
        # (d*(K-1))//2 before and the rest after, per spatial axis.
        flat = []
        for lo, hi in reversed(op.pads()):  # F.pad lists the last axis first
            flat += [lo, hi]
        x, padding = F.pad(x, flat), 0
    return conv(x, w, b, stride=op.stride, padding=padding, dilation=op.dilation,
                groups=op.groups).numpy()


CONV_CASES = [
    # nd, C_in, C_out, kernel, stride, padding, dilation, groups, bias, spatial
    (1, 3, 4, 3, 1, 0, 1, 1, True, (10,)),
    (1, 4, 6, 3, 2, 1, 1, 2, False, (11,)),
    (1, 4, 4, 2, 1, "same", 2, 4, True, (9,)),
    (1, 2, 3, 4, 1, "same", 1, 1, True, (8,)),
    (1, 3, 2, 3, 3, "valid", 2, 1, True, (20,)),
    (1, 4, 4, 4, 2, "same", 1, 2, True, (11,)),
    (2, 3, 4, (3, 3), 1, 1, 1, 1, True, (8, 8)),
    (2, 4, 6, (3, 2), (2, 1), (1, 0), (1, 2), 2, True, (9, 7)),
    (2, 2, 4, (2, 3), 1, "same", (2, 1), 2, False, (6, 7)),
    (2, 3, 3, (3, 4), 2, "same", 1, 3, True, (9, 8)),
    (2, 3, 6, (2, 2), (3, 2), "same", (2, 1), 3, True, (10, 9)),
    (2, 1, 2, (5, 5), (2, 3), "valid", 1, 1, True, (12, 13)),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv_matches_torch(case) -> None:
    nd, c_in, c_out, kernel, stride, padding, dilation, groups, bias, spatial = case
    rng = np.random.default_rng(10)
    op, params = _conv_op(nd, c_in, c_out, kernel, stride, padding, dilation, groups, bias, rng)
    x, y = _run(op, (c_in, *spatial), params)
    expect = _torch_conv(nd, x, params, op)
    assert y.shape == expect.shape
    np.testing.assert_allclose(y, expect, rtol=1e-12, atol=1e-12)


def test_same_padding_with_an_even_kernel_pads_more_after() -> None:
    # tot = d*(K-1) = 3 is split (1, 2): the extra zero goes after the data, as in torch.
    rng = np.random.default_rng(11)
    op, params = _conv_op(1, 1, 1, 4, 1, "same", 1, 1, False, rng)
    assert op.pads() == ((1, 2),)
    x, y = _run(op, (1, 6), params)
    w = params["n.w"][0, 0].astype(np.float64)
    xp = np.pad(x.numpy()[:, 0], ((0, 0), (1, 2)))
    by_hand = np.stack([xp[:, j:j + 4] @ w for j in range(6)], axis=-1)
    np.testing.assert_allclose(y[:, 0], by_hand, rtol=1e-12, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    nd=st.sampled_from([1, 2]),
    groups=st.sampled_from([1, 2, 3]),
    cin_g=st.integers(1, 2),
    cout_g=st.integers(1, 2),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    padding=st.one_of(st.integers(0, 2), st.sampled_from(["same", "valid"])),
    extra=st.integers(0, 4),
    seed=st.integers(0, 2**16),
)
def test_random_convs_match_torch(nd, groups, cin_g, cout_g, kernel, stride, dilation, padding,
                                  extra, seed) -> None:
    rng = np.random.default_rng(seed)
    op, params = _conv_op(nd, cin_g * groups, cout_g * groups, kernel, stride, padding, dilation,
                          groups, bool(seed % 2), rng)
    size = dilation * (kernel - 1) + 1 + extra  # never smaller than the dilated kernel
    x, y = _run(op, (cin_g * groups, *(size,) * nd), params, seed)
    np.testing.assert_allclose(y, _torch_conv(nd, x, params, op), rtol=1e-12, atol=1e-12)


POOL_CASES = [
    # kernel, stride, padding, spatial
    (2, None, 0, (6, 6)),
    (3, 2, 1, (7, 8)),
    ((2, 3), (1, 2), (1, 1), (5, 7)),
    ((3, 1), 1, (1, 0), (4, 5)),
    (2, 3, 0, (8, 7)),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_pools_match_torch(case) -> None:
    kernel, stride, padding, spatial = case
    avg = AvgPool2d(kernel_size=kernel, stride=stride, padding=padding)
    sum_ = SumPool2d(kernel_size=kernel, stride=stride, padding=padding)
    x, y_avg = _run(avg, (2, *spatial), {})
    _, y_sum = _run(sum_, (2, *spatial), {})
    expect = F.avg_pool2d(x, kernel, stride=stride, padding=padding,
                          count_include_pad=True).numpy()
    area = np.prod(avg.kernel_size)
    np.testing.assert_allclose(y_avg, expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y_sum, expect * area, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("start", "end"), [(0, -1), (1, 2), (-2, -1), (0, 1), (1, 1)])
def test_flatten_matches_torch_past_the_batch_axis(start: int, end: int) -> None:
    x, y = _run(Flatten(start_dim=start, end_dim=end), (2, 3, 4), {})
    # Per-sample dims: torch sees a batch axis in front, so non-negative dims shift by one.
    t_start = start + 1 if start >= 0 else start
    t_end = end + 1 if end >= 0 else end
    expect = torch.flatten(x, t_start, t_end).numpy()
    assert y.shape == expect.shape
    np.testing.assert_array_equal(y, expect)


def test_conv_pool_flatten_affine_chain_matches_torch() -> None:
    rng = np.random.default_rng(12)
    w = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    b = rng.normal(size=(4,)).astype(np.float32)
    fw = rng.normal(size=(5, 4 * 3 * 3)).astype(np.float32)
    fb = rng.normal(size=(5,)).astype(np.float32)
    g = graph(
        inp("x", (2, 6, 6), "f32"),
        node("c", Conv2d(weight=ref("c.w", (4, 2, 3, 3), "f32"), bias=ref("c.b", (4,), "f32"),
                         padding=1), "x"),
        node("p", AvgPool2d(kernel_size=2), "c"),
        node("f", Flatten(), "p"),
        node("fc", Affine(weight=ref("fc.w", (5, 36), "f32"), bias=ref("fc.b", (5,), "f32")),
             "f"),
        out("y", "fc"), dt=None)
    x = rng.normal(size=(T, B, 2, 6, 6))
    y = interpret(g, {"c.w": w, "c.b": b, "fc.w": fw, "fc.b": fb}, x)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.AvgPool2d(2),
                                torch.nn.Flatten(), torch.nn.Linear(36, 5)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(w))
        model[0].bias.copy_(torch.from_numpy(b))
        model[3].weight.copy_(torch.from_numpy(fw))
        model[3].bias.copy_(torch.from_numpy(fb))
        expect = model(torch.from_numpy(x.reshape(T * B, 2, 6, 6))).numpy()
    np.testing.assert_allclose(y.reshape(T * B, 5), expect, rtol=1e-10, atol=1e-10)
