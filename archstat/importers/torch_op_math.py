"""Handlers of the PyTorch importer for elementwise functions, merges and pools: activations
(``F.relu``, ``x.sigmoid()``, ...), ``x + y``, ``x * y`` (a squeeze-and-excitation gate, or a
learned per-channel scale read as a tensor attribute: ConvNeXt's ``layer_scale * x``), the
functional pools and ``x.mean((2, 3))``.

A handler takes the translator, the fx node and its bound arguments (:func:`.torch_ops.bind`)
and writes layers, or raises :class:`Unmappable` saying what archstat lacks.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.fx

from .torch_graph import Translator
from .torch_names import op_base
from .torch_modules import Mapped, Unmappable, adaptive_pool, dim_index, pool_fields
from .torch_trace import TensorInfo, attribute

# ---------------------------------------------------------------------- elementwise

def unary(type_name: str, inplace_field: bool = True):
    """An activation; in place (``inplace=True``, ``relu_``) where the call says so."""
    def handle(tr: Translator, node: torch.fx.Node, a: dict[str, Any]) -> None:
        inplace = bool(a.get("inplace", False))
        fields = {"inplace": inplace} if inplace_field else {}
        tr.emit(node, type_name, fields, [tr.source(a["input"])], base=op_base(node),
                inplace_of=a["input"] if inplace else None)
    return handle


def write(tr: Translator, node: torch.fx.Node, mapped: Mapped, src: Any) -> None:
    """Write a layer the module table's helpers described."""
    inplace = src if mapped.fields.get("inplace") else None
    tr.emit(node, mapped.type, mapped.fields, [tr.source(src)], base=op_base(node), inplace_of=inplace)


def hardtanh(tr, node, a):
    if (a["min_val"], a["max_val"]) != (0.0, 6.0):
        raise Unmappable(f"hardtanh({a['min_val']}, {a['max_val']}): archstat has relu6, hardtanh(0, 6)")
    unary("relu6")(tr, node, a)


def gelu(tr, node, a):
    write(tr, node, Mapped("gelu", {"approximate": a["approximate"]}), a["input"])


def softmax(tr, node, a):
    if a.get("dtype") is not None:
        raise Unmappable("softmax with a dtype")
    rank = len(tr.shape(a["input"]))
    dim = a["dim"] if a["dim"] is not None else (0 if rank in (0, 1, 3) else 1)
    write(tr, node, Mapped("softmax", {"dim": dim_index(dim, rank, "dim")}), a["input"])


def dropout(tr, node, a):
    write(tr, node, Mapped("dropout", {"p": float(a["p"]), "inplace": bool(a["inplace"])}), a["input"])


def add(tr, node, a):
    if a.get("alpha", 1) != 1:
        raise Unmappable(f"add with alpha={a['alpha']}: archstat's add sums its inputs")
    x, y = two_tensors(tr, a, "adds")
    if tr.shape(x) != tr.shape(y):
        raise Unmappable(f"adds tensors of shapes {tr.shape(x)} and {tr.shape(y)}: archstat's add takes "
                         "equal shapes (no broadcasting)")
    tr.emit(node, "add", {}, [tr.source(x), tr.source(y)], base="add", inplace_of=x if a.get("inplace") else None)


def mul(tr, node, a):
    attrs = [v for v in (a["input"], a["other"]) if isinstance(v, torch.fx.Node) and v.op == "get_attr"]
    if attrs:
        layer_scale(tr, node, a, attrs[0])
        return
    x, y = two_tensors(tr, a, "multiplies")
    out = tr.shape(node)
    first, second = (x, y) if tr.shape(x) == out else (y, x)
    big, small = tr.shape(first), tr.shape(second)
    if big != out or len(small) != len(big) or any(s not in (1, b) for b, s in zip(big, small)):
        raise Unmappable(f"multiplies tensors of shapes {tr.shape(x)} and {tr.shape(y)}: archstat's mul "
                         "broadcasts a second input of the same rank with 1 where it differs")
    tr.emit(node, "mul", {}, [tr.source(first), tr.source(second)], base="mul",
            inplace_of=x if a.get("inplace") else None)


def two_tensors(tr: Translator, a: dict[str, Any], verb: str) -> tuple[torch.fx.Node, torch.fx.Node]:
    x, y = a["input"], a["other"]
    for v in (x, y):
        if not isinstance(tr.value(v), TensorInfo):
            raise Unmappable(f"{verb} the constant {tr.value(v)!r}: archstat's merge layers combine tensors")
    return x, y


def layer_scale(tr: Translator, node: torch.fx.Node, a: dict[str, Any], attr: torch.fx.Node) -> None:
    """A learned tensor attribute times the features: ConvNeXt's ``layer_scale * x``."""
    other = a["other"] if attr is a["input"] else a["input"]
    x = tr.shape(other)
    param = attribute(tr.root, attr.target)
    want = (x[1], 1, 1) if len(x) == 4 else (x[1],)
    if not isinstance(param, torch.nn.Parameter) or tuple(param.shape) != want or len(x) not in (2, 4):
        shape = tuple(param.shape) if isinstance(param, torch.Tensor) else type(param).__name__
        raise Unmappable(f"multiplies by the tensor attribute {attr.target!r} of shape {shape}: archstat's "
                         f"layer_scale takes a learned parameter, one value per channel, shaped {want}")
    tr.emit(node, "layer_scale", {}, [tr.source(other)], name=tr.namer.module(attr.target),
            tensors={"weight": param})


# ---------------------------------------------------------------------- pools

def max_pool(tr, node, a):
    if a["return_indices"]:
        raise Unmappable("max_pool2d with return_indices=True returns two tensors")
    fields = pool_fields(a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"], dilation=a["dilation"])
    write(tr, node, Mapped("max_pool2d", fields), a["input"])


def avg_pool(tr, node, a):
    if a["divisor_override"] is not None:
        raise Unmappable("avg_pool2d with divisor_override: archstat's avg_pool2d divides by the window")
    fields = pool_fields(a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"],
                         count_include_pad=a["count_include_pad"])
    write(tr, node, Mapped("avg_pool2d", fields), a["input"])


def adaptive(kind: str):
    def handle(tr, node, a):
        if a.get("return_indices"):
            raise Unmappable("adaptive_max_pool2d with return_indices=True returns two tensors")
        write(tr, node, adaptive_pool(kind, a["output_size"]), a["input"])
    return handle


def mean(tr, node, a):
    """``x.mean((2, 3))``: global average pooling, then a flatten unless keepdim."""
    x = tr.shape(a["input"])
    dims = a["dim"] if isinstance(a["dim"], (list, tuple)) else [a["dim"]]
    if a["dim"] is None or a.get("dtype") is not None or len(x) != 4 \
            or sorted(d % 4 for d in dims if isinstance(d, int) and -4 <= d < 4) != [2, 3]:
        raise Unmappable(f"mean over {a['dim']!r} of a tensor of shape {x}: archstat maps the mean over "
                         "H and W of (N, C, H, W), as global_avg_pool2d")
    pool = tr.emit(node, "global_avg_pool2d", {}, [tr.source(a["input"])], base="mean")
    if not a["keepdim"]:
        tr.emit(node, "flatten", {"start_dim": 1}, [pool], name=tr.namer.exact(f"{pool}.flatten"))
