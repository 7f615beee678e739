"""The conv engine (im2col + GEMM, col2im) against naive loops, finite differences, the
lecture's worked numbers and its duality, and the registry's shape rules."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from archstat import engine
from archstat.layers import im2col as win
from archstat.errors import ArchstatError
from archstat.layers import RunContext, get

from naive_window import (conv2d_backward_naive, conv2d_naive, locally_connected2d_backward_naive,
                          locally_connected2d_naive, numeric_grad, rel_error,
                          true_convolution_naive)

# (N, C_in, H, W, C_out, kernel, stride, padding, dilation, groups, padding_mode)
CONV_CASES = [
    (2, 3, 7, 7, 4, 3, 1, 0, 1, 1, "zeros"),
    (2, 3, 8, 9, 5, 3, 1, 1, 1, 1, "zeros"),
    (1, 4, 9, 8, 6, 3, 2, 1, 1, 2, "zeros"),
    (2, 4, 10, 7, 4, 3, 1, 2, 2, 1, "zeros"),
    (1, 3, 9, 11, 2, (2, 4), (2, 1), (1, 2), (1, 2), 1, "zeros"),
    (2, 6, 8, 8, 6, 3, 1, 1, 1, 6, "zeros"),         # depthwise
    (1, 6, 7, 9, 12, 3, 2, 1, 1, 6, "zeros"),        # depthwise, multiplier 2
    (2, 4, 6, 5, 3, 1, 1, 0, 1, 1, "zeros"),         # 1x1: im2col skipped
    (2, 4, 6, 5, 4, 1, 2, 0, 1, 2, "zeros"),         # 1x1 strided, grouped
    (1, 3, 9, 9, 4, 5, 3, 2, 1, 1, "zeros"),
    (2, 3, 7, 8, 4, 3, 1, "same", 1, 1, "zeros"),
    (1, 2, 7, 8, 3, (2, 3), 1, "same", (2, 1), 1, "zeros"),  # even kernel: extra pad bottom/right
    (1, 2, 7, 8, 3, 3, 2, "valid", 1, 1, "zeros"),
    (2, 3, 7, 7, 4, 3, 1, 1, 1, 1, "reflect"),
    (1, 2, 8, 6, 3, (3, 2), 2, (2, 1), 1, 1, "reflect"),
    (2, 3, 7, 7, 4, 3, 1, 1, 1, 1, "replicate"),
    (1, 4, 6, 9, 2, 3, (1, 2), (3, 2), (1, 2), 2, "replicate"),
    (2, 3, 7, 7, 4, 3, 1, 1, 1, 1, "circular"),
    (1, 2, 5, 6, 3, 3, 1, (5, 2), 1, 1, "circular"),  # pad == size: wraps once
    (1, 2, 6, 6, 2, 3, 1, "same", 1, 1, "reflect"),
]


def _case(case, dtype=np.float64, seed=0):
    n, c, h, w, co, k, s, p, d, g, mode = case
    rng = np.random.default_rng(seed)
    k2 = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((co, c // g) + k2).astype(dtype)
    b = rng.standard_normal(co).astype(dtype)
    return x, wt, b, dict(stride=s, padding=p, dilation=d, groups=g, padding_mode=mode)


@pytest.fixture(params=["one block", "row bands", "image blocks"])
def blocking(request, monkeypatch):
    """Run the fast kernels with the default blocks and with tiny ones, so that the bands
    of rows (one image cut in pieces) and the several-images blocks are both exercised."""
    if request.param == "row bands":
        monkeypatch.setattr(win, "BLOCK_BYTES", 1)
        monkeypatch.setattr(win, "MIN_BLOCK_COLS", 1)
    elif request.param == "image blocks":
        monkeypatch.setattr(win, "BLOCK_BYTES", 1)
        monkeypatch.setattr(win, "MIN_BLOCK_COLS", 130)  # 1-2 small images per block
    return request.param


@pytest.mark.parametrize("case", CONV_CASES, ids=[f"c{i}" for i in range(len(CONV_CASES))])
def test_conv2d_matches_naive_forward_and_backward(case, blocking):
    x, w, b, kw = _case(case)
    y = engine.conv2d(x, w, b, **kw)
    np.testing.assert_allclose(y, conv2d_naive(x, w, b, **kw), rtol=1e-10, atol=1e-10)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    dx, dw, db = engine.conv2d_backward(dy, x, w, **kw)
    ndx, ndw, ndb = conv2d_backward_naive(dy, x, w, **kw)
    np.testing.assert_allclose(dx, ndx, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, ndw, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, ndb, rtol=1e-10, atol=1e-10)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape


@pytest.mark.parametrize("fold", [0, 10**9], ids=["bias after GEMM", "bias in GEMM"])
@pytest.mark.parametrize("case", [CONV_CASES[i] for i in (1, 3, 4, 13)])
def test_bias_folded_into_the_gemm_or_added_after_agree(case, fold, monkeypatch, blocking):
    from archstat.layers import conv
    monkeypatch.setattr(conv, "FOLD_BIAS_MAX_K", fold)
    x, w, b, kw = _case(case)
    np.testing.assert_allclose(engine.conv2d(x, w, b, **kw), conv2d_naive(x, w, b, **kw),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", [CONV_CASES[i] for i in (1, 2, 4, 6, 7, 14, 16, 18)],
                         ids=lambda c: f"{c[-1]}-k{c[5]}-s{c[6]}-g{c[9]}")
def test_conv2d_gradients_by_finite_differences(case):
    x, w, b, kw = _case(case, seed=3)
    x, w, b = x[:1, :, :6, :6].copy(), w.copy(), b.copy()
    if kw["padding_mode"] == "circular" and kw["padding"] == (5, 2):
        kw = dict(kw, padding=(3, 2))
    dy = np.random.default_rng(4).standard_normal(engine.conv2d(x, w, b, **kw).shape)
    dx, dw, db = engine.conv2d_backward(dy, x, w, **kw)
    assert rel_error(dx, numeric_grad(lambda v: engine.conv2d(v, w, b, **kw), x, dy)) < 1e-7
    assert rel_error(dw, numeric_grad(lambda v: engine.conv2d(x, v, b, **kw), w, dy)) < 1e-7
    assert rel_error(db, numeric_grad(lambda v: engine.conv2d(x, w, v, **kw), b, dy)) < 1e-7


@pytest.fixture(params=["flat planes", "channels last"])
def depthwise_layout(request, monkeypatch):
    """Run the direct depthwise kernels on flat phase planes, or channels last wherever the
    stride is 1 (the form small planes take); returns the layout's name."""
    from archstat.layers import conv_depthwise
    monkeypatch.setattr(conv_depthwise, "CHANNELS_LAST_MAX_PLANE", 10**9 if request.param == "channels last" else 0)
    return request.param


