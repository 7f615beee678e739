"""Concatenations that hold their inputs (archstat.placement): which tensors are placed, the
peaks the liveness plan predicts for them (derived by hand), when a placement is dropped
because it would raise the peak, and the engine running them with the values of a plain pass.
The executor's per-layer memory against the plan is tested in test_executor (liveness)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import archstat
from archstat import Executor
from archstat.liveness import liveness


def conv(name, out, src=None, k=1):
    layer = {"name": name, "type": "conv2d", "out_channels": out, "kernel_size": k, "padding": k // 2}
    return {**layer, "inputs": src} if src else layer


def peaks(spec):
    """(placed, plain) peaks in elements at batch 1, and the analysis' bytes at batch 1 float32."""
    model = archstat.load(spec)
    sizes = {n: math.prod(model.graph.nodes[n]["shape"]) for n in model.inference_order}
    placed, plain = liveness(model), liveness(model, place=False)
    analysed = archstat.analyze(model, batch=1, dtype="float32").totals["peak_activation_bytes"]
    return model, placed, placed.peak(sizes)[0], plain.peak(sizes)[0], analysed


def test_two_branches_written_into_their_concatenation():
    # x (1 x 4 x 4 = 16) -> a (4 ch = 64), b (4 ch = 64) -> cat (128). Plain: at cat, a + b + cat
    # = 256. Placed: cat's buffer comes with a: x + cat = 144 while b runs, then cat = 128.
    spec = {"input": [1, 4, 4], "layers": [conv("a", 4), conv("b", 4, "input"),
                                           {"name": "cat", "type": "concat", "inputs": ["a", "b"]}]}
    model, plan, placed, plain, analysed = peaks(spec)
    assert (placed, plain) == (144, 256) and analysed == 144 * 4
    assert dict(plan.placement.hosts) == {"cat": 1}
    assert plan.storage["a"] == plan.storage["b"] == "cat" and plan.allocate["a"] == ("cat",) and plan.allocate["cat"] == ()
    ex = Executor(model, seed=0, dtype="float64")
    x = np.random.default_rng(0).standard_normal((3, 1, 4, 4))
    y = ex.forward(x)
    np.testing.assert_array_equal(y, ex.forward(x, keep_cache=True))   # a pass that places nothing
    np.testing.assert_array_equal(y[:, :4], archstat.run({**spec, "layers": spec["layers"][:1]}, x, seed=0,
                                                                     dtype="float64"))


def test_a_placement_that_would_raise_the_peak_is_dropped():
    # s (1 ch) is made long before the join: its slot would hold cat's 17 channels through t, w
    # and v. Per 4x4 image, in channels: placed, w's step holds cat 17 + t 16 + w 16 = 49; plain,
    # the most is at cat, s 1 + v 16 + cat 17 = 34.
    spec = {"input": [1, 4, 4], "layers": [
        conv("s", 1), conv("t", 16), conv("w", 16), conv("v", 16),
        {"name": "cat", "type": "concat", "inputs": ["s", "v"]}]}
    model, plan, placed, plain, analysed = peaks(spec)
    assert not plan.placement and placed == plain == 34 * 16 and analysed == 34 * 16 * 4
    forced = liveness(model, place=True)   # the same rule, whichever way asked
    assert not forced.placement


def test_densenet_concatenations_are_views_of_the_block():
    model = archstat.load("densenet121")
    plan = liveness(model)
    placed = plan.placement
    # the four blocks' final concatenations hold every feature; each dense layer's concatenation
    # (58 = 6 + 12 + 24 + 16) is a prefix of its block, no copy
    assert len(placed.hosts) == 4 and len(placed.views) == 58
    sizes = {n: math.prod(model.graph.nodes[n]["shape"]) for n in model.inference_order}
    assert plan.peak(sizes)[0] < liveness(model, place=False).peak(sizes)[0]


@pytest.mark.parametrize("name", ["googlenet", "inception_v3", "squeezenet1_0", "shufflenet_v2_x1_0", "densenet121"])
def test_placement_never_raises_a_zoo_peak(name):
    model = archstat.load(name)
    sizes = {n: math.prod(model.graph.nodes[n]["shape"]) for n in model.inference_order}
    assert liveness(model).placement
    assert liveness(model).peak(sizes)[0] <= liveness(model, place=False).peak(sizes)[0]


def test_a_host_written_in_place_copies_and_a_view_is_never_an_output():
    spec = {"input": [2, 3, 3], "layers": [
        conv("a", 2), conv("b", 2, "input"),
        {"name": "cat", "type": "concat", "inputs": ["a", "b"]},
        {"name": "r", "type": "relu", "inplace": True},     # writes cat: a and b must stay apart
        {"name": "z", "type": "concat", "inputs": ["a", "b"]}]}   # an output: a copy, not a view
    model = archstat.load(spec)
    placed = liveness(model).placement
    assert "cat" not in placed.hosts and "z" not in placed.views
    ex = Executor(model, seed=0, dtype="float64")
    x = np.random.default_rng(1).standard_normal((2, 2, 3, 3))
    out = ex.forward(x)
    a = archstat.run({**spec, "layers": spec["layers"][:1]}, x, seed=0, dtype="float64")
    np.testing.assert_array_equal(out["r"], np.maximum(out["z"], 0))
    np.testing.assert_array_equal(out["z"][:, :2], a)


