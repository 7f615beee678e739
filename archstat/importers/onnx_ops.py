"""ONNX nodes that become one archstat layer each: Gemm / MatMul (-> linear), batch and layer
normalisation, LRN, merges, softmax, dropout; and the helpers every converter shares
(:class:`Unsupported`, per-channel constants, a bias added after a layer). Convolutions and
pools are in :mod:`.onnx_window`.

Each converter is ``convert(walk, node) -> bool``: it emits the layer and returns True, returns
False when the node is not its case (the dispatcher tries the next one), or raises
:class:`Unsupported` when archstat has no type for this use of the op. Attribute defaults are
ONNX's (``Operators.md``), which differ from PyTorch's in places: a pool's ``strides``
default to 1 (not the kernel), AveragePool's ``count_include_pad`` to 0, BatchNormalization's
``momentum`` is the weight of the old running value (PyTorch's is 1 minus it).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .onnx_graph import Node
from .onnx_walk import Walk

class Unsupported(Exception):
    """This node is an op archstat maps, used in a way it has no layer type for (the reason
    is the message); the importer reports it as an unknown node."""


# ------------------------------------------------------------------- small helpers

def compact(pair: tuple[int, int]) -> int | list[int]:
    """A spec's pair field: one int when both entries agree."""
    return int(pair[0]) if pair[0] == pair[1] else [int(pair[0]), int(pair[1])]


def require_image(walk: Walk, value: str, what: str) -> tuple[int, ...]:
    """The shape of a tensor value that must be an image (N, C, H, W)."""
    if not walk.is_tensor(value):
        raise Unsupported(f"its {what} is a constant, not computed from the model's input")
    shape = walk.shape(value)
    if len(shape) != 4:
        raise Unsupported(f"its {what} has shape {shape}: archstat's windowed layers are 2-D (N, C, H, W)")
    return shape