# depthwise backward (row by row on phase planes): strides that split the input into
# phases, dilation across phases, multipliers, every padding mode, odd sizes
DEPTHWISE_CASES = [
    (2, 5, 9, 8, 5, 3, 1, 1, 1, 5, "zeros"),
    (1, 4, 11, 10, 8, 3, 2, 1, 1, 4, "zeros"),             # multiplier 2, stride 2
    (2, 3, 10, 9, 3, (3, 2), (3, 2), (2, 0), (2, 3), 3, "zeros"),
    (1, 3, 12, 7, 6, 5, (2, 1), 2, (1, 2), 3, "reflect"),
    (1, 2, 8, 9, 2, 3, 2, (1, 2), 2, 2, "replicate"),
    (2, 2, 6, 7, 4, 3, 3, 1, 1, 2, "circular"),
    (1, 3, 5, 5, 3, 1, 2, 0, 1, 3, "zeros"),               # 1x1 depthwise, strided
    # stride 1 (the forward's channels-last form on small planes): every padding mode,
    # multiplier and dilation, a non-square kernel, no padding
    (2, 4, 7, 6, 8, 3, 1, 2, 2, 4, "reflect"),
    (1, 3, 6, 5, 3, (3, 5), 1, (1, 2), 1, 3, "replicate"),
    (2, 2, 5, 5, 2, 3, 1, 1, 1, 2, "circular"),
    (1, 5, 6, 7, 15, 5, 1, 0, 1, 5, "zeros"),             # multiplier 3, 5x5 valid
]


