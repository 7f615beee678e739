"""The ONNX importer on hand-built graphs: one test per pattern exporters write, with counts
derived by hand, the engine's output on the imported graph against onnxruntime's (float32,
1e-4), and every error a bad file can cause (one line, naming the node).

The torchvision exports are in tests/test_import_onnx_torchvision.py.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import archstat
from archstat import ArchstatError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from archstat.importers.onnx_import import SUPPORTED, read_onnx  # noqa: E402

RNG = np.random.default_rng(0)


# ------------------------------------------------------------------- building graphs

def rand(*shape, scale=0.5):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def make(nodes, inits=None, x_shape=("N", 3, 8, 8), opset=13, outputs=("y",), name="g", inputs=None,
         value_info=(), out_shapes=None):
    """A ModelProto: input x (float32) of x_shape (a symbolic batch by default), outputs with
    unknown shapes unless given."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape) if x_shape is not None else None)
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, (out_shapes or {}).get(o)) for o in outputs]
    tensors = [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()]
    graph = helper.make_graph(nodes, name, inputs if inputs is not None else [x], outs, tensors,
                              value_info=list(value_info))
    ir = 8 if opset < 18 else 9
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir,
                             producer_name="tests", producer_version="1")


def node(op, inputs, outputs, name=None, **attrs):
    return helper.make_node(op, list(inputs), list(outputs), name=name or f"{op.lower()}_{outputs[0]}", **attrs)


def load(m, **kwargs):
    """(Imported, Model, analysis totals) of a ModelProto."""
    imp = read_onnx(m, **kwargs)
    model = archstat.load(imp.spec)
    return imp, model, archstat.analyze(model).totals


def types(imp):
    return [layer["type"] for layer in imp.spec["layers"]]


