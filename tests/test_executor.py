"""The graph executor: end-to-end finite-difference checks (LeNet-5 and a branching graph),
a training smoke test, the liveness plan followed for real, the memory guard, weights,
dtypes and errors."""
from __future__ import annotations

import numpy as np
import pytest

import archstat
import archstat.engine as engine
from archstat.analysis import liveness
from archstat.engine.executor import BackwardResult, Executor
from archstat.errors import ArchstatError
from archstat.layers import get
from archstat.layers.registry import LayerType
from naive_ops import numerical_gradient_at, rel_error, sample_indices

# LeNet-5 (LeCun et al. 1998) as the lecture draws it: two conv/tanh/average-pool stages,
# then three fully connected layers; 61,706 parameters.
LENET5 = {"name": "LeNet-5", "input": [1, 32, 32], "layers": [
    {"type": "conv2d", "out_channels": 6, "kernel_size": 5},
    {"type": "tanh"},
    {"type": "avg_pool2d", "kernel_size": 2},
    {"type": "conv2d", "out_channels": 16, "kernel_size": 5},
    {"type": "tanh"},
    {"type": "avg_pool2d", "kernel_size": 2},
    {"type": "flatten"},
    {"type": "linear", "out_features": 120},
    {"type": "tanh"},
    {"type": "linear", "out_features": 84},
    {"type": "tanh"},
    {"type": "linear", "out_features": 10},
]}


def _has_kernels(*type_names):
    return all(type(get(t)).forward is not LayerType.forward
               and type(get(t)).backward is not LayerType.backward for t in type_names)


needs_window_kernels = pytest.mark.skipif(
    not _has_kernels("conv2d", "avg_pool2d"), reason="the conv/pool kernels have not landed yet")


def branchy(p=0.5):
    """Every non-window op, with two merges: (N, 4, 3, 3) -> 5 class probabilities.

    bn -> relu (in place) ---------> cat1 = [r, t] --\\
    input -> lrn -> tanh ----------/                   add -> flatten -> dropout -> fc -> softmax
    input -> sigmoid ---> cat2 = [s, r] --------------/
    """
    return {"name": "branchy", "input": [4, 3, 3], "layers": [
        {"name": "bn", "type": "batch_norm2d"},
        {"name": "r", "type": "relu", "inplace": True},
        {"name": "n", "type": "lrn", "size": 3, "alpha": 0.5, "inputs": "input"},
        {"name": "t", "type": "tanh"},
        {"name": "cat1", "type": "concat", "inputs": ["r", "t"]},
        {"name": "s", "type": "sigmoid", "inputs": "input"},
        {"name": "cat2", "type": "concat", "inputs": ["s", "r"]},
        {"name": "sum", "type": "add", "inputs": ["cat1", "cat2"]},
        {"name": "flat", "type": "flatten"},
        {"name": "drop", "type": "dropout", "p": p},
        {"name": "fc", "type": "linear", "out_features": 5},
        {"name": "sm", "type": "softmax"},
    ]}


def _fd_check(ex, x, dy, train, rng, per_tensor=6, tol=1e-6):
    """Analytic gradients of sum(out * dy) against centred differences at sampled entries of
    the input and of every parameter tensor."""
    ex.forward(x, train=train, keep_cache=True)
    grads = ex.backward(dy)
    dx = ex.input_grad

    def loss():
        out = ex.forward(x, train=train, keep_cache=False)
        if isinstance(out, dict):
            return sum(float(np.sum(out[k] * dy[k])) for k in dy)
        return float(np.sum(out * dy))

    checked = [("input", x, dx)] + [(f"{layer}.{name}", ex.params[layer][name], grads[layer][name])
                                    for layer in ex.params for name in ex.params[layer]]
    assert set(grads) == set(ex.params)
    for label, arr, grad in checked:
        assert grad.shape == arr.shape, label
        idx = sample_indices(arr.shape, per_tensor, rng)
        num = numerical_gradient_at(loss, arr, idx)
        err = rel_error(num, [grad[i] for i in idx])
        assert err < tol, (label, err)


# --------------------------------------------------------------- end-to-end gradients

