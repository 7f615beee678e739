"""Patterns of several ONNX nodes that are one archstat layer.

* **Activations, found by what they compute.** Starting from a node, the importer gathers the
  elementwise nodes that read one tensor x (and scalar constants): ``Sigmoid`` and ``Mul``
  for x * sigmoid(x), the five nodes of 0.5 * x * (1 + erf(x / sqrt 2)), ``HardSigmoid`` and
  ``Mul``, a ``Clip`` with its bounds as attributes (old opsets) or inputs (new ones). It
  evaluates each candidate group on probe values in float64 and compares it with the
  kernels of archstat's activation types (relu, relu6, sigmoid, tanh, silu, hardswish,
  hardsigmoid, gelu exact and tanh, and the identity), largest group first. So exporters'
  variants (operands swapped, x * 0.5 first, Div or Mul by 1/sqrt 2) all map, and a
  HardSigmoid whose alpha and beta are not 1/6 and 1/2 maps to nothing, as it should.
* **Per-channel affine chains** (Mul, Add, Sub, Div by constants of C values, i.e. batch
  norm folded to scale and shift) -> batch_norm2d with running_mean 0, running_var 1, eps 0,
  weight = scale, bias = shift; a chain of scales alone -> layer_scale.
* **Layer norm written out** (ReduceMean, Sub, Pow, ReduceMean, Add eps, Sqrt, Div, then
  optionally Mul by weight, Add bias) -> layer_norm over trailing axes, or layer_norm2d over
  the channels of an image; and Transpose (0, 2, 3, 1), a layer norm over the last axis,
  Transpose (0, 3, 1, 2) -> layer_norm2d (ConvNeXt's LayerNorm2d).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..layers import registry
from ..layers.registry import RunContext
from .onnx_fold import ELEMENTWISE, elementwise
from .onnx_graph import Node, as_int_list
from .onnx_ops import Unsupported, other_input, per_channel
from .onnx_walk import Walk

#: a single node of these ops is its archstat type, without a probe
DIRECT = {"Relu": ("relu", {}), "Sigmoid": ("sigmoid", {}), "Tanh": ("tanh", {}),
          "HardSwish": ("hardswish", {})}
#: archstat types an elementwise group may compute, tried in this order
CANDIDATES = (("relu", {}), ("relu6", {}), ("sigmoid", {}), ("tanh", {}), ("silu", {}),
              ("hardswish", {}), ("hardsigmoid", {}), ("gelu", {}), ("gelu", {"approximate": "tanh"}),
              (None, {}))
#: probe inputs: both sides of every kink (0, +-3, 6) and the tails
PROBES = np.concatenate([np.linspace(-10.0, 10.0, 401), [-3.0, 3.0, 6.0, -1e-3, 1e-3, 0.0]])
_MAX_GROUP = 24
_FLOAT_TYPES = (1, 10, 11, 16)  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


# ------------------------------------------------------------------- activations

def convert_activation(walk: Walk, node: Node) -> bool:
    """An elementwise group starting at ``node`` that computes an archstat activation."""
    xs = walk.tensor_inputs(node)
    if len(set(xs)) != 1:
        return False
    x = xs[0]
    group = _group(walk, x, node)
    for sink in sorted(group, key=lambda n: -n.index):
        members = _ancestors(sink, group)
        if node not in members or not _closed(walk, members, sink):
            continue
        found = _identify(walk, x, members, sink)
        if found is None:
            continue
        type_name, fields = found
        if type_name is None:
            walk.alias(sink.outputs[0], x, *members)
        else:
            walk.emit(node, type_name, fields, [walk.layer(x)], sink.outputs[:1], nodes=members)
        return True
    return False


def _elementwise(walk: Walk, node: Node, known: set[str], rank: int) -> bool:
    """``node`` is an elementwise op on values in ``known`` and scalar constants (of rank at
    most ``rank``, so that broadcasting keeps the tensor's shape)."""
    if node.op not in ELEMENTWISE or len(node.outputs) != 1 or node.index in walk.done:
        return False
    if node.op == "Cast" and node.attr("to") not in _FLOAT_TYPES:
        return False
    reads_known = False
    for value in node.inputs:
        if not value:
            continue
        if value in known:
            reads_known = True
            continue
        const = walk.const(value)
        if const is None or const.size != 1 or const.ndim > rank:
            return False
    return reads_known


def _group(walk: Walk, x: str, start: Node) -> list[Node]:
    """The elementwise nodes computed from x alone (and scalar constants), reachable from x."""
    known, group, rank = {x}, [], len(walk.shape(x))
    frontier = [x]
    while frontier and len(group) < _MAX_GROUP:
        value = frontier.pop()
        for reader in walk.g.readers(value):
            if reader not in group and _elementwise(walk, reader, known, rank):
                group.append(reader)
                known.add(reader.outputs[0])
                frontier.append(reader.outputs[0])
    return group if start in group else []


def _ancestors(sink: Node, group: list[Node]) -> list[Node]:
    """``sink`` and the members of ``group`` it depends on, in walk order."""
    made = {n.outputs[0]: n for n in group}
    seen, stack = {sink.index: sink}, [sink]
    while stack:
        for value in stack.pop().inputs:
            src = made.get(value)
            if src is not None and src.index not in seen:
                seen[src.index] = src
                stack.append(src)
    return sorted(seen.values(), key=lambda n: n.index)


def _closed(walk: Walk, members: list[Node], sink: Node) -> bool:
    """Only ``sink``'s output leaves the group (the others are read inside it only)."""
    inside = {n.index for n in members}
    for n in members:
        if n is sink:
            continue
        if walk.g.is_output(n.outputs[0]) or any(r.index not in inside for r in walk.g.readers(n.outputs[0])):
            return False
    return True


def _identify(walk: Walk, x: str, members: list[Node], sink: Node) -> tuple[str | None, dict] | None:
    """The archstat activation the group computes, or None."""
    if len(members) == 1 and members[0].op in DIRECT:
        return DIRECT[members[0].op]
    values = {x: PROBES.copy()}
    with np.errstate(all="ignore"):
        for n in members:
            values[n.outputs[0]] = _evaluate(walk, n, values)
    got = np.broadcast_to(values[sink.outputs[0]], np.broadcast_shapes(values[sink.outputs[0]].shape,
                                                                       PROBES.shape)).reshape(-1)
    if got.size != PROBES.size:
        return None
    for type_name, fields in CANDIDATES:
        want = PROBES if type_name is None else _reference(type_name, fields)
        if np.allclose(got, want, rtol=1e-5, atol=1e-6):
            return type_name, fields
    return None


def _evaluate(walk: Walk, node: Node, values: dict[str, np.ndarray]) -> np.ndarray:
    """One elementwise node in float64 on the probe values."""
    args = [values[v] if v in values else (np.asarray(walk.const(v), dtype=np.float64) if v else None)
            for v in node.inputs]
    return np.asarray(elementwise(node.op, args, node.attrs), dtype=np.float64)


def _reference(type_name: str, fields: dict) -> np.ndarray:
    """archstat's own kernel for the type, on the probes."""
    ltype = registry.get(type_name)
    y, _ = ltype.forward([PROBES.copy()], {}, ltype.normalise(fields), RunContext())
    return y


# ------------------------------------------------------------------- per-channel affine chains

_AFFINE = ("Mul", "Add", "Sub", "Div")


def _affine_step(walk: Walk, node: Node, x: str, scale: np.ndarray, shift: np.ndarray,
                 shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, bool, str] | None:
    """Apply one affine node to y = scale * x + shift: (scale, shift, shifts, constant name),
    or None when the node is not a per-channel (or scalar) affine step of x."""
    if node.op not in _AFFINE or len(node.inputs) != 2 or x not in node.inputs:
        return None
    c_name = other_input(node, x)
    const = walk.const(c_name)
    if const is None or c_name == x:
        return None
    c = np.full(shape[1], const.reshape(-1)[0], dtype=np.float64) if const.size == 1 \
        else per_channel(const, shape)
    if c is None:
        return None
    c = c.astype(np.float64)
    first = node.inputs[0] == x
    if node.op == "Mul":
        return scale * c, shift * c, False, c_name
    if node.op == "Add":
        return scale, shift + c, True, c_name
    if node.op == "Sub":
        return (scale, shift - c, True, c_name) if first else (-scale, c - shift, True, c_name)
    if not first:
        return None  # c / x is not affine
    return scale / c, shift / c, False, c_name


def convert_affine(walk: Walk, node: Node) -> bool:
    """A chain of Mul/Add/Sub/Div by per-channel constants -> batch_norm2d (scale and shift of
    an image: batch norm folded to two constants), layer_scale (scale only), channel_bias
    (shift only), or layer_scale then channel_bias (scale and shift of flat features); at
    least one constant must have C > 1 values."""
    xs = walk.tensor_inputs(node)
    if len(xs) != 1:
        return False
    x = xs[0]
    shape = walk.shape(x)
    if len(shape) not in (2, 4):
        return False
    scale, shift = np.ones(shape[1]), np.zeros(shape[1])
    chain, names, shifts, channelwise, current, value = [], {}, False, False, node, x
    while current is not None:
        step = _affine_step(walk, current, value, scale, shift, shape)
        if step is None:
            break
        scale, shift, adds, c_name = step
        channelwise |= walk.const(c_name).size > 1
        names["bias" if adds else "weight"] = names.get("bias" if adds else "weight", c_name)
        shifts |= adds
        chain.append(current)
        value = current.outputs[0]
        current = walk.sole_reader(value)
    if not chain or not channelwise:
        return False
    if np.all(scale == 1):   # a shift alone: the file holds C values, no scale
        walk.emit(node, "channel_bias", {}, [walk.layer(x)], [value], {"bias": shift},
                  {"bias": names.get("bias")}, nodes=chain)
        return True
    if not shifts or len(shape) == 2:   # a scale alone; or a scale and shift of flat features
        weight = scale.reshape(-1, 1, 1) if len(shape) == 4 else scale
        scaled = walk.emit(node, "layer_scale", {}, [walk.layer(x)], [] if shifts else [value], {"weight": weight},
                           {"weight": names.get("weight")}, nodes=chain)
        if shifts:
            walk.emit(node, "channel_bias", {}, [scaled], [value], {"bias": shift}, {"bias": names.get("bias")},
                      suffix=".shift")
        return True
    weights = {"weight": scale, "bias": shift, "running_mean": np.zeros_like(scale),
               "running_var": np.ones_like(scale)}
    walk.emit(node, "batch_norm2d", {"eps": 0.0}, [walk.layer(x)], [value], weights,
              {"weight": names.get("weight"), "bias": names.get("bias")}, nodes=chain)
    walk.counters["affine"][node.label] += 1
    return True


# ------------------------------------------------------------------- layer norms

@dataclass
class LayerNormMatch:
    """A layer norm found in the graph: its nodes, output value, axes, eps, weight, bias."""

    nodes: list[Node]
    output: str
    axes: tuple[int, ...]
    eps: float
    weight: np.ndarray | None
    bias: np.ndarray | None
    origins: dict[str, Any]


def _reduce_axes(walk: Walk, node: Node, rank: int) -> tuple[int, ...] | None:
    axes = node.attr("axes")
    if len(node.inputs) > 1 and node.inputs[1]:
        axes = walk.const(node.inputs[1])
    if axes is None or not node.attr("keepdims", 1):
        return None
    return tuple(sorted(a % rank for a in as_int_list(axes)))


def _reader(walk: Walk, value: str, ops: tuple[str, ...]) -> Node | None:
    reader = walk.sole_reader(value)
    return reader if reader is not None and reader.op in ops else None


def _scalar(walk: Walk, node: Node, value: str) -> float | None:
    const = walk.const(other_input(node, value))
    return None if const is None or const.size != 1 else float(const.reshape(-1)[0])


def match_decomposed(walk: Walk, mean: Node, rank: int) -> LayerNormMatch | None:
    """mean = ReduceMean(x); d = x - mean; var = ReduceMean(d^2); y = d / sqrt(var + eps)
    [* weight] [+ bias], with every intermediate read inside the pattern only; x of ``rank``."""
    x = mean.inputs[0]
    if mean.op != "ReduceMean":
        return None
    axes = _reduce_axes(walk, mean, rank)
    sub = _reader(walk, mean.outputs[0], ("Sub",))
    if axes is None or sub is None or sub.inputs[0] != x or sub.inputs[1] != mean.outputs[0]:
        return None
    d = sub.outputs[0]
    readers = walk.g.readers(d)
    square = next((r for r in readers if r.op in ("Pow", "Mul") and r is not sub), None)
    div = next((r for r in readers if r.op == "Div" and r.inputs[0] == d), None)
    if len(readers) != 2 or square is None or div is None:
        return None
    if square.op == "Pow" and _scalar(walk, square, d) != 2.0 or square.op == "Mul" and square.inputs[:2] != (d, d):
        return None
    var = _reader(walk, square.outputs[0], ("ReduceMean",))
    add = var and _reader(walk, var.outputs[0], ("Add",))
    sqrt = add and _reader(walk, add.outputs[0], ("Sqrt",))
    if sqrt is None or _reduce_axes(walk, var, rank) != axes or div.inputs[1] != sqrt.outputs[0]:
        return None
    eps = _scalar(walk, add, var.outputs[0])
    if eps is None or walk.sole_reader(sqrt.outputs[0]) is not div:
        return None
    nodes, output = [mean, sub, square, var, add, sqrt, div], div.outputs[0]
    weight = bias = None
    origins: dict[str, Any] = {}
    mul = _reader(walk, output, ("Mul",))
    if mul is not None and walk.const(other_input(mul, output)) is not None:
        weight, origins["weight"] = walk.const(other_input(mul, output)), other_input(mul, output)
        nodes, output = nodes + [mul], mul.outputs[0]
        plus = _reader(walk, output, ("Add",))
        if plus is not None and walk.const(other_input(plus, output)) is not None:
            bias, origins["bias"] = walk.const(other_input(plus, output)), other_input(plus, output)
            nodes, output = nodes + [plus], plus.outputs[0]
    return LayerNormMatch(nodes, output, axes, eps, weight, bias, origins)


def _match_any(walk: Walk, node: Node, rank: int) -> LayerNormMatch | None:
    """A LayerNormalization node or the decomposed form at ``node``, on a tensor of ``rank``."""
    if node.op == "ReduceMean":
        return match_decomposed(walk, node, rank)
    if node.op != "LayerNormalization" or walk.g.extra_outputs_used(node):
        return None
    bias_name = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    weight, bias = walk.const(node.inputs[1]), walk.const(bias_name) if bias_name else None
    if weight is None or (bias_name and bias is None):
        return None
    axis = int(node.attr("axis", -1)) % rank
    return LayerNormMatch([node], node.outputs[0], tuple(range(axis, rank)),
                          float(node.attr("epsilon", 1e-5)), weight, bias,
                          {"weight": node.inputs[1], "bias": bias_name})


def _ln_fields(match: LayerNormMatch) -> dict[str, Any]:
    return {"eps": float(str(np.float32(match.eps))), "elementwise_affine": match.weight is not None,
            "bias": match.bias is not None}


def _ln_weights(match: LayerNormMatch, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    out = {}
    for key, value in (("weight", match.weight), ("bias", match.bias)):
        if value is not None:
            out[key] = np.broadcast_to(value, shape).copy()
    return out


def convert_decomposed_layer_norm(walk: Walk, node: Node) -> bool:
    """The written-out layer norm: over trailing axes -> layer_norm; over the channels of an
    image -> layer_norm2d."""
    x = node.inputs[0]
    if not walk.is_tensor(x):
        return False
    shape = walk.shape(x)
    rank = len(shape)
    match = match_decomposed(walk, node, rank)
    if match is None or (match.weight is None and match.bias is not None):
        return False
    if len(shape) == 4 and match.axes == (1,):
        fields = _ln_fields(match)
        try:
            weights = _ln_weights(match, (1, shape[1], 1, 1))
        except ValueError:
            return False
        weights = {k: v.reshape(shape[1]) for k, v in weights.items()}
        walk.emit(node, "layer_norm2d", fields, [walk.layer(x)], [match.output], weights, match.origins,
                  nodes=match.nodes)
        return True
    if match.axes != tuple(range(match.axes[0], rank)) or match.axes[0] == 0:
        return False
    normalized = tuple(shape[match.axes[0]:])
    try:
        weights = _ln_weights(match, normalized)
    except ValueError:
        return False
    walk.emit(node, "layer_norm", {"normalized_shape": list(normalized), **_ln_fields(match)},
              [walk.layer(x)], [match.output], weights, match.origins, nodes=match.nodes)
    return True


def convert_layer_norm2d(walk: Walk, node: Node) -> bool:
    """Transpose (0, 2, 3, 1) -> a layer norm over the last axis -> Transpose (0, 3, 1, 2):
    layer_norm2d (ConvNeXt's LayerNorm2d)."""
    x = node.inputs[0]
    if len(walk.shape(x)) != 4 or as_int_list(node.attr("perm", [])) != [0, 2, 3, 1]:
        return False
    t = node.outputs[0]
    if walk.g.is_output(t):
        return False
    readers = walk.g.readers(t)
    start = next((r for r in readers if r.op in ("LayerNormalization", "ReduceMean")), None)
    if start is None:
        return False
    c = walk.shape(x)[1]
    match = _match_any(walk, start, 4)
    if match is None or match.axes != (3,) or {r.index for r in readers} - {n.index for n in match.nodes}:
        return False
    back = _reader(walk, match.output, ("Transpose",))
    if back is None or as_int_list(back.attr("perm", [])) != [0, 3, 1, 2]:
        return False
    if (match.weight is None and match.bias is not None):
        return False
    try:
        weights = {k: v.reshape(c) for k, v in _ln_weights(match, (c,)).items()}
    except ValueError:
        return False
    walk.emit(node, "layer_norm2d", _ln_fields(match), [walk.layer(x)], [back.outputs[0]], weights,
              match.origins, nodes=match.nodes + [back])
    return True
