"""Cross-check hardswish, hardsigmoid, gelu, layer_norm, layer_norm2d and layer_scale against
PyTorch, forward and backward (autograd with a random upstream gradient), on seeded inputs
and at the kinks; then a ConvNeXt block with MobileNetV3 activations through the executor."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
nn = torch.nn

import archstat.engine as engine  # noqa: E402
from archstat.engine.executor import Executor  # noqa: E402
from torch_check import check, to_torch as _t  # noqa: E402

SEEDS = range(3)


def _with_kinks(rng, dtype):
    """Random values spread over both kinks, plus the kinks themselves, their float
    neighbours, the hardswish minimum -1.5, signed zeros and NaN."""
    x = rng.standard_normal(300) * 4
    marks = [-3.0, 3.0, -1.5, 0.0, -0.0, np.nan]
    for k in (-3.0, 3.0):
        marks += [np.nextafter(dtype(k), dtype(-9)), np.nextafter(dtype(k), dtype(9))]
    return np.concatenate([x, marks]).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["hardswish", "hardsigmoid"])
def test_hard_activations_are_bit_for_bit_pytorch(name, dtype):
    rng = np.random.default_rng([0, 1])
    x = _with_kinks(rng, dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dy[:3] = [np.inf, -np.inf, np.nan]   # where x < -3 (rows 0-2 are redrawn below): +0.0
    x[:3] = -5.0
    fn, grad = getattr(engine, name), getattr(engine, name + "_backward")
    # PyTorch's float64 hardsigmoid backward multiplies by 1/6 rounded to float32 (3e-8 off)
    rtol = 1e-7 if (name, dtype) == ("hardsigmoid", np.float64) else 0
    y, ty, (dx,), (tdx,) = check(fn, lambda d, _: [grad(d, x)], getattr(F, name), [x], 0, rtol=rtol, atol=0,
                                 dy=dy)
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(ty))  # -0.0 where PyTorch has it
    np.testing.assert_array_equal(dx == 0, tdx == 0)  # the kink rules: the same zeros
    assert dx.dtype == y.dtype == dtype
    assert (dx[:3] == 0).all() and not np.signbit(dx[:3]).any()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(seed, approximate):
    rng = np.random.default_rng([seed, 2])
    x = np.concatenate([rng.standard_normal(200) * 3, np.linspace(-12, 12, 97)])
    # atol: PyTorch computes 1 + erf(x / sqrt 2), which cancels for x << 0 (we use erfc)
    check(lambda a: engine.gelu(a, approximate), lambda d, _: [engine.gelu_backward(d, x, approximate)],
          lambda a: F.gelu(a, approximate=approximate), [x], seed, rtol=1e-12, atol=1e-14)
    # float32: both sides lose ~1e-6 absolute to 1 + erf / 1 + tanh cancelling for x << 0
    x32 = x.astype(np.float32)
    check(lambda a: engine.gelu(a, approximate), lambda d, _: [engine.gelu_backward(d, x32, approximate)],
          lambda a: F.gelu(a, approximate=approximate), [x32], seed, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("affine", ["none", "weight", "both"])
def test_layer_norm(seed, k, affine):
    rng = np.random.default_rng([seed, 3, k])
    x = rng.standard_normal((int(rng.integers(1, 4)), 3, 4, 5)) * 3 + 2
    ns = x.shape[4 - k:]
    w = rng.standard_normal(ns) if affine != "none" else None
    b = rng.standard_normal(ns) if affine == "both" else None
    eps = float(rng.choice([1e-5, 1e-3]))
    check(lambda a, ww, bb: engine.layer_norm(a, ns, ww, bb, eps),
          lambda d, _: engine.layer_norm_backward(d, x, ns, w, eps),
          lambda a, ww, bb: F.layer_norm(a, ns, ww, bb, eps), [x, w, b], seed, rtol=1e-9, atol=1e-11)


def _torch_layer_norm2d(x, w, b, eps):
    """torchvision.models.convnext.LayerNorm2d.forward."""
    x = x.permute(0, 2, 3, 1)
    x = F.layer_norm(x, (x.shape[-1],), w, b, eps)
    return x.permute(0, 3, 1, 2)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm2d(seed, affine):
    rng = np.random.default_rng([seed, 4])
    x = rng.standard_normal((2, int(rng.integers(2, 9)), 3, 4)) * 2
    c = x.shape[1]
    w, b = (rng.standard_normal(c), rng.standard_normal(c)) if affine else (None, None)
    check(lambda a, ww, bb: engine.layer_norm2d(a, ww, bb, 1e-6),
          lambda d, _: engine.layer_norm2d_backward(d, x, w, 1e-6),
          lambda a, ww, bb: _torch_layer_norm2d(a, ww, bb, 1e-6), [x, w, b], seed, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("seed", SEEDS)
def test_layer_scale(seed):
    rng = np.random.default_rng([seed, 5])
    x = rng.standard_normal((2, 6, 3, 3))
    w = rng.standard_normal((6, 1, 1))
    check(engine.layer_scale, lambda d, _: engine.layer_scale_backward(d, x, w),
          lambda a, ww: ww * a, [x, w], seed)


# --------------------------------------------------------------- a whole block

class _LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        return _torch_layer_norm2d(x, self.weight, self.bias, self.eps)


class _LayerScale(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c, 1, 1) * 1e-6)

    def forward(self, x):
        return self.weight * x


class Block(nn.Module):
    """torchvision's ConvNeXt CNBlock (1x1 convs for its NHWC linears), followed by an
    in-place hardswish, a layer norm over (H, W) and a tanh GELU. (No hardsigmoid: PyTorch's
    float64 rounding of its slope would set the tolerance of every gradient upstream.)"""

    def __init__(self, c, h, w):
        super().__init__()
        self.body = nn.Sequential(OrderedDict([
            ("dwconv", nn.Conv2d(c, c, 7, padding=3, groups=c)), ("norm", _LayerNorm2d(c, eps=1e-6)),
            ("pw1", nn.Conv2d(c, 4 * c, 1)), ("gelu", nn.GELU()), ("pw2", nn.Conv2d(4 * c, c, 1)),
            ("scale", _LayerScale(c))]))
        self.tail = nn.Sequential(OrderedDict([
            ("hs", nn.Hardswish(inplace=True)), ("ln", nn.LayerNorm([h, w])),
            ("gelu_t", nn.GELU(approximate="tanh"))]))

    def forward(self, x):
        return self.tail(x + self.body(x))


BLOCK = {"input": [3, 5, 6], "layers": [
    {"name": "dwconv", "type": "conv2d", "out_channels": 3, "kernel_size": 7, "padding": 3, "groups": 3},
    {"name": "norm", "type": "layer_norm2d", "eps": 1e-6},
    {"name": "pw1", "type": "conv2d", "out_channels": 12, "kernel_size": 1},
    {"name": "gelu", "type": "gelu"},
    {"name": "pw2", "type": "conv2d", "out_channels": 3, "kernel_size": 1},
    {"name": "scale", "type": "layer_scale"},
    {"name": "add", "type": "add", "inputs": ["input", "scale"]},
    {"name": "hs", "type": "hardswish", "inplace": True},
    {"name": "ln", "type": "layer_norm", "normalized_shape": [5, 6]},
    {"name": "gelu_t", "type": "gelu", "approximate": "tanh"}]}


@pytest.mark.parametrize("train", [True, False])
def test_executor_matches_torch_on_a_convnext_block(train):
    rng = np.random.default_rng(6)
    start = Executor(BLOCK, seed=0, dtype="float64").state()
    assert float(start["scale"]["weight"].max()) == float(start["scale"]["weight"].min()) == 1e-6
    # random norms and scale (not 1, 0 and 1e-6), so their gradients are checked for real
    weights = {layer: {k: (v if layer.startswith(("dw", "pw")) else rng.standard_normal(v.shape))
                       for k, v in arrays.items()} for layer, arrays in start.items()}
    ex = Executor(BLOCK, weights=weights, seed=0, dtype="float64")
    module = Block(3, 5, 6).double()
    subs = dict(module.body.named_children()) | dict(module.tail.named_children())
    with torch.no_grad():
        for name, arrays in ex.params.items():
            for field, arr in arrays.items():
                getattr(subs[name], field).copy_(torch.tensor(arr))
    x = rng.standard_normal((2, 3, 5, 6)) * 2
    tx = _t(x, grad=True)
    ty = module(tx)
    y = ex.forward(x, train=train, keep_cache=True)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-9, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    ty.backward(_t(dy))
    grads = ex.backward(dy)
    np.testing.assert_allclose(ex.input_grad, tx.grad.numpy(), rtol=1e-8, atol=1e-11)
    assert set(grads) == {"dwconv", "norm", "pw1", "pw2", "scale", "ln"}
    for name, fields in grads.items():
        for field, g in fields.items():
            np.testing.assert_allclose(g, getattr(subs[name], field).grad.numpy(), rtol=1e-8, atol=1e-11,
                                       err_msg=f"{name}.{field}")
