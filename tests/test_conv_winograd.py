"""Winograd F(2x2,3x3) and F(4x4,3x3) (layers/conv_winograd.py) against the naive loops, the
im2col conv, finite differences and PyTorch; its float32 error, measured and bounded; and
the clear error when a layer is not 3x3 stride 1."""
from __future__ import annotations

import numpy as np
import pytest

from archstat import engine
from archstat.errors import ArchstatError
from archstat.layers import im2col as win
from archstat.layers import conv_winograd as wino
from archstat.layers.conv_winograd import TRANSFORMS

from naive_window import conv2d_backward_naive, conv2d_naive, numeric_grad, rel_error

ALGOS = ["winograd2", "winograd4"]

# (N, C, H, W, K, padding): odd sizes, so that the last tile row/column is partial for both
# tiles; C and K not multiples of anything; pad 0, 1, 2 and 3 (pad 3: the dx dual crops dy)
CASES = [
    (2, 3, 7, 9, 5, 1),
    (1, 5, 11, 6, 3, 0),
    (3, 2, 5, 5, 7, 1),
    (1, 3, 3, 4, 2, 0),      # a single output row: one partial tile
    (2, 3, 4, 3, 2, "same"),
    (1, 2, 8, 7, 3, 2),
    (1, 2, 6, 5, 3, 3),
]


