"""What foreign models share, whatever the importer: the opaque layer for nodes archstat has no
type for, the weights a model carries, the import command and load's dispatch by suffix."""
from __future__ import annotations

import numpy as np
import pytest

import archstat
from archstat.errors import ArchstatError
from archstat.graph import from_imported
from archstat.importers import Imported


def opaque_spec():
    # conv 3->4, 3x3 (112 params, 4*6*6*27 = 3,888 MACs), then a RoiAlign archstat cannot count
    return {"input": [3, 8, 8], "layers": [
        {"name": "conv", "type": "conv2d", "out_channels": 4, "kernel_size": 3},
        {"name": "roi", "type": "opaque", "op": "RoiAlign", "output_shape": [4, 2, 2]},
        {"name": "flat", "type": "flatten"}, {"name": "fc", "type": "linear", "out_features": 3}]}


def test_an_opaque_layer_passes_its_shape_through_uncounted():
    a = archstat.analyze(opaque_spec())
    rows = {r["name"]: r for r in a.rows()}
    assert rows["roi"]["output_shape"] == (1, 4, 2, 2) and (rows["roi"]["macs"], rows["roi"]["flops"]) == (0, 0)
    assert a.totals["not_counted"] == ["roi"]
    assert a.totals["macs"] == 3_888 + 16 * 3 and a.totals["params"] == 112 + 51


def test_reports_say_what_was_not_counted(cli, write_spec):
    code, out, _ = cli("report", write_spec(opaque_spec()))
    assert code == 0 and "NOT COUNTED       1 layer archstat has no type for: roi (RoiAlign)" in out


def test_an_opaque_layer_cannot_run():
    with pytest.raises(ArchstatError, match="no kernel for the foreign operator 'RoiAlign'") as info:
        archstat.run(opaque_spec(), np.zeros((1, 3, 8, 8), np.float32))
    assert info.value.layer == "roi"


def test_a_model_carries_the_weights_it_was_imported_with():
    spec = {"input": [2], "layers": [{"name": "fc", "type": "linear", "out_features": 2}]}
    w = {"fc": {"weight": np.array([[1.0, 2.0], [3.0, 4.0]]), "bias": np.array([0.5, -0.5])}}
    model = from_imported(Imported(spec=spec, weights=w), label="tiny.onnx")
    y = archstat.run(model, np.array([[1.0, 1.0]]))
    assert np.allclose(y, [[3.5, 6.5]])
    # weights given to the executor win over the model's own
    y0 = archstat.run(model, np.array([[1.0, 1.0]]), weights={"fc": {"weight": np.zeros((2, 2)),
                                                                      "bias": np.zeros(2)}})
    assert np.allclose(y0, 0)


def test_foreign_files_are_refused_clearly(cli, tmp_path):
    code, _, err = cli("report", tmp_path / "missing.onnx")
    assert code == 2 and err.strip().endswith("missing.onnx: no such file")
    with pytest.raises(ArchstatError, match="args apply to specs"):
        archstat.load(tmp_path / "x.onnx", {"depth": 3})


def test_import_writes_a_spec_that_loads_back(cli, tmp_path):
    out = tmp_path / "r18.yaml"
    code, _, err = cli("import", "resnet18", "-o", out)
    assert code == 0 and f"wrote {out}" in err
    assert archstat.analyze(out).totals["params"] == 11_689_512
    code, text, _ = cli("import", "lenet5")
    assert code == 0 and text.startswith("name: LeNet-5") and "  - {name: " in text


# ------------------------------------------------------------------ a module used twice

def shared_spec():
    # one conv (4 -> 4, 3x3, padding 1: 4*4*9 + 4 = 148 params) applied twice, as a module a
    # network calls twice: 148 parameters, two convs' work (2 * 4*8*8*36 = 18,432 MACs)
    return {"input": [4, 8, 8], "layers": [
        {"name": "conv", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"name": "relu", "type": "relu"},
        {"name": "conv_1", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "shares": "conv"}]}


def test_a_shared_module_is_one_set_of_parameters_and_two_layers(tmp_path):
    a = archstat.analyze(shared_spec())
    rows = {r["name"]: r for r in a.rows()}
    assert a.totals["params"] == 148 and a.totals["macs"] == 2 * 4 * 8 * 8 * 36
    assert (rows["conv_1"]["params"], rows["conv_1"]["macs"]) == (0, 9_216)
    assert rows["conv_1"]["shares"] == {"weight": "conv", "bias": "conv"} and rows["conv"]["shares"] is None
    # the written spec keeps it
    again = archstat.load(archstat.save(archstat.load(shared_spec()), tmp_path / "s.yaml"))
    assert again.layer("conv_1").shares == {"*": "conv"} and archstat.analyze(again).totals["params"] == 148
    assert "shares: conv}" in (tmp_path / "s.yaml").read_text()


