"""Naive loop references for adaptive pooling, permute, split, channel shuffle, stochastic
depth and linear on the last axis, written from the formulas (one element at a time, plain
Python arithmetic). Slow on purpose; each says the rule it implements and shares no code
with archstat.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def adaptive_windows(size, out):
    """PyTorch's adaptive pooling windows along one axis (AdaptiveAvgPool2d doc; aten
    AdaptivePooling.h): output i reads input [floor(i * size / out), ceil((i + 1) * size / out))."""
    return [(math.floor(Fraction(i * size, out)), math.ceil(Fraction((i + 1) * size, out)))
            for i in range(out)]


def _out_hw(shape, output_size):
    pair = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    return tuple(s if o is None else o for s, o in zip(shape[2:], pair))


def adaptive_avg_pool2d_naive(x, output_size):
    """y[n, c, i, j] = mean of x[n, c, rows_i, cols_j]."""
    oh, ow = _out_hw(x.shape, output_size)
    rows, cols = adaptive_windows(x.shape[2], oh), adaptive_windows(x.shape[3], ow)
    y = np.zeros(x.shape[:2] + (oh, ow), x.dtype)
    for n, c in np.ndindex(*x.shape[:2]):
        for i, (r0, r1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                total = 0.0
                for a in range(r0, r1):
                    for b in range(c0, c1):
                        total += float(x[n, c, a, b])
                y[n, c, i, j] = total / ((r1 - r0) * (c1 - c0))
    return y


def adaptive_avg_pool2d_backward_naive(dy, x_shape, output_size):
    """Each output's gradient, divided by its window's size, added to every pixel it read."""
    oh, ow = _out_hw(x_shape, output_size)
    rows, cols = adaptive_windows(x_shape[2], oh), adaptive_windows(x_shape[3], ow)
    dx = np.zeros(x_shape, dy.dtype)
    for n, c in np.ndindex(*x_shape[:2]):
        for i, (r0, r1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                share = float(dy[n, c, i, j]) / ((r1 - r0) * (c1 - c0))
                for a in range(r0, r1):
                    for b in range(c0, c1):
                        dx[n, c, a, b] += share
    return dx


def adaptive_max_pool2d_naive(x, output_size):
    """Returns (y, argmax): PyTorch's CPU kernel's running update over the window in
    row-major order, starting from its first pixel: take a value when ``val > max or
    isnan(val)`` (first maximum on ties, last NaN)."""
    oh, ow = _out_hw(x.shape, output_size)
    rows, cols = adaptive_windows(x.shape[2], oh), adaptive_windows(x.shape[3], ow)
    width = x.shape[3]
    y = np.zeros(x.shape[:2] + (oh, ow), x.dtype)
    arg = np.zeros(y.shape, np.int64)
    for n, c in np.ndindex(*x.shape[:2]):
        for i, (r0, r1) in enumerate(rows):
            for j, (c0, c1) in enumerate(cols):
                best, where = -math.inf, r0 * width + c0
                for a in range(r0, r1):
                    for b in range(c0, c1):
                        v = float(x[n, c, a, b])
                        if v > best or math.isnan(v):
                            best, where = v, a * width + b
                y[n, c, i, j], arg[n, c, i, j] = best, where
    return y, arg


def adaptive_max_pool2d_backward_naive(dy, x, output_size):
    _, arg = adaptive_max_pool2d_naive(x, output_size)
    dx = np.zeros(x.shape, x.dtype)
    width = x.shape[3]
    for idx in np.ndindex(*dy.shape):
        a = int(arg[idx])
        dx[idx[0], idx[1], a // width, a % width] += dy[idx]
    return dx


def permute_naive(x, dims):
    """y[i_0, ..., i_k] = x[j] with j[dims[a]] = i_a."""
    y = np.zeros(tuple(x.shape[d] for d in dims), x.dtype)
    for idx in np.ndindex(*x.shape):
        y[tuple(idx[d] for d in dims)] = x[idx]
    return y


def piece_sizes(extent, chunks=None, sizes=None):
    """torch.chunk: pieces of ceil(extent / chunks) while elements remain (the last one
    smaller); torch.split with a list: those sizes."""
    if sizes is not None:
        return list(sizes)
    step = math.ceil(extent / chunks)
    out, left = [], extent
    while left > 0:
        out.append(min(step, left))
        left -= step
    return out


def split_naive(x, dim, index, chunks=None, sizes=None):
    """Element by element: y[..., i, ...] = x[..., offset + i, ...] along dim."""
    pieces = piece_sizes(x.shape[dim], chunks, sizes)
    offset = sum(pieces[:index])
    shape = list(x.shape)
    shape[dim] = pieces[index]
    y = np.zeros(shape, x.dtype)
    for idx in np.ndindex(*shape):
        src = list(idx)
        src[dim] += offset
        y[idx] = x[tuple(src)]
    return y


def channel_shuffle_naive(x, groups):
    """ShuffleNet (Zhang et al. 2018, Sec. 3.1): reshape the channels to (groups, C / groups),
    transpose, flatten: output channel k = j * groups + i is input channel i * (C / groups) + j."""
    channels = x.shape[1]
    per = channels // groups
    y = np.zeros(x.shape, x.dtype)
    for idx in np.ndindex(*x.shape):
        k = idx[1]
        j, i = divmod(k, groups)
        y[idx] = x[(idx[0], i * per + j, *idx[2:])]
    return y


def stochastic_depth_naive(x, keep, p):
    """torchvision's rule with a fixed draw: y[n] = x[n] * keep[n] / (1 - p) (no division
    when 1 - p = 0); ``keep`` per sample (row mode) or one bool (batch mode)."""
    keep = np.broadcast_to(np.asarray(keep).reshape(-1), (x.shape[0],))
    y = np.zeros(x.shape, np.float64)
    for idx in np.ndindex(*x.shape):
        scale = (1.0 / (1.0 - p)) if p < 1 else 1.0
        y[idx] = float(x[idx]) * scale if keep[idx[0]] else 0.0
    return y


def linear_nd_naive(x, w, b=None):
    """y[..., o] = sum_i x[..., i] w[o, i] + b[o] for every leading index."""
    out = w.shape[0]
    y = np.zeros(x.shape[:-1] + (out,), np.float64)
    for lead in np.ndindex(*x.shape[:-1]):
        for o in range(out):
            acc = 0.0
            for i in range(x.shape[-1]):
                acc += float(x[lead + (i,)]) * float(w[o, i])
            y[lead + (o,)] = acc + (float(b[o]) if b is not None else 0.0)
    return y
