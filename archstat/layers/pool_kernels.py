"""Pooling kernels (NCHW, PyTorch semantics): max and average pooling, forward and backward,
and the global average (adaptive pooling's are in :mod:`.pool_adaptive`). Part of the pooling
family: :mod:`archstat.layers.pool` registers the layer types and re-exports these for
:mod:`archstat.engine`.
"""
from __future__ import annotations

import math
import sys

import numpy as np

from . import im2col as win, threads
from ..errors import ArchstatError
from .activation import select
from .outbuf import usable
from .phases import PhaseGrid
from .registry import CACHE_BLOCK_BYTES, CacheBlocks, cache_blocks, kernel, numel
from .ufunc_buffers import ufunc_buffers
from .window import check_pool_padding

# ---------------------------------------------------------------------- engine kernels
#
# Both pools take their geometry (sizes, pads, ceil_mode) from the engine's window
# primitive (:func:`archstat.layers.im2col.geometry`) and its per-axis tap rule
# (``taps_inside``: the outputs whose tap at one kernel offset reads the input, not its
# padding). A 2-D window max or sum is separable, so the forward reduces over the kH rows
# first, with row-strided views whose rows are contiguous, then over the kW columns of the
# smaller intermediate. Taps on padding are skipped instead of padding a copy of the input:
# -inf never wins a max and zeros add nothing to a sum. The kernels run block by block of
# images or channels (:data:`BLOCK_BYTES`), so that a block's intermediate and masks are
# still in cache when the next pass reads them. Against the earlier kernels (one op per
# (a, b) tap view of the padded input, and masked ``where=`` adds in max pooling's backward),
# float32, 2 cores, measured side by side: forward 1.8-3.7x faster (max and average, VGG-16
# pool1 and ResNet's 3x3/2 pool, batch 1 and 8), max backward 3.0-5.5x, average backward
# 1.7-3.8x. bench/pool_act.py times them next to PyTorch's.
#: input bytes per block (256 KiB and 4 MiB blocks measured slower)
BLOCK_BYTES = CACHE_BLOCK_BYTES


def _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode):
    x = win.check_array(x, "x", 4)
    return x, _geometry_of(x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)


def _geometry_of(hw, kernel_size, stride, padding, dilation, ceil_mode):
    """A pool's window geometry on an input of ``hw``: ``stride`` defaults to the kernel."""
    kernel = win.pair(kernel_size, "kernel_size", 1)
    geom = win.geometry(tuple(hw), kernel, kernel if stride is None else stride, padding, dilation, ceil_mode)
    check_pool_padding(geom.pads, geom.kernel, geom.dilation)
    return geom


def _rows_shape(geom, width, n, c):
    """The row-reduced block of ``n`` images and ``c`` channels (:func:`_pool_reduce`)."""
    return (n, c, geom.out_hw[0], width)


def _axis_taps(geom, dim):
    """Per kernel offset along rows (``dim`` 0) or columns (1), in kernel order:
    ``(first, stop, start)``, the outputs ``[first, stop)`` whose tap lies inside the input
    and the input index read by output ``first`` (the next ones follow at the stride)."""
    out, s, d = geom.out_hw[dim], geom.stride[dim], geom.dilation[dim]
    lo, size = geom.pads[dim][0], geom.in_hw[dim]
    return [win.taps_inside(0, out, a * d, s, lo, size) for a in range(geom.kernel[dim])]


def _along(dim, index):
    """An index (slice or mask) along rows (``dim`` 0) or columns (1) of an (..., H, W) array."""
    return (Ellipsis, index, slice(None)) if dim == 0 else (Ellipsis, index)


def _blocks(shape, itemsize):
    """Blocks of :data:`BLOCK_BYTES` (:func:`archstat.layers.registry.cache_blocks`)."""
    return cache_blocks(shape, itemsize, BLOCK_BYTES)


