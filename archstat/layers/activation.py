"""Elementwise activations: ``relu``, ``relu6``, ``sigmoid``, ``tanh``, ``silu``.
Output shape = input shape.

FLOP rules count one FLOP per arithmetic operation, and ``exp`` as one FLOP.

Kernels: :func:`relu`, :func:`relu6`, :func:`sigmoid`, :func:`tanh` and their ``*_backward``,
which take the forward *output* ``y`` (the derivatives are functions of it, so an in-place
ReLU can still be differentiated); :func:`silu_backward` takes ``y`` and ``sigmoid(x)``. Any shape; float32 or float64, the output keeps the dtype.
"""
from __future__ import annotations

import numpy as np

from .registry import Field, LayerType, numel, register

__kernels__ = ("relu", "relu_backward", "relu6", "relu6_backward", "sigmoid", "sigmoid_backward",
               "tanh", "tanh_backward", "silu", "silu_backward")


def relu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """max(0, x) elementwise; ``out=x`` computes it in place (torch.relu_)."""
    return np.maximum(x, 0, out=out)


#: the integer type of each float type's bit pattern (same size)
_BITS = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def select(mask: np.ndarray, dy: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``dy`` where ``mask``, else +0.0, in dy's dtype: ``np.where(mask, dy, 0)`` bit for bit,
    so an inf or NaN of ``dy`` outside the mask gives 0 (a float multiply by the mask would
    give NaN there).

    Computed as dy's bit pattern times the 0/1 mask, in integers: as fast as a float
    multiply, which would not do (inf * 0 is NaN), and 3.6-4.9x faster than ``np.where``
    for ReLU's backward on (1 or 8, 64, 224, 224) float32 (measured side by side, 2 cores;
    masked ``where=`` ufuncs are slower still on an irregular mask). ``out`` (optional)
    takes the result.
    """
    dy = np.asarray(dy)
    bits = _BITS.get(dy.dtype)
    if bits is None:                             # other dtypes: the plain (slower) form
        res = np.where(mask, dy, 0).astype(dy.dtype, copy=False)
        if out is None:
            return res
        np.copyto(out, res)
        return out
    res = np.multiply(dy.view(bits), mask, out=None if out is None else out.view(bits))
    return res.view(dy.dtype)


def relu_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dx = dy where y > 0, else 0 (y may be ReLU's output or its input: same mask).

    At x = 0 the subgradient 0 is used, as PyTorch. Where y is NaN the gradient is 0 here,
    while PyTorch passes dy through (its mask is ``not (y <= 0)``).
    """
    return select(np.greater(y, 0), dy)


def relu6(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """min(max(0, x), 6) elementwise (torch.nn.ReLU6); ``out=x`` computes it in place."""
    return np.clip(x, 0, 6, out=out)


def relu6_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dx = dy where 0 < y < 6, else 0 (PyTorch's hardtanh rule: zero at both kinks)."""
    mask = np.greater(y, 0)
    mask &= np.less(y, 6)
    return select(mask, dy)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), stably: with e = exp(-|x|) (never overflows), 1 / (1 + e) for
    x >= 0 and e / (1 + e) for x < 0, so tiny outputs keep their relative precision."""
    e = np.exp(-np.abs(x))
    y = np.where(x >= 0, 1, e)
    y /= 1 + e
    return y


def sigmoid_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dx = dy * y * (1 - y), with y = sigmoid(x)."""
    return dy * y * (1 - y)


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent elementwise."""
    return np.tanh(x)


def tanh_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dx = dy * (1 - y^2), with y = tanh(x)."""
    return dy * (1 - y * y)


def silu(x: np.ndarray, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """x * sigmoid(x) (torch.nn.SiLU, "swish"); returns ``(y, sigmoid(x))`` for the backward."""
    s = sigmoid(x)
    return np.multiply(x, s, out=out), s


def silu_backward(dy: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """dx = dy * (s + y (1 - s)): d/dx x s(x) = s + x s (1 - s), and x s = y, so the input
    itself is not needed (an in-place SiLU can still be differentiated)."""
    return dy * (s + y * (1 - s))


class _Elementwise(LayerType):
    family = "activation"
    #: FLOPs per output element
    flops_per_element = 1
    #: the kernel pair, as staticmethods: y = fn(x), dx = grad(dy, y)
    fn = staticmethod(lambda x: x)
    grad = staticmethod(lambda dy, y: dy)

    def forward(self, xs, params, attrs, ctx):
        y = self.fn(xs[0])
        return y, y

    def backward(self, dy, cache):
        return [self.grad(dy, cache)], {}

    def output_shape(self, in_shapes, attrs):
        return tuple(in_shapes[0])

    def flops(self, in_shapes, out_shape, attrs):
        return self.flops_per_element * numel(out_shape)


class _Clamp(_Elementwise):
    """A clamp that may write over its input (PyTorch's ``inplace``): ``fn(x, out=)``."""

    fields = (Field("inplace", "bool", False, "overwrite the input (no new activation memory)"),)

    def forward(self, xs, params, attrs, ctx):
        x = xs[0]
        y = self.fn(x, out=x if self.writes_in_place(attrs) else None)
        return y, y


@register
class ReLU(_Clamp):
    """Rectified linear unit max(0, x), as torch.nn.ReLU.

    Counts: MACs = 0. FLOPs = 1 per element (one comparison).
    """

    name = "relu"
    alias = "relu"
    flops_per_element = 1
    fn = staticmethod(relu)
    grad = staticmethod(relu_backward)


@register
class ReLU6(_Clamp):
    """ReLU capped at 6, min(max(0, x), 6), as torch.nn.ReLU6 (MobileNetV2).

    Counts: MACs = 0. FLOPs = 2 per element (two comparisons).
    """

    name = "relu6"
    alias = "relu"
    flops_per_element = 2
    fn = staticmethod(relu6)
    grad = staticmethod(relu6_backward)


@register
class SiLU(_Elementwise):
    """Sigmoid-weighted linear unit x * sigmoid(x), as torch.nn.SiLU (EfficientNet's swish).

    Counts: MACs = 0. FLOPs = 5 per element (the sigmoid's 4, then one multiply).
    """

    name = "silu"
    alias = "silu"
    fields = (Field("inplace", "bool", False, "overwrite the input (no new activation memory)"),)
    flops_per_element = 5

    def forward(self, xs, params, attrs, ctx):
        x = xs[0]
        y, s = silu(x, out=x if self.writes_in_place(attrs) else None)
        return y, (y, s)

    def backward(self, dy, cache):
        return [silu_backward(dy, *cache)], {}


@register
class Sigmoid(_Elementwise):
    """Logistic sigmoid 1 / (1 + exp(-x)), as torch.nn.Sigmoid.

    Counts: MACs = 0. FLOPs = 4 per element (negate, exp, add, divide).
    """

    name = "sigmoid"
    alias = "sigmoid"
    flops_per_element = 4
    fn = staticmethod(sigmoid)
    grad = staticmethod(sigmoid_backward)


@register
class Tanh(_Elementwise):
    """Hyperbolic tangent, as torch.nn.Tanh.

    Counts: MACs = 0. FLOPs = 5 per element, as (exp(2x) - 1) / (exp(2x) + 1):
    multiply, exp, subtract, add, divide.
    """

    name = "tanh"
    alias = "tanh"
    flops_per_element = 5
    fn = staticmethod(tanh)
    grad = staticmethod(tanh_backward)
