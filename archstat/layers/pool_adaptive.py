"""Adaptive pooling kernels (NCHW, PyTorch semantics): average and max, forward and backward.
Part of the pooling family: :mod:`archstat.layers.pool` registers the layer types and
re-exports these for :mod:`archstat.engine`.

Output i along an axis reads input [floor(i H / out), ceil((i + 1) H / out))
(:func:`.window.adaptive_bounds`). When out divides H these are the disjoint windows of a
pool with kernel = stride = H / out, and when H = q out + 1 those of kernel q + 1, stride q
(:func:`.window.adaptive_geometry`): the fixed-window kernels of :mod:`.pool_kernels` run.
Otherwise the windows differ in length by at most two, so each axis is reduced in one gather
per tap offset of each distinct length, vectorised over every output of that length.
"""
from __future__ import annotations

import numpy as np

from . import im2col as win
from .pool_kernels import (_along, _check_output_shaped, _shape_of, avg_pool2d, avg_pool2d_backward,
                           max_pool2d, max_pool2d_backward)
from .window import adaptive_bounds, adaptive_geometry, adaptive_output_hw
from .registry import kernel


def _adaptive_setup(x, output_size):
    """x checked as (N, C, H, W), the output (H_out, W_out), and the fixed pool
    ``(kernel, stride)`` with the same windows, when there is one (else None)."""
    x = win.check_array(x, "x", 4)
    out_hw = adaptive_output_hw(x.shape[2:], output_size)
    axes = [adaptive_geometry(size, o) for size, o in zip(x.shape[2:], out_hw)]
    if all(uniform and step >= 1 for _, step, uniform in axes):
        return x, out_hw, ((axes[0][0], axes[1][0]), (axes[0][1], axes[1][1]))
    return x, out_hw, None


def _adaptive_axis(size, out):
    """Start and length of each output's window along one axis, as int arrays."""
    starts, ends = adaptive_bounds(size, out, np.arange(out, dtype=np.int64))
    return starts, ends - starts


def _adaptive_readers(size, out):
    """For each input index along one axis: the first output whose window holds it and how
    many do (consecutive, since starts and ends both increase; at least one)."""
    starts, lens = _adaptive_axis(size, out)
    j = np.arange(size, dtype=np.int64)
    first = np.searchsorted(starts + lens, j, side="right")
    return first, np.searchsorted(starts, j, side="right") - first


def _as_index(indices):
    """A slice where ``indices`` step evenly (a view instead of a gathered copy), else them."""
    if len(indices) == 1 or (len(indices) > 1 and np.all(np.diff(indices) == indices[1] - indices[0])
                             and indices[1] > indices[0]):
        step = int(indices[1] - indices[0]) if len(indices) > 1 else 1
        return slice(int(indices[0]), int(indices[-1]) + 1, step)
    return indices


def _gather_reduce(src, starts, lens, dim, op):
    """``out[..., o, ...] = op`` over ``src[..., starts[o] + t, ...]`` for ``t < lens[o]``,
    along rows (``dim`` 0) or columns (1) of src (..., H, W): for each distinct length, one
    pass per tap offset over all the outputs of that length."""
    shape = list(src.shape)
    shape[src.ndim - 2 + dim] = len(starts)
    out = np.empty(shape, src.dtype)
    for length in np.unique(lens):
        sel = np.flatnonzero(lens == length)
        base = starts[sel]
        acc = src[_along(dim, _as_index(base))]
        for t in range(1, int(length)):
            tap = src[_along(dim, _as_index(base + t))]
            acc = op(acc, tap) if t == 1 else op(acc, tap, out=acc)
        out[_along(dim, _as_index(sel))] = acc
    return out


def _adaptive_scale(in_hw, out_hw, dtype):
    """1 / (window height * window width) per output position (H_out, W_out)."""
    lens = [_adaptive_axis(size, o)[1] for size, o in zip(in_hw, out_hw)]
    return (1 / np.multiply.outer(lens[0], lens[1])).astype(dtype)


@kernel
def adaptive_avg_pool2d(x, output_size):
    """Adaptive average pooling as ``torch.nn.functional.adaptive_avg_pool2d``:
    x (N, C, H, W) -> (N, C, H_out, W_out).

    ``output_size`` is an int or a pair (H_out, W_out) whose entries may be None (keep the
    input's size). Output (i, j) is the mean of rows [floor(i H / H_out), ceil((i+1) H /
    H_out)) and the columns likewise (PyTorch's AdaptiveAvgPool2d doc and aten
    ``AdaptivePooling.h``); H_out may exceed H (windows then repeat pixels). Same dtype out.
    The sum runs over rows, then columns, so the last bits may differ from PyTorch's
    row-major sum.
    """
    x, out_hw, fixed = _adaptive_setup(x, output_size)
    if fixed is not None:
        return avg_pool2d(x, *fixed)
    part = _gather_reduce(x, *_adaptive_axis(x.shape[2], out_hw[0]), 0, np.add)
    y = _gather_reduce(part, *_adaptive_axis(x.shape[3], out_hw[1]), 1, np.add)
    y *= _adaptive_scale(x.shape[2:], out_hw, x.dtype)
    return y


