"""hardswish, hardsigmoid, gelu (with the vectorized erf), layer_norm, layer_norm2d and
layer_scale: fast kernels against the naive loops of naive_act_norm.py on seeded shapes,
float64 centred finite-difference checks of every backward, the kinks, in-place runs, dtypes,
shape-rule errors, counts, initialisation, and whole specs through run/backward."""
from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

import archstat
import archstat.engine as engine
from archstat.engine.executor import Executor
from archstat.errors import ArchstatError
from archstat.layers import RunContext, get
from archstat.layers.registry import Field
from archstat.layers.special import erf, erfc
from naive_act_norm import (gelu_naive, hardsigmoid_naive, hardswish_naive, layer_norm2d_naive,
                            layer_norm_naive, layer_scale_naive, channel_bias_naive)
from naive_ops import numerical_gradient, numerical_gradient_at, rel_error

SEEDS = range(4)


def _rng(seed, salt=0):
    return np.random.default_rng([seed, salt])


def _shape(rng, rank=4):
    return (int(rng.integers(1, 4)),) + tuple(int(v) for v in rng.integers(1, 5, size=rank - 1))


def _norm_shape(rng):
    """(N, C, H, W) with every normalised group of 3 or more values: with 1 or 2 the output
    hardly depends on x (it is 0 or +-1 up to eps), and the gradient check measures rounding."""
    return (int(rng.integers(1, 4)), int(rng.integers(3, 6)), int(rng.integers(2, 4)),
            int(rng.integers(3, 5)))


def _check_grad(f, x, analytic, df, tol=1e-7):
    num = numerical_gradient(f, x, df)
    assert rel_error(num, analytic) < tol, rel_error(num, analytic)


# --------------------------------------------------------------------------- erf, erfc

def _ulps(got, want):
    """|got - want| in units of the spacing of got's dtype at want (0 where they are equal).
    Below the smallest normal number the spacing is the smallest subnormal's."""
    got = np.asarray(got)
    spacing = np.spacing(np.abs(want).astype(got.dtype)).astype(np.float64)
    err = np.abs(got.astype(np.float64) - want) / spacing
    err[got == want] = 0
    return err


def _erf_grid():
    """A dense grid over every region of the approximation, both signs: the region edges and
    their neighbours, tiny and subnormal values, and the tails out to where erfc underflows."""
    edges = np.array([0.25, 0.84375, 1.25, 2.8571434020996094, 6.0, 28.0])
    near_edges = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, 30)])
    pos = np.concatenate([np.linspace(0, 30, 300_001), np.geomspace(5e-324, 1e-2, 2_000),
                          np.linspace(0.8, 1.3, 20_001), _rng(0, 1).uniform(0, 6, 50_000), near_edges])
    return np.concatenate([pos, -pos])


def test_erf_is_within_an_ulp_or_two_of_math_erf():
    x = _erf_grid()
    want = np.array([math.erf(v) for v in x])
    got = erf(x)
    assert got.dtype == np.float64 and got.shape == x.shape
    # measured: at most 1.0 ulp (fdlibm's rational approximations, NumPy's exp)
    assert _ulps(got, want).max() <= 2


def test_erfc_is_within_a_few_ulp_of_math_erfc_down_to_underflow():
    x = _erf_grid()
    want = np.array([math.erfc(v) for v in x])
    got = erfc(x)
    # measured: at most 4 ulp, in the far tail where exp's own error is amplified by x^2
    assert _ulps(got, want).max() <= 6
    # no cancellation: erfc(10) = 2.088e-45 keeps its relative precision (1 - erf(10) is 0)
    assert erfc(np.array([10.0]))[0] == pytest.approx(2.088487583762545e-45, rel=1e-14)


