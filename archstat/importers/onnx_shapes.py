"""ONNX nodes that move data without arithmetic: Reshape / Flatten / Squeeze / Unsqueeze
(-> flatten, or dropped when they change nothing), the channel shuffle written as
Reshape + Transpose + Reshape, Transpose (-> permute), Split and Slice on one axis
(-> split), and Pad folded into the convolution or pool that reads it.

Converters follow :mod:`.onnx_ops`: ``convert(walk, node) -> bool``, raising
:class:`~.onnx_ops.Unsupported` for a use archstat has no type for. Shapes include the batch
axis (see :mod:`.onnx_walk`); a target shape's 0 copies the input's dimension (unless
``allowzero``) and -1 takes what is left, as ONNX's Reshape defines.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..layers import registry
from .onnx_graph import Node, as_int_list
from .onnx_ops import Unsupported
from .onnx_window import convert_conv, convert_pool
from .onnx_walk import Walk

_PAD_MODES = {"reflect": "reflect", "edge": "replicate", "wrap": "circular"}


# ------------------------------------------------------------------- reshapes

def resolve_target(in_shape: tuple[int, ...], target: Any, allowzero: bool = False) -> tuple[int, ...]:
    """A Reshape's target shape with its 0 and -1 entries resolved against ``in_shape``."""
    dims = as_int_list(target)
    if not allowzero:
        dims = [in_shape[i] if d == 0 and i < len(in_shape) else d for i, d in enumerate(dims)]
    total = math.prod(in_shape)
    if dims.count(-1) == 1:
        known = math.prod(d for d in dims if d != -1)
        if known == 0 or total % known:
            raise Unsupported(f"its target {as_int_list(target)} does not fit {in_shape}")
        dims[dims.index(-1)] = total // known
    if math.prod(dims) != total or min(dims, default=1) < 0:
        raise Unsupported(f"its target {as_int_list(target)} does not fit {in_shape}")
    return tuple(dims)


def flatten_run(in_shape: tuple[int, ...], out: tuple[int, ...]) -> tuple[int, int] | None:
    """``(start, end)`` when ``out`` is ``in_shape`` with axes start..end merged (start >= 1),
    else None."""
    for start in range(1, len(out)):
        if in_shape[:start] != out[:start]:
            break
        end = len(in_shape) - (len(out) - start)
        if end >= start and math.prod(in_shape[start:end + 1]) == out[start] \
                and in_shape[end + 1:] == out[start + 1:]:
            return start, end
    return None


def reshape_to(walk: Walk, node: Node, x: str, target: tuple[int, ...], output: str,
               nodes: tuple[Node, ...] = ()) -> bool:
    """Map ``x`` reshaped to ``target`` (resolved): the same shape is dropped; merging a run
    of adjacent axes after the batch is a flatten; anything else is Unsupported."""
    in_shape = walk.shape(x)
    if tuple(target) == in_shape:
        walk.alias(output, x, node, *nodes)
        return True
    run = flatten_run(in_shape, tuple(target)) if target and target[0] == in_shape[0] else None
    if run is None:
        raise Unsupported(f"it reshapes {in_shape} to {tuple(target)}: archstat maps a reshape that "
                          "merges adjacent axes after the batch (flatten), a channel shuffle, or none")
    start, end = run
    fields = {"start_dim": start} if start != 1 else {}
    if end != len(in_shape) - 1:
        fields["end_dim"] = end
    walk.emit(node, "flatten", fields, [walk.layer(x)], [output], nodes=nodes)
    return True


def convert_reshape(walk: Walk, node: Node) -> bool:
    """Reshape with a constant (or folded) target shape."""
    x = node.inputs[0]
    shape = walk.const(node.inputs[1]) if len(node.inputs) > 1 else node.attr("shape")
    if shape is None:
        raise Unsupported("its target shape is computed at run time from values archstat cannot fold")
    target = resolve_target(walk.shape(x), shape, bool(node.attr("allowzero", 0)))
    if _channel_shuffle(walk, node, x, target) or _gathered_view(walk, node, x, target):
        return True
    return reshape_to(walk, node, x, target, node.outputs[0])


def convert_flatten(walk: Walk, node: Node) -> bool:
    """Flatten(axis) -> (prod of axes before it, prod of the rest): a flatten from axis 1."""
    x = node.inputs[0]
    in_shape = walk.shape(x)
    axis = int(node.attr("axis", 1))
    axis += len(in_shape) if axis < 0 else 0   # ONNX's axis is in [-rank, rank]
    target = (math.prod(in_shape[:axis]), math.prod(in_shape[axis:]))
    return reshape_to(walk, node, x, target, node.outputs[0])


