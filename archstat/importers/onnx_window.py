"""ONNX's windowed nodes: Conv -> conv2d, MaxPool / AveragePool -> max_pool2d / avg_pool2d,
GlobalAveragePool / GlobalMaxPool and ReduceMean / ReduceMax over H and W -> global pools; and
the padding they share (``pads``, ``auto_pad``, a ``Pad`` node folded in, asymmetric pads).

Converters follow :mod:`.onnx_ops`. ONNX's ``pads`` are ``[top, left, bottom, right]`` for a
2-D window; archstat's ``padding`` is a pair when each axis is symmetric, else per side
``[[top, bottom], [left, right]]`` (or PyTorch's ``'same'``).
"""
from __future__ import annotations

from typing import Any

from ..errors import ArchstatError
from ..layers.window import ceil_div, effective_kernel, max_pool_padding, output_size, resolve_padding
from .onnx_graph import Node, as_int_list
from .onnx_ops import Unsupported, bias_reader, compact, require_image
from .onnx_walk import Walk

Pads = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))


# ------------------------------------------------------------------- padding

def node_pads(node: Node, in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
              dilation: tuple[int, int]) -> Pads:
    """Per-side pads of a windowed node from ``pads`` or ``auto_pad`` (ONNX ``Conv``:
    SAME_UPPER puts the odd pixel at the end, SAME_LOWER at the start; the output is
    ceil(in / stride))."""
    auto = node.attr("auto_pad", "NOTSET") or "NOTSET"
    if auto == "NOTSET":
        pads = as_int_list(node.attr("pads", [0, 0, 0, 0]))
        if len(pads) != 4 or min(pads) < 0:
            raise Unsupported(f"pads {pads} are not four non-negative pads of a 2-D window")
        return (pads[0], pads[2]), (pads[1], pads[3])
    if auto == "VALID":
        return (0, 0), (0, 0)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise Unsupported(f"auto_pad {auto!r} is not an ONNX padding")
    sides = []
    for size, k, s, d in zip(in_hw, kernel, stride, dilation):
        total = max((ceil_div(size, s) - 1) * s + effective_kernel(k, d) - size, 0)
        small = total // 2
        sides.append((small, total - small) if auto == "SAME_UPPER" else (total - small, small))
    return sides[0], sides[1]


def _padded(hw: tuple[int, int], extra: Pads) -> tuple[int, int]:
    """The size a node sees behind a folded ``Pad`` (its own ``auto_pad`` works on that size)."""
    return hw[0] + sum(extra[0]), hw[1] + sum(extra[1])


def add_pads(a: Pads, b: Pads) -> Pads:
    return (a[0][0] + b[0][0], a[0][1] + b[0][1]), (a[1][0] + b[1][0], a[1][1] + b[1][1])


def padding_field(pads: Pads, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int], *,
                  same_ok: bool = True, limit: tuple[int, int] | None = None) -> Any:
    """The spec's ``padding`` for per-side ``pads``: a pair when each axis is symmetric;
    ``'same'`` for PyTorch's 'same' (stride 1, the odd pixel at the end); otherwise per side,
    ``[[top, bottom], [left, right]]``. Unsupported beyond ``limit`` per side (a pool's half
    kernel, PyTorch's rule, which archstat's pools follow)."""
    if limit is not None and any(p > lim for side, lim in zip(pads, limit) for p in side):
        raise Unsupported(f"its padding (top, bottom, left, right) = {(*pads[0], *pads[1])} is more than half its "
                          f"kernel {kernel}: archstat's pools, as PyTorch's, pad at most kernel_size // 2")
    if all(lo == hi for lo, hi in pads):
        return compact((pads[0][0], pads[1][0]))
    if same_ok and stride == (1, 1) and pads == resolve_padding("same", kernel, dilation, stride):
        return "same"
    return [list(pads[0]), list(pads[1])]


def _size(size: int, k: int, s: int, lo: int, hi: int, d: int, ceil_mode: bool) -> int | None:
    """The output size along an axis, None where no window fits."""
    try:
        return output_size(size, k, s, lo, hi, d, ceil_mode)
    except ArchstatError:
        return None


