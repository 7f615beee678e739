"""onnx-tool 1.0.1: the total MACs of ``Model(path).graph.profile()`` on the file PyTorch's
TorchScript exporter writes by default (``torch.onnx.export(model, x, path,
opset_version=17, dynamo=False)``, eval mode, constant folding on).

The exporter folds each batch norm that directly follows a conv (the conv's only reader) into
that conv, which gains a bias; a batch norm after anything else (DenseNet's, after a concat)
stays a BatchNormalization node. onnx-tool then prices every node with fixed unit costs
(onnx_tool/node.py:19-34: add, multiply and compare 1, divide 4, exp 32, sqrt 24): a conv or
Gemm its MACs plus one per output element for a bias, elementwise nodes per output element,
so activations, residual adds and gates count too. Dropout and stochastic depth are not in an
eval export; concat, flatten, reshape, transpose and split are free.
"""
from __future__ import annotations

from .base import Convention, LayerView, per_element, rule

_NODE = "onnx_tool/node.py"


def _folds_into_conv(v: LayerView) -> bool:
    """A batch norm the exporter folds: it reads a conv that nothing else reads."""
    src = v.model.layer(v.name).inputs[0]
    return (v.model.layer(src).type.name == "conv2d"
            and v.model.graph.out_degree(src) == 1)


@rule(f"{_NODE}:2060-2071")
def conv(v: LayerView) -> int:
    """Conv: MACs + one per output element for a bias (its own, or a folded batch norm's)"""
    return v.macs + v.out_numel if v.consumers() == ["batch_norm2d"] else v.macs_plus_bias()


@rule(f"{_NODE}:863-880")
def linear(v: LayerView) -> int:
    """Gemm (or MatMul + Add on 3-D and 4-D inputs): MACs + one per output element for a bias"""
    return v.macs_plus_bias()


@rule(f"{_NODE}:1487-1490")
def batch_norm(v: LayerView) -> int:
    """folded into the conv before it: 0 here (the conv's bias); else BatchNormalization, 31 per element"""
    return 0 if _folds_into_conv(v) else 31 * v.out_numel


@rule(f"{_NODE}:2366-2372")
def layer_norm(v: LayerView) -> int:
    """LayerNormalization: 7 per element + 29 per element of the input with its first
    normalised axis set to 1 (per row, for one normalised axis)"""
    if "normalized_shape" in v.attrs:   # trailing axes (None: the last one)
        first = v.x[-len(v.attrs["normalized_shape"] or (1,))]
    else:                               # channels-first (LayerNorm2d): permuted to last by the export
        first = v.x[1]
    return 7 * v.in_numel + 29 * (v.in_numel // first)


@rule(f"{_NODE}:1287-1293")
def pool(v: LayerView) -> int:
    """MaxPool / AveragePool: output elements x kernel size"""
    kh, kw = v.attrs["kernel_size"]
    return v.out_numel * kh * kw


@rule(f"{_NODE}:1287-1293, 1367-1371, 1784")
def adaptive_avg_pool(v: LayerView) -> int:
    """to 1 x 1: GlobalAveragePool, input elements + 4 per output element (x.mean: ReduceMean,
    input elements); else the AveragePool it exports as, output elements x (in / out) kernel"""
    if v.call == "method":
        return v.in_numel
    (h, w), (oh, ow) = v.x[2:], v.out_shape[2:]
    if (oh, ow) == (1, 1):
        return v.in_numel + 4 * v.out_numel
    return v.out_numel * (h // oh) * (w // ow)


@rule(f"{_NODE}:343-346")
def per_extra_input(v: LayerView) -> int:
    """Add / Mul: one per output element for each input after the first"""
    return (len(v.in_shapes) - 1) * v.out_numel


@rule("onnx_tool/node.py:262-346")
def chunk(v: LayerView) -> int:
    """x.chunk(n): the exporter computes the split points with shape arithmetic on one-element
    tensors (Add 1, Div 4, two Mul 1), 7 per chunk call, counted on its first piece"""
    return 7 if v.attrs.get("chunks") and v.attrs.get("index") == 0 and v.call == "method" else 0


CONVENTIONS = (
    Convention(
        name="onnx-tool", tool="onnx-tool", version="1.0.1",
        entry="Model(path).graph.profile() on torch.onnx.export(opset 17) of the eval model", unit="MACs",
        reason="+ biases (folded BN), activations, adds, pools; a sigmoid = 32",
        rules={"conv2d": conv, "linear": linear, "batch_norm2d": batch_norm, "layer_norm": layer_norm,
               "layer_norm2d": layer_norm, "max_pool2d": pool, "avg_pool2d": pool,
               "adaptive_avg_pool2d": adaptive_avg_pool, "global_avg_pool2d": adaptive_avg_pool,
               "relu": per_element(1, f"{_NODE}:578", "Relu: one per element", of="output"),
               "relu6": per_element(2, f"{_NODE}:922-926", "Clip: two per element", of="output"),
               "sigmoid": per_element(32, f"{_NODE}:372-376, 503", "Sigmoid: 32 per element (an exp)", of="output"),
               "silu": per_element(33, f"{_NODE}:372-376, 343-346", "Sigmoid (32), Mul (1) per element", of="output"),
               "hardsigmoid": per_element(4, f"{_NODE}:552-555", "HardSigmoid: 4 per element", of="output"),
               "hardswish": per_element(5, f"{_NODE}:565-568", "HardSwish: 5 per element", of="output"),
               "gelu": per_element(7, f"{_NODE}:315-346", "Div 4, Erf 0, Add, Mul, Mul: 7 per element", of="output"),
               "add": per_extra_input, "mul": per_extra_input,
               "layer_scale": per_element(1, f"{_NODE}:343-346", "Mul: one per element", of="output"),
               "channel_bias": per_element(1, f"{_NODE}:262-265", "Add: one per element", of="output"),
               "split": chunk}),
)
