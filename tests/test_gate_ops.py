"""relu6, silu and the broadcasting mul (MobileNetV2, EfficientNet's squeeze-excitation):
naive references, finite-difference gradients, counts, and PyTorch where installed."""
from __future__ import annotations

import math

import numpy as np
import pytest

import archstat
from archstat import engine
from archstat.layers import RunContext, get

from naive_ops import numerical_gradient, rel_error


def relu6_naive(x):
    return np.vectorize(lambda v: min(max(v, 0.0), 6.0))(x)


def silu_naive(x):
    return np.vectorize(lambda v: v / (1.0 + math.exp(-v)))(x)


def mul_naive(a, gate):
    n, c, h, w = a.shape
    y = np.empty_like(a)
    for i in range(n):
        for j in range(c):
            for r in range(h):
                for q in range(w):
                    y[i, j, r, q] = a[i, j, r, q] * gate[i, j, 0 if gate.shape[2] == 1 else r,
                                                        0 if gate.shape[3] == 1 else q]
    return y


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_forward_matches_naive(rng):
    x = rng.standard_normal((2, 3, 4, 5)) * 5
    assert np.allclose(engine.relu6(x), relu6_naive(x))
    y, s = engine.silu(x)
    assert np.allclose(y, silu_naive(x))
    assert np.allclose(s, 1 / (1 + np.exp(-x)))
    gate = rng.standard_normal((2, 3, 1, 1))
    assert np.allclose(engine.mul([x, gate]), mul_naive(x, gate))


