"""Receptive fields: the analysis' recurrences against brute force and published values.

The analysis walks the recurrences of Araujo, Norris & Sim (Distill 2019). Here they are
checked against (1) an independent index computation on every packaged spec file (with its
default arguments) and the zoo models that replaced the single-model specs: the set of
input coordinates one output pixel depends on, collected backwards through the DAG one
window at a time (padding coordinates included, as the theoretical field counts them);
(2) the engine: the nonzero region of the gradient of one output pixel with respect to
the input, on graphs where no ReLU or max pool can hide part of the field; and (3) the
published VGG-16 figure.
"""
from __future__ import annotations

import numpy as np
import pytest

import archstat
import archstat.zoo

#: the zoo models that were spec files of their own before the family specs (resnet.yaml,
#: vgg.yaml, ...) replaced them: the brute force keeps covering each of them
FORMER_SPECS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet50_v1", "vgg11",
                "vgg11_lrn", "vgg13", "vgg16", "vgg16_c", "vgg19", "densenet121", "efficientnet_b0",
                "squeezenet1_0")
#: the packaged spec files (specs/*.yaml without the zoo index) at their default arguments,
#: then the former single-model specs by their zoo names
MODELS = list(archstat.zoo.spec_files()) + list(FORMER_SPECS)


def brute_force_field(model, shapes, target: str, axis: int) -> tuple[int, float]:
    """(size, centre) along ``axis`` (0: height, 1: width) of the input coordinates that
    output index 0 of ``target`` depends on, by set propagation (no recurrences)."""
    needed: dict[str, set[int]] = {target: {0}}
    for layer in reversed(list(model.layers())):
        name = layer.name
        if name not in needed or not layer.inputs:
            continue
        out_idx = needed[name]
        window = layer.type.window([shapes[s] for s in layer.inputs], layer.attrs)
        if window is None:
            in_idx = set(out_idx)
        else:
            k, s, p, d = (window.kernel[axis], window.stride[axis], window.padding[axis],
                          window.dilation[axis])
            in_idx = {o * s - p + j * d for o in out_idx for j in range(k)}
        for src in layer.inputs:
            needed.setdefault(src, set()).update(in_idx)
    idx = needed["input"]
    return max(idx) - min(idx) + 1, (max(idx) + min(idx)) / 2


