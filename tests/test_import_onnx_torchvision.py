"""torchvision's models through torch.onnx.export and back through archstat's ONNX importer.

What exporters really write: the TorchScript exporter at opset 17 in eval mode (batch norm
folded into the convolutions, identical constants shared through Identity nodes), an
opset-9 export that keeps batch norm (``training=PRESERVE``, no constant folding, a dynamic
batch axis, so shape arithmetic feeds the reshapes), and the dynamo exporter. The import
must give the zoo spec's MACs, the zoo's parameters when batch norm is kept, and the same
outputs as onnxruntime on the file's weights. Every torchvision CNN of the zoo is checked
for MACs in one test marked ``torchvision``.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

import archstat
import archstat.zoo

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from archstat.importers.onnx_import import read_onnx  # noqa: E402
from torchvision_meta import meta_model  # noqa: E402

#: a representative set: plain, residual, depthwise + SE, channel shuffle, dense, Inception,
#: RegNet's SE, ConvNeXt's layer norms and GELU, and AlexNet's dropout and large FC
REPRESENTATIVE = ["resnet18", "mobilenet_v3_small", "squeezenet1_1", "shufflenet_v2_x0_5", "efficientnet_b0",
                  "convnext_tiny", "densenet121", "googlenet", "regnet_y_400mf", "alexnet"]
#: the dynamo exporter takes seconds per model: a few families
DYNAMO = ["resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5", "convnext_tiny"]
#: models with batch norm: their eval-mode exports fold it into the convolutions
WITH_BATCH_NORM = {"resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5", "efficientnet_b0", "densenet121",
                   "googlenet", "regnet_y_400mf"}
#: the TorchScript exporter needs static sizes for ceil-mode pools and AlexNet's adaptive pool
#: at opset 9; the others are exported with symbolic batch, height and width
STATIC_SIZE = {"squeezenet1_1", "googlenet", "alexnet"}
#: the engine runs the symbolic-size exports at this size (faster than the zoo's)
RUN_SIZE = (3, 96, 96)
ALL_CNNS = [name for name, entry in archstat.zoo.entries().items() if entry.published]


def _zoo(name):
    """(inference params, buffers, MACs) of the zoo spec (an auxiliary head is not exported)."""
    analysis = archstat.analyze(archstat.load(name))
    rows = [r for r in analysis.rows() if not r["training_only"]]
    return sum(r["params"] for r in rows), sum(r["buffers"] for r in rows), analysis.totals["macs"]


def _build(name, *, randomise=True):
    """torchvision's model in eval mode, seeded; batch norm given non-trivial statistics and
    every constant-initialised parameter (zero biases) random values, as trained weights have:
    so that folding and the engine check see real values, and an exporter that stores equal
    tensors once (as it does: they count once, see test_import_onnx.py) stores them all."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torchvision.models.get_model(name).eval()
    if randomise:
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    c = module.num_features
                    module.running_mean.copy_(torch.randn(c) * 0.1)
                    module.running_var.copy_(torch.rand(c) + 0.5)
                    module.weight.copy_(torch.rand(c) + 0.5)
                    module.bias.copy_(torch.randn(c) * 0.1)
            for p in model.parameters():
                if p.numel() > 1 and bool((p == p.flatten()[0]).all()):
                    p.copy_(torch.randn_like(p) * 0.1)
    return model


def _export(model, x, target, **kwargs):
    """torch.onnx.export to a path or a binary buffer, its warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), target if isinstance(target, io.BytesIO) else str(target), **kwargs)


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``exported(name, mode) -> path``: each export made once per session. Modes: eval17
    (TorchScript, opset 17, eval, constant folding), preserve9 (TorchScript, opset 9,
    TrainingMode.PRESERVE, no constant folding, symbolic batch, height and width but for
    STATIC_SIZE), dynamo."""
    folder = tmp_path_factory.mktemp("onnx-exports")
    made = {}

    def export(name, mode):
        if (name, mode) in made:
            return made[name, mode]
        model = _build(name)
        x = torch.randn(1, *archstat.load(name).input_shape)
        path = folder / f"{name}-{mode}.onnx"
        if mode == "eval17":
            _export(model, x, path, dynamo=False, opset_version=17)
        elif mode == "preserve9":
            axes = {0: "batch"} if name in STATIC_SIZE else {0: "batch", 2: "height", 3: "width"}
            _export(model, x, path, dynamo=False, opset_version=9, training=torch.onnx.TrainingMode.PRESERVE,
                    do_constant_folding=False, input_names=["x"], dynamic_axes={"x": axes})
        else:
            _export(model, x, path, dynamo=True, verbose=False)
        made[name, mode] = path
        return path

    return export


