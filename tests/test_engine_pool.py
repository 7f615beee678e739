"""The pooling kernels against naive loops (PyTorch's rules: ceil_mode, count_include_pad,
first-max ties), finite differences, the lecture's numbers and the invariance that conv +
max pooling adds."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from archstat import engine
from archstat.errors import ArchstatError
from archstat.layers import RunContext, get

from naive_window import (avg_pool2d_backward_naive, avg_pool2d_naive, global_avg_pool2d_naive,
                          max_pool2d_backward_naive, max_pool2d_naive, numeric_grad, rel_error)

# (N, C, H, W, kernel, stride, padding, dilation, ceil_mode)
MAX_CASES = [
    (2, 3, 8, 8, 2, None, 0, 1, False),
    (1, 2, 7, 9, 3, 2, 1, 1, False),
    (2, 2, 7, 9, 3, 2, 1, 1, True),
    (1, 3, 10, 8, (3, 2), (2, 1), (1, 1), (2, 1), False),
    (2, 2, 9, 10, 3, 2, 0, 2, True),
    (1, 2, 6, 7, 2, 2, 1, 1, True),
    (1, 1, 13, 13, 3, 3, 1, 1, True),
    (2, 2, 5, 5, 1, 2, 0, 1, False),
    (1, 2, 11, 6, (4, 2), 3, (2, 1), 1, True),
    # dilation, padding and ceil_mode together (the separable forward's overhanging windows)
    (2, 3, 11, 9, 3, 2, 1, 2, True),
    (1, 2, 12, 7, (3, 2), (3, 2), (1, 1), (2, 3), True),
    (1, 2, 2, 4, 3, 1, 1, 1, True),       # no window reads all three rows of its taps
]

# (N, C, H, W, kernel, stride, padding, ceil_mode, count_include_pad)
AVG_CASES = [
    (2, 3, 8, 8, 2, None, 0, False, True),
    (1, 2, 7, 9, 3, 2, 1, False, True),
    (1, 2, 7, 9, 3, 2, 1, False, False),
    (2, 2, 6, 7, 3, 2, 1, True, True),    # ceil_mode: last window clipped to the padded input
    (2, 2, 6, 7, 3, 2, 1, True, False),
    (1, 3, 10, 8, (3, 2), (2, 1), (1, 1), True, True),
    (1, 2, 5, 8, 2, 3, 1, True, True),
    (1, 1, 9, 9, (4, 3), 2, (2, 1), True, False),
]


def _x(shape, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    return np.round(x) if ties else x   # rounding makes many equal maxima


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool_matches_naive(case, ties):
    n, c, h, w, k, s, p, d, cm = case
    x = _x((n, c, h, w), ties=ties)
    y = engine.max_pool2d(x, k, s, p, d, cm)
    ny, _ = max_pool2d_naive(x, k, s, p, d, cm)
    np.testing.assert_array_equal(y, ny)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    np.testing.assert_allclose(engine.max_pool2d_backward(dy, x, k, s, p, d, cm),
                               max_pool2d_backward_naive(dy, x, k, s, p, d, cm), rtol=1e-12)


@pytest.mark.parametrize("planes", [False, True], ids=["tap views", "phase planes"])
@pytest.mark.parametrize("block_bytes", [8, 2**20])
@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool_backward_forms_match_naive_with_ties(monkeypatch, case, block_bytes, planes):
    # both forms of the backward on every geometry: disjoint windows take the tap views by
    # default, overlapping ones the phase planes; rounded inputs with -inf make ties
    from archstat.layers import pool_kernels
    monkeypatch.setattr(pool_kernels, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(pool_kernels, "PLANES_WHEN_DISJOINT", planes)
    n, c, h, w, k, s, p, d, cm = case
    x = _x((n, c, h, w), seed=21, ties=True)
    x[np.random.default_rng(22).random(x.shape) < 0.2] = -np.inf
    y = engine.max_pool2d(x, k, s, p, d, cm)
    dy = np.random.default_rng(23).standard_normal(y.shape)
    np.testing.assert_allclose(engine.max_pool2d_backward(dy, x, k, s, p, d, cm, y=y),
                               max_pool2d_backward_naive(dy, x, k, s, p, d, cm), rtol=1e-12)
    got32 = engine.max_pool2d_backward(dy.astype(np.float32), x.astype(np.float32), k, s, p, d, cm)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, max_pool2d_backward_naive(dy.astype(np.float32), x.astype(np.float32),
                                                                k, s, p, d, cm), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pairs", [True, False], ids=["column pairs", "tap views"])
@pytest.mark.parametrize("block_bytes", [8, 2**20])
@pytest.mark.parametrize("kernel", [2, (1, 2), (3, 2)])
def test_max_pool_backward_column_pairs_match_naive(monkeypatch, kernel, block_bytes, pairs):
    # float32 windows of kH x 2 tiling x (VGG's 2x2/2): the column-pair form against the naive
    # loops, with ties (rounded values, zeros of both signs), -inf and an inf upstream
    from archstat.layers import pool_kernels
    monkeypatch.setattr(pool_kernels, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(pool_kernels, "PAIRS", pairs)
    monkeypatch.setattr(pool_kernels, "PAIRS_MIN_WIDTH", 0)
    kh = 2 if kernel == 2 else kernel[0]
    rng = np.random.default_rng(31)
    x = np.round(rng.standard_normal((2, 3, 3 * kh, 8))).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = -0.0
    x[rng.random(x.shape) < 0.1] = -np.inf
    y = engine.max_pool2d(x, kernel)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dy[0, 0, 0, 0] = np.inf
    got = engine.max_pool2d_backward(dy, x, kernel, y=y)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, max_pool2d_backward_naive(dy, x, kernel))


def test_max_pool_backward_column_pairs_by_hand(monkeypatch):
    # 2x2 windows on one 2x4 image: [[1, 3 | 0, -1], [3, 3 | 5, 4]]; window 1's maximum 3 is
    # at (0, 1) first (row-major), window 2's 5 at (1, 2); a window of four zeros ([0, -0],
    # [-0, 0], all equal) sends its gradient to its first tap
    from archstat.layers import pool_kernels
    monkeypatch.setattr(pool_kernels, "PAIRS_MIN_WIDTH", 0)
    x = np.array([[[[1, 3, 0, -1, 0, -0.0], [3, 3, 5, 4, -0.0, 0]]]], np.float32)
    dx = engine.max_pool2d_backward(np.array([[[[10, 20, 30]]]], np.float32), x, 2)
    np.testing.assert_array_equal(dx[0, 0], [[0, 10, 0, 0, 30, 0], [0, 0, 20, 0, 0, 0]])


def test_max_pool_ties_go_to_the_first_maximum_in_window_order():
    x = np.array([[[[1.0, 3.0], [3.0, 3.0]]]])
    dx = engine.max_pool2d_backward(np.array([[[[5.0]]]]), x, 2)
    np.testing.assert_array_equal(dx, [[[[0.0, 5.0], [0.0, 0.0]]]])
    # overlapping windows each send their gradient to their own first maximum
    x = np.array([[[[2.0, 2.0, 2.0]]]])
    dx = engine.max_pool2d_backward(np.ones((1, 1, 1, 2)), x, (1, 2), 1)
    np.testing.assert_array_equal(dx, [[[[1.0, 1.0, 0.0]]]])


def test_max_pool_ties_in_overlapping_windows_by_hand():
    # 3x3 windows, stride 2, padding 1 on a constant 5x5 input: every tap ties, so each
    # window's gradient goes to its first tap inside the input, (max(2i-1, 0), max(2j-1, 0)):
    # rows and columns 0, 1, 3; the windows overlap but each sends only its own dy.
    x = np.zeros((1, 1, 5, 5))
    dy = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    dx = engine.max_pool2d_backward(dy, x, 3, 2, 1)
    expected = np.zeros((5, 5))
    expected[np.ix_([0, 1, 3], [0, 1, 3])] = dy[0, 0]
    np.testing.assert_array_equal(dx[0, 0], expected)
    # stride 1 along a row of equal values: windows [0..2], [1..3], [2..4] pick 0, 1, 2
    dx = engine.max_pool2d_backward(np.ones((1, 1, 1, 3)), np.full((1, 1, 1, 5), 2.0), (1, 3), 1)
    np.testing.assert_array_equal(dx[0, 0, 0], [1, 1, 1, 0, 0])


def test_max_pool_window_of_minus_infinity_sends_its_gradient_to_its_first_inside_tap():
    # All -inf, 3x3, stride 1, padding 1: window (i, j) starts at (i-1, j-1), so its first
    # inside tap is (max(i-1, 0), max(j-1, 0)); pixel (0, 0) collects windows (0..1, 0..1),
    # 4 of them; (0, 1) and (1, 0) two each; (1, 1) one (PyTorch's argmax, never the padding).
    x = np.full((1, 1, 3, 3), -np.inf)
    assert np.all(engine.max_pool2d(x, 3, 1, 1) == -np.inf)
    dx = engine.max_pool2d_backward(np.ones((1, 1, 3, 3)), x, 3, 1, 1)
    np.testing.assert_array_equal(dx[0, 0], [[4, 2, 0], [2, 1, 0], [0, 0, 0]])


@pytest.mark.parametrize("case", [MAX_CASES[i] for i in (1, 2, 3, 4, 9, 10)])
def test_max_pool_nan_propagates_and_its_gradient_goes_to_the_last_nan(case):
    n, c, h, w, k, s, p, d, cm = case
    rng = np.random.default_rng(11)
    x = np.round(_x((n, c, h, w), seed=12))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[rng.random(x.shape) < 0.1] = np.inf
    y = engine.max_pool2d(x, k, s, p, d, cm)
    ny, _ = max_pool2d_naive(x, k, s, p, d, cm)
    assert np.isnan(y).any() and not np.isnan(y).all()
    np.testing.assert_array_equal(y, ny)            # NaN where the naive loop has NaN
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(engine.max_pool2d_backward(dy, x, k, s, p, d, cm, y=y),
                               max_pool2d_backward_naive(dy, x, k, s, p, d, cm), rtol=1e-12)


def test_max_pool_nan_window_by_hand():
    # [1, nan, 2, nan] in one window: the value is NaN and the gradient goes to the last NaN
    x = np.array([[[[1.0, np.nan, 2.0, np.nan]]]])
    assert np.isnan(engine.max_pool2d(x, (1, 4))).all()
    dx = engine.max_pool2d_backward(np.array([[[[5.0]]]]), x, (1, 4))
    np.testing.assert_array_equal(dx[0, 0, 0], [0, 0, 0, 5])


@pytest.mark.parametrize("block_bytes", [8, 200, 1000])
def test_blocked_pools_match_naive(monkeypatch, block_bytes):
    # tiny blocks: several images per block, bands of channels, one channel per block
    from archstat.layers import pool_kernels
    monkeypatch.setattr(pool_kernels, "BLOCK_BYTES", block_bytes)
    x = np.round(_x((3, 5, 9, 7), seed=13))          # rounded: many ties
    for k, s, p, d, cm in [(3, 2, 1, 1, True), (2, None, 0, 1, False),
                           ((3, 2), 1, (1, 0), (2, 1), False)]:
        y = engine.max_pool2d(x, k, s, p, d, cm)
        np.testing.assert_array_equal(y, max_pool2d_naive(x, k, s, p, d, cm)[0])
        dy = np.random.default_rng(14).standard_normal(y.shape)
        np.testing.assert_allclose(engine.max_pool2d_backward(dy, x, k, s, p, d, cm),
                                   max_pool2d_backward_naive(dy, x, k, s, p, d, cm), rtol=1e-12)
        if d == 1:
            a = engine.avg_pool2d(x, k, s, p, cm, False)
            np.testing.assert_allclose(a, avg_pool2d_naive(x, k, s, p, cm, False), rtol=1e-12)
            np.testing.assert_allclose(engine.avg_pool2d_backward(dy, x.shape, k, s, p, cm, False),
                                       avg_pool2d_backward_naive(dy, x.shape, k, s, p, cm, False),
                                       rtol=1e-12)


def test_max_pool_gradient_drops_inf_and_nan_upstream_outside_the_argmax():
    # an inf/NaN dy reaches only its window's maximum; every other pixel stays exactly 0
    x = np.array([[[[1.0, 3.0, 0.0, -1.0], [2.0, 0.0, 5.0, 4.0]]]], np.float32)
    dy = np.array([[[[np.inf, np.nan]]]], np.float32)
    dx = engine.max_pool2d_backward(dy, x, 2)
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(dx[0, 0], [[0, np.inf, 0, 0], [0, 0, np.nan, 0]])


@pytest.mark.parametrize("case", AVG_CASES)
def test_avg_pool_matches_naive(case):
    n, c, h, w, k, s, p, cm, cip = case
    x = _x((n, c, h, w))
    y = engine.avg_pool2d(x, k, s, p, cm, cip)
    np.testing.assert_allclose(y, avg_pool2d_naive(x, k, s, p, cm, cip), rtol=1e-12)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    np.testing.assert_allclose(engine.avg_pool2d_backward(dy, x.shape, k, s, p, cm, cip),
                               avg_pool2d_backward_naive(dy, x.shape, k, s, p, cm, cip),
                               rtol=1e-12)


def test_avg_pool_ceil_mode_divisor_by_hand():
    # 1 x 5 input, kernel 1 x 2, stride 2, no padding, ceil_mode: windows [0,1], [2,3], [4]
    # (the last runs past the input, which is not padding, so it divides by 1 not 2).
    x = np.array([[[[1.0, 3.0, 5.0, 7.0, 9.0]]]])
    np.testing.assert_array_equal(engine.avg_pool2d(x, (1, 2), ceil_mode=True), [[[[2, 6, 9]]]])
    # with padding 1 and count_include_pad: windows [pad,1]/2, [3,5]/2, [7,9]/2
    np.testing.assert_array_equal(engine.avg_pool2d(x, (1, 2), padding=(0, 1)),
                                  [[[[0.5, 4.0, 8.0]]]])
    np.testing.assert_array_equal(
        engine.avg_pool2d(x, (1, 2), padding=(0, 1), count_include_pad=False),
        [[[[1.0, 4.0, 8.0]]]])


def test_global_avg_pool_matches_naive_and_its_gradient_spreads_evenly():
    x = _x((2, 3, 4, 5))
    y = engine.global_avg_pool2d(x)
    np.testing.assert_allclose(y, global_avg_pool2d_naive(x), rtol=1e-12)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    dx = engine.global_avg_pool2d_backward(dy, x.shape)
    np.testing.assert_allclose(dx, np.broadcast_to(dy / 20, x.shape), rtol=1e-12)
    assert rel_error(dx, numeric_grad(engine.global_avg_pool2d, x, dy)) < 1e-8


@pytest.mark.parametrize("case", [MAX_CASES[i] for i in (1, 2, 3, 4)])
def test_max_pool_gradient_by_finite_differences(case):
    n, c, h, w, k, s, p, d, cm = case
    x = _x((1, 1, h, w), seed=5)  # distinct values: the max is differentiable there
    dy = np.random.default_rng(6).standard_normal(engine.max_pool2d(x, k, s, p, d, cm).shape)
    dx = engine.max_pool2d_backward(dy, x, k, s, p, d, cm)
    assert rel_error(dx, numeric_grad(lambda v: engine.max_pool2d(v, k, s, p, d, cm), x, dy,
                                      h=1e-6)) < 1e-7


@pytest.mark.parametrize("case", AVG_CASES[1:6])
def test_avg_pool_gradient_by_finite_differences(case):
    n, c, h, w, k, s, p, cm, cip = case
    x = _x((1, 2, h, w), seed=7)
    f = lambda v: engine.avg_pool2d(v, k, s, p, cm, cip)  # noqa: E731
    dy = np.random.default_rng(8).standard_normal(f(x).shape)
    dx = engine.avg_pool2d_backward(dy, x.shape, k, s, p, cm, cip)
    assert rel_error(dx, numeric_grad(f, x, dy)) < 1e-8


def test_lecture_max_pool_of_the_worked_patch_is_200():
    # Lecture: max(X(0:2, 0:2)) for [[200,150,150],[100,50,100],[25,25,10]] = 200
    x = np.array([[200, 150, 150], [100, 50, 100], [25, 25, 10]], float)[None, None]
    assert engine.max_pool2d(x, 3)[0, 0, 0, 0] == 200
    dx = engine.max_pool2d_backward(np.ones((1, 1, 1, 1)), x, 3)
    assert dx[0, 0, 0, 0] == 1 and dx.sum() == 1   # the gradient goes to the 200 only
    assert np.isclose(engine.avg_pool2d(x, 3)[0, 0, 0, 0], 810 / 9)


def test_float32_in_float32_out():
    x = _x((1, 2, 6, 6)).astype(np.float32)
    for y in (engine.max_pool2d(x, 2), engine.avg_pool2d(x, 3, 2, 1, True, False),
              engine.global_avg_pool2d(x),
              engine.max_pool2d_backward(np.ones((1, 2, 3, 3), np.float32), x, 2),
              engine.avg_pool2d_backward(np.ones((1, 2, 3, 3), np.float32), x, 3, 2, 1),
              engine.global_avg_pool2d_backward(np.ones((1, 2, 1, 1), np.float32), x)):
        assert y.dtype == np.float32


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), r=st.integers(0, 1), c=st.integers(0, 1),
       dr=st.integers(0, 1), dc=st.integers(0, 1), amp=st.floats(0.5, 10))
def test_conv_then_max_pool_is_invariant_to_a_shift_inside_the_pooling_window(
        seed, r, c, dr, dc, amp):
    # Constructed input: one bright pixel on a zero background, a 3x3 conv with positive
    # weights (padding 1), then 4x4 max pooling with stride 4. The pixel sits at 4*i + 1 or
    # 4*i + 2 before and after a shift of 0 or 1 pixel, so the conv's 3x3 response (rows
    # 4*i .. 4*i + 3) stays inside one pooling window: the conv output moves
    # (equivariance), the pooled output does not (invariance).
    r, c = min(r, 1 - dr), min(c, 1 - dc)
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.1, 1.0, (2, 1, 3, 3))
    x = np.zeros((1, 1, 12, 12))
    x[0, 0, 4 + 1 + r, 8 + 1 + c] = amp
    xs = np.zeros_like(x)
    xs[0, 0, 4 + 1 + r + dr, 8 + 1 + c + dc] = amp
    y, ys = engine.conv2d(x, w, padding=1), engine.conv2d(xs, w, padding=1)
    if dr or dc:
        assert not np.allclose(y, ys)
        np.testing.assert_allclose(np.roll(y, (dr, dc), axis=(2, 3)), ys)
    np.testing.assert_array_equal(engine.max_pool2d(y, 4), engine.max_pool2d(ys, 4))


POOL_LAYERS = [
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (2, 3, 9, 8)),
    ("max_pool2d", dict(kernel_size=2), (1, 2, 7, 6)),
    ("max_pool2d", dict(kernel_size=3, stride=1, dilation=2), (1, 2, 9, 9)),
    ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                        count_include_pad=False), (2, 3, 8, 9)),
    ("avg_pool2d", dict(kernel_size=[2, 3]), (1, 2, 6, 7)),
    ("global_avg_pool2d", {}, (2, 4, 5, 3)),
]


@pytest.mark.parametrize("type_name,raw,shape", POOL_LAYERS)
def test_layer_objects_agree_with_functional_api_and_registry_shapes(type_name, raw, shape):
    layer = get(type_name)
    attrs = layer.normalise(raw)
    x = _x(shape, seed=9)
    y, cache = layer.forward([x], {}, attrs, RunContext())
    assert y.shape == layer.output_shape([shape], attrs)
    dy = np.random.default_rng(10).standard_normal(y.shape)
    (dx,), grads = layer.backward(dy, cache)
    assert grads == {} and dx.shape == shape
    if type_name == "global_avg_pool2d":
        expected = engine.global_avg_pool2d(x), engine.global_avg_pool2d_backward(dy, x)
    elif type_name == "max_pool2d":
        args = (attrs["kernel_size"], attrs["stride"], attrs["padding"], attrs["dilation"],
                attrs["ceil_mode"])
        expected = engine.max_pool2d(x, *args), engine.max_pool2d_backward(dy, x, *args)
    else:
        args = (attrs["kernel_size"], attrs["stride"], attrs["padding"], attrs["ceil_mode"],
                attrs["count_include_pad"])
        expected = engine.avg_pool2d(x, *args), engine.avg_pool2d_backward(dy, x.shape, *args)
    np.testing.assert_array_equal(y, expected[0])
    np.testing.assert_array_equal(dx, expected[1])


def test_pool_padding_over_half_the_kernel_is_refused_as_in_pytorch():
    with pytest.raises(ArchstatError) as err:
        engine.max_pool2d(np.zeros((1, 1, 6, 6)), 2, padding=2)
    assert err.value.field == "padding"


def test_pool_backward_refuses_a_gradient_or_output_of_the_wrong_shape():
    # the kernels slice dy and y block by block: a wrong shape must fail, not give a wrong dx
    from archstat.errors import ArchstatError
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    for bad in [(3, 3, 4, 4), (2, 3, 5, 5), (1, 3, 4, 4)]:
        with pytest.raises(ArchstatError, match="output shape"):
            engine.max_pool2d_backward(np.ones(bad), x, 2)
        with pytest.raises(ArchstatError, match="output shape"):
            engine.avg_pool2d_backward(np.ones(bad), x.shape, 2)
    with pytest.raises(ArchstatError, match="field 'y'"):
        engine.max_pool2d_backward(np.ones((2, 3, 4, 4)), x, 2, y=np.ones((3, 3, 5, 5)))


def test_empty_batches_and_channels_pass_through():
    for shape in [(2, 0, 8, 8), (0, 3, 8, 8)]:
        x = np.zeros(shape)
        y = engine.max_pool2d(x, 2)
        assert engine.max_pool2d_backward(np.zeros(y.shape), x, 2).shape == shape
    x = np.zeros((0, 3, 8, 8))
    w = np.ones((4, 3, 3, 3))
    y = engine.conv2d(x, w, padding=1)
    assert y.shape == (0, 4, 8, 8)
    dx, dw, db = engine.conv2d_backward(y, x, w, padding=1)
    assert dx.shape == x.shape and not dw.any() and not db.any()


@pytest.mark.parametrize("pool,kw", [("max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
                                     ("avg_pool2d", dict(kernel_size=2, stride=2, count_include_pad=False))])
def test_pools_write_into_a_slice_of_a_concatenation(pool, kw):
    """``out=``: a channel slice of a joined buffer (strided for a batch of 2) takes the
    output; the result is that slice, equal to the pool's own, the rest untouched."""
    from archstat import engine
    fn = getattr(engine, pool)
    x = np.random.default_rng(3).standard_normal((2, 5, 9, 9)).astype(np.float32)
    want = fn(x, **kw)
    joined = np.full((2, 12) + want.shape[2:], np.nan, np.float32)
    slot = joined[:, 4:9]
    got = fn(x, **kw, out=slot)
    assert got is slot and not slot.flags.c_contiguous
    np.testing.assert_array_equal(got, want)
    assert np.isnan(joined[:, :4]).all() and np.isnan(joined[:, 9:]).all()
    # a slot of the wrong shape is not used: a new array, the slot untouched
    np.testing.assert_array_equal(fn(x, **kw, out=joined[:, :3]), want)
    assert np.isnan(joined[:, :4]).all()
