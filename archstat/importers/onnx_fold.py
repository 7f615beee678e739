"""Evaluating ONNX nodes on constant NumPy arrays: constant folding and activation probes.

The ONNX importer folds every node whose inputs are all known (initializers, ``Constant``
nodes, the static shapes archstat infers) into a constant, so that weights computed by
constant subgraphs and the shape arithmetic exporters write (``Shape`` -> ``Gather`` ->
``Concat`` -> ``Reshape``) become plain arrays. :func:`evaluate` computes one node. The
common folding ops and every elementwise op have NumPy implementations here, written for
every opset from 7 (attributes that later opsets turned into inputs, such as ``Clip``'s
``min``/``max`` and ``Unsqueeze``'s ``axes``, are read from either place); any other op is
handed to ``onnx.reference`` (the ONNX project's own Python implementation of the spec).

Conventions: ``inputs`` lists one array per declared input, ``None`` for an omitted
optional input (an empty name in the file). Integer ``Div`` truncates toward zero, as ONNX
(and C) does.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import ArchstatError
from ..layers.special import erf

Arrays = Sequence["np.ndarray | None"]

#: ops that never fold, whatever their inputs: random draws and control flow
NOT_FOLDABLE = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                          "Multinomial", "Bernoulli", "If", "Loop", "Scan"})


def _clip(x, inputs, attrs):
    lo = inputs[1] if len(inputs) > 1 and inputs[1] is not None else attrs.get("min")
    hi = inputs[2] if len(inputs) > 2 and inputs[2] is not None else attrs.get("max")
    if lo is not None:
        x = np.maximum(x, np.asarray(lo, dtype=x.dtype))
    if hi is not None:
        x = np.minimum(x, np.asarray(hi, dtype=x.dtype))
    return x


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _gelu(x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


#: elementwise ops on one tensor: f(x, attrs), attrs with ONNX's defaults applied here
UNARY: dict[str, Callable[[np.ndarray, Mapping[str, Any]], np.ndarray]] = {
    "Identity": lambda x, a: x,
    "Relu": lambda x, a: np.maximum(x, 0),
    "Sigmoid": lambda x, a: _sigmoid(x),
    "Tanh": lambda x, a: np.tanh(x),
    "Erf": lambda x, a: erf(x).astype(x.dtype, copy=False),
    "Exp": lambda x, a: np.exp(x),
    "Log": lambda x, a: np.log(x),
    "Sqrt": lambda x, a: np.sqrt(x),
    "Neg": lambda x, a: -x,
    "Abs": lambda x, a: np.abs(x),
    "Reciprocal": lambda x, a: 1.0 / x,
    "Floor": lambda x, a: np.floor(x),
    "Ceil": lambda x, a: np.ceil(x),
    "Sign": lambda x, a: np.sign(x),
    "Softplus": lambda x, a: np.logaddexp(0, x),
    "Softsign": lambda x, a: x / (1 + np.abs(x)),
    "HardSigmoid": lambda x, a: np.clip(a.get("alpha", 0.2) * x + a.get("beta", 0.5), 0, 1),
    "HardSwish": lambda x, a: x * np.clip(x / 6 + 0.5, 0, 1),
    "LeakyRelu": lambda x, a: np.where(x >= 0, x, a.get("alpha", 0.01) * x),
    "Elu": lambda x, a: np.where(x >= 0, x, a.get("alpha", 1.0) * (np.exp(x) - 1)),
    "Selu": lambda x, a: a.get("gamma", 1.0507009873554805) * np.where(
        x > 0, x, a.get("alpha", 1.6732632423543772) * (np.exp(x) - 1)),
    "Mish": lambda x, a: x * np.tanh(np.logaddexp(0, x)),
    "Gelu": lambda x, a: _gelu(x, a.get("approximate", "none")),
}

#: elementwise ops on two or more tensors (NumPy broadcasting is ONNX's multidirectional one)
NARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Pow": np.power,
    "Max": np.maximum, "Min": np.minimum, "Sum": np.add,
    "Equal": np.equal, "Less": np.less, "Greater": np.greater,
    "And": np.logical_and, "Or": np.logical_or,
}

#: every op the elementwise probes (activation patterns) can evaluate
ELEMENTWISE = frozenset(UNARY) | {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Clip", "Cast"}


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(np.result_type(a, b), np.integer):
        q = np.abs(a) // np.abs(b)
        return (np.sign(a) * np.sign(b) * q).astype(np.result_type(a, b))
    return np.divide(a, b)


def elementwise(op: str, inputs: Arrays, attrs: Mapping[str, Any]) -> np.ndarray:
    """One op of ELEMENTWISE on arrays (a ``Cast`` keeps the dtype: the probes compute in
    float64 whatever float type the file casts to)."""
    if op in UNARY:
        return np.asarray(UNARY[op](inputs[0], attrs))
    if op == "Cast":
        return inputs[0]
    if op == "Clip":
        return _clip(inputs[0], inputs, attrs)
    if op == "Div":
        return _div(inputs[0], inputs[1])
    out = inputs[0]
    for other in inputs[1:]:
        out = NARY[op](out, other)
    return np.asarray(out)


def _axes(inputs: Arrays, attrs: Mapping[str, Any], position: int = 1) -> list[int] | None:
    """An op's ``axes``: the attribute (older opsets) or the input at ``position`` (newer)."""
    if len(inputs) > position and inputs[position] is not None:
        return [int(a) for a in np.asarray(inputs[position]).reshape(-1)]
    axes = attrs.get("axes")
    return None if axes is None else [int(a) for a in axes]


