"""The non-window kernels: fast versus the naive loop references of naive_ops.py on seeded
random shapes, float64 centred finite-difference checks of every backward (weighted by a
random upstream gradient, as CS231n's gradient_check), dtypes, and edge cases."""
from __future__ import annotations

import numpy as np
import pytest

import archstat.engine as engine
from archstat.errors import ArchstatError
from archstat.layers import get
from archstat.layers.registry import RunContext
from naive_ops import (add_naive, batch_norm_backward_naive, batch_norm_naive, concat_naive, cross_entropy_naive,
                       dropout_naive, flatten_naive, linear_naive, lrn_naive, numerical_gradient,
                       rel_error, relu_naive, sigmoid_naive, softmax_naive, tanh_naive)

SEEDS = range(4)
FAMILIES = ("linear", "activation", "norm", "merge", "shape", "loss")


def _rng(seed, salt=0):
    return np.random.default_rng([seed, salt])


def _image(rng, dtype=np.float64):
    """A random (N, C, H, W) array with small random extents."""
    shape = (int(rng.integers(1, 4)), int(rng.integers(1, 7)), int(rng.integers(1, 5)),
             int(rng.integers(1, 5)))
    return rng.standard_normal(shape).astype(dtype)


def _check_grad(f, x, analytic, df, tol=1e-7):
    num = numerical_gradient(f, x, df)
    assert rel_error(num, analytic) < tol, rel_error(num, analytic)


# ----------------------------------------------------------------- the registry side

def test_engine_reexports_every_kernel_and_the_list_is_derived():
    """The kernels are marked where they are defined (@kernel); archstat.engine re-exports
    them all, every forward has its backward, and a layer type's same-named function is one."""
    import importlib
    import inspect
    from archstat.layers import all_types
    from archstat.layers.registry import kernels
    found = kernels()
    assert len(found) >= 65 and {"conv2d", "hardswish", "adaptive_avg_pool2d_backward", "channel_shuffle",
                                 "softmax_cross_entropy"} <= set(found)
    for name, fn in found.items():
        assert getattr(engine, name) is fn and name in dir(engine) and fn.__name__ == name
        if not name.endswith("_backward") and name != "softmax_cross_entropy":
            assert name + "_backward" in found, name
    for t in all_types().values():
        module = importlib.import_module(type(t).__module__)
        same = getattr(module, t.name, None)
        if inspect.isfunction(same):
            assert found.get(t.name) is same, f"{t.name}: its kernel is not marked @kernel"


@pytest.mark.parametrize("type_name", ["linear", "relu", "sigmoid", "tanh", "lrn", "batch_norm2d",
                                       "concat", "add", "flatten", "dropout", "softmax"])
def test_layer_kernels_match_shape_rule_and_param_names(type_name):
    # forward's output has the shape rule's shape; backward returns one gradient per input
    # (in its shape) and exactly the parameters param_shapes lists
    rng = _rng(7)
    ltype = get(type_name)
    raw = {"linear": {"out_features": 3}, "lrn": {"size": 3}}.get(type_name, {})
    attrs = ltype.normalise(raw)
    shape = (2, 6) if type_name == "linear" else (2, 4, 3, 3)
    n_in = ltype.min_inputs
    xs = [rng.standard_normal(shape) for _ in range(n_in)]
    in_shapes = [x.shape for x in xs]
    params = {k: rng.standard_normal(s) for k, s in ltype.param_shapes(in_shapes, attrs).items()}
    buffers = {k: np.abs(rng.standard_normal(s)) for k, s in ltype.buffer_shapes(in_shapes, attrs).items()}
    y, cache = ltype.forward(xs, params, attrs, RunContext(train=True, rng=rng, buffers=buffers))
    assert y.shape == ltype.output_shape(in_shapes, attrs)
    dxs, dparams = ltype.backward(rng.standard_normal(y.shape), cache)
    assert [dx.shape for dx in dxs] == in_shapes
    assert {k: v.shape for k, v in dparams.items()} == {k: v.shape for k, v in params.items()}


