"""adaptive_avg_pool2d, adaptive_max_pool2d, permute, split, channel_shuffle, stochastic_depth
and linear on the last axis: the fast kernels against the naive loops of naive_pool_shape.py
on seeded shapes (non-divisible and upsampling adaptive sizes included), float64 centred
finite differences of every backward, the exact analysis counts derived by hand, receptive
fields, memory, errors, and a ShuffleNet-style spec run through the engine."""
from __future__ import annotations

import math

import numpy as np
import pytest

import archstat
import archstat.engine as engine
from archstat.errors import ArchstatError
from archstat.layers import get
from archstat.layers.registry import Field, RunContext
from archstat.layers.window import adaptive_bounds, adaptive_geometry, adaptive_taps

from naive_ops import numerical_gradient, numerical_gradient_at, rel_error, sample_indices
from naive_pool_shape import (adaptive_avg_pool2d_backward_naive, adaptive_avg_pool2d_naive,
                              adaptive_max_pool2d_backward_naive, adaptive_max_pool2d_naive,
                              adaptive_windows, channel_shuffle_naive, linear_nd_naive,
                              permute_naive, piece_sizes, split_naive, stochastic_depth_naive)
from naive_window import conv2d_naive

NEW_TYPES = ["adaptive_avg_pool2d", "adaptive_max_pool2d", "permute", "split", "channel_shuffle",
             "stochastic_depth", "linear"]

# (N, C, H, W, output_size): divisible, non-divisible (13 -> 7, 5 -> 3), upsampling
# (7 -> 14, 5 -> 7), H = q out + 1 (13 -> 3: equal windows overlapping by one), null entries,
# a one-pixel axis, and global (1)
ADAPTIVE_CASES = [
    (2, 3, 8, 12, (4, 3)),
    (2, 2, 13, 13, 7),
    (1, 3, 5, 5, 3),
    (2, 2, 7, 7, 14),
    (1, 2, 5, 6, (7, 4)),
    (1, 2, 13, 9, (3, 4)),
    (2, 3, 13, 5, (7, None)),
    (1, 2, 6, 9, (None, 5)),
    (1, 2, 1, 6, (5, 4)),
    (2, 2, 6, 7, 1),
]


def _rng(*salt):
    return np.random.default_rng(list(salt))


def _seeded_adaptive_cases():
    """Random shapes and output sizes, up- and downsampling, with a null entry now and then."""
    rng = _rng(2024)
    cases = []
    for _ in range(8):
        n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
        h, w = (int(v) for v in rng.integers(1, 15, 2))
        oh, ow = (int(v) for v in rng.integers(1, 17, 2))
        out = (None if rng.random() < 0.2 else oh, ow)
        cases.append((n, c, h, w, out))
    return cases


ALL_ADAPTIVE = ADAPTIVE_CASES + _seeded_adaptive_cases()


def _distinct(shape, seed):
    """Values spaced 0.01 apart at least, in random order: no ties, and a finite difference
    of 1e-5 never changes which element is the maximum."""
    rng = _rng(seed, 77)
    return rng.permutation(math.prod(shape)).reshape(shape) * 0.01 + rng.uniform(-1, 1)


def _check_grad(f, x, analytic, df, tol=1e-7):
    num = numerical_gradient(f, x, df)
    assert rel_error(num, analytic) < tol, rel_error(num, analytic)


# ----------------------------------------------------------------- window geometry

def test_adaptive_geometry_matches_the_windows():
    # the O(1) formulas of window.py against the windows themselves, over every small size
    for size in range(1, 50):
        for out in range(1, 60):
            windows = adaptive_windows(size, out)
            assert [adaptive_bounds(size, out, i) for i in range(out)] == windows
            lens = [e - s for s, e in windows]
            steps = [b[0] - a[0] for a, b in zip(windows, windows[1:])]
            kernel, step, uniform = adaptive_geometry(size, out)
            assert adaptive_taps(size, out) == sum(lens)
            assert kernel == max(lens)
            assert step == (max(steps) if steps else size)
            assert uniform == (len(set(lens)) == 1 and len(set(steps)) <= 1)


