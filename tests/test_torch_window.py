"""Cross-check the window kernels against torch.nn.functional on seeded random configurations,
forward and backward (autograd), float64: conv2d with every padding mode (F.pad + conv, as
torch.nn.Conv2d does), stride, dilation, groups, bias; max/avg pooling with ceil_mode,
padding, dilation and count_include_pad. One helper checks every op (tinygrad's test_ops)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from archstat import engine  # noqa: E402

BATCHES = range(12)   # x 25 configurations each: 300 convs, 300 max pools, 300 avg pools
PER_BATCH = 25
TORCH_MODE = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _t(a, grad=False):
    return torch.tensor(np.asarray(a), requires_grad=grad)


def check(np_forward, np_backward, torch_forward, inputs, rng, rtol=1e-9, atol=1e-10):
    """Run one op both ways on float64 ``inputs`` (None for an absent one); compare the output
    and, for one random upstream gradient, the gradient of every input that exists."""
    y = np_forward(*inputs)
    ts = [None if a is None else _t(a, grad=True) for a in inputs]
    ty = torch_forward(*ts)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=rtol, atol=atol)
    dy = rng.standard_normal(y.shape)
    ty.backward(_t(dy))
    for i, (g, t) in enumerate(zip(np_backward(dy), ts)):
        if t is not None:
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"gradient of input {i}")


def _pads(padding, k, d):
    """Per-side pads (left, right, top, bottom) as F.pad wants them; 'same' as torch splits it."""
    if padding == "same":
        (th, tw) = (d[0] * (k[0] - 1), d[1] * (k[1] - 1))
        return (tw // 2, tw - tw // 2, th // 2, th - th // 2)
    return (padding[1], padding[1], padding[0], padding[0])


def torch_conv(x, w, b, stride, padding, dilation, groups, mode):
    if mode == "zeros":
        return F.conv2d(x, w, b, stride, padding, dilation, groups)
    x = F.pad(x, _pads(padding, w.shape[2:], dilation), mode=TORCH_MODE[mode])
    return F.conv2d(x, w, b, stride, 0, dilation, groups)


def _conv_config(rng):
    """A random valid conv: None when the draw does not fit (then the caller draws again)."""
    g = int(rng.choice([1, 1, 2, 3]))
    depthwise = rng.random() < 0.15
    c_in = g * int(rng.integers(1, 4))
    if depthwise:
        g = c_in
    c_out = g * int(rng.integers(1, 3))
    k = tuple(int(v) for v in rng.integers(1, 5, 2))
    d = tuple(int(v) for v in rng.integers(1, 3, 2))
    mode = str(rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"]))
    if rng.random() < 0.15:
        s, p = (1, 1), "same"
    else:
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        p = tuple(int(v) for v in rng.integers(0, 3, 2))
    hw = tuple(int(v) for v in rng.integers(3, 11, 2))
    pads = _pads(p, k, d)
    padded = (hw[0] + pads[2] + pads[3], hw[1] + pads[0] + pads[1])
    if any(pd < d_ * (k_ - 1) + 1 for pd, d_, k_ in zip(padded, d, k)):
        return None
    if mode == "reflect" and max(pads) >= min(hw):
        return None
    if mode == "circular" and max(pads) > min(hw):
        return None
    n = int(rng.integers(1, 3))
    return (n, c_in) + hw, (c_out, c_in // g) + k, dict(stride=s, padding=p, dilation=d,
                                                        groups=g, padding_mode=mode)


def _draw(rng, make):
    while True:
        config = make(rng)
        if config is not None:
            return config


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's own note
@pytest.mark.parametrize("batch", BATCHES)
def test_conv2d_against_torch(batch):
    rng = np.random.default_rng([batch, 1])
    for _ in range(PER_BATCH):
        xs, ws, kw = _draw(rng, _conv_config)
        x, w = rng.standard_normal(xs), rng.standard_normal(ws)
        b = rng.standard_normal(ws[0]) if rng.random() < 0.7 else None

        def backward(dy):
            dx, dw, db = engine.conv2d_backward(dy, x, w, **kw)
            return dx, dw, db

        check(lambda x_, w_, b_: engine.conv2d(x_, w_, b_, **kw), backward,
              lambda x_, w_, b_: torch_conv(x_, w_, b_, kw["stride"], kw["padding"],
                                            kw["dilation"], kw["groups"], kw["padding_mode"]),
              [x, w, b], rng)


def test_conv2d_float32_against_torch():
    rng = np.random.default_rng(7)
    for _ in range(20):
        xs, ws, kw = _draw(rng, _conv_config)
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        y = engine.conv2d(x, w, **kw)
        assert y.dtype == np.float32
        ty = torch_conv(_t(x), _t(w), None, kw["stride"], kw["padding"], kw["dilation"],
                        kw["groups"], kw["padding_mode"])
        np.testing.assert_allclose(y, ty.numpy(), rtol=1e-4, atol=1e-5)


def _pool_config(rng, with_dilation):
    k = tuple(int(v) for v in rng.integers(1, 5, 2))
    d = tuple(int(v) for v in rng.integers(1, 3, 2)) if with_dilation else (1, 1)
    s = None if rng.random() < 0.2 else tuple(int(v) for v in rng.integers(1, 4, 2))
    # torch allows pad <= kernel_size // 2 (of the undilated kernel; see the report:
    # archstat's check_pool_padding allows up to half the dilated extent)
    p = tuple(int(rng.integers(0, k_ // 2 + 1)) for k_ in k)
    hw = tuple(int(v) for v in rng.integers(2, 11, 2))
    # windows must fit the padded input (see the report: archstat's shape rule refuses a
    # ceil_mode window larger than the padded input, which torch accepts)
    if any(h + 2 * p_ < d_ * (k_ - 1) + 1 for h, p_, k_, d_ in zip(hw, p, k, d)):
        return None
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    return (n, c) + hw, k, s, p, d, bool(rng.random() < 0.5)


@pytest.mark.parametrize("batch", BATCHES)
def test_max_pool2d_against_torch(batch):
    rng = np.random.default_rng([batch, 2])
    for _ in range(PER_BATCH):
        xs, k, s, p, d, cm = _draw(rng, lambda r: _pool_config(r, True))
        x = rng.standard_normal(xs)
        if rng.random() < 0.3:
            x = np.round(x * 2)   # ties: both send the gradient to the first maximum
        check(lambda x_: engine.max_pool2d(x_, k, s, p, d, cm),
              lambda dy: [engine.max_pool2d_backward(dy, x, k, s, p, d, cm)],
              lambda x_: F.max_pool2d(x_, k, s, p, d, cm), [x], rng)


@pytest.mark.parametrize("batch", range(4))
def test_max_pool2d_with_inf_and_nan_against_torch(batch):
    # torch's running update `val > max or isnan(val)`: NaN propagates and a window's
    # gradient goes to its last NaN; a window of -inf sends it to its first tap inside the
    # input, never to the padding
    rng = np.random.default_rng([batch, 6])
    for _ in range(PER_BATCH):
        xs, k, s, p, d, cm = _draw(rng, lambda r: _pool_config(r, True))
        x = np.round(rng.standard_normal(xs))
        for value in (np.inf, -np.inf, np.nan):
            x[rng.random(xs) < 0.15] = value
        check(lambda x_: engine.max_pool2d(x_, k, s, p, d, cm),
              lambda dy: [engine.max_pool2d_backward(dy, x, k, s, p, d, cm)],
              lambda x_: F.max_pool2d(x_, k, s, p, d, cm), [x], rng)


@pytest.mark.parametrize("batch", BATCHES)
def test_avg_pool2d_against_torch(batch):
    rng = np.random.default_rng([batch, 3])
    for _ in range(PER_BATCH):
        xs, k, s, p, _, cm = _draw(rng, lambda r: _pool_config(r, False))
        cip = bool(rng.random() < 0.5)
        x = rng.standard_normal(xs)
        check(lambda x_: engine.avg_pool2d(x_, k, s, p, cm, cip),
              lambda dy: [engine.avg_pool2d_backward(dy, x.shape, k, s, p, cm, cip)],
              lambda x_: F.avg_pool2d(x_, k, s, p, cm, cip), [x], rng)


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 4, 1, 7), (3, 2, 6, 6)])
def test_global_avg_pool2d_against_torch(shape):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape)
    check(engine.global_avg_pool2d,
          lambda dy: [engine.global_avg_pool2d_backward(dy, x.shape)],
          lambda x_: F.adaptive_avg_pool2d(x_, 1), [x], rng)


def test_vgg_sized_layer_against_torch_float32():
    # one realistic layer through the blocked path (several column blocks per image)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 64, 56, 56)).astype(np.float32)
    w = (rng.standard_normal((32, 64, 3, 3)) * 0.05).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    y = engine.conv2d(x, w, b, padding=1)
    tx, tw = _t(x, True), _t(w, True)
    ty = F.conv2d(tx, tw, _t(b), padding=1)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-3, atol=1e-3)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ty.backward(_t(dy))
    dx, dw, _ = engine.conv2d_backward(dy, x, w, padding=1)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-3, atol=2e-2)