# ----------------------------------------------------------------------------- linear

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_naive_and_gradients(seed, bias):
    rng = _rng(seed, 1)
    n, fin, fout = (int(v) for v in rng.integers(1, 6, size=3))
    x, w = rng.standard_normal((n, fin)), rng.standard_normal((fout, fin))
    b = rng.standard_normal(fout) if bias else None
    np.testing.assert_allclose(engine.linear(x, w, b), linear_naive(x, w, b), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal((n, fout))
    dx, dw, db = engine.linear_backward(dy, x, w)
    _check_grad(lambda: engine.linear(x, w, b), x, dx, dy)
    _check_grad(lambda: engine.linear(x, w, b), w, dw, dy)
    if bias:
        _check_grad(lambda: engine.linear(x, w, b), b, db, dy)


# ------------------------------------------------------------------------ activations

ACTIVATIONS = [("relu", relu_naive), ("sigmoid", sigmoid_naive), ("tanh", tanh_naive)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name,naive", ACTIVATIONS)
def test_activation_matches_naive_and_gradient(seed, name, naive):
    rng = _rng(seed, 2)
    # moderate inputs: where tanh saturates (|x| > 5) its derivative drowns in rounding
    x = _image(rng) * 1.5
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU's kink away from the finite-difference step
    fn, grad = getattr(engine, name), getattr(engine, name + "_backward")
    y = fn(x)
    np.testing.assert_allclose(y, naive(x), rtol=1e-12, atol=1e-15)
    dy = rng.standard_normal(x.shape)
    _check_grad(lambda: fn(x), x, grad(dy, y), dy)


def test_relu_in_place_and_subgradient():
    x = np.array([-2.0, 0.0, 3.0])
    y = engine.relu(x, out=x)
    assert y is x and x.tolist() == [0.0, 0.0, 3.0]
    # at 0 the subgradient is 0, as PyTorch
    assert engine.relu_backward(np.ones(3), np.array([-1.0, 0.0, 2.0])).tolist() == [0, 0, 1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_in_pieces_gives_numpys_maximum_bit_for_bit(dtype):
    # several pieces of zeros-against-x (and a last, short one), in place, into a new array,
    # and on a strided view; the specials: NaN of both signs, -0 -> +0, infinities
    from archstat.layers.special import BLOCK
    rng = np.random.default_rng(3)
    x = rng.standard_normal(3 * BLOCK + 77).astype(dtype)
    x[:6] = [np.nan, -np.nan, -0.0, 0.0, np.inf, -np.inf]
    want = np.maximum(x, 0)
    for got in (engine.relu(x), engine.relu(x.copy(), out=None), engine.relu(x[::2]), engine.relu(x.copy(), out=x.copy())):
        ref = want[::2] if got.size != x.size else want
        assert np.array_equal(got.view(f"i{x.itemsize}"), ref.view(f"i{x.itemsize}"))
    z = x.copy()
    assert engine.relu(z, out=z) is z and np.array_equal(z, want, equal_nan=True)
    assert not np.signbit(z[2]) and np.isnan(z[:2]).all()
    engine.relu(-np.abs(rng.standard_normal(BLOCK).astype(dtype)))   # the zeros stay zeros
    assert np.array_equal(engine.relu(np.ones(5, dtype)), np.ones(5))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_gradients_select_dy_and_never_multiply_it(dtype):
    # dy passes bit for bit where y > 0 (0 < y < 6 for relu6); elsewhere +0.0, even for an
    # inf or NaN dy (a select, as PyTorch's threshold/hardtanh backward; inf * 0 would be NaN)
    y = np.array([-1.0, 0.0, 2.0, 6.0, 7.0, 3.0], dtype)
    dy = np.array([np.inf, np.nan, -2.5, np.nan, -np.inf, -0.0], dtype)
    for fn, expected in ((engine.relu_backward, [0, 0, -2.5, np.nan, -np.inf, -0.0]),
                         (engine.relu6_backward, [0, 0, -2.5, 0, 0, -0.0])):
        dx = fn(dy, y)
        assert dx.dtype == dtype and dx.shape == y.shape
        np.testing.assert_array_equal(dx, np.array(expected, dtype))
        assert np.signbit(dx).tolist() == [False, False, True, False, fn is engine.relu_backward,
                                           True]


def test_sigmoid_is_stable_at_extremes():
    x = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = engine.sigmoid(x)
    assert y.dtype == np.float32 and np.all(np.isfinite(y))
    assert y[0] == 0 and y[2] == 0.5 and y[4] == 1
    # tiny outputs keep their relative precision: sigmoid(-40) = e^-40 / (1 + e^-40)
    assert y[1] == pytest.approx(np.exp(-40.0), rel=1e-6)


# -------------------------------------------------------------------------------- LRN

@pytest.mark.parametrize("seed", SEEDS)
def test_lrn_matches_naive_and_gradient(seed):
    rng = _rng(seed, 3)
    x = _image(rng)
    size = int(rng.integers(1, 7))  # odd and even sizes, also larger than C
    alpha, beta, k = float(rng.uniform(0.01, 1)), float(rng.uniform(0.3, 1.2)), float(rng.uniform(0.5, 2))
    y = engine.lrn(x, size, alpha, beta, k)
    np.testing.assert_allclose(y, lrn_naive(x, size, alpha, beta, k), rtol=1e-12, atol=1e-14)
    dy = rng.standard_normal(x.shape)
    _check_grad(lambda: engine.lrn(x, size, alpha, beta, k), x,
                engine.lrn_backward(dy, x, size, alpha, beta, k), dy)


def test_lrn_on_rank_3_input():
    # torch's local_response_norm also takes (N, C, L)
    x = _rng(0, 4).standard_normal((2, 5, 3))
    np.testing.assert_allclose(engine.lrn(x, 3, 0.1), lrn_naive(x, 3, 0.1), rtol=1e-12)


# ------------------------------------------------------------------------- batch norm

def _bn_args(rng, channels):
    return (rng.standard_normal(channels), rng.standard_normal(channels),
            rng.standard_normal(channels), rng.uniform(0.5, 2, channels))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_training_matches_naive_and_gradients(seed, affine):
    rng = _rng(seed, 5)
    x = _image(rng)
    x = np.concatenate([x, x[:1] * 2 + 1])  # at least 2 values per channel
    c = x.shape[1]
    w, b, rm, rv = _bn_args(rng, c)
    if not affine:
        w = b = None
    rm0, rv0 = rm.copy(), rv.copy()
    y = engine.batch_norm2d(x, w, b, rm, rv, training=True, momentum=0.3, eps=1e-3)
    ref, mean, var = batch_norm_naive(x, w, b, eps=1e-3)
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)
    # running stats move towards the batch mean and the *unbiased* variance (PyTorch)
    m = x.size // c
    np.testing.assert_allclose(rm, 0.7 * rm0 + 0.3 * mean, rtol=1e-12)
    np.testing.assert_allclose(rv, 0.7 * rv0 + 0.3 * var * m / (m - 1), rtol=1e-12)
    dy = rng.standard_normal(x.shape)
    dx, dw, db = engine.batch_norm2d_backward(dy, x, w, rm, rv, training=True, eps=1e-3)

    def f():  # the running statistics do not affect a training forward
        return engine.batch_norm2d(x, w, b, None, None, training=True, eps=1e-3)
    _check_grad(f, x, dx, dy, tol=1e-6)
    if affine:
        _check_grad(f, w, dw, dy)
        _check_grad(f, b, db, dy)


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_norm_inference_matches_naive_and_gradients(seed):
    rng = _rng(seed, 6)
    x = _image(rng)
    w, b, rm, rv = _bn_args(rng, x.shape[1])
    rm0 = rm.copy()
    y = engine.batch_norm2d(x, w, b, rm, rv, training=False)
    np.testing.assert_array_equal(rm, rm0)  # inference leaves the running statistics alone
    np.testing.assert_allclose(y, batch_norm_naive(x, w, b, rm, rv)[0], rtol=1e-10, atol=1e-12)
    dy = rng.standard_normal(x.shape)
    dx, dw, db = engine.batch_norm2d_backward(dy, x, w, rm, rv, training=False)

    def f():
        return engine.batch_norm2d(x, w, b, rm, rv, training=False)
    for arr, grad in ((x, dx), (w, dw), (b, db)):
        _check_grad(f, arr, grad, dy)


@pytest.mark.parametrize("short_rows", [0, 1024], ids=["per-channel columns", "repeated rows"])
@pytest.mark.parametrize("block_bytes", [1, 64, 200, 2**20])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_blocks_and_offset_float32_match_naive(monkeypatch, block_bytes, training,
                                                          short_rows):
    """The blocked kernels (one channel of one image per block, a few channels, several
    images, everything at once; per-channel operands as columns or repeated rows) against
    the naive loops, in float32 on data whose mean (100) is 200 times its spread: the
    statistics and the folded passes must not cancel."""
    from archstat.layers import norm_kernels
    monkeypatch.setattr(norm_kernels, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(norm_kernels, "SHORT_ROWS", short_rows)
    rng = _rng(7, 17)
    x = (100 + 0.5 * rng.standard_normal((3, 5, 4, 6))).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    w, b = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    rm = (100 + 0.1 * rng.standard_normal(5)).astype(np.float32)
    rv = rng.uniform(0.2, 0.3, 5).astype(np.float32)
    stats = (None, None) if training else (rm, rv)
    for xs, dys in ((x, dy), (x[:1], dy[:1])):       # several images, and one
        y = engine.batch_norm2d(xs, w, b, rm.copy(), rv.copy(), training=training)
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, batch_norm_naive(xs, w, b, *stats)[0], rtol=1e-4, atol=1e-4)
        dx, dw, db = engine.batch_norm2d_backward(dys, xs, w, rm, rv, training=training)
        ref = batch_norm_backward_naive(dys, xs, w, *stats)
        for got, want in zip((dx, dw, db), ref):
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_batch_norm_backward_by_hand():
    """One channel, x = (1, 3), dy = (1, 0), eps 0, gamma 2: mu = 2, sigma^2 = 1, xhat =
    (-1, 1); dbias = 1, dweight = -1; dx = 2 * (dy - 1/2 - xhat * (-1) / 2) = 2 * (1 - 1/2 - 1/2,
    0 - 1/2 + 1/2) = (0, 0). With dy = (1, 1): dbias 2, dweight 0, dx = 2 * (1 - 1) = (0, 0);
    with dy = (0, 2): dbias 2, dweight 2, dx = 2 * ((0, 2) - 1 - (-1, 1)) = (0, 0). With
    dy = (1, -1): dbias 0, dweight -2, dx = 2 * ((1, -1) - 0 + (-1, 1)) = (0, 0) too: a
    two-value channel always normalises to (-1, 1), whatever x, so its input gradient is 0.
    Three values x = (0, 0, 3), dy = (3, 0, 0): mu 1, sigma^2 2, s = sqrt 2, xhat = (-1, -1, 2)/s;
    dbias 3, dweight -3/s; dx = 2/s * ((3, 0, 0) - 1 - xhat * (-1/s)) = 2/s * (2 - 1/2, -1 - 1/2,
    -1 + 1) = sqrt 2 * (3/2, -3/2, 0)."""
    x = np.array([0.0, 0.0, 3.0]).reshape(1, 1, 1, 3)
    dy = np.array([3.0, 0.0, 0.0]).reshape(x.shape)
    dx, dw, db = engine.batch_norm2d_backward(dy, x, np.array([2.0]), None, None, True, eps=0.0)
    np.testing.assert_allclose(dx.ravel(), np.sqrt(2) * np.array([1.5, -1.5, 0]), atol=1e-12)
    np.testing.assert_allclose(dw, [-3 / np.sqrt(2)], rtol=1e-12)
    np.testing.assert_allclose(db, [3.0], rtol=1e-12)
    x2 = np.array([1.0, 3.0]).reshape(1, 1, 1, 2)
    dx2, dw2, db2 = engine.batch_norm2d_backward(np.array([1.0, 0.0]).reshape(x2.shape), x2,
                                                 np.array([2.0]), None, None, True, eps=0.0)
    np.testing.assert_allclose(dx2.ravel(), [0, 0], atol=1e-12)
    np.testing.assert_allclose((dw2, db2), ([-1.0], [1.0]), rtol=1e-12)


def test_batch_norm_needs_two_values_per_channel_in_training():
    with pytest.raises(ArchstatError, match="more than one value per channel"):
        engine.batch_norm2d(np.ones((1, 3, 1, 1)), None, None, None, None, training=True)


# ----------------------------------------------------------------------------- dropout

@pytest.mark.parametrize("seed", SEEDS)
def test_dropout_matches_naive_and_gradient(seed):
    rng = _rng(seed, 7)
    x = _image(rng)
    p = float(rng.uniform(0.1, 0.9))
    y, mask = engine.dropout(x, p, training=True, rng=np.random.default_rng(seed))
    assert mask.dtype == bool and mask.shape == x.shape
    np.testing.assert_allclose(y, dropout_naive(x, mask, p), rtol=1e-12)
    # the same seed draws the same mask
    np.testing.assert_array_equal(engine.dropout(x, p, True, np.random.default_rng(seed))[1], mask)
    dy = rng.standard_normal(x.shape)
    _check_grad(lambda: x * mask / (1 - p), x, engine.dropout_backward(dy, mask, p), dy)


def test_dropout_keep_rate_inference_and_extremes():
    x = np.ones((200, 50))
    y, mask = engine.dropout(x, 0.3, True, np.random.default_rng(0))
    assert abs(mask.mean() - 0.7) < 0.01  # 10000 Bernoulli(0.7) draws: sd 0.0046
    assert set(np.unique(y)) == {0.0, 1 / 0.7}
    y, mask = engine.dropout(x, 0.3, False, None)
    assert y is x and mask is None  # identity at inference: the input itself, no copy
    assert engine.dropout_backward(x, None, 0.3) is x
    y, mask = engine.dropout(x, 1.0, True, 0)
    assert not y.any() and not mask.any()  # p = 1 drops everything (no division by zero)
    y, _ = engine.dropout(x, 0.0, True, 0)
    np.testing.assert_array_equal(y, x)
    z = x.copy()
    y, mask = engine.dropout(z, 0.5, True, 0, inplace=True)
    assert y is z


# ----------------------------------------------------------------------------- softmax

@pytest.mark.parametrize("seed", SEEDS)
def test_softmax_matches_naive_and_gradient(seed):
    rng = _rng(seed, 8)
    x = _image(rng) * 4
    dim = int(rng.integers(1, 4))
    y = engine.softmax(x, dim)
    np.testing.assert_allclose(y, softmax_naive(x, dim), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(y.sum(axis=dim), 1.0)
    dy = rng.standard_normal(x.shape)
    _check_grad(lambda: engine.softmax(x, dim), x, engine.softmax_backward(dy, y, dim), dy)


def test_softmax_does_not_overflow():
    x = np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = engine.softmax(x)
    assert y.dtype == np.float32 and y[0, 0] == 1.0 and y[0, 2] == 0.0


def test_softmax_of_a_scalar_and_of_empty_arrays_as_torch():
    # torch.softmax(torch.tensor(1.5), 0) is 1; over an empty axis, or of an empty batch, the
    # result is empty; a dim outside the array is a clear error
    assert engine.softmax(np.array(1.5), 0) == 1.0 and engine.softmax(np.array(1.5), -1).shape == ()
    assert engine.softmax_backward(np.array(2.0), np.array(1.0), 0) == 0.0
    assert engine.softmax(np.zeros((0, 3)), 1).shape == (0, 3)
    assert engine.softmax(np.zeros((3, 0)), 1).shape == (3, 0)
    with pytest.raises(ArchstatError, match="dim 2 is out of range for an array of 2 dimension"):
        engine.softmax(np.zeros((2, 3)), 2)


# ----------------------------------------------------------------------- merge, flatten

@pytest.mark.parametrize("seed", SEEDS)
def test_concat_matches_naive_and_gradient(seed):
    rng = _rng(seed, 9)
    base = _image(rng)
    dim = int(rng.integers(1, 4))
    xs = []
    for _ in range(int(rng.integers(2, 5))):
        shape = list(base.shape)
        shape[dim] = int(rng.integers(1, 4))
        xs.append(rng.standard_normal(shape))
    y = engine.concat(xs, dim)
    np.testing.assert_array_equal(y, concat_naive(xs, dim))
    dy = rng.standard_normal(y.shape)
    dxs = engine.concat_backward(dy, [x.shape[dim] for x in xs], dim)
    for x, dx in zip(xs, dxs):
        _check_grad(lambda: engine.concat(xs, dim), x, dx, dy)


@pytest.mark.parametrize("seed", SEEDS)
def test_add_matches_naive_and_gradient(seed):
    rng = _rng(seed, 10)
    base = _image(rng)
    xs = [base] + [rng.standard_normal(base.shape) for _ in range(int(rng.integers(1, 4)))]
    y = engine.add(xs)
    np.testing.assert_allclose(y, add_naive(xs), rtol=1e-12)
    assert all(not np.shares_memory(y, x) for x in xs)  # one new array, inputs untouched
    dy = rng.standard_normal(y.shape)
    for x, dx in zip(xs, engine.add_backward(dy, len(xs))):
        _check_grad(lambda: engine.add(xs), x, dx, dy)


@pytest.mark.parametrize("seed", SEEDS)
def test_flatten_matches_naive_and_gradient(seed):
    rng = _rng(seed, 11)
    x = _image(rng)
    start = int(rng.integers(1, 4))
    end = int(rng.integers(start, 4)) - (4 if rng.random() < 0.5 else 0)  # negative end too
    y = engine.flatten(x, start, end)
    np.testing.assert_array_equal(y, flatten_naive(x, start, end))
    assert np.shares_memory(y, x)  # a view of a contiguous input
    dy = rng.standard_normal(y.shape)
    _check_grad(lambda: engine.flatten(x, start, end), x, engine.flatten_backward(dy, x.shape), dy)


# ---------------------------------------------------------------------- cross-entropy

@pytest.mark.parametrize("seed", SEEDS)
def test_cross_entropy_matches_naive_and_gradient(seed):
    rng = _rng(seed, 12)
    n, c = int(rng.integers(1, 6)), int(rng.integers(2, 7))
    logits = rng.standard_normal((n, c)) * 3
    labels = rng.integers(0, c, size=n)
    loss, dlogits = engine.softmax_cross_entropy(logits, labels)
    assert isinstance(loss, float)
    assert loss == pytest.approx(cross_entropy_naive(logits, labels), rel=1e-12)
    num = numerical_gradient(lambda: engine.softmax_cross_entropy(logits, labels)[0], logits, 1.0)
    assert rel_error(num, dlogits) < 1e-7


def test_cross_entropy_is_stable_and_checks_labels():
    logits = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, d = engine.softmax_cross_entropy(logits, np.array([0, 0]))
    assert loss == pytest.approx(1000.0) and d.dtype == np.float32  # (0 + 2000) / 2
    with pytest.raises(ArchstatError, match=r"labels must lie in \[0, 2\)"):
        engine.softmax_cross_entropy(logits, np.array([0, 2]))
    with pytest.raises(ArchstatError, match="integer labels"):
        engine.softmax_cross_entropy(logits, np.array([0.0, 1.0]))
    with pytest.raises(ArchstatError, match=r"\(N, C\)"):
        engine.softmax_cross_entropy(logits[0], np.array([0]))


# ------------------------------------------------------------------ dtypes, purity

def _all_ops(x, dy, rng):
    """(name, forward output, backward outputs) for every kernel on x (N, C, H, W)."""
    c = x.shape[1]
    flat = x.reshape(x.shape[0], -1)
    w = rng.standard_normal((3, flat.shape[1]))  # float64 parameters: cast to x's dtype
    bn = _bn_args(rng, c)
    out = [("linear", engine.linear(flat, w, bn[0][:1].repeat(3)),
            engine.linear_backward(dy.reshape(flat.shape)[:, :3].copy(), flat, w))]
    for name in ("relu", "sigmoid", "tanh"):
        y = getattr(engine, name)(x)
        out.append((name, y, [getattr(engine, name + "_backward")(dy, y)]))
    out.append(("lrn", engine.lrn(x, 3), [engine.lrn_backward(dy, x, 3)]))
    for training in (True, False):
        out.append(("batch_norm2d", engine.batch_norm2d(x, *bn, training=training),
                    engine.batch_norm2d_backward(dy, x, bn[0], bn[2], bn[3], training)))
    y, mask = engine.dropout(x, 0.5, True, 0)
    out.append(("dropout", y, [engine.dropout_backward(dy, mask, 0.5)]))
    y = engine.softmax(x)
    out.append(("softmax", y, [engine.softmax_backward(dy, y)]))
    out.append(("concat", engine.concat([x, x]), engine.concat_backward(engine.concat([dy, dy]), [c, c])))
    out.append(("add", engine.add([x, x]), engine.add_backward(dy, 2)))
    out.append(("flatten", engine.flatten(x), [engine.flatten_backward(dy.reshape(flat.shape), x.shape)]))
    loss, d = engine.softmax_cross_entropy(flat, np.zeros(x.shape[0], int))
    out.append(("cross_entropy", d, []))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_kernel_keeps_the_input_dtype(dtype):
    rng = _rng(0, 13)
    x = rng.standard_normal((3, 4, 2, 2)).astype(dtype)
    ops = _all_ops(x, rng.standard_normal(x.shape).astype(dtype), rng)
    for name, y, grads in ops:
        assert y.dtype == dtype, name
        for g in grads:
            assert g.dtype == dtype, name


def test_float32_kernels_agree_with_float64():
    rng = _rng(1, 14)
    x, dy = rng.standard_normal((2, 3, 4, 2, 2))
    ops64 = _all_ops(x, dy, _rng(2))
    ops32 = _all_ops(x.astype(np.float32), dy.astype(np.float32), _rng(2))
    for (name, y64, g64), (_, y32, g32) in zip(ops64, ops32):
        np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5, err_msg=name)
        for a, b in zip(g32, g64):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=name)


def test_backward_kernels_leave_their_inputs_alone():
    # the executor hands the same dy to several consumers (add) and keeps caches
    rng = _rng(3, 15)
    x, dy = rng.standard_normal((2, 3, 4, 2, 2))
    x0, dy0 = x.copy(), dy.copy()
    _all_ops(x, dy, rng)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)