@kernel
def adaptive_avg_pool2d_backward(dy, x_shape, output_size):
    """Gradient of :func:`adaptive_avg_pool2d` with respect to x; ``x_shape`` is x's shape
    (or x). Every pixel receives the sum of ``dy / window size`` over the windows holding it:
    gathered per input column, then per input row (no scatter, so overlapping windows add
    without conflicts)."""
    x_shape = _shape_of(x_shape)
    probe = np.broadcast_to(np.zeros((), np.asarray(dy).dtype), x_shape)
    _, out_hw, fixed = _adaptive_setup(probe, output_size)
    dy = _check_output_shaped(win.check_array(dy, "dy", 4), "dy", x_shape[:2] + out_hw,
                              probe.dtype)
    if fixed is not None:
        return avg_pool2d_backward(dy, x_shape, *fixed)
    g = dy * _adaptive_scale(x_shape[2:], out_hw, dy.dtype)
    part = _gather_reduce(g, *_adaptive_readers(x_shape[3], out_hw[1]), 1, np.add)
    return _gather_reduce(part, *_adaptive_readers(x_shape[2], out_hw[0]), 0, np.add)


@kernel
def adaptive_max_pool2d(x, output_size):
    """Adaptive max pooling as ``torch.nn.functional.adaptive_max_pool2d`` (the values, not
    the indices): x (N, C, H, W) -> (N, C, H_out, W_out), over the windows of
    :func:`adaptive_avg_pool2d`. NaN propagates, as in PyTorch. Same dtype out; values are
    exact (only the sign of a zero maximum may differ where +0 and -0 tie)."""
    x, out_hw, fixed = _adaptive_setup(x, output_size)
    if fixed is not None:
        return max_pool2d(x, *fixed)
    part = _gather_reduce(x, *_adaptive_axis(x.shape[2], out_hw[0]), 0, np.maximum)
    return _gather_reduce(part, *_adaptive_axis(x.shape[3], out_hw[1]), 1, np.maximum)


@kernel
def adaptive_max_pool2d_backward(dy, x, output_size, *, y=None):
    """Gradient of :func:`adaptive_max_pool2d` with respect to x (x's shape and dtype).

    Each output's gradient goes to the index PyTorch's CPU kernel returns: the first maximum
    of its window in row-major order, or the window's last NaN (its running update takes a
    value when ``val > max or isnan(val)``); overlapping windows add. ``y`` (the forward's
    output) may be passed; only the fixed-window path uses it.
    """
    x, out_hw, fixed = _adaptive_setup(x, output_size)
    dy = _check_output_shaped(dy, "dy", x.shape[:2] + out_hw, x.dtype)
    if fixed is not None:
        return max_pool2d_backward(dy, x, *fixed, y=y)
    n, c, h, w = x.shape
    planes = x.reshape(n, c, h * w)
    where = np.empty(x.shape[:2] + out_hw, np.int64)      # flat index in the (H, W) plane
    (row0, row_len), (col0, col_len) = _adaptive_axis(h, out_hw[0]), _adaptive_axis(w, out_hw[1])
    for lh in np.unique(row_len):
        ri = np.flatnonzero(row_len == lh)
        rows = row0[ri, None] + np.arange(lh)
        for lw in np.unique(col_len):
            cj = np.flatnonzero(col_len == lw)
            cols = col0[cj, None] + np.arange(lw)
            # flat pixel indices of each window, in row-major window order: (ni, nj, lh * lw)
            taps = (rows[:, None, :, None] * w + cols[None, :, None, :]).reshape(len(ri), len(cj), -1)
            patch = planes[:, :, taps]                    # (N, C, ni, nj, lh * lw)
            pick = patch.argmax(axis=-1)                  # the first maximum (or first NaN)
            nan = patch != patch
            if nan.any():
                last_nan = nan.shape[-1] - 1 - nan[..., ::-1].argmax(axis=-1)
                pick = np.where(nan.any(axis=-1), last_nan, pick)
            where[:, :, ri[:, None], cj[None, :]] = taps[np.arange(len(ri))[:, None],
                                                         np.arange(len(cj))[None, :], pick]
    where += (np.arange(n * c, dtype=np.int64) * (h * w)).reshape(n, c, 1, 1)
    dx = np.bincount(where.ravel(), weights=dy.ravel(), minlength=n * c * h * w)
    return dx.reshape(x.shape).astype(x.dtype, copy=False)