def _end_pads_as_ceil_mode(pads: Pads, in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                           dilation: tuple[int, int], limit: tuple[int, int]) -> tuple[Pads, bool]:
    """Pads at the end beyond half the kernel, as exporters write ``ceil_mode`` for opsets
    before 10 (GoogLeNet's pools: (0, 2) for a 3x3 window): the same windows as ceil mode with
    the end pads cut to the half kernel, when that gives as many outputs. The windows start at
    the same places and see the same input pixels; padding adds nothing to a max, nor to an
    average that does not count it. Returns (pads, ceil_mode): the input's when no cut fits."""
    if all(hi <= lim for (_, hi), lim in zip(pads, limit)):
        return pads, False
    cut = []
    for (lo, hi), size, k, s, d, lim in zip(pads, in_hw, kernel, stride, dilation, limit):
        want = _size(size, k, s, lo, hi, d, False)
        fits = [p for p in range(min(hi, lim) + 1) if _size(size, k, s, lo, p, d, True) == want]
        if lo > lim or want is None or not fits:
            return pads, False
        cut.append((lo, fits[0]))
    return (cut[0], cut[1]), True


def _one_window(pads: Pads, in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                dilation: tuple[int, int], ceil_mode: bool) -> bool:
    """A pool with one output per image whose window covers the whole input."""
    return all(d == 1 and _size(size, k, s, lo, hi, d, ceil_mode) == 1 and lo >= 0 and k - lo >= size
               for (lo, hi), size, k, s, d in zip(pads, in_hw, kernel, stride, dilation))


def _pair_attr(node: Node, key: str, default: int | None = 1) -> tuple[int, int]:
    """A 2-D window attribute; ``default`` None: required."""
    if default is None and node.attr(key) is None:
        raise Unsupported(f"it has no {key} (a required attribute)")
    values = as_int_list(node.attr(key, [default, default]))
    if len(values) != 2:
        raise Unsupported(f"{key} {values} is not a pair: archstat's windowed layers are 2-D")
    return values[0], values[1]


# ------------------------------------------------------------------- convolutions and pools

def convert_conv(walk: Walk, node: Node, extra: Pads = ((0, 0), (0, 0)), padding_mode: str = "zeros",
                 pad_node: Node | None = None) -> bool:
    """Conv -> conv2d (weight [C_out, C_in/groups, kH, kW] as in the file); a bias from the
    node's third input, or from an ``Add`` of a per-channel constant that alone reads it."""
    x = node.inputs[0]
    n, c, h, w = require_image(walk, x, "input")
    weight = walk.const(node.inputs[1])
    if weight is None:
        raise Unsupported("its weights are computed at run time, not constants")
    if weight.ndim != 4:
        raise Unsupported(f"its weights have shape {weight.shape}: only 2-D convolutions map to conv2d")
    kernel = weight.shape[2], weight.shape[3]
    stride, dilation = _pair_attr(node, "strides"), _pair_attr(node, "dilations")
    pads = add_pads(node_pads(node, _padded((h, w), extra), kernel, stride, dilation), extra)
    bias_name = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    bias = walk.const(bias_name) if bias_name else None
    if bias_name and bias is None:
        raise Unsupported("its bias is computed at run time, not a constant")
    absorbed, output = [], node.outputs[0]
    if bias is None:
        found = bias_reader(walk, output, weight.shape[0], 4, last_axis=False)
        if found:
            reader, bias, bias_name = found
            absorbed, output = [reader], reader.outputs[0]
    fields = {"out_channels": weight.shape[0], "kernel_size": compact(kernel), "stride": compact(stride),
              "padding": padding_field(pads, kernel, stride, dilation),
              "dilation": compact(dilation), "groups": int(node.attr("group", 1)), "bias": bias is not None}
    if padding_mode != "zeros":
        fields["padding_mode"] = padding_mode
    weights = {"weight": weight} if bias is None else {"weight": weight, "bias": bias.reshape(-1)}
    origins = {"weight": node.inputs[1], "bias": bias_name}
    nodes = absorbed + ([pad_node] if pad_node else [])
    walk.emit(node, "conv2d", fields, [walk.layer(x)], [output], weights, origins, nodes=nodes)
    return True


