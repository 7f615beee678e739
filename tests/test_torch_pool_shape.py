"""Cross-check adaptive pooling, permute, split (torch.chunk / torch.split), channel shuffle,
stochastic depth and linear on the last axis against PyTorch, forward and backward
(autograd, one random upstream gradient), float64 on seeded configurations, with ties and
NaN for the max pool and float32 where the dtype matters."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import archstat.engine as engine  # noqa: E402
from archstat.errors import ArchstatError  # noqa: E402


def _t(a, grad=False):
    return torch.tensor(np.asarray(a), requires_grad=grad)


def check(np_forward, np_backward, torch_forward, inputs, seed, rtol=1e-12, atol=1e-13):
    """Run one op both ways on ``inputs`` (arrays; None for an absent one). ``np_backward(dy)``
    returns the gradient of every input, in order; torch's come from autograd."""
    y = np_forward(*inputs)
    ts = [None if a is None else _t(a, grad=True) for a in inputs]
    ty = torch_forward(*ts)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=rtol, atol=atol)
    assert y.dtype == ty.detach().numpy().dtype
    dy = np.random.default_rng([seed, 99]).standard_normal(y.shape).astype(y.dtype)
    ty.backward(_t(dy))
    for i, (g, t) in enumerate(zip(np_backward(dy), ts)):
        if t is not None:
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"input {i}")


# ------------------------------------------------------------------ adaptive pooling