def _reduce_axis(src, out, geom, dim, op, identity):
    """``out[..., o, ...] = op`` over the inside taps of window ``o`` along rows (``dim`` 0)
    or columns (1) of ``src``, in kernel order with the earlier tap as the second operand
    (so ``np.maximum`` keeps it on a tie); ``identity`` for a window with no tap inside."""
    taps, stride, n_out = _axis_taps(geom, dim), geom.stride[dim], geom.out_hw[dim]
    lo = max(first for first, _, _ in taps)      # outputs [lo, hi) read every tap
    hi = min(stop for _, stop, _ in taps)
    if lo < hi:
        acc = out[_along(dim, win.run(lo, hi - lo))]
        views = [src[_along(dim, win.run(start + (lo - first) * stride, hi - lo, stride))]
                 for first, _, start in taps]
        if len(views) == 1:
            np.copyto(acc, views[0])
        else:
            op(views[1], views[0], out=acc)
        for v in views[2:]:
            op(v, acc, out=acc)
        edges = ((0, lo), (hi, n_out))
    else:
        edges = ((0, n_out),)
    for e0, e1 in edges:                         # the few windows that overhang the input
        if e0 < e1:
            out[_along(dim, win.run(e0, e1 - e0))] = identity
        for first, stop, start in taps:
            g0, g1 = max(first, e0), min(stop, e1)
            if g0 < g1:
                acc = out[_along(dim, win.run(g0, g1 - g0))]
                op(src[_along(dim, win.run(start + (g0 - first) * stride, g1 - g0, stride))], acc,
                   out=acc)


def _pool_reduce(x, geom, op, identity, out=None):
    """Separable window reduction of x (N, C, H, W) -> (N, C, H_out, W_out): rows, then
    columns; into ``out`` when that fits (:func:`archstat.layers.outbuf.usable`)."""
    (ho, wo), w = geom.out_hw, x.shape[3]
    shape = x.shape[:2] + (ho, wo)
    y = out if usable(out, shape, x.dtype) else np.empty(shape, x.dtype)

    def rows_then_columns(blk, rows):
        _reduce_axis(x[blk], rows, geom, 0, op, identity)
        _reduce_axis(rows, y[blk], geom, 1, op, identity)
    _each_block(rows_then_columns, x, 2, lambda nb, cb: np.empty(_rows_shape(geom, w, nb, cb), x.dtype))
    return y


def pool_workspace(x_shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, itemsize=4):
    """Bytes :func:`max_pool2d` and :func:`avg_pool2d` allocate beyond y while they run: each
    part's row-reduced block (``(n, c, H_out, W)``, :func:`_pool_reduce`) and NumPy's buffers
    for the ufuncs over its strided views, the parts side by side
    (:func:`archstat.layers.threads.scratch_bytes`). The buffers are NumPy's choice: measured,
    a pass of two taps buffers two operands, one of more taps three, each of at most
    ``np.getbufsize()`` elements (a bound: within a few kB, and up to half a buffer over)."""
    geom = _geometry_of(x_shape[2:], kernel_size, stride, padding, dilation, ceil_mode)

    def per_block(nb, cb):
        rows = math.prod(_rows_shape(geom, x_shape[3], nb, cb))
        passes = ((geom.kernel[0], rows), (geom.kernel[1], nb * cb * math.prod(geom.out_hw)))   # rows, columns
        buffers = max((ufunc_buffers(2 if taps == 2 else 3, n) for taps, n in passes if taps > 1),
                      default=0)
        return itemsize * (rows + buffers)
    return threads.scratch_bytes(x_shape, itemsize, CacheBlocks.of(tuple(x_shape), itemsize, BLOCK_BYTES), 2,
                                 per_block)


def _each_block(step, x, arrays, scratch=None):
    """``step(block, buffers)`` over the cache blocks of x, shared out over the cores when the
    pass is large (:func:`archstat.layers.threads.each_block`: each part makes its own
    ``scratch(n, c)`` buffers)."""
    threads.each_block(step, x, list(_blocks(x.shape, x.itemsize)), arrays, scratch)