def convert_pool(walk: Walk, node: Node, extra: Pads = ((0, 0), (0, 0)), pad_node: Node | None = None) -> bool:
    """MaxPool -> max_pool2d; AveragePool -> avg_pool2d (explicit stride: ONNX's default is
    1). A zero ``Pad`` in front (``extra``) becomes padding counted in the average."""
    x = node.inputs[0]
    n, c, h, w = require_image(walk, x, "input")
    if walk.g.extra_outputs_used(node):
        raise Unsupported("its indices output is used")
    kernel = _pair_attr(node, "kernel_shape", None)
    stride, dilation = _pair_attr(node, "strides"), _pair_attr(node, "dilations")
    ceil_mode = bool(node.attr("ceil_mode", 0))
    own = node_pads(node, _padded((h, w), extra), kernel, stride, dilation)
    include_pad = bool(node.attr("count_include_pad", 0))
    if node.op == "AveragePool" and any(extra[0] + extra[1]):
        if any(own[0] + own[1]) and not include_pad:
            raise Unsupported("a Pad node before it and its own pads, not counted in the average")
        include_pad = True
    pads = add_pads(own, extra)
    if _one_window(pads, (h, w), kernel, stride, dilation, ceil_mode) and (
            node.op == "MaxPool" or not include_pad or not any(pads[0] + pads[1])):
        # one window over the whole image (Caffe's ceil-mode global pools, converted)
        pool = ("adaptive_max_pool2d", {"output_size": 1}) if node.op == "MaxPool" else ("global_avg_pool2d", {})
        walk.emit(node, *pool, [walk.layer(x)], node.outputs[:1], nodes=[pad_node] if pad_node else [])
        return True
    limit = max_pool_padding(kernel)
    if not ceil_mode and (node.op == "MaxPool" or not include_pad):
        pads, ceil_mode = _end_pads_as_ceil_mode(pads, (h, w), kernel, stride, dilation, limit)
    padding = padding_field(pads, kernel, stride, dilation, same_ok=False, limit=limit)
    fields: dict[str, Any] = {"kernel_size": compact(kernel), "stride": compact(stride), "padding": padding,
                              "ceil_mode": ceil_mode}
    if node.op == "MaxPool":
        fields["dilation"] = compact(dilation)
        type_name = "max_pool2d"
    else:
        if dilation != (1, 1):
            raise Unsupported("a dilated average pool (avg_pool2d has no dilation)")
        if padding != 0:
            fields["count_include_pad"] = include_pad
        type_name = "avg_pool2d"
    walk.emit(node, type_name, fields, [walk.layer(x)], node.outputs[:1],
              nodes=[pad_node] if pad_node else [])
    return True


def convert_global_pool(walk: Walk, node: Node) -> bool:
    """GlobalAveragePool -> global_avg_pool2d; GlobalMaxPool -> adaptive_max_pool2d(1)."""
    x = node.inputs[0]
    require_image(walk, x, "input")
    if node.op == "GlobalAveragePool":
        walk.emit(node, "global_avg_pool2d", {}, [walk.layer(x)], node.outputs)
    else:
        walk.emit(node, "adaptive_max_pool2d", {"output_size": 1}, [walk.layer(x)], node.outputs)
    return True


def convert_reduce_pool(walk: Walk, node: Node) -> bool:
    """ReduceMean / ReduceMax over H and W of an image -> global_avg_pool2d /
    adaptive_max_pool2d(1), then a flatten when keepdims is 0."""
    x = node.inputs[0]
    if not walk.is_tensor(x):
        return False
    shape = walk.shape(x)
    axes = node.attr("axes")
    if len(node.inputs) > 1 and node.inputs[1]:
        axes = walk.const(node.inputs[1])
    if axes is None or len(shape) != 4 or sorted(a % 4 for a in as_int_list(axes)) != [2, 3]:
        raise Unsupported(f"it reduces axes {None if axes is None else as_int_list(axes)} of shape "
                          f"{shape}: archstat maps a reduction over H and W (axes 2, 3) only")
    keep = bool(node.attr("keepdims", 1))
    pool = ("global_avg_pool2d", {}) if node.op == "ReduceMean" else ("adaptive_max_pool2d", {"output_size": 1})
    name = walk.emit(node, *pool, [walk.layer(x)], node.outputs if keep else ())
    if not keep:
        walk.emit(node, "flatten", {}, [name], node.outputs, suffix=".flatten")
    return True