def test_the_engine_runs_a_shared_module_on_one_set_of_weights():
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((4, 4, 3, 3)), rng.standard_normal(4)
    x = rng.standard_normal((2, 4, 8, 8))
    res = archstat.backward(shared_spec(), x, dy=np.ones((2, 4, 8, 8)), weights={"conv": {"weight": w, "bias": b}})
    from archstat.engine import conv2d, conv2d_backward, relu
    h = relu(conv2d(x, w, b, padding=1))
    assert np.allclose(res.output, conv2d(h, w, b, padding=1))
    # the gradient of the shared weights is the sum over both uses
    dh_x, dw2, db2 = conv2d_backward(np.ones((2, 4, 8, 8)), h, w, padding=1)
    _, dw1, db1 = conv2d_backward(dh_x * (h > 0), x, w, padding=1)
    assert set(res.grads) == {"conv"}
    assert np.allclose(res.grads["conv"]["weight"], dw1 + dw2) and np.allclose(res.grads["conv"]["bias"], db1 + db2)
    with pytest.raises(ArchstatError, match="uses the weight of 'conv'"):
        archstat.run(shared_spec(), x, weights={"conv_1": {"weight": w}})


@pytest.mark.parametrize("change, says", [
    ({"type": "linear", "out_features": 4}, "a conv2d layer, but is a linear layer"),
    ({"out_channels": 8}, r"shares 'weight' with 'conv', whose 'weight' is \(4, 4, 3, 3\), not \(8, 4, 3, 3\)"),
    ({"shares": {"scale": "conv"}}, "has no tensor 'scale' to share"),
    ({"shares": {"*": "conv"}}, "expected the layer whose parameters this one uses, or a mapping of tensor"),
    ({"shares": "nothing"}, "no other layer named 'nothing'"),
    ({"shares": "conv_1"}, "no other layer named 'conv_1'"),
])
def test_sharing_is_checked(change, says):
    spec = shared_spec()
    spec["layers"][2].update(change)
    if change.get("type") == "linear":
        spec["layers"][2] = {"name": "conv_1", "type": "linear", "out_features": 4, "shares": "conv"}
        spec["layers"].insert(2, {"name": "flat", "type": "flatten"})
    with pytest.raises(ArchstatError, match=says) as info:
        archstat.load(spec)
    assert info.value.field == "shares"


def tied_spec():
    # two convs of different kernels tie their biases (one vector of 4 stored once) and a third
    # ties its bias to the second: a share of a share is the first holder's
    return {"input": [4, 8, 8], "layers": [
        {"name": "a", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"name": "b", "type": "conv2d", "out_channels": 4, "kernel_size": 1, "shares": {"bias": "a"}},
        {"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 1, "shares": {"bias": "b"}}]}


def test_a_tied_tensor_counts_once_and_trains_as_one():
    a = archstat.analyze(tied_spec())
    rows = {r["name"]: r for r in a.rows()}
    # a: 4*4*9 + 4 = 148; b and c: 4*4 weights each, the bias is a's
    assert (rows["a"]["params"], rows["b"]["params"], rows["c"]["params"]) == (148, 16, 16)
    assert a.totals["params"] == 180 and rows["c"]["shares"] == {"bias": "a"}
    rng = np.random.default_rng(1)
    w1, w2, w3, bias = (rng.standard_normal(s) for s in ((4, 4, 3, 3), (4, 4, 1, 1), (4, 4, 1, 1), (4,)))
    x = rng.standard_normal((2, 4, 8, 8))
    weights = {"a": {"weight": w1, "bias": bias}, "b": {"weight": w2}, "c": {"weight": w3}}
    res = archstat.backward(tied_spec(), x, dy=np.ones((2, 4, 8, 8)), weights=weights)
    from archstat.engine import conv2d
    h1 = conv2d(x, w1, bias, padding=1)
    h2 = conv2d(h1, w2, bias)
    assert np.allclose(res.output, conv2d(h2, w3, bias))
    # d(out)/d(bias) through all three uses: 2*8*8 from c, then through c's and b's weights
    ones = np.ones((2, 4, 8, 8))
    g2 = np.einsum("oi,nohw->nihw", w3[:, :, 0, 0], ones)
    g1 = np.einsum("oi,nohw->nihw", w2[:, :, 0, 0], g2)
    assert set(res.grads) == {"a", "b", "c"} and set(res.grads["b"]) == {"weight"}
    assert np.allclose(res.grads["a"]["bias"], (ones + g2 + g1).sum(axis=(0, 2, 3)))
    with pytest.raises(ArchstatError, match="uses the bias of 'a'") as info:
        archstat.run(tied_spec(), x, weights={"c": {"bias": bias}})
    assert info.value.layer == "c"


def test_tied_tensors_are_written_back_and_checked(tmp_path):
    again = archstat.load(archstat.save(archstat.load(tied_spec()), tmp_path / "t.yaml"))
    assert again.ties == {"b": {"bias": "a"}, "c": {"bias": "a"}}
    assert "shares: {bias: b}" in (tmp_path / "t.yaml").read_text()
    spec = tied_spec()
    spec["layers"][0]["shares"] = {"bias": "c"}
    with pytest.raises(ArchstatError, match="in a circle"):
        archstat.load(spec)
    spec = tied_spec()
    spec["layers"][1]["out_channels"] = 8
    with pytest.raises(ArchstatError, match=r"whose 'bias' is \(4\), not \(8\)"):
        archstat.load(spec)
    spec = tied_spec()
    spec["layers"].insert(1, {"name": "relu", "type": "relu"})
    spec["layers"][2]["shares"] = {"bias": "relu"}
    with pytest.raises(ArchstatError, match="shares 'bias' with 'relu', a relu layer that has no 'bias'") as info:
        archstat.load(spec)
    assert (info.value.layer, info.value.field) == ("b", "shares")