@pytest.mark.parametrize("kernel", ["conv3x3", "conv1x1", "conv3x3-groups", "batch_norm"])
@pytest.mark.parametrize("batch", [1, 3])
def test_kernels_write_straight_into_a_slice(kernel, batch):
    from archstat.layers.conv import conv2d
    from archstat.layers.norm_kernels import batch_norm2d, _bn_forward
    rng = np.random.default_rng(2)
    x = rng.standard_normal((batch, 4, 5, 5)).astype(np.float32)
    buf = np.full((batch, 9, 5, 5), np.nan, np.float32)
    out = buf[:, 2:8]                       # channels 2..7: not contiguous when batch > 1
    if kernel == "batch_norm":
        mean, var = rng.standard_normal(4), rng.random(4) + 0.5
        w, b = rng.standard_normal(4), rng.standard_normal(4)
        out = buf[:, 2:6]
        want = batch_norm2d(x, w, b, mean, var, False)
        got = _bn_forward(x, w, b, mean, var, False, 0.1, 1e-5, out)[0]
    else:
        k, groups = (1, 1) if kernel == "conv1x1" else (3, 2 if "groups" in kernel else 1)
        w = rng.standard_normal((6, 4 // groups, k, k)).astype(np.float32)
        b = rng.standard_normal(6).astype(np.float32)
        want = conv2d(x, w, b, padding=k // 2, groups=groups)
        got = conv2d(x, w, b, padding=k // 2, groups=groups, out=out)
    assert got is out
    np.testing.assert_array_equal(got, want)
    assert np.isnan(np.delete(buf, range(2, 2 + out.shape[1]), axis=1)).all()   # nothing else written


def test_a_buffer_that_cannot_be_viewed_is_not_used():
    from archstat.layers.outbuf import reshaped, usable
    a = np.zeros((2, 3, 4, 5))
    assert reshaped(a[:, 1:], (2, 2, 20)) is not None
    assert reshaped(a.transpose(0, 1, 3, 2), (2, 3, 20)) is None
    assert not usable(a.transpose(0, 1, 3, 2), (2, 3, 5, 4), a.dtype, (2, 3, 20))
    assert not usable(a, (2, 3, 4, 5), np.dtype(np.float32))


def test_an_executor_told_not_to_place_copies_and_gives_the_same_values():
    model = archstat.load("squeezenet1_0")
    x = np.random.default_rng(6).standard_normal((1, 3, 224, 224)).astype(np.float32)
    placed, plain = Executor(model, seed=0), Executor(model, seed=0, place=False)
    assert placed.plan.placement and not plain.plan.placement
    np.testing.assert_array_equal(placed.forward(x), plain.forward(x))


def _same_as_plain(spec, batches=(1, 3)):
    model = archstat.load(spec)
    for batch in batches:
        x = np.random.default_rng(batch).standard_normal((batch, *model.input_shape))
        a = Executor(model, seed=0, dtype="float64").forward(x)
        b = Executor(model, seed=0, dtype="float64", place=False).forward(x)
        for key in (a if isinstance(a, dict) else {0: a}):
            np.testing.assert_array_equal((a if isinstance(a, dict) else {0: a})[key],
                                          (b if isinstance(b, dict) else {0: b})[key])
    return model


def test_a_same_shape_permute_is_not_placed_in_its_owners_stead():
    # found by a differential fuzzer: p = permute(a) has a's shape when H == W, but not its
    # layout; placing a's storage for p made the concat copy p over a, and a's later reader
    # (the add) read transposed values. Likewise a view concat must not read a where p is meant.
    permute = {"name": "p", "type": "permute", "dims": [0, 1, 3, 2]}
    model = _same_as_plain({"input": [2, 4, 4], "layers": [
        conv("a", 3), permute, conv("b", 2, "input"), {"name": "cat", "type": "concat", "inputs": ["p", "b"]},
        conv("c", 3, "cat"), {"name": "s", "type": "add", "inputs": ["c", "a"]}]})
    assert "a" not in liveness(model).placement.slots
    _same_as_plain({"input": [2, 4, 4], "layers": [
        conv("a", 3), conv("b", 2, "input"), {**permute, "inputs": "a"},
        {"name": "v", "type": "concat", "inputs": ["p", "b"]}, conv("c", 2, "v"),
        {"name": "h", "type": "concat", "inputs": ["a", "b", "c"]}]})


def test_a_view_concat_is_not_made_of_tensors_written_in_place_after_it():
    # v = [a, b] would be a view of h's buffer, but r writes a in place after v: v must keep
    # a's values from before r (h takes r, a's storage, written by then)
    model = _same_as_plain({"input": [2, 4, 4], "layers": [
        conv("a", 3), conv("b", 2, "input"), {"name": "v", "type": "concat", "inputs": ["a", "b"]},
        conv("c", 2, "v"), {"name": "r", "type": "relu", "inplace": True, "inputs": "a"},
        {"name": "h", "type": "concat", "inputs": ["r", "b", "c"]}]})
    assert "v" not in liveness(model).placement.views


def test_roots_that_raise_the_peak_only_together_are_not_placed():
    # found by the fuzzer: dropping l10's or l11's placements alone left the peak at 171
    # elements, dropping both gave the plain plan's 162; the plan must never peak above it
    spec = {"input": [1, 3, 3], "layers": [
        {"name": "l5", "inputs": ["input", "input", "input"], "type": "concat"},
        {"name": "l7", "inputs": ["l5", "l5"], "type": "concat", "dim": 2},
        {"name": "l8", "inputs": "l7", "type": "sigmoid"},
        {"name": "l9", "inputs": "l5", "type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},
        {"name": "l10", "inputs": ["l5", "l5"], "type": "concat"},
        {"name": "l11", "inputs": ["l9", "input"], "type": "concat"}]}
    model, plan, placed, plain, analysed = peaks(spec)
    assert placed <= plain == 162 and analysed == placed * 4
    _same_as_plain(spec)