def test_erf_special_values_and_float32():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan])
    y = erf(x)
    np.testing.assert_array_equal(y, [0.0, -0.0, 1.0, -1.0, np.nan])
    assert np.signbit(y[:2]).tolist() == [False, True]  # erf(-0) = -0
    np.testing.assert_array_equal(erfc(x), [1.0, 1.0, 0.0, 2.0, np.nan])
    # float32 is computed in float32, within ~1 (erf) and a few (erfc) float32 ulp
    x32 = _erf_grid()[::7].astype(np.float32)
    assert erf(x32).dtype == erfc(x32).dtype == np.float32
    assert _ulps(erf(x32), np.array([math.erf(float(v)) for v in x32])).max() <= 2
    want = np.array([math.erfc(float(v)) for v in x32])
    normal = want > np.finfo(np.float32).tiny
    assert _ulps(erfc(x32)[normal], want[normal]).max() <= 8
    # any shape (0-d too); integers are computed as float64
    assert erf(np.float64(0.5)).shape == () and erf(0.5) == pytest.approx(math.erf(0.5), rel=1e-16)
    assert erf([[1, 2]]).dtype == np.float64 and erf([[1, 2]]).shape == (1, 2)


# -------------------------------------------------------------------------- activations

def _act_input(rng, spread=2.5):
    """Random input kept 1e-3 away from the kinks at -3, 3 (finite differences step 1e-5)."""
    x = rng.standard_normal(_shape(rng)) * spread
    near = np.abs(np.abs(x) - 3) < 1e-3
    x[near] += 0.01
    return x