def _adaptive_configs(count, seed):
    """Random (shape, output_size) pairs: down- and upsampling, null entries, 1-pixel axes."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), *(int(v) for v in rng.integers(1, 16, 2)))
        oh, ow = (int(v) for v in rng.integers(1, 18, 2))
        out.append((shape, (None if rng.random() < 0.15 else oh, ow)))
    return out


FIXED = [((2, 3, 13, 13), (7, 7)), ((1, 2, 5, 5), (3, 3)), ((2, 2, 7, 7), (14, 14)),
         ((1, 2, 224, 10), (7, 3)), ((2, 2, 13, 9), (3, 4)), ((1, 1, 6, 7), (1, 1))]
CONFIGS = FIXED + _adaptive_configs(30, 7)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_adaptive_avg_pool(config, ties):
    shape, out = config
    x = np.random.default_rng(shape).standard_normal(shape)
    x = np.round(x) if ties else x
    check(lambda a: engine.adaptive_avg_pool2d(a, out),
          lambda dy: [engine.adaptive_avg_pool2d_backward(dy, x.shape, out)],
          lambda a: F.adaptive_avg_pool2d(a, out), [x], sum(shape))


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_adaptive_max_pool(config, ties):
    # with ties (rounded values) the gradient must go where torch's index points
    shape, out = config
    x = np.random.default_rng(shape).standard_normal(shape)
    x = np.round(x) if ties else x
    check(lambda a: engine.adaptive_max_pool2d(a, out),
          lambda dy: [engine.adaptive_max_pool2d_backward(dy, x, out)],
          lambda a: F.adaptive_max_pool2d(a, out), [x], sum(shape))


@pytest.mark.parametrize("config", [((1, 2, 5, 5), (3, 3)), ((2, 1, 13, 7), (7, 3)),
                                    ((1, 1, 4, 4), (2, 2)), ((1, 2, 3, 5), (6, 7))], ids=str)
def test_adaptive_max_pool_nan_and_inf(config):
    shape, out = config
    rng = np.random.default_rng(3)
    x = np.round(rng.standard_normal(shape))
    flat = x.reshape(-1)
    flat[rng.choice(flat.size, size=max(2, flat.size // 6), replace=False)] = np.nan
    flat[rng.choice(flat.size, size=2, replace=False)] = -np.inf
    y = engine.adaptive_max_pool2d(x, out)
    ty, index = F.adaptive_max_pool2d(_t(x), out, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())          # NaN where torch has NaN
    # every output's gradient lands on torch's index: dy = 1 at one output at a time
    for o in np.ndindex(*y.shape):
        dy = np.zeros(y.shape)
        dy[o] = 1.0
        dx = engine.adaptive_max_pool2d_backward(dy, x, out)
        n, c = o[:2]
        hit = np.flatnonzero(dx[n, c])
        assert hit.tolist() == [int(index[o])], (o, hit, int(index[o]))


@pytest.mark.parametrize("name", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
def test_adaptive_float32(name):
    x = np.random.default_rng(5).standard_normal((2, 3, 13, 11)).astype(np.float32)
    out = (7, 4)
    if name == "adaptive_avg_pool2d":
        def backward(dy):
            return [engine.adaptive_avg_pool2d_backward(dy, x.shape, out)]
    else:
        def backward(dy):
            return [engine.adaptive_max_pool2d_backward(dy, x, out)]
    check(lambda a: getattr(engine, name)(a, out), backward,
          lambda a: getattr(F, name)(a, out), [x], 1, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------ shape ops

@pytest.mark.parametrize("dims", [(0, 2, 3, 1), (0, 3, 1, 2), (0, 1, 3, 2), (0, 2, 1)])
def test_permute(dims):
    shape = (2, 3, 4, 5)[:len(dims)]
    x = np.random.default_rng(len(dims)).standard_normal(shape)
    check(lambda a: engine.permute(a, dims), lambda dy: [engine.permute_backward(dy, dims)],
          lambda a: a.permute(*dims), [x], 1)


@pytest.mark.parametrize("channels, chunks", [(6, 2), (5, 2), (5, 3), (5, 4), (7, 7), (4, 1)])
def test_split_as_torch_chunk(channels, chunks):
    # uneven: torch.chunk(5, 4) gives 2, 2, 1 (three pieces, not four)
    x = np.random.default_rng(channels).standard_normal((2, channels, 3, 2))
    pieces = torch.chunk(_t(x), chunks, dim=1)
    for index in range(len(pieces)):
        check(lambda a: engine.split(a, index, chunks=chunks),
              lambda dy: [engine.split_backward(dy, x.shape, index, chunks=chunks)],
              lambda a: torch.chunk(a, chunks, dim=1)[index], [x], index)
    with pytest.raises(ArchstatError, match=f"give {len(pieces)} piece"):
        engine.split(x, len(pieces), chunks=chunks)


@pytest.mark.parametrize("sizes, dim", [((3, 1, 3), 1), ((2, 5), 1), ((1, 3), 2), ((2, 2, 1), 3)])
def test_split_as_torch_split(sizes, dim):
    shape = [2, 3, 4, 5]
    shape[dim] = sum(sizes)
    x = np.random.default_rng(sum(sizes)).standard_normal(shape)
    for index in range(len(sizes)):
        check(lambda a: engine.split(a, index, sizes=sizes, dim=dim),
              lambda dy: [engine.split_backward(dy, x.shape, index, sizes=sizes, dim=dim)],
              lambda a: torch.split(a, list(sizes), dim=dim)[index], [x], index)


@pytest.mark.parametrize("channels, groups", [(6, 2), (6, 3), (8, 4), (4, 1), (5, 5), (12, 3)])
def test_channel_shuffle(channels, groups):
    x = np.random.default_rng(channels).standard_normal((2, channels, 3, 4))
    check(lambda a: engine.channel_shuffle(a, groups),
          lambda dy: [engine.channel_shuffle_backward(dy, groups)],
          torch.nn.ChannelShuffle(groups), [x], groups)


def _torchvision_stochastic_depth(x, p, mode, training, noise_draw):
    """torchvision.ops.stochastic_depth (torchvision/ops/stochastic_depth.py), with the
    bernoulli_(1 - p) draw replaced by a given 0/1 tensor (to share archstat's draw)."""
    if not training or p == 0.0:
        return x
    survival_rate = 1.0 - p
    size = [x.shape[0]] + [1] * (x.ndim - 1) if mode == "row" else [1] * x.ndim
    noise = torch.empty(size, dtype=x.dtype)
    noise.copy_(noise_draw.reshape(size))
    if survival_rate > 0.0:
        noise.div_(survival_rate)
    return x * noise


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", ["row", "batch"])
@pytest.mark.parametrize("p", [0.0, 0.25, 0.6, 1.0])
def test_stochastic_depth(p, mode, dtype):
    x = np.random.default_rng(8).standard_normal((8, 3, 2, 2)).astype(dtype)
    # inference: torchvision returns the input itself, and so does archstat
    y, noise = engine.stochastic_depth(x, p, mode, training=False)
    assert y is x and noise is None
    # training with archstat's draw (the kept rows) fed to torchvision's arithmetic
    _, noise = engine.stochastic_depth(x, p, mode, training=True, rng=11)
    draw = torch.tensor(np.asarray(noise != 0 if noise is not None else np.ones(1), dtype=dtype))
    tol = 1e-6 if dtype == np.float32 else 1e-15
    check(lambda a: engine.stochastic_depth(a, p, mode, True, rng=11)[0],
          lambda dy: [engine.stochastic_depth_backward(dy, noise)],
          lambda a: _torchvision_stochastic_depth(a, p, mode, True, draw), [x], 2, rtol=tol, atol=tol)


# ------------------------------------------------------------------------- linear

@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(3, 5), (2, 4, 5), (2, 3, 4, 5), (2, 6, 6, 5)])
def test_linear_on_the_last_axis(shape, bias):
    rng = np.random.default_rng(len(shape))
    x, w = rng.standard_normal(shape), rng.standard_normal((7, shape[-1]))
    b = rng.standard_normal(7) if bias else None
    check(engine.linear, lambda dy: engine.linear_backward(dy, x, w)[:3 if bias else 2],
          F.linear, [x, w, b], len(shape), rtol=1e-11, atol=1e-12)


def test_linear_float32_channels_last():
    x = np.random.default_rng(4).standard_normal((2, 3, 4, 6)).astype(np.float32)
    w = np.random.default_rng(5).standard_normal((5, 6)).astype(np.float32)
    b = np.random.default_rng(6).standard_normal(5).astype(np.float32)
    check(engine.linear, lambda dy: engine.linear_backward(dy, x, w), F.linear, [x, w, b], 0,
          rtol=1e-5, atol=1e-5)
