"""Elementwise activations: ``relu``, ``sigmoid``, ``tanh``. Output shape = input shape.

FLOP rules count one FLOP per arithmetic operation, and ``exp`` as one FLOP.
"""
from __future__ import annotations

from .registry import Field, LayerType, numel, register


class _Elementwise(LayerType):
    family = "activation"
    #: FLOPs per output element
    flops_per_element = 1

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


@register
class Sigmoid(_Elementwise):
    """Logistic sigmoid 1 / (1 + exp(-x)), as torch.nn.Sigmoid.

    Counts: MACs = 0. FLOPs = 4 per element (negate, exp, add, divide).
    """

    name = "sigmoid"
    alias = "sigmoid"
    flops_per_element = 4


@register
class Tanh(_Elementwise):
    """Hyperbolic tangent, as torch.nn.Tanh.

    Counts: MACs = 0. FLOPs = 5 per element, as (exp(2x) - 1) / (exp(2x) + 1):
    multiply, exp, subtract, add, divide.
    """

    name = "tanh"
    alias = "tanh"
    flops_per_element = 5