@pytest.mark.parametrize("block_bytes", [1, 10**9], ids=["channel per block", "one block"])
@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=[f"dw{i}" for i in range(len(DEPTHWISE_CASES))])
def test_depthwise_backward_matches_naive(case, block_bytes, depthwise_layout, monkeypatch):
    from archstat.layers import conv_depthwise
    monkeypatch.setattr(conv_depthwise, "DEPTHWISE_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(conv_depthwise, "PLANE_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(conv_depthwise, "CHANNELS_LAST_BLOCK_BYTES", block_bytes)
    x, w, b, kw = _case(case, seed=5)
    assert conv_depthwise.is_depthwise(w, kw["groups"])
    dy = np.random.default_rng(6).standard_normal(engine.conv2d(x, w, b, **kw).shape)
    want = conv2d_backward_naive(dy, x, w, **kw)
    for got, exp in zip(engine.conv2d_backward(dy, x, w, **kw), want):
        np.testing.assert_allclose(got, exp, rtol=1e-10, atol=1e-10)
    # the row-by-row form (taken for weights that are not all finite), on the same case
    for got, exp in zip(conv_depthwise._backward_by_rows(dy, x, w, win.geometry(
            x.shape[2:], w.shape[2:], kw["stride"], kw["padding"], kw["dilation"]),
            kw["padding_mode"]), want):
        np.testing.assert_allclose(got, exp, rtol=1e-10, atol=1e-10)


def test_depthwise_backward_with_an_infinite_weight_matches_naive(depthwise_layout):
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 5))
    w = np.ones((3, 1, 3, 3))
    w[1, 0, 0, 2] = np.inf
    kw = dict(stride=1, padding=1, groups=3)
    dy = np.ones((2, 3, 6, 5))
    with np.errstate(invalid="ignore"):
        got = engine.conv2d_backward(dy, x, w, **kw)
        want = conv2d_backward_naive(dy, x, w, **kw)
    for g, e in zip(got, want):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(e))
        np.testing.assert_allclose(g[~np.isnan(e)], e[~np.isnan(e)], rtol=1e-12)