@kernel
def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, out=None):
    """Max pooling as ``torch.nn.functional.max_pool2d``: x (N, C, H, W) -> (N, C, H_out, W_out).

    Padding is -inf (a padded pixel never wins); ``stride`` defaults to ``kernel_size``;
    ``ceil_mode`` rounds the output size up (PyTorch's rule, :mod:`archstat.layers.window`).
    NaN propagates, as in PyTorch. Same dtype out (float32 or float64). Values are exact;
    only the sign of a zero maximum may differ from PyTorch's where +0 and -0 tie in one
    window (the reduction runs over rows, then columns, not in PyTorch's row-major order).
    ``out``: an array to write y into (a slice of a concatenation's buffer), used when it fits.
    """
    x, geom = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    return _pool_reduce(x, geom, np.maximum, -np.inf, out)


def _tap_index(geom):
    """Per in-range tap (a, b), in row-major kernel order: the index of its pixels in the
    input and of the outputs that read them."""
    (sh, sw), plan = geom.stride, []
    for fi, li, ri in _axis_taps(geom, 0):
        for fj, lj, rj in _axis_taps(geom, 1):
            if fi < li and fj < lj:
                plan.append(((Ellipsis, win.run(ri, li - fi, sh), win.run(rj, lj - fj, sw)),
                             (Ellipsis, slice(fi, li), slice(fj, lj))))
    return plan


def _zero_unread(out, geom, dim):
    """Zero the rows (``dim`` 0) or columns (1) of ``out`` (..., H, W) that no window reads
    (e.g. those left over by floor mode): no tap writes their gradient."""
    read = np.zeros(geom.in_hw[dim], bool)
    for first, stop, start in _axis_taps(geom, dim):
        if first < stop:
            read[win.run(start, stop - first, geom.stride[dim])] = True
    out[_along(dim, ~read)] = 0


@kernel
def max_pool2d_backward(dy, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                        *, y=None):
    """Gradient of :func:`max_pool2d` with respect to x (x's shape and dtype).

    Each output's gradient goes to the first maximum of its window in window order
    (row-major over the kernel), as PyTorch's CPU kernel breaks ties; overlapping windows
    add. A window holding NaN sends it to its last NaN, as PyTorch's running update
    ``val > max or isnan(val)`` does. ``y`` (the forward's output) may be passed to skip
    recomputing it.
    """
    x, geom = _pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode)
    dy = _check_output_shaped(dy, "dy", x.shape[:2] + geom.out_hw, x.dtype)
    if y is None:
        y = _pool_reduce(x, geom, np.maximum, -np.inf)
    y = _check_output_shaped(y, "y", x.shape[:2] + geom.out_hw, x.dtype)
    # disjoint windows write each pixel of theirs once: no zeroing, no accumulation
    disjoint = all(s >= e for s, e in zip(geom.stride, geom.extent))
    nan_free = not (y.size and np.isnan(y.max()))
    if nan_free and _column_pairs_fit(x, geom):
        return _max_backward_pairs(dy, x, y, geom)
    if (PLANES_WHEN_DISJOINT or not disjoint) and nan_free:
        return _max_backward_planes(dy, x, y, geom, disjoint)
    plan = _tap_index(geom)
    if disjoint:
        dx = np.empty(x.shape, x.dtype)
        _zero_unread(dx, geom, 0)
        _zero_unread(dx, geom, 1)
    else:
        dx = np.zeros(x.shape, x.dtype)
    _each_block(lambda blk, _: _route_max(dy[blk], x[blk], y[blk], dx[blk], plan, disjoint), x, 3)
    return dx


#: 2**32 + 1: a uint32 times it, in uint64, is the uint32 twice (no carry)
_TWICE = np.uint64(2**32 + 1)