def test_adaptive_windows_by_hand():
    # 13 -> 7: floor(13 i / 7) to ceil(13 (i + 1) / 7)
    assert adaptive_windows(13, 7) == [(0, 2), (1, 4), (3, 6), (5, 8), (7, 10), (9, 12), (11, 13)]
    assert adaptive_taps(13, 7) == 2 + 3 * 5 + 2 == 19
    assert adaptive_geometry(13, 7) == (3, 2, False)
    # 5 -> 3: [0, 2), [1, 4), [3, 5); 7 -> 14 upsamples: every window is one pixel, read twice
    assert adaptive_windows(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert adaptive_windows(7, 14) == [(i // 2, i // 2 + 1) for i in range(14)]
    assert adaptive_geometry(7, 14) == (1, 1, False)
    # 13 -> 3 = 4 * 3 + 1: three windows of 5 at a step of 4, a fixed pool's
    assert adaptive_windows(13, 3) == [(0, 5), (4, 9), (8, 13)]
    assert adaptive_geometry(13, 3) == (5, 4, True)
    assert adaptive_geometry(224, 7) == (32, 32, True)


# ----------------------------------------------------------------- adaptive kernels

@pytest.mark.parametrize("case", ALL_ADAPTIVE, ids=str)
def test_adaptive_avg_pool_matches_naive(case):
    n, c, h, w, out = case
    x = _rng(h, w, 1).standard_normal((n, c, h, w))
    y = engine.adaptive_avg_pool2d(x, out)
    np.testing.assert_allclose(y, adaptive_avg_pool2d_naive(x, out), rtol=1e-12, atol=1e-14)
    dy = _rng(h, w, 2).standard_normal(y.shape)
    np.testing.assert_allclose(engine.adaptive_avg_pool2d_backward(dy, x.shape, out),
                               adaptive_avg_pool2d_backward_naive(dy, x.shape, out),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("case", ALL_ADAPTIVE, ids=str)
def test_adaptive_max_pool_matches_naive(case, ties):
    n, c, h, w, out = case
    x = _rng(h, w, 3).standard_normal((n, c, h, w))
    if ties:
        x = np.round(x)       # many equal maxima: the gradient must go to the first one
    y = engine.adaptive_max_pool2d(x, out)
    ny, _ = adaptive_max_pool2d_naive(x, out)
    np.testing.assert_array_equal(y, ny)
    dy = _rng(h, w, 4).standard_normal(y.shape)
    np.testing.assert_allclose(engine.adaptive_max_pool2d_backward(dy, x, out),
                               adaptive_max_pool2d_backward_naive(dy, x, out), rtol=1e-12, atol=1e-14)


def test_adaptive_max_pool_nan_goes_to_the_last_nan_of_a_window():
    # 5 -> 3 windows [0, 2), [1, 4), [3, 5): window (1, 1) holds the NaNs at (1, 1) and (2, 2)
    x = _rng(5).standard_normal((1, 1, 5, 5))
    x[0, 0, 1, 1] = x[0, 0, 2, 2] = np.nan
    y = engine.adaptive_max_pool2d(x, 3)
    assert np.isnan(y[0, 0, 1, 1]) and np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 0, 2, 2])
    dy = np.zeros((1, 1, 3, 3))
    dy[0, 0, 1, 1] = 1.0
    dx = engine.adaptive_max_pool2d_backward(dy, x, 3)
    assert dx[0, 0, 2, 2] == 1.0 and dx.sum() == 1.0
    np.testing.assert_array_equal(engine.adaptive_max_pool2d_backward(np.ones((1, 1, 3, 3)), x, 3),
                                  adaptive_max_pool2d_backward_naive(np.ones((1, 1, 3, 3)), x, 3))


def test_adaptive_ties_by_hand():
    # a constant 5x5 image pooled to 3x3: every window's gradient goes to its first pixel,
    # (start_i, start_j) with starts 0, 1, 3
    dx = engine.adaptive_max_pool2d_backward(np.ones((1, 1, 3, 3)), np.zeros((1, 1, 5, 5)), 3)
    expected = np.zeros((5, 5))
    for a in (0, 1, 3):
        for b in (0, 1, 3):
            expected[a, b] = 1.0
    np.testing.assert_array_equal(dx[0, 0], expected)
    # the averages of 5 -> 3 along a row [0, 1, 2, 3, 4]: (0+1)/2, (1+2+3)/3, (3+4)/2
    row = np.arange(5.0).reshape(1, 1, 1, 5)
    np.testing.assert_allclose(engine.adaptive_avg_pool2d(row, (1, 3))[0, 0, 0], [0.5, 2.0, 3.5])


@pytest.mark.parametrize("case", [(1, 2, 5, 7, (3, 4)), (2, 1, 7, 4, (14, 3)), (1, 2, 13, 9, (7, 3)),
                                  (1, 1, 6, 6, 3)], ids=str)
def test_adaptive_gradients_by_finite_differences(case):
    n, c, h, w, out = case
    x = _distinct((n, c, h, w), h * w)
    for fwd, bwd in ((engine.adaptive_avg_pool2d, lambda dy: engine.adaptive_avg_pool2d_backward(dy, x.shape, out)),
                     (engine.adaptive_max_pool2d, lambda dy: engine.adaptive_max_pool2d_backward(dy, x, out))):
        y = fwd(x, out)
        df = _rng(h, 5).standard_normal(y.shape)
        _check_grad(lambda: fwd(x, out), x, bwd(df), df)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
def test_adaptive_keeps_the_dtype(name, dtype):
    x = _rng(9).standard_normal((2, 3, 13, 9)).astype(dtype)
    for out in ((7, 4), 3, (13, 3)):      # the gather path, and the fixed-pool paths
        y = getattr(engine, name)(x, out)
        ref = (adaptive_avg_pool2d_naive if name == "adaptive_avg_pool2d" else
               lambda a, o: adaptive_max_pool2d_naive(a, o)[0])(x.astype(np.float64), out)
        assert y.dtype == dtype
        np.testing.assert_allclose(y, ref, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-6)
        dy = np.ones(y.shape, dtype)
        dx = (engine.adaptive_avg_pool2d_backward(dy, x.shape, out) if name == "adaptive_avg_pool2d"
              else engine.adaptive_max_pool2d_backward(dy, x, out))
        assert dx.dtype == dtype and dx.shape == x.shape


# ----------------------------------------------------------------- shape kernels

@pytest.mark.parametrize("seed", range(4))
def test_permute_matches_naive_and_gradient(seed):
    rng = _rng(seed, 10)
    rank = int(rng.integers(2, 6))
    shape = tuple(int(v) for v in rng.integers(1, 5, rank))
    dims = (0, *(int(d) + 1 for d in rng.permutation(rank - 1)))
    x = rng.standard_normal(shape)
    y = engine.permute(x, dims)
    np.testing.assert_array_equal(y, permute_naive(x, dims))
    assert np.shares_memory(y, x)                        # a view, as torch.permute
    df = rng.standard_normal(y.shape)
    _check_grad(lambda: engine.permute(x, dims), x, engine.permute_backward(df, dims), df)


# (C, chunks, sizes, dim): torch.chunk's uneven rule (5 in 3: 2, 2, 1; 5 in 4: 2, 2, 1, so
# only three pieces), torch.split with a list, and a split of the image height
SPLITS = [(6, 2, None, 1), (5, 3, None, 1), (5, 4, None, 1), (7, None, (3, 1, 3), 1),
          (4, 1, None, 1), (6, None, (2, 4), 2), (6, 4, None, 3)]


@pytest.mark.parametrize("case", SPLITS, ids=str)
def test_split_matches_naive_and_gradient(case):
    extent, chunks, sizes, dim = case
    shape = [2, 3, 4, 5]
    shape[dim] = extent
    rng = _rng(extent, dim, 11)
    x = rng.standard_normal(shape)
    pieces = piece_sizes(extent, chunks, sizes)
    assert len(pieces) == (3 if (extent, chunks) == (5, 4) else len(pieces))
    for index in range(len(pieces)):
        y = engine.split(x, index, chunks, sizes, dim)
        np.testing.assert_array_equal(y, split_naive(x, dim, index, chunks, sizes))
        assert np.shares_memory(y, x)
        df = rng.standard_normal(y.shape)
        _check_grad(lambda: engine.split(x, index, chunks, sizes, dim), x,
                    engine.split_backward(df, x.shape, index, chunks, sizes, dim), df)


def test_split_pieces_reassemble_the_input():
    x = _rng(12).standard_normal((2, 5, 3, 3))
    parts = [engine.split(x, i, chunks=3) for i in range(3)]
    assert [p.shape[1] for p in parts] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), x)


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_channel_shuffle_matches_naive_and_gradient(groups):
    rng = _rng(groups, 13)
    x = rng.standard_normal((2, 6, 3, 2))
    y = engine.channel_shuffle(x, groups)
    np.testing.assert_array_equal(y, channel_shuffle_naive(x, groups))
    assert not np.shares_memory(y, x)                   # a new tensor, even for groups 1
    df = rng.standard_normal(y.shape)
    _check_grad(lambda: engine.channel_shuffle(x, groups), x,
                engine.channel_shuffle_backward(df, groups), df)