@pytest.mark.parametrize("block_bytes", [1, 10**9], ids=["channel per block", "one block"])
@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=[f"dw{i}" for i in range(len(DEPTHWISE_CASES))])
def test_depthwise_forward_matches_naive(case, block_bytes, depthwise_layout, monkeypatch):
    from archstat.layers import conv_depthwise
    monkeypatch.setattr(conv_depthwise, "PLANE_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(conv_depthwise, "CHANNELS_LAST_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(conv_depthwise, "DIRECT_MIN_PLANE", 0)   # the direct form, even for one image
    x, w, b, kw = _case(case, seed=7)
    geom = win.geometry(x.shape[2:], w.shape[2:], kw["stride"], kw["padding"], kw["dilation"])
    assert conv_depthwise.channels_last(geom) == (depthwise_layout == "channels last" and geom.stride == (1, 1))
    np.testing.assert_allclose(engine.conv2d(x, w, b, **kw), conv2d_naive(x, w, b, **kw),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(engine.conv2d(x, w, None, **kw), conv2d_naive(x, w, None, **kw),
                               rtol=1e-12, atol=1e-12)


def test_depthwise_forward_by_hand():
    """One channel, x = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], a 3x3 kernel of ones but
    w[1, 1] = 2, padding 1, bias 10. Output (i, j) = the sum of the 3x3 neighbourhood (zeros
    outside) + x[i, j] (the centre counted twice) + 10: (0, 0): 1+2+4+5 + 1 + 10 = 23;
    (0, 1): 1+2+3+4+5+6 + 2 + 10 = 33; (0, 2): 2+3+5+6 + 3 + 10 = 29; (1, 0): 1+2+4+5+7+8 + 4
    + 10 = 41; (1, 1): 45 + 5 + 10 = 60; (1, 2): 2+3+5+6+8+9 + 6 + 10 = 49; (2, 0): 4+5+7+8 + 7
    + 10 = 41; (2, 1): 4+5+6+7+8+9 + 8 + 10 = 57; (2, 2): 5+6+8+9 + 9 + 10 = 47.
    Stride 2 keeps (0, 0), (0, 2), (2, 0), (2, 2): 23, 29, 41, 47. A second input channel
    with a multiplier of 2 (weights 1 and -1 at the centre only) gives +-x itself."""
    x = np.stack([np.arange(1.0, 10.0).reshape(3, 3), np.full((3, 3), 0.5)])[None]
    w = np.zeros((4, 1, 3, 3))
    w[:2] = 1
    w[:2, 0, 1, 1] = 2
    w[2, 0, 1, 1], w[3, 0, 1, 1] = 1, -1
    b = np.array([10.0, 0.0, 0.0, 0.0])
    x = np.concatenate([x, x])    # two images: the direct forward (one would take im2col)
    y = engine.conv2d(x, w, b, padding=1, groups=2)
    np.testing.assert_array_equal(y[0, 0], [[23, 33, 29], [41, 60, 49], [41, 57, 47]])
    np.testing.assert_array_equal(y[0, 2], np.full((3, 3), 0.5))
    np.testing.assert_array_equal(y[0, 3], np.full((3, 3), -0.5))
    np.testing.assert_array_equal(y[1], y[0])
    y2 = engine.conv2d(x, w, b, stride=2, padding=1, groups=2)
    np.testing.assert_array_equal(y2[0, 0], [[23, 29], [41, 47]])


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_forward_keeps_an_inf_to_the_outputs_that_read_it(stride, depthwise_layout):
    # the forward computes junk columns past each row's end on its flat plane grid: an inf
    # at the row's edge must reach only the outputs whose window holds it
    x = np.ones((2, 2, 6, 5))    # two images: the direct forward
    x[0, 0, 0, 4] = np.inf
    x[0, 1, 3, 0] = -np.inf
    w = np.ones((2, 1, 3, 3))
    kw = dict(stride=stride, padding=1, groups=2)
    got, want = engine.conv2d(x, w, **kw), conv2d_naive(x, w, **kw)
    np.testing.assert_array_equal(got, want)
    # stride 1: rows 0-1 x columns 3-4 of channel 0, rows 2-4 x columns 0-1 of channel 1;
    # stride 2: output (0, 2) of channel 0, outputs (1, 0) and (2, 0) of channel 1
    assert np.isfinite(got[1]).all()
    assert np.isfinite(got[0]).sum() == got[0].size - (4 + 6 if stride == 1 else 1 + 2)


@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_backward_keeps_an_inf_where_only_some_taps_read_it(stride, depthwise_layout):
    # x[0, 0, 0, 4] is read by the taps b = 2 (stride 1) / b = 0, 2 (stride 2) only: the other
    # taps' weight gradients must stay finite, as in the naive loops (and torch)
    x = np.ones((1, 2, 6, 5))
    x[0, 0, 0, 4] = np.inf
    w = np.ones((2, 1, 3, 3))
    kw = dict(stride=stride, groups=2)
    dy = np.ones(engine.conv2d(x, w, **kw).shape)
    got = engine.conv2d_backward(dy, x, w, **kw)
    want = conv2d_backward_naive(dy, x, w, **kw)
    for g, e in zip(got, want):
        np.testing.assert_array_equal(np.isfinite(g), np.isfinite(e))
        np.testing.assert_allclose(g[np.isfinite(e)], e[np.isfinite(e)])
    assert np.isfinite(got[1][0, 0, :, :2]).all() and np.isinf(got[1][0, 0, 0, 2])


def test_phase_grid_merge_is_the_adjoint_of_split():
    from archstat.layers.phases import PhaseGrid
    geom = win.geometry((9, 8), (3, 2), (2, 3), 1, (2, 1))
    grid = PhaseGrid.of(geom)
    rng = np.random.default_rng(0)
    xp = rng.standard_normal((2, 3) + geom.padded_hw)
    planes = grid.split(xp)
    assert planes.shape == (2, 3, 6, 6, 4)   # 2x3 phases of the 11x10 padded input, each 6x4
    np.testing.assert_array_equal(grid.merge(planes, geom.padded_hw), xp)
    g = rng.standard_normal(planes.shape)
    np.testing.assert_allclose(np.vdot(planes, g), np.vdot(xp, grid.merge(g, geom.padded_hw)))


def test_float32_stays_float32_and_agrees_with_float64(blocking):
    x, w, b, kw = _case(CONV_CASES[3])
    y64 = engine.conv2d(x, w, b, **kw)
    y32 = engine.conv2d(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), **kw)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4)
    # float64 weights do not promote a float32 input (the NumPy 2 promotion trap)
    assert engine.conv2d(x.astype(np.float32), w, b, **kw).dtype == np.float32
    grads = engine.conv2d_backward(y32, x.astype(np.float32), w, **kw)
    assert [g.dtype for g in grads] == [np.float32] * 3