def _column_pairs_fit(x, geom):
    """Whether :func:`_max_backward_pairs` applies: float32, windows kH x 2 at stride (kH, 2)
    (VGG's 2x2/2), no padding or dilation, tiling x exactly. :data:`PAIRS` turns it off."""
    kh = geom.kernel[0]
    return (PAIRS and sys.byteorder == "little" and x.dtype == np.float32 and geom.kernel[1] == 2
            and geom.stride == (kh, 2)
            and geom.dilation == (1, 1) and geom.full_pads == ((0, 0), (0, 0))
            and x.shape[2:] == (kh * geom.out_hw[0], 2 * geom.out_hw[1])
            and x.shape[3] >= PAIRS_MIN_WIDTH)


def _twice(a, out):
    """float32 (..., w) -> ``out`` (..., 2w), each value twice, side by side (bit copies:
    as uint32 pairs read as one uint64, u * (2**32 + 1) is u in both halves)."""
    u = out.view(np.uint64)
    np.copyto(u, a.view(np.uint32), casting="unsafe")
    u *= _TWICE
    return out


def _max_backward_pairs(dy, x, y, geom):
    """:func:`max_pool2d_backward` for windows that tile x by kH rows x 2 columns (float32, y
    without NaN), with no strided pass: y and dy are widened to x's width with every value
    twice (:func:`_twice`), x's rows of one window row compared with them in full-width
    contiguous passes, and the first maximum kept in window order by integer operations on
    the 0/1 masks: two adjacent bytes read as one uint16 are a window row's two taps (the
    second cleared when the first is set), and a later row is cleared where an earlier one
    has a hit. Measured side by side against the tap views (float32, VGG-16's pools, batch 1
    and 8): 1.65x faster on pool1 (64x224x224), 1.45-1.55x on pool2 (128x112x112), 1.07-1.2x
    on pool3 (256x56x56), 0.9-1.05x on the narrower pool4 and pool5 (:data:`PAIRS_MIN_WIDTH`).
    """
    kh = geom.kernel[0]
    ho, w = geom.out_hw[0], x.shape[3]
    dx = np.empty(x.shape, x.dtype)

    def scratch(nb, cb):
        return (np.empty((nb, cb, ho, w), x.dtype), np.empty((nb, cb, ho, kh, w), bool),
                np.empty((nb, cb, ho, w // 2), bool), np.empty((nb, cb, ho, kh, w // 2), np.uint16))

    def step(blk, bufs):
        xb, yb, dyb = x[blk], y[blk], dy[blk]
        nb, cb = xb.shape[:2]
        wide, hit, free, bits = bufs
        np.equal(xb.reshape(nb, cb, ho, kh, w), _twice(yb, wide)[:, :, :, None, :], out=hit)
        pair = hit.view(np.uint16)              # per window row: first tap's byte, second's
        np.bitwise_and(pair, 1, out=bits)       # (little-endian: the first tap is the low byte)
        bits <<= 8
        np.invert(bits, out=bits)
        pair &= bits                            # the second tap only if the first is not hit
        np.equal(pair[..., 0, :], 0, out=free)
        for r in range(1, kh):                  # a later row only where no earlier row is hit
            row = pair[..., r, :]
            np.multiply(row, free, out=row)
            if r < kh - 1:
                free &= row == 0
        select(hit, _twice(dyb, wide)[:, :, :, None, :], out=dx[blk].reshape(nb, cb, ho, kh, w))
    _each_block(step, x, 3, scratch)
    return dx


#: whether the column-pair form (:func:`_max_backward_pairs`) is used where it fits (tests
#: turn it off to run the tap views on the same cases)
PAIRS = True
#: the narrowest input (W) it is used for: measured break-even between 28 and 56 columns
PAIRS_MIN_WIDTH = 56
#: whether disjoint windows (stride >= extent, e.g. VGG's 2x2/2) take the phase planes too:
#: no, measured side by side they were 0.77-0.98x the tap-view form (whose 2 strided passes
#: per tap are then only a quarter of x each); overlapping windows always do (ResNet's 3x3/2
#: pad 1: 1.40-1.49x faster, batch 1 and 8, float32)
PLANES_WHEN_DISJOINT = False


def _max_backward_planes(dy, x, y, geom, disjoint):
    """:func:`max_pool2d_backward` for a y without NaN, on x's phase planes (:mod:`.phases`):
    every tap of every window reads a unit-stride block of one plane, and its gradient goes
    into the same block of a plane of dx, gathered into dx at the end, instead of strided
    reads and strided adds per tap (:func:`_route_max`). The padding's plane positions hold
    NaN, which equals no maximum. Same first-maximum rule as :func:`_route_max`.
    """
    grid = PhaseGrid.of(geom)
    ho, wo = geom.out_hw
    phases = grid.phases[0] * grid.phases[1]
    flat = grid.plane_hw[0] * grid.plane_hw[1]
    dx = np.empty(x.shape, x.dtype)

    def scratch(nb, cb):
        out_shape = (nb, cb, ho, wo)
        return (np.full((nb, cb, phases, flat), np.nan, x.dtype),    # the padding's positions stay NaN
                np.empty((nb, cb, phases, flat), x.dtype), np.empty(out_shape, bool),
                np.empty(out_shape, bool), np.empty(out_shape, x.dtype))

    def step(blk, bufs):
        xb, yb, dyb = x[blk], y[blk], dy[blk]
        planes, dplanes, free, hit, part = bufs
        grid.fill(planes, xb)
        dplanes[...] = 0
        xv, dv = grid.plane_view(planes), grid.plane_view(dplanes)
        free[...] = True
        last = len(grid.taps) - 1
        for t, (phase, oa, ob) in enumerate(grid.taps):
            np.equal(xv[:, :, phase, oa:oa + ho, ob:ob + wo], yb, out=hit)
            if t:
                hit &= free
            if t < last:
                np.greater(free, hit, out=free)      # free and not hit
            target = dv[:, :, phase, oa:oa + ho, ob:ob + wo]
            if disjoint:
                select(hit, dyb, out=target)
            else:
                np.add(target, select(hit, dyb, out=part), out=target)
        grid.gather(dplanes, dx[blk])
    _each_block(step, x, 3, scratch)
    return dx


def _check_output_shaped(a, name, shape, dtype):
    """``a`` as a ``dtype`` array of the pool's output shape; ArchstatError otherwise (the
    kernels slice it block by block, so a wrong shape would not fail by itself)."""
    a = win.check_array(a, name, 4, dtype)
    if a.shape != tuple(shape):
        raise ArchstatError(f"{name} must have the pool's output shape {tuple(shape)}, got {a.shape}",
                            field=name)
    return a


def _route_max(dy, x, y, dx, plan, disjoint):
    """One block of :func:`max_pool2d_backward`: per tap, in window order, the windows whose
    maximum it is and that no earlier tap has claimed take its gradient (``dx`` is written
    when windows are disjoint, else added into)."""
    free = np.ones(y.shape, bool)                # windows whose maximum is still unclaimed
    hit = np.empty(y.shape, bool)
    part = None if disjoint else np.empty(y.shape, y.dtype)
    for t, (xs, ys) in enumerate(plan):
        h, f = hit[ys], free[ys]
        np.equal(x[xs], y[ys], out=h)
        if t:
            h &= f
        if t < len(plan) - 1:
            np.greater(f, h, out=f)              # f and not h
        if disjoint:
            select(h, dy[ys], out=dx[xs])
        else:
            p = select(h, dy[ys], out=part[ys])
            target = dx[xs]
            np.add(target, p, out=target)
    if y.size and np.isnan(y.max()):                        # rare: a per-tap loop in reverse, masked adds
        nan = np.isnan(y)
        for xs, ys in reversed(plan):
            h, f = hit[ys], nan[ys]
            xv = x[xs]
            # x != x is isnan(x); np.isnan itself writes wrong values into a strided 4-D
            # out= in NumPy 2.4.6 (np.isfinite and np.signbit too)
            np.not_equal(xv, xv, out=h)
            h &= f
            np.greater(f, h, out=f)
            target = dx[xs]
            np.add(target, dy[ys], out=target, where=h)


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


@kernel
def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, out=None):
    """Average pooling as ``torch.nn.functional.avg_pool2d``: (N, C, H, W) -> (N, C, H_out, W_out).

    Zero padding; the divisor follows PyTorch exactly (see :func:`_avg_scale`), including
    ``ceil_mode`` windows clipped to the padded input. Same dtype out. ``out``: as
    :func:`max_pool2d`.
    """
    x, geom = _pool_geometry(x, kernel_size, stride, padding, 1, ceil_mode)
    y = _pool_reduce(x, geom, np.add, 0, out)
    y *= _avg_scale(geom, count_include_pad, x.dtype)
    return y


@kernel
def avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True):
    """Gradient of :func:`avg_pool2d` with respect to x; ``x_shape`` is x's shape (or x).

    Every input pixel of a window receives ``dy / divisor``: the adjoint of the forward's
    separable sum, spread over the kW columns, then over the kH rows.
    """
    x_shape = _shape_of(x_shape)
    dy = win.check_array(dy, "dy", 4)
    probe = np.broadcast_to(np.zeros((), dy.dtype), x_shape)
    _, geom = _pool_geometry(probe, kernel_size, stride, padding, 1, ceil_mode)
    dy = _check_output_shaped(dy, "dy", tuple(x_shape[:2]) + geom.out_hw, dy.dtype)
    g = dy * _avg_scale(geom, count_include_pad, dy.dtype)
    dx = np.empty(x_shape, dy.dtype)
    buf = None
    for blk in _blocks(x_shape, dy.itemsize):
        gb = g[blk]
        shape = gb.shape[:3] + (x_shape[3],)
        if buf is None or buf.size < numel(shape):   # grown only if a later block is larger
            buf = np.empty(numel(shape), dy.dtype)
        part = buf[:numel(shape)].reshape(shape)
        _spread_axis(gb, part, geom, 1)
        _spread_axis(part, dx[blk], geom, 0)
    return dx


def _spread_axis(src, out, geom, dim):
    """Adjoint of :func:`_reduce_axis` with ``np.add``: every inside tap of window ``o``
    along rows (``dim`` 0) or columns (1) receives ``src[..., o, ...]``. Where the windows
    are disjoint along it, each position of ``out`` is written once (and those no window
    reads are zeroed); else ``out`` is zeroed and added into."""
    stride = geom.stride[dim]
    disjoint = stride >= geom.extent[dim]
    if disjoint:
        _zero_unread(out, geom, dim)
    else:
        out[...] = 0
    for first, stop, start in _axis_taps(geom, dim):
        if first < stop:
            target = out[_along(dim, win.run(start, stop - first, stride))]
            piece = src[_along(dim, slice(first, stop))]
            if disjoint:
                np.copyto(target, piece)
            else:
                np.add(target, piece, out=target)


def _shape_of(x_or_shape):
    """A shape given as itself or as the array it belongs to."""
    if hasattr(x_or_shape, "shape"):
        return tuple(x_or_shape.shape)
    return tuple(int(v) for v in x_or_shape)


@kernel
def global_avg_pool2d(x):
    """Mean over H x W: (N, C, H, W) -> (N, C, 1, 1), as ``adaptive_avg_pool2d(x, 1)``."""
    x = win.check_array(x, "x", 4)
    return x.mean(axis=(2, 3), keepdims=True)


@kernel
def global_avg_pool2d_backward(dy, x_shape):
    """Gradient of :func:`global_avg_pool2d`: dy / (H*W) spread over every pixel."""
    x_shape = _shape_of(x_shape)
    dy = win.check_array(dy, "dy", 4)
    scale = dy.dtype.type(1.0 / (x_shape[2] * x_shape[3]))
    return np.broadcast_to(dy * scale, x_shape).copy()