def test_channel_shuffle_by_hand():
    # 6 channels in 2 groups (0 1 2 | 3 4 5) interleave: 0 3 1 4 2 5
    x = np.arange(6.0).reshape(1, 6, 1, 1)
    assert engine.channel_shuffle(x, 2).ravel().tolist() == [0, 3, 1, 4, 2, 5]
    assert engine.channel_shuffle(x, 3).ravel().tolist() == [0, 2, 4, 1, 3, 5]


@pytest.mark.parametrize("mode", ["row", "batch"])
@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_stochastic_depth_matches_naive_and_gradient(p, mode):
    x = _rng(14).standard_normal((6, 2, 3, 3))
    y0, noise0 = engine.stochastic_depth(x, p, mode, training=False)
    assert y0 is x and noise0 is None                  # inference: the identity, no copy
    y, noise = engine.stochastic_depth(x, p, mode, training=True, rng=5)
    if p == 0:
        assert y is x and noise is None                # torchvision returns the input too
        return
    assert noise.shape == ((6, 1, 1, 1) if mode == "row" else (1, 1, 1, 1))
    keep = noise.reshape(-1) != 0
    if mode == "row" and p == 0.3:
        assert 0 < keep.sum() < len(keep)             # this seed keeps some rows, drops others
    np.testing.assert_allclose(y, stochastic_depth_naive(x, keep, p), rtol=1e-15)
    if p < 1:
        np.testing.assert_allclose(noise[noise != 0], 1 / (1 - p))
    else:
        assert not y.any()
    df = _rng(15).standard_normal(y.shape)
    _check_grad(lambda: engine.stochastic_depth(x, p, mode, True, rng=5)[0], x,
                engine.stochastic_depth_backward(df, noise), df)