def test_lecture_worked_example_is_65_plus_bias():
    # Lecture: X(0:2, 0:2) = [[200,150,150],[100,50,100],[25,25,10]], K' = [[1,0,-1],[2,0,-2],
    # [1,0,-1]] -> 200 - 150 + 2*100 - 2*100 + 25 - 10 = 65, "+ bias".
    x = np.array([[200, 150, 150], [100, 50, 100], [25, 25, 10]], float)[None, None]
    k = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], float)[None, None]
    assert engine.conv2d(x, k)[0, 0, 0, 0] == 65
    assert engine.conv2d(x, k, np.array([0.5]))[0, 0, 0, 0] == 65.5


def test_true_convolution_is_cross_correlation_with_the_kernel_rotated_180_degrees():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 8))
    k = rng.standard_normal((3, 2))
    true_conv = true_convolution_naive(x, k)              # y(r,c) = sum x(r-a, c-b) k(a,b)
    flipped = engine.conv2d(x[None, None], np.rot90(k, 2)[None, None].copy())[0, 0]
    np.testing.assert_allclose(flipped, true_conv, rtol=1e-12)
    # and the unflipped kernel gives something else (the kernel is not symmetric)
    assert not np.allclose(engine.conv2d(x[None, None], k[None, None])[0, 0], true_conv)


def test_backward_duality_dx_is_convolution_of_dy_with_the_kernel():
    # Lecture: dL/dX = convolution of the upstream gradient with the kernel, implemented as
    # cross-correlation of the zero-padded gradient with the kernel rotated 180 degrees;
    # dL/dK = cross-correlation of the upstream gradient with the input.
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 1, 7, 6))
    k = rng.standard_normal((1, 1, 3, 2))
    dy = rng.standard_normal(engine.conv2d(x, k).shape)
    dx, dk, _ = engine.conv2d_backward(dy, x, k)
    np.testing.assert_allclose(dx, engine.conv2d(dy, np.rot90(k, 2, axes=(2, 3)).copy(),
                                                 padding=(2, 1)), rtol=1e-12)
    np.testing.assert_allclose(dk, engine.conv2d(x, dy), rtol=1e-12)


def _shift(x, dr, dc):
    """x shifted by (dr, dc) along (H, W), filled with zeros."""
    out = np.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(dr, 0):h + min(dr, 0), max(dc, 0):w + min(dc, 0)] = \
        x[..., max(-dr, 0):h - max(dr, 0), max(-dc, 0):w - max(dc, 0)]
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), dr=st.integers(-2, 2), dc=st.integers(-2, 2),
       k=st.sampled_from([1, 3, 5]))
