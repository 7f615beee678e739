"""Batch norms folded into the convolution before them at inference (archstat/engine/folding.py):
which pairs fold, the same outputs as batch norms on their own, weights changed in place seen
at the next call, training and cached passes untouched, and the memory the plan predicts."""
from __future__ import annotations

import numpy as np
import pytest

import archstat
from archstat import Executor
from archstat.engine import folding
from archstat.profiling import Calibration, machine_info, profile

from test_workspace import _traced_forward


def chain(**norm):
    """input (4, 8, 8) -> c1 (1x1, 16, bias) -> n1 -> r1 (in place) -> c2 (1x1, 4, no bias) -> n2
    -> head (1x1, 64): the head's step, 4 + 64 channels, is the peak, so that folding (which
    never raises the peak) folds both batch norms."""
    return {"input": [4, 8, 8], "layers": [
        {"name": "c1", "type": "conv2d", "out_channels": 16, "kernel_size": 1},
        {"name": "n1", "type": "batch_norm2d", **norm},
        {"name": "r1", "type": "relu", "inplace": True},
        {"name": "c2", "type": "conv2d", "out_channels": 4, "kernel_size": 1, "bias": False},
        {"name": "n2", "type": "batch_norm2d", **norm},
        {"name": "head", "type": "conv2d", "out_channels": 64, "kernel_size": 1}]}


def _stirred(ex: Executor, seed: int = 1) -> Executor:
    """Running statistics and affine parameters away from the identity, so that batch norm does work."""
    rng = np.random.default_rng(seed)
    for name, bufs in ex.buffers.items():
        if "running_var" in bufs:
            bufs["running_mean"][:] = rng.uniform(-1, 1, bufs["running_mean"].shape)
            bufs["running_var"][:] = rng.uniform(0.25, 4, bufs["running_var"].shape)
    for name, params in ex.params.items():
        for arr in params.values():
            arr[:] = rng.standard_normal(arr.shape)
    return ex


def test_pairs_are_a_batch_norm_after_a_convolution_nothing_else_reads():
    assert folding.pairs(archstat.load(chain())) == {"n1": "c1", "n2": "c2"}
    # the convolution's output read twice: n1 cannot write over it
    spec = chain()
    spec["layers"].append({"name": "tap", "type": "global_avg_pool2d", "inputs": "c1"})
    assert folding.pairs(archstat.load(spec)) == {"n2": "c2"}
    # batch statistics at inference (no running statistics): not a fixed affine
    assert folding.pairs(archstat.load(chain(track_running_stats=False))) == {}
    # after something that is not a convolution, or when the convolution's output is an output too
    spec = {"input": [4, 8, 8], "layers": [{"name": "p", "type": "max_pool2d", "kernel_size": 2},
                                           {"name": "n", "type": "batch_norm2d"}]}
    assert folding.pairs(archstat.load(spec)) == {}
    assert Executor(chain(), fold=False).fold_pairs == {}
    assert len(Executor("resnet18").fold_pairs) == 20   # the stem, 8 blocks x 2, 3 downsamples


@pytest.mark.parametrize("batch", [1, 8])
def test_folded_and_in_place_batch_norms_give_the_unfolded_outputs(batch):
    ex = _stirred(Executor(chain(), dtype="float64"))
    plain = Executor(chain(), dtype="float64", weights=ex.state(), fold=False)
    x = np.random.default_rng(2).standard_normal((batch, 4, 8, 8))
    assert ex.folded(batch) == {"n1": "c1", "n2": "c2"}
    np.testing.assert_allclose(ex.forward(x), plain.forward(x), rtol=1e-12, atol=1e-12)


CONVS = [
    pytest.param({"kernel_size": 3, "padding": 1}, {}, "float64", "reference", id="3x3 im2col"),
    pytest.param({"kernel_size": 3, "padding": 1}, {}, "float64", "winograd4", id="3x3 winograd4"),
    pytest.param({"kernel_size": 3, "padding": 1, "bias": False}, {}, "float64", "winograd2", id="winograd2 no bias"),
    pytest.param({"kernel_size": 3, "padding": 2, "dilation": 2, "groups": 4}, {}, "float64", "reference",
                 id="grouped dilated"),
    pytest.param({"kernel_size": 3, "padding": 1, "groups": 8, "padding_mode": "reflect"}, {}, "float64",
                 "reference", id="depthwise x2 reflect"),
    pytest.param({"kernel_size": 3, "stride": 2, "padding": 1}, {"affine": False}, "float64", "reference",
                 id="batch norm without affine"),
    pytest.param({"kernel_size": 5, "padding": 2, "groups": 8}, {"eps": 1e-3}, "float32", "auto",
                 id="5x5 depthwise x2 float32 auto"),
]


