"""Convolution family: ``conv2d`` (shared weights) and ``locally_connected2d`` (unshared).

Shapes (NCHW, as PyTorch): input ``(N, C_in, H, W)``, output ``(N, C_out, H_out, W_out)``
with ``H_out = floor((H + p_top + p_bottom - d*(k-1) - 1) / s) + 1`` (:mod:`.window`).
Conv weights are ``[C_out, C_in/groups, kH, kW]``; locally connected weights are
``[H_out, W_out, C_out, C_in, kH, kW]``, one filter bank per output location.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ArchstatError
from . import im2col as win
# kept in their own modules (split past ~400 lines); re-exported here, the family's home
from .conv_depthwise import (depthwise_backward, depthwise_forward, depthwise_workspace, direct_forward_pays,
                             is_depthwise)
from .conv_local import lc_workspace, locally_connected2d, locally_connected2d_backward
from .outbuf import reshaped, usable
from . import conv_depthwise as dw, conv_winograd as wino
from .conv_winograd import (ALGORITHMS as WINOGRAD, check_applicable, multiply_fraction, winograd_conv2d,
                            winograd_conv2d_backward, workspace_bytes as winograd_workspace)
from .registry import (INFERRED, REQUIRED, affine_flops, check_declared, declare_family, Field, kernel,
                       LayerType, numel, register, require_rank, Shape, Window)
from .ufunc_buffers import ufunc_buffers
from .window import Pads, output_hw, resolve_padding

FAMILY = declare_family("conv", "convolution", rank=0)

PADDING_MODES = win.PAD_MODES   # zeros, reflect, replicate, circular (PyTorch's padding_mode)

#: the conv2d algorithms: im2col + GEMM (any layer), Winograd F(2x2,3x3) and F(4x4,3x3)
#: (3x3, stride 1, :mod:`.conv_winograd`)
ALGORITHMS = ("im2col",) + tuple(WINOGRAD)


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
    family = FAMILY
    #: the forward kernel takes ``workspace=``, a cap (:attr:`RunContext.workspace`)
    caps_workspace = False

    def flops(self, in_shapes, out_shape, attrs):
        return affine_flops(self.macs(in_shapes, out_shape, attrs), out_shape, attrs["bias"])

    def check_input(self, in_shapes: Sequence[Shape], attrs: Mapping[str, Any]) -> Shape:
        (x,) = in_shapes
        require_rank(x, 4, self.name)
        check_declared(attrs, "in_channels", x[1], "channels")
        return x

    def window(self, in_shapes, attrs):
        pads = resolve_padding(attrs["padding"], attrs["kernel_size"], attrs["dilation"], attrs["stride"])
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
        if ctx.algorithm is not None:   # the executor's choice among self.algorithms(...)
            kw["algorithm"] = ctx.algorithm
        into = {} if ctx.out is None or not self.writes_out else {"out": ctx.out}
        if ctx.workspace is not None and self.caps_workspace:
            into["workspace"] = ctx.workspace
        w, b = params["weight"], params.get("bias")
        if ctx.affine is not None:
            w, b = self.fold_affine(w, b, *ctx.affine)
        y = self.kernels()[0](x, w, b, **kw, **into)
        return y, (x, w, b is not None, kw)

    def fold_affine(self, w, b, scale, shift):
        """Weights and bias that give ``conv(x) * scale + shift`` per output channel."""
        raise NotImplementedError

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
    writes_out = True
    caps_workspace = True
    absorbs_affine = True
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

    def kernels(self):
        return conv2d, conv2d_backward

    def kernel_kwargs(self, attrs):
        return dict(super().kernel_kwargs(attrs), groups=attrs["groups"])

    def fold_affine(self, w, b, scale, shift):
        # output channel o is sum(w[o] * x) + b[o]: scaled, it is sum((w[o] s_o) * x) + b[o] s_o
        return w * scale.reshape(-1, 1, 1, 1), shift if b is None else b * scale + shift

    def absorbed_attrs(self, attrs):
        return {**attrs, "bias": True}

    def absorb_bytes(self, in_shapes, attrs, itemsize):
        return itemsize * (numel(self.param_shapes(in_shapes, attrs)["weight"]) + attrs["out_channels"])

    algorithm_names = ALGORITHMS

    def algorithms(self, in_shapes, attrs):
        try:   # Winograd's conditions, stated once (conv_winograd.check_applicable)
            for name in WINOGRAD:
                check_applicable(name, attrs["kernel_size"], attrs["stride"], attrs["dilation"], attrs["groups"],
                                 attrs["padding_mode"])
        except ArchstatError:
            return ()
        return ALGORITHMS

    def algorithm_work(self, algorithm, attrs):
        return multiply_fraction(algorithm) if algorithm in WINOGRAD else 1.0

    def workspace_bytes(self, in_shapes, attrs, itemsize, algorithm=None, limit=None):
        w_shape = self.param_shapes(in_shapes, attrs)["weight"]
        return conv2d_workspace(in_shapes[0], w_shape, attrs["bias"], **self.kernel_kwargs(attrs),
                                algorithm=algorithm or "im2col", itemsize=itemsize, workspace=limit)


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

    def kernels(self):
        return locally_connected2d, locally_connected2d_backward

    def workspace_bytes(self, in_shapes, attrs, itemsize, algorithm=None, limit=None):
        w_shape = self.param_shapes(in_shapes, attrs)["weight"]
        return lc_workspace(in_shapes[0], w_shape, **self.kernel_kwargs(attrs), itemsize=itemsize)


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
    win.check_padding_mode(padding_mode)
    return x, w, b, int(groups)


def _winograd_tile(algorithm, kernel, stride, dilation, groups, padding_mode):
    """None for im2col, else the Winograd tile; ArchstatError for an unknown algorithm or
    one that does not apply to the layer (``kernel``: (kH, kW))."""
    if algorithm == "im2col":
        return None
    if not isinstance(algorithm, str) or algorithm not in WINOGRAD:
        raise ArchstatError(f"unknown algorithm {algorithm!r}", field="algorithm",
                            hint=f"use one of {', '.join(ALGORITHMS)}")
    return check_applicable(algorithm, kernel, stride, dilation, groups, padding_mode)


#: the largest kernel (kH*kW taps) whose zero-padded columns are built tap by tap
#: (:func:`archstat.layers.im2col.im2col_unpadded`); measured on 5x5 (25 taps, C = 32) the
#: per-tap copies were 1.3x slower than padding the input once
UNPADDED_MAX_TAPS = 9


def _per_tap(geom, padding_mode):
    """Whether zero padding is left unbuilt, the columns copied tap by tap (a small kernel,
    :data:`UNPADDED_MAX_TAPS`); otherwise the whole input is padded once (the padded copy
    is x itself when there is nothing to pad)."""
    kh, kw = geom.kernel
    return (padding_mode == "zeros" and kh * kw <= UNPADDED_MAX_TAPS
            and geom.full_pads != ((0, 0), (0, 0)))


def _column_plan(n, c, geom, itemsize, block_bytes=None):
    """The column blocks of im2col over ``n`` images of ``c`` channels (an iterator), and the
    first block: the widest (blocks shrink only at the end), None for no images.
    ``block_bytes``: the aim a workspace cap chose (:class:`archstat.layers.im2col.Blocking`; None: the default)."""
    kh, kw = geom.kernel
    col_bytes = c * kh * kw * itemsize
    return win.blocks(n, geom, col_bytes, block_bytes), next(win.blocks(n, geom, col_bytes, block_bytes), None)


def _columns(block, geom):
    """Output positions (columns) of a block ``(n0, n1, r0, r1)``."""
    if block is None:
        return 0
    n0, n1, r0, r1 = block
    return (n1 - n0) * (r1 - r0) * geom.out_hw[1]


def _column_blocks(x, geom, groups, padding_mode, ones_row=False, block_bytes=None):
    """Blocked im2col of ``x``: yield ``(block, cols)`` per block of output rows, ``cols``
    shaped ``(G, K_g, L)``. Zero padding of a small kernel is never materialised
    (:func:`archstat.layers.im2col.im2col_unpadded`); otherwise the whole input is padded
    once. One column buffer serves every block. With ``ones_row`` (groups 1 only) the
    columns get one more row of ones, so that a weight with the bias as its last column
    adds the bias inside the GEMM (CS231n's bias trick) instead of in one more pass over
    the output. ``block_bytes``: smaller blocks (:class:`archstat.layers.im2col.Blocking`'s aim).
    """
    n, c = x.shape[:2]
    kh, kw = geom.kernel
    k = c * kh * kw
    plan, first = _column_plan(n, c, geom, x.itemsize, block_bytes)
    colbuf = np.empty(_columns(first, geom) * (k + ones_row), x.dtype)
    # zero padding of a small kernel: copied tap by tap, the padding never built; otherwise
    # one copy of the (padded) input's windows, faster when there are many taps (AlexNet's
    # 11x11: 2.4x) or nothing to pad
    per_tap = _per_tap(geom, padding_mode)
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


#: fold the bias into the GEMM (a row of ones under the columns) when K = C_in*kH*kW is at
#: most this: there the separate bias pass over the output costs 3-18 % (conv1_1 to
#: conv2_x of VGG-16, measured as bench/engine.py does); at K = 4608 the odd K + 1 made the
#: GEMM slower than the pass it saves.
FOLD_BIAS_MAX_K = 2048


def _folds_bias(w_shape, groups, geom):
    """Whether the bias rides in the GEMM (:data:`FOLD_BIAS_MAX_K`)."""
    return groups == 1 and not geom.is_pointwise and math.prod(w_shape[1:]) <= FOLD_BIAS_MAX_K


def _direct_depthwise(x_shape, w_shape, groups, geom):
    """Whether a depthwise conv takes the direct forward (:mod:`.conv_depthwise`)."""
    return (groups > 1 and w_shape[1] == 1 and not geom.is_pointwise
            and direct_forward_pays(x_shape[0], geom))


def conv2d_workspace(x_shape, w_shape, has_bias, stride=1, padding=0, dilation=1, groups=1,
                     padding_mode="zeros", algorithm="im2col", itemsize=4, workspace=None):
    """Bytes :func:`conv2d` allocates beyond its output while it runs, at their peak, for a
    C-contiguous input of ``x_shape`` and weights of ``w_shape`` (the same arguments,
    shapes instead of arrays; ``workspace`` the same cap): Winograd's work buffers
    (:func:`archstat.layers.conv_winograd.workspace_bytes`), the direct depthwise forward's
    block scratch, or im2col's: the weight with the bias as a column, the column buffer, the
    padded input, the GEMM's output for blocks of several images, and NumPy's buffers for a
    bias added in a pass of its own."""
    args = (tuple(x_shape), tuple(w_shape), bool(has_bias), _key(stride), _key(padding), _key(dilation), int(groups),
            padding_mode, algorithm, int(itemsize))
    return _workspace(*args, _blocking(*args, win.check_cap(workspace)))


def _key(value):
    """A hashable form of a conv argument (an int, a string or nested pairs)."""
    return tuple(_key(v) for v in value) if isinstance(value, (list, tuple)) else value


def _blocking(*args):
    """:func:`_blocking_for` with the block constants it depends on in its cache key."""
    return _blocking_for(*args, (win.BLOCK_BYTES, win.MIN_BLOCK_COLS, win.COL_BUDGET_BYTES, wino.BLOCK_BYTES,
                                 wino.MIN_BLOCK_TILES, wino.FILTER_CHUNK_BYTES, dw.PLANE_BLOCK_BYTES,
                                 dw.CHANNELS_LAST_BLOCK_BYTES, dw.CHANNELS_LAST_MAX_PLANE))


@functools.lru_cache(maxsize=4096)
def _blocking_for(x_shape, w_shape, has_bias, stride, padding, dilation, groups, padding_mode, algorithm, itemsize,
                  workspace, constants):
    """How a conv cuts its work to keep its workspace under ``workspace`` bytes
    (:class:`archstat.layers.im2col.Blocking`; its defaults for None or when they fit): first
    the largest blocks that fit with the defaults otherwise (Winograd's filters transformed in
    their usual chunks, once per chunk, im2col's bias in the GEMM); where even one row does not
    fit that way, the filter chunks shrink with the blocks (each chunk is then transformed
    again for every block) and the bias is added in a pass of its own (no weight copy);
    where nothing fits, the smallest blocks. Cached per layer shape (and ``constants``, the
    kernels' block settings), as the executor runs the same shapes again and again."""
    args = (x_shape, w_shape, has_bias, stride, padding, dilation, groups, padding_mode, algorithm, itemsize)
    if workspace is None or _workspace(*args, win.DEFAULT_BLOCKING) <= workspace:
        return win.DEFAULT_BLOCKING
    geom = win.geometry(tuple(x_shape[2:]), tuple(w_shape[2:]), stride, padding, dilation)
    default = (wino.BLOCK_BYTES if algorithm in WINOGRAD else
               dw.PLANE_BLOCK_BYTES if _direct_depthwise(x_shape, w_shape, groups, geom) else win.BLOCK_BYTES)
    stages = (lambda aim: win.Blocking(aim),
              lambda aim: win.Blocking(aim, max(1, wino.FILTER_CHUNK_BYTES * aim // default), fold_bias=False))
    for stage in stages:
        aim = win.fit_block(lambda a: _workspace(*args, stage(a)), workspace, default)
        if aim is not None:
            return stage(aim)
    return stages[-1](1)


def _workspace(x_shape, w_shape, has_bias, stride, padding, dilation, groups, padding_mode, algorithm, itemsize,
               blocking):
    """:func:`conv2d_workspace` when the conv cuts its work by ``blocking``."""
    g = int(groups)
    tile = _winograd_tile(algorithm, tuple(w_shape[2:]), stride, dilation, g, padding_mode)
    if tile is not None:
        return winograd_workspace(x_shape, w_shape[0], padding, tile, itemsize, blocking.aim, blocking.chunk, has_bias)
    geom = win.geometry(tuple(x_shape[2:]), tuple(w_shape[2:]), stride, padding, dilation)
    if _direct_depthwise(x_shape, w_shape, g, geom):
        return depthwise_workspace(x_shape, w_shape, geom, padding_mode, itemsize, blocking.aim, has_bias)
    n, c = x_shape[:2]
    c_out = w_shape[0]
    if geom.is_pointwise:
        # no columns; a bias is added in a pass of its own, which NumPy buffers (measured: one
        # buffer of at most np.getbufsize() elements, 27-35 kB in float32)
        return itemsize * ufunc_buffers(1, n * c_out * math.prod(geom.out_hw)) if has_bias else 0
    fold = has_bias and blocking.fold_bias and _folds_bias(w_shape, g, geom)
    weight = c_out * (math.prod(w_shape[1:]) + 1) if fold else 0
    _, first = _column_plan(n, c, geom, itemsize, blocking.aim)
    kh, kw = geom.kernel
    cols = _columns(first, geom) * (c * kh * kw + fold)
    per_tap = _per_tap(geom, padding_mode)
    padding = 0 if per_tap else win.pad_peak_elements(tuple(x_shape), geom.full_pads, padding_mode)
    padded = 0 if per_tap else win.pad_peak_elements(tuple(x_shape), geom.full_pads)
    # blocks of several images have the GEMM write a buffer first (bands of one image do not)
    gemm_out = c_out * _columns(first, geom) if first is not None and first[1] - first[0] > 1 else 0
    # a bias not in the GEMM is added over y's strided band of the block: NumPy buffers its
    # three operands (at most np.getbufsize() elements each)
    bias_pass = ufunc_buffers(3, c_out * _columns(first, geom)) if has_bias and not fold else 0
    return itemsize * (weight + cols + max(padding, padded + gemm_out) + bias_pass)


@kernel
def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
           algorithm="im2col", out=None, workspace=None):
    """2-D convolution (cross-correlation, as ``torch.nn.functional.conv2d``).

    x: (N, C_in, H, W); w: (C_out, C_in/groups, kH, kW); b: (C_out,) or None.
    Returns y: (N, C_out, H_out, W_out) in x's dtype (float32 or float64; w and b are cast).
    ``stride``, ``padding``, ``dilation`` are ints or pairs; ``padding`` may also be
    ``'same'`` or ``'valid'``; ``padding_mode`` is zeros, reflect, replicate or circular.

    im2col + one GEMM per group (``(G, C_out/G, K_g) @ (G, K_g, L)``, one batched matmul),
    blocked over images / output rows so the columns stay cache sized and bounded in memory
    (:func:`archstat.layers.im2col.blocks`). 1x1 stride-1 unpadded convs skip im2col. With
    groups 1 and a small K the bias rides in the GEMM (:data:`FOLD_BIAS_MAX_K`).
    ``algorithm`` (:data:`ALGORITHMS`): ``'winograd2'`` / ``'winograd4'`` run 3x3 stride-1
    convs by :func:`archstat.layers.conv_winograd.winograd_conv2d` (ArchstatError on others).
    ``out``: an array to write y into (a slice of a concatenation, :mod:`archstat.layers.outbuf`),
    used by every path when it fits; the result is y either way. ``workspace``: a cap in bytes
    on what im2col and Winograd allocate besides y (:func:`conv2d_workspace`; None: the
    default blocks): their blocks are the largest that fit (:func:`_blocking_for`), down to
    one output row (one tile row) of one image, one channel for the direct depthwise path.
    """
    x, w, b, g = _conv_args(x, w, b, groups, padding_mode)
    cap = win.check_cap(workspace)
    blocking = win.DEFAULT_BLOCKING if cap is None else _blocking(
        x.shape, w.shape, b is not None, _key(stride), _key(padding), _key(dilation), g, padding_mode, algorithm,
        x.itemsize, cap)
    tile = _winograd_tile(algorithm, w.shape[2:], stride, dilation, g, padding_mode)
    if tile is not None:
        return winograd_conv2d(x, w, b, padding, tile, out=out, block_bytes=blocking.aim, chunk_bytes=blocking.chunk)
    geom = win.geometry(x.shape[2:], w.shape[2:], stride, padding, dilation)
    if _direct_depthwise(x.shape, w.shape, g, geom):
        return depthwise_forward(x, w, b, geom, padding_mode, out=out, block_bytes=blocking.aim)
    n, c = x.shape[:2]
    c_out = w.shape[0]
    ho, wo = geom.out_hw
    wm = w.reshape(g, c_out // g, -1)
    bg = None if b is None else b.reshape(g, c_out // g, 1)
    y = (out if usable(out, (n, c_out, ho, wo), x.dtype, (n, g, c_out // g, ho * wo))
         else np.empty((n, c_out, ho, wo), x.dtype))
    fold_bias = bg is not None and blocking.fold_bias and _folds_bias(w.shape, g, geom)
    if fold_bias:
        wm = np.concatenate([wm, bg], axis=2)   # (1, C_out, K + 1): bias as the last column
        bg = None
    if geom.is_pointwise:
        yv = reshaped(y, (n, g, c_out // g, ho * wo))
        np.matmul(wm, x.reshape(n, g, c // g, ho * wo), out=yv)
        if bg is not None:
            yv += bg
        return y
    outbuf = None
    for (n0, n1, r0, r1), cols in _column_blocks(x, geom, g, padding_mode, fold_bias, blocking.aim):
        if n1 - n0 == 1:  # a band of rows of one image: the GEMM writes straight into y
            band = reshaped(y[n0], (g, c_out // g, ho * wo))[:, :, r0 * wo:r1 * wo]
            np.matmul(wm, cols, out=band)
            if bg is not None:
                band += bg
            continue
        # whole images: (G, C_out/G, (n, i, j)) -> (n, C_out, i, j), the bias added on the way
        if outbuf is None or outbuf.shape[2] < cols.shape[2]:  # grown only if a later block is larger
            outbuf = np.empty(wm.shape[:2] + cols.shape[2:], x.dtype)
        part = np.matmul(wm, cols, out=outbuf[:, :, :cols.shape[2]])
        part = part.reshape(c_out, n1 - n0, ho, wo).transpose(1, 0, 2, 3)
        if bg is None:
            y[n0:n1] = part
        else:
            np.add(part, bg.reshape(c_out, 1, 1), out=y[n0:n1])
    return y


@kernel
def conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros",
                    algorithm="im2col"):
    """Gradients of :func:`conv2d`: returns ``(dx, dw, db)`` in x's dtype.

    dy: (N, C_out, H_out, W_out). ``db`` is ``dy`` summed over (N, H_out, W_out) (return it
    or ignore it when the conv has no bias). Per column block, with the forward's columns
    rebuilt (so nothing the size of the columns is cached between passes):
    ``dW += dY_blk @ cols^T`` and ``dcols = W^T @ dY_blk``, then col2im; with zero padding
    straight into dx (:func:`archstat.layers.im2col.col2im_unpadded`), with the other modes
    into a padded gradient folded back by :func:`archstat.layers.im2col.pad_backward`.
    ``algorithm`` as :func:`conv2d` (:func:`archstat.layers.conv_winograd.winograd_conv2d_backward`).
    """
    x, w, _, g = _conv_args(x, w, None, groups, padding_mode)
    dy = win.check_array(dy, "dy", 4, x.dtype)
    geom = win.geometry(x.shape[2:], w.shape[2:], stride, padding, dilation)
    n, c = x.shape[:2]
    c_out = w.shape[0]
    ho, wo = geom.out_hw
    if dy.shape != (n, c_out, ho, wo):
        raise ArchstatError(f"dy must have shape {(n, c_out, ho, wo)}, got {dy.shape}", field="dy")
    tile = _winograd_tile(algorithm, w.shape[2:], stride, dilation, g, padding_mode)
    if tile is not None:
        return winograd_conv2d_backward(dy, x, w, padding, tile)
    if is_depthwise(w, g):
        return depthwise_backward(dy, x, w, geom, padding_mode)
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