def assert_runs_like_onnxruntime(m, imp, batch=2, tol=1e-4):
    """The engine on the imported graph with the file's weights matches onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    model = archstat.load(imp.spec)
    first = m.graph.input[0].type.tensor_type.shape.dim[0]
    batch = first.dim_value or batch
    x = RNG.standard_normal((batch, *model.input_shape)).astype(np.float32)
    ours = archstat.Executor(model, weights=imp.weights).forward(x)
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol * max(1.0, float(np.abs(theirs).max())))


# ------------------------------------------------------------------- convolutions, pools, linear

def test_conv_bn_relu_pool_gemm_chain_counts_and_runs():
    w1, b1 = rand(8, 3, 3, 3), rand(8)
    bn = dict(s=rand(8) + 1, b=rand(8), m=rand(8), v=np.abs(rand(8)) + 0.5)
    fc_w, fc_b = rand(10, 8), rand(10)
    m = make([
        node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[1, 1]),
        node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["bn"], epsilon=1e-3),
        node("Relu", ["bn"], ["r"]),
        node("MaxPool", ["r"], ["p"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        node("GlobalAveragePool", ["p"], ["g"]),
        node("Flatten", ["g"], ["f"], axis=1),
        node("Gemm", ["f", "fc_w", "fc_b"], ["y"], transB=1),
    ], {"w1": w1, "b1": b1, **bn, "fc_w": fc_w, "fc_b": fc_b})
    imp, model, totals = load(m)
    assert types(imp) == ["conv2d", "batch_norm2d", "relu", "max_pool2d", "global_avg_pool2d", "flatten", "linear"]
    # conv 8*3*3*3 + 8 = 224, bn 2*8 = 16 (+16 buffers), fc 10*8 + 10 = 90: 330 params
    assert (totals["params"], totals["buffers"]) == (330, 16)
    # conv 8 * 8*8 * 27 = 13,824 MACs; fc 80: 13,904
    assert totals["macs"] == 13_904
    # max pool 8 -> ceil((8 - 3) / 2) + 1 = 4 (ceil_mode)
    assert model.graph.nodes["maxpool_p"]["shape"] == (8, 4, 4)
    bn_layer = model.layer("batchnormalization_bn")
    assert bn_layer.attrs["eps"] == 1e-3 and bn_layer.attrs["momentum"] == pytest.approx(0.1)
    assert imp.spec["source"] == "imported from <onnx.ModelProto> (ONNX opset 13, producer tests 1)"
    assert_runs_like_onnxruntime(m, imp)


def test_grouped_dilated_strided_conv_and_auto_pad():
    w = rand(6, 2, 3, 3)  # groups 3: 6 in channels, 2 per group
    m = make([node("Conv", ["x", "w"], ["a"], group=3, dilations=[2, 2], pads=[2, 2, 2, 2]),
              node("Conv", ["a", "w2"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2])],
             {"w": w, "w2": rand(4, 6, 3, 3)}, x_shape=("N", 6, 9, 9))
    imp, model, totals = load(m)
    first, second = imp.spec["layers"]
    assert (first["groups"], first["dilation"], first["padding"], first["bias"]) == (3, 2, 2, False)
    # SAME_UPPER, stride 2 on 9: output ceil(9 / 2) = 5, total pad (5-1)*2 + 3 - 9 = 2: 1 each side
    assert second["padding"] == 1 and model.graph.nodes[second["name"]]["shape"] == (4, 5, 5)
    # 6*9*9*(2*9) + 4*5*5*(6*9) = 8,748 + 5,400
    assert totals["macs"] == 8_748 + 5_400 and totals["params"] == 6 * 2 * 9 + 4 * 6 * 9
    assert_runs_like_onnxruntime(m, imp)


def test_same_upper_with_an_even_kernel_is_pytorch_same_and_asymmetric_pads_are_per_side():
    even = make([node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER")], {"w": rand(4, 3, 2, 2)})
    imp, model, _ = load(even)
    assert imp.spec["layers"][0]["padding"] == "same"   # (0, 1) per axis, the odd pixel at the end
    assert_runs_like_onnxruntime(even, imp)
    # stride 2, pads (top, left, bottom, right) = (0, 0, 1, 1), as TensorFlow's SAME writes them:
    # 8 -> (8 + 1 - 3) // 2 + 1 = 4, the windows start at 0, 2, 4, 6 (a symmetric 1 would start at -1)
    asym = make([node("Conv", ["x", "w"], ["c"], name="down", pads=[0, 0, 1, 1], strides=[2, 2]),
                 node("MaxPool", ["c"], ["y"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                      auto_pad="SAME_LOWER")],
                {"w": rand(4, 3, 3, 3)})
    imp, model, totals = load(asym)
    conv, pool = imp.spec["layers"]
    assert conv["padding"] == [[0, 1], [0, 1]] and model.graph.nodes["down"]["shape"] == (4, 4, 4)
    # SAME_LOWER, stride 2 on 4: output 2, total pad (2-1)*2 + 3 - 4 = 1, on the top and left
    assert pool["padding"] == [[1, 0], [1, 0]] and model.graph.nodes["pool"]["shape"] == (4, 2, 2)
    assert totals["macs"] == 4 * 4 * 4 * 27
    assert not any("asymmetric" in n for n in imp.notes)
    assert_runs_like_onnxruntime(asym, imp)


def test_end_pads_beyond_half_the_kernel_are_ceil_mode():
    # opset 9 has no ceil_mode: the TorchScript exporter pads the end instead (GoogLeNet's
    # pools: pads (0, 0, 2, 2) on a 3x3 window), 8 -> (8 + 2 - 3) // 2 + 1 = 4 windows, the same
    # as ceil mode without padding: ceil((8 - 3) / 2) + 1 = 4
    m = make([node("MaxPool", ["x"], ["m"], name="max", kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 2, 2]),
              node("AveragePool", ["m"], ["y"], name="avg", kernel_shape=[3, 3], strides=[2, 2],
                   pads=[0, 0, 2, 2])], opset=9)
    imp, model, _ = load(m)
    for layer in imp.spec["layers"]:
        assert (layer.get("padding", 0), layer["ceil_mode"]) == (0, True), layer
    assert model.graph.nodes["max"]["shape"] == (3, 4, 4) and model.graph.nodes["avg"]["shape"] == (3, 2, 2)
    assert_runs_like_onnxruntime(m, imp)
    # counted in the average, the padding is not ceil mode's: refused with the reason
    m = make([node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 2, 2],
                   count_include_pad=1)], opset=9)
    with pytest.raises(ArchstatError, match=r"padding \(top, bottom, left, right\) = \(0, 2, 0, 2\) is more than half"):
        read_onnx(m)


def test_auto_pad_after_a_folded_pad_works_on_the_padded_size():
    # Pad the bottom of 9x9 by 1 -> 10x9, then a 3x3 stride-2 SAME_UPPER conv: ceil(10 / 2) = 5
    # rows need (5-1)*2 + 3 - 10 = 1 more pad (at the bottom), ceil(9 / 2) = 5 columns 1 each side
    m = make([node("Pad", ["x", "pads"], ["p"]), node("Conv", ["p", "w"], ["y"], name="conv", auto_pad="SAME_UPPER",
                                                       strides=[2, 2])],
             {"w": rand(4, 3, 3, 3), "pads": np.array([0, 0, 0, 0, 0, 0, 1, 0], np.int64)}, x_shape=("N", 3, 9, 9))
    imp, model, totals = load(m)
    assert imp.spec["layers"][0]["padding"] == [[0, 2], [1, 1]] and model.graph.nodes["conv"]["shape"] == (4, 5, 5)
    assert totals["macs"] == 4 * 5 * 5 * 27
    assert_runs_like_onnxruntime(m, imp)


def test_a_zero_pad_folds_into_the_conv_and_pool_after_it():
    m = make([
        node("Pad", ["x", "pads"], ["xp"], mode="constant"),
        node("Conv", ["xp", "w"], ["c"]),
        node("Relu", ["c"], ["r"]),
        node("Pad", ["r", "pads"], ["rp"]),
        node("MaxPool", ["rp"], ["mp"], kernel_shape=[3, 3], strides=[1, 1]),
        node("Pad", ["mp", "pads"], ["ap"]),
        node("AveragePool", ["ap"], ["y"], kernel_shape=[3, 3], strides=[2, 2]),
    ], {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "w": rand(4, 3, 3, 3)}, opset=13)
    imp, model, _ = load(m)
    conv, relu, maxpool, avgpool = imp.spec["layers"]
    assert conv["padding"] == 1 and maxpool["padding"] == 1
    # zeros the Pad added are averaged in: PyTorch's count_include_pad
    assert avgpool["padding"] == 1 and model.layer(avgpool["name"]).attrs["count_include_pad"] is True
    assert_runs_like_onnxruntime(m, imp)


def test_a_reflect_pad_is_the_convs_padding_mode_and_opset_9_pads_are_attributes():
    m = make([node("Pad", ["x"], ["xp"], mode="reflect", pads=[0, 0, 2, 1, 0, 0, 2, 1]),
              node("Conv", ["xp", "w"], ["y"])], {"w": rand(4, 3, 5, 3)}, opset=9)
    imp, model, _ = load(m)
    conv = imp.spec["layers"][0]
    assert (conv["padding"], conv["padding_mode"]) == ([2, 1], "reflect")
    assert_runs_like_onnxruntime(m, imp)


def test_average_pool_count_include_pad_and_ceil_mode():
    for include in (0, 1):
        m = make([node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                       count_include_pad=include, ceil_mode=1)], x_shape=("N", 2, 8, 8))
        imp, model, _ = load(m)
        assert model.layer(imp.spec["layers"][0]["name"]).attrs["count_include_pad"] is bool(include)
        assert_runs_like_onnxruntime(m, imp)


def test_gemm_alpha_beta_and_transposes():
    b, c = rand(5, 4), rand(5)   # B is [in=5, out=4]... transB=0: A (N, 5) x B (5, 4)
    m = make([node("Gemm", ["x", "B", "C"], ["y"], alpha=0.5, beta=2.0)], {"B": rand(5, 4), "C": rand(4)},
             x_shape=("N", 5))
    imp, model, totals = load(m)
    assert imp.spec["input"] == [5] and types(imp) == ["linear"]
    # 5 * 4 + 4 = 24 params, 20 MACs per sample
    assert (totals["params"], totals["macs"]) == (24, 20)
    assert any("alpha" in n for n in imp.notes)
    assert_runs_like_onnxruntime(m, imp)
    del b, c
    transposed_a = make([node("Gemm", ["x", "B"], ["y"], transA=1)], {"B": rand(5, 4)}, x_shape=(5, 5))
    with pytest.raises(ArchstatError, match="transA"):
        read_onnx(transposed_a)


def test_matmul_and_add_are_one_linear_layer_on_the_last_axis():
    m = make([node("MatMul", ["x", "W"], ["h"]), node("Add", ["bias", "h"], ["y"])],
             {"W": rand(6, 3), "bias": rand(3)}, x_shape=("N", 4, 5, 6))
    imp, model, totals = load(m)
    assert types(imp) == ["linear"] and imp.spec["layers"][0]["in_features"] == 6
    # 6*3 + 3 = 21 params; MACs = 4*5 positions * 6*3 = 360
    assert (totals["params"], totals["macs"]) == (21, 360)
    assert imp.weights["matmul_h"]["weight"].shape == (3, 6)   # [out, in]
    assert_runs_like_onnxruntime(m, imp)


# ------------------------------------------------------------------- normalisation

def test_batch_norm_written_as_mul_and_add_is_batch_norm():
    scale, shift = rand(3, 1, 1) + 1, rand(3, 1, 1)
    m = make([node("Conv", ["x", "w"], ["c"]), node("Mul", ["c", "scale"], ["s"]),
              node("Add", ["s", "shift"], ["y"])], {"w": rand(3, 3, 1, 1), "scale": scale, "shift": shift})
    imp, model, totals = load(m)
    assert types(imp) == ["conv2d", "batch_norm2d"]
    # conv 9, scale and shift 3 each: 15 params; the batch norm's running stats are 6 buffers
    assert (totals["params"], totals["buffers"]) == (15, 6)
    assert any("running_mean 0, running_var 1" in n for n in imp.notes)
    assert_runs_like_onnxruntime(m, imp)


def test_a_per_channel_scale_alone_is_layer_scale_and_a_conv_bias_add_folds():
    m = make([node("Conv", ["x", "w"], ["c"]), node("Add", ["c", "b"], ["cb"]),
              node("Mul", ["gamma", "cb"], ["y"])],
             {"w": rand(4, 3, 3, 3), "b": rand(1, 4, 1, 1), "gamma": rand(4, 1, 1)})
    imp, model, totals = load(m)
    assert types(imp) == ["conv2d", "layer_scale"] and model.layer("conv_c").attrs["bias"] is True
    assert totals["params"] == 4 * 27 + 4 + 4
    assert_runs_like_onnxruntime(m, imp)


def test_a_per_channel_shift_alone_is_channel_bias_and_holds_only_its_values():
    # an Add of a (3, 1, 1) constant after a ReLU: 3 values in the file, 3 params, no buffers;
    # c - x is a scale of -1 and a shift: not a shift alone
    m = make([node("Relu", ["x"], ["r"]), node("Add", ["r", "b"], ["y"])], {"b": rand(3, 1, 1)})
    imp, model, totals = load(m)
    assert types(imp) == ["relu", "channel_bias"] and (totals["params"], totals["buffers"]) == (3, 0)
    assert_runs_like_onnxruntime(m, imp)
    m = make([node("Relu", ["x"], ["r"]), node("Sub", ["b", "r"], ["y"])], {"b": rand(3, 1, 1)})
    imp, _, _ = load(m)
    assert types(imp) == ["relu", "batch_norm2d"]
    assert_runs_like_onnxruntime(m, imp)


def test_a_scale_and_shift_of_flat_features_is_layer_scale_then_channel_bias():
    m = make([node("Flatten", ["x"], ["f"]), node("Mul", ["f", "g"], ["s"]), node("Add", ["s", "b"], ["y"])],
             {"g": rand(12), "b": rand(12)}, x_shape=("N", 3, 2, 2))
    imp, model, totals = load(m)
    assert types(imp) == ["flatten", "layer_scale", "channel_bias"] and totals["params"] == 24
    assert imp.spec["layers"][2]["name"] == "mul_s.shift"
    assert_runs_like_onnxruntime(m, imp)


def test_layer_normalization_op_and_its_decomposed_form():
    ln = make([node("LayerNormalization", ["x", "g", "b"], ["y"], epsilon=1e-6)], {"g": rand(8), "b": rand(8)},
              x_shape=("N", 2, 4, 8), opset=17)
    imp, model, totals = load(ln)
    assert types(imp) == ["layer_norm"] and imp.spec["layers"][0]["eps"] == 1e-6
    assert totals["params"] == 16
    assert_runs_like_onnxruntime(ln, imp)
    # torch's opset-9 layer_norm: ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add
    decomposed = make(_decomposed_ln("x", [-1], "y"), {"two": np.float32(2), "eps": np.float32(1e-5),
                                                        "g": rand(8), "b": rand(8)}, x_shape=("N", 2, 4, 8), opset=9)
    imp, model, totals = load(decomposed)
    assert types(imp) == ["layer_norm"] and totals["params"] == 16
    assert_runs_like_onnxruntime(decomposed, imp)


def _decomposed_ln(x, axes, out, weight="g", bias="b"):
    return [node("ReduceMean", [x], ["mu"], axes=axes), node("Sub", [x, "mu"], ["d"]),
            node("Pow", ["d", "two"], ["d2"]), node("ReduceMean", ["d2"], ["var"], axes=axes),
            node("Add", ["var", "eps"], ["ve"]), node("Sqrt", ["ve"], ["sd"]), node("Div", ["d", "sd"], ["n"]),
            node("Mul", ["n", weight], ["nw"]), node("Add", ["nw", bias], [out])]


def test_layer_norm_over_the_channels_of_an_image_is_layer_norm2d():
    consts = {"two": np.float32(2), "eps": np.float32(1e-6), "g": rand(3, 1, 1), "b": rand(3, 1, 1)}
    over_c = make(_decomposed_ln("x", [1], "y"), consts, opset=9)
    imp, model, totals = load(over_c)
    assert types(imp) == ["layer_norm2d"] and totals["params"] == 6
    assert_runs_like_onnxruntime(over_c, imp)
    # ConvNeXt's LayerNorm2d at opset 17: permute to channels-last, LayerNormalization, back
    sandwich = make([node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
                     node("LayerNormalization", ["t", "g3", "b3"], ["n"], epsilon=1e-6),
                     node("Transpose", ["n"], ["y"], perm=[0, 3, 1, 2])], {"g3": rand(3), "b3": rand(3)}, opset=17)
    imp, model, totals = load(sandwich)
    assert types(imp) == ["layer_norm2d"] and totals["params"] == 6
    assert_runs_like_onnxruntime(sandwich, imp)


def test_lrn():
    m = make([node("LRN", ["x"], ["y"], size=3, alpha=2e-4, beta=0.75, bias=2.0)])
    imp, model, _ = load(m)
    layer = imp.spec["layers"][0]
    assert (layer["type"], layer["size"], layer["alpha"], layer["k"]) == ("lrn", 3, 2e-4, 2.0)
    assert_runs_like_onnxruntime(m, imp)


# ------------------------------------------------------------------- activations

SQRT2 = np.float32(math.sqrt(2.0))


@pytest.mark.parametrize("nodes, consts, opset, expected", [
    ([node("Relu", ["x"], ["y"])], {}, 13, ("relu", {})),
    ([node("Clip", ["x"], ["y"], min=0.0, max=6.0)], {}, 9, ("relu6", {})),            # bounds as attributes
    ([node("Clip", ["x", "lo", "hi"], ["y"])], {"lo": np.float32(0), "hi": np.float32(6)}, 13, ("relu6", {})),
    ([node("Clip", ["x", "lo"], ["y"])], {"lo": np.float32(0)}, 13, ("relu", {})),       # no max: a ReLU
    ([node("Sigmoid", ["x"], ["y"])], {}, 13, ("sigmoid", {})),
    ([node("Tanh", ["x"], ["y"])], {}, 13, ("tanh", {})),
    ([node("HardSwish", ["x"], ["y"])], {}, 14, ("hardswish", {})),
    ([node("HardSigmoid", ["x"], ["y"], alpha=1 / 6)], {}, 13, ("hardsigmoid", {})),
    # opset 9 hardswish: x * HardSigmoid(x)
    ([node("HardSigmoid", ["x"], ["h"], alpha=1 / 6), node("Mul", ["x", "h"], ["y"])], {}, 9, ("hardswish", {})),
    ([node("Sigmoid", ["x"], ["s"]), node("Mul", ["s", "x"], ["y"])], {}, 13, ("silu", {})),
    # torch's GELU at opset 9-17: x * 0.5 * (1 + erf(x / sqrt 2)), in the exporter's order
    ([node("Div", ["x", "r2"], ["d"]), node("Erf", ["d"], ["e"]), node("Add", ["e", "one"], ["a"]),
      node("Mul", ["x", "a"], ["m"]), node("Mul", ["m", "half"], ["y"])],
     {"r2": SQRT2, "one": np.float32(1), "half": np.float32(0.5)}, 13, ("gelu", {})),
    # another order: 0.5 * x first, then multiplied by (erf(x * 1/sqrt 2) + 1)
    ([node("Mul", ["x", "half"], ["hx"]), node("Mul", ["x", "ir2"], ["d"]), node("Erf", ["d"], ["e"]),
      node("Add", ["one", "e"], ["a"]), node("Mul", ["hx", "a"], ["y"])],
     {"ir2": np.float32(1 / math.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5)}, 13, ("gelu", {})),
    ([node("Gelu", ["x"], ["y"], approximate="tanh")], {}, 20, ("gelu", {"approximate": "tanh"})),
    # the tanh approximation written out: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    ([node("Pow", ["x", "three"], ["x3"]), node("Mul", ["x3", "c"], ["cx3"]), node("Add", ["x", "cx3"], ["in"]),
      node("Mul", ["in", "k"], ["kin"]), node("Tanh", ["kin"], ["t"]), node("Add", ["t", "one"], ["t1"]),
      node("Mul", ["x", "t1"], ["xt"]), node("Mul", ["xt", "half"], ["y"])],
     {"three": np.float32(3), "c": np.float32(0.044715), "k": np.float32(math.sqrt(2 / math.pi)),
      "one": np.float32(1), "half": np.float32(0.5)}, 13, ("gelu", {"approximate": "tanh"})),
])
def test_activations_are_found_by_what_they_compute(nodes, consts, opset, expected):
    m = make(nodes, consts, opset=opset)
    imp, model, totals = load(m)
    assert len(imp.spec["layers"]) == 1
    layer = imp.spec["layers"][0]
    assert layer["type"] == expected[0] and all(layer[k] == v for k, v in expected[1].items())
    assert totals["params"] == 0
    if opset <= 17 or expected[0] != "gelu":
        assert_runs_like_onnxruntime(m, imp)


def test_a_hard_sigmoid_with_other_constants_is_not_archstats_and_a_scaled_relu_is_two_nodes():
    m = make([node("HardSigmoid", ["x"], ["y"], name="hs", alpha=0.2, beta=0.5)])
    with pytest.raises(ArchstatError, match=r"layer 'hs': this HardSigmoid node is not supported"):
        read_onnx(m)
    scaled = make([node("Relu", ["x"], ["r"]), node("Mul", ["r", "half"], ["y"], name="halve")],
                  {"half": np.float32(0.5)})
    with pytest.raises(ArchstatError, match="layer 'halve'"):
        read_onnx(scaled)


# ------------------------------------------------------------------- global pools, reshapes, pieces

@pytest.mark.parametrize("keepdims, opset, expected", [
    (0, 13, ["global_avg_pool2d", "flatten"]), (1, 13, ["global_avg_pool2d"]),
    (0, 18, ["global_avg_pool2d", "flatten"])])
def test_reduce_mean_over_h_and_w_is_global_average_pooling(keepdims, opset, expected):
    if opset >= 18:
        nodes, consts = [node("ReduceMean", ["x", "axes"], ["y"], keepdims=keepdims)], {"axes": np.array([-1, -2])}
    else:
        nodes, consts = [node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=keepdims)], {}
    m = make(nodes, consts, opset=opset)
    imp, model, _ = load(m)
    assert types(imp) == expected
    assert_runs_like_onnxruntime(m, imp)


def test_reshape_to_batch_and_minus_one_is_flatten_also_through_shape_arithmetic():
    # a literal 1: a flatten where the file fixes the batch at 1; with an open batch it merges
    # the batch into the features at any other size (onnxruntime: (2, 3, 8, 8) -> (1, 384))
    direct = make([node("Reshape", ["x", "shape"], ["y"])], {"shape": np.array([1, -1], np.int64)},
                  x_shape=(1, 3, 8, 8))
    imp, model, _ = load(direct)
    assert types(imp) == ["flatten"]
    direct = make([node("Reshape", ["x", "shape"], ["y"])], {"shape": np.array([1, -1], np.int64)})
    with pytest.raises(ArchstatError, match=r"it reshapes \(7, 3, 8, 8\) to \(1, 1344\).* \(shapes at batch 7: the "
                                            r"file leaves the batch open\) \(inputs: \(N, 3, 8, 8\), a constant\)"):
        read_onnx(direct)
    flat0 = make([node("Flatten", ["x"], ["y"], axis=0)])
    with pytest.raises(ArchstatError, match="this Flatten node is not supported"):
        read_onnx(flat0)
    # x.view(x.size(0), -1) with a symbolic batch: Shape -> Gather -> Unsqueeze -> Concat -> Reshape
    arithmetic = make([
        node("Shape", ["x"], ["s"]), node("Gather", ["s", "zero"], ["n"], axis=0),
        node("Unsqueeze", ["n", "axes0"], ["n1"]), node("Concat", ["n1", "minus1"], ["target"], axis=0),
        node("Reshape", ["x", "target"], ["y"])],
        {"zero": np.array(0, np.int64), "axes0": np.array([0], np.int64), "minus1": np.array([-1], np.int64)},
        x_shape=("batch", 3, 8, 8))
    imp, model, _ = load(arithmetic)
    assert types(imp) == ["flatten"] and model.graph.nodes[imp.spec["layers"][0]["name"]]["shape"] == (192,)
    assert any("Folded 4 constant nodes" in n for n in imp.notes)
    assert_runs_like_onnxruntime(arithmetic, imp, batch=3)


def test_channel_shuffle_transpose_split_and_slice():
    m = make([
        node("Reshape", ["x", "s5"], ["r5"]), node("Transpose", ["r5"], ["t5"], perm=[0, 2, 1, 3, 4]),
        node("Reshape", ["t5", "s4"], ["sh"]),
        node("Split", ["sh", "sizes"], ["a", "b"], axis=1),
        node("Slice", ["sh", "starts", "ends", "axes"], ["c"]),
        node("Concat", ["b", "a", "c"], ["cat"], axis=1),
        node("Transpose", ["cat"], ["y"], perm=[0, 2, 3, 1]),
    ], {"s5": np.array([0, 2, 3, 8, 8], np.int64), "s4": np.array([0, -1, 8, 8], np.int64),
        "sizes": np.array([2, 4], np.int64), "starts": np.array([1], np.int64), "ends": np.array([3], np.int64),
        "axes": np.array([1], np.int64)}, x_shape=("N", 6, 8, 8))
    imp, model, _ = load(m)
    assert types(imp) == ["channel_shuffle", "split", "split", "split", "concat", "permute"]
    shuffle, a, b, c = imp.spec["layers"][:4]
    assert shuffle["groups"] == 2 and (a["sizes"], a["index"], b["index"]) == ([2, 4], 0, 1)
    assert (c["sizes"], c["index"]) == ([1, 2, 3], 1)
    assert model.graph.nodes[imp.spec["layers"][-1]["name"]]["shape"] == (8, 8, 8)
    assert_runs_like_onnxruntime(m, imp)


def test_split_as_attribute_and_in_equal_pieces():
    m11 = make([node("Split", ["x"], ["a", "b"], axis=1, split=[1, 2]), node("Add", ["b", "b"], ["y"])], opset=11)
    imp, _, _ = load(m11)
    assert types(imp) == ["split", "add"]   # only b is used
    assert (imp.spec["layers"][0]["sizes"], imp.spec["layers"][0]["index"]) == ([1, 2], 1)
    m18 = make([node("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3), node("Sum", ["a", "b", "c"], ["y"])],
               opset=18)
    imp, model, totals = load(m18)
    assert types(imp) == ["split"] * 3 + ["add"] and imp.spec["layers"][0]["chunks"] == 3
    # the n-ary add: 2 adds per output element of (1, 8, 8)
    assert totals["flops"] == 2 * 64
    assert_runs_like_onnxruntime(m18, imp)


# ------------------------------------------------------------------- merges and the rest

def test_se_gate_add_concat_softmax_dropout_identity_and_cast():
    m = make([
        node("Conv", ["x", "w"], ["c"]),
        node("GlobalAveragePool", ["c"], ["g"]), node("Sigmoid", ["g"], ["gate"]),
        node("Mul", ["gate", "c"], ["se"]),                      # (N, C, 1, 1) * (N, C, H, W)
        node("Identity", ["se"], ["se2"]), node("Cast", ["se2"], ["se3"], to=TensorProto.FLOAT),
        node("Add", ["se3", "c"], ["res"]), node("Concat", ["res", "c"], ["cat"], axis=1),
        node("Dropout", ["cat"], ["dr"], ratio=0.3),
        node("GlobalAveragePool", ["dr"], ["p"]), node("Flatten", ["p"], ["f"]),
        node("Softmax", ["f"], ["y"], axis=1),
    ], {"w": rand(4, 3, 1, 1)}, opset=11)
    imp, model, _ = load(m)
    assert types(imp) == ["conv2d", "global_avg_pool2d", "sigmoid", "mul", "add", "concat", "dropout",
                          "global_avg_pool2d", "flatten", "softmax"]
    mul = next(layer for layer in imp.spec["layers"] if layer["type"] == "mul")
    assert mul["inputs"][0] == "conv_c"   # the full-size input first
    assert any("Dropped 2 nodes that change nothing (Identity, Cast)" in n for n in imp.notes)
    assert imp.spec["layers"][6]["p"] == pytest.approx(0.3)
    assert_runs_like_onnxruntime(m, imp)


def test_opset_12_dropout_ratio_input_and_opset_7_graphs():
    m12 = make([node("Dropout", ["x", "ratio"], ["y"])], {"ratio": np.float32(0.2)}, opset=12)
    imp, _, _ = load(m12)
    assert types(imp) == ["dropout"] and imp.spec["layers"][0]["p"] == pytest.approx(0.2)
    m7 = make([node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
               node("Relu", ["c"], ["r"]), node("AveragePool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
               node("Flatten", ["p"], ["f"]), node("Gemm", ["f", "fw", "fb"], ["g"], transB=1),
               node("Dropout", ["g"], ["y"], ratio=0.5)],
              {"w": rand(4, 3, 3, 3), "b": rand(4), "fw": rand(5, 64), "fb": rand(5)}, opset=7)
    imp, model, totals = load(m7)
    assert types(imp) == ["conv2d", "relu", "avg_pool2d", "flatten", "linear", "dropout"]
    assert totals["params"] == 4 * 27 + 4 + 5 * 64 + 5
    assert_runs_like_onnxruntime(m7, imp)


# ------------------------------------------------------------------- constants

def test_weights_from_constant_nodes_and_constant_subgraphs_are_folded_and_counted():
    w = rand(4, 3, 3, 3)
    m = make([
        helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(w)),
        node("ConstantOfShape", ["bshape"], ["b0"], value=numpy_helper.from_array(np.array([0.25], np.float32))),
        node("Cast", ["b0"], ["b"], to=TensorProto.FLOAT),
        node("Mul", ["w", "two"], ["w2"]),                     # a weight computed from constants
        node("Conv", ["x", "w2", "b"], ["y"], pads=[1, 1, 1, 1]),
    ], {"bshape": np.array([4], np.int64), "two": np.float32(2)})
    imp, model, totals = load(m)
    assert types(imp) == ["conv2d"] and totals["params"] == 4 * 27 + 4
    np.testing.assert_allclose(imp.weights["conv_y"]["weight"], 2 * w)
    np.testing.assert_allclose(imp.weights["conv_y"]["bias"], 0.25)
    assert any(n.startswith("Folded 4 constant nodes") for n in imp.notes)
    assert_runs_like_onnxruntime(m, imp)


def test_a_tensor_shared_by_two_layers_counts_once():
    # the TorchScript exporter shares identical constants through Identity nodes; a module
    # called twice reads the same initializers twice
    m = make([node("Identity", ["w"], ["w_a"]), node("Identity", ["w"], ["w_b"]),
              node("Conv", ["x", "w_a", "b"], ["a"], pads=[1, 1, 1, 1]),
              node("Conv", ["a", "w_b", "b"], ["c"], pads=[1, 1, 1, 1]),
              node("Conv", ["c", "w1", "b"], ["y"])],
             {"w": rand(3, 3, 3, 3), "b": rand(3), "w1": rand(3, 3, 1, 1)})
    imp, model, totals = load(m)
    first, second, third = (layer["name"] for layer in imp.spec["layers"])
    # the file stores 81 + 3 + 9 values; the second conv is the first's module called again,
    # the third ties only its bias
    assert totals["params"] == 81 + 3 + 9
    assert imp.spec["layers"][1]["shares"] == first and imp.spec["layers"][2]["shares"] == {"bias": first}
    assert second not in imp.weights and set(imp.weights[third]) == {"weight"}
    note = next(n for n in imp.notes if "count once" in n)
    assert note.startswith("2 tensors of the file are read by more than one layer") and "3 later reads" in note
    assert f"'b' by {second}.bias, {third}.bias" in note
    assert not any("more values than the file stores" in n for n in imp.notes)
    assert_runs_like_onnxruntime(m, imp)


def test_a_tensor_read_in_two_layouts_is_counted_per_use():
    # one matrix read by a Gemm as is and by another transposed (transB): not one tensor to archstat
    w = rand(4, 4)
    m = make([node("Flatten", ["x"], ["f"]), node("Gemm", ["f", "w0"], ["h"]),
              node("Gemm", ["h", "w"], ["g"]), node("Gemm", ["g", "w"], ["y"], transB=1)],
             {"w0": rand(12, 4), "w": w}, x_shape=("N", 3, 2, 2))
    imp, model, totals = load(m)
    assert totals["params"] == 48 + 16 + 16 and not any("shares" in layer for layer in imp.spec["layers"])
    note = next(n for n in imp.notes if "different layouts" in n)
    assert "16 more values than the file stores" in note
    assert_runs_like_onnxruntime(m, imp)


def test_external_data_is_read_from_the_files_folder(tmp_path):
    m = make([node("Conv", ["x", "w"], ["y"])], {"w": rand(64, 3, 3, 3)})
    path = tmp_path / "sub" / "net.onnx"
    path.parent.mkdir()
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="net.data", size_threshold=16)
    assert (path.parent / "net.data").exists()
    imp, model, totals = load(str(path))
    assert totals["params"] == 64 * 27 and imp.spec["name"] == "g"
    assert imp.spec["source"].startswith("imported from net.onnx (ONNX opset 13")
    unloaded = onnx.load(str(path), load_external_data=False)
    with pytest.raises(ArchstatError, match="'w' is stored in an external file that was not loaded"):
        read_onnx(unloaded)
    assert load(onnx.load(str(path)))[2]["params"] == 64 * 27        # loaded by onnx: fine
    (path.parent / "net.data").unlink()
    with pytest.raises(ArchstatError, match=r"net.onnx: cannot read the initializer 'w' \(FileNotFoundError"):
        read_onnx(path)
    for entry in unloaded.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../../secret.data"
    onnx.save_model(unloaded, str(path))
    with pytest.raises(ArchstatError, match="points outside the model's folder"):
        read_onnx(path)


# ------------------------------------------------------------------- names, inputs, shapes

def test_layer_names_are_the_nodes_sanitised_unique_and_unnamed_nodes_are_counted():
    m = make([helper.make_node("Relu", ["x"], ["a"], name="/features/features.0/Relu"),
              helper.make_node("Sigmoid", ["a"], ["b"], name="my relu:1"),
              helper.make_node("Tanh", ["b"], ["c"], name="my relu:1"),
              helper.make_node("Sigmoid", ["c"], ["d"], name="input"),
              helper.make_node("Tanh", ["d"], ["e"]), helper.make_node("Sigmoid", ["e"], ["f"]),
              helper.make_node("Tanh", ["f"], ["y"])])
    imp, model, _ = load(m)
    assert [layer["name"] for layer in imp.spec["layers"]] == [
        "features/features.0/Relu", "my_relu_1", "my_relu_1_2", "input_2", "Tanh_0", "Sigmoid_0", "Tanh_1"]
    assert all("inputs" not in layer for layer in imp.spec["layers"])   # a chain: each reads the previous
    # where a name changed, the node it comes from (unnamed nodes by their index in the graph)
    assert imp.names["features/features.0/Relu"] == "/features/features.0/Relu"
    assert (imp.names["my_relu_1_2"], imp.names["input_2"], imp.names["Tanh_1"]) == ("my relu:1", "input", "Tanh #6")
    # the graph's name is the spec's (the file's stem for exporters' "main_graph"), dollars literal
    assert load(make([node("Relu", ["x"], ["y"])], name="net ${v2}"))[1].name == "net ${v2}"
    assert read_onnx(make([node("Relu", ["x"], ["y"])], name="main_graph")).spec["name"] == "model"


def test_dynamo_exports_are_named_by_their_module_paths():
    # torch's dynamo exporter names nodes node_Conv_82 and writes the module path that ran each
    # into its metadata; the weight a fused conv alone reads names it (batch norm folded into
    # layer1.0.conv1 carries layer1.0.bn1's scope)
    def scoped(n, *scopes):
        helper.set_metadata_props(n, {"pkg.torch.onnx.name_scopes": repr(["", *scopes])})
        return n

    m = make([scoped(node("Conv", ["x", "layer1.0.conv1.weight"], ["c"], name="node_Conv_82", pads=[1, 1, 1, 1]),
                     "layer1", "layer1.0", "layer1.0.bn1", "_native_batch_norm_legit_no_training_3"),
              scoped(node("Relu", ["c"], ["r"], name="node_relu_1"), "layer1", "layer1.0", "layer1.0.relu", "relu_1"),
              scoped(node("Add", ["r", "x"], ["a"], name="node_add"), "layer1", "layer1.0", "add"),
              scoped(node("Relu", ["a"], ["y"], name="node_relu_2"), "layer1", "layer1.0", "layer1.0.relu", "relu_2")],
             {"layer1.0.conv1.weight": rand(3, 3, 3, 3)})
    imp, _, _ = load(m)
    assert [layer["name"] for layer in imp.spec["layers"]] == [
        "layer1.0.conv1", "layer1.0.relu", "layer1.0.add", "layer1.0.relu_2"]
    assert imp.names["layer1.0.add"] == "node_add" and imp.names["layer1.0.relu_2"] == "node_relu_2"


def test_a_symbolic_batch_is_fine_and_symbolic_sizes_need_input_shape():
    dyn = make([node("Relu", ["x"], ["y"])], x_shape=("N", 3, "H", "W"))
    # the hint spells out what to give: the file's channels, and the sizes it leaves open
    with pytest.raises(ArchstatError, match=r"input 'x' has symbolic dimensions \(\?, 3, \?, \?\).*--input 3 H W"):
        read_onnx(dyn)
    imp, model, _ = load(dyn, input_shape=(3, 32, 16))
    assert imp.spec["input"] == [3, 32, 16]
    with pytest.raises(ArchstatError, match=r"input_shape \(4, 32, 16\) disagrees with the input 'x'.*--input 3 H W$"):
        read_onnx(dyn, input_shape=(4, 32, 16))
    static = make([node("Relu", ["x"], ["y"])])
    assert read_onnx(static, input_shape=(3, 8, 8)).spec["input"] == [3, 8, 8]
    for wrong in ((3, 8), (3, 16, 16)):
        with pytest.raises(ArchstatError, match=r"fixes the input 'x' at \(\?, 3, 8, 8\).*leave out --input"):
            read_onnx(static, input_shape=wrong)


def test_stored_shapes_are_checked_against_archstats():
    good = make([node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
                out_shapes={"y": [1, 3, 4, 4]})
    load(good)
    stale = make([node("MaxPool", ["x"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
                  node("Relu", ["p"], ["y"])],
                 value_info=[helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 3, 5, 5])])
    with pytest.raises(ArchstatError, match=r"layer 'pool': the file states shape \(1, 3, 5, 5\) for 'p', but "
                                            r"archstat's shape rules give \(1, 3, 4, 4\)"):
        read_onnx(stale)


def test_old_exporters_list_initializers_as_inputs_and_several_real_inputs_are_refused():
    w = rand(4, 3, 1, 1)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]),
              helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3, 1, 1])]
    imp, _, totals = load(make([node("Conv", ["x", "w"], ["y"])], {"w": w}, inputs=inputs))
    assert totals["params"] == 12
    two = inputs[:1] + [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3, 8, 8])]
    with pytest.raises(ArchstatError, match=r"the graph has 2 inputs \('x', 'z'\)"):
        read_onnx(make([node("Add", ["x", "z"], ["y"])], inputs=two))


# ------------------------------------------------------------------- what archstat cannot map

def test_an_unknown_node_is_an_error_naming_it_its_op_its_inputs_and_what_is_supported():
    m = make([node("Conv", ["x", "w"], ["r"]), node("LeakyRelu", ["r"], ["y"], name="/head/leaky", alpha=0.1)],
             {"w": rand(3, 3, 1, 1)})
    with pytest.raises(ArchstatError) as info:
        read_onnx(m)
    text = str(info.value)
    assert text == ("<onnx.ModelProto>: layer '/head/leaky': this LeakyRelu node has no archstat layer type "
                    "(inputs: (N, 3, 8, 8)); import it uncounted with --allow-unknown (allow_unknown=True); "
                    "archstat maps: " + SUPPORTED)
    assert "\n" not in text and not text.endswith("...")   # one line, nothing cut


def test_allow_unknown_passes_nodes_through_uncounted_with_onnx_shapes():
    m = make([node("Conv", ["x", "w"], ["c"]),
              node("Resize", ["c", "", "scales"], ["up"], name="upsample", mode="nearest"),
              node("Relu", ["up"], ["y"])], {"w": rand(4, 3, 3, 3), "scales": np.array([1, 1, 2, 2], np.float32)})
    with pytest.raises(ArchstatError, match="layer 'upsample': this Resize node has no archstat layer type"):
        read_onnx(m)
    imp, model, totals = load(m, allow_unknown=True)
    assert types(imp) == ["conv2d", "opaque", "relu"]
    assert imp.uncounted == [{"name": "upsample", "op": "Resize", "inputs": ["conv_c"], "output_shape": [4, 12, 12]}]
    assert model.graph.nodes["relu_y"]["shape"] == (4, 12, 12)
    assert totals["macs"] == 4 * 6 * 6 * 27 and totals["not_counted"]
    assert any("1 layer is not counted" in n and "upsample (Resize)" in n for n in imp.notes)


@pytest.mark.parametrize("content, says", [
    (b"", "the file is empty"),
    (b"name: resnet\nlayers: []\n", "not an ONNX model"),
    (b"\x08\x07\x12\x04test\x3a\xff\xff", "not an ONNX model, or a truncated one"),
])
def test_bad_files_get_one_clear_line(tmp_path, content, says):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ArchstatError, match=says) as info:
        read_onnx(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_a_truncated_model_file_and_a_missing_one(tmp_path):
    full = make([node("Conv", ["x", "w"], ["y"])], {"w": rand(16, 3, 3, 3)}).SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(ArchstatError, match="cut.onnx: "):
        read_onnx(path)
    with pytest.raises(ArchstatError, match="no such ONNX file"):
        read_onnx(tmp_path / "missing.onnx")
    with pytest.raises(ArchstatError, match="expected a path to an .onnx file or an onnx.ModelProto"):
        read_onnx(42)


def test_a_protobuf_over_2_gb_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.onnx"
    with open(path, "wb") as f:      # sparse: no disk space used
        f.truncate(2**31 + 10)
    with pytest.raises(ArchstatError, match="2.1 GB protobuf: ONNX files over 2 GB keep their weights in external"):
        read_onnx(path)


def test_graphs_with_a_cycle_no_nodes_an_old_opset_or_an_integer_input():
    cyclic = make([node("Add", ["x", "b"], ["a"], name="first"), node("Relu", ["a"], ["b"], name="second"),
                   node("Relu", ["a"], ["y"])])
    with pytest.raises(ArchstatError, match="the graph has a cycle: (first -> second -> first|second -> first -> s)"):
        read_onnx(cyclic)
    empty = make([], outputs=("x",))
    with pytest.raises(ArchstatError, match="the ONNX graph has no nodes"):
        read_onnx(empty)
    old = make([node("Relu", ["x"], ["y"])], opset=6)
    with pytest.raises(ArchstatError, match="ONNX opset 6 is older than archstat reads"):
        read_onnx(old)
    ints = make([node("Relu", ["x"], ["y"])], inputs=[helper.make_tensor_value_info("x", TensorProto.INT64, [1, 8])])
    with pytest.raises(ArchstatError, match="holds int64"):
        read_onnx(ints)
    dangling = make([node("Add", ["x", "nowhere"], ["y"], name="add")])
    with pytest.raises(ArchstatError, match="'add' reads 'nowhere', which no node produces"):
        read_onnx(dangling)


def test_without_the_onnx_package_the_error_says_how_to_install_it(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("no onnx")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(ArchstatError, match=r"needs the onnx package; pip install 'archstat\[onnx\]'"):
        read_onnx("model.onnx")


# ------------------------------------------------------------------- more forms exporters write

def test_normalisation_by_mean_and_std_and_hardswish_written_out():
    # (x - mean) / std per channel, as a preprocessing block: a batch norm of scale 1/std
    m = make([node("Sub", ["x", "mean"], ["c"]), node("Div", ["c", "std"], ["n"]),
              node("Add", ["n", "three"], ["a"]), node("Clip", ["a", "zero", "six"], ["r6"]),
              node("Mul", ["n", "r6"], ["m"]), node("Div", ["m", "six"], ["y"])],
             {"mean": rand(1, 3, 1, 1), "std": np.abs(rand(1, 3, 1, 1)) + 0.5, "three": np.float32(3),
              "zero": np.float32(0), "six": np.float32(6)})
    imp, model, totals = load(m)
    assert types(imp) == ["batch_norm2d", "hardswish"] and totals["params"] == 6
    assert_runs_like_onnxruntime(m, imp)


def test_squeeze_global_max_pool_reduce_max_and_a_fixed_batch():
    m = make([node("GlobalMaxPool", ["x"], ["g"]), node("Squeeze", ["g", "axes"], ["s"]),
              node("Unsqueeze", ["s", "axes"], ["u"]), node("ReduceMax", ["u"], ["y"], axes=[2, 3], keepdims=1)],
             {"axes": np.array([2, 3], np.int64)}, x_shape=(4, 3, 8, 8))
    with pytest.raises(ArchstatError, match=r"Unsqueeze node is not supported: it reshapes \(4, 3\) to "
                                            r"\(4, 3, 1, 1\)"):
        read_onnx(m)
    m = make([node("GlobalMaxPool", ["x"], ["g"]), node("Squeeze", ["g", "axes"], ["y"])],
             {"axes": np.array([2, 3], np.int64)}, x_shape=(4, 3, 8, 8))
    imp, model, _ = load(m)
    assert types(imp) == ["adaptive_max_pool2d", "flatten"]
    assert any("fixes the batch size at 4" in n for n in imp.notes)
    assert_runs_like_onnxruntime(m, imp)
    m = make([node("ReduceMax", ["x"], ["y"], axes=[3, 2], keepdims=0)], opset=13)
    imp, model, _ = load(m)
    assert types(imp) == ["adaptive_max_pool2d", "flatten"]
    assert_runs_like_onnxruntime(m, imp)


@pytest.mark.parametrize("nodes, consts, opset, says", [
    ([node("Softmax", ["x"], ["y"], axis=1)], {}, 11, r"opset 11 Softmax over axes 1.. of shape \(7, 3, 8, 8\)"),
    ([node("Slice", ["x", "s", "e", "a", "st"], ["y"])],
     {"s": np.array([0]), "e": np.array([4]), "a": np.array([2]), "st": np.array([2])}, 13, "step 2 along axis 2"),
    ([node("Concat", ["x", "c"], ["y"], axis=1)], {"c": rand(1, 1, 8, 8)}, 13, "it concatenates a constant"),
    ([node("MatMul", ["x", "x"], ["y"])], {}, 13, "a product of two computed tensors"),
    ([node("ReduceMean", ["x"], ["y"], axes=[1])], {}, 13, r"it reduces axes \[1\] of shape \(7, 3, 8, 8\)"),
    ([node("Transpose", ["x"], ["y"], perm=[1, 0, 2, 3])], {}, 13, r"perm \[1, 0, 2, 3\] moves the batch axis"),
    ([node("Reshape", ["x", "s"], ["y"])], {"s": np.array([0, 3, 64, 1])}, 13, r"reshapes \(7, 3, 8, 8\) to"),
    ([node("Add", ["x", "c"], ["y"])], {"c": np.float32(1)}, 13, "it adds a constant"),
    ([node("Conv", ["x", "w"], ["y"])], {"w": rand(4, 3, 3)}, 13, "only 2-D convolutions"),
    ([node("MaxPool", ["x"], ["y"])], {}, 13, "it has no kernel_shape"),
    ([node("LRN", ["x"], ["y"])], {}, 13, "it has no size"),
])
def test_ops_archstat_maps_in_forms_it_cannot_say_why(nodes, consts, opset, says):
    with pytest.raises(ArchstatError, match=says):
        read_onnx(make(nodes, consts, opset=opset))


def test_nodes_no_output_needs_are_left_out_and_noted_and_the_supported_ops_are_listed():
    m = make([node("Relu", ["x"], ["y"]), node("Sigmoid", ["x"], ["unused"]), node("Tanh", ["unused"], ["dead"])])
    imp, model, _ = load(m)
    assert types(imp) == ["relu"]
    assert "Left out 2 nodes that no output depends on (Sigmoid, Tanh)." in imp.notes
    from archstat.importers.onnx_import import supported_ops
    assert {"Conv", "Gemm", "MatMul", "LayerNormalization", "Pad", "Split"} <= set(supported_ops())


def test_a_pool_with_one_window_over_the_image_is_a_global_pool_and_old_softmax_over_unit_axes():
    # Caffe's ceil-mode pools, converted: a 7x7 average pool over 6x6, pads (0, 0, 1, 1) not
    # counted: one window that covers the image
    m = make([node("AveragePool", ["x"], ["p"], kernel_shape=[7, 7], pads=[0, 0, 1, 1]),
              node("MaxPool", ["p"], ["q"], kernel_shape=[1, 1]),
              node("Softmax", ["q"], ["y"], axis=1)], x_shape=("N", 5, 6, 6), opset=9)
    imp, model, _ = load(m)
    assert types(imp) == ["global_avg_pool2d", "adaptive_max_pool2d", "softmax"]   # 1x1 max over 1x1 too
    assert_runs_like_onnxruntime(m, imp)
