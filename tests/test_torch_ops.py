"""Cross-check the non-window kernels, the loss and the executor against PyTorch, forward
and backward, on seeded random configurations (one helper checks every op, as tinygrad's
test_ops does)."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import archstat.engine as engine  # noqa: E402
from archstat.engine.executor import Executor  # noqa: E402
from torch_check import check, to_torch as _t  # noqa: E402
from archstat.layers import get  # noqa: E402
from archstat.layers.registry import LayerType  # noqa: E402

SEEDS = range(3)


def _image(rng, min_n=1):
    shape = (int(rng.integers(min_n, 4)), int(rng.integers(1, 7)), int(rng.integers(1, 5)),
             int(rng.integers(1, 5)))
    return rng.standard_normal(shape)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bias", [True, False])
def test_linear(seed, bias):
    rng = np.random.default_rng([seed, 1])
    n, fin, fout = (int(v) for v in rng.integers(1, 8, size=3))
    x, w = rng.standard_normal((n, fin)), rng.standard_normal((fout, fin))
    b = rng.standard_normal(fout) if bias else None
    check(engine.linear, lambda dy, y: engine.linear_backward(dy, x, w)[:3 if bias else 2],
          F.linear, [x, w, b], seed)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
def test_activations(seed, name):
    x = _image(np.random.default_rng([seed, 2])) * 3
    check(getattr(engine, name), lambda dy, y: [getattr(engine, name + "_backward")(dy, y)],
          getattr(torch, name), [x], seed)


@pytest.mark.parametrize("seed", range(6))
def test_lrn(seed):
    rng = np.random.default_rng([seed, 3])
    x = _image(rng)
    size = int(rng.integers(1, 8))
    alpha, beta, k = float(rng.uniform(1e-4, 1)), float(rng.uniform(0.3, 1.2)), float(rng.uniform(0.5, 2))
    check(lambda a: engine.lrn(a, size, alpha, beta, k),
          lambda dy, y: [engine.lrn_backward(dy, x, size, alpha, beta, k)],
          lambda a: F.local_response_norm(a, size, alpha, beta, k), [x], seed)


def test_lrn_alexnet_settings():
    # AlexNet (Krizhevsky et al. 2012, Sec. 3.3): n = 5, alpha = 1e-4, beta = 0.75, k = 2
    x = np.random.default_rng(4).standard_normal((2, 16, 5, 5)) * 10
    check(lambda a: engine.lrn(a, 5, 1e-4, 0.75, 2.0),
          lambda dy, y: [engine.lrn_backward(dy, x, 5, 1e-4, 0.75, 2.0)],
          lambda a: F.local_response_norm(a, 5, 1e-4, 0.75, 2.0), [x], 0)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm(seed, training, affine):
    rng = np.random.default_rng([seed, 5])
    x = _image(rng, min_n=2)
    c = x.shape[1]
    w, b = (rng.standard_normal(c), rng.standard_normal(c)) if affine else (None, None)
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    trm, trv = _t(rm.copy()), _t(rv.copy())
    momentum, eps = float(rng.uniform(0.05, 0.5)), float(rng.choice([1e-5, 1e-3]))
    check(lambda a, ww, bb: engine.batch_norm2d(a, ww, bb, rm, rv, training, momentum, eps),
          lambda dy, y: engine.batch_norm2d_backward(dy, x, w, rm, rv, training, eps),
          lambda a, ww, bb: F.batch_norm(a, trm, trv, ww, bb, training, momentum, eps),
          [x, w, b], seed, rtol=1e-9, atol=1e-10)
    # the running statistics moved as torch's did (unbiased variance), or not at all
    np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-12)


def test_batch_norm_without_running_stats():
    # track_running_stats=False: batch statistics at inference too
    x = np.random.default_rng(6).standard_normal((3, 4, 2, 2))
    y = engine.batch_norm2d(x, None, None, None, None, training=False)
    np.testing.assert_allclose(y, F.batch_norm(_t(x), None, None, training=True).numpy(), rtol=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_softmax(seed):
    rng = np.random.default_rng([seed, 7])
    x = _image(rng) * 5
    dim = int(rng.integers(1, 4))
    check(lambda a: engine.softmax(a, dim), lambda dy, y: [engine.softmax_backward(dy, y, dim)],
          lambda a: torch.softmax(a, dim), [x], seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_cross_entropy(seed):
    rng = np.random.default_rng([seed, 8])
    n, c = int(rng.integers(1, 9)), int(rng.integers(2, 11))
    logits = rng.standard_normal((n, c)) * 4
    labels = rng.integers(0, c, size=n)
    loss, dlogits = engine.softmax_cross_entropy(logits, labels)
    t = _t(logits, grad=True)
    tl = F.cross_entropy(t, torch.tensor(labels))
    tl.backward()
    assert loss == pytest.approx(tl.item(), rel=1e-12)
    np.testing.assert_allclose(dlogits, t.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("seed", SEEDS)
def test_concat_add_flatten(seed):
    rng = np.random.default_rng([seed, 9])
    a = _image(rng)
    b = rng.standard_normal(a.shape[:1] + (3,) + a.shape[2:])
    c = rng.standard_normal(a.shape)
    check(lambda p, q: engine.concat([p, q]),
          lambda dy, y: engine.concat_backward(dy, [a.shape[1], 3]),
          lambda p, q: torch.cat([p, q], 1), [a, b], seed)
    check(lambda p, q: engine.add([p, q]), lambda dy, y: engine.add_backward(dy, 2),
          lambda p, q: p + q, [a, c], seed)
    start, end = int(rng.integers(1, 3)), int(rng.integers(2, 4))
    check(lambda p: engine.flatten(p, start, end),
          lambda dy, y: [engine.flatten_backward(dy, a.shape)],
          lambda p: torch.flatten(p, start, end), [a], seed)


def test_dropout_scaling_matches_torch():
    # masks come from different generators, so compare the rule: kept elements are x / (1 - p)
    x = np.random.default_rng(10).standard_normal((40, 50))
    p = 0.3
    y, mask = engine.dropout(x, p, True, 0)
    torch.manual_seed(0)
    ty = F.dropout(_t(x), p, training=True)
    torch_kept = ty.numpy() != 0
    np.testing.assert_allclose(ty.numpy()[torch_kept], x[torch_kept] / (1 - p), rtol=1e-12)
    np.testing.assert_allclose(y[mask], x[mask] / (1 - p), rtol=1e-12)
    # both keep about 1 - p: 2000 draws each, standard deviation 0.01
    assert abs(mask.mean() - 0.7) < 0.05 and abs(torch_kept.mean() - 0.7) < 0.05


# --------------------------------------------------------------- whole models

class TorchBranchy(torch.nn.Module):
    """test_executor.branchy() written in PyTorch."""

    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm2d(4).double()
        self.fc = torch.nn.Linear(36 * 2, 5).double()

    def forward(self, x):
        r = torch.relu(self.bn(x))
        t = torch.tanh(F.local_response_norm(x, 3, 0.5))
        s = torch.sigmoid(x)
        y = torch.cat([r, t], 1) + torch.cat([s, r], 1)
        return torch.softmax(self.fc(torch.flatten(y, 1)), 1)


def _load(module, ex):
    with torch.no_grad():
        for name, sub in module.named_children():
            for field, arr in {**ex.params.get(name, {}), **ex.buffers.get(name, {})}.items():
                getattr(sub, field).copy_(torch.tensor(arr))


def _compare_model(ex, module, x, train, rtol=1e-9):
    _load(module, ex)
    module.train(train)
    tx = _t(x, grad=True)
    ty = module(tx)
    y = ex.forward(x, train=train, keep_cache=True)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=rtol, atol=1e-12)
    dy = np.random.default_rng(11).standard_normal(y.shape)
    ty.backward(_t(dy))
    grads = ex.backward(dy)
    np.testing.assert_allclose(ex.input_grad, tx.grad.numpy(), rtol=rtol, atol=1e-12)
    for name, sub in module.named_children():
        for field, g in grads.get(name, {}).items():
            np.testing.assert_allclose(g, getattr(sub, field).grad.numpy(), rtol=rtol, atol=1e-12,
                                       err_msg=f"{name}.{field}")
        for field, buf in ex.buffers.get(name, {}).items():
            np.testing.assert_allclose(buf, getattr(sub, field).numpy(), rtol=1e-12, err_msg=field)


@pytest.mark.parametrize("train", [True, False])
def test_executor_matches_torch_on_a_branching_graph(train):
    from test_executor import branchy
    ex = Executor(branchy(p=0.0), seed=0, dtype="float64")
    x = np.random.default_rng(12).standard_normal((3, 4, 3, 3))
    _compare_model(ex, TorchBranchy(), x, train)


@pytest.mark.skipif(any(type(get(t)).forward is LayerType.forward for t in ("conv2d", "avg_pool2d")),
                    reason="the conv/pool kernels have not landed yet")
def test_executor_matches_torch_on_lenet5():
    from test_executor import LENET5
    nn = torch.nn
    names = ["conv1", "tanh1", "avgpool1", "conv2", "tanh2", "avgpool2", "flatten1", "fc1", "tanh3",
             "fc2", "tanh4", "fc3"]
    layers = [nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
              nn.AvgPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84),
              nn.Tanh(), nn.Linear(84, 10)]
    module = nn.Sequential(OrderedDict(zip(names, layers))).double()
    ex = Executor(LENET5, seed=1, dtype="float64")
    assert list(ex.model.order[1:]) == names
    x = np.random.default_rng(13).standard_normal((2, 1, 32, 32))
    _compare_model(ex, module, x, train=True)