ACTIVATIONS = [
    ("hardswish", lambda x: engine.hardswish(x), lambda dy, x: engine.hardswish_backward(dy, x),
     hardswish_naive),
    ("hardsigmoid", lambda x: engine.hardsigmoid(x), lambda dy, x: engine.hardsigmoid_backward(dy, x),
     hardsigmoid_naive),
    ("gelu", lambda x: engine.gelu(x), lambda dy, x: engine.gelu_backward(dy, x), gelu_naive),
    ("gelu_tanh", lambda x: engine.gelu(x, "tanh"), lambda dy, x: engine.gelu_backward(dy, x, "tanh"),
     lambda x: gelu_naive(x, "tanh")),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name,fn,grad,naive", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_matches_naive_and_gradient(seed, name, fn, grad, naive):
    rng = _rng(seed, 1)
    x = _act_input(rng)
    y = fn(x)
    assert y.shape == x.shape and y.dtype == np.float64
    # atol: the naive exact GELU's 1 + erf(x / sqrt 2) cancels for x << 0
    np.testing.assert_allclose(y, naive(x), rtol=1e-13, atol=1e-15)
    dy = rng.standard_normal(x.shape)
    _check_grad(lambda: fn(x), x, grad(dy, x), dy)


def test_gelu_keeps_its_precision_in_the_negative_tail():
    # x Phi(x) with Phi(-10) = erfc(10 / sqrt 2) / 2 = 7.6198530241605e-24: not 0
    y = engine.gelu(np.array([-10.0, -40.0, 0.0, 40.0]))
    assert y[0] == pytest.approx(-10 * 0.5 * math.erfc(10 / math.sqrt(2)), rel=1e-14)
    assert y[0] == pytest.approx(-7.619853024160527e-23, rel=1e-12)
    assert y[1:].tolist() == [-0.0, 0.0, 40.0]


def test_kinks_follow_pytorch():
    # hardswish: slope x/3 + 1/2 strictly inside (-3, 3), 0 at and below -3, 1 at and above 3;
    # a NaN x passes dy (the 'x >= 3' branch of PyTorch's kernel); inf dy below -3 gives +0.0
    x = np.array([-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 4.0, np.nan, -5.0])
    dy = np.array([2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, np.inf])
    dx = engine.hardswish_backward(dy, x)
    np.testing.assert_array_equal(dx, [0.0, 0.0, 0.0, 1.0, 2.0 * (1.5 / 3 + 0.5), 2.0, 2.0, 2.0, 0.0])
    assert not np.signbit(dx[[0, 1, 8]]).any()
    np.testing.assert_array_equal(engine.hardswish(x[:7]), [-0.0, -0.0, -0.375, 0.0, 1.5 * 4.5 / 6, 3.0, 4.0])
    # hardsigmoid: 1/6 strictly inside (-3, 3) only; 0 at both kinks, outside and for NaN x
    x = np.array([-3.0, np.nextafter(-3.0, 0), 0.0, np.nextafter(3.0, 0), 3.0, np.nan, 5.0])
    dy = np.array([6.0, 6.0, 6.0, 6.0, 6.0, 6.0, np.nan])
    np.testing.assert_array_equal(engine.hardsigmoid_backward(dy, x), [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    # just below 3 the output already rounds to 1, yet the slope is 1/6: the mask needs x
    assert engine.hardsigmoid(x[3:4])[0] == 1.0


@pytest.mark.parametrize("name", ["hardswish", "hardsigmoid"])
def test_in_place_forward_keeps_what_backward_needs(name):
    rng = _rng(0, 2)
    x = _act_input(rng, spread=4)
    ltype = get(name)
    y_ref, cache_ref = ltype.forward([x.copy()], {}, {"inplace": False}, RunContext())
    buf = x.copy()
    y, cache = ltype.forward([buf], {}, {"inplace": True}, RunContext())
    assert y is buf  # written over its input
    np.testing.assert_array_equal(y, y_ref)
    dy = rng.standard_normal(x.shape)
    (dx,), _ = ltype.backward(dy, cache)
    np.testing.assert_array_equal(dx, getattr(engine, name + "_backward")(dy, x))
    # what is kept: a copy of x (hardswish) or a one-byte mask (hardsigmoid)
    kept = [a for a in (cache if isinstance(cache, tuple) else (cache,)) if a is not None]
    assert [a.dtype for a in kept] == [np.float64 if name == "hardswish" else np.bool_]
    # without backward (inference) nothing is kept
    _, cache = ltype.forward([x.copy()], {}, {"inplace": True}, RunContext(keep_cache=False))
    assert all(a is None for a in (cache if isinstance(cache, tuple) else (cache,)))
    # the analysis counts the kept bytes in training, and none when not in place
    extra = ltype.training_extra_bytes(100, 4, {"inplace": True})
    assert extra == (400 if name == "hardswish" else 100)
    assert ltype.training_extra_bytes(100, 4, {"inplace": False}) == 0


# ------------------------------------------------------------------------- layer norms

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("affine", ["none", "weight", "both"])
def test_layer_norm_matches_naive_and_gradients(seed, k, affine):
    rng = _rng(seed, 3 + k)
    x = rng.standard_normal(_norm_shape(rng)) * 2 + 1
    ns = x.shape[4 - k:]
    w = rng.standard_normal(ns) if affine != "none" else None
    b = rng.standard_normal(ns) if affine == "both" else None
    eps = float(rng.choice([1e-5, 1e-2]))
    y = engine.layer_norm(x, list(ns), w, b, eps)
    np.testing.assert_allclose(y, layer_norm_naive(x, k, w, b, eps), rtol=1e-11, atol=1e-12)
    dy = rng.standard_normal(x.shape)
    dx, dw, db = engine.layer_norm_backward(dy, x, ns, w, eps)
    assert dw.shape == db.shape == ns

    def f():
        return engine.layer_norm(x, ns, w, b, eps)
    _check_grad(f, x, dx, dy, tol=1e-6)
    if w is not None:
        _check_grad(f, w, dw, dy)
    if b is not None:
        _check_grad(f, b, db, dy)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm2d_matches_naive_and_gradients(seed, affine):
    rng = _rng(seed, 7)
    x = rng.standard_normal(_norm_shape(rng)) * 3
    c = x.shape[1]
    w, b = (rng.standard_normal(c), rng.standard_normal(c)) if affine else (None, None)
    y = engine.layer_norm2d(x, w, b, 1e-6)
    np.testing.assert_allclose(y, layer_norm2d_naive(x, w, b, 1e-6), rtol=1e-11, atol=1e-12)
    dy = rng.standard_normal(x.shape)
    dx, dw, db = engine.layer_norm2d_backward(dy, x, w, 1e-6)
    assert dw.shape == db.shape == (c,)

    def f():
        return engine.layer_norm2d(x, w, b, 1e-6)
    _check_grad(f, x, dx, dy, tol=1e-6)
    if affine:
        _check_grad(f, w, dw, dy)
        _check_grad(f, b, db, dy)


def test_layer_norm2d_is_layer_norm_over_channels_last():
    # torchvision's LayerNorm2d: permute to NHWC, layer_norm over C, permute back
    rng = _rng(0, 8)
    x, w, b = rng.standard_normal((2, 5, 3, 4)), rng.standard_normal(5), rng.standard_normal(5)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    want = engine.layer_norm(nhwc, 5, w, b, 1e-6).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(engine.layer_norm2d(x, w, b, 1e-6), want, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("rank", [2, 4])
def test_layer_scale_matches_naive_and_gradients(seed, rank):
    rng = _rng(seed, 9)
    x = rng.standard_normal(_shape(rng, rank))
    c = x.shape[1]
    w = rng.standard_normal((c, 1, 1) if rank == 4 else (c,))
    y = engine.layer_scale(x, w)
    np.testing.assert_allclose(y, layer_scale_naive(x, w), rtol=1e-15)
    dy = rng.standard_normal(x.shape)
    dx, dw = engine.layer_scale_backward(dy, x, w)
    assert dw.shape == w.shape
    _check_grad(lambda: engine.layer_scale(x, w), x, dx, dy)
    _check_grad(lambda: engine.layer_scale(x, w), w, dw, dy)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("rank", [2, 4])
def test_channel_bias_matches_naive_and_gradients(seed, rank):
    rng = _rng(seed, 10)
    x = rng.standard_normal(_shape(rng, rank))
    b = rng.standard_normal(x.shape[1])
    np.testing.assert_allclose(engine.channel_bias(x, b), channel_bias_naive(x, b), rtol=1e-15)
    dy = rng.standard_normal(x.shape)
    dx, db = engine.channel_bias_backward(dy)
    assert db.shape == b.shape
    _check_grad(lambda: engine.channel_bias(x, b), x, dx, dy)
    _check_grad(lambda: engine.channel_bias(x, b), b, db, dy)


def test_channel_bias_counts_c_parameters_and_one_flop_per_element():
    a = archstat.analyze({"input": [3, 4, 5], "layers": [{"name": "shift", "type": "channel_bias"}]})
    row = a.rows()[1]
    assert (row["params"], row["bias_params"], row["macs"], row["flops"]) == (3, 3, 0, 60)
    assert archstat.run({"input": [3, 4, 5], "layers": [{"name": "shift", "type": "channel_bias"}]},
                        np.ones((1, 3, 4, 5))).sum() == 60   # initialised to zero: the identity


# ------------------------------------------------------------------ dtypes and purity

def _all_ops(x, dy, rng):
    """(name, forward output, gradients) of every new kernel on x (N, C, H, W)."""
    c = x.shape[1]
    w, b = rng.standard_normal(c), rng.standard_normal(c)  # float64 parameters: cast to x's dtype
    ns_w, ns_b = rng.standard_normal(x.shape[2:]), rng.standard_normal(x.shape[2:])
    out = []
    for name in ("hardswish", "hardsigmoid"):
        out.append((name, getattr(engine, name)(x), [getattr(engine, name + "_backward")(dy, x)]))
    for approx in ("none", "tanh"):
        out.append(("gelu " + approx, engine.gelu(x, approx), [engine.gelu_backward(dy, x, approx)]))
    out.append(("layer_norm", engine.layer_norm(x, x.shape[2:], ns_w, ns_b),
                engine.layer_norm_backward(dy, x, x.shape[2:], ns_w)))
    out.append(("layer_norm2d", engine.layer_norm2d(x, w, b), engine.layer_norm2d_backward(dy, x, w)))
    out.append(("layer_scale", engine.layer_scale(x, w.reshape(c, 1, 1)),
                engine.layer_scale_backward(dy, x, w.reshape(c, 1, 1))))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_new_kernel_keeps_the_input_dtype(dtype):
    rng = _rng(0, 10)
    x = (rng.standard_normal((2, 3, 4, 5)) * 3).astype(dtype)
    for name, y, grads in _all_ops(x, rng.standard_normal(x.shape).astype(dtype), rng):
        assert y.dtype == dtype, name
        assert all(g.dtype == dtype for g in grads), name


def test_float32_kernels_agree_with_float64_and_leave_inputs_alone():
    rng = _rng(1, 11)
    x, dy = rng.standard_normal((2, 2, 3, 4, 5)) * 3
    x0, dy0 = x.copy(), dy.copy()
    ops64 = _all_ops(x, dy, _rng(2))
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)
    ops32 = _all_ops(x.astype(np.float32), dy.astype(np.float32), _rng(2))
    for (name, y64, g64), (_, y32, g32) in zip(ops64, ops32):
        np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5, err_msg=name)
        for a, b in zip(g32, g64):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=name)


# ----------------------------------------------------------------- spec, shapes, errors

def test_shape_field_kind():
    f = Field("normalized_shape", "shape", None, "doc", minimum=1)
    assert f.normalise(7) == (7,) and f.normalise([3, 4]) == (3, 4)
    assert f.describe() == "an integer or a list of integers >= 1"
    for bad in ([], [0], [2, True], "7", 2.0, [[2]]):
        with pytest.raises(ArchstatError) as err:
            f.normalise(bad)
        assert err.value.field == "normalized_shape"


@pytest.mark.parametrize("layer,field,match", [
    ({"type": "layer_norm", "normalized_shape": [5]}, "normalized_shape",
     r"does not match the input's trailing dimensions \[3\].*use normalized_shape: \[3\]"),
    ({"type": "layer_norm", "normalized_shape": [4, 4, 3]}, "normalized_shape", "does not match"),
    ({"type": "layer_norm", "normalized_shape": [1, 4, 3, 3]}, "normalized_shape", "not the batch"),
    ({"type": "layer_norm", "normalized_shape": "3"}, "normalized_shape", "an integer or a list"),
    ({"type": "layer_norm2d", "num_features": 5}, "num_features", "declared 5 but the input has 4"),
    ({"type": "layer_scale", "num_features": 3}, "num_features", "declared 3 but the input has 4"),
    ({"type": "gelu", "approximate": "tan"}, "approximate", "did you mean 'tanh'"),
    ({"type": "hardswish", "in_place": True}, "in_place", "did you mean 'inplace'"),
])
def test_shape_rule_and_field_errors_name_the_field(layer, field, match):
    spec = {"input": [4, 3, 3], "layers": [dict(layer, name="bad")]}
    with pytest.raises(ArchstatError, match=match) as err:
        archstat.load(spec)
    assert err.value.field == field and err.value.layer == "bad"


def test_rank_errors():
    # (N, 4, 9) after flatten(start_dim=2): layer_norm2d takes (N, C, H, W) only, layer_scale
    # (N, C, H, W) or (N, C); layer_norm takes any rank
    for layer in ({"type": "layer_norm2d"}, {"type": "layer_scale"}):
        spec = {"input": [4, 3, 3], "layers": [{"type": "flatten", "start_dim": 2},
                                               dict(layer, name="bad")]}
        with pytest.raises(ArchstatError, match=r"expects an image tensor \(N, C, H, W\)") as err:
            archstat.load(spec)
        assert err.value.layer == "bad"
    spec = {"input": [4, 3, 3], "layers": [{"type": "flatten", "start_dim": 2},
                                           {"name": "ln", "type": "layer_norm"},
                                           {"type": "flatten"}, {"type": "layer_scale"}]}
    assert archstat.analyze(spec).rows()[2]["params"] == 9 + 9
    # the kernel checks too, as F.layer_norm does
    with pytest.raises(ArchstatError, match="does not match") as err:
        engine.layer_norm(np.ones((2, 3, 4)), (3,))
    assert err.value.field == "normalized_shape"


def test_analysis_counts():
    # input (1, 8, 4, 4): n = 128 elements per layer, C = 8
    spec = {"input": [8, 4, 4], "layers": [
        {"name": "ln2d", "type": "layer_norm2d", "eps": 1e-6},
        {"name": "ln2d_plain", "type": "layer_norm2d", "elementwise_affine": False},
        {"name": "ls", "type": "layer_scale"},
        {"name": "gelu", "type": "gelu"},
        {"name": "gelu_t", "type": "gelu", "approximate": "tanh"},
        {"name": "hs", "type": "hardswish", "inplace": True},
        {"name": "hsig", "type": "hardsigmoid"},
        {"name": "ln_hw", "type": "layer_norm", "normalized_shape": [4, 4]},
        {"name": "ln_w", "type": "layer_norm", "bias": False},
        {"name": "ln_chw", "type": "layer_norm", "normalized_shape": [8, 4, 4],
         "elementwise_affine": False}]}
    rows = {r["name"]: r for r in archstat.analyze(spec).rows()}
    n = 8 * 4 * 4
    expected = {  # name: (params, flops)
        "ln2d": (8 + 8, (5 + 2) * n),        # weight and bias (C,); 5 + multiply + add per element
        "ln2d_plain": (0, 5 * n),
        "ls": (8, n),                        # weight (8, 1, 1); one multiply per element
        "gelu": (0, 5 * n),
        "gelu_t": (0, 13 * n),
        "hs": (0, 5 * n),
        "hsig": (0, 4 * n),
        "ln_hw": (16 + 16, 7 * n),           # weight and bias of (4, 4)
        "ln_w": (4, 6 * n),                  # inferred (4,): weight only; no bias add
        "ln_chw": (0, 5 * n),
    }
    for name, (params, flops) in expected.items():
        assert (rows[name]["params"], rows[name]["flops"], rows[name]["macs"]) == (params, flops, 0), name
        assert rows[name]["output_shape"] == (1, 8, 4, 4)
    assert rows["hs"]["activation_bytes"] == 0 and rows["hsig"]["activation_bytes"] == 4 * n


@pytest.mark.parametrize("act,kept", [("hardswish", 4), ("hardsigmoid", 1)])
def test_training_memory_counts_what_in_place_layers_keep(act, kept):
    # the same model with an in-place relu (which keeps nothing) differs by the kept bytes:
    # a float32 copy of x (hardswish) or a one-byte mask (hardsigmoid) per element
    def spec(t):
        return {"input": [8, 4, 4], "layers": [{"type": "conv2d", "out_channels": 8, "kernel_size": 1},
                                               {"type": t, "inplace": True}]}
    with_act = archstat.analyze(spec(act), batch=2).totals["training_memory_bytes"]
    with_relu = archstat.analyze(spec("relu"), batch=2).totals["training_memory_bytes"]
    assert with_act - with_relu == kept * 2 * 8 * 4 * 4


def test_layer_norm_window_covers_the_normalised_plane():
    spec = {"input": [2, 5, 7], "layers": [{"name": "row", "type": "layer_norm"},
                                           {"name": "plane", "type": "layer_norm",
                                            "normalized_shape": [5, 7], "inputs": "input"},
                                           {"name": "pix", "type": "layer_norm2d", "inputs": "input"}]}
    rows = {r["name"]: r for r in archstat.analyze(spec).rows()}
    # every output sees its whole row (W = 7) or plane (5 x 7): a window of 2 * size - 1 centred
    # on it covers that from every position
    assert rows["row"]["rf_size"] == (1, 13) and rows["plane"]["rf_size"] == (9, 13)
    assert rows["pix"]["rf_size"] == (1, 1)


# ------------------------------------------------------------------- initialisation

def test_initial_params_are_facts_of_the_type():
    spec = {"input": [3, 4, 4], "layers": [
        {"name": "conv", "type": "conv2d", "out_channels": 5, "kernel_size": 3},
        {"name": "ln2d", "type": "layer_norm2d"},
        {"name": "ls", "type": "layer_scale", "init": 0.25},
        {"name": "ln", "type": "layer_norm", "normalized_shape": [2, 2]},
        {"name": "flat", "type": "flatten"},
        {"name": "fc", "type": "linear", "out_features": 2}]}
    ex = Executor(spec, seed=3, dtype="float64")
    np.testing.assert_array_equal(ex.params["ls"]["weight"], np.full((5, 1, 1), 0.25))
    for name, shape in (("ln2d", (5,)), ("ln", (2, 2))):
        np.testing.assert_array_equal(ex.params[name]["weight"], np.ones(shape))
        np.testing.assert_array_equal(ex.params[name]["bias"], np.zeros(shape))
    # the default rule: He uniform U(-b, b), b = sqrt(6 / fan_in) (variance 2 / fan_in), drawn in
    # float32 from the parameter's own generator, with fan_in = MACs per output element
    # (3 * 3 * 3 = 27 for conv, 5 * 2 * 2 = 20 for fc)
    for name, shape, fan_in in (("conv", (5, 3, 3, 3), 27), ("fc", (2, 20), 20)):
        rng = np.random.default_rng([3, zlib.crc32(name.encode()), zlib.crc32(b"weight")])
        bound = np.float32(np.sqrt(6 / fan_in))
        expected = rng.random(shape, dtype=np.float32) * (2 * bound) - bound
        np.testing.assert_array_equal(ex.params[name]["weight"], expected.astype(np.float64))
        assert np.abs(ex.params[name]["weight"]).max() <= bound
        np.testing.assert_array_equal(ex.params[name]["bias"], np.zeros(shape[0]))


# -------------------------------------------------------------- whole specs, run/backward

SPEC = {"input": [4, 3, 3], "layers": [
    {"name": "ln2d", "type": "layer_norm2d", "eps": 1e-6},
    {"name": "hs", "type": "hardswish", "inplace": True},
    {"name": "ls", "type": "layer_scale", "init": 0.5},
    {"name": "gelu", "type": "gelu"},
    {"name": "ln", "type": "layer_norm", "normalized_shape": [3, 3]},
    {"name": "gelu_t", "type": "gelu", "approximate": "tanh"},
    {"name": "hsig", "type": "hardsigmoid", "inplace": True},
    {"name": "flat", "type": "flatten"},
    {"name": "fc", "type": "linear", "out_features": 3}]}


def _weights(rng):
    """Random values for every parameter, so no gradient check is made trivial by w = 1."""
    ex = Executor(SPEC, seed=0, dtype="float64")
    return {layer: {k: rng.standard_normal(v.shape) for k, v in arrays.items()}
            for layer, arrays in ex.state().items()}


def _by_hand(x, w):
    y = engine.layer_norm2d(x, w["ln2d"]["weight"], w["ln2d"]["bias"], 1e-6)
    y = engine.layer_scale(engine.hardswish(y), w["ls"]["weight"])
    y = engine.layer_norm(engine.gelu(y), (3, 3), w["ln"]["weight"], w["ln"]["bias"])
    y = engine.hardsigmoid(engine.gelu(y, "tanh")).reshape(len(x), -1)
    return engine.linear(y, w["fc"]["weight"], w["fc"]["bias"])


def test_spec_runs_forward_like_the_kernels_composed():
    rng = _rng(0, 12)
    w = _weights(rng)
    x = rng.standard_normal((2, 4, 3, 3)) * 2
    x0 = x.copy()
    y = archstat.run(SPEC, x, weights=w, dtype="float64")
    np.testing.assert_allclose(y, _by_hand(x, w), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(x, x0)  # the in-place layers never write over the caller's x
    y32 = archstat.run(SPEC, x.astype(np.float32), weights=w)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y, rtol=1e-4, atol=1e-5)


def test_spec_backward_matches_finite_differences():
    rng = _rng(1, 13)
    w = _weights(rng)
    x = rng.standard_normal((2, 4, 3, 3)) * 2
    labels = np.array([0, 2])
    res = archstat.backward(SPEC, x, labels=labels, weights=w, dtype="float64")
    assert set(res.grads) == {"ln2d", "ls", "ln", "fc"}

    def loss():
        return engine.softmax_cross_entropy(_by_hand(x, w), labels)[0]
    assert res.loss == pytest.approx(loss(), rel=1e-12)
    pick = _rng(2)
    for arr, grad in ((x, res.input_grad), (w["ln2d"]["weight"], res.grads["ln2d"]["weight"]),
                      (w["ln2d"]["bias"], res.grads["ln2d"]["bias"]),
                      (w["ls"]["weight"], res.grads["ls"]["weight"]),
                      (w["ln"]["weight"], res.grads["ln"]["weight"]),
                      (w["ln"]["bias"], res.grads["ln"]["bias"])):
        idx = [tuple(int(i) for i in np.unravel_index(f, arr.shape))
               for f in pick.choice(arr.size, size=min(6, arr.size), replace=False)]
        num = numerical_gradient_at(loss, arr, idx)
        np.testing.assert_allclose(np.array([grad[i] for i in idx]), num, rtol=1e-5, atol=1e-8)


def test_in_place_spec_trains_like_the_out_of_place_one():
    rng = _rng(3, 14)
    w = _weights(rng)
    x = rng.standard_normal((2, 4, 3, 3)) * 2
    dy = rng.standard_normal((2, 3))
    out_of_place = {**SPEC, "layers": [{k: v for k, v in layer.items() if k != "inplace"}
                                       for layer in SPEC["layers"]]}
    a = archstat.backward(SPEC, x, dy=dy, weights=w, dtype="float64")
    b = archstat.backward(out_of_place, x, dy=dy, weights=w, dtype="float64")
    np.testing.assert_array_equal(a.input_grad, b.input_grad)
    for layer in b.grads:
        for k in b.grads[layer]:
            np.testing.assert_array_equal(a.grads[layer][k], b.grads[layer][k])


@pytest.mark.parametrize("raw,shape", [
    ({"type": "hardswish", "inplace": True}, (2, 3, 4, 4)), ({"type": "hardsigmoid"}, (2, 5)),
    ({"type": "gelu", "approximate": "tanh"}, (2, 3, 4, 4)),
    ({"type": "layer_norm", "normalized_shape": [4, 4]}, (2, 3, 4, 4)),
    ({"type": "layer_norm", "bias": False}, (2, 5)),
    ({"type": "layer_norm", "elementwise_affine": False}, (2, 3, 4, 4)),
    ({"type": "layer_norm2d"}, (2, 3, 4, 4)), ({"type": "layer_norm2d", "bias": False}, (2, 3, 4, 4)),
    ({"type": "layer_scale"}, (2, 3, 4, 4)), ({"type": "layer_scale"}, (2, 5)),
])
def test_layer_kernels_match_shape_rule_and_param_names(raw, shape):
    # forward's output has the shape rule's shape; backward returns a gradient of the input's
    # shape and exactly the parameters param_shapes lists, in their shapes
    rng = _rng(4, 15)
    ltype = get(raw["type"])
    attrs = ltype.normalise({k: v for k, v in raw.items() if k != "type"})
    x = rng.standard_normal(shape)
    pshapes = ltype.param_shapes([shape], attrs)
    params = {k: rng.standard_normal(s) for k, s in pshapes.items()}
    y, cache = ltype.forward([x], params, attrs, RunContext(train=True, rng=rng))
    assert y.shape == ltype.output_shape([shape], attrs) == shape
    (dx,), dparams = ltype.backward(rng.standard_normal(shape), cache)
    assert dx.shape == shape
    assert {k: v.shape for k, v in dparams.items()} == pshapes


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_silu_at_inference_gives_the_bits_of_the_training_form(layout):
    from archstat.layers.activation_kernels import BLOCK, silu
    rng = np.random.default_rng(4)
    base = (rng.standard_normal((2, 6, 3 * BLOCK // 32, 32)) * 8).astype(np.float32)   # several blocks
    x = base if layout == "contiguous" else base[:, 1:5]
    y, s = silu(x)
    assert s is not None
    y2, none = silu(x, keep_sigmoid=False)
    assert none is None
    np.testing.assert_array_equal(y2, y)
    z = x.copy() if layout == "contiguous" else base.copy()[:, 1:5]
    out, _ = silu(z, out=z, keep_sigmoid=False)      # in place
    assert out is z
    np.testing.assert_array_equal(z, y)