def per_channel(array: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """``array`` as C values when it broadcasts along the channel axis (axis 1) of a tensor of
    ``shape`` only: (C, 1, 1) or (1, C, 1, 1) for an image, (C,) or (1, C) for (N, C);
    None otherwise."""
    if array is None or len(shape) not in (2, 4) or array.ndim > len(shape):
        return None
    full = array.reshape((1,) * (len(shape) - array.ndim) + array.shape)
    c = shape[1]
    if full.shape[1] != c or any(s != 1 for i, s in enumerate(full.shape) if i != 1):
        return None
    return full.reshape(c)


def other_input(node: Node, value: str) -> str:
    """The input of a binary node that is not ``value``."""
    a, b = node.inputs[:2]
    return b if a == value else a


def bias_reader(walk: Walk, value: str, channels: int, rank: int,
                last_axis: bool) -> tuple[Node, np.ndarray, str] | None:
    """An ``Add`` that only adds a constant bias to ``value`` (a conv's output without its own
    bias, along the channel axis; a linear's, along the last axis): (node, bias of
    ``channels``, the constant's name)."""
    reader = walk.sole_reader(value)
    if reader is None or reader.op != "Add" or len(reader.inputs) != 2:
        return None
    const_name = other_input(reader, value)
    const = walk.const(const_name)
    if const is None:
        return None
    if not last_axis:
        bias = per_channel(const, (1, channels, 1, 1))
    else:
        ok = const.ndim <= rank and const.size == channels and const.shape[-1:] == (channels,)
        bias = const.reshape(channels) if ok else None
    return None if bias is None else (reader, bias, const_name)


# ------------------------------------------------------------------- linear layers

def convert_gemm(walk: Walk, node: Node) -> bool:
    """Gemm alpha * A' B' + beta * C -> linear: weight = alpha * (B if transB else B^T) as
    [out, in], bias = beta * C (a constant row). A must be the tensor, untransposed."""
    a, b = node.inputs[:2]
    weight = walk.const(b)
    if not walk.is_tensor(a) or weight is None or weight.ndim != 2:
        raise Unsupported("it is not a product of a computed tensor by a constant matrix")
    if node.attr("transA", 0):
        raise Unsupported("transA: its batch would be on the second axis")
    weight = weight if node.attr("transB", 0) else weight.T
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    if alpha != 1.0:
        weight = weight * np.float32(alpha)
        walk.counters["scaled"]["Gemm alpha"] += 1
    out = weight.shape[0]
    c_name = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    bias = walk.const(c_name) if c_name else None
    if c_name and bias is None:
        raise Unsupported("its C input is computed at run time")
    if bias is not None:
        if bias.size not in (1, out) or bias.ndim > 2 or (bias.size == out and bias.shape[-1] != out):
            raise Unsupported(f"its C has shape {bias.shape}: only a bias row of {out} values maps to linear")
        bias = np.broadcast_to(bias.reshape(-1), (out,)) * np.float32(beta)
    _emit_linear(walk, node, a, weight, b, bias, c_name, node.outputs[0], [])
    return True


def convert_matmul(walk: Walk, node: Node) -> bool:
    """MatMul of a tensor (N, ..., in) by a constant [in, out] matrix -> linear (on the last
    axis), with the bias of an ``Add`` that alone reads the product."""
    a, b = node.inputs[:2]
    matrix = walk.const(b)
    if not walk.is_tensor(a) or matrix is None or matrix.ndim != 2:
        raise Unsupported("it is not a product of a computed tensor by a constant matrix "
                          "(a product of two computed tensors, as in attention, has no archstat type)")
    weight = matrix.T
    output, absorbed, bias, bias_name = node.outputs[0], [], None, None
    found = bias_reader(walk, output, weight.shape[0], len(walk.shape(a)), last_axis=True)
    if found:
        reader, bias, bias_name = found
        absorbed, output = [reader], reader.outputs[0]
    _emit_linear(walk, node, a, weight, b, bias, bias_name, output, absorbed)
    return True


def _emit_linear(walk: Walk, node: Node, x: str, weight: np.ndarray, weight_name: str,
                 bias: np.ndarray | None, bias_name: str | None, output: str, absorbed: list[Node]) -> None:
    fields: dict[str, Any] = {"out_features": weight.shape[0], "bias": bias is not None}
    if len(walk.shape(x)) > 2:
        fields = {"in_features": weight.shape[1], **fields}
    weights = {"weight": weight} if bias is None else {"weight": weight, "bias": bias}
    walk.emit(node, "linear", fields, [walk.layer(x)], [output], weights,
              {"weight": weight_name, "bias": bias_name}, nodes=absorbed)


# ------------------------------------------------------------------- normalisation

def convert_batch_norm(walk: Walk, node: Node) -> bool:
    """BatchNormalization (inference form) -> batch_norm2d with the running statistics as
    buffers; momentum = 1 - ONNX's momentum."""
    x = node.inputs[0]
    require_image(walk, x, "input")
    values = [walk.const(v) for v in node.inputs[1:5]]
    if len(values) < 4 or any(v is None for v in values):
        raise Unsupported("its scale, bias, mean and variance are not all constants")
    if walk.g.extra_outputs_used(node):
        raise Unsupported("its training outputs (batch mean and variance) are used")
    if node.attr("spatial", 1) != 1:
        raise Unsupported("spatial=0 (statistics per element, not per channel)")
    if node.attr("training_mode", 0):
        walk.note("BatchNormalization nodes in training mode normalise with the batch's statistics; "
                  "archstat's batch_norm2d runs inference with the running ones.")
    eps = _float32(node.attr("epsilon", 1e-5))
    momentum = min(max(_float32(1.0 - _float32(node.attr("momentum", 0.9))), 0.0), 1.0)
    weights = dict(zip(("weight", "bias", "running_mean", "running_var"), values))
    origins = dict(zip(weights, node.inputs[1:5]))
    walk.emit(node, "batch_norm2d", {"eps": eps, "momentum": momentum}, [walk.layer(x)], node.outputs[:1],
              weights, origins)
    return True


def convert_layer_norm(walk: Walk, node: Node) -> bool:
    """LayerNormalization (opset 17) over axes axis..rank-1 -> layer_norm with that
    normalized_shape (its Scale and B as weight and bias)."""
    x = node.inputs[0]
    if not walk.is_tensor(x):
        return False
    shape = walk.shape(x)
    axis = int(node.attr("axis", -1)) % len(shape)
    if axis == 0:
        raise Unsupported("it normalises over the batch axis")
    if walk.g.extra_outputs_used(node):
        raise Unsupported("its mean or inverse standard deviation output is used")
    normalized = tuple(shape[axis:])
    scale = walk.const(node.inputs[1])
    bias_name = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    bias = walk.const(bias_name) if bias_name else None
    if scale is None or (bias_name and bias is None):
        raise Unsupported("its scale or bias is computed at run time")
    weights = {"weight": np.broadcast_to(scale, normalized)}
    if bias is not None:
        weights["bias"] = np.broadcast_to(bias, normalized)
    fields = {"normalized_shape": list(normalized), "eps": _float32(node.attr("epsilon", 1e-5)),
              "bias": bias is not None}
    walk.emit(node, "layer_norm", fields, [walk.layer(x)], node.outputs[:1], weights,
              {"weight": node.inputs[1], "bias": bias_name})
    return True


def convert_lrn(walk: Walk, node: Node) -> bool:
    """LRN -> lrn: b = a / (bias + alpha / size * sum of a^2 over size channels) ^ beta, the
    same formula as torch.nn.LocalResponseNorm (ONNX's bias is PyTorch's k)."""
    x = node.inputs[0]
    require_image(walk, x, "input")
    if node.attr("size") is None:
        raise Unsupported("it has no size (a required attribute)")
    fields = {"size": int(node.attr("size")), "alpha": _float32(node.attr("alpha", 1e-4)),
              "beta": _float32(node.attr("beta", 0.75)), "k": _float32(node.attr("bias", 1.0))}
    walk.emit(node, "lrn", fields, [walk.layer(x)], node.outputs)
    return True


def _float32(value: Any) -> float:
    """A float attribute as the shortest decimal of its float32 value (1e-05, not
    9.999999747378752e-06)."""
    return float(str(np.float32(value)))


# ------------------------------------------------------------------- merges and the rest

def convert_concat(walk: Walk, node: Node) -> bool:
    """Concat of tensors -> concat(dim=axis)."""
    if not all(walk.is_tensor(v) for v in node.inputs):
        raise Unsupported("it concatenates a constant")
    rank = len(walk.shape(node.inputs[0]))
    dim = int(node.attr("axis", 1))
    dim = dim % rank if dim < 0 else dim
    walk.emit(node, "concat", {"dim": dim}, [walk.layer(v) for v in node.inputs], node.outputs)
    return True


def convert_add(walk: Walk, node: Node) -> bool:
    """Add / Sum of tensors of one shape -> add (n-ary); a one-input Sum is dropped."""
    inputs = [v for v in node.inputs if v]
    if not all(walk.is_tensor(v) for v in inputs):
        raise Unsupported("it adds a constant that is not a per-channel bias or batch-norm shift")
    if len(inputs) == 1:
        walk.alias(node.outputs[0], inputs[0], node)
        return True
    shapes = {walk.shape(v) for v in inputs}
    if len(shapes) > 1:
        raise Unsupported(f"it broadcasts shapes {sorted(shapes)}: add takes inputs of one shape")
    walk.emit(node, "add", {}, [walk.layer(v) for v in inputs], node.outputs)
    return True


def convert_mul(walk: Walk, node: Node) -> bool:
    """Mul of two tensors (a squeeze-and-excitation gate, broadcasting) -> mul, the input
    with the output's shape first."""
    a, b = node.inputs[:2]
    if not (walk.is_tensor(a) and walk.is_tensor(b)):
        raise Unsupported("it multiplies by a constant that is neither a scalar activation nor per-channel")
    shape_a, shape_b = walk.shape(a), walk.shape(b)
    full = tuple(np.broadcast_shapes(shape_a, shape_b))
    if full not in (shape_a, shape_b):
        raise Unsupported(f"it broadcasts {shape_a} and {shape_b} to a shape neither has")
    first, second = (a, b) if full == shape_a else (b, a)
    walk.emit(node, "mul", {}, [walk.layer(first), walk.layer(second)], node.outputs)
    return True


def convert_softmax(walk: Walk, node: Node) -> bool:
    """Softmax -> softmax(dim=axis); before opset 13 only when the axes after ``axis`` have
    size 1 (the old definition is one softmax over all the axes from ``axis`` on)."""
    x = node.inputs[0]
    rank = len(walk.shape(x))
    shape = walk.shape(x)
    axis = int(node.attr("axis", -1 if walk.opset >= 13 else 1)) % rank
    if walk.opset < 13 and math.prod(shape[axis + 1:]) != 1:
        raise Unsupported(f"opset {walk.opset} Softmax over axes {axis}.. of shape {shape} "
                          "(one softmax over several axes)")
    walk.emit(node, "softmax", {"dim": axis}, [walk.layer(x)], node.outputs)
    return True


def convert_dropout(walk: Walk, node: Node) -> bool:
    """Dropout -> dropout(p) (the identity at inference); its mask output must be unused."""
    if walk.g.extra_outputs_used(node):
        raise Unsupported("its mask output is used")
    p = node.attr("ratio", 0.5)
    if len(node.inputs) > 1 and node.inputs[1]:
        ratio = walk.const(node.inputs[1])
        if ratio is None:
            raise Unsupported("its ratio is computed at run time")
        p = float(ratio)
    walk.emit(node, "dropout", {"p": _float32(p)}, [walk.layer(node.inputs[0])], node.outputs[:1])
    return True


def convert_identity(walk: Walk, node: Node) -> bool:
    """Identity, and a Cast between float types, are dropped (the tensor is passed on)."""
    if node.op == "Cast":
        from onnx import helper
        to = np.dtype(helper.tensor_dtype_to_np_dtype(node.attr("to")))
        if not np.issubdtype(to, np.floating):
            raise Unsupported(f"it casts to {to} (archstat's tensors are floating point)")
    walk.alias(node.outputs[0], node.inputs[0], node)
    return True
