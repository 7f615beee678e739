"""Convolution family: ``conv2d`` (shared weights) and ``locally_connected2d`` (unshared).

Shapes (NCHW, as PyTorch): input ``(N, C_in, H, W)``, output ``(N, C_out, H_out, W_out)``
with ``H_out = floor((H + p_top + p_bottom - d*(k-1) - 1) / s) + 1`` (:mod:`.window`).
Conv weights are ``[C_out, C_in/groups, kH, kW]``; locally connected weights are
``[H_out, W_out, C_out, C_in, kH, kW]``, one filter bank per output location.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..engine import im2col as win
from ..errors import ArchstatError
from .registry import (INFERRED, REQUIRED, Field, LayerType, Shape, Window, affine_flops,
                       check_declared, numel, register, require_rank)
from .window import Pads, output_hw, resolve_padding

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

__kernels__ = ("conv2d", "conv2d_backward", "locally_connected2d", "locally_connected2d_backward")

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

    # -- engine: the functional kernels below, with the layer's attrs as arguments
    def kernels(self):
        """``(forward, backward)`` functional kernels of this type."""
        raise NotImplementedError

    def kernel_kwargs(self, attrs: Mapping[str, Any]) -> dict[str, Any]:
        return dict(stride=attrs["stride"], padding=attrs["padding"], dilation=attrs["dilation"],
                    padding_mode=attrs["padding_mode"])

    def forward(self, xs, params, attrs, ctx):
        (x,) = xs
        kw = self.kernel_kwargs(attrs)
        y = self.kernels()[0](x, params["weight"], params.get("bias"), **kw)
        return y, (x, params["weight"], "bias" in params, kw)

    def backward(self, dy, cache):
        x, w, has_bias, kw = cache
        dx, dw, db = self.kernels()[1](dy, x, w, **kw)
        grads = {"weight": dw}
        if has_bias:
            grads["bias"] = db
        return [dx], grads


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
        return affine_flops(self.macs(in_shapes, out_shape, attrs), out_shape, attrs["bias"])

    def kernels(self):
        return conv2d, conv2d_backward

    def kernel_kwargs(self, attrs):
        return dict(super().kernel_kwargs(attrs), groups=attrs["groups"])


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
        return affine_flops(self.macs(in_shapes, out_shape, attrs), out_shape, attrs["bias"])

    def kernels(self):
        return locally_connected2d, locally_connected2d_backward


# ---------------------------------------------------------------------- engine kernels
#
# Forward is the lecture's cross-correlation y(r, c) = sum_ab x(r + a, c + b) k(a, b) done as
# im2col + one GEMM per group. Backward is its duality, as two GEMMs on the same columns:
# dW = dY_mat @ cols^T (cross-correlation of the upstream gradient with the input) and
# dcols = W^T @ dY_mat, scattered back by col2im (convolution of the upstream gradient with
# the kernel, i.e. cross-correlation with the kernel rotated 180 degrees).


def _conv_args(x, w, b, groups, padding_mode):
    x = win.check_array(x, "x", 4)
    w = np.ascontiguousarray(win.check_array(w, "w", 4, x.dtype))
    if b is not None:
        b = win.check_array(b, "b", 1, x.dtype)
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ArchstatError(f"groups must be an integer >= 1, got {groups!r}", field="groups")
    c_out, c_in_g = w.shape[:2]
    if x.shape[1] != c_in_g * groups or c_out % groups:
        raise ArchstatError(f"weight {w.shape} with groups {groups} does not fit an input with "
                            f"{x.shape[1]} channels", field="w",
                            hint="the weight is [C_out, C_in/groups, kH, kW]")
    if b is not None and b.shape != (c_out,):
        raise ArchstatError(f"bias must have shape ({c_out},), got {b.shape}", field="b")
    if padding_mode not in PADDING_MODES:
        raise ArchstatError(f"unknown padding_mode {padding_mode!r}", field="padding_mode",
                            hint=f"use one of {', '.join(PADDING_MODES)}")
    return x, w, b, int(groups)


#: the largest kernel (kH*kW taps) whose zero-padded columns are built tap by tap
#: (:func:`archstat.engine.im2col.im2col_unpadded`); measured on 5x5 (25 taps, C = 32) the
#: per-tap copies were 1.3x slower than padding the input once
UNPADDED_MAX_TAPS = 9


def _column_blocks(x, geom, groups, padding_mode, ones_row=False):
    """Blocked im2col of ``x``: yield ``(block, cols)`` per block of output rows, ``cols``
    shaped ``(G, K_g, L)``. Zero padding of a small kernel is never materialised
    (:func:`archstat.engine.im2col.im2col_unpadded`); otherwise the whole input is padded
    once. One column buffer serves every block. With ``ones_row`` (groups 1 only) the
    columns get one more row of ones, so that a weight with the bias as its last column
    adds the bias inside the GEMM (CS231n's bias trick) instead of in one more pass over
    the output.
    """
    n, c = x.shape[:2]
    kh, kw = geom.kernel
    k = c * kh * kw
    plan = list(win.blocks(n, geom, k * x.itemsize))
    most = max(((n1 - n0) * (r1 - r0) for n0, n1, r0, r1 in plan), default=0)  # no images: none
    colbuf = np.empty(most * geom.out_hw[1] * (k + ones_row), x.dtype)
    # zero padding of a small kernel: copied tap by tap, the padding never built; otherwise
    # one copy of the (padded) input's windows, faster when there are many taps (AlexNet's
    # 11x11: 2.4x) or nothing to pad
    per_tap = (padding_mode == "zeros" and kh * kw <= UNPADDED_MAX_TAPS
               and geom.full_pads != ((0, 0), (0, 0)))
    xp = x if per_tap else win.pad(x, geom.full_pads, padding_mode)
    for block in plan:
        if per_tap:
            cols = win.im2col_unpadded(x, geom, block, out=colbuf)
        else:
            cols = win.im2col(xp, geom, block, out=colbuf)
        if ones_row:
            size = cols.size
            colbuf[size:size + cols.shape[1]] = 1
            cols = colbuf[:size + cols.shape[1]].reshape(k + 1, -1)
        yield block, cols.reshape(groups, (k + ones_row) // groups, -1)


# Depthwise convs (groups = C_in, each group sees one input channel) make the backward's
# GEMMs degenerate: per group dW is a (C_out/G x L) @ (L x kH*kW) product and dcols a
# (kH*kW x C_out/G) @ (C_out/G x L) one with 1-2 rows, G tiny matmuls plus a col2im pass
# (1.3-2x slower than what follows, on MobileNetV2's shapes). Their backward computes the
# same two products one column-matrix row at a time, without building the columns: with
# row_ab the input pixels that kernel offset (a, b) reads, dW[:, a, b] = <dY, row_ab> and dX
# gets w[:, a, b] * dY added at row_ab's pixels. (Their forward stays im2col + GEMM: done
# row by row it measured no faster, as NumPy cannot fuse the kH*kW multiply-adds.)
#
# Every phase of the stride (pixels (p::s_h, q::s_w) of the padded input) is laid out as its
# own plane, so that tap (a, b) of output (i, j) is the pixel (i + o_a, j + o_b) of one phase
# plane: row_ab is a unit-stride window of that plane, whatever the stride and dilation. One
# image's planes at a time, so the memory stays about one image's input.


@dataclass(frozen=True)
class _PhaseGrid:
    """Where each kernel tap reads in the phase planes of a strided, dilated window."""

    phases: tuple[int, int]      # stride (s_h, s_w): s_h * s_w phase planes
    plane_hw: tuple[int, int]    # size of one phase plane
    taps: tuple[tuple[int, int, int], ...]   # per tap (a, b): (phase index, row, column offset)

    @classmethod
    def of(cls, geom):
        (sh, sw), (dh, dw), (hp, wp) = geom.stride, geom.dilation, geom.padded_hw
        taps = tuple(((a * dh % sh) * sw + b * dw % sw, a * dh // sh, b * dw // sw)
                     for a in range(geom.kernel[0]) for b in range(geom.kernel[1]))
        return cls((sh, sw), (-(-hp // sh), -(-wp // sw)), taps)

    def split(self, xp):
        """(N, C, Hp, Wp) padded input -> (N, C, s_h*s_w, H_g, W_g) phase planes (zeros
        where a phase has no pixel)."""
        (sh, sw), (hg, wg) = self.phases, self.plane_hw
        n, c = xp.shape[:2]
        out = np.zeros((n, c, sh * sw, hg, wg), xp.dtype)
        for p in range(sh):
            for q in range(sw):
                ph = xp[:, :, p::sh, q::sw]
                out[:, :, p * sw + q, :ph.shape[2], :ph.shape[3]] = ph
        return out

    def merge(self, planes, hw):
        """Adjoint of :meth:`split`: phase planes (N, C, s_h*s_w, H_g, W_g) back to the
        (N, C, Hp, Wp) padded layout (each padded pixel lives in exactly one plane)."""
        sh, sw = self.phases
        out = np.empty(planes.shape[:2] + hw, planes.dtype)
        for p in range(sh):
            for q in range(sw):
                ph = out[:, :, p::sh, q::sw]
                ph[...] = planes[:, :, p * sw + q, :ph.shape[2], :ph.shape[3]]
        return out


#: target size of one block of the depthwise gradient rows (bytes): it and its temporary stay in L2
DEPTHWISE_BLOCK_BYTES = 256 * 2**10


def _is_depthwise(w, groups):
    return groups > 1 and w.shape[1] == 1


def _depthwise_blocks(n, c, plane_bytes):
    """``(image, c0, c1)`` blocks of channels whose output planes fill about
    :data:`DEPTHWISE_BLOCK_BYTES` (at least one channel)."""
    step = max(1, DEPTHWISE_BLOCK_BYTES // max(plane_bytes, 1))
    for i in range(n):
        for c0 in range(0, c, step):
            yield i, c0, min(c, c0 + step)


def _depthwise_backward(dy, x, w, geom, padding_mode):
    n, c = x.shape[:2]
    m = w.shape[0] // c                         # channel multiplier
    grid = _PhaseGrid.of(geom)
    wt = w.reshape(c, m, -1)
    ho, wo = geom.out_hw
    dy5 = dy.reshape(n, c, m, ho, wo)
    dx = np.empty(x.shape, x.dtype)
    dw = np.zeros((c, m, len(grid.taps)), x.dtype)
    tmp = np.empty(c * ho * wo, x.dtype)
    for i in range(n):                          # one image's planes at a time: bounded memory
        planes = grid.split(win.pad(x[i:i + 1], geom.full_pads, padding_mode))[0]
        dplanes = np.zeros_like(planes)
        for _, c0, c1 in _depthwise_blocks(1, c, m * ho * wo * x.itemsize):
            dyb = dy5[i, c0:c1]                 # (cb, m, H_out, W_out)
            t = tmp[:(c1 - c0) * ho * wo].reshape(c1 - c0, ho, wo)
            for k, (phase, oa, ob) in enumerate(grid.taps):
                # only the pixels the tap reads: an inf elsewhere must not meet a zero of dY
                row = planes[c0:c1, phase, oa:oa + ho, ob:ob + wo]
                dw[c0:c1, :, k] += np.einsum("cmhw,chw->cm", dyb, row)
                if m == 1:
                    np.multiply(dyb[:, 0], wt[c0:c1, 0, k, None, None], out=t)
                else:
                    np.einsum("cmhw,cm->chw", dyb, wt[c0:c1, :, k], out=t)
                target = dplanes[c0:c1, phase, oa:oa + ho, ob:ob + wo]
                target += t
        dxp = grid.merge(dplanes[None], geom.padded_hw)
        dx[i] = win.pad_backward(dxp, geom.full_pads, padding_mode)[0]
    return dx, dw.reshape(w.shape), dy.sum(axis=(0, 2, 3))


#: fold the bias into the GEMM (a row of ones under the columns) when K = C_in*kH*kW is at
#: most this: there the separate bias pass over the output costs 3-18 % (conv1_1 to
#: conv2_x of VGG-16, measured as bench/engine.py does); at K = 4608 the odd K + 1 made the
#: GEMM slower than the pass it saves.
FOLD_BIAS_MAX_K = 2048


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """2-D convolution (cross-correlation, as ``torch.nn.functional.conv2d``).

    x: (N, C_in, H, W); w: (C_out, C_in/groups, kH, kW); b: (C_out,) or None.
    Returns y: (N, C_out, H_out, W_out) in x's dtype (float32 or float64; w and b are cast).
    ``stride``, ``padding``, ``dilation`` are ints or pairs; ``padding`` may also be
    ``'same'`` or ``'valid'``; ``padding_mode`` is zeros, reflect, replicate or circular.

    im2col + one GEMM per group (``(G, C_out/G, K_g) @ (G, K_g, L)``, one batched matmul),
    blocked over images / output rows so the columns stay cache sized and bounded in memory
    (:func:`archstat.engine.im2col.blocks`). 1x1 stride-1 unpadded convs skip im2col. With
    groups 1 and a small K the bias rides in the GEMM (:data:`FOLD_BIAS_MAX_K`).
    """
    x, w, b, g = _conv_args(x, w, b, groups, padding_mode)
    geom = win.geometry(x.shape[2:], w.shape[2:], stride, padding, dilation)
    n, c = x.shape[:2]
    c_out = w.shape[0]
    ho, wo = geom.out_hw
    wm = w.reshape(g, c_out // g, -1)
    bg = None if b is None else b.reshape(g, c_out // g, 1)
    y = np.empty((n, c_out, ho, wo), x.dtype)
    fold_bias = (bg is not None and g == 1 and not geom.is_pointwise
                 and wm.shape[2] <= FOLD_BIAS_MAX_K)
    if fold_bias:
        wm = np.concatenate([wm, bg], axis=2)   # (1, C_out, K + 1): bias as the last column
        bg = None
    if geom.is_pointwise:
        yv = y.reshape(n, g, c_out // g, ho * wo)
        np.matmul(wm, x.reshape(n, g, c // g, ho * wo), out=yv)
        if bg is not None:
            yv += bg
        return y
    outbuf = None
    for (n0, n1, r0, r1), cols in _column_blocks(x, geom, g, padding_mode, fold_bias):
        if n1 - n0 == 1:  # a band of rows of one image: the GEMM writes straight into y
            out = y[n0].reshape(g, c_out // g, ho * wo)[:, :, r0 * wo:r1 * wo]
            np.matmul(wm, cols, out=out)
            if bg is not None:
                out += bg
            continue
        # whole images: (G, C_out/G, (n, i, j)) -> (n, C_out, i, j), the bias added on the way
        if outbuf is None or outbuf.shape[2] < cols.shape[2]:  # grown only if a later block is larger
            outbuf = np.empty(wm.shape[:2] + cols.shape[2:], x.dtype)
        out = np.matmul(wm, cols, out=outbuf[:, :, :cols.shape[2]])
        out = out.reshape(c_out, n1 - n0, ho, wo).transpose(1, 0, 2, 3)
        if bg is None:
            y[n0:n1] = out
        else:
            np.add(out, bg.reshape(c_out, 1, 1), out=y[n0:n1])
    return y


def conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """Gradients of :func:`conv2d`: returns ``(dx, dw, db)`` in x's dtype.

    dy: (N, C_out, H_out, W_out). ``db`` is ``dy`` summed over (N, H_out, W_out) (return it
    or ignore it when the conv has no bias). Per column block, with the forward's columns
    rebuilt (so nothing the size of the columns is cached between passes):
    ``dW += dY_blk @ cols^T`` and ``dcols = W^T @ dY_blk``, then col2im; with zero padding
    straight into dx (:func:`archstat.engine.im2col.col2im_unpadded`), with the other modes
    into a padded gradient folded back by :func:`archstat.engine.im2col.pad_backward`.
    """
    x, w, _, g = _conv_args(x, w, None, groups, padding_mode)
    dy = win.check_array(dy, "dy", 4, x.dtype)
    geom = win.geometry(x.shape[2:], w.shape[2:], stride, padding, dilation)
    n, c = x.shape[:2]
    c_out = w.shape[0]
    ho, wo = geom.out_hw
    if dy.shape != (n, c_out, ho, wo):
        raise ArchstatError(f"dy must have shape {(n, c_out, ho, wo)}, got {dy.shape}", field="dy")
    if _is_depthwise(w, g):
        return _depthwise_backward(dy, x, w, geom, padding_mode)
    cog = c_out // g
    wm = w.reshape(g, cog, -1)
    wt = wm.transpose(0, 2, 1)
    if geom.is_pointwise:
        db = dy.sum(axis=(0, 2, 3))
        dyv = dy.reshape(n, g, cog, ho * wo)
        xv = x.reshape(n, g, c // g, ho * wo)
        dw = np.matmul(dyv, xv.transpose(0, 1, 3, 2)).sum(axis=0)
        dx = np.matmul(wt, dyv).reshape(x.shape)
        return dx, dw.reshape(w.shape), db
    dw = np.zeros(wm.shape, x.dtype)
    db = np.zeros((g, cog), x.dtype)
    if padding_mode == "zeros":   # col2im straight into dx: no padded gradient to crop
        dx = np.zeros(x.shape, x.dtype)
    else:
        dxp = np.zeros((n, c) + geom.padded_hw, x.dtype)
    for block, cols in _column_blocks(x, geom, g, padding_mode):
        n0, n1, r0, r1 = block
        if n1 - n0 == 1:
            dyb = dy[n0].reshape(g, cog, ho * wo)[:, :, r0 * wo:r1 * wo]
        else:
            dyb = dy[n0:n1].reshape(n1 - n0, g, cog, ho * wo).transpose(1, 2, 0, 3)
            dyb = dyb.reshape(g, cog, -1)
        db += dyb.sum(axis=-1)   # while the block is in cache
        dw += np.matmul(dyb, cols.transpose(0, 2, 1))
        dcols = win.cols_view(np.matmul(wt, dyb), c, geom, n1 - n0)
        if padding_mode == "zeros":
            win.col2im_unpadded(dcols, geom, dx, block)
        else:
            win.col2im(dcols, geom, dxp, block)
    if padding_mode != "zeros":
        dx = win.pad_backward(dxp, geom.full_pads, padding_mode)
    return dx, dw.reshape(w.shape), db.reshape(c_out)


def _lc_args(x, w, b, padding_mode):
    x = win.check_array(x, "x", 4)
    w = np.ascontiguousarray(win.check_array(w, "w", 6, x.dtype))
    if b is not None:
        b = win.check_array(b, "b", 3, x.dtype)
    if padding_mode not in PADDING_MODES:
        raise ArchstatError(f"unknown padding_mode {padding_mode!r}", field="padding_mode",
                            hint=f"use one of {', '.join(PADDING_MODES)}")
    return x, w, b


def _lc_geometry(x, w, stride, padding, dilation):
    geom = win.geometry(x.shape[2:], w.shape[4:], stride, padding, dilation)
    expected = geom.out_hw + (w.shape[2], x.shape[1]) + geom.kernel
    if w.shape != expected:
        raise ArchstatError(f"weight must have shape {expected} [H_out, W_out, C_out, C_in, kH, "
                            f"kW] for this input, got {w.shape}", field="w")
    return geom


def _lc_cols(x, geom, padding_mode, n0, n1):
    """Per-location columns ``(H_out*W_out, C*kH*kW, n)`` of images ``n0:n1``."""
    xp = win.pad(x[n0:n1], geom.full_pads, padding_mode)
    p = geom.out_hw[0] * geom.out_hw[1]
    cols = np.empty(geom.out_hw + (x.shape[1],) + geom.kernel + (n1 - n0,), x.dtype)
    np.copyto(cols, win.windows(xp, geom).transpose(2, 3, 1, 4, 5, 0))
    return cols.reshape(p, -1, n1 - n0), xp.shape


def _lc_batch_step(x, geom):
    col_bytes = x.shape[1] * geom.kernel[0] * geom.kernel[1] * geom.out_hw[0] * geom.out_hw[1]
    return max(1, win.COL_BUDGET_BYTES // (col_bytes * x.itemsize))


def locally_connected2d(x, w, b=None, stride=1, padding=0, dilation=1, padding_mode="zeros"):
    """Locally connected 2-D layer: a conv whose filter bank differs at every output location.

    x: (N, C_in, H, W); w: (H_out, W_out, C_out, C_in, kH, kW); b: (C_out, H_out, W_out).
    y[n, o, i, j] = sum_{c,a,b} w[i, j, o, c, a, b] x_pad[n, c, i*s + a*d, j*s + b*d] + b[o, i, j].
    The same columns as conv2d, grouped by location: one batched GEMM over the H_out*W_out
    locations, ``(P, C_out, K) @ (P, K, N)``.
    """
    x, w, b = _lc_args(x, w, b, padding_mode)
    geom = _lc_geometry(x, w, stride, padding, dilation)
    n = x.shape[0]
    ho, wo = geom.out_hw
    c_out = w.shape[2]
    wl = w.reshape(ho * wo, c_out, -1)
    y = np.empty((n, c_out, ho, wo), x.dtype)
    step = _lc_batch_step(x, geom)
    for n0 in range(0, n, step):
        n1 = min(n, n0 + step)
        cols, _ = _lc_cols(x, geom, padding_mode, n0, n1)
        yl = np.matmul(wl, cols)  # (P, C_out, n)
        y[n0:n1] = yl.reshape(ho, wo, c_out, n1 - n0).transpose(3, 2, 0, 1)
    if b is not None:
        y += b
    return y


def locally_connected2d_backward(dy, x, w, stride=1, padding=0, dilation=1, padding_mode="zeros"):
    """Gradients of :func:`locally_connected2d`: returns ``(dx, dw, db)`` in x's dtype.

    Per location p: dW_p = dY_p @ cols_p^T, dcols_p = W_p^T @ dY_p (batched over p), then
    col2im; ``db`` is ``dy`` summed over the batch, shape (C_out, H_out, W_out).
    """
    x, w, _ = _lc_args(x, w, None, padding_mode)
    dy = win.check_array(dy, "dy", 4, x.dtype)
    geom = _lc_geometry(x, w, stride, padding, dilation)
    n = x.shape[0]
    ho, wo = geom.out_hw
    c_out = w.shape[2]
    if dy.shape != (n, c_out, ho, wo):
        raise ArchstatError(f"dy must have shape {(n, c_out, ho, wo)}, got {dy.shape}", field="dy")
    wl = w.reshape(ho * wo, c_out, -1)
    dw = np.zeros(wl.shape, x.dtype)
    dxp = None
    step = _lc_batch_step(x, geom)
    kh, kw = geom.kernel
    for n0 in range(0, n, step):
        n1 = min(n, n0 + step)
        cols, xp_shape = _lc_cols(x, geom, padding_mode, n0, n1)
        if dxp is None:
            dxp = np.zeros((n,) + xp_shape[1:], x.dtype)
        dyl = dy[n0:n1].transpose(2, 3, 1, 0).reshape(ho * wo, c_out, n1 - n0)
        dw += np.matmul(dyl, cols.transpose(0, 2, 1))
        dcols = np.matmul(wl.transpose(0, 2, 1), dyl)  # (P, K, n)
        dcols = dcols.reshape(ho, wo, x.shape[1], kh, kw, n1 - n0).transpose(5, 2, 0, 1, 3, 4)
        win.col2im(dcols, geom, dxp, (n0, n1, 0, ho))
    dx = win.pad_backward(dxp, geom.full_pads, padding_mode)
    return dx, dw.reshape(w.shape), dy.sum(axis=0)
