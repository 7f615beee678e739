"""Pooling family: ``max_pool2d``, ``avg_pool2d`` (PyTorch semantics), ``global_avg_pool2d``,
and ``adaptive_avg_pool2d`` / ``adaptive_max_pool2d``.

Shapes NCHW; output size by the shared window rule of :mod:`.window`, with ``ceil_mode``;
adaptive pools take their output size from the spec and their windows from
:func:`.window.adaptive_bounds`. Pools have no parameters. Kernels: :mod:`.pool_kernels`,
:mod:`.pool_adaptive`.
"""
from __future__ import annotations

import numpy as np

from .pool_adaptive import (adaptive_avg_pool2d, adaptive_avg_pool2d_backward, adaptive_max_pool2d,
                            adaptive_max_pool2d_backward)
from .pool_kernels import (avg_pool2d, avg_pool2d_backward, global_avg_pool2d, pool_workspace,
                           global_avg_pool2d_backward, max_pool2d, max_pool2d_backward)
from .registry import REQUIRED, declare_family, Field, LayerType, numel, register, require_rank, Window
from .window import (Pads, adaptive_geometry, adaptive_output_hw, adaptive_taps, check_pool_padding,
                     output_hw, resolve_padding)

FAMILY = declare_family("pool", "pooling", rank=2)


_POOL_FIELDS = (
    Field("kernel_size", "pair", REQUIRED, "window size kH, kW", minimum=1),
    Field("stride", "pair", None, "step between windows (default: kernel_size)", minimum=1,
          none_ok=True),
    Field("padding", "pads", 0, "implicit padding on each side, or per side (at most kernel_size // 2)"),
    Field("ceil_mode", "bool", False, "round the output size up instead of down"),
)


def pool_geometry(in_shape, attrs) -> tuple[tuple[int, int], Pads, tuple[int, int]]:
    """Stride (defaulted), per-side pads and output (H, W) of a pooling layer."""
    stride = attrs["stride"] or attrs["kernel_size"]
    dilation = attrs.get("dilation", (1, 1))
    pads = resolve_padding(attrs["padding"], attrs["kernel_size"], dilation, stride)
    check_pool_padding(pads, attrs["kernel_size"], dilation)
    hw = output_hw(in_shape[2:], attrs["kernel_size"], stride, pads, dilation, attrs["ceil_mode"])
    return stride, pads, hw


class _Pool(LayerType):
    family = FAMILY
    writes_out = True

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        require_rank(x, 4, self.name)
        _, _, (ho, wo) = pool_geometry(x, attrs)
        return (x[0], x[1], ho, wo)

    def window(self, in_shapes, attrs):
        stride, pads, _ = pool_geometry(in_shapes[0], attrs)
        return Window(attrs["kernel_size"], stride, (pads[0][0], pads[1][0]),
                      attrs.get("dilation", (1, 1)))

    def workspace_bytes(self, in_shapes, attrs, itemsize, algorithm=None, limit=None):
        return pool_workspace(in_shapes[0], attrs["kernel_size"], attrs["stride"], attrs["padding"],
                              attrs.get("dilation", 1), attrs["ceil_mode"], itemsize)


@register
class MaxPool2d(_Pool):
    """Max pooling over kH x kW windows, as torch.nn.MaxPool2d.

    Counts: MACs = 0. FLOPs = (kH * kW - 1) comparisons per output element. Backward: each
    output's gradient added to its window's maximum, 1 per output element.
    """

    def backward_flops(self, in_shapes, out_shape, attrs, input_grads, forward=None):
        return numel(out_shape) if input_grads[0] else 0

    name = "max_pool2d"
    alias = "pool"
    fields = _POOL_FIELDS + (
        Field("dilation", "pair", 1, "spacing between window taps (1: none)", minimum=1),
    )

    def flops(self, in_shapes, out_shape, attrs):
        kh, kw = attrs["kernel_size"]
        return numel(out_shape) * (kh * kw - 1)

    def forward(self, xs, params, attrs, ctx):
        (x,) = xs
        kw = dict(kernel_size=attrs["kernel_size"], stride=attrs["stride"],
                  padding=attrs["padding"], dilation=attrs["dilation"],
                  ceil_mode=attrs["ceil_mode"])
        y = max_pool2d(x, **kw, out=ctx.out)
        return y, (x, y, kw)

    def backward(self, dy, cache):
        x, y, kw = cache
        return [max_pool2d_backward(dy, x, y=y, **kw)], {}


@register
class AvgPool2d(_Pool):
    """Average pooling over kH x kW windows, as torch.nn.AvgPool2d.

    Counts: MACs = 0. FLOPs = kH * kW per output element (kH * kW - 1 adds and one divide).
    """

    name = "avg_pool2d"
    alias = "avgpool"
    fields = _POOL_FIELDS + (
        Field("count_include_pad", "bool", True, "count padded zeros in the divisor"),
    )

    def flops(self, in_shapes, out_shape, attrs):
        kh, kw = attrs["kernel_size"]
        return numel(out_shape) * kh * kw

    def forward(self, xs, params, attrs, ctx):
        (x,) = xs
        kw = dict(kernel_size=attrs["kernel_size"], stride=attrs["stride"],
                  padding=attrs["padding"], ceil_mode=attrs["ceil_mode"],
                  count_include_pad=attrs["count_include_pad"])
        return avg_pool2d(x, **kw, out=ctx.out), (x.shape, kw)

    def backward(self, dy, cache):
        shape, kw = cache
        return [avg_pool2d_backward(dy, shape, **kw)], {}


