"""The layer registry is complete: every type has each of its facts, documented and tested."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import archstat
from archstat.layers import all_types
from archstat.layers.registry import TORCH_CALLS
from archstat.layers.registry import LayerType, register
from archstat.report.layer_types_table import render_layer_types

ROOT = Path(__file__).resolve().parents[1]
TYPES = {name: t for name, t in all_types().items() if t.min_inputs > 0}


def test_expected_types_are_registered():
    # the layer types the core issue names, used in specs and every report
    expected = {"conv2d", "locally_connected2d", "linear", "max_pool2d", "avg_pool2d",
                "global_avg_pool2d", "relu", "sigmoid", "tanh", "lrn", "batch_norm2d", "dropout",
                "flatten", "softmax", "concat", "add"}
    assert expected <= set(TYPES)


@pytest.mark.parametrize("name", sorted(TYPES))
def test_type_has_every_fact(name):
    t = TYPES[name]
    assert t.counting_rule().startswith("MACs"), "the rule states MACs first, then FLOPs"
    assert "FLOPs" in t.counting_rule()
    assert t.summary()
    for f in t.fields:
        assert f.doc, f"{name}.{f.name} needs a doc string"
    for method in ("output_shape", "flops", "forward", "backward"):
        assert getattr(type(t), method) is not getattr(LayerType, method), f"{name} lacks {method}"
    assert t.torch_call in TORCH_CALLS


def test_backward_flops_of_the_zoo_by_rule():
    # every layer of every family's flagship: a non-negative int; conv and linear 2x their
    # forward MAC FLOPs (the layer reading the image: the weight gradient only)
    for model in ("resnet50", "densenet121", "mobilenet_v3_large", "convnext_tiny", "shufflenet_v2_x1_0",
                  "inception_v3", "efficientnet_b0", "regnet_y_400mf", "squeezenet1_0", "vgg16_bn"):
        a = archstat.analyze(model)
        for row in a.rows():
            assert isinstance(row["backward_flops"], int) and row["backward_flops"] >= 0, (model, row["name"])
            if row["macs"]:
                first = row["inputs"] == ("input",)
                bias = row["activations"] if row["bias_params"] else 0
                sums = max(0, a.model.graph.out_degree(row["name"]) - 1) * row["activations"]
                assert row["backward_flops"] == 2 * row["macs"] * (1 if first else 2) + bias + sums, \
                    (model, row["name"])


@pytest.mark.parametrize("name", sorted(TYPES))
def test_type_appears_in_a_test(name):
    # "every registered type has all its entries and a test" (STYLE.md): a spec or a call in tests/
    texts = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py") if p.name != Path(__file__).name)
    assert re.search(rf"\b{name}\b", texts), f"no test mentions layer type {name!r}"


def test_duplicate_registration_is_refused():
    class Again(LayerType):
        """Duplicate.

        Counts: MACs = 0. FLOPs = 0.
        """
        name = "conv2d"
        alias = "x"

    with pytest.raises(AssertionError, match="registered twice"):
        register(Again)


def test_layers_doc_is_generated_from_the_registry():
    # docs/layers.md must be exactly what `archstat layers --format md` prints, so it cannot drift
    committed = (ROOT / "docs" / "layers.md").read_text()
    assert committed == render_layer_types("md"), "regenerate: archstat layers --format md -o docs/layers.md"


def test_lecture_parameter_formulas():
    # The lecture's formulas for one layer mapping a 224x224x3 image to 64 maps of 224x224
    # (K1 = K2 = 3, C = 3, N = 64 outputs per location):
    #   fully connected: M*N + N with M = 224*224*3 inputs and N = 224*224*64 outputs
    #   locally connected: (K1*K2*C + 1) * N per output location
    #   convolution: N * (K1*K2*C + 1)
    m_in, n_out = 224 * 224 * 3, 224 * 224 * 64
    spec = {"input": [3, 224, 224], "layers": [
        {"name": "conv", "type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1},
        {"name": "lc", "type": "locally_connected2d", "out_channels": 64, "kernel_size": 3,
         "padding": 1, "inputs": "input"},
        {"name": "flat", "type": "flatten", "inputs": "input"},
        {"name": "fc", "type": "linear", "out_features": n_out}]}
    rows = {r["name"]: r for r in archstat.analyze(spec).rows()}
    assert rows["conv"]["params"] == 64 * (3 * 3 * 3 + 1) == 1_792
    assert rows["lc"]["params"] == (3 * 3 * 3 + 1) * 64 * 224 * 224 == 89_915_392
    assert rows["fc"]["params"] == m_in * n_out + n_out == 483_388_358_656
    # a MAC per weight per output location: conv and lc do the same arithmetic
    assert rows["conv"]["macs"] == rows["lc"]["macs"] == 224 * 224 * 64 * 27
