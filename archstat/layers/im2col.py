"""The one window primitive of the engine: padding, column matrices (im2col) and col2im.

Convolutions and locally connected layers see their input through :func:`windows`: a
strided view ``(N, C, H_out, W_out, kH, kW)`` of the padded input whose element
``[n, c, i, j, a, b]`` is ``x_pad[n, c, i*s_h + a*d_h, j*s_w + b*d_w]``, the lecture's
``x(r + a, c + b)`` with stride and dilation. Its adjoint is :func:`col2im`, which
scatter-adds columns back with one strided add per kernel offset ``(a, b)`` (9-15x faster
than ``np.add.at``: shared/reference/perf-anchors.md). With zero padding and a small kernel
the padded input is never built: :func:`im2col_unpadded` and :func:`col2im_unpadded` copy
and add only the taps that fall inside the input, along the runs :func:`taps_inside` and
:func:`run` give (pooling reads its taps the same way). Sizes come from
:mod:`archstat.layers.window` (``resolve_padding``, ``output_hw``): the output-size formula
is not written here again.

Padding modes (PyTorch's ``padding_mode``): ``zeros``, ``reflect`` (mirror without the edge
pixel), ``replicate`` (repeat the edge), ``circular`` (wrap around). Every mode is a
source-index map per axis, so the padding's backward (:func:`pad_backward`) is the same map
read the other way.

Memory: a column matrix is never built whole for a large input; :func:`blocks` cuts the
``N * H_out`` output rows into blocks whose columns stay under :data:`BLOCK_BYTES` (cache
sized, so the GEMM reads columns that were just written) and never over
:data:`COL_BUDGET_BYTES`. Measured on VGG-16's conv1_2 at batch 1 (2 cores): forward at
0.51 of its GEMM's speed with one whole column matrix, 0.76 with 8 MiB blocks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ArchstatError
from .fields import as_pair
from .window import Pads, effective_kernel, is_per_side, output_hw, resolve_padding

#: hard bound on one column buffer (bytes); a larger im2col is cut into blocks of the batch
COL_BUDGET_BYTES = 256 * 2**20
#: preferred size of one column block (bytes): small enough to stay in the last-level cache
#: between im2col and the GEMM that reads it (2-32 MiB measured alike; 256 MiB was slower)
BLOCK_BYTES = 8 * 2**20
#: but no block narrower than this many columns (GEMM efficiency falls for thin matrices)
MIN_BLOCK_COLS = 2048

PAD_MODES = ("zeros", "reflect", "replicate", "circular")
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# ----------------------------------------------------------------------- arguments

def sides(value: Any, name: str = "padding") -> tuple[tuple[int, int], tuple[int, int]]:
    """Per-side padding ``((top, bottom), (left, right))`` of non-negative ints; ArchstatError otherwise."""
    top_bottom, left_right = (pair(v, name, 0) for v in value)
    return top_bottom, left_right


def pair(value: Any, name: str, minimum: int = 0) -> tuple[int, int]:
    """An int or a pair of ints as ``(h, w)``; ArchstatError otherwise (public API boundary)."""
    out = as_pair(value)
    if out is None:
        raise ArchstatError(f"expected an integer or a pair of integers, got {value!r}", field=name)
    if min(out) < minimum:
        raise ArchstatError(f"expected integers >= {minimum}, got {value!r}", field=name)
    return out


def check_array(x: Any, name: str, ndim: int, dtype: np.dtype | None = None) -> np.ndarray:
    """A float32/float64 array of rank ``ndim``; cast to ``dtype`` when given (no copy if same)."""
    x = np.asarray(x)
    if x.ndim != ndim:
        unbatched = ndim == 4 and x.ndim == 3
        raise ArchstatError(f"{name} must have {ndim} dimensions, got shape {x.shape}", field=name,
                            hint="an image without its batch axis (C, H, W): pass x[None] and take [0] of the "
                                 "result (the kernels are NCHW only, by design)" if unbatched else None)
    if dtype is None:
        if x.dtype not in DTYPES:
            raise ArchstatError(f"{name} must be float32 or float64, got {x.dtype}", field=name,
                                hint="cast it with .astype(np.float32)")
        return x
    return x.astype(dtype, copy=False)


# ------------------------------------------------------------------------ geometry

@dataclass(frozen=True)
class Geometry:
    """One 2-D sliding window over an input of spatial size ``in_hw``.

    ``pads`` are the spec's per-side pads ``((top, bottom), (left, right))``; ``out_hw``
    comes from :func:`archstat.layers.window.output_hw`. With ``ceil_mode`` the last window
    may run past the padded input: ``extra`` is how many more rows/columns the padded array
    needs at the bottom/right so that every window is inside it (they are never counted:
    -inf for max, excluded from the average's divisor).
    """

    in_hw: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: Pads
    out_hw: tuple[int, int]

    @property
    def extent(self) -> tuple[int, int]:
        """Dilated kernel extent ``d*(k-1) + 1`` per axis."""
        return (effective_kernel(self.kernel[0], self.dilation[0]),
                effective_kernel(self.kernel[1], self.dilation[1]))

    @property
    def extra(self) -> tuple[int, int]:
        out = []
        for size, (lo, hi), k, s, o in zip(self.in_hw, self.pads, self.extent, self.stride,
                                           self.out_hw):
            out.append(max(0, (o - 1) * s + k - (size + lo + hi)))
        return out[0], out[1]

    @property
    def full_pads(self) -> Pads:
        """The pads actually applied: the spec's, plus ``extra`` at the bottom/right."""
        (t, b), (l, r) = self.pads
        eh, ew = self.extra
        return (t, b + eh), (l, r + ew)

    @property
    def padded_hw(self) -> tuple[int, int]:
        (t, b), (l, r) = self.full_pads
        return self.in_hw[0] + t + b, self.in_hw[1] + l + r

    @property
    def is_pointwise(self) -> bool:
        """1x1 kernel, stride 1, no padding: the column matrix is the input itself."""
        return (self.kernel == (1, 1) and self.stride == (1, 1)
                and self.pads == ((0, 0), (0, 0)))


def geometry(in_hw: tuple[int, int], kernel: Any, stride: Any = 1, padding: Any = 0,
             dilation: Any = 1, ceil_mode: bool = False) -> Geometry:
    """Normalise window arguments (int or pair; padding also ``'same'``/``'valid'``).

    Raises ArchstatError for bad values or a window that does not fit the input.
    """
    kernel = pair(kernel, "kernel_size", 1)
    stride = pair(stride, "stride", 1)
    dilation = pair(dilation, "dilation", 1)
    if not isinstance(padding, str):
        padding = sides(padding) if is_per_side(padding) else pair(padding, "padding", 0)
    pads = resolve_padding(padding, kernel, dilation, stride)
    out = output_hw(tuple(in_hw), kernel, stride, pads, dilation, ceil_mode)
    return Geometry(tuple(in_hw), kernel, stride, dilation, pads, out)


# ------------------------------------------------------------------------- padding

def _source_index(size: int, lo: int, hi: int, mode: str) -> np.ndarray:
    """For each padded position along one axis, the input position it copies (-1: constant).

    As PyTorch's ``padding_mode``: reflect mirrors about the edge pixel (``[2, 1 | 0 1 2 3 |
    2 1]``), replicate repeats it, circular wraps around.
    """
    j = np.arange(-lo, size + hi)
    if mode == "reflect":
        j = np.abs(j)
        j = np.where(j >= size, 2 * (size - 1) - j, j)
        if size == 1:
            j = np.zeros_like(j)
    elif mode == "replicate":
        j = np.clip(j, 0, size - 1)
    elif mode == "circular":
        j = j % size
    else:
        j = np.where((j < 0) | (j >= size), -1, j)
    return j


def check_padding_mode(mode: Any) -> str:
    """``mode`` when it is one of :data:`PAD_MODES`; ArchstatError otherwise."""
    if mode not in PAD_MODES:
        raise ArchstatError(f"unknown padding_mode {mode!r}", field="padding_mode",
                            hint=f"use one of {', '.join(PAD_MODES)}")
    return mode


def pad(x: np.ndarray, pads: Pads, mode: str = "zeros") -> np.ndarray:
    """Pad the last two axes of ``x`` by ``pads = ((top, bottom), (left, right))``.

    Returns ``x`` itself when there is nothing to pad, otherwise a new array.
    """
    (t, b), (l, r) = pads
    if t == b == l == r == 0:
        return x
    h, w = x.shape[-2:]
    if mode == "zeros":
        out = np.empty(x.shape[:-2] + (h + t + b, w + l + r), x.dtype)
        # zero only the border: the interior is written once, by the copy
        out[..., :t, :] = 0
        out[..., t + h:, :] = 0
        out[..., t:t + h, :l] = 0
        out[..., t:t + h, l + w:] = 0
        out[..., t:t + h, l:l + w] = x
        return out
    check_padding_mode(mode)
    out = np.take(x, _source_index(h, t, b, mode), axis=-2)
    return np.take(out, _source_index(w, l, r, mode), axis=-1)


def pad_backward(dxp: np.ndarray, pads: Pads, mode: str = "zeros") -> np.ndarray:
    """Adjoint of :func:`pad`: fold the gradient of the padded array back onto the input.

    Constant modes drop the border; the others add each border row/column onto the input
    row/column it was copied from (a loop over the few padded rows, not over pixels).
    """
    (t, b), (l, r) = pads
    if t == b == l == r == 0:
        return dxp
    h = dxp.shape[-2] - t - b
    w = dxp.shape[-1] - l - r
    if mode == "zeros":
        return np.ascontiguousarray(dxp[..., t:t + h, l:l + w])
    g = _fold(dxp, -2, t, h, _source_index(h, t, b, mode))
    return _fold(g, -1, l, w, _source_index(w, l, r, mode))


def _fold(g: np.ndarray, axis: int, lo: int, size: int, src: np.ndarray) -> np.ndarray:
    g = np.moveaxis(g, axis, 0)
    out = g[lo:lo + size].copy()
    for p in [*range(lo), *range(lo + size, g.shape[0])]:
        out[src[p]] += g[p]
    return np.moveaxis(out, 0, axis)


# ----------------------------------------------------------------- windows, columns

def pad_peak_elements(shape: tuple[int, ...], pads: Pads, mode: str = "zeros") -> int:
    """Elements :func:`pad` holds at its peak, its result included, for an input of
    ``shape``: the padded array; for the modes other than zeros also the array padded along
    the rows alone, from which it takes the columns. 0 when there is nothing to pad."""
    (t, b), (l, r) = pads
    if t == b == l == r == 0:
        return 0
    *lead, h, w = shape
    rows = math.prod(lead) * (h + t + b)
    return rows * (w + l + r) + (0 if mode == "zeros" else rows * w)


def windows(xp: np.ndarray, geom: Geometry, writeable: bool = False) -> np.ndarray:
    """Strided view ``(N, C, H_out, W_out, kH, kW)`` of a padded input (no copy).

    ``[n, c, i, j, a, b] = xp[n, c, i*s_h + a*d_h, j*s_w + b*d_w]``. With ``writeable``
    the view can be added into (each tap ``[..., a, b]`` touches distinct pixels).
    """
    (ho, wo), (sh, sw), (dh, dw) = geom.out_hw, geom.stride, geom.dilation
    v = sliding_window_view(xp, geom.extent, axis=(-2, -1), writeable=writeable)
    return v[..., :(ho - 1) * sh + 1:sh, :(wo - 1) * sw + 1:sw, ::dh, ::dw]


def _column_buffer(x: np.ndarray, geom: Geometry, block: tuple[int, int, int, int] | None,
                   out: np.ndarray | None) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The columns of ``block`` (default: every image and output row) as a ``(C, kH, kW, n,
    rows, W_out)`` view of ``out`` (a new array when None), and the block itself."""
    n, c = x.shape[:2]
    kh, kw = geom.kernel
    ho, wo = geom.out_hw
    n0, n1, r0, r1 = block or (0, n, 0, ho)
    shape = (c, kh, kw, n1 - n0, r1 - r0, wo)
    size = int(np.prod(shape))
    if out is None:
        out = np.empty(size, x.dtype)
    return out.reshape(-1)[:size].reshape(shape), (n0, n1, r0, r1)


def im2col(xp: np.ndarray, geom: Geometry, block: tuple[int, int, int, int] | None = None,
           out: np.ndarray | None = None) -> np.ndarray:
    """Column matrix ``(C*kH*kW, n*rows*W_out)`` of a padded input ``xp: (N, C, Hp, Wp)``.

    Rows are ordered ``(c, a, b)``, as a weight ``[C_out, C, kH, kW]`` flattens, so the conv
    is ``w.reshape(C_out, -1) @ cols``; columns are ordered ``(n, i, j)``. ``block =
    (n0, n1, r0, r1)`` restricts it to images ``n0:n1`` and output rows ``r0:r1`` (see
    :func:`blocks`). One copy of the :func:`windows` view (``sliding_window_view`` + copy:
    up to 2x faster than an offset loop). ``out`` is an optional buffer to reuse (any
    contiguous array with at least that many elements).
    """
    cols, (n0, n1, r0, r1) = _column_buffer(xp, geom, block, out)
    np.copyto(cols, windows(xp, geom)[n0:n1, :, r0:r1].transpose(1, 4, 5, 0, 2, 3))
    c, kh, kw = cols.shape[:3]
    return cols.reshape(c * kh * kw, -1)


def col2im(dcols: np.ndarray, geom: Geometry, dxp: np.ndarray,
           block: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Adjoint of :func:`windows`: add ``dcols[n, c, i, j, a, b]`` into the padded gradient.

    ``dcols`` is any array (or view, or broadcast) indexed ``(n, C, rows, W_out, kH, kW)``
    for the ``block`` (default: everything) and ``dxp`` the padded gradient
    ``(N, C, Hp, Wp)``, added into in place and returned. One strided add per kernel offset;
    overlapping windows accumulate, as the chain rule sums them.
    """
    target = windows(dxp, geom, writeable=True)
    if block is not None:
        n0, n1, r0, r1 = block
        target = target[n0:n1, :, r0:r1]
    kh, kw = geom.kernel
    for a in range(kh):
        for b in range(kw):
            tap = target[..., a, b]
            np.add(tap, dcols[..., a, b], out=tap)
    return dxp


def run(start: int, count: int, step: int = 1) -> slice:
    """The slice of ``count`` positions from ``start`` at ``step`` (the input pixels one
    kernel tap reads along an axis, with :func:`taps_inside`)."""
    return slice(start, start + (count - 1) * step + 1, step)


def taps_inside(o0: int, o1: int, offset: int, stride: int, pad: int, size: int):
    """Output indices ``i`` in ``[o0, o1)`` whose tap ``i*stride + offset - pad`` is inside the
    input ``[0, size)``: ``(first, last, input index of first)``."""
    first = max(o0, -(-(pad - offset) // stride))
    last = min(o1, (size - 1 - offset + pad) // stride + 1)
    return first, max(first, last), first * stride + offset - pad


def im2col_unpadded(x: np.ndarray, geom: Geometry, block: tuple[int, int, int, int] | None = None,
                    out: np.ndarray | None = None) -> np.ndarray:
    """:func:`im2col` of the zero-padded ``x`` (N, C, H, W) without padding it: per kernel
    offset (a, b), one strided copy of the input pixels the tap reads, and zeros where it
    reads padding. Same rows, columns, ``block`` and ``out`` as :func:`im2col`; the adjoint
    of :func:`col2im_unpadded`. Saves a pass that copies the input into a padded array
    (measured 6-9 % of VGG-16's conv forward at batch 1)."""
    cols, (n0, n1, r0, r1) = _column_buffer(x, geom, block, out)
    c, kh, kw, _, _, wo = cols.shape
    (t, _), (l, _) = geom.full_pads
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    h, w = geom.in_hw
    src = x[n0:n1].transpose(1, 0, 2, 3)        # (C, n, H, W), the columns' index order
    for a in range(kh):
        fi, li, ri = taps_inside(r0, r1, a * dh, sh, t, h)
        for b in range(kw):
            fj, lj, rj = taps_inside(0, wo, b * dw, sw, l, w)
            tap = cols[:, a, b]                 # (C, n, rows, W_out)
            if li == fi or lj == fj:
                tap[...] = 0
                continue
            tap[:, :, :fi - r0] = 0
            tap[:, :, li - r0:] = 0
            inside = tap[:, :, fi - r0:li - r0]
            inside[..., :fj] = 0
            inside[..., lj:] = 0
            inside[..., fj:lj] = src[:, :, run(ri, li - fi, sh), run(rj, lj - fj, sw)]
    return cols.reshape(c * kh * kw, -1)


def col2im_unpadded(dcols: np.ndarray, geom: Geometry, dx: np.ndarray,
                    block: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """:func:`col2im` followed by the adjoint of zero padding, in one pass: add
    ``dcols[n, c, i, j, a, b]`` into the *unpadded* gradient ``dx`` (N, C, H, W) in place,
    dropping the taps that fell on zero padding (their gradient goes nowhere). Saves
    zeroing, adding into and cropping a padded array."""
    n0, n1, r0, r1 = block or (0, dx.shape[0], 0, geom.out_hw[0])
    (t, _), (l, _) = geom.full_pads
    (sh, sw), (dh, dw) = geom.stride, geom.dilation
    h, w = geom.in_hw
    kh, kw = geom.kernel
    for a in range(kh):
        fi, li, ri = taps_inside(r0, r1, a * dh, sh, t, h)
        if li == fi:
            continue
        for b in range(kw):
            fj, lj, rj = taps_inside(0, geom.out_hw[1], b * dw, sw, l, w)
            if lj == fj:
                continue
            target = dx[n0:n1, :, run(ri, li - fi, sh), run(rj, lj - fj, sw)]
            np.add(target, dcols[:, :, fi - r0:li - r0, fj:lj, a, b], out=target)
    return dx


def cols_view(cols: np.ndarray, c: int, geom: Geometry, n: int) -> np.ndarray:
    """Columns ``(C*kH*kW, n*rows*W_out)`` (as :func:`im2col` orders them) seen as
    ``(n, C, rows, W_out, kH, kW)``, the index order of :func:`windows` and :func:`col2im`."""
    kh, kw = geom.kernel
    return cols.reshape(c, kh, kw, n, -1, geom.out_hw[1]).transpose(3, 0, 4, 5, 1, 2)


def blocks(n: int, geom: Geometry, col_bytes: int, block_bytes: int | None = None) -> Iterator[tuple[int, int, int, int]]:
    """Cut the output rows ``(n, i)`` into blocks ``(n0, n1, r0, r1)`` for blocked im2col.

    ``col_bytes`` is the size of one column (``C*kH*kW*itemsize``). A block is several whole
    images when one image's columns are small, else a band of rows of one image. Its columns
    aim at :data:`BLOCK_BYTES`, at least :data:`MIN_BLOCK_COLS` wide, and never exceed
    :data:`COL_BUDGET_BYTES` (but hold at least one output row). A ``block_bytes`` given
    (:class:`Blocking`'s aim) replaces the aim and drops the minimum width.
    """
    return grid_blocks(n, geom.out_hw, col_bytes, *aim(BLOCK_BYTES, MIN_BLOCK_COLS, block_bytes))


def aim(default_bytes: int, min_cols: int, block_bytes: int | None) -> tuple[int, int]:
    """A blocked kernel's ``(block_bytes, min_cols)``: its default, or ``block_bytes`` with no
    minimum width (a block still holds one row) when a cap chose one (:class:`Blocking`)."""
    return (default_bytes, min_cols) if block_bytes is None else (max(int(block_bytes), 1), 0)


@dataclass(frozen=True)
class Blocking:
    """How a convolution cuts its work to fit a workspace cap (the defaults: its own blocks).

    ``aim``: bytes a block of columns (im2col) or of transformed tiles (Winograd) aims at, with
    no minimum width; ``chunk``: bytes of Winograd's transformed filters per chunk of output
    channels; ``fold_bias``: whether im2col may fold the bias into the GEMM (which takes a copy
    of the weight with the bias as a column)."""

    aim: int | None = None
    chunk: int | None = None
    fold_bias: bool = True


DEFAULT_BLOCKING = Blocking()


def check_cap(value: Any, field: str = "workspace") -> int | None:
    """A kernel's workspace cap: None or a whole number of bytes >= 0; ArchstatError otherwise."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ArchstatError(f"{field} must be None or a whole number of bytes >= 0, got {value!r}", field=field)
    return int(value)


def fit_block(workspace_at, limit: int, default_bytes: int) -> int | None:
    """The largest block aim (bytes, up to ``default_bytes``) under which a blocked kernel's
    workspace fits in ``limit`` bytes, by binary search (the workspace never shrinks as the
    aim grows); None when even the smallest blocks (aim 1: one row each) do not fit.
    ``workspace_at(aim)`` is the kernel's exact workspace at an aim, from its block plan;
    nothing is allocated."""
    lo, hi = 1, int(default_bytes)
    if workspace_at(lo) > limit:
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if workspace_at(mid) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo


def grid_blocks(n: int, out_hw: tuple[int, int], col_bytes: int, block_bytes: int | None = None,
                min_cols: int | None = None) -> Iterator[tuple[int, int, int, int]]:
    """:func:`blocks` for any grid of ``n`` images of ``out_hw`` positions each costing
    ``col_bytes`` (output pixels of im2col; the tiles of Winograd's transformed input), aiming
    at ``block_bytes`` (default :data:`BLOCK_BYTES`) and at least ``min_cols`` positions
    (default :data:`MIN_BLOCK_COLS`)."""
    ho, wo = out_hw
    cols = max((BLOCK_BYTES if block_bytes is None else block_bytes) // col_bytes,
               MIN_BLOCK_COLS if min_cols is None else min_cols)
    cols = max(min(cols, COL_BUDGET_BYTES // col_bytes), wo)
    per_image = ho * wo
    if per_image <= cols:
        step = cols // per_image
        for n0 in range(0, n, step):
            yield n0, min(n, n0 + step), 0, ho
    else:
        rows = cols // wo
        for n0 in range(n):
            for r0 in range(0, ho, rows):
                yield n0, n0 + 1, r0, min(ho, r0 + rows)
