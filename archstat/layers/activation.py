"""Elementwise activations: ``relu``, ``relu6``, ``sigmoid``, ``tanh``, ``silu``, ``hardswish``,
``hardsigmoid``, ``gelu``. Output shape = input shape.

FLOP rules count one FLOP per arithmetic operation or comparison, ``exp`` and ``erf`` as one
FLOP each, and ``tanh`` as the tanh layer does (5).

Kernels (in :mod:`.activation_kernels`, re-exported here): :func:`relu`, :func:`relu6`,
:func:`sigmoid`, :func:`tanh`, :func:`silu`, :func:`hardswish`, :func:`hardsigmoid`,
:func:`gelu` and their ``*_backward``; and :func:`select`, the masked gradient pass.
"""
from __future__ import annotations

from .activation_kernels import (_hardsigmoid_inside, _sixth_where, gelu, gelu_backward, gelu_workspace, hardsigmoid,
                                 hardswish, hardswish_backward, relu, relu6, relu6_backward,
                                 relu_backward, sigmoid, sigmoid_backward, silu, silu_backward, silu_workspace,
                                 tanh, tanh_backward)
from .activation_kernels import hardsigmoid_backward, select  # noqa: F401 (re-exported)
from .outbuf import usable
from .registry import declare_family, Field, LayerType, numel, register

FAMILY = declare_family("activation", "activation", rank=4)



class _Elementwise(LayerType):
    family = FAMILY
    #: FLOPs per output element
    flops_per_element = 1
    #: the kernel pair, as staticmethods: y = fn(x, out=None), dx = grad(dy, y)
    fn = staticmethod(lambda x, out=None: x)
    grad = staticmethod(lambda dy, y: dy)
    writes_out = True

    def forward(self, xs, params, attrs, ctx):
        x = xs[0]
        y = self.fn(x, out=ctx.out if usable(ctx.out, x.shape, x.dtype) else None)
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
        out = x if self.writes_in_place(attrs) else ctx.out if usable(ctx.out, x.shape, x.dtype) else None
        y = self.fn(x, out=out)
        return y, y


@register
class ReLU(_Clamp):
    """Rectified linear unit max(0, x), as torch.nn.ReLU.

    Counts: MACs = 0. FLOPs = 1 per element (one comparison).
    """

    name = "relu"
    non_negative = True
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
    non_negative = True
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

    def workspace_bytes(self, in_shapes, attrs, itemsize, algorithm=None, limit=None):
        return silu_workspace(numel(in_shapes[0]), itemsize, self.writes_in_place(attrs))

    def forward(self, xs, params, attrs, ctx):
        x = xs[0]
        out = x if self.writes_in_place(attrs) else ctx.out if usable(ctx.out, x.shape, x.dtype) else None
        y, s = silu(x, out=out, keep_sigmoid=ctx.keep_cache)
        return y, (y, s)

    def backward(self, dy, cache):
        return [silu_backward(dy, *cache)], {}


@register
class Sigmoid(_Elementwise):
    """Logistic sigmoid 1 / (1 + exp(-x)), as torch.nn.Sigmoid.

    Counts: MACs = 0. FLOPs = 4 per element (negate, exp, add, divide).
    """

    name = "sigmoid"
    non_negative = True
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


@register
class Hardswish(_Elementwise):
    """Hard swish x * relu6(x + 3) / 6, as torch.nn.Hardswish (MobileNetV3).

    Counts: MACs = 0. FLOPs = 5 per element (add 3, two comparisons, multiply, divide).

    Backward needs x (hardswish is not monotonic). In place, the forward keeps a copy of x
    for backward (as PyTorch's autograd keeps the original input of ``hardswish_``): in
    training the layer then needs one input-sized array of its own after all.
    """

    name = "hardswish"
    writes_out = False   # its own forward makes a new output
    alias = "hswish"
    fields = (Field("inplace", "bool", False, "overwrite the input (no new activation memory at "
                    "inference; training keeps a copy of the input)"),)
    flops_per_element = 5

    def forward(self, xs, params, attrs, ctx):
        x = xs[0]
        if not self.writes_in_place(attrs):
            return hardswish(x), x
        kept = x.copy() if ctx.keep_cache else None
        return hardswish(x, out=x), kept

    def backward(self, dy, cache):
        return [hardswish_backward(dy, cache)], {}

    def training_extra_bytes(self, out_elements, itemsize, attrs=None):
        # the copy of x an in-place forward keeps (attrs unknown: counted, an upper bound)
        return out_elements * itemsize if attrs is None or self.writes_in_place(attrs) else 0


@register
class Hardsigmoid(_Elementwise):
    """Hard sigmoid relu6(x + 3) / 6, as torch.nn.Hardsigmoid (the gate of MobileNetV3's
    squeeze and excitation blocks).

    Counts: MACs = 0. FLOPs = 4 per element (add 3, two comparisons, divide).

    Backward needs the mask -3 < x < 3 (the output cannot tell x just below 3 from 3). In
    place, the forward keeps that mask, one byte per element, for backward.
    """

    name = "hardsigmoid"
    writes_out = False   # its own forward makes a new output
    non_negative = True
    alias = "hsigmoid"
    fields = (Field("inplace", "bool", False, "overwrite the input (no new activation memory at "
                    "inference; training keeps a one-byte mask per element)"),)
    flops_per_element = 4

    def forward(self, xs, params, attrs, ctx):
        x = xs[0]
        if not self.writes_in_place(attrs):
            return hardsigmoid(x), (x, None)
        inside = _hardsigmoid_inside(x) if ctx.keep_cache else None
        return hardsigmoid(x, out=x), (None, inside)

    def backward(self, dy, cache):
        x, inside = cache
        return [_sixth_where(dy, _hardsigmoid_inside(x) if inside is None else inside)], {}

    def training_extra_bytes(self, out_elements, itemsize, attrs=None):
        # the one-byte mask an in-place forward keeps (attrs unknown: counted, an upper bound)
        return out_elements if attrs is None or self.writes_in_place(attrs) else 0


@register
class GELU(_Elementwise):
    """Gaussian error linear unit x * Phi(x), Phi the standard normal CDF, as torch.nn.GELU
    (exact with erf, or its tanh approximation).

    Counts: MACs = 0. FLOPs = 5 per element exact (multiply by 1/sqrt 2, erf as one FLOP, add 1,
    multiply by x, multiply by 1/2); 13 with approximate 'tanh' (x^2, x^3, times 0.044715, add
    x, times sqrt(2/pi), tanh counted as the tanh layer's 5, add 1, multiply by x, multiply by 1/2).
    """

    name = "gelu"
    writes_out = False   # its own forward makes a new output
    alias = "gelu"
    fields = (Field("approximate", "choice", "none", "'none': exact, with erf; 'tanh': the tanh "
                    "approximation", choices=("none", "tanh")),)

    def workspace_bytes(self, in_shapes, attrs, itemsize, algorithm=None, limit=None):
        return gelu_workspace(numel(in_shapes[0]), itemsize, attrs["approximate"])

    def forward(self, xs, params, attrs, ctx):
        x = xs[0]
        return gelu(x, attrs["approximate"]), (x, attrs["approximate"])

    def backward(self, dy, cache):
        x, approximate = cache
        return [gelu_backward(dy, x, approximate)], {}

    def flops(self, in_shapes, out_shape, attrs):
        return (13 if attrs["approximate"] == "tanh" else 5) * numel(out_shape)
