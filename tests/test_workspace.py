"""Kernel workspace (``LayerType.workspace_bytes``) and the executor's memory prediction.

What a kernel allocates beyond its output is stated next to the kernel (conv2d's im2col
columns, padded input, folded-bias weight and GEMM output; Winograd's band, tiles, products
and transformed filters; the direct depthwise forward's block scratch; batch norm's repeated
per-channel operands). Checked three ways: hand-derived sizes on small cases; tracemalloc's
peak of each kernel on many shapes and every algorithm; and whole networks, where
``Executor.predict_memory`` must match tracemalloc's peak of a forward pass.
"""
from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

import archstat
from archstat import Executor
from archstat.layers import conv_depthwise as dw, conv_winograd as wino, im2col as win, registry, threads
from archstat.layers.registry import RunContext
from archstat.layers.special import BLOCK
from archstat.engine import workspace
from archstat.errors import ArchstatError
from archstat.layers.conv import conv2d, conv2d_workspace
from archstat.layers.norm_kernels import batch_norm2d, bn_inference_workspace
from archstat.layers.pool_kernels import avg_pool2d, max_pool2d, pool_workspace

from test_kernel_contract import TYPES as CONTRACT_TYPES, one_layer_spec

# NumPy's own small temporaries (ufunc buffers of 8,192 elements per operand, index arrays)
# are not stated: up to this much, plus 1 %
SLACK = 128 * 1024


def _transient(fn) -> tuple[int, object]:
    """Bytes ``fn`` held at its peak beyond what it returns (its inputs exist already)."""
    tracemalloc.start()
    try:
        out = fn()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - current, out


def _close(measured: int, declared: int) -> bool:
    return abs(measured - declared) <= SLACK + declared // 100


# --------------------------------------------------------------- hand-derived sizes

def test_im2col_workspace_by_hand():
    # 3x3, pad 1 on (1, 2, 5, 5), 4 filters with a bias: K = 2*9 = 18; zero padding left
    # unbuilt (tap by tap), one block of 25 columns; the bias rides in the GEMM as a row of
    # ones (K + 1 rows) and a weight column (4 x 19)
    assert conv2d_workspace((1, 2, 5, 5), (4, 2, 3, 3), True, padding=1) == 4 * (4 * 19 + 19 * 25)
    assert conv2d_workspace((1, 2, 5, 5), (4, 2, 3, 3), False, padding=1) == 4 * 18 * 25
    # reflect padding builds the padded input (7x7), rows first (7x5) then columns
    assert conv2d_workspace((1, 2, 5, 5), (4, 2, 3, 3), False, padding=1, padding_mode="reflect") == \
        4 * (18 * 25 + 2 * 7 * 5 + 2 * 7 * 7)
    # a 1x1 stride-1 conv is one GEMM on the input itself: nothing; its bias is added in a
    # pass of its own, through one NumPy buffer of np.getbufsize() elements (8,192), or of the
    # whole output when smaller (4 x 2 x 3 x 3 = 72)
    assert conv2d_workspace((8, 64, 56, 56), (256, 64, 1, 1), False) == 0
    assert conv2d_workspace((8, 64, 56, 56), (256, 64, 1, 1), True) == 4 * np.getbufsize() == 4 * 8_192
    assert conv2d_workspace((4, 3, 3, 3), (2, 3, 1, 1), True) == 4 * 72


def test_winograd_workspace_by_hand():
    # F(2x2, 3x3) on (1, 2, 4, 4), 3 filters, pad 1: a 2x2 grid of tiles in one block, one
    # filter chunk. Tiles then output tiles: max(16*2, 4*3) * 4; transformed tiles 16*2*4;
    # products 16*3*4; the padded band 2 channels x 6 x 6; transformed filters 16*3*2
    elements = 32 * 4 + 32 * 4 + 48 * 4 + 2 * 6 * 6 + 16 * 3 * 2
    assert conv2d_workspace((1, 2, 4, 4), (3, 2, 3, 3), False, padding=1, algorithm="winograd2") == 4 * elements