def test_stochastic_depth_drops_rows_at_rate_p():
    # 20,000 rows at p = 0.3 with a fixed seed: the kept fraction is 0.7 within 4 standard
    # errors (sqrt(0.21 / 20000) = 0.0032); each row is all kept or all dropped
    x = np.ones((20_000, 2, 1, 1))
    y, noise = engine.stochastic_depth(x, 0.3, "row", True, rng=0)
    kept = (y != 0).all(axis=(1, 2, 3))
    assert ((y == 0).all(axis=(1, 2, 3)) | kept).all()
    assert abs(kept.mean() - 0.7) < 4 * math.sqrt(0.21 / 20_000)


@pytest.mark.parametrize("shape", [(2, 3), (2, 4, 3), (2, 3, 2, 5), (1, 2, 2, 2, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_on_the_last_axis_matches_naive_and_gradients(shape, bias):
    rng = _rng(len(shape), 16)
    x, w = rng.standard_normal(shape), rng.standard_normal((4, shape[-1]))
    b = rng.standard_normal(4) if bias else None
    y = engine.linear(x, w, b)
    np.testing.assert_allclose(y, linear_nd_naive(x, w, b), rtol=1e-12, atol=1e-12)
    df = rng.standard_normal(y.shape)
    dx, dw, db = engine.linear_backward(df, x, w)
    _check_grad(lambda: engine.linear(x, w, b), x, dx, df)
    _check_grad(lambda: engine.linear(x, w, b), w, dw, df)
    if bias:
        _check_grad(lambda: engine.linear(x, w, b), b, db, df)


# ------------------------------------------------------------------ registry facts

LAYER_CASES = {
    "adaptive_avg_pool2d": ({"output_size": [5, None]}, (2, 3, 7, 6)),
    "adaptive_max_pool2d": ({"output_size": 4}, (2, 3, 7, 6)),
    "permute": ({"dims": [0, 2, 3, 1]}, (2, 3, 7, 6)),
    "split": ({"chunks": 2, "index": 1}, (2, 3, 7, 6)),
    "channel_shuffle": ({"groups": 3}, (2, 3, 7, 6)),
    "stochastic_depth": ({"p": 0.5}, (2, 3, 7, 6)),
    "linear": ({"in_features": 6, "out_features": 4}, (2, 3, 7, 6)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("type_name", NEW_TYPES)
def test_layer_kernels_match_shape_rule_dtype_and_params(type_name, train, dtype):
    ltype = get(type_name)
    raw, shape = LAYER_CASES[type_name]
    attrs = ltype.normalise(raw)
    rng = _rng(17)
    x = rng.standard_normal(shape).astype(dtype)
    params = {k: rng.standard_normal(s).astype(dtype)
              for k, s in ltype.param_shapes([shape], attrs).items()}
    y, cache = ltype.forward([x], params, attrs, RunContext(train=train, rng=rng))
    assert y.shape == ltype.output_shape([shape], attrs) and y.dtype == dtype
    assert ltype.is_view == (type_name in ("permute", "split", "stochastic_depth"))
    if ltype.is_view and not train:
        assert np.shares_memory(y, x)
    (dx,), dparams = ltype.backward(rng.standard_normal(y.shape).astype(dtype), cache)
    assert dx.shape == shape and dx.dtype == dtype
    assert {k: v.shape for k, v in dparams.items()} == {k: v.shape for k, v in params.items()}


def test_new_field_kinds():
    ints = Field("dims", "ints", doc="d", minimum=0)
    assert ints.normalise([0, 2, 1]) == (0, 2, 1) and ints.describe() == "a list of integers >= 0"
    for bad in ([], [0, -1], [1.5], 3, [True], "0,1", [2**40]):
        with pytest.raises(ArchstatError, match="expected a list of integers"):
            ints.normalise(bad)
    size = Field("output_size", "size", doc="s", minimum=1)
    assert size.normalise(7) == (7, 7) and size.normalise([3, None]) == (3, None)
    assert size.normalise([None, None]) == (None, None)
    assert size.describe() == "an integer or a pair [h, w] of integers >= 1 or null"
    for bad in (0, [0, 2], [1, 2, 3], "7", [1.0, 2], None, True, [2**40, 1]):
        with pytest.raises(ArchstatError, match="expected an integer or a pair"):
            size.normalise(bad)


# ------------------------------------------------------------------ analysis counts

def _rows(spec, **kw):
    return {r["name"]: r for r in archstat.analyze(spec, **kw).rows()}


def test_adaptive_pool_counts_by_hand():
    spec = {"input": [3, 13, 5], "layers": [
        {"name": "avg", "type": "adaptive_avg_pool2d", "output_size": [7, None]},
        {"name": "max", "type": "adaptive_max_pool2d", "output_size": 3, "inputs": "input"},
        {"name": "one", "type": "adaptive_avg_pool2d", "output_size": 1, "inputs": "input"},
        {"name": "gap", "type": "global_avg_pool2d", "inputs": "input"}]}
    rows = _rows(spec, batch=2)
    # avg 13 -> 7 windows 2, 3, 3, 3, 3, 3, 2 (sum 19); 5 -> 5 windows of 1 (sum 5); one add or
    # divide per window pixel: N * C * 19 * 5 = 2 * 3 * 95
    assert rows["avg"]["output_shape"] == (2, 3, 7, 5)
    assert (rows["avg"]["params"], rows["avg"]["macs"], rows["avg"]["flops"]) == (0, 0, 570)
    # max 13 -> 3 windows 5, 5, 5 (sum 15); 5 -> 3 windows 2, 3, 2 (sum 7); size - 1
    # comparisons per output: N * C * (15 * 7 - 3 * 3) = 6 * 96
    assert rows["max"]["output_shape"] == (2, 3, 3, 3)
    assert (rows["max"]["params"], rows["max"]["macs"], rows["max"]["flops"]) == (0, 0, 576)
    # output 1 is the global average: H * W per output, as global_avg_pool2d counts it
    assert rows["one"]["flops"] == rows["gap"]["flops"] == 2 * 3 * 13 * 5 == 390


def test_linear_on_the_last_axis_counts_by_hand():
    spec = {"input": [4, 6, 8], "layers": [
        {"name": "nhwc", "type": "permute", "dims": [0, 2, 3, 1]},
        {"name": "fc", "type": "linear", "in_features": 4, "out_features": 5},
        {"name": "nchw", "type": "permute", "dims": [0, 3, 1, 2]},
        {"name": "rows", "type": "flatten", "start_dim": 2, "inputs": "input"},
        {"name": "fc3", "type": "linear", "in_features": 48, "out_features": 10, "bias": False},
        {"name": "flat", "type": "flatten", "inputs": "input"},
        {"name": "fc2", "type": "linear", "out_features": 3}]}
    rows = _rows(spec, batch=2)
    assert rows["nhwc"]["output_shape"] == (2, 6, 8, 4) and rows["nchw"]["output_shape"] == (2, 5, 6, 8)
    # fc: weight 5 x 4 + bias 5 = 25; MACs = (2 * 6 * 8) rows * 4 * 5 = 1,920;
    # FLOPs = 2 * 1,920 + one bias add per output element (2 * 6 * 8 * 5 = 480) = 4,320
    assert rows["fc"]["output_shape"] == (2, 6, 8, 5)
    assert (rows["fc"]["params"], rows["fc"]["macs"], rows["fc"]["flops"]) == (25, 1_920, 4_320)
    # fc3 on (2, 4, 48): 48 * 10 weights; MACs = 2 * 4 * 48 * 10 = 3,840; FLOPs 2 * MACs
    assert rows["fc3"]["output_shape"] == (2, 4, 10)
    assert (rows["fc3"]["params"], rows["fc3"]["macs"], rows["fc3"]["flops"]) == (480, 3_840, 7_680)
    # rank 2 as before: 192 * 3 + 3 = 579 params; MACs 2 * 192 * 3 = 1,152; FLOPs 2,304 + 6
    assert (rows["fc2"]["params"], rows["fc2"]["macs"], rows["fc2"]["flops"]) == (579, 1_152, 2_310)
    # permutes are views, zero FLOPs
    assert rows["nhwc"]["flops"] == rows["nchw"]["flops"] == 0


def test_shape_layers_counts_and_memory_by_hand():
    spec = {"input": [4, 6, 6], "layers": [
        {"name": "a", "type": "split", "chunks": 2, "index": 0},
        {"name": "b", "type": "split", "chunks": 2, "index": 1, "inputs": "input"},
        {"name": "p", "type": "permute", "dims": [0, 2, 3, 1], "inputs": "b"},
        {"name": "sd", "type": "stochastic_depth", "p": 0.2, "inputs": "a"},
        {"name": "s", "type": "split", "sizes": [1, 3], "index": 1, "inputs": "input"},
        {"name": "cs", "type": "channel_shuffle", "groups": 2, "inputs": "input"}]}
    rows = _rows(spec)
    assert rows["a"]["output_shape"] == rows["b"]["output_shape"] == (1, 2, 6, 6)
    assert rows["p"]["output_shape"] == (1, 6, 6, 2) and rows["s"]["output_shape"] == (1, 3, 6, 6)
    for name in ("a", "b", "p", "sd", "s", "cs"):
        assert (rows[name]["params"], rows[name]["macs"], rows[name]["flops"]) == (0, 0, 0)
    # views add no activation bytes; the shuffle copies 4 * 6 * 6 float32 = 576 bytes
    for name in ("a", "b", "p", "sd", "s"):
        assert rows[name]["activation_bytes"] == 0, name
    assert rows["cs"]["activation_bytes"] == 576
    totals = archstat.analyze(spec).totals
    assert totals["forward_memory_bytes"] == 576 + 576       # the input and the shuffle
    assert archstat.load(spec).storage["sd"] == "input"


def test_stochastic_depth_training_memory_by_hand():
    spec = {"input": [10], "layers": [{"type": "linear", "out_features": 100, "name": "fc"},
                                      {"type": "stochastic_depth", "p": 0.2, "name": "sd"}]}
    t = archstat.analyze(spec, optimizer="sgd").totals
    # inference: input 10 x 4 B + fc 100 x 4 B; stochastic depth is a view of fc's output
    assert t["forward_memory_bytes"] == 40 + 400 == 440
    # training adds its own output (400 B; the 1-value noise is not counted); weights and
    # gradients 2 x 1,100 x 4 B = 8,800; largest transient gradient (100 + 100) x 4 B = 800
    assert t["training_memory_bytes"] == 440 + 400 + 8_800 + 800 == 10_440
    # told the fields, p = 0 allocates nothing (torchvision returns the input in training too)
    sd = get("stochastic_depth")
    assert sd.training_extra_bytes(100, 4, sd.normalise({"p": 0.2})) == 400
    assert sd.training_extra_bytes(100, 4, sd.normalise({"p": 0.0})) == 0


# ---------------------------------------------------------------- receptive fields

def test_adaptive_receptive_field_divisible_is_exact():
    # 12 -> 4: windows of 3 at a step of 3, the same field as a 3x3 / 3 average pool
    spec = {"input": [3, 12, 12], "layers": [
        {"name": "ada", "type": "adaptive_avg_pool2d", "output_size": 4},
        {"name": "avg", "type": "avg_pool2d", "kernel_size": 3, "inputs": "input"},
        {"name": "ada13", "type": "adaptive_max_pool2d", "output_size": [3, 3], "inputs": "input"},
        {"name": "one", "type": "adaptive_avg_pool2d", "output_size": 1, "inputs": "input"}]}
    rows = _rows(spec)
    for key in ("rf_size", "rf_stride", "rf_offset", "rf_aligned"):
        assert rows["ada"][key] == rows["avg"][key], key
    assert (rows["ada"]["rf_size"], rows["ada"]["rf_stride"], rows["ada"]["rf_offset"]) == \
        ((3, 3), (3, 3), (1.0, 1.0))
    assert rows["ada"]["rf_aligned"] is True
    # output 1: the whole input, as global_avg_pool2d
    assert rows["one"]["rf_size"] == (12, 12) and rows["one"]["rf_aligned"] is True


def test_adaptive_receptive_field_non_divisible_is_marked():
    spec = {"input": [3, 13, 5], "layers": [
        {"name": "ada", "type": "adaptive_max_pool2d", "output_size": [7, 3]},
        {"name": "conv", "type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},
        {"name": "conv2", "type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1,
         "inputs": "ada"},
        {"name": "sum", "type": "add", "inputs": ["conv", "conv2"]},
        {"name": "mixed", "type": "adaptive_avg_pool2d", "output_size": 3, "inputs": "input"}]}
    rows = _rows(spec)
    # 13 -> 7: windows 2, 3, 3, 3, 3, 3, 2 starting 0, 1, 3, 5, 7, 9, 11 (largest 3, steps 1
    # or 2); 5 -> 3: windows 2, 3, 2 starting 0, 1, 3 (largest 3, steps 1 and 2)
    assert rows["ada"]["rf_size"] == (3, 3) and rows["ada"]["rf_stride"] == (2, 2)
    assert rows["ada"]["rf_aligned"] is False
    # downstream the flag stays false, also through a merge whose two paths agree with each
    # other; a 3x3 conv at jump 2 gives 3 + 2 * 2 = 7, the largest field of any of its
    # outputs: rows [start_{i-1}, end_{i+1}) of the 13 -> 7 windows, 7 wide at i = 2 (1 to 8)
    assert rows["conv"]["rf_aligned"] is False and rows["sum"]["rf_aligned"] is False
    assert rows["conv"]["rf_size"] == rows["sum"]["rf_size"] == (7, 7)
    windows = adaptive_windows(13, 7)
    assert max(windows[i + 1][1] - windows[i - 1][0] for i in range(1, 6)) == 7
    # 13 -> 3 along H is exact (windows of 5 at a step of 4), 5 -> 3 along W is not
    assert rows["mixed"]["rf_size"] == (5, 3) and rows["mixed"]["rf_stride"] == (4, 2)
    assert rows["mixed"]["rf_aligned"] is False


def test_adaptive_receptive_field_overlapping_equal_windows_is_exact():
    # 13 -> 3 on both axes: windows [0, 5), [4, 9), [8, 13), a 5x5 pool at stride 4
    spec = {"input": [1, 13, 13], "layers": [
        {"name": "ada", "type": "adaptive_max_pool2d", "output_size": 3},
        {"name": "ref", "type": "max_pool2d", "kernel_size": 5, "stride": 4, "inputs": "input"}]}
    rows = _rows(spec)
    for key in ("output_shape", "rf_size", "rf_stride", "rf_offset", "rf_aligned"):
        assert rows["ada"][key] == rows["ref"][key], key
    assert rows["ada"]["rf_size"] == (5, 5) and rows["ada"]["rf_aligned"] is True


def test_split_of_the_height_shifts_the_field():
    # the second of two halves of a 6-row image: output row r is input row 3 + r
    spec = {"input": [1, 6, 4], "layers": [
        {"name": "bottom", "type": "split", "dim": 2, "chunks": 2, "index": 1},
        {"name": "ch", "type": "split", "sizes": [1], "index": 0, "inputs": "input"}]}
    rows = _rows(spec)
    assert rows["bottom"]["rf_offset"] == (3.0, 0.0) and rows["bottom"]["rf_size"] == (1, 1)
    assert rows["ch"]["rf_offset"] == (0.0, 0.0)


# ------------------------------------------------------------------------- errors

@pytest.mark.parametrize("layer, says, field", [
    ({"type": "permute", "dims": [1, 0, 2, 3]}, "moves the batch axis", "dims"),
    ({"type": "permute", "dims": [0, 1, 2]}, "is not a permutation of the 4 axes", "dims"),
    ({"type": "permute", "dims": [0, 1, 1, 2]}, "is not a permutation", "dims"),
    ({"type": "split", "index": 0}, "exactly one of chunks", "chunks"),
    ({"type": "split", "chunks": 2, "sizes": [2, 2], "index": 0}, "exactly one of chunks", "sizes"),
    ({"type": "split", "chunks": 4, "index": 3}, "index 3 is out of range: chunks 4 of an axis of 5 "
                                                 "give 3 pieces", "index"),
    ({"type": "split", "sizes": [2, 3], "index": 2}, "give 2 pieces", "index"),
    ({"type": "split", "sizes": [2, 2], "index": 0}, "sum to 4, but the axis has 5", "sizes"),
    ({"type": "split", "chunks": 2, "index": 0, "dim": 0}, "cannot split the batch", "dim"),
    ({"type": "channel_shuffle", "groups": 2}, "5 channels do not divide into 2 groups", "groups"),
    ({"type": "stochastic_depth", "p": 1.5}, "expected a number in [0.0, 1.0]", "p"),
    ({"type": "stochastic_depth", "p": 0.1, "mode": "rows"}, "expected one of", "mode"),
    ({"type": "adaptive_avg_pool2d", "output_size": 0}, "expected an integer or a pair", "output_size"),
    ({"type": "adaptive_max_pool2d", "output_size": [2, 2, 2]}, "expected an integer or a pair",
     "output_size"),
    ({"type": "linear", "out_features": 3}, "would act on its last axis, of size 6", "in_features"),
    ({"type": "linear", "in_features": 5, "out_features": 3}, "declared 5 but the input (1, 5, 4, 6)",
     "in_features"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_errors_name_the_field(layer, says, field):
    spec = {"input": [5, 4, 6], "layers": [{"name": "x", **layer}]}
    with pytest.raises(ArchstatError) as info:
        archstat.analyze(spec)
    assert says in str(info.value) and info.value.field == field and info.value.layer == "x"


def test_linear_on_an_image_hints_at_flatten():
    spec = {"input": [5, 4, 6], "layers": [{"name": "fc", "type": "linear", "out_features": 3}]}
    with pytest.raises(ArchstatError) as info:
        archstat.analyze(spec)
    assert "a flatten is probably missing" in str(info.value)
    assert "insert a 'flatten' layer before it (in_features 120)" in info.value.hint


# ------------------------------------------------- a ShuffleNet-style unit, end to end

UNIT = {"input": [4, 9, 9], "layers": [
    {"name": "keep", "type": "split", "chunks": 2, "index": 0},
    {"name": "half", "type": "split", "chunks": 2, "index": 1, "inputs": "input"},
    {"name": "conv", "type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},
    {"name": "sd", "type": "stochastic_depth", "p": 0.5},
    {"name": "cat", "type": "concat", "inputs": ["keep", "sd"]},
    {"name": "shuffle", "type": "channel_shuffle", "groups": 2},
    {"name": "ada", "type": "adaptive_avg_pool2d", "output_size": [5, 4]},
    {"name": "nhwc", "type": "permute", "dims": [0, 2, 3, 1]},
    {"name": "fc", "type": "linear", "in_features": 4, "out_features": 3},
    {"name": "nchw", "type": "permute", "dims": [0, 3, 1, 2]},
    {"name": "amax", "type": "adaptive_max_pool2d", "output_size": [3, None]},
    {"name": "flat", "type": "flatten"}]}


def _unit_reference(x, params):
    """The unit composed from the naive references (inference: stochastic depth is the identity)."""
    keep, half = split_naive(x, 1, 0, chunks=2), split_naive(x, 1, 1, chunks=2)
    conv = conv2d_naive(half, params["conv"]["weight"], params["conv"]["bias"], padding=1)
    shuffled = channel_shuffle_naive(np.concatenate([keep, conv], axis=1), 2)
    nhwc = permute_naive(adaptive_avg_pool2d_naive(shuffled, (5, 4)), (0, 2, 3, 1))
    fc = linear_nd_naive(nhwc, params["fc"]["weight"], params["fc"]["bias"])
    pooled, _ = adaptive_max_pool2d_naive(permute_naive(fc, (0, 3, 1, 2)), (3, None))
    return pooled.reshape(len(x), -1)


def test_shufflenet_unit_engine_agrees_with_analysis_and_naive():
    model = archstat.load(UNIT)
    shapes = {r["name"]: r["output_shape"] for r in archstat.analyze(model, batch=2).rows()}
    assert shapes["ada"] == (2, 4, 5, 4) and shapes["fc"] == (2, 5, 4, 3) and shapes["flat"] == (2, 36)
    x = _rng(18).standard_normal((2, 4, 9, 9))
    ex = engine.Executor(model, seed=3, dtype="float64")
    seen = {}
    y = ex.forward(x, hook=lambda name, out, live: seen.__setitem__(name, out.shape))
    assert seen == shapes
    np.testing.assert_allclose(y, _unit_reference(x, ex.params), rtol=1e-10, atol=1e-12)
    assert np.array_equal(archstat.run(UNIT, x, seed=3, dtype="float64"), y)


def test_shufflenet_unit_backward_by_finite_differences():
    # inference function (stochastic depth off), float64: the input gradient at sampled
    # pixels against centred differences of sum(y * dy)
    x = _distinct((2, 4, 9, 9), 19)
    dy = _rng(20).standard_normal((2, 36))
    res = archstat.backward(UNIT, x, dy=dy, train=False, seed=3, dtype="float64")
    assert res.input_grad.shape == x.shape
    assert {k: {p: g.shape for p, g in v.items()} for k, v in res.grads.items()} == {
        "conv": {"weight": (2, 2, 3, 3), "bias": (2,)}, "fc": {"weight": (3, 4), "bias": (3,)}}
    ex = engine.Executor(UNIT, seed=3, dtype="float64")
    indices = sample_indices(x.shape, 40, _rng(21))
    numeric = numerical_gradient_at(lambda: float(np.sum(ex.forward(x) * dy)), x, indices)
    analytic = np.array([res.input_grad[i] for i in indices])
    assert rel_error(numeric, analytic) < 1e-7
    # training: stochastic depth draws a row mask; gradients still have the input's shape
    trained = archstat.backward(UNIT, x, dy=dy, train=True, seed=3, dtype="float64")
    assert trained.input_grad.shape == x.shape and np.isfinite(trained.input_grad).all()