@pytest.mark.parametrize("dtype,ulps", [(np.float32, 4), (np.float64, 4)])
def test_sigmoid_and_silu_are_accurate_to_a_few_ulp_everywhere(dtype, ulps):
    # every float32 magnitude from 1e-6 to the overflow of exp(-x) and past it, both signs, in
    # a large array (several cache-sized pieces on every core) and in a small one
    mags = np.geomspace(1e-6, 120.0, 2_000_003 // 2)
    x = np.concatenate([-mags, [0.0], mags]).astype(dtype)
    ref_s = 1 / (1 + np.exp(-x.astype(np.longdouble)))
    for xs, rs in ((x, ref_s), (x[::97], ref_s[::97])):     # contiguous, and strided pieces
        eps = np.finfo(dtype).eps
        s = engine.sigmoid(xs)
        y, s2 = engine.silu(xs)
        y_inf, _ = engine.silu(xs, keep_sigmoid=False)
        # where exp(-x) overflows (x below -88.7 in float32) both give 0, as PyTorch: the true
        # values there are under 1024 x the smallest normal float (sigmoid's are subnormal)
        floor = 1024 * np.finfo(dtype).tiny
        for got, want in ((s, rs), (s2, rs), (y, xs * rs), (y_inf, xs * rs)):
            want = want.astype(np.float64) if dtype is np.float32 else want
            err = np.abs(got - want) / np.maximum(np.abs(want), floor / eps)
            assert err.max() <= ulps * eps, (float(err.max()), xs[np.argmax(err)])
            assert np.all(got[xs < -120] == 0)
        np.testing.assert_array_equal(s2, s)     # the sigmoid SiLU keeps is sigmoid's bits
        np.testing.assert_array_equal(y_inf, y)  # inference and training give the same y
    with np.errstate(all="raise"):               # the overflow of exp(-x) is silenced inside
        assert engine.sigmoid(np.array([-1000.0], dtype))[0] == 0
        y, s = engine.silu(np.array([-1000.0, 1000.0], dtype))
        # and where 1 / (1 + exp(-x)) or x / (1 + exp(-x)) underflow to a subnormal, just above
        edge = np.array([-88.0, -87.5, -103.0] if dtype is np.float32 else [-709.0, -708.5, -744.0], dtype)
        for keep in (True, False):
            engine.silu(edge, keep_sigmoid=keep)
        engine.sigmoid(edge)
    assert y.tolist() == [0.0, 1000.0] and np.signbit(y[0]) and s.tolist() == [0.0, 1.0]


def test_relu6_backward_masks_both_kinks():
    x = np.array([-1.0, 0.0, 0.5, 6.0, 7.0])
    dy = np.ones_like(x)
    # PyTorch's hardtanh backward passes gradient only strictly inside (0, 6)
    assert engine.relu6_backward(dy, engine.relu6(x)).tolist() == [0, 0, 1, 0, 0]


def test_silu_gradient_finite_difference(rng):
    x = rng.standard_normal((2, 3, 4, 4))
    dy = rng.standard_normal(x.shape)
    y, s = engine.silu(x)
    dx = engine.silu_backward(dy, y, s)
    num = numerical_gradient(lambda: engine.silu(x)[0], x, dy)
    assert rel_error(dx, num) < 1e-7


def test_mul_gradient_finite_difference_with_broadcast(rng):
    a = rng.standard_normal((2, 3, 4, 4))
    gate = rng.standard_normal((2, 3, 1, 1))
    dy = rng.standard_normal(a.shape)
    da, dgate = engine.mul_backward(dy, [a, gate])
    assert dgate.shape == gate.shape
    assert rel_error(da, numerical_gradient(lambda: engine.mul([a, gate]), a, dy)) < 1e-7
    assert rel_error(dgate, numerical_gradient(lambda: engine.mul([a, gate]), gate, dy)) < 1e-7


def test_in_place_silu_still_differentiates(rng):
    x = rng.standard_normal((1, 2, 3, 3))
    ref_y, ref_s = engine.silu(x.copy())
    t = get("silu")
    buf = x.copy()
    y, cache = t.forward([buf], {}, {"inplace": True}, RunContext())
    assert y is buf  # written over its input
    dy = rng.standard_normal(x.shape)
    (dx,), _ = t.backward(dy, cache)
    assert np.allclose(dx, engine.silu_backward(dy, ref_y, ref_s))


def test_squeeze_excitation_counts_and_shapes():
    # an EfficientNet-style SE gate on 32x14x14: pool -> 1x1 conv 8 -> silu -> 1x1 conv 32 -> sigmoid -> mul
    spec = {"input": [32, 14, 14], "layers": [
        {"name": "pool", "type": "global_avg_pool2d"},
        {"name": "reduce", "type": "conv2d", "out_channels": 8, "kernel_size": 1},
        {"name": "act", "type": "silu", "inplace": True},
        {"name": "expand", "type": "conv2d", "out_channels": 32, "kernel_size": 1},
        {"name": "gate", "type": "sigmoid"},
        {"name": "scale", "type": "mul", "inputs": ["input", "gate"]},
        {"name": "cap", "type": "relu6"}]}
    rows = {r["name"]: r for r in archstat.analyze(spec).rows()}
    assert rows["scale"]["output_shape"] == (1, 32, 14, 14)
    assert rows["scale"]["flops"] == 32 * 14 * 14          # one multiply per output element
    assert rows["act"]["flops"] == 5 * 8                   # silu: sigmoid's 4 + 1 multiply
    assert rows["act"]["activation_bytes"] == 0            # in place
    assert rows["cap"]["flops"] == 2 * 32 * 14 * 14        # relu6: two comparisons
    assert rows["reduce"]["params"] == 32 * 8 + 8 and rows["expand"]["params"] == 8 * 32 + 32


def test_mul_refuses_shapes_that_do_not_broadcast_into_the_first():
    spec = {"input": [8, 4, 4], "layers": [
        {"name": "p", "type": "global_avg_pool2d"},
        {"name": "bad", "type": "mul", "inputs": ["p", "input"]}]}
    with pytest.raises(archstat.ArchstatError, match="field 'inputs'.*put the full-size tensor first"):
        archstat.load(spec)


def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 5, 5)) * 4
    gate = rng.standard_normal((2, 3, 1, 1))
    dy = rng.standard_normal(x.shape)
    for ours, fn in ((lambda v: engine.relu6(v), torch.nn.functional.relu6),
                     (lambda v: engine.silu(v)[0], torch.nn.functional.silu)):
        tx = torch.tensor(x, requires_grad=True)
        ty = fn(tx)
        ty.backward(torch.tensor(dy))
        assert np.allclose(ours(x), ty.detach().numpy())
    ta, tg = torch.tensor(x, requires_grad=True), torch.tensor(gate, requires_grad=True)
    (ta * tg).backward(torch.tensor(dy))
    da, dg = engine.mul_backward(dy, [x, gate])
    assert np.allclose(da, ta.grad.numpy()) and np.allclose(dg, tg.grad.numpy())
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.silu(tx).backward(torch.tensor(dy))
    y, s = engine.silu(x)
    assert np.allclose(engine.silu_backward(dy, y, s), tx.grad.numpy())