def spatial_targets(model, shapes, limit: int = 12) -> list[str]:
    """Up to ``limit`` layers spread over the graph whose output is still an image."""
    names = [n for n in model.order[1:] if len(shapes[n]) == 4]
    step = max(1, len(names) // limit)
    return names[::step][:limit] + names[-1:]


@pytest.mark.parametrize("spec", MODELS)
def test_recurrences_match_brute_force_on_every_spec(spec):
    model = archstat.load(spec)
    shapes = model.shapes(1)
    rows = {r["name"]: r for r in archstat.analyze(model).rows()}
    for target in spatial_targets(model, shapes):
        for axis in (0, 1):
            size, centre = brute_force_field(model, shapes, target, axis)
            row = rows[target]
            assert row["rf_size"][axis] == size, (spec, target, axis)
            assert row["rf_offset"][axis] == pytest.approx(centre), (spec, target, axis)


def test_vgg16_pool5_matches_distill():
    # Araujo, Norris & Sim, Distill 2019 (receptive_fields.csv, vgg_16/pool5 at 224): size 212,
    # effective stride 32, effective padding 90; effective padding = (size - 1) / 2 - offset
    # pool5 is torchvision's features.30 (make_layers' numbering of configuration D)
    row = next(r for r in archstat.analyze("vgg16").rows() if r["name"] == "features.30")
    assert row["rf_size"] == (212, 212) and row["rf_stride"] == (32, 32)
    assert (row["rf_size"][0] - 1) / 2 - row["rf_offset"][0] == 90


def test_convnext_receptive_field_is_square():
    # ConvNeXt-T (torchvision convnext.py): a 4x4/4 stem (field 4, stride 4), then blocks of a
    # 7x7 depthwise conv (padding 3) and an MLP on each pixel, run channels-last (permute to
    # (N, H, W, C), layer norm and two linears on C, permute back): the MLP mixes channels, not
    # pixels. After the first block: 4 + (7 - 1) * 4 = 28 pixels, in height and in width alike.
    # Stage by stage in height: 4 + 3 * 6 * 4 = 76; + 4 (2x2/2 down-sampling at stride 4) = 80;
    # + 3 * 6 * 8 = 224; + 8 = 232; + 9 * 6 * 16 = 1,096; + 16 = 1,112; + 3 * 6 * 32 = 1,688
    rows = {r["name"]: r for r in archstat.analyze("convnext_tiny").rows()}
    assert rows["features.1.0.add"]["rf_size"] == (28, 28)
    assert rows["features.7.2.add"]["rf_size"] == (1_688, 1_688)
    assert rows["features.7.2.add"]["rf_stride"] == (32, 32)


def test_engine_gradient_of_one_pixel_covers_exactly_the_field():
    # no ReLU or max pool (which would zero part of the gradient); positive weights, so every
    # input pixel in the field contributes; two branches of different reach joined by concat
    spec = {"input": [2, 41, 41], "layers": [
        {"name": "a", "type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1},
        {"name": "b", "type": "conv2d", "out_channels": 3, "kernel_size": 3, "dilation": 2, "stride": 2},
        {"name": "pool", "type": "avg_pool2d", "kernel_size": 2},
        {"name": "wide", "type": "conv2d", "out_channels": 2, "kernel_size": [5, 3], "padding": [2, 1],
         "inputs": "pool"},
        {"name": "narrow", "type": "conv2d", "out_channels": 2, "kernel_size": 1, "inputs": "pool"},
        {"name": "cat", "type": "concat", "inputs": ["wide", "narrow"]}]}
    model = archstat.load(spec)
    rows = {r["name"]: r for r in archstat.analyze(model).rows()}
    ex = archstat.Executor(model, dtype="float64")
    for params in ex.params.values():
        for w in params.values():
            np.abs(w, out=w)
            w += 0.1
    x = np.ones((1, 2, 41, 41))
    out = ex.forward(x, keep_cache=True)
    i, j = out.shape[2] // 2, out.shape[3] // 2        # a pixel whose field lies inside the image
    dy = np.zeros_like(out)
    dy[0, :, i, j] = 1.0
    ex.backward(dy)
    hit = np.argwhere(np.abs(ex.input_grad[0]).sum(axis=0) > 0)
    rf = rows["cat"]
    for axis, centre_index in ((0, i), (1, j)):
        lo, hi = hit[:, axis].min(), hit[:, axis].max()
        assert hi - lo + 1 == rf["rf_size"][axis]
        # the field of output index n is centred at offset + n * stride
        assert (lo + hi) / 2 == rf["rf_offset"][axis] + centre_index * rf["rf_stride"][axis]


def test_unaligned_merge_is_flagged():
    # a 3x3 conv with padding 1 is centred on its pixel (offset 0); a 2x2 conv with 'same'
    # padding pads only after (PyTorch), so its field is centred half a pixel later
    spec = {"input": [1, 16, 16], "layers": [
        {"name": "odd", "type": "conv2d", "out_channels": 1, "kernel_size": 3, "padding": 1},
        {"name": "even", "type": "conv2d", "out_channels": 1, "kernel_size": 2, "padding": "same",
         "inputs": "input"},
        {"name": "sum", "type": "add", "inputs": ["odd", "even"]},
        {"name": "same", "type": "add", "inputs": ["odd", "odd"]}]}
    rows = {r["name"]: r for r in archstat.analyze(spec).rows()}
    assert rows["even"]["rf_offset"] == (0.5, 0.5)
    assert rows["sum"]["rf_aligned"] is False
    assert rows["same"]["rf_aligned"] is True
    # the union of [-1, 1] and [0, 1]: 3 pixels centred at 0
    assert rows["sum"]["rf_size"] == (3, 3) and rows["sum"]["rf_offset"] == (0.0, 0.0)


def test_ceil_mode_window_larger_than_padded_input_matches_pytorch():
    # PyTorch: floor((3 + 2 - 2*(4-1) - 1 + (3-1)) / 3) + 1 = 1 output, the window starting in
    # the padding and reaching input pixel 1 through its dilation
    spec = {"input": [1, 3, 3], "layers": [{"type": "max_pool2d", "kernel_size": 4, "stride": 3,
                                            "padding": 1, "dilation": 2, "ceil_mode": True}]}
    assert archstat.analyze(spec).rows()[-1]["output_shape"] == (1, 1, 1, 1)


def test_pool_padding_limit_is_half_the_undilated_kernel():
    # torch: "pad should be smaller than or equal to half of kernel size" (3 // 2 = 1), dilation aside
    spec = {"input": [1, 9, 9], "layers": [{"type": "max_pool2d", "kernel_size": 3, "padding": 2,
                                            "dilation": 2}]}
    with pytest.raises(archstat.ArchstatError, match="field 'padding'"):
        archstat.load(spec)