def convert_squeeze(walk: Walk, node: Node) -> bool:
    """Squeeze / Unsqueeze: a reshape (Squeeze of (N, C, 1, 1) is a flatten)."""
    x = node.inputs[0]
    in_shape = walk.shape(x)
    axes = node.attr("axes")
    if len(node.inputs) > 1 and node.inputs[1]:
        axes = walk.const(node.inputs[1])
        if axes is None:
            raise Unsupported("its axes are computed at run time")
    if node.op == "Squeeze":
        drop = ({a % len(in_shape) for a in as_int_list(axes)} if axes is not None
                else {i for i, s in enumerate(in_shape) if s == 1})   # the batch too, when it is 1
        target = tuple(s for i, s in enumerate(in_shape) if i not in drop)
    else:
        rank = len(in_shape) + len(as_int_list(axes))
        added = {a % rank for a in as_int_list(axes)}
        rest = iter(in_shape)
        target = tuple(1 if i in added else next(rest) for i in range(rank))
    return reshape_to(walk, node, x, target, node.outputs[0])


def _channel_shuffle(walk: Walk, node: Node, x: str, target: tuple[int, ...]) -> bool:
    """(N, C, H, W) -> (N, g, C/g, H, W), Transpose (0, 2, 1, 3, 4), -> (N, C, H, W):
    channel_shuffle(groups=g)."""
    in_shape = walk.shape(x)
    if len(in_shape) != 4 or len(target) != 5 or target[:1] + target[3:] != in_shape[:1] + in_shape[2:] \
            or target[1] * target[2] != in_shape[1]:
        return False
    transpose = walk.sole_reader(node.outputs[0])
    if transpose is None or transpose.op != "Transpose" or as_int_list(transpose.attr("perm", [])) != [0, 2, 1, 3, 4]:
        return False
    back = walk.sole_reader(transpose.outputs[0])
    if back is None or back.op != "Reshape" or len(back.inputs) < 2:
        return False
    shape = walk.const(back.inputs[1])
    if shape is None:
        return False
    moved = (target[0], target[2], target[1], *target[3:])
    try:
        final = resolve_target(moved, shape, bool(back.attr("allowzero", 0)))
    except Unsupported:
        return False
    if final != in_shape:
        return False
    walk.emit(node, "channel_shuffle", {"groups": target[1]}, [walk.layer(x)], [back.outputs[0]],
              nodes=[transpose, back])
    return True


def _gathered_view(walk: Walk, node: Node, x: str, target: tuple[int, ...]) -> bool:
    """torch.as_strided as the dynamo exporter writes it: Reshape to one axis, then Gather
    with constant indices arange(numel).reshape(S): a reshape of x to S."""
    if len(target) != 1:
        return False
    gather = walk.sole_reader(node.outputs[0])
    if gather is None or gather.op != "Gather" or gather.attr("axis", 0) != 0:
        return False
    indices = walk.const(gather.inputs[1])
    if indices is None or indices.size != target[0] or \
            not np.array_equal(indices.reshape(-1), np.arange(target[0])):
        return False
    return reshape_to(walk, node, x, tuple(indices.shape), gather.outputs[0], (gather,))


# ------------------------------------------------------------------- transposes and pieces

def convert_transpose(walk: Walk, node: Node) -> bool:
    """Transpose that keeps the batch axis first -> permute(dims=perm)."""
    x = node.inputs[0]
    rank = len(walk.shape(x))
    perm = as_int_list(node.attr("perm", list(range(rank))[::-1]))
    if perm == list(range(rank)):
        walk.alias(node.outputs[0], x, node)
        return True
    if perm[0] != 0:
        raise Unsupported(f"perm {perm} moves the batch axis")
    walk.emit(node, "permute", {"dims": perm}, [walk.layer(x)], node.outputs)
    return True


