"""Pooling family: ``max_pool2d``, ``avg_pool2d`` (PyTorch semantics) and ``global_avg_pool2d``.

Shapes NCHW; output size by the shared window rule of :mod:`.window`, with ``ceil_mode``.
Pools have no parameters.
"""
from __future__ import annotations

import numpy as np

from ..engine import im2col as win
from .registry import REQUIRED, Field, LayerType, Window, numel, register, require_rank
from .window import Pads, check_pool_padding, output_hw, resolve_padding

__kernels__ = ("max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
               "global_avg_pool2d", "global_avg_pool2d_backward")

_POOL_FIELDS = (
    Field("kernel_size", "pair", REQUIRED, "window size kH, kW", minimum=1),
    Field("stride", "pair", None, "step between windows (default: kernel_size)", minimum=1,
          none_ok=True),
    Field("padding", "pair", 0, "implicit padding on each side (at most kernel_size // 2)",
          minimum=0),
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
    family = "pool"

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        require_rank(x, 4, self.name)
        _, _, (ho, wo) = pool_geometry(x, attrs)
        return (x[0], x[1], ho, wo)

    def window(self, in_shapes, attrs):
        stride, pads, _ = pool_geometry(in_shapes[0], attrs)
        return Window(attrs["kernel_size"], stride, (pads[0][0], pads[1][0]),
                      attrs.get("dilation", (1, 1)))


@register
class MaxPool2d(_Pool):
    """Max pooling over kH x kW windows, as torch.nn.MaxPool2d.

    Counts: MACs = 0. FLOPs = (kH * kW - 1) comparisons per output element.
    """

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
        y = max_pool2d(x, **kw)
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
        return avg_pool2d(x, **kw), (x.shape, kw)

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
    family = "pool"

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


# ---------------------------------------------------------------------- engine kernels
#
# Both pools read their input through the engine's one window primitive
# (:func:`archstat.engine.im2col.windows`), one strided view per kernel offset (a, b):
# max pooling is an elementwise maximum of those kH*kW views (20x faster than reshape +
# max: shared/reference/perf-anchors.md), average pooling their sum times 1/divisor. Backward adds into
# the same views of the padded gradient, then crops the padding.


def _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode):
    x = win.check_array(x, "x", 4)
    kernel = win.pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else stride
    geom = win.geometry(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    check_pool_padding(geom.pads, geom.kernel, geom.dilation)
    return x, geom


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max pooling as ``torch.nn.functional.max_pool2d``: x (N, C, H, W) -> (N, C, H_out, W_out).

    Padding is -inf (a padded pixel never wins); ``stride`` defaults to ``kernel_size``;
    ``ceil_mode`` rounds the output size up (PyTorch's rule, :mod:`archstat.layers.window`).
    NaN propagates, as in PyTorch. Same dtype out (float32 or float64).
    """
    x, geom = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    return _max_of_taps(win.windows(win.pad(x, geom.full_pads, "-inf"), geom), geom)


def _max_of_taps(taps, geom):
    y = taps[..., 0, 0].copy()
    kh, kw = geom.kernel
    for a in range(kh):
        for b in range(kw):
            if a or b:
                np.maximum(y, taps[..., a, b], out=y)
    return y


def max_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                        *, y=None):
    """Gradient of :func:`max_pool2d` with respect to x (x's shape and dtype).

    Each output's gradient goes to the first maximum of its window in window order
    (row-major over the kernel), as PyTorch's CPU kernel breaks ties. ``y`` (the forward's
    output) may be passed to skip recomputing it.
    """
    x, geom = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    dy = win.check_array(dy, "dy", 4, x.dtype)
    xp = win.pad(x, geom.full_pads, "-inf")
    taps = win.windows(xp, geom)
    y = _max_of_taps(taps, geom) if y is None else y
    dxp = np.zeros(xp.shape, x.dtype)
    dtaps = win.windows(dxp, geom, writeable=True)
    free = np.ones(y.shape, bool)   # windows whose maximum has not been found yet
    hit = np.empty(y.shape, bool)
    kh, kw = geom.kernel
    for a in range(kh):
        for b in range(kw):
            np.equal(taps[..., a, b], y, out=hit)
            hit &= free
            free &= ~hit
            target = dtaps[..., a, b]
            np.add(target, dy, out=target, where=hit)
    return win.pad_backward(dxp, geom.full_pads, "-inf")


def _avg_scale(geom, count_include_pad, dtype):
    """1 / divisor per output position ``(H_out, W_out)``, PyTorch's rule exactly.

    Per axis (aten ``AvgPoolKernel``): the window starts at ``o*s - p``, ends at
    ``min(start + k, size + p)``; ``count_include_pad`` divides by that length (so with
    ``ceil_mode`` a window running past the padded input counts only what lies inside it),
    otherwise by the part inside the input. The 2-D divisor is the product of the two axes.
    """
    lens = []
    for size, (lo, hi), k, s, o in zip(geom.in_hw, geom.pads, geom.kernel, geom.stride,
                                       geom.out_hw):
        start = np.arange(o) * s - lo
        end = np.minimum(start + k, size + hi)
        if count_include_pad:
            lens.append(end - start)
        else:
            lens.append(np.minimum(end, size) - np.maximum(start, 0))
    div = np.multiply.outer(lens[0], lens[1])
    scale = np.zeros(div.shape, dtype)
    np.divide(1, div, out=scale, where=div > 0)
    return scale


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average pooling as ``torch.nn.functional.avg_pool2d``: (N, C, H, W) -> (N, C, H_out, W_out).

    Zero padding; the divisor follows PyTorch exactly (see :func:`_avg_scale`), including
    ``ceil_mode`` windows clipped to the padded input. Same dtype out.
    """
    x, geom = _pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    taps = win.windows(win.pad(x, geom.full_pads, "zeros"), geom)
    y = taps[..., 0, 0].copy()
    kh, kw = geom.kernel
    for a in range(kh):
        for b in range(kw):
            if a or b:
                np.add(y, taps[..., a, b], out=y)
    y *= _avg_scale(geom, count_include_pad, x.dtype)
    return y


def avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True):
    """Gradient of :func:`avg_pool2d` with respect to x; ``x_shape`` is x's shape (or x).

    Every input pixel of a window receives ``dy / divisor``: col2im of a broadcast.
    """
    x_shape = _shape_of(x_shape)
    dy = win.check_array(dy, "dy", 4)
    probe = np.broadcast_to(np.zeros((), dy.dtype), x_shape)
    _, geom = _pool_geometry(probe, kernel_size, stride, padding, 1, ceil_mode)
    g = dy * _avg_scale(geom, count_include_pad, dy.dtype)
    dxp = np.zeros(tuple(x_shape[:2]) + geom.padded_hw, dy.dtype)
    win.col2im(np.broadcast_to(g[..., None, None], g.shape + geom.kernel), geom, dxp)
    return win.pad_backward(dxp, geom.full_pads, "zeros")


def _shape_of(x_or_shape):
    """A shape given as itself or as the array it belongs to."""
    if hasattr(x_or_shape, "shape"):
        return tuple(x_or_shape.shape)
    return tuple(int(v) for v in x_or_shape)


def global_avg_pool2d(x):
    """Mean over H x W: (N, C, H, W) -> (N, C, 1, 1), as ``adaptive_avg_pool2d(x, 1)``."""
    x = win.check_array(x, "x", 4)
    return x.mean(axis=(2, 3), keepdims=True)


def global_avg_pool2d_backward(dy, x_shape):
    """Gradient of :func:`global_avg_pool2d`: dy / (H*W) spread over every pixel."""
    x_shape = _shape_of(x_shape)
    dy = win.check_array(dy, "dy", 4)
    scale = dy.dtype.type(1.0 / (x_shape[2] * x_shape[3]))
    return np.broadcast_to(dy * scale, x_shape).copy()