def test_conv_is_translation_equivariant(seed, dr, dc, k):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 2, 14, 13))
    w = rng.standard_normal((3, 2, k, k))
    b = rng.standard_normal(3)
    y = engine.conv2d(x, w, b, padding=k // 2)
    ys = engine.conv2d(_shift(x, dr, dc), w, b, padding=k // 2)
    m = 2 + k   # away from the borders, where the zero fill and the padding enter
    np.testing.assert_allclose(ys[..., m:-m, m:-m], _shift(y, dr, dc)[..., m:-m, m:-m],
                               rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------- the window primitive

@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_pad_backward_is_the_adjoint_of_pad(mode):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 5, 6))
    pads = ((2, 1), (3, 0)) if mode != "reflect" else ((2, 1), (3, 4))
    xp = win.pad(x, pads, mode)
    g = rng.standard_normal(xp.shape)
    # <pad(x), g> == <x, pad_backward(g)>
    assert np.isclose(np.sum(xp * g), np.sum(x * win.pad_backward(g, pads, mode)))
    from naive_window import pad_naive
    np.testing.assert_array_equal(xp, pad_naive(x, pads, mode))


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(8)
    geom = win.geometry((9, 8), (3, 2), (2, 1), (1, 2), (2, 1))
    xp = rng.standard_normal((2, 3) + geom.padded_hw)
    cols = win.im2col(xp, geom)
    g = rng.standard_normal(cols.shape)
    back = win.col2im(win.cols_view(g, 3, geom, 2), geom, np.zeros_like(xp))
    assert np.isclose(np.sum(cols * g), np.sum(xp * back))
    # one column holds one receptive field: image 1, output (2, 3), taps (a, b) at
    # rows 2*2 + 2*a, columns 3 + b
    kh, kw = geom.kernel
    ho, wo = geom.out_hw
    col = cols[:, 1 * ho * wo + 2 * wo + 3].reshape(3, kh, kw)
    np.testing.assert_array_equal(col, xp[1, :, 4:4 + 2 * kh - 1:2, 3:3 + kw])


@pytest.mark.parametrize("args", [((9, 8), 3, 1, 1, 1), ((9, 8), (3, 2), (2, 1), (1, 2), (2, 1)),
                                  ((7, 7), 5, 3, 4, 1), ((6, 9), 1, 2, 0, 1),
                                  ((4, 5), 3, 1, (3, 4), 1)])   # taps entirely in the padding
def test_im2col_unpadded_is_im2col_of_the_zero_padded_input(args):
    geom = win.geometry(*args)
    x = np.random.default_rng(11).standard_normal((3, 2) + geom.in_hw)
    xp = win.pad(x, geom.full_pads)
    np.testing.assert_array_equal(win.im2col_unpadded(x, geom), win.im2col(xp, geom))
    ho = geom.out_hw[0]
    for block in [(1, 3, 0, ho), (2, 3, 1, min(ho, 3)), (0, 1, ho - 1, ho)]:
        buf = np.full(10**4, np.nan)                  # a reused buffer: every entry is written
        np.testing.assert_array_equal(win.im2col_unpadded(x, geom, block, out=buf),
                                      win.im2col(xp, geom, block))


@pytest.mark.parametrize("args", [((9, 8), 3, 1, 1, 1), ((9, 8), (3, 2), (2, 1), (1, 2), (2, 1)),
                                  ((7, 7), 5, 3, 4, 1), ((6, 9), 1, 2, 0, 1)])
def test_col2im_unpadded_is_col2im_then_cropping_the_zero_padding(args):
    geom = win.geometry(*args)
    rng = np.random.default_rng(12)
    dcols = rng.standard_normal((2, 3) + geom.out_hw + geom.kernel)
    (t, _), (l, _) = geom.full_pads
    padded = win.col2im(dcols, geom, np.zeros((2, 3) + geom.padded_hw))
    h, w = geom.in_hw
    np.testing.assert_allclose(
        win.col2im_unpadded(dcols, geom, np.zeros((2, 3) + geom.in_hw)),
        padded[..., t:t + h, l:l + w], rtol=1e-12)
    # by blocks of rows, accumulating
    dx = np.zeros((2, 3) + geom.in_hw)
    for r0 in range(0, geom.out_hw[0], 2):
        r1 = min(r0 + 2, geom.out_hw[0])
        win.col2im_unpadded(dcols[:, :, r0:r1], geom, dx, (0, 2, r0, r1))
    np.testing.assert_allclose(dx, padded[..., t:t + h, l:l + w], rtol=1e-12)


def test_blocks_cover_every_output_row_once_and_respect_the_budget(monkeypatch):
    geom = win.geometry((224, 224), 3, 1, 1)
    col_bytes = 64 * 9 * 4
    for budget in (win.COL_BUDGET_BYTES, 2**20):
        monkeypatch.setattr(win, "COL_BUDGET_BYTES", budget)
        plan = list(win.blocks(8, geom, col_bytes))
        seen = np.zeros((8, 224), int)
        for n0, n1, r0, r1 in plan:
            seen[n0:n1, r0:r1] += 1
            assert (n1 - n0) * (r1 - r0) * 224 * col_bytes <= max(budget, 224 * col_bytes)
        assert (seen == 1).all()


def test_vgg_sized_conv_keeps_the_column_buffer_bounded():
    # conv1_2 of VGG-16 at batch 8 would need a 925 MB column matrix; blocked, the peak of
    # the call stays near its output (103 MB) plus one block.
    import tracemalloc
    x = np.zeros((8, 64, 224, 224), np.float32)
    w = np.zeros((64, 64, 3, 3), np.float32)
    tracemalloc.start()
    engine.conv2d(x, w, padding=1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < x.nbytes + 2 * win.COL_BUDGET_BYTES


# ------------------------------------------------------------------ locally connected

LC_CASES = [
    (2, 3, 6, 7, 4, 3, 1, 0, 1, "zeros"),
    (1, 2, 8, 7, 3, (2, 3), 2, 1, 1, "zeros"),
    (2, 2, 7, 7, 2, 3, 1, 1, 2, "reflect"),
    (1, 3, 6, 5, 2, 3, (2, 1), (1, 2), 1, "circular"),
    (2, 2, 5, 5, 3, 1, 1, 0, 1, "zeros"),
]


def _lc_case(case, seed=0):
    n, c, h, w, co, k, s, p, d, mode = case
    k2 = (k, k) if isinstance(k, int) else k
    geom = win.geometry((h, w), k2, s, p, d)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal(geom.out_hw + (co, c) + k2)
    b = rng.standard_normal((co,) + geom.out_hw)
    return x, wt, b, dict(stride=s, padding=p, dilation=d, padding_mode=mode)


@pytest.mark.parametrize("case", LC_CASES)
def test_locally_connected_matches_naive(case):
    x, w, b, kw = _lc_case(case)
    y = engine.locally_connected2d(x, w, b, **kw)
    np.testing.assert_allclose(y, locally_connected2d_naive(x, w, b, **kw), rtol=1e-10, atol=1e-10)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    for fast, slow in zip(engine.locally_connected2d_backward(dy, x, w, **kw),
                          locally_connected2d_backward_naive(dy, x, w, **kw)):
        np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", [LC_CASES[1], LC_CASES[2]])
def test_locally_connected_gradients_by_finite_differences(case):
    x, w, b, kw = _lc_case(case, seed=9)
    x = x[:1].copy()
    f = engine.locally_connected2d
    dy = np.random.default_rng(4).standard_normal(f(x, w, b, **kw).shape)
    dx, dw, db = engine.locally_connected2d_backward(dy, x, w, **kw)
    assert rel_error(dx, numeric_grad(lambda v: f(v, w, b, **kw), x, dy)) < 1e-7
    assert rel_error(dw, numeric_grad(lambda v: f(x, v, b, **kw), w, dy)) < 1e-7
    assert rel_error(db, numeric_grad(lambda v: f(x, w, v, **kw), b, dy)) < 1e-7


def test_locally_connected_with_tied_weights_is_a_conv():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 8, 7))
    k = rng.standard_normal((4, 3, 3, 3))
    y = engine.conv2d(x, k, stride=2, padding=1)
    tied = np.broadcast_to(k, y.shape[2:] + k.shape).copy()
    np.testing.assert_allclose(engine.locally_connected2d(x, tied, stride=2, padding=1), y,
                               rtol=1e-12)