@pytest.mark.parametrize("conv,norm,dtype,algorithm", CONVS)
def test_every_kind_of_convolution_folds_to_the_unfolded_outputs(conv, norm, dtype, algorithm):
    spec = {"input": [8, 12, 12], "layers": [
        {"name": "c", "type": "conv2d", "out_channels": 16, **conv},
        {"name": "n", "type": "batch_norm2d", **norm},
        {"name": "r", "type": "relu", "inplace": True},
        {"name": "head", "type": "conv2d", "out_channels": 128, "kernel_size": 1}]}   # the peak
    ex = _stirred(Executor(spec, dtype=dtype, algorithm=algorithm))
    plain = Executor(spec, dtype=dtype, algorithm=algorithm, weights=ex.state(), fold=False)
    x = np.random.default_rng(7).standard_normal((4, 8, 12, 12)).astype(dtype)
    assert ex.folded(4) == {"n": "c"}
    tol = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(ex.forward(x), plain.forward(x), rtol=tol, atol=tol)


def test_folding_never_raises_the_peak():
    """An expansion 1x1 (16 -> 512) then a bottleneck 1x1 (512 -> 128, no bias) and its batch
    norm, at batch 4: the bottleneck's step, its 2 MB input and 512 kB output, is the peak; a
    fold would add its scaled weights (65,536 + 128 values) and its new bias's pass there, so it
    is not made and the batch norm runs in place (its step lower). Over the zoo's networks with
    batch norms, the predicted peak folded is never above the unfolded one."""
    spec = {"input": [16, 16, 16], "layers": [
        {"name": "a", "type": "conv2d", "out_channels": 512, "kernel_size": 1, "bias": False},
        {"name": "ar", "type": "relu", "inplace": True},
        {"name": "c", "type": "conv2d", "out_channels": 128, "kernel_size": 1, "bias": False},
        {"name": "n", "type": "batch_norm2d"},
        {"name": "r", "type": "relu", "inplace": True}]}
    ex, plain = Executor(spec), Executor(spec, fold=False)
    assert ex.fold_pairs == {"n": "c"} and folding.pays(ex.model, "c", ex.model.shapes(4), 4)
    assert ex.folded(4) == {} and ex.predict_memory(4) == plain.predict_memory(4)
    for name, batch in (("resnet50", 1), ("densenet121", 1), ("bn_nin", 8), ("mobilenet_v2", 8)):
        folded, unfolded = Executor(name), Executor(name, fold=False)
        assert folded.folded(batch) and folded.predict_memory(batch) <= unfolded.predict_memory(batch), name


def test_a_convolution_with_more_weights_than_outputs_leaves_its_batch_norm_in_place():
    # 64 -> 64 1x1 on 2x2: 4,160 weights and biases against 256 outputs an image. At batch 1 the
    # scaled weights would cost more than the pass they save: the batch norm writes over the
    # convolution's output. From batch 17 (4,352 outputs) the fold pays.
    spec = {"input": [64, 2, 2], "layers": [{"name": "c", "type": "conv2d", "out_channels": 64, "kernel_size": 1},
                                            {"name": "n", "type": "batch_norm2d"},
                                            {"name": "head", "type": "conv2d", "out_channels": 256, "kernel_size": 1}]}
    ex = _stirred(Executor(spec, dtype="float64"))
    plain = Executor(spec, dtype="float64", weights=ex.state(), fold=False)
    assert ex.fold_pairs == {"n": "c"}
    assert ex.folded(16) == {} and ex.folded(17) == {"n": "c"}
    for batch in (1, 17):
        x = np.random.default_rng(batch).standard_normal((batch, 64, 2, 2))
        seen = {}
        y = ex.forward(x, hook=lambda name, out, live: seen.setdefault(name, out))
        np.testing.assert_allclose(y, plain.forward(x), rtol=1e-12, atol=1e-12)
        assert seen["n"] is seen["c"]   # one array: written over, or computed normalised


