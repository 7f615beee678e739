"""Per-side padding ((top, bottom), (left, right)), as ONNX files write it (TensorFlow's 'SAME'
with a stride, converted models): conv2d and the pools pad each side as told. Each kernel equals
the same kernel on an input padded explicitly beforehand (zeros for conv and average pooling,
-inf for max pooling), forward and backward; shapes, counts and receptive fields follow."""
from __future__ import annotations

import numpy as np
import pytest

import archstat
from archstat import engine
from archstat.errors import ArchstatError
from naive_ops import numerical_gradient, rel_error

PADS = [((0, 1), (2, 1)), ((1, 0), (0, 1)), ((1, 0), (1, 1))]


def padded(x, pads, value=0.0):
    (t, b), (l, r) = pads
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


@pytest.mark.parametrize("pads", PADS)
@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_pads_each_side(pads, stride):
    rng = np.random.default_rng([stride, 3])
    x, w, b = rng.standard_normal((2, 3, 7, 8)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    y = engine.conv2d(x, w, b, stride=stride, padding=pads)
    assert np.allclose(y, engine.conv2d(padded(x, pads), w, b, stride=stride))
    dy = rng.standard_normal(y.shape)
    dx, dw, db = engine.conv2d_backward(dy, x, w, stride=stride, padding=pads)
    dxp, dwp, dbp = engine.conv2d_backward(dy, padded(x, pads), w, stride=stride)
    (t, _), (l, _) = pads
    assert np.allclose(dx, dxp[:, :, t:t + 7, l:l + 8]) and np.allclose(dw, dwp) and np.allclose(db, dbp)
    num = numerical_gradient(lambda: engine.conv2d(x, w, b, stride=stride, padding=pads), x, dy)
    assert rel_error(num, dx) < 1e-7


@pytest.mark.parametrize("pads", PADS[1:])
def test_pools_pad_each_side(pads):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 7, 8))
    kw = dict(kernel_size=3, stride=2)
    y = engine.max_pool2d(x, padding=pads, **kw)
    assert np.array_equal(y, engine.max_pool2d(padded(x, pads, -np.inf), **kw))
    dy = rng.standard_normal(y.shape)
    dx = engine.max_pool2d_backward(dy, x, padding=pads, **kw)
    num = numerical_gradient(lambda: engine.max_pool2d(x, padding=pads, **kw), x, dy)
    assert rel_error(num, dx) < 1e-7
    for include in (True, False):
        a = engine.avg_pool2d(x, padding=pads, count_include_pad=include, **kw)
        ones = padded(np.ones_like(x), pads)
        ref = engine.avg_pool2d(padded(x, pads), **kw)
        if not include:   # divide by the real pixels of each window only
            ref = ref / engine.avg_pool2d(ones, **kw)
        assert np.allclose(a, ref)
        da = engine.avg_pool2d_backward(dy, x.shape, padding=pads, count_include_pad=include, **kw)
        num = numerical_gradient(lambda: engine.avg_pool2d(x, padding=pads, count_include_pad=include, **kw),
                                 x, dy)
        assert rel_error(num, da) < 1e-7


def test_specs_take_padding_per_side():
    # 7x8 input; conv 3x3/2 padded (0, 1) rows and (2, 1) columns: 8x11 padded -> 3x5, its first
    # window centred on row 1, column -1 (Distill's offset: (k - 1)/2 - top or left pad)
    spec = {"input": [3, 7, 8], "layers": [
        {"name": "conv", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2,
         "padding": [[0, 1], [2, 1]]},
        {"name": "pool", "type": "max_pool2d", "kernel_size": 3, "stride": 2, "padding": [[1, 0], [0, 1]]}]}
    rows = {r["name"]: r for r in archstat.analyze(spec).rows()}
    assert rows["conv"]["output_shape"] == (1, 4, 3, 5) and rows["conv"]["macs"] == 4 * 3 * 5 * 27
    assert rows["conv"]["rf_offset"] == (1.0, -1.0)
    assert rows["pool"]["output_shape"] == (1, 4, 1, 2)
    # equal sides read as the usual pair; a pool still pads at most half its kernel
    assert archstat.load(dict(spec, layers=[dict(spec["layers"][0], padding=[[1, 1], [2, 2]])])).layer(
        "conv").attrs["padding"] == (1, 2)
    bad = dict(spec, layers=[spec["layers"][0], dict(spec["layers"][1], padding=[[2, 0], [0, 0]])])
    with pytest.raises(ArchstatError, match="pool padding 2 is more than half the kernel size 3"):
        archstat.load(bad)