def test_batch_norm_workspace_by_hand():
    # during the pass: the float64 mean and 1/std and the scale and shift in the input's
    # dtype (C * (2 * 8 + 2 * itemsize)), NumPy's buffer for the broadcast operand (the
    # block's elements, at most 8,192), and for several images of short rows (L = 16) a row of
    # ones and the scale and shift repeated to full rows (C x L each)
    assert bn_inference_workspace((2, 3, 4, 4), 4) == 3 * 24 + 4 * (2 * 3 * 16) + 4 * 16 * (1 + 2 * 3) == 904
    assert bn_inference_workspace((1, 3, 4, 4), 4) == 3 * 24 + 4 * 3 * 16          # one image: no ones
    # long rows: the ones only; both images in one block, whose 9,600 elements fill a buffer
    assert bn_inference_workspace((2, 3, 40, 40), 8) == 3 * 32 + 8 * 8_192 + 8 * 1600
    # before the pass, the float64 scale and shift beside the statistics may be the most:
    # C * (4 * 8 + 2 * itemsize) on a short row of many channels
    assert bn_inference_workspace((1, 8192, 1, 1), 4) == 8192 * 40


def test_winograd_filters_are_chunked_on_wide_layers():
    # VGG's 512 x 512 filters: 37.7 MB transformed in F(4x4); in chunks the workspace of the
    # 14x14 layer at batch 1 stays under half of that
    whole = 36 * 512 * 512 * 4
    assert conv2d_workspace((1, 512, 14, 14), (512, 512, 3, 3), True, padding=1, algorithm="winograd4") < whole / 2


# --------------------------------------------------------------- against tracemalloc

CONV_CASES = [
    # (N, C, H, C_out, k, stride, pad, groups, bias, padding_mode)
    (1, 3, 64, 16, 3, 1, 1, 1, True, "zeros"),
    (1, 16, 40, 16, 3, 1, 1, 1, False, "zeros"),
    (4, 16, 30, 24, 3, 1, 1, 1, True, "zeros"),
    (2, 3, 96, 16, 7, 2, 3, 1, False, "zeros"),
    (2, 32, 28, 64, 1, 2, 0, 1, False, "zeros"),
    (1, 32, 56, 32, 3, 1, 1, 32, False, "zeros"),      # depthwise, direct
    (1, 32, 28, 32, 3, 1, 1, 32, False, "zeros"),      # depthwise at batch 1 on a small plane: im2col
    (4, 32, 28, 32, 3, 2, 1, 32, True, "zeros"),       # depthwise, direct, stride 2
    (1, 24, 28, 48, 5, 1, 2, 24, False, "zeros"),      # 5x5 depthwise with a multiplier 2
    (2, 16, 30, 8, 3, 1, 1, 1, True, "reflect"),
    (2, 16, 30, 8, 3, 1, 1, 2, True, "circular"),
    (1, 32, 60, 32, 3, 1, 1, 32, True, "replicate"),   # direct depthwise, padding built per block
    (4, 8, 13, 16, 5, 2, 2, 1, True, "zeros"),
    (3, 64, 14, 64, 3, 1, 1, 1, True, "zeros"),
    (8, 24, 27, 32, 5, 1, 2, 2, True, "zeros"),
    (2, 3, 99, 24, 11, 4, 0, 1, True, "zeros"),
    (2, 8, 17, 12, 3, 1, 1, 1, True, "zeros"),         # odd sizes: Winograd's tiles overhang
    (8, 480, 14, 480, 3, 1, 1, 480, True, "zeros"),    # depthwise, channels last (small planes)
    (2, 32, 10, 96, 3, 1, 1, 32, False, "zeros"),      # the same with a multiplier 3, small blocks
    (1, 64, 7, 64, 5, 1, 2, 64, True, "reflect"),      # channels last, padding built per block
    (8, 64, 28, 256, 1, 1, 0, 1, True, "zeros"),       # 1x1 with a bias (a folded batch norm's): its pass
]