# ------------------------------------------------------------ layer objects, registry

LAYER_CASES = [
    ("conv2d", dict(out_channels=4, kernel_size=3, stride=2, padding=1), (2, 3, 9, 8)),
    ("conv2d", dict(out_channels=6, kernel_size=[3, 1], padding="same", groups=3, bias=False,
                    padding_mode="reflect"), (1, 3, 7, 6)),
    ("conv2d", dict(out_channels=5, kernel_size=1), (2, 4, 5, 5)),
    ("conv2d", dict(out_channels=4, kernel_size=3, dilation=2, padding=2,
                    padding_mode="circular"), (1, 2, 7, 7)),
    ("locally_connected2d", dict(out_channels=3, kernel_size=3, padding=1), (2, 2, 5, 6)),
    ("locally_connected2d", dict(out_channels=2, kernel_size=2, stride=2, bias=False),
     (1, 3, 6, 6)),
]


@pytest.mark.parametrize("type_name,raw,shape", LAYER_CASES)
def test_layer_objects_agree_with_functional_api_and_registry_shapes(type_name, raw, shape):
    layer = get(type_name)
    attrs = layer.normalise(raw)
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape)
    params = {name: rng.standard_normal(s)
              for name, s in layer.param_shapes([shape], attrs).items()}
    y, cache = layer.forward([x], params, attrs, RunContext())
    assert y.shape == layer.output_shape([shape], attrs)
    fn = getattr(engine, type_name)
    kw = dict(stride=attrs["stride"], padding=attrs["padding"], dilation=attrs["dilation"],
              padding_mode=attrs["padding_mode"])
    if type_name == "conv2d":
        kw["groups"] = attrs["groups"]
    np.testing.assert_array_equal(y, fn(x, params["weight"], params.get("bias"), **kw))
    dy = rng.standard_normal(y.shape)
    dxs, grads = layer.backward(dy, cache)
    dx, dw, db = getattr(engine, type_name + "_backward")(dy, x, params["weight"], **kw)
    np.testing.assert_array_equal(dxs[0], dx)
    np.testing.assert_array_equal(grads["weight"], dw)
    assert set(grads) == set(params)
    if "bias" in params:
        np.testing.assert_array_equal(grads["bias"], db)
        assert grads["bias"].shape == params["bias"].shape
    assert grads["weight"].shape == params["weight"].shape