@register
class GlobalAvgPool2d(LayerType):
    """Average over all of H x W, as torch.nn.AdaptiveAvgPool2d(1): (N, C, H, W) -> (N, C, 1, 1).

    Counts: MACs = 0. FLOPs = H * W per output element (H * W - 1 adds and one divide).
    """

    name = "global_avg_pool2d"
    alias = "gap"
    family = FAMILY

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        require_rank(x, 4, self.name)
        return (x[0], x[1], 1, 1)

    def flops(self, in_shapes, out_shape, attrs):
        return numel(in_shapes[0])

    def window(self, in_shapes, attrs):
        h, w = in_shapes[0][2:]
        return Window((h, w), (1, 1), (0, 0))

    def forward(self, xs, params, attrs, ctx):
        (x,) = xs
        return global_avg_pool2d(x), np.shape(x)

    def backward(self, dy, cache):
        return [global_avg_pool2d_backward(dy, cache)], {}


class _AdaptivePool(LayerType):
    """Shared by the adaptive pools: the output size comes from the spec, the windows from
    PyTorch's rule (output i reads input [floor(i H / H_out), ceil((i+1) H / H_out)))."""

    family = FAMILY
    fields = (
        Field("output_size", "size", REQUIRED,
              "output size H_out, W_out (an entry null keeps that input size)", minimum=1),
    )

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        require_rank(x, 4, self.name)
        return (x[0], x[1], *adaptive_output_hw(x[2:], attrs["output_size"]))

    def window(self, in_shapes, attrs):
        x = in_shapes[0]
        (kh, sh, uh), (kw, sw, uw) = (adaptive_geometry(size, o) for size, o in
                                      zip(x[2:], adaptive_output_hw(x[2:], attrs["output_size"])))
        return Window((kh, kw), (sh, sw), (0, 0), uniform=uh and uw)

    @staticmethod
    def window_elements(in_shape, out_shape) -> int:
        """Input elements read, summed over the output elements (window sizes, exact)."""
        n, c, h, w = in_shape
        return n * c * adaptive_taps(h, out_shape[2]) * adaptive_taps(w, out_shape[3])


@register
class AdaptiveAvgPool2d(_AdaptivePool):
    """Average over each output's window, as torch.nn.AdaptiveAvgPool2d: (N, C, H, W) ->
    (N, C, H_out, W_out), output i reading input rows [floor(i H / H_out), ceil((i+1) H /
    H_out)) and the columns likewise (unless H_out divides H, neighbouring windows overlap and
    their sizes may vary).

    Counts: MACs = 0. FLOPs = the window size of each output element, summed (window size - 1
    adds and one divide each): N * C * T_h * T_w, where T = H + H_out - gcd(H, H_out) is the
    sum of the window lengths along an axis (H * W / (H_out * W_out) per output element when
    the sizes divide).

    Receptive field: kernel = stride = H / H_out where H_out divides H (output size 1: the
    whole input, as global_avg_pool2d); kernel q + 1, stride q where H = q H_out + 1 (equal
    windows that overlap by one, e.g. 13 -> 3: 5 at a step of 4); otherwise the windows
    differ, and the largest window with the largest step between window starts give the
    largest field of any output, marked not uniform (``rf_aligned`` false from here on).
    Same dtype out (float32 or float64).
    """

    name = "adaptive_avg_pool2d"
    alias = "adaptive_avgpool"

    def flops(self, in_shapes, out_shape, attrs):
        return self.window_elements(in_shapes[0], out_shape)

    def forward(self, xs, params, attrs, ctx):
        (x,) = xs
        return adaptive_avg_pool2d(x, attrs["output_size"]), (x.shape, attrs["output_size"])

    def backward(self, dy, cache):
        shape, output_size = cache
        return [adaptive_avg_pool2d_backward(dy, shape, output_size)], {}


@register
class AdaptiveMaxPool2d(_AdaptivePool):
    """Maximum over each output's window, as torch.nn.AdaptiveMaxPool2d: the windows of
    adaptive_avg_pool2d; the gradient goes to the index PyTorch picks (the first maximum,
    reading the window row by row, or the window's last NaN).

    Counts: MACs = 0. FLOPs = window size - 1 comparisons per output element, summed:
    N * C * (T_h * T_w - H_out * W_out), with T = H + H_out - gcd(H, H_out) the sum of the
    window lengths along an axis. Backward: each output's gradient added to its window's
    maximum, 1 per output element.

    Receptive field and dtypes as adaptive_avg_pool2d.
    """

    def backward_flops(self, in_shapes, out_shape, attrs, input_grads, forward=None):
        return numel(out_shape) if input_grads[0] else 0

    name = "adaptive_max_pool2d"
    alias = "adaptive_maxpool"

    def flops(self, in_shapes, out_shape, attrs):
        return self.window_elements(in_shapes[0], out_shape) - numel(out_shape)

    def forward(self, xs, params, attrs, ctx):
        (x,) = xs
        y = adaptive_max_pool2d(x, attrs["output_size"])
        return y, (x, y, attrs["output_size"])

    def backward(self, dy, cache):
        x, y, output_size = cache
        return [adaptive_max_pool2d_backward(dy, x, output_size, y=y)], {}