def _conv_inputs(case):
    n, c, h, c_out, k, s, p, g, bias, mode = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, h), dtype=np.float32)
    w = rng.standard_normal((c_out, c // g, k, k), dtype=np.float32)
    b = rng.standard_normal(c_out, dtype=np.float32) if bias else None
    return x, w, b


def _algorithms(case):
    _, _, _, _, k, s, _, g, _, mode = case
    return ["im2col"] + (list(wino.ALGORITHMS) if (k, s, g, mode) == (3, 1, 1, "zeros") else [])


@pytest.fixture(params=["default blocks", "small blocks"])
def blocks(request, monkeypatch):
    """The kernels' own block sizes, and tiny ones (many blocks, several images per block,
    Winograd's filters one chunk per output channel)."""
    if request.param == "small blocks":
        monkeypatch.setattr(win, "BLOCK_BYTES", 1)
        monkeypatch.setattr(win, "MIN_BLOCK_COLS", 300)
        monkeypatch.setattr(wino, "BLOCK_BYTES", 1)
        monkeypatch.setattr(wino, "MIN_BLOCK_TILES", 20)
        monkeypatch.setattr(wino, "FILTER_CHUNK_BYTES", 1)
        monkeypatch.setattr(dw, "PLANE_BLOCK_BYTES", 1)
        monkeypatch.setattr(dw, "CHANNELS_LAST_BLOCK_BYTES", 1)
    return request.param


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_workspace_matches_what_the_kernel_allocates(case, blocks):
    x, w, b = _conv_inputs(case)
    _, _, _, _, _, s, p, g, bias, mode = case
    for algorithm in _algorithms(case):
        declared = conv2d_workspace(x.shape, w.shape, bias, s, p, 1, g, mode, algorithm, 4)
        measured, _ = _transient(lambda: conv2d(x, w, b, s, p, 1, g, mode, algorithm=algorithm))
        assert _close(measured, declared), (algorithm, measured, declared)
        assert declared > 0 or (w.shape[2:] == (1, 1) and s == 1 and p == 0)


@pytest.mark.parametrize("algorithm", list(wino.ALGORITHMS))
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("cap", [None, 200_000])
def test_winograd_declares_its_workspace_to_a_few_kilobytes(algorithm, bias, cap):
    """Tighter than SLACK: once the transforms' Kronecker products exist (made on the first
    call, kept), a Winograd conv holds within a few kB of what it declares: NumPy's buffer
    for the bias is a bound (up to 8,192 elements; a few kB fewer taken on some shapes), and
    its iterator takes 1-5 kB of its own, as im2col's 3 kB. Made per call, the products held
    10-34 kB more; the bias's buffer, undeclared, 34 kB."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 32, 30, 30), dtype=np.float32)
    w = rng.standard_normal((48, 32, 3, 3), dtype=np.float32)
    b = rng.standard_normal(48, dtype=np.float32) if bias else None
    declared = conv2d_workspace(x.shape, w.shape, bias, padding=1, algorithm=algorithm, workspace=cap)

    def run():
        return conv2d(x, w, b, padding=1, algorithm=algorithm, workspace=cap)
    run()
    measured, _ = _transient(run)
    assert abs(measured - declared) <= 10_000 + declared // 500, (measured, declared)


def test_direct_depthwise_scratch_is_held_for_every_part_at_once(monkeypatch):
    """Two cores: each part's block scratch is made before the parts start, so the peak is
    the same on every call (not whichever thread happens to start first)."""
    monkeypatch.setattr(threads, "MIN_BYTES", 0)
    threads.set_cores(2)
    try:
        x, w, _ = _conv_inputs((1, 96, 112, 96, 3, 2, 1, 96, False, "zeros"))
        declared = conv2d_workspace(x.shape, w.shape, False, 2, 1, 1, 96)
        measured = {_transient(lambda: conv2d(x, w, None, 2, 1, 1, 96))[0] for _ in range(4)}
        assert all(_close(m, declared) for m in measured), (measured, declared)
        # 3 images of 60 channels in bands of 41 and 19: the second part starts on a 19-channel
        # band and then makes a full one (found by a review): counted at the full band
        x3, w3, _ = _conv_inputs((3, 60, 112, 60, 3, 1, 1, 60, False, "zeros"))
        declared3 = conv2d_workspace(x3.shape, w3.shape, False, 1, 1, 1, 60)
        measured3 = max(_transient(lambda: conv2d(x3, w3, None, 1, 1, 1, 60))[0] for _ in range(3))
        assert measured3 <= declared3 + SLACK
        threads.set_cores(1)
        alone = conv2d_workspace(x.shape, w.shape, False, 2, 1, 1, 96)
        assert declared > 1.5 * alone   # the 41-channel blocks of two parts against one part's
    finally:
        threads.set_cores(None)


@pytest.mark.parametrize("shape,k,s,p,ceil", [
    ((1, 64, 112, 112), 3, 2, 1, False),    # ResNet's stem pool: three taps, three buffers
    ((1, 64, 224, 224), 2, 2, 0, False),    # VGG's pool1: two taps, two buffers
    ((8, 64, 112, 112), 3, 2, 1, False),
    ((2, 96, 55, 55), 3, 2, 0, True),       # AlexNet's overlapping pool, ceil mode
])
def test_pool_workspace_matches_what_the_kernel_allocates(shape, k, s, p, ceil):
    """The row-reduced block and NumPy's buffers for the strided ufuncs (a bound: up to half
    a buffer over, here 0-30 kB of 0.6 MB)."""
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    declared = pool_workspace(shape, k, s, p, 1, ceil, 4)
    for pool in (max_pool2d, avg_pool2d):
        measured, _ = _transient(lambda: pool(x, k, s, p, ceil_mode=ceil))
        assert declared - 32 * 1024 <= measured <= declared + 8 * 1024, (pool.__name__, measured, declared)


@pytest.mark.parametrize("shape", [(8, 64, 28, 28), (4, 32, 7, 7), (2, 16, 40, 40), (1, 64, 14, 14)])
def test_batch_norm_workspace_matches_what_the_kernel_allocates(shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    c = shape[1]
    gamma, beta = rng.random(c, dtype=np.float32), rng.random(c, dtype=np.float32)
    mean, var = rng.random(c, dtype=np.float32), rng.random(c, dtype=np.float32) + 0.5
    measured, _ = _transient(lambda: batch_norm2d(x, gamma, beta, mean, var, training=False))
    assert _close(measured, bn_inference_workspace(shape, 4)), measured


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 64, 14, 14), (1, 512, 7, 7), (1, 2048, 7, 7), (1, 8192, 1, 1),
                                   (2, 64, 8, 8), (4, 2048, 7, 7)])
def test_batch_norm_workspace_is_a_close_bound(shape, dtype):
    """Tighter than SLACK: one image's pass holds NumPy's buffer for its broadcast scale
    (undeclared, 28-48 kB), and many channels hold float64 statistics, scale and shift
    (undeclared, up to 263 kB on 8,192 channels). Declared now: never more than the iterator's
    few kB under what the kernel holds, and over it by at most one NumPy buffer (a pass
    NumPy runs unbuffered) and the float64 copies of a cast that float64 does not make."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    gamma, beta, mean = (rng.random(c).astype(dtype) for _ in range(3))
    var = rng.random(c).astype(dtype) + 0.5
    declared = bn_inference_workspace(shape, x.itemsize)
    measured, _ = _transient(lambda: batch_norm2d(x, gamma, beta, mean, var, training=False))
    assert declared - x.itemsize * np.getbufsize() - 2 * c * x.itemsize <= measured <= declared + 6_000, \
        (measured, declared)


def test_lrn_workspace_matches_what_the_kernel_allocates():
    x = np.random.default_rng(0).standard_normal((2, 64, 28, 28), dtype=np.float32)
    lrn = registry.get("lrn")
    attrs = lrn.normalise({"size": 5})
    measured, _ = _transient(lambda: lrn.forward([x], {}, attrs, RunContext(keep_cache=False))[0])
    assert _close(measured, lrn.workspace_bytes([x.shape], attrs, 4)) and measured > x.nbytes // 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_workspace_is_one_block_or_a_stated_bound(dtype):
    gelu = registry.get("gelu")
    rng = np.random.default_rng(0)
    for approximate in ("none", "tanh"):
        attrs = gelu.normalise({"approximate": approximate})
        declared = gelu.workspace_bytes([(4, 300_000)], attrs, np.dtype(dtype).itemsize)
        worst = 0
        for x in (rng.standard_normal((4, 300_000)), np.full((4, 300_000), 10.0), np.full((4, 300_000), 2.0),
                  rng.uniform(-8, 8, (4, 300_000))):
            x = x.astype(dtype)
            measured, _ = _transient(lambda: gelu.forward([x], {}, attrs, RunContext(keep_cache=False))[0])
            assert measured <= declared + SLACK // 8, (approximate, measured, declared)
            worst = max(worst, measured)
        if approximate == "tanh":
            assert _close(worst, declared)
        else:   # the bound is near the worst case (values in erf's tail)
            assert worst > 0.8 * declared


@pytest.mark.parametrize("shape", [(2, 16, 48, 48), (8, 32, 56, 56)])   # one piece; pieces on every core
def test_in_place_silu_declares_its_pieces_of_denominators(shape):
    silu = registry.get("silu")
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    declared = silu.workspace_bytes([shape], silu.normalise({"inplace": True}), 4)
    measured, y = _transient(lambda: silu.forward([x], {}, silu.normalise({"inplace": True}),
                                                  RunContext(keep_cache=False))[0])
    assert y is x and _close(measured, declared)
    pieces = len(threads.parts(x.size, 2 * x.nbytes, compute=True))
    assert declared == pieces * min(BLOCK, x.size // pieces) * 4
    # not in place it writes its output with no temporaries at all
    assert silu.workspace_bytes([shape], silu.normalise({}), 4) == 0


@pytest.mark.parametrize("inplace", [False, True])
def test_a_silu_in_a_concatenation_slot_holds_no_array_of_its_size(inplace):
    """conv -> SiLU -> concat [conv, SiLU] at batch 4: the SiLU's output is a strided slice of
    the joined buffer (its input another, or itself in place), taken one image at a time with
    pieces of temporaries, as declared; never an input-sized temporary."""
    spec = {"input": [8, 24, 24], "layers": [
        {"name": "c", "type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1},
        {"name": "s", "type": "silu", "inplace": inplace, "inputs": "c"},
        {"name": "j", "type": "concat", "inputs": ["c", "s"] if not inplace else ["s", "c2"]}]}
    if inplace:   # an in-place SiLU's storage is its input's: the slot holds both
        spec["layers"].insert(2, {"name": "c2", "type": "conv2d", "out_channels": 16, "kernel_size": 1,
                                  "inputs": "input"})
    ex = Executor(spec, workspace=None)
    assert "j" in ex.plan.placement.hosts
    a = archstat.analyze(ex.model, batch=4).totals
    predicted = ex.predict_memory(4) - a["param_bytes"] - a["buffer_bytes"]
    traced = _traced_forward(ex, np.random.default_rng(0).standard_normal((4, 8, 24, 24), dtype=np.float32))
    tensor = 4 * 16 * 24 * 24 * 4
    assert abs(traced - predicted) < tensor // 8, (traced, predicted)


def test_threads_run_under_the_callers_error_settings():
    """NumPy's error settings belong to a thread's context: each part of a pass shared out
    over the cores runs under the caller's, so an invalid value raises wherever it lies."""
    x = np.ones(4_000_000, np.float32)
    for where in (10, x.size - 10):
        x[:] = 1
        x[where] = -np.inf                     # -inf / (1 + exp(inf)) = -inf / inf: invalid
        with np.errstate(invalid="raise"), pytest.raises(FloatingPointError):
            registry.kernels()["silu"](x, keep_sigmoid=False)
    seen = []
    with np.errstate(divide="raise", over="warn"):
        threads.each(lambda part: seen.append(np.geterr()), 8, 1 << 30, compute=True)
    assert all(s["divide"] == "raise" and s["over"] == "warn" for s in seen) and len(seen) == min(8, threads.compute_cores())


@pytest.mark.parametrize("type_name", CONTRACT_TYPES)
def test_every_type_declares_what_its_forward_allocates(type_name):
    """One layer of each registered type (the kernel contract's specs, on a 2 x 16 x 48 x 48
    input: 295 kB per tensor), no caps: the executor's prediction matches tracemalloc's peak
    of a forward, within NumPy's small buffers; exact GELU's stated bound only over."""
    spec = one_layer_spec(type_name)
    spec["input"] = [16, 48, 48]
    for layer in spec["layers"]:
        if layer["type"] == "linear":
            layer["in_features"] = 48
    ex = Executor(spec, workspace=None)
    a = archstat.analyze(ex.model, batch=2).totals
    predicted = ex.predict_memory(2) - a["param_bytes"] - a["buffer_bytes"]
    traced = _traced_forward(ex, np.random.default_rng(0).standard_normal((2, 16, 48, 48), dtype=np.float32))
    if type_name == "gelu":
        assert predicted / 2 < traced <= predicted
    else:
        assert _close(traced, predicted), (traced, predicted)


def test_every_type_states_its_workspace_through_the_registry():
    conv = registry.get("conv2d")
    attrs = conv.normalise({"out_channels": 16, "kernel_size": 3, "padding": 1})
    assert conv.workspace_bytes([(2, 8, 20, 20)], attrs, 4, "winograd4") == \
        conv2d_workspace((2, 8, 20, 20), (16, 8, 3, 3), True, padding=1, algorithm="winograd4")
    assert conv.workspace_bytes([(2, 8, 20, 20)], attrs, 4) == conv2d_workspace((2, 8, 20, 20), (16, 8, 3, 3), True,
                                                                                 padding=1)
    relu = registry.get("relu")
    assert relu.workspace_bytes([(2, 8, 20, 20)], relu.normalise({}), 4) == 0


# --------------------------------------------------------------- whole networks

def _traced_forward(ex: Executor, x: np.ndarray) -> int:
    """tracemalloc's peak of one forward (after a first, untimed one), plus the caller's input."""
    ex.forward(x)
    tracemalloc.start()
    try:
        ex.forward(x)
        return tracemalloc.get_traced_memory()[1] + x.nbytes
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name,batch,algorithm,cap,fold", [
    ("resnet18", 2, "reference", "auto", True),      # conv -> batch norm chains (folded), residual adds
    ("resnet18", 2, "reference", "auto", False),     # the same, batch norms on their own
    ("mobilenet_v2", 1, "reference", "auto", True),  # direct depthwise convs on both cores
    ("mobilenet_v2", 1, "reference", "auto", False),
    ("densenet121", 1, "winograd4", "auto", True),   # concatenations that hold their inputs, Winograd into them
    ("densenet121", 1, "winograd4", None, True),     # the same with every kernel on its default blocks
    ("squeezenet1_0", 2, "winograd2", "auto", True),
    ("alexnet", 2, "reference", None, True),         # an 11x11 stride-4 conv: padded copy and columns
    ("vgg11_lrn", 1, "winograd4", "auto", True),     # local response normalisation's squares and window sums
    ("vgg11_lrn", 1, "winograd4", None, True),
])
def test_predicted_peak_matches_a_traced_forward(name, batch, algorithm, cap, fold):
    ex = Executor(name, algorithm=algorithm, workspace=cap, fold=fold)
    a = archstat.analyze(ex.model, batch=batch).totals
    predicted = ex.predict_memory(batch) - a["param_bytes"] - a["buffer_bytes"]
    x = np.random.default_rng(0).standard_normal((batch, *ex.model.input_shape), dtype=np.float32)
    traced = _traced_forward(ex, x)
    assert abs(traced - predicted) <= 0.02 * predicted, (traced, predicted)
    if fold and name in ("resnet18", "mobilenet_v2"):
        # their peak is at a batch norm after a convolution, written over its output here:
        # below the analysis' peak (which gives the batch norm its own array), workspace and all
        assert traced < a["peak_activation_bytes"] + x.nbytes
    else:
        # workspace is real: the activations and the input alone fall short of the traced peak
        assert a["peak_activation_bytes"] + x.nbytes < traced


def test_an_absurd_batch_is_predicted_without_listing_blocks_or_measuring():
    """The memory guard runs before anything: the workspace of every path comes from the
    first block and a count, so a batch of 10**20 is refused at once (listing its blocks or
    measuring 'auto' at that size would exhaust the machine)."""
    spec = {"input": [8, 30, 30], "layers": [
        {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1, "groups": 8},   # direct depthwise
        {"type": "batch_norm2d"},
        {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},                # Winograd or im2col
        {"type": "conv2d", "out_channels": 4, "kernel_size": 5, "stride": 2, "padding_mode": "reflect",
         "padding": 2},
    ]}
    for algorithm in ("reference", "winograd4", "auto"):
        need = Executor(spec, algorithm=algorithm).predict_memory(10**20)
        assert need > 10**20 * 8 * 30 * 30 * 4 * 3    # the input and two activations at least


def test_auto_predicts_the_largest_workspace_until_it_knows_its_choices(tmp_path, monkeypatch):
    """Before 'auto' has measured a shape the prediction counts each layer's largest
    workspace (a bound, nothing measured); once a pass has chosen, the prediction follows the
    choices and matches tracemalloc again."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    from archstat.engine import algorithms
    speed = {"im2col": 1.0, "winograd2": 3.0, "winograd4": 2.0}      # im2col, the least workspace, wins
    monkeypatch.setattr(algorithms, "measure", lambda ltype, shapes, attrs, name, dtype, train, cap=None: speed[name])
    spec = {"input": [16, 40, 40], "layers": [
        {"type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1},
        {"type": "relu", "inplace": True},
        {"type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1},
    ]}
    ex = Executor(spec, algorithm="auto")
    a = archstat.analyze(ex.model, batch=2).totals
    before = ex.predict_memory(2) - a["param_bytes"] - a["buffer_bytes"]
    x = np.random.default_rng(0).standard_normal((2, 16, 40, 40), dtype=np.float32)
    traced = _traced_forward(ex, x)
    after = ex.predict_memory(2) - a["param_bytes"] - a["buffer_bytes"]
    assert set(ex.algorithms(2).values()) == {"im2col"}
    assert before > after and abs(traced - after) <= 0.02 * after, (before, after, traced)


# --------------------------------------------------------------- workspace caps

def test_fit_block_finds_the_largest_aim_under_the_cap():
    def work(aim):      # a kernel whose workspace grows with its block aim
        return 100 + aim // 10
    assert win.fit_block(work, 10**6, 8000) == 8000     # the largest aim fits
    assert win.fit_block(work, 500, 8000) == 4009       # 100 + 400 = 500; 4010 would be 501
    assert win.fit_block(work, 100, 8000) == 9          # 100 + 0
    assert win.fit_block(work, 50, 8000) is None        # nothing fits, not even one row


@pytest.mark.parametrize("algorithm", ["im2col", "winograd2", "winograd4"])
def test_a_capped_conv_fits_its_cap_and_computes_the_same(algorithm):
    """VGG-like 64 -> 64 channels at 112x112: the default blocks take 8-30 MB; under a cap the
    blocks shrink until the workspace fits, tracemalloc agrees with the declared size, and
    the output is the uncapped one (up to float32 rounding: the GEMMs are cut differently)."""
    x, w, b = _conv_inputs((1, 64, 112, 64, 3, 1, 1, 1, True, "zeros"))
    full = conv2d_workspace(x.shape, w.shape, True, 1, 1, algorithm=algorithm)
    want = conv2d(x, w, b, 1, 1, algorithm=algorithm)
    assert full > 7 * 2**20
    assert conv2d_workspace(x.shape, w.shape, True, 1, 1, algorithm=algorithm, workspace=full) == full
    for cap in (4 * 2**20, 2**20):
        declared = conv2d_workspace(x.shape, w.shape, True, 1, 1, algorithm=algorithm, workspace=cap)
        assert cap / 2 < declared <= cap      # the largest blocks that fit, not just any
        measured, y = _transient(lambda: conv2d(x, w, b, 1, 1, algorithm=algorithm, workspace=cap))
        assert _close(measured, declared), (cap, measured, declared)
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
    # a cap below one output row (one tile row) of blocks: the smallest blocks, over the cap
    smallest = conv2d_workspace(x.shape, w.shape, True, 1, 1, algorithm=algorithm, workspace=1)
    assert 1 < smallest < 2**20


@pytest.mark.parametrize("case,caps", [
    # MobileNetV2's first stride-2 depthwise conv (96 channels at 112x112), flat planes
    ((1, 96, 112, 96, 3, 2, 1, 96, False, "zeros"), (2**20, 300_000)),
    # EfficientNet-B0's 5x5 on 14x14, channels last; 100 kB holds a few channels at a time
    ((2, 672, 14, 672, 5, 1, 2, 672, False, "zeros"), (2**20, 100_000)),
])
def test_a_capped_depthwise_conv_takes_smaller_channel_blocks(case, caps):
    """Each thread part's planes of the default blocks make megabytes of workspace; under a
    cap the blocks hold fewer channels, and the output is the same."""
    x, w, _ = _conv_inputs(case)
    _, c, _, _, _, s, p, g, _, _ = case
    full = conv2d_workspace(x.shape, w.shape, False, s, p, 1, g)
    want = conv2d(x, w, None, s, p, 1, g)
    assert full > 2 * 2**20
    for cap in caps:
        declared = conv2d_workspace(x.shape, w.shape, False, s, p, 1, g, workspace=cap)
        assert cap / 2 < declared <= cap
        measured = max(_transient(lambda: conv2d(x, w, None, s, p, 1, g, workspace=cap))[0] for _ in range(3))
        assert _close(measured, declared), (cap, measured, declared)
        np.testing.assert_array_equal(conv2d(x, w, None, s, p, 1, g, workspace=cap), want)


def test_a_cap_below_the_folded_weight_adds_the_bias_in_its_own_pass():
    """AlexNet's conv4 (192 -> 384 at 13x13, with a bias): folding the bias into the GEMM
    takes a 2.66 MB copy of the weight, more than any small cap; under one the bias is added
    in a pass of its own, the workspace fits, and the output is the same."""
    x, w, b = _conv_inputs((1, 192, 13, 384, 3, 1, 1, 1, True, "zeros"))
    fold = 384 * (192 * 9 + 1) * 4
    assert conv2d_workspace(x.shape, w.shape, True, 1, 1) > fold == 2_655_744
    want = conv2d(x, w, b, 1, 1)
    for cap in (600_000, 160_000):
        declared = conv2d_workspace(x.shape, w.shape, True, 1, 1, workspace=cap)
        measured, y = _transient(lambda: conv2d(x, w, b, 1, 1, workspace=cap))
        assert declared <= cap and abs(measured - declared) <= 8 * 1024, (cap, measured, declared)
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


#: three 3x3 convs without bias on a 16 x 64 x 64 input (float32): outputs of 256 kB, 512 kB,
#: 512 kB, 256 kB; in-place ReLUs
CHAIN = {"input": [16, 64, 64], "layers": [
    {"name": "c1", "type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1, "bias": False},
    {"name": "r1", "type": "relu", "inplace": True},
    {"name": "c2", "type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1, "bias": False},
    {"name": "r2", "type": "relu", "inplace": True},
    {"name": "c3", "type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1, "bias": False},
]}


def test_auto_caps_by_hand():
    """Live besides the caller's input, by hand: c1 its output (512 kB: the input is the
    caller's), c2 two 512 kB tensors (the peak, P = 1 MiB), c3 512 + 256 kB. A step's cap is
    what keeps it under P, and at least a tenth of P (104,858 bytes)."""
    kb = 1024
    caps = Executor(CHAIN).workspace_caps(1)
    floor = -(-2**20 // 10)
    assert workspace.SHARE == 0.10 and floor == 104_858
    assert caps == {"c1": 512 * kb, "r1": 512 * kb, "c2": floor, "r2": 512 * kb, "c3": 256 * kb}
    assert Executor(CHAIN, workspace=None).workspace_caps(1) == {}
    assert Executor(CHAIN, workspace=300_000).workspace_caps(1) == dict.fromkeys(caps, 300_000)


@pytest.mark.parametrize("algorithm", ["reference", "winograd4"])
def test_auto_caps_hold_the_peak_within_a_tenth_of_the_activations(algorithm):
    """Uncapped, the convs' workspace sets the peak (im2col's 8 MiB blocks, Winograd's
    buffers); capped, the pass peaks within 1.1 times the activations' peak (with the
    caller's input), or at c2's smallest blocks where they are over its cap (Winograd's one
    tile row of 16 tiles: 200 kB), tracemalloc agrees, and the output is the same."""
    x = np.random.default_rng(0).standard_normal((1, 16, 64, 64), dtype=np.float32)
    capped, free = Executor(CHAIN, algorithm=algorithm), Executor(CHAIN, algorithm=algorithm, workspace=None)
    a = archstat.analyze(capped.model, batch=1).totals
    weights = a["param_bytes"]
    activations = 2**20 + x.nbytes      # c2's step, and the caller's input
    assert free.predict_memory(1) - weights > 1.5 * activations
    predicted = capped.predict_memory(1) - weights
    tool = "im2col" if algorithm == "reference" else algorithm
    smallest = conv2d_workspace((1, 32, 64, 64), (32, 32, 3, 3), False, 1, 1, algorithm=tool, workspace=1)
    assert (smallest < 2**20 // 10) == (algorithm == "reference")
    assert activations <= predicted <= max((1 + workspace.SHARE) * activations, activations + smallest)
    traced = _traced_forward(capped, x)
    assert abs(traced - predicted) <= 0.02 * predicted, (traced, predicted)
    np.testing.assert_allclose(capped.forward(x), free.forward(x), rtol=1e-5, atol=1e-5)


def test_a_bad_workspace_setting_is_refused():
    for bad in (-1, 2.5, "huge", True, float("nan")):
        with pytest.raises(ArchstatError, match="workspace"):
            Executor(CHAIN, workspace=bad)


def test_the_profile_takes_the_workspace_setting(cli, write_spec, capsys):
    """``--workspace``: 'none', a size, or 'auto' (the default); the memory line says which,
    the totals keep it, and a bad value is one line."""
    path = write_spec(CHAIN)
    for arg, want, words in (("none", None, "on their default blocks"), ("300kB", 300_000, "capped at 300 kB"),
                             ("auto", "auto", "under the activations' peak")):
        code, out, err = cli("profile", str(path), "--workspace", arg, "--repeat", "1", "--quiet", "--format", "json")
        assert code == 0, err
        assert json.loads(out)["totals"]["workspace"] == want
        code, out, err = cli("profile", str(path), "--workspace", arg, "--repeat", "1", "--quiet", "--columns", "400")
        assert words in " ".join(out.split()), out
    with pytest.raises(SystemExit) as exit_:      # argparse's own one-line refusal
        cli("profile", str(path), "--workspace", "lots", "--quiet")
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "'auto' or 'none'" in err and len(err.strip().splitlines()) == 1