@pytest.mark.parametrize("call,field", [
    (lambda: engine.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((2, 3, 3, 3))), "w"),
    (lambda: engine.conv2d(np.zeros((1, 4, 5, 5)), np.zeros((2, 2, 3, 3)), groups=3), "w"),
    (lambda: engine.conv2d(np.zeros((1, 1, 5, 5), int), np.zeros((1, 1, 3, 3))), "x"),
    (lambda: engine.conv2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3))), "kernel_size"),
    (lambda: engine.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), stride=0), "stride"),
    (lambda: engine.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), padding_mode="edge"),
     "padding_mode"),
    (lambda: engine.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), stride=2,
                           padding="same"), "padding"),
])
def test_bad_arguments_raise_archstat_error(call, field):
    with pytest.raises(ArchstatError) as err:
        call()
    assert err.value.field == field


@pytest.mark.parametrize("module", sorted(p.stem for p in __import__("pathlib").Path(
    win.__file__).parents[1].joinpath("layers").glob("*.py") if p.stem != "__init__"))
def test_every_layer_module_imports_first_in_a_fresh_interpreter(module):
    # a family module imported on its own pulls in archstat.engine, whose lazy kernel index
    # imports every family: that must not meet a module that is still half imported
    import subprocess
    import sys
    run = subprocess.run([sys.executable, "-c", f"import archstat.layers.{module}"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]


def test_an_image_without_its_batch_axis_is_refused_with_the_fix():
    """Decision (issue: (C, H, W) inputs): the kernels stay NCHW only and say how to add the axis."""
    from archstat import engine
    x = np.ones((3, 8, 8), np.float32)
    for call in (lambda: engine.conv2d(x, np.ones((4, 3, 3, 3), np.float32)), lambda: engine.max_pool2d(x, 2)):
        with pytest.raises(ArchstatError, match=r"x must have 4 dimensions, got shape \(3, 8, 8\)") as err:
            call()
        assert "x[None]" in err.value.hint


def test_depthwise_takes_the_direct_forward_where_it_was_measured_to_pay():
    from archstat.layers import im2col as win
    from archstat.layers.conv_depthwise import direct_forward_pays
    small3, small5 = win.geometry((28, 28), (3, 3), 1, 1, 1), win.geometry((14, 14), (5, 5), 1, 2, 1)
    large3 = win.geometry((56, 56), (3, 3), 1, 1, 1)
    assert not direct_forward_pays(1, small3)      # one image's small 3x3 planes: im2col's columns stay in cache
    assert not direct_forward_pays(1, win.geometry((28, 28), (3, 3), 2, 1, 1))   # strided, to 14 x 14
    assert direct_forward_pays(2, small3) and direct_forward_pays(1, large3)
    assert direct_forward_pays(1, small5)          # 5x5: columns 25x the input, no faster (measured)
    # planes of 14 x 14 and less at stride 1 go channels last, 1.0-1.8x im2col's speed at batch 1
    assert direct_forward_pays(1, win.geometry((14, 14), (3, 3), 1, 1, 1))
    assert direct_forward_pays(1, win.geometry((7, 7), (3, 3), 1, 1, 1))