def test_weights_changed_in_place_are_seen_by_the_next_call():
    ex = _stirred(Executor(chain(), dtype="float64"))
    x = np.random.default_rng(3).standard_normal((8, 4, 8, 8))
    ex.forward(x)
    ex.params["c1"]["weight"] *= 2
    ex.params["n1"]["bias"] += 1
    ex.buffers["n2"]["running_var"][:] = 9.0
    fresh = Executor(chain(), dtype="float64", weights=ex.state(), fold=False)
    np.testing.assert_allclose(ex.forward(x), fresh.forward(x), rtol=1e-12, atol=1e-12)


def test_training_and_passes_that_keep_their_caches_run_every_batch_norm():
    ex = _stirred(Executor(chain(), dtype="float64"))
    plain = Executor(chain(), dtype="float64", weights=ex.state(), fold=False)
    x = np.random.default_rng(4).standard_normal((8, 4, 8, 8))
    dy = np.random.default_rng(5).standard_normal((8, 64, 8, 8))
    for train in (True, False):    # batch statistics; the inference function's gradients
        a = ex.forward(x, train=train, keep_cache=True)
        b = plain.forward(x, train=train, keep_cache=True)
        np.testing.assert_array_equal(a, b)
        ga, gb = ex.backward(dy), plain.backward(dy)
        for layer in gb:
            for field in gb[layer]:
                np.testing.assert_array_equal(ga[layer][field], gb[layer][field])
        np.testing.assert_array_equal(ex.input_grad, plain.input_grad)


def test_the_plan_writes_each_batch_norm_over_its_convolution():
    """chain() widened to (16, 32, 32) -> 64 -> 16 -> head 128 channels, at batch 8: a tensor
    of 64 channels is 2,097,152 bytes, of 16 524,288. On their own, n1 holds c1's output and
    its own, 2 x 2,097,152; folded, n1 adds nothing: its step holds c1's storage alone, and so
    does r1's. Both predictions match a traced pass (to NumPy's small buffers, under 64 kB)."""
    spec = chain()
    spec["input"] = [16, 32, 32]
    spec["layers"][0]["out_channels"], spec["layers"][3]["out_channels"] = 64, 16
    spec["layers"][5]["out_channels"] = 128
    x = np.random.default_rng(6).standard_normal((8, 16, 32, 32), dtype=np.float32)
    ex, plain = Executor(spec), Executor(spec, fold=False)
    assert ex.folded(8) == {"n1": "c1", "n2": "c2"}
    steps = ex._step_bytes(ex._shapes(8, None)).live
    plain_steps = plain._step_bytes(plain._shapes(8, None)).live
    assert plain_steps["n1"] == 2 * 2_097_152 and plain_steps["n2"] == 2 * 524_288
    assert steps["n1"] == steps["r1"] == 2_097_152 and steps["n2"] == 524_288
    # a folded convolution's step adds its scaled weights and bias: c1's (64 x 16 + 64) x 4
    # bytes; c2's (16 x 64 + 16) x 4, and the pass its new bias needs, one NumPy buffer of
    # 8,192 values (its output has 131,072)
    shapes = ex._shapes(8, None)
    grown = {k: v - plain._step_peaks(shapes, {})[k] for k, v in ex._step_peaks(shapes, ex.folded(8)).items()}
    assert grown["c1"] == 4 * (64 * 16 + 64) and grown["c2"] == 4 * (16 * 64 + 16) + 4 * 8_192
    a = archstat.analyze(ex.model, batch=8).totals
    state = a["param_bytes"] + a["buffer_bytes"]
    for e in (ex, plain):
        predicted, traced = e.predict_memory(8) - state, _traced_forward(e, x)
        assert abs(traced - predicted) <= 64 * 1024, (e.fold_pairs, predicted, traced)
    assert ex.predict_memory(8) <= plain.predict_memory(8)


def test_the_profile_names_the_folded_batch_norms():
    cal = Calibration(machine=machine_info(), gemm_gflops={"float32": 100.0, "float64": 50.0},
                      bandwidth_gbs=10.0, gemm_size=0, copy_bytes=0, measured_at="test")
    p = profile(chain(), batch=8, repeat=1, warmup=0, calibration=cal)
    rows = {r["name"]: r for r in p.rows()}
    assert rows["n1"]["algorithm"] == "folded into c1" and rows["n2"]["algorithm"] == "folded into c2"
    assert np.isnan(rows["n1"]["gflops"])      # its work ran in c1: no rate of its own
    p = profile(chain(), batch=2, repeat=1, warmup=0, calibration=cal, backward=True)
    assert {r["algorithm"] for r in p.rows() if r["name"] in ("n1", "n2")} == {""}
