"""The ONNX project's own per-operator test cases (``onnx.backend.test.case.node``: a model,
its inputs and the expected outputs, written by the ONNX authors from the operator specs),
run through archstat's importer and engine for every op the importer maps.

A case's inputs after the first become initializers (archstat imports models of one input;
the others are the op's weights and settings). Cases whose first input is not a float image
(N, C, H, W) or features (N, F) are out of scope. Each case in scope is either refused with
an ArchstatError (an op used in a way archstat has no type for: 1-D windows, padding larger
than half the kernel, reshapes that move the batch, ...) or computes ONNX's expected output.
"""
from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest

import archstat
from archstat import ArchstatError

onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402

from archstat.importers.onnx_import import HANDLERS, read_onnx  # noqa: E402

#: cases whose expected output archstat's engine does not give, and why
DIFFERENT = {
    # BatchNormalization with training_mode=1 normalises with the batch's statistics; an
    # imported batch_norm2d runs inference with the running ones (the import notes it)
    "test_batchnorm_example_training_mode", "test_batchnorm_epsilon_training_mode",
}


def _single_input(model, inputs):
    """The case's model with every input but the first as an initializer of its test value,
    and its first output only (a layer norm's mean, a pool's indices are not archstat's)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    fixed = {t.name for t in graph.initializer}
    data = [v for v in graph.input if v.name not in fixed]
    for info, value in list(zip(data, inputs))[1:]:
        graph.initializer.append(numpy_helper.from_array(np.asarray(value), info.name))
    del graph.input[:]
    graph.input.extend(data[:1])
    del graph.output[1:]
    return copy


def _cases():
    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node.collect_testcases(None)
    for case in cases:
        ops = {n.op_type for n in case.model.graph.node} - {"Constant"}
        if ops and ops <= set(HANDLERS) and case.data_sets:
            inputs, outputs = case.data_sets[0]
            x = np.asarray(inputs[0])
            if x.dtype.kind == "f" and x.ndim in (2, 4):
                yield case.name, _single_input(case.model, inputs), x, np.asarray(outputs[0])


def _outcome(model, x, expected):
    try:
        imp = read_onnx(model)
    except ArchstatError:
        return "refused"
    dtype = "float64" if x.dtype == np.float64 else "float32"
    y = archstat.Executor(archstat.load(imp.spec), weights=imp.weights, dtype=dtype).forward(x)
    # atol 1e-4: some expected outputs are printed to four decimals in the case's source
    ok = y.shape == expected.shape and np.allclose(y, expected, rtol=1e-4, atol=1e-4)
    return "pass" if ok else "wrong"


def test_the_onnx_node_cases_of_the_mapped_ops_pass_or_are_refused_with_a_reason():
    outcomes = {name: _outcome(model, x, expected) for name, model, x, expected in _cases()}
    assert sorted(name for name, outcome in outcomes.items() if outcome == "wrong") == sorted(DIFFERENT)
    counts = Counter(outcomes.values())
    # onnx 1.23: 65 cases pass (Conv, pools, Gemm, MatMul, LRN, LayerNormalization, Split,
    # Softmax, Flatten, ...); the others in scope are refused with a reason, never wrong silently
    assert counts["pass"] >= 65


# ------------------------------------------------------------------- the ONNX model zoo's "light" models

def _light(name):
    from pathlib import Path
    path = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / f"light_{name}.onnx"
    if not path.exists():
        pytest.skip(f"this onnx wheel has no {path.name}")
    return path


@pytest.mark.parametrize("name, zoo", [("resnet50", "resnet50"), ("vgg19", "vgg19"),
                                       ("squeezenet", "squeezenet1_1")])
def test_the_onnx_zoos_converted_caffe2_models_give_the_zoos_counts(name, zoo):
    # the ONNX model zoo's opset-9 conversions (weights replaced by ConstantOfShape fills,
    # folded here), shipped in the onnx wheel: the same architectures as torchvision's
    totals = archstat.analyze(archstat.load(read_onnx(_light(name)).spec)).totals
    ours = archstat.analyze(archstat.load(zoo)).totals
    assert (totals["params"], totals["macs"]) == (ours["params"], ours["macs"])


@pytest.mark.parametrize("name", ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "shufflenet",
                                  "zfnet512"])
def test_the_other_converted_zoo_models_import(name):
    imp = read_onnx(_light(name))
    totals = archstat.analyze(archstat.load(imp.spec)).totals
    if name == "bvlc_alexnet":      # the two-GPU AlexNet of the paper: 60,965,224 (README)
        assert totals["params"] == 60_965_224
    if name == "inception_v1":      # Caffe's ceil-mode 7x7 average pool over 6x6: one window
        assert "global_avg_pool2d" in [layer["type"] for layer in imp.spec["layers"]]
    assert totals["macs"] > 0
