"""archstat.save writes a readable spec that loads back into the same model: every zoo model
round-trips with the same layers, fields, inputs and counts."""
from __future__ import annotations

import json

import pytest

import archstat
from archstat import zoo
from archstat.spec_writer import spec_text


def same_model(a, b) -> None:
    assert a.order == b.order and a.input_shape == b.input_shape
    for name in a.order[1:]:
        la, lb = a.layer(name), b.layer(name)
        assert (la.type_name, dict(la.attrs), la.inputs, la.training_only, la.torch_call) == \
            (lb.type_name, dict(lb.attrs), lb.inputs, lb.training_only, lb.torch_call), name
    ta, tb = archstat.analyze(a).totals, archstat.analyze(b).totals
    for key in ("params", "buffers", "macs", "flops", "forward_memory_bytes", "peak_activation_bytes",
                "training_only_macs"):
        assert ta[key] == tb[key], key


@pytest.mark.parametrize("name", list(zoo.entries()))
def test_every_zoo_model_round_trips(name, tmp_path):
    model = archstat.load(name)
    path = archstat.save(model, tmp_path / f"{name}.yaml")
    same_model(model, archstat.load(path))


def test_json_round_trips_too(tmp_path):
    model = archstat.load("inception_v3")   # with a training-only auxiliary head
    path = archstat.save(model, tmp_path / "inception.json")
    assert json.loads(path.read_text())["layers"][0]["name"] == "Conv2d_1a_3x3.conv"
    same_model(model, archstat.load(path))


def test_the_spec_is_readable():
    text = spec_text(archstat.load("resnet18"))
    lines = text.splitlines()
    assert "input: [3, 224, 224]" in lines
    # one line per layer; defaults left out; inputs only where a layer does not read the one before
    assert "  - {name: layer1.0.bn1, type: batch_norm2d}" in lines
    assert "  - {name: layer1.0.add, type: add, inputs: [layer1.0.bn2, maxpool]}" in lines
    assert sum(1 for line in lines if line.startswith("  - {")) == len(archstat.load("resnet18")) == 69


def test_names_that_read_as_numbers_stay_text(tmp_path):
    # YAML 1.2 would read 010 as ten and 0x1f as 31: the writer quotes such names
    spec = {"input": [3, 8, 8], "layers": [{"name": "010", "type": "relu"}, {"name": "0x1f", "type": "relu"},
                                            {"name": "1e5", "type": "relu"}]}
    path = archstat.save(archstat.load(spec), tmp_path / "names.yaml")
    assert archstat.load(path).order == ["input", "010", "0x1f", "1e5"]


def test_the_wheel_lists_every_package():
    # pyproject.toml names the packages (the specs folder is mapped into archstat.specs): a new
    # subpackage of archstat must be listed there, or the installed package lacks it
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = set(re.findall(r'"(archstat[a-z_.]*)"', (root / "pyproject.toml").read_text().split("packages = [")[1]
                            .split("]")[0]))
    found = {"archstat"} | {"archstat." + p.parent.name for p in (root / "archstat").glob("*/__init__.py")}
    assert found | {"archstat.specs"} == listed


def test_how_pytorch_calls_a_layer_survives_the_round_trip(tmp_path):
    # densenet121 ends in F.relu and F.adaptive_avg_pool2d: peer tools that hook modules do
    # not see them, so the spec keeps it (the key `call`), and a saved spec too
    model = archstat.load("densenet121")
    assert [model.layer(n).torch_call for n in ("relu", "avgpool", "features.relu0")] == \
        ["function", "function", "module"]
    text = spec_text(model)
    assert "call: function" in text and "call: module" not in text   # only where it differs
    again = archstat.load(archstat.save(model, tmp_path / "d.yaml"))
    assert [layer.torch_call for layer in again.layers()] == [layer.torch_call for layer in model.layers()]