def convert_split(walk: Walk, node: Node) -> bool:
    """Split along a non-batch axis -> one split layer per used output (chunks when the pieces
    are equal, sizes otherwise), named <node>.<index>."""
    x = node.inputs[0]
    shape = walk.shape(x)
    axis = int(node.attr("axis", 0)) % len(shape)
    if axis == 0:
        raise Unsupported("it splits the batch axis")
    sizes = node.attr("split")
    if len(node.inputs) > 1 and node.inputs[1]:
        sizes = walk.const(node.inputs[1])
        if sizes is None:
            raise Unsupported("its split sizes are computed at run time")
    count = len(node.outputs)
    if sizes is None:
        piece = -(-shape[axis] // count)
        sizes = [min(piece, shape[axis] - i * piece) for i in range(count)]
    sizes = as_int_list(sizes)
    equal = len(set(sizes)) == 1 and sum(sizes) == shape[axis]
    piece_field = {"chunks": len(sizes)} if equal else {"sizes": sizes}
    for index, value in enumerate(node.outputs):
        if walk.g.used(value):
            walk.emit(node, "split", {"dim": axis, **piece_field, "index": index}, [walk.layer(x)], [value],
                      suffix=f".{index}")
    walk.done.add(node.index)
    return True


def _slice_bounds(node: Node, walk: Walk, rank: int) -> list[tuple[int, int, int]]:
    """(axis, start, end, step) entries of a Slice, from attributes (opset < 10) or inputs."""
    if len(node.inputs) > 1:
        values = [walk.const(v) if v else None for v in node.inputs[1:5]]
        if any(v is None for v, name in zip(values, node.inputs[1:5]) if name):
            raise Unsupported("its bounds are computed at run time")
        starts, ends = as_int_list(values[0]), as_int_list(values[1])
        axes = as_int_list(values[2]) if len(values) > 2 and values[2] is not None else None
        steps = as_int_list(values[3]) if len(values) > 3 and values[3] is not None else None
    else:
        starts, ends = as_int_list(node.attr("starts")), as_int_list(node.attr("ends"))
        axes = node.attr("axes") and as_int_list(node.attr("axes"))
        steps = None
    axes = axes or list(range(len(starts)))
    steps = steps or [1] * len(starts)
    return [(a % rank, s, e, st) for a, s, e, st in zip(axes, starts, ends, steps)]


def convert_slice(walk: Walk, node: Node) -> bool:
    """Slice of one contiguous range along one non-batch axis -> split(dim, sizes, index);
    a slice that keeps everything is dropped."""
    x = node.inputs[0]
    shape = walk.shape(x)
    cut = []
    for axis, start, end, step in _slice_bounds(node, walk, len(shape)):
        size = shape[axis]
        if step != 1:
            raise Unsupported(f"step {step} along axis {axis}")
        start = min(max(start + size if start < 0 else start, 0), size)
        end = min(max(end + size if end < 0 else end, 0), size)
        if end <= start:
            raise Unsupported(f"an empty slice [{start}:{end}] of axis {axis}")
        if (start, end) != (0, size):
            cut.append((axis, start, end, size))
    if not cut:
        walk.alias(node.outputs[0], x, node)
        return True
    if len(cut) > 1 or cut[0][0] == 0:
        raise Unsupported(f"it cuts axes {[c[0] for c in cut]}: archstat maps a slice of one non-batch axis")
    axis, start, end, size = cut[0]
    sizes = [s for s in (start, end - start, size - end) if s]
    walk.emit(node, "split", {"dim": axis, "sizes": sizes, "index": 1 if start else 0}, [walk.layer(x)],
              node.outputs)
    return True


# ------------------------------------------------------------------- Pad

def _pad_values(walk: Walk, node: Node, rank: int) -> tuple[list[int], float, str]:
    """(pads [x1_begin, x2_begin, ..., x1_end, ...] over all axes, fill value, mode)."""
    mode = node.attr("mode", "constant")
    if len(node.inputs) > 1 and node.inputs[1]:
        pads = walk.const(node.inputs[1])
        value = walk.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else np.zeros(())
        axes = walk.const(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] else None
        if pads is None or value is None or (len(node.inputs) > 3 and node.inputs[3] and axes is None):
            raise Unsupported("its pads are computed at run time")
        pads = as_int_list(pads)
        if axes is not None:
            full = [0] * (2 * rank)
            for i, axis in enumerate(as_int_list(axes)):
                full[axis % rank], full[axis % rank + rank] = pads[i], pads[i + len(pads) // 2]
            pads = full
        return pads, float(np.asarray(value).reshape(-1)[0]) if np.size(value) else 0.0, mode
    return as_int_list(node.attr("pads", node.attr("paddings", []))), float(node.attr("value", 0.0)), mode


def convert_pad(walk: Walk, node: Node) -> bool:
    """Pad of H and W before the Conv, MaxPool or AveragePool that alone reads it: folded
    into that layer's padding (zero padding; reflect / edge / wrap become a conv's
    padding_mode). Pads of nothing are dropped."""
    x = node.inputs[0]
    shape = walk.shape(x)
    pads, value, mode = _pad_values(walk, node, len(shape))
    if not any(pads):
        walk.alias(node.outputs[0], x, node)
        return True
    if len(shape) != 4 or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
        raise Unsupported(f"pads {pads} of shape {shape}: archstat folds padding of H and W into the "
                          "convolution or pool that follows")
    extra = ((pads[2], pads[6]), (pads[3], pads[7]))
    reader = walk.sole_reader(node.outputs[0])
    if reader is None or reader.op not in ("Conv", "MaxPool", "AveragePool") or reader.inputs[0] != node.outputs[0]:
        raise Unsupported("no convolution or pool alone reads its output, to fold the padding into")
    padding_mode = "zeros" if mode == "constant" else _PAD_MODES.get(mode)
    if padding_mode is None or (mode == "constant" and value != 0.0):
        raise Unsupported(f"{mode} padding with value {value}")
    if reader.op == "Conv" and padding_mode != "zeros" and any(as_int_list(reader.attr("pads", [0]))):
        raise Unsupported(f"{mode} padding before a convolution that zero-pads too")
    if reader.op != "Conv" and padding_mode != "zeros":
        raise Unsupported(f"{mode} padding before a pool")
    source = walk.types.get(walk.layer(x))
    if reader.op == "MaxPool" and not (source and registry.get(source).non_negative):
        raise Unsupported("zero padding before a max pool whose input may be negative (the pool pads "
                          "with -inf)")
    walk.tensors[node.outputs[0]] = walk.layer(x)  # the reader reads x, with the pads added to its own
    if reader.op == "Conv":
        return convert_conv(walk, reader, extra, padding_mode, pad_node=node)
    return convert_pool(walk, reader, extra, pad_node=node)