def _runs_like_onnxruntime(path, imp, batch=1):
    ort = pytest.importorskip("onnxruntime")
    model = archstat.load(imp.spec)
    x = np.random.default_rng(0).standard_normal((batch, *model.input_shape)).astype(np.float32)
    ours = archstat.Executor(model, weights=imp.weights).forward(x)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    theirs = session.run(None, {session.get_inputs()[0].name: x})[0]
    scale = max(1.0, float(np.abs(theirs).max()))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_an_eval_export_at_opset_17_gives_the_zoo_macs(exported, name):
    imp = read_onnx(exported(name, "eval17"))
    totals = archstat.analyze(archstat.load(imp.spec)).totals
    assert totals["macs"] == _zoo(name)[2]
    folded = any("The exporter folded batch norm into" in n for n in imp.notes)
    assert folded == (name in WITH_BATCH_NORM)
    assert imp.spec["source"].startswith(f"imported from {name}-eval17.onnx (ONNX opset 17, producer pytorch")


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_an_opset_9_export_that_keeps_batch_norm_gives_the_zoo_counts_and_runs_like_onnxruntime(exported, name):
    path = exported(name, "preserve9")
    size = archstat.load(name).input_shape
    if name not in STATIC_SIZE:
        with pytest.raises(archstat.ArchstatError, match="has symbolic dimensions"):
            read_onnx(path)
    imp = read_onnx(path, input_shape=size)
    totals = archstat.analyze(archstat.load(imp.spec)).totals
    assert (totals["params"], totals["buffers"], totals["macs"]) == _zoo(name)
    if name not in STATIC_SIZE:
        imp = read_onnx(path, input_shape=RUN_SIZE)
    _runs_like_onnxruntime(path, imp)


@pytest.mark.parametrize("name", DYNAMO)
def test_a_dynamo_export_gives_the_zoo_macs_and_runs_like_onnxruntime(exported, name):
    pytest.importorskip("onnxscript")
    path = exported(name, "dynamo")
    imp = read_onnx(path)
    assert archstat.analyze(archstat.load(imp.spec)).totals["macs"] == _zoo(name)[2]
    # named by module paths from the exporter's metadata, as the zoo spec names its layers
    zoo_names = set(archstat.load(name).graph)
    convs = [layer["name"] for layer in imp.spec["layers"] if layer["type"] == "conv2d"]
    assert convs and all(c in zoo_names for c in convs), [c for c in convs if c not in zoo_names][:5]
    if name != "convnext_tiny":  # its engine run at 224 takes seconds; the opset-9 test runs it
        _runs_like_onnxruntime(path, imp)


def test_inception_v3s_export_has_no_auxiliary_head_and_counts_the_rest(exported):
    # the auxiliary classifier runs only in training: not in an eval export (27,161,264 params
    # with it, torchvision's num_params; 3,326,696 of them in the head)
    imp = read_onnx(exported("inception_v3", "preserve9"), input_shape=(3, 299, 299))
    totals = archstat.analyze(archstat.load(imp.spec)).totals
    assert (totals["params"], totals["macs"]) == (27_161_264 - 3_326_696, 5_713_216_096)


# ------------------------------------------------------------------- every torchvision CNN

def _structure_only(name):
    """An eval-mode opset-17 export without its weights (``export_params=False``: fast, a few
    kB), each weight input then written as a ConstantOfShape node, as a constant subgraph
    the importer folds (values 0.01: MACs need shapes, not values)."""
    from onnx import helper, numpy_helper

    model = meta_model(name).to_empty(device="cpu").eval()
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.fill_(0.01)
    buffer = io.BytesIO()
    _export(model, torch.zeros(1, *archstat.load(name).input_shape), buffer, dynamo=False, opset_version=17,
            export_params=False)
    proto = onnx.load_from_string(buffer.getvalue())
    graph = proto.graph
    weights = list(graph.input)[1:]
    del graph.input[1:]
    fills = []
    for info in weights:
        dims = [d.dim_value for d in info.type.tensor_type.shape.dim]
        shape = numpy_helper.from_array(np.array(dims, np.int64), f"{info.name}::shape")
        graph.initializer.append(shape)
        fills.append(helper.make_node("ConstantOfShape", [shape.name], [info.name],
                                      value=numpy_helper.from_array(np.array([0.01], np.float32))))
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(fills + nodes)
    return proto


@pytest.mark.torchvision
@pytest.mark.parametrize("name", ALL_CNNS)
def test_every_torchvision_cnn_exported_to_onnx_gives_the_zoo_macs(name):
    imp = read_onnx(_structure_only(name))
    assert archstat.analyze(archstat.load(imp.spec)).totals["macs"] == _zoo(name)[2]


def test_the_zoo_has_68_torchvision_cnns():
    assert len(ALL_CNNS) == 68