@needs_window_kernels
def test_lenet5_gradients_end_to_end_float64():
    ex = Executor(LENET5, seed=3, dtype="float64")
    assert sum(a.size for p in ex.params.values() for a in p.values()) == 61_706
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 32, 32))
    _fd_check(ex, x, rng.standard_normal((2, 10)), train=True, rng=rng)


def test_branching_graph_gradients_training():
    # batch norm with batch statistics, dropout with p = 0 (the training path, deterministic)
    rng = np.random.default_rng(1)
    ex = Executor(branchy(p=0.0), seed=1, dtype="float64")
    x = rng.standard_normal((3, 4, 3, 3))
    _fd_check(ex, x, rng.standard_normal((3, 5)), train=True, rng=rng, per_tensor=12)


def test_branching_graph_gradients_inference():
    # keep_cache without train: running statistics, dropout the identity
    rng = np.random.default_rng(2)
    ex = Executor(branchy(p=0.5), seed=2, dtype="float64")
    ex.buffers["bn"]["running_mean"][:] = rng.standard_normal(4)
    ex.buffers["bn"]["running_var"][:] = rng.uniform(0.5, 2, 4)
    x = rng.standard_normal((2, 4, 3, 3))
    _fd_check(ex, x, rng.standard_normal((2, 5)), train=False, rng=rng, per_tensor=12)


def test_multi_output_graph_gradients():
    spec = {"input": [6], "layers": [
        {"name": "h", "type": "linear", "out_features": 4},
        {"name": "a", "type": "linear", "out_features": 3},
        {"name": "b", "type": "linear", "out_features": 2, "inputs": "h"},
        {"name": "c", "type": "sigmoid", "inputs": "input"}]}
    ex = Executor(spec, seed=0, dtype="float64")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6))
    out = ex.forward(x)
    assert set(out) == {"a", "b", "c"} and out["c"].shape == (2, 6)
    dy = {k: rng.standard_normal(v.shape) for k, v in out.items()}
    _fd_check(ex, x, dy, train=True, rng=rng)
    # an output missing from dy counts as zero gradient
    ex.forward(x, train=True)
    ex.backward({"a": dy["a"]})
    only_a = ex.input_grad
    ex.forward(x, train=True)
    ex.backward({"a": dy["a"], "b": np.zeros((2, 2)), "c": np.zeros((2, 6))})
    np.testing.assert_allclose(only_a, ex.input_grad)
    with pytest.raises(ArchstatError, match="3 outputs"):
        ex.forward(x, train=True)
        ex.backward(dy["a"])


def test_executor_agrees_with_the_kernels_composed_by_hand():
    ex = Executor(branchy(), seed=4, dtype="float64")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 3, 3))
    p, b = ex.params, ex.buffers["bn"]
    r = engine.relu(engine.batch_norm2d(x, p["bn"]["weight"], p["bn"]["bias"], b["running_mean"],
                                        b["running_var"], training=False))
    t = engine.tanh(engine.lrn(x, 3, 0.5))
    s = engine.sigmoid(x)
    y = engine.add([engine.concat([r, t]), engine.concat([s, r])])
    ref = engine.softmax(engine.linear(engine.flatten(y), p["fc"]["weight"], p["fc"]["bias"]))
    np.testing.assert_allclose(ex.forward(x), ref, rtol=1e-12)


def test_dropout_in_training_masks_the_gradient():
    spec = {"input": [50], "layers": [{"name": "d", "type": "dropout", "p": 0.4}]}
    ex = Executor(spec, seed=5, dtype="float64")
    x = np.ones((4, 50))
    y = ex.forward(x, train=True)
    kept = y != 0
    assert 0.4 < kept.mean() < 0.8
    np.testing.assert_allclose(y[kept], 1 / 0.6)
    ex.backward(np.full((4, 50), 2.0))
    np.testing.assert_allclose(ex.input_grad, np.where(kept, 2 / 0.6, 0))
    # masks differ between passes, and repeat with the seed
    assert not np.array_equal(ex.forward(x, train=True), y)
    np.testing.assert_array_equal(Executor(spec, seed=5, dtype="float64").forward(x, train=True), y)
    assert ex.forward(x) is not None and np.array_equal(ex.forward(x), x)