def _case(case, dtype=np.float64, seed=0):
    n, c, h, w, k, p = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((k, c, 3, 3)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    return x, wt, b, p


@pytest.fixture(params=["one block", "row bands", "image blocks", "filter chunks"])
def blocking(request, monkeypatch):
    """Default blocks, and tiny ones: one tile row per block, or 1-2 whole images per block;
    or the filters transformed a few output channels at a time, over row bands."""
    if request.param in ("row bands", "filter chunks"):
        monkeypatch.setattr(wino, "BLOCK_BYTES", 1)
        monkeypatch.setattr(wino, "MIN_BLOCK_TILES", 1)
    elif request.param == "image blocks":
        monkeypatch.setattr(wino, "BLOCK_BYTES", 1)
        monkeypatch.setattr(wino, "MIN_BLOCK_TILES", 8)   # F4 on 5x5: 2 of 3 images
    if request.param == "filter chunks":
        monkeypatch.setattr(wino, "FILTER_CHUNK_BYTES", 1)   # one output channel per chunk
    return request.param


@pytest.mark.parametrize("tile", sorted(TRANSFORMS))
def test_one_dimensional_minimal_filtering_identity(tile):
    """Lavin & Gray eq. 7, F(m, 3): A^T [(G g) ⊙ (B^T d)] is the valid correlation of d with g."""
    t = TRANSFORMS[tile]
    rng = np.random.default_rng(tile)
    d, g = rng.standard_normal(t.alpha), rng.standard_normal(3)
    expected = [d[i:i + 3] @ g for i in range(t.m)]
    np.testing.assert_allclose(t.AT @ ((t.G @ g) * (t.BT @ d)), expected, rtol=1e-13, atol=1e-13)
    # F(2,3) by hand: d = (1, 2, 3, 4), g = (1, 0, -1): y = (1 - 3, 2 - 4) = (-2, -2)
    if tile == 2:
        np.testing.assert_allclose(t.AT @ ((t.G @ [1, 0, -1]) * (t.BT @ [1, 2, 3, 4])), [-2, -2])


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("case", CASES, ids=[f"c{i}" for i in range(len(CASES))])
def test_winograd_matches_naive_forward_and_backward(case, algorithm, blocking):
    x, w, b, p = _case(case)
    y = engine.conv2d(x, w, b, padding=p, algorithm=algorithm)
    ref = conv2d_naive(x, w, b, padding=p)
    assert y.shape == ref.shape and y.dtype == np.float64
    np.testing.assert_allclose(y, ref, rtol=1e-11, atol=1e-11)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    dx, dw, db = engine.conv2d_backward(dy, x, w, padding=p, algorithm=algorithm)
    ndx, ndw, ndb = conv2d_backward_naive(dy, x, w, padding=p)
    np.testing.assert_allclose(dx, ndx, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(dw, ndw, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(db, ndb, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("pads", [((1, 2), (0, 1)), ((0, 3), (2, 0))])
def test_asymmetric_pads_match_naive_on_the_padded_input(pads, algorithm, blocking):
    x, w, b, _ = _case((2, 3, 6, 7, 4, 0), seed=5)
    xp = np.pad(x, ((0, 0), (0, 0)) + pads)
    y = engine.conv2d(x, w, b, padding=pads, algorithm=algorithm)
    np.testing.assert_allclose(y, conv2d_naive(xp, w, b), rtol=1e-11, atol=1e-11)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    dx, dw, _ = engine.conv2d_backward(dy, x, w, padding=pads, algorithm=algorithm)
    ndxp, ndw, _ = conv2d_backward_naive(dy, xp, w)
    (t, _), (l, _) = pads
    np.testing.assert_allclose(dx, ndxp[:, :, t:t + 6, l:l + 7], rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(dw, ndw, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("algorithm", ALGOS)
def test_winograd_agrees_with_im2col_on_a_larger_case(algorithm, blocking):
    x, w, b, _ = _case((3, 17, 13, 15, 19, 1), seed=7)
    np.testing.assert_allclose(engine.conv2d(x, w, b, padding=1, algorithm=algorithm),
                               engine.conv2d(x, w, b, padding=1), rtol=1e-10, atol=1e-10)
    dy = np.random.default_rng(8).standard_normal((3, 19, 13, 15))
    for got, want in zip(engine.conv2d_backward(dy, x, w, padding=1, algorithm=algorithm),
                         engine.conv2d_backward(dy, x, w, padding=1)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_default_algorithm_is_im2col_unchanged():
    x, w, b, _ = _case((2, 3, 7, 9, 5, 1), dtype=np.float32)
    np.testing.assert_array_equal(engine.conv2d(x, w, b, padding=1),
                                  engine.conv2d(x, w, b, padding=1, algorithm="im2col"))


@pytest.mark.parametrize("algorithm", ALGOS)
def test_winograd_gradients_by_finite_differences(algorithm):
    x, w, b, _ = _case((1, 2, 5, 6, 3, 1), seed=3)
    kw = dict(padding=1, algorithm=algorithm)
    dy = np.random.default_rng(4).standard_normal((1, 3, 5, 6))
    dx, dw, db = engine.conv2d_backward(dy, x, w, **kw)
    assert rel_error(dx, numeric_grad(lambda v: engine.conv2d(v, w, b, **kw), x, dy)) < 1e-8
    assert rel_error(dw, numeric_grad(lambda v: engine.conv2d(x, v, b, **kw), w, dy)) < 1e-8
    assert rel_error(db, numeric_grad(lambda v: engine.conv2d(x, w, v, **kw), b, dy)) < 1e-8


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-11), (np.float32, 2e-4)])
@pytest.mark.parametrize("algorithm", ALGOS)
def test_winograd_matches_torch(algorithm, dtype, tol):
    torch = pytest.importorskip("torch")
    x, w, b, _ = _case((2, 6, 9, 10, 5, 1), dtype=dtype, seed=11)
    dy = np.random.default_rng(12).standard_normal((2, 5, 9, 10)).astype(dtype)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, padding=1)
    ty.backward(torch.tensor(dy))
    y = engine.conv2d(x, w, b, padding=1, algorithm=algorithm)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
    for got, want in zip(engine.conv2d_backward(dy, x, w, padding=1, algorithm=algorithm),
                         (tx.grad, tw.grad, tb.grad)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want.numpy(), rtol=tol, atol=tol * 10)


#: float32 error bounds: max |y32 - y64| / rms(y64) over forward, dx and dw, on VGG-16-like
#: data (normal inputs and upstream gradients, He-initialised weights, pad 1). Measured
#: (2 images at 32x32 ... 14x14, C = K = 3..512): im2col 0.8e-6 to 4.5e-6; winograd2
#: 0.8e-6 to 5.2e-6; winograd4 0.6e-5 to 7.9e-5 (F(4x4)'s transforms have entries up to 8:
#: about 15x F(2x2)'s error). Bounds: about 4x the largest measured value.
ERROR_BOUND = {"im2col": 2e-5, "winograd2": 2e-5, "winograd4": 3e-4}


@pytest.mark.parametrize("c, h", [(3, 16), (64, 16), (256, 8)])
def test_float32_error_on_vgg_like_data_is_bounded(c, h):
    rng = np.random.default_rng(c)
    x = rng.standard_normal((2, c, h, h))
    w = rng.standard_normal((64, c, 3, 3)) * np.sqrt(2 / (9 * c))   # He et al. 2015
    dy = rng.standard_normal((2, 64, h, h))
    refs = (engine.conv2d(x, w, padding=1),) + engine.conv2d_backward(dy, x, w, padding=1)[:2]
    x32, w32, dy32 = (a.astype(np.float32) for a in (x, w, dy))
    errors = {}
    for algorithm, bound in ERROR_BOUND.items():
        got = (engine.conv2d(x32, w32, padding=1, algorithm=algorithm),) + \
            engine.conv2d_backward(dy32, x32, w32, padding=1, algorithm=algorithm)[:2]
        errors[algorithm] = max(np.abs(g - r).max() / np.sqrt(np.mean(r ** 2))
                                for g, r in zip(got, refs))
        assert errors[algorithm] < bound, (algorithm, errors[algorithm])
        # float64 inputs agree with the float64 reference to rounding
        exact = engine.conv2d(x, w, padding=1, algorithm=algorithm)
        assert np.abs(exact - refs[0]).max() / np.abs(refs[0]).max() < 1e-12
    # the larger tile loses more: F(4x4) several times F(2x2)'s error
    assert errors["winograd4"] > 3 * errors["winograd2"]


@pytest.mark.parametrize("kwargs, field", [
    (dict(w_shape=(4, 3, 5, 5)), "kernel_size"),
    (dict(w_shape=(4, 3, 1, 3)), "kernel_size"),
    (dict(stride=2), "stride"),
    (dict(dilation=(1, 2)), "dilation"),
    (dict(w_shape=(6, 1, 3, 3), groups=3), "groups"),
    (dict(padding_mode="reflect"), "padding_mode"),
])
@pytest.mark.parametrize("algorithm", ALGOS)
def test_an_inapplicable_layer_is_a_clear_error(kwargs, field, algorithm):
    kwargs = dict(kwargs)
    x = np.ones((1, 3, 8, 8), np.float32)
    w = np.ones(kwargs.pop("w_shape", (4, 3, 3, 3)), np.float32)
    with pytest.raises(ArchstatError) as err:
        engine.conv2d(x, w, padding=1, algorithm=algorithm, **kwargs)
    text = str(err.value)
    assert f"field '{field}'" in text and f"algorithm '{algorithm}' needs" in text
    assert "im2col" in text and "\n" not in text
    y = engine.conv2d(x, w, padding=1, **kwargs)   # im2col still runs it
    with pytest.raises(ArchstatError, match=f"field '{field}'"):
        engine.conv2d_backward(np.ones_like(y), x, w, padding=1, algorithm=algorithm, **kwargs)


def test_an_unknown_algorithm_is_a_clear_error():
    x, w = np.ones((1, 3, 8, 8)), np.ones((4, 3, 3, 3))
    with pytest.raises(ArchstatError, match="field 'algorithm': unknown algorithm 'winograd3'; "
                                            "use one of im2col, winograd2, winograd4"):
        engine.conv2d(x, w, algorithm="winograd3")