def _unsqueeze(x: np.ndarray, axes: list[int]) -> np.ndarray:
    rank = x.ndim + len(axes)
    for axis in sorted(a % rank for a in axes):
        x = np.expand_dims(x, axis)
    return x


def _slice(x: np.ndarray, inputs: Arrays, attrs: Mapping[str, Any]) -> np.ndarray:
    if len(inputs) > 1:  # opset 10+: starts, ends, axes, steps as inputs
        starts, ends = (np.asarray(inputs[i]).reshape(-1) for i in (1, 2))
        axes = _axes(inputs, {}, 3)
        steps = inputs[4] if len(inputs) > 4 and inputs[4] is not None else None
    else:
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else np.asarray(steps).reshape(-1)
    index = [slice(None)] * x.ndim
    for axis, start, end, step in zip(axes, starts, ends, steps):
        index[int(axis) % x.ndim] = slice(int(start), int(end), int(step))
    return x[tuple(index)]


def _reshape(x: np.ndarray, shape: np.ndarray, allowzero: int) -> np.ndarray:
    target = [int(s) for s in np.asarray(shape).reshape(-1)]
    if not allowzero:
        target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]
    return x.reshape(target)


def _numpy_op(op: str, inputs: Arrays, attrs: Mapping[str, Any]) -> list[np.ndarray] | None:
    """The NumPy implementation of ``op``, or None when there is none here."""
    x = inputs[0] if inputs else None
    if op in UNARY:
        return [np.asarray(UNARY[op](x, attrs))]
    if op in NARY:
        out = inputs[0]
        for other in inputs[1:]:
            out = NARY[op](out, other)
        return [np.asarray(out)]
    simple = {
        "Div": lambda: _div(inputs[0], inputs[1]),
        "Clip": lambda: _clip(x, inputs, attrs),
        "Not": lambda: np.logical_not(x),
        "Where": lambda: np.where(inputs[0], inputs[1], inputs[2]),
        "Cast": lambda: x.astype(_dtype(attrs["to"])),
        "Unsqueeze": lambda: _unsqueeze(x, _axes(inputs, attrs)),
        "Squeeze": lambda: (np.squeeze(x, axis=tuple(_axes(inputs, attrs)))
                            if _axes(inputs, attrs) is not None else np.squeeze(x)),
        "Concat": lambda: np.concatenate([np.asarray(i) for i in inputs], axis=attrs["axis"]),
        "Gather": lambda: np.take(x, inputs[1].astype(np.int64), axis=attrs.get("axis", 0)),
        "Slice": lambda: _slice(x, inputs, attrs),
        "Reshape": lambda: _reshape(x, inputs[1] if len(inputs) > 1 else attrs["shape"],
                                    attrs.get("allowzero", 0)),
        "Transpose": lambda: np.transpose(x, attrs.get("perm")),
        "Expand": lambda: x * np.ones([int(s) for s in inputs[1]], dtype=x.dtype),
        "Range": lambda: np.arange(inputs[0], inputs[1], inputs[2]).astype(inputs[0].dtype),
        "ReduceProd": lambda: np.prod(x, axis=_optional_tuple(_axes(inputs, attrs)),
                                      keepdims=bool(attrs.get("keepdims", 1))),
        "ConstantOfShape": lambda: np.full([int(s) for s in x.reshape(-1)],
                                           attrs["value"].reshape(-1)[0] if "value" in attrs else 0.0,
                                           dtype=attrs["value"].dtype if "value" in attrs else np.float32),
        "Flatten": lambda: x.reshape(int(np.prod(x.shape[:attrs.get("axis", 1)])), -1),
    }
    return None if op not in simple else [np.asarray(simple[op]())]


def _optional_tuple(axes: list[int] | None) -> tuple[int, ...] | None:
    return None if axes is None else tuple(axes)


def _dtype(onnx_type: int) -> np.dtype:
    from onnx import helper
    return np.dtype(helper.tensor_dtype_to_np_dtype(onnx_type))


def evaluate(node: Any, inputs: Arrays, attrs: Mapping[str, Any], opset: int) -> list[np.ndarray]:
    """Compute the outputs of one ONNX ``node`` (a NodeProto) on constant ``inputs``.

    ``attrs``: the node's attributes as Python values (tensors as arrays). Ops without a
    NumPy implementation here go to ``onnx.reference.ReferenceEvaluator`` at ``opset``.

    Raises
    ------
    ArchstatError
        When the op cannot be evaluated (the caller adds the node's name).
    """
    try:
        with np.errstate(all="ignore"):
            out = _numpy_op(node.op_type, inputs, attrs)
            if out is None:
                out = _reference(node, inputs, opset)
    except ArchstatError:
        raise
    except Exception as exc:  # a malformed node or an op the reference cannot run
        raise ArchstatError(f"cannot fold this {node.op_type} node on its constant inputs "
                            f"({type(exc).__name__}: {exc})") from None
    return out


def _reference(node: Any, inputs: Arrays, opset: int) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    feeds = {name: value for name, value in zip(node.input, inputs) if name}
    evaluator = ReferenceEvaluator(node, opsets={"": opset})
    return [np.asarray(v) for v in evaluator.run(None, feeds)]
