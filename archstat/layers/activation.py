"""Elementwise activations: ``relu``, ``sigmoid``, ``tanh``. Output shape = input shape.

FLOP rules count one FLOP per arithmetic operation, and ``exp`` as one FLOP.

Kernels: :func:`relu`, :func:`sigmoid`, :func:`tanh` and their ``*_backward``, which take
the forward *output* ``y`` (all three derivatives are functions of it, so an in-place ReLU
can still be differentiated). Any shape; float32 or float64, the output keeps the dtype.
"""
from __future__ import annotations

import numpy as np

from .registry import Field, LayerType, numel, register

__kernels__ = ("relu", "relu_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward")


def relu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """max(0, x) elementwise; ``out=x`` computes it in place (torch.relu_)."""
    return np.maximum(x, 0, out=out)


def relu_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dx = dy where y > 0, else 0 (y may be ReLU's output or its input: same mask).

    At x = 0 the subgradient 0 is used, as PyTorch.
    """
    return np.where(y > 0, dy, 0).astype(dy.dtype, copy=False)


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


@register
class ReLU(_Elementwise):
    """Rectified linear unit max(0, x), as torch.nn.ReLU.

    Counts: MACs = 0. FLOPs = 1 per element (one comparison).
    """

    name = "relu"
    alias = "relu"
    fields = (Field("inplace", "bool", False, "overwrite the input (no new activation memory)"),)
    flops_per_element = 1
    grad = staticmethod(relu_backward)

    def forward(self, xs, params, attrs, ctx):
        x = xs[0]
        y = relu(x, out=x if self.writes_in_place(attrs) else None)
        return y, y


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
