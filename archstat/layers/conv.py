"""Convolution family: ``conv2d`` (shared weights) and ``locally_connected2d`` (unshared).

Shapes (NCHW, as PyTorch): input ``(N, C_in, H, W)``, output ``(N, C_out, H_out, W_out)``
with ``H_out = floor((H + p_top + p_bottom - d*(k-1) - 1) / s) + 1`` (:mod:`.window`).
Conv weights are ``[C_out, C_in/groups, kH, kW]``; locally connected weights are
``[H_out, W_out, C_out, C_in, kH, kW]``, one filter bank per output location.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..errors import ArchstatError
from .registry import (INFERRED, REQUIRED, Field, LayerType, Shape, Window, check_declared,
                       numel, register, require_rank)
from .window import Pads, output_hw, resolve_padding

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

_WINDOW_FIELDS = (
    Field("in_channels", "int", INFERRED, "input channels; inferred from the graph", minimum=1),
    Field("out_channels", "int", REQUIRED, "number of filters (output channels)", minimum=1),
    Field("kernel_size", "pair", REQUIRED, "filter size kH, kW", minimum=1),
    Field("stride", "pair", 1, "step between windows", minimum=1),
    Field("padding", "padding", 0, "pixels added on each side, or 'same' / 'valid'"),
    Field("padding_mode", "choice", "zeros", "how padded pixels are filled", choices=PADDING_MODES),
    Field("dilation", "pair", 1, "spacing between kernel taps (1: none)", minimum=1),
)


def conv_geometry(in_shape: Shape, attrs: Mapping[str, Any]) -> tuple[Pads, tuple[int, int]]:
    """Per-side pads and output (H, W) of a conv-like layer; checks padding modes."""
    pads = resolve_padding(attrs["padding"], attrs["kernel_size"], attrs["dilation"], attrs["stride"])
    hw = in_shape[2:]
    mode = attrs["padding_mode"]
    if mode != "zeros":
        for (lo, hi), size, axis in zip(pads, hw, ("height", "width")):
            pad = max(lo, hi)
            if mode == "reflect" and pad >= size:
                raise ArchstatError(
                    f"reflect padding {pad} needs an input {axis} larger than {pad}, got {size}",
                    field="padding", hint="use less padding or padding_mode 'replicate'")
            if mode == "circular" and pad > size:
                raise ArchstatError(
                    f"circular padding {pad} would wrap around an input {axis} of {size} more than once",
                    field="padding", hint="use less padding")
    return pads, output_hw(hw, attrs["kernel_size"], attrs["stride"], pads, attrs["dilation"])


class _ConvLike(LayerType):
    family = "conv"

    def check_input(self, in_shapes: Sequence[Shape], attrs: Mapping[str, Any]) -> Shape:
        (x,) = in_shapes
        require_rank(x, 4, self.name)
        check_declared(attrs, "in_channels", x[1], "channels")
        return x

    def window(self, in_shapes, attrs):
        pads, _ = conv_geometry(in_shapes[0], attrs)
        return Window(attrs["kernel_size"], attrs["stride"], (pads[0][0], pads[1][0]), attrs["dilation"])


@register
class Conv2d(_ConvLike):
    """2-D convolution (cross-correlation) with shared weights, as torch.nn.Conv2d.

    Counts: MACs = N * C_out * H_out * W_out * (C_in/groups) * kH * kW.
    FLOPs = 2 * MACs, plus N * C_out * H_out * W_out bias adds when bias is true.
    """

    name = "conv2d"
    alias = "conv"
    fields = _WINDOW_FIELDS + (
        Field("groups", "int", 1, "channel groups (C_in for depthwise)", minimum=1),
        Field("bias", "bool", True, "learn one bias per output channel"),
    )

    def check_attrs(self, attrs):
        if attrs["out_channels"] % attrs["groups"]:
            raise ArchstatError(f"groups {attrs['groups']} does not divide out_channels "
                                f"{attrs['out_channels']}", field="groups",
                                hint="out_channels must be a multiple of groups")

    def output_shape(self, in_shapes, attrs):
        x = self.check_input(in_shapes, attrs)
        if x[1] % attrs["groups"]:
            raise ArchstatError(f"groups {attrs['groups']} does not divide the {x[1]} input channels",
                                field="groups", hint="in_channels must be a multiple of groups")
        _, (ho, wo) = conv_geometry(x, attrs)
        return (x[0], attrs["out_channels"], ho, wo)

    def param_shapes(self, in_shapes, attrs):
        c_in = in_shapes[0][1]
        kh, kw = attrs["kernel_size"]
        shapes = {"weight": (attrs["out_channels"], c_in // attrs["groups"], kh, kw)}
        if attrs["bias"]:
            shapes["bias"] = (attrs["out_channels"],)
        return shapes

    def macs(self, in_shapes, out_shape, attrs):
        kh, kw = attrs["kernel_size"]
        return numel(out_shape) * (in_shapes[0][1] // attrs["groups"]) * kh * kw

    def flops(self, in_shapes, out_shape, attrs):
        return 2 * self.macs(in_shapes, out_shape, attrs) + (numel(out_shape) if attrs["bias"] else 0)


@register
class LocallyConnected2d(_ConvLike):
    """Locally connected 2-D layer: a conv whose filters are not shared across locations.

    Counts: MACs = N * C_out * H_out * W_out * C_in * kH * kW (as conv2d with groups 1).
    FLOPs = 2 * MACs, plus N * C_out * H_out * W_out bias adds when bias is true.
    Parameters: (kH * kW * C_in + 1) * C_out per output location (the lecture's formula).
    """

    name = "locally_connected2d"
    alias = "lc"
    fields = _WINDOW_FIELDS + (
        Field("bias", "bool", True, "learn one bias per output channel and location"),
    )

    def output_shape(self, in_shapes, attrs):
        x = self.check_input(in_shapes, attrs)
        _, (ho, wo) = conv_geometry(x, attrs)
        return (x[0], attrs["out_channels"], ho, wo)

    def param_shapes(self, in_shapes, attrs):
        x = in_shapes[0]
        _, (ho, wo) = conv_geometry(x, attrs)
        kh, kw = attrs["kernel_size"]
        c_out = attrs["out_channels"]
        shapes = {"weight": (ho, wo, c_out, x[1], kh, kw)}
        if attrs["bias"]:
            shapes["bias"] = (c_out, ho, wo)
        return shapes

    def macs(self, in_shapes, out_shape, attrs):
        kh, kw = attrs["kernel_size"]
        return numel(out_shape) * in_shapes[0][1] * kh * kw

    def flops(self, in_shapes, out_shape, attrs):
        return 2 * self.macs(in_shapes, out_shape, attrs) + (numel(out_shape) if attrs["bias"] else 0)