# --------------------------------------------------------------------- training

@needs_window_kernels
def test_lenet5_sgd_lowers_the_loss():
    rng = np.random.default_rng(6)
    # a synthetic 4-class problem: each class is a fixed random image plus noise
    templates = rng.standard_normal((4, 1, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 4, size=32)
    x = templates[labels] + 0.5 * rng.standard_normal((32, 1, 32, 32)).astype(np.float32)
    ex = Executor(LENET5, seed=0, dtype="float32")
    losses = []
    for _ in range(8):
        out = ex.forward(x, train=True)
        loss, dout = engine.softmax_cross_entropy(out, labels)
        grads = ex.backward(dout)
        losses.append(loss)
        for layer, g in grads.items():
            for name, grad in g.items():
                assert grad.dtype == np.float32
                ex.params[layer][name] -= 0.05 * grad
    assert losses[-1] < 0.5 * losses[0], losses


def test_mlp_with_batch_norm_trains():
    # the same smoke test on the non-window ops alone
    spec = {"input": [4, 2, 2], "layers": [
        {"type": "batch_norm2d"}, {"type": "relu"}, {"type": "flatten"},
        {"type": "linear", "out_features": 16}, {"type": "relu", "inplace": True},
        {"type": "dropout", "p": 0.1}, {"type": "linear", "out_features": 3}]}
    rng = np.random.default_rng(7)
    x = rng.standard_normal((48, 4, 2, 2)).astype(np.float32)
    labels = (x[:, 0, 0, 0] > 0).astype(int) + (x[:, 1, 1, 1] > 0)
    ex = Executor(spec, seed=0)
    first = None
    for _ in range(30):
        res_out = ex.forward(x, train=True)
        loss, dout = engine.softmax_cross_entropy(res_out, labels)
        first = loss if first is None else first
        for layer, g in ex.backward(dout).items():
            for name, grad in g.items():
                ex.params[layer][name] -= 0.2 * grad
    assert loss < 0.7 * first
    # training moved the running statistics away from their (0, 1) start
    assert not np.allclose(ex.buffers["bn1"]["running_mean"], 0)


# ---------------------------------------------------------------------- liveness

def _buffer(a):
    """The array that owns ``a``'s memory."""
    while a.base is not None:
        a = a.base
    return a


def _storage_bytes(arrays):
    """Bytes of the distinct buffers behind some arrays (views and in-place results count once)."""
    return sum({id(b): b.nbytes for b in map(_buffer, arrays)}.values())


def _liveness_specs():
    specs = [pytest.param(branchy(), (3, 4, 3, 3), id="branchy"),
             pytest.param({"input": [8], "layers": [
                 {"name": "f", "type": "flatten"},  # a view of the input
                 {"name": "h", "type": "linear", "out_features": 6},
                 {"name": "r", "type": "relu", "inplace": True},
                 {"name": "d", "type": "dropout", "inplace": True},
                 {"name": "a", "type": "linear", "out_features": 4},
                 {"name": "b", "type": "linear", "out_features": 4, "inputs": "d"},
                 {"name": "s", "type": "add", "inputs": ["a", "b"]},
                 {"name": "o", "type": "sigmoid", "inputs": "b"}]}, (5, 8), id="mlp-two-outputs")]
    specs.append(pytest.param(LENET5, (3, 1, 32, 32), id="lenet5", marks=needs_window_kernels))
    # a flatten of a permuted tensor copies (a reshape of a strided view), a flatten of a
    # contiguous one does not; a split is a strided view too
    specs.append(pytest.param({"input": [4, 6, 6], "layers": [
        {"name": "c", "type": "conv2d", "out_channels": 8, "kernel_size": 3},
        {"name": "p", "type": "permute", "dims": [0, 2, 3, 1]},
        {"name": "f", "type": "flatten"},
        {"name": "fc", "type": "linear", "out_features": 5},
        {"name": "s", "type": "split", "chunks": 2, "index": 1, "inputs": "c"},
        {"name": "f2", "type": "flatten"},
        {"name": "g", "type": "flatten", "inputs": "c"},
        {"name": "cat", "type": "concat", "inputs": ["fc", "f2", "g"]}]}, (2, 4, 6, 6), id="views",
        marks=needs_window_kernels))
    # concatenations take their inputs into their buffer (archstat.placement): an Inception
    # module (a branch ending in an in-place ReLU, one a pool), a concat read later and one
    # written in place (which copies), a concat of a concat, a tensor joined twice, along H
    conv = {"type": "conv2d", "kernel_size": 1}
    specs.append(pytest.param({"input": [3, 6, 6], "layers": [
        {"name": "stem", **conv, "out_channels": 4},
        {"name": "b1", **conv, "out_channels": 2},
        {"name": "b2a", **conv, "out_channels": 3, "inputs": "stem"},
        {"name": "b2", "type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},
        {"name": "b3a", **conv, "out_channels": 3, "inputs": "stem"},
        {"name": "b3n", "type": "batch_norm2d"},
        {"name": "b3", "type": "relu", "inplace": True},
        {"name": "b4", "type": "max_pool2d", "kernel_size": 3, "stride": 1, "padding": 1, "inputs": "stem"},
        {"name": "cat", "type": "concat", "inputs": ["b1", "b2", "b3", "b4"]},
        {"name": "c2", **conv, "out_channels": 3},
        {"name": "cat2", "type": "concat", "inputs": ["c2", "b1"]},     # b1 lives in cat: cat2 copies it
        {"name": "r2", "type": "relu", "inplace": True},                 # writes cat2: cat2 cannot host
        {"name": "twice", "type": "concat", "inputs": ["r2", "c2", "r2"]},
        {"name": "inner", "type": "concat", "inputs": ["twice", "stem"]},
        {"name": "h1", **conv, "out_channels": 2, "inputs": "inner"},
        {"name": "h2", **conv, "out_channels": 2, "inputs": "inner"},
        {"name": "outer", "type": "concat", "inputs": ["inner", "h1", "h2"]},
        {"name": "tall", "type": "concat", "dim": 2, "inputs": ["h1", "h2"]},
        {"name": "fin", **conv, "out_channels": 2, "inputs": "outer"}]}, (2, 3, 6, 6), id="concats",
        marks=needs_window_kernels))
    # a DenseNet block as torchvision runs it: every layer reads a fresh concatenation of all
    # earlier features (views of the block's buffer here), the features a dropout view
    dense = [{"name": "x0", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}]
    feats = ["x0"]
    for j in range(1, 4):
        dense += [{"name": f"cat{j}", "type": "concat", "inputs": list(feats)},
                  {"name": f"n{j}", "type": "batch_norm2d"}, {"name": f"r{j}", "type": "relu", "inplace": True},
                  {"name": f"f{j}", "type": "conv2d", "out_channels": 2, "kernel_size": 3, "padding": 1},
                  {"name": f"d{j}", "type": "dropout", "p": 0.2}]
        feats.append(f"d{j}")
    dense += [{"name": "block", "type": "concat", "inputs": feats}, {"name": "pool", "type": "avg_pool2d",
                                                                     "kernel_size": 2}]
    specs.append(pytest.param({"input": [3, 6, 6], "layers": dense}, (2, 3, 6, 6), id="dense-block",
                              marks=needs_window_kernels))
    # training-only layers do not run at inference
    specs.append(pytest.param({"input": [3, 8, 8], "layers": [
        {"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 3},
        {"name": "aux", "type": "global_avg_pool2d", "training_only": True},
        {"name": "auxf", "type": "flatten", "training_only": True},
        {"name": "p", "type": "max_pool2d", "kernel_size": 2, "inputs": "c"}]}, (2, 3, 8, 8),
        id="training-only", marks=needs_window_kernels))
    # a published spec with LRN, overlapping max pools, in-place ReLUs and dropout views: the
    # lecture's AlexNet (specs/alexnet.yaml, the zoo's alexnet_lecture; the zoo's alexnet is
    # torchvision's, without LRN)
    specs.append(pytest.param("alexnet_lecture", (1, 3, 227, 227), id="alexnet_lecture",
                              marks=needs_window_kernels))
    return specs


@pytest.mark.parametrize("spec,shape", _liveness_specs())
def test_inference_follows_the_liveness_plan(spec, shape):
    model = archstat.load(spec)
    plan = liveness(model)
    # batch norms on their own, as the analysis plans them (folding only lowers the peak:
    # tests/test_folding.py)
    ex = Executor(model, seed=0, dtype="float64", fold=False)
    rows = {r["name"]: r for r in archstat.analyze(model, batch=shape[0], dtype="float64").rows()}
    events = []

    def hook(name, out, live):
        events.append((name, out, dict(live)))

    x = np.random.default_rng(8).standard_normal(shape)
    y = ex.forward(x, hook=hook)
    assert [e[0] for e in events] == list(model.inference_order)
    shapes = model.shapes(shape[0], shape[1:])
    # the same values as a pass that places nothing (one that keeps its caches)
    plain = ex.forward(x, keep_cache=True)
    for key in (y if isinstance(y, dict) else {0: y}):
        np.testing.assert_array_equal((y if isinstance(y, dict) else {0: y})[key],
                                      (plain if isinstance(plain, dict) else {0: plain})[key])
    peak = 0
    for step, (name, out, live) in enumerate(events):
        layer = model.layer(name)
        if plan.storage[name] != model.storage[name]:   # lives in a concatenation's buffer
            first = next(n for n in plan.members[plan.storage[name]] if n in live)
            assert _buffer(out) is _buffer(live[first]) and _buffer(out).shape == shapes[plan.storage[name]], name
        elif layer.inputs and not model.owns_storage(name):
            # in place, or a view: really no new storage
            assert np.shares_memory(out, live.get(layer.inputs[0], out)), name
        elif layer.inputs and name not in plan.placement.hosts:
            # its own storage: no input's memory (a flatten of a strided view copies)
            assert not any(np.shares_memory(out, live[src]) for src in layer.inputs if src in live), name
        measured = _storage_bytes(live.values())
        assert measured == rows[name]["live_bytes"], (name, measured, rows[name]["live_bytes"])
        peak = max(peak, measured)
        if step + 1 < len(events):
            freed = set(live) - set(events[step + 1][2])
            planned = {n for n in live if plan.storage[n] in plan.free_after[name]}
            assert freed == planned, name
    assert peak == archstat.analyze(model, batch=shape[0], dtype="float64").totals["peak_activation_bytes"]


def test_in_place_layers_never_write_over_the_callers_input():
    spec = {"input": [6], "layers": [{"type": "relu", "inplace": True}]}
    x = np.array([[-1.0, 2, -3, 4, -5, 6]])
    y = archstat.run(spec, x)
    assert x[0, 0] == -1 and y[0, 0] == 0


def test_in_place_layer_keeps_an_earlier_cache_intact():
    # tanh caches its output for backward; an in-place ReLU on it must not overwrite that
    spec = {"input": [5], "layers": [{"type": "tanh"}, {"type": "relu", "inplace": True},
                                     {"type": "linear", "out_features": 2}]}
    rng = np.random.default_rng(9)
    ex = Executor(spec, seed=0, dtype="float64")
    x = rng.standard_normal((3, 5))
    _fd_check(ex, x, rng.standard_normal((3, 2)), train=True, rng=rng)


# ----------------------------------------------------------------------- memory

def test_the_memory_limit_hint_names_the_largest_batch_that_fits():
    """MobileNetV2's peak does not grow exactly linearly with the batch (its workspace caps
    and blocks), so the linear estimate alone said 13 fit where 12 do: the hint checks it
    against the prediction. Nothing runs: the guard refuses first."""
    ex = Executor("mobilenet_v2")
    p12, p13 = ex.predict_memory(12), ex.predict_memory(13)
    ex.memory_limit = (p12 + p13) // 2
    with pytest.raises(ArchstatError, match=r"smaller batch \(at most 12 fits\)"):
        ex.forward(np.zeros((40, 3, 224, 224), np.float32))
    ex.memory_limit = p13
    with pytest.raises(ArchstatError, match=r"at most 13 fits"):
        ex.forward(np.zeros((14, 3, 224, 224), np.float32))


def test_memory_limit_refuses_before_running():
    model = archstat.load(branchy())
    a = archstat.analyze(model, batch=64, dtype="float32").totals
    # the peak is the add's step (64 * 4*3*3 * 4 = 9,216 bytes a tensor): cat1's and cat2's
    # buffers (2 x 18,432) and the sum (18,432), and the input, the caller's array, which the
    # executor counts through the whole pass. (The sigmoid and tanh write into their slots with
    # no temporaries, so their steps hold less.)
    need = a["param_bytes"] + a["buffer_bytes"] + 3 * 18_432 + 9_216
    assert need - a["param_bytes"] - a["buffer_bytes"] == a["peak_activation_bytes"] + 9_216
    ex = Executor(model, memory_limit=need - 1)
    assert ex.predict_memory(64) == need
    ran = []
    with pytest.raises(ArchstatError) as err:
        ex.forward(np.zeros((64, 4, 3, 3), np.float32), hook=lambda *a: ran.append(a))
    assert not ran
    msg = str(err.value)
    assert f"{need:,} bytes" in msg and f"{need - 1:,}" in msg and "smaller batch (at most 63 fits)" in msg
    Executor(model, memory_limit=need).forward(np.zeros((64, 4, 3, 3), np.float32))
    # training keeps every activation for backward: it needs more
    train_need = ex.predict_memory(64, train=True)
    assert train_need == archstat.analyze(model, batch=64).totals["training_memory_bytes"] > need
    with pytest.raises(ArchstatError, match="training"):
        Executor(model, memory_limit=train_need - 1).forward(np.zeros((64, 4, 3, 3)), train=True)
    with pytest.raises(ArchstatError, match="memory_limit"):
        archstat.run(model, np.zeros((64, 4, 3, 3), np.float32), memory_limit=need - 1)
    with pytest.raises(ArchstatError, match="parameters and buffers alone"):
        Executor(model, memory_limit=100)


# ----------------------------------------------------------------------- dtypes

def test_float32_path_stays_float32():
    ex = Executor(branchy(p=0.0), seed=0, dtype="float32")
    seen = []
    x = np.random.default_rng(10).standard_normal((3, 4, 3, 3))  # float64 in: cast once
    out = ex.forward(x, train=True, hook=lambda name, y, live: seen.append(y.dtype))
    assert out.dtype == np.float32 and set(seen) == {np.dtype(np.float32)}
    grads = ex.backward(np.ones((3, 5)))
    assert {g.dtype for p in grads.values() for g in p.values()} == {np.dtype(np.float32)}
    assert ex.input_grad.dtype == np.float32
    assert all(b.dtype == np.float32 for b in ex.buffers["bn"].values())
    # the same seed gives the same weights (rounded) and nearly the same outputs in float64
    out64 = Executor(branchy(p=0.0), seed=0, dtype="float64").forward(x, train=True)
    np.testing.assert_allclose(out, out64, rtol=1e-4, atol=1e-6)
    assert archstat.run(branchy(), x.astype(np.float32)).dtype == np.float32
    assert archstat.run(branchy(), x).dtype == np.float64


# ----------------------------------------------------------------------- weights

def test_initialisation_is_deterministic_he_and_order_independent():
    spec = {"input": [400], "layers": [{"name": "fc", "type": "linear", "out_features": 300}]}
    w = Executor(spec, seed=11).params["fc"]["weight"]
    np.testing.assert_array_equal(w, Executor(spec, seed=11).params["fc"]["weight"])
    assert not np.array_equal(w, Executor(spec, seed=12).params["fc"]["weight"])
    # He et al. 2015: std = sqrt(2 / fan_in) = sqrt(2 / 400); 120,000 draws
    assert w.std() == pytest.approx(np.sqrt(2 / 400), rel=0.01)
    assert abs(w.mean()) < 0.001
    assert not Executor(spec, seed=11).params["fc"]["bias"].any()
    # a layer's weights depend on its name and the seed, not on what else the model holds
    other = {"input": [400], "layers": [
        {"name": "pre", "type": "linear", "out_features": 400},
        {"name": "fc", "type": "linear", "out_features": 300}]}
    np.testing.assert_array_equal(Executor(other, seed=11).params["fc"]["weight"], w)


def test_batch_norm_starts_as_identity():
    ex = Executor(branchy(), seed=0)
    assert ex.params["bn"]["weight"].tolist() == [1] * 4 and not ex.params["bn"]["bias"].any()
    assert ex.buffers["bn"]["running_var"].tolist() == [1] * 4
    assert not ex.buffers["bn"]["running_mean"].any()


@needs_window_kernels
def test_conv_fan_in_counts_input_channels_and_kernel():
    w = Executor(LENET5, seed=0).params["conv2"]["weight"]  # (16, 6, 5, 5): fan-in 150
    assert w.std() == pytest.approx(np.sqrt(2 / 150), rel=0.05)


def test_user_weights_are_validated_and_copied():
    spec = {"input": [3], "layers": [{"name": "fc", "type": "linear", "out_features": 2},
                                     {"name": "r", "type": "relu"}]}
    w = np.arange(6.0).reshape(2, 3)
    ex = Executor(spec, weights={"fc": {"weight": w}}, dtype="float64")
    np.testing.assert_array_equal(ex.params["fc"]["weight"], w)
    assert not np.shares_memory(ex.params["fc"]["weight"], w)
    assert not ex.params["fc"]["bias"].any()  # what is not given is initialised
    np.testing.assert_array_equal(ex.forward(np.ones((1, 3))), [[3.0, 12.0]])
    cases = [({"fc2": {"weight": w}}, r"layer 'fc2', field 'weights': no such layer.*did you mean 'fc'"),
             ({"fc": {"weigth": w}}, r"layer 'fc', field 'weigth': unknown parameter.*did you mean 'weight'"),
             ({"fc": {"weight": w.T}}, r"layer 'fc', field 'weight': expected shape \(2, 3\), got \(3, 2\)"),
             ({"r": {"weight": w}}, r"layer 'r'.*no parameters"),
             ({"fc": w}, r"layer 'fc'.*expected \{name: array\}")]
    for weights, pattern in cases:
        with pytest.raises(ArchstatError, match=pattern):
            Executor(spec, weights=weights)


def test_state_round_trips():
    ex = Executor(branchy(), seed=13)
    ex.forward(np.random.default_rng(0).standard_normal((4, 4, 3, 3)), train=True)  # moves buffers
    x = np.random.default_rng(1).standard_normal((2, 4, 3, 3))
    np.testing.assert_array_equal(Executor(branchy(), weights=ex.state(), seed=99).forward(x),
                                  ex.forward(x))


def test_batch_norm_buffers_move_only_in_training():
    ex = Executor(branchy(), seed=0, dtype="float64")
    x = np.random.default_rng(14).standard_normal((6, 4, 3, 3)) + 3
    ex.forward(x)
    assert not ex.buffers["bn"]["running_mean"].any()
    ex.forward(x, train=True)
    np.testing.assert_allclose(ex.buffers["bn"]["running_mean"], 0.1 * x.mean(axis=(0, 2, 3)))


# ------------------------------------------------------------------------ inputs

def test_input_shape_errors_and_other_sizes():
    conv_free = {"input": [3, 4, 4], "layers": [{"type": "batch_norm2d"}, {"type": "relu"},
                                                {"type": "softmax"}]}
    ex = Executor(conv_free)
    with pytest.raises(ArchstatError, match=r"layer 'input': the input has shape \(3, 4, 4\); "
                                            r"the model expects \(N, 3, 4, 4\); add the batch axis"):
        ex.forward(np.zeros((3, 4, 4)))
    assert ex.forward(np.zeros((2, 3, 7, 5))).shape == (2, 3, 7, 5)  # no parameter depends on H, W
    with pytest.raises(ArchstatError, match="layer 'bn1', field 'weight'"):
        ex.forward(np.zeros((2, 5, 4, 4)))  # 5 channels: batch norm's weights are for 3
    flat = {"input": [2, 3, 3], "layers": [{"type": "flatten"}, {"type": "linear", "out_features": 2}]}
    with pytest.raises(ArchstatError, match=r"layer 'fc1', field 'weight': at input size \(2, 4, 4\) "
                                            r"this layer needs a weight of shape \(2, 32\)"):
        Executor(flat).forward(np.zeros((1, 2, 4, 4)))
    with pytest.raises(ArchstatError, match="must be numbers"):
        ex.forward(np.full((1, 3, 4, 4), "a"))


def test_backward_needs_a_forward_with_caches():
    ex = Executor(branchy())
    x = np.zeros((2, 4, 3, 3))
    with pytest.raises(ArchstatError, match="call forward"):
        ex.backward(np.zeros((2, 5)))
    ex.forward(x)  # inference keeps no caches
    with pytest.raises(ArchstatError, match="call forward"):
        ex.backward(np.zeros((2, 5)))
    ex.forward(x, train=True)
    with pytest.raises(ArchstatError, match=r"dy has shape \(5\), the output has \(2, 5\)"):
        ex.backward(np.zeros(5))
    ex.forward(x, train=True)
    ex.backward(np.zeros((2, 5)))
    with pytest.raises(ArchstatError, match="call forward"):
        ex.backward(np.zeros((2, 5)))  # one backward per forward


def test_bad_arguments():
    with pytest.raises(ArchstatError, match="float32 or float64.*did you mean 'float32'"):
        Executor(branchy(), dtype="float23")
    with pytest.raises(ArchstatError, match="seed"):
        Executor(branchy(), seed=-1)
    with pytest.raises(ArchstatError, match="memory_limit"):
        Executor(branchy(), memory_limit=0)


# ------------------------------------------------------------------ functions

def test_run_and_backward_functions():
    assert archstat.run is engine.run
    spec = {"input": [4], "layers": [{"name": "fc", "type": "linear", "out_features": 3}]}
    x = np.random.default_rng(15).standard_normal((5, 4))
    labels = np.array([0, 1, 2, 1, 0])
    res = archstat.backward(spec, x, labels=labels, seed=2)
    assert isinstance(res, BackwardResult)
    ex = Executor(spec, seed=2, dtype="float64")
    out = ex.forward(x, train=True)
    loss, dout = engine.softmax_cross_entropy(out, labels)
    grads = ex.backward(dout)
    assert res.loss == loss
    np.testing.assert_array_equal(res.output, out)
    np.testing.assert_array_equal(res.grads["fc"]["weight"], grads["fc"]["weight"])
    np.testing.assert_array_equal(res.input_grad, ex.input_grad)
    res2 = archstat.backward(spec, x, dy=dout, seed=2)
    assert res2.loss is None
    np.testing.assert_array_equal(res2.grads["fc"]["bias"], grads["fc"]["bias"])
    with pytest.raises(ArchstatError, match="exactly one of dy"):
        archstat.backward(spec, x)
    with pytest.raises(ArchstatError, match="exactly one of dy"):
        archstat.backward(spec, x, dy=dout, labels=labels)


def test_a_new_tensor_from_a_permuted_input_is_stored_in_c_order_as_planned():
    # found by a differential fuzzer: NumPy's ReLU of a permuted view keeps its strided order,
    # so the flatten after it copied: 768 bytes held where the plan said 384
    spec = {"input": [3, 4, 4], "layers": [{"name": "p", "type": "permute", "dims": [0, 1, 3, 2]},
                                           {"name": "r", "type": "relu"}, {"name": "f", "type": "flatten"}]}
    model = archstat.load(spec)
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 4))
    held = []
    y = Executor(model, dtype="float64").forward(x, hook=lambda n, out, live: held.append(_storage_bytes(live.values())))
    rows = archstat.analyze(model, batch=2, dtype="float64").rows()
    assert held == [r["live_bytes"] for r in rows]
    np.testing.assert_array_equal(y, np.maximum(x.transpose(0, 1, 3, 2), 0).reshape(2, -1))
