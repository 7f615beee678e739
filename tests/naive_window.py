"""Naive loop references for the window kernels, written straight from the lecture's formulas.

Nested loops over output pixels, no im2col, no strided views: slow on purpose, so that the
fast engine kernels have an independent reference to be compared with.

Lecture formulas (single channel; channels and groups just add sums):
    forward  y(r, c)     = sum_{a,b} x(r + a, c + b) k(a, b)             (cross-correlation)
    weights  dL/dk(a, b) = sum_{r,c} dL/dy(r, c) x(r + a, c + b)
    input    dL/dx(r',c') = sum_{a,b} dL/dy(r' - a, c' - b) k(a, b)       (a true convolution)
with stride s and dilation d the input index is r*s + a*d, and x is the padded input.
"""
from __future__ import annotations

import numpy as np

MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def out_size(size, k, s, lo, hi, d, ceil_mode=False):
    """The PyTorch docs' formula, again on purpose (the reference must not share code)."""
    num = size + lo + hi - d * (k - 1) - 1
    if ceil_mode:
        out = -(-num // s) + 1
        if (out - 1) * s >= size + lo:
            out -= 1
        return out
    return num // s + 1


def same_pads(k, d):
    total = d * (k - 1)
    return total // 2, total - total // 2


def pads_of(padding, kernel, dilation):
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        return same_pads(kernel[0], dilation[0]), same_pads(kernel[1], dilation[1])
    ph, pw = pair(padding)
    return (ph, ph), (pw, pw)


def pad_naive(x, pads, mode):
    """np.pad: an independent implementation of PyTorch's padding modes."""
    width = ((0, 0), (0, 0)) + tuple(pads)
    if mode == "zeros":
        return np.pad(x, width)
    return np.pad(x, width, mode=MODES[mode])


def conv2d_naive(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    n, c_in, h, wd = x.shape
    c_out, cg, kh, kw = w.shape
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    pads = pads_of(padding, (kh, kw), (dh, dw))
    xp = pad_naive(x, pads, padding_mode)
    ho = out_size(h, kh, sh, *pads[0], dh)
    wo = out_size(wd, kw, sw, *pads[1], dw)
    og = c_out // groups
    y = np.zeros((n, c_out, ho, wo), x.dtype)
    for i in range(n):
        for o in range(c_out):
            g = o // og
            for r in range(ho):
                for c in range(wo):
                    acc = 0.0
                    for ci in range(cg):
                        for a in range(kh):
                            for bb in range(kw):
                                acc += xp[i, g * cg + ci, r * sh + a * dh, c * sw + bb * dw] * w[o, ci, a, bb]
                    y[i, o, r, c] = acc + (b[o] if b is not None else 0.0)
    return y


def _unpad_naive(dxp, pads, mode, shape):
    """Adjoint of np.pad, by brute force: push each padded pixel's gradient to its source."""
    h, w = shape[2:]
    (t, _), (l, _) = pads
    index = np.arange(h * w).reshape(1, 1, h, w)
    src = pad_naive(np.broadcast_to(index, (1, 1, h, w)).astype(np.int64), pads, mode)
    dx = np.zeros(shape, dxp.dtype)
    for p in range(dxp.shape[2]):
        for q in range(dxp.shape[3]):
            if mode == "zeros" and not (t <= p < t + h and l <= q < l + w):
                continue
            s = src[0, 0, p, q] if mode != "zeros" else (p - t) * w + (q - l)
            dx[:, :, s // w, s % w] += dxp[:, :, p, q]
    return dx


def conv2d_backward_naive(dy, x, w, stride=1, padding=0, dilation=1, groups=1,
                          padding_mode="zeros"):
    """dL/dk by the lecture's sum over output pixels; dL/dx by pushing each output's gradient
    back to every input pixel it read (the chain rule summed over output pixels)."""
    n, c_in, h, wd = x.shape
    c_out, cg, kh, kw = w.shape
    (sh, sw), (dh, dw_) = pair(stride), pair(dilation)
    pads = pads_of(padding, (kh, kw), (dh, dw_))
    xp = pad_naive(x, pads, padding_mode)
    ho, wo = dy.shape[2:]
    og = c_out // groups
    dw = np.zeros(w.shape, x.dtype)
    dxp = np.zeros(xp.shape, x.dtype)
    for i in range(n):
        for o in range(c_out):
            g = o // og
            for r in range(ho):
                for c in range(wo):
                    for ci in range(cg):
                        for a in range(kh):
                            for bb in range(kw):
                                pr, pc = r * sh + a * dh, c * sw + bb * dw_
                                dw[o, ci, a, bb] += dy[i, o, r, c] * xp[i, g * cg + ci, pr, pc]
                                dxp[i, g * cg + ci, pr, pc] += dy[i, o, r, c] * w[o, ci, a, bb]
    db = dy.sum(axis=(0, 2, 3))
    return _unpad_naive(dxp, pads, padding_mode, x.shape), dw, db


def true_convolution_naive(x, k):
    """The lecture's true 2-D convolution, 'valid' part: y(r, c) = sum_{a,b} x(r - a, c - b) k(a, b)
    for the output positions where every x index exists (r from kH-1 to H-1)."""
    h, w = x.shape
    kh, kw = k.shape
    y = np.zeros((h - kh + 1, w - kw + 1))
    for r in range(kh - 1, h):
        for c in range(kw - 1, w):
            y[r - kh + 1, c - kw + 1] = sum(x[r - a, c - b] * k[a, b]
                                            for a in range(kh) for b in range(kw))
    return y


def locally_connected2d_naive(x, w, b=None, stride=1, padding=0, dilation=1,
                              padding_mode="zeros"):
    n = x.shape[0]
    ho, wo, c_out, c_in, kh, kw = w.shape
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    xp = pad_naive(x, pads_of(padding, (kh, kw), (dh, dw)), padding_mode)
    y = np.zeros((n, c_out, ho, wo), x.dtype)
    for i in range(n):
        for o in range(c_out):
            for r in range(ho):
                for c in range(wo):
                    patch = xp[i, :, r * sh:r * sh + dh * (kh - 1) + 1:dh,
                               c * sw:c * sw + dw * (kw - 1) + 1:dw]
                    y[i, o, r, c] = np.sum(patch * w[r, c, o]) + (b[o, r, c] if b is not None else 0)
    return y


def locally_connected2d_backward_naive(dy, x, w, stride=1, padding=0, dilation=1,
                                       padding_mode="zeros"):
    n = x.shape[0]
    ho, wo, c_out, c_in, kh, kw = w.shape
    (sh, sw), (dh, dw_) = pair(stride), pair(dilation)
    pads = pads_of(padding, (kh, kw), (dh, dw_))
    xp = pad_naive(x, pads, padding_mode)
    dw = np.zeros(w.shape, x.dtype)
    dxp = np.zeros(xp.shape, x.dtype)
    for i in range(n):
        for o in range(c_out):
            for r in range(ho):
                for c in range(wo):
                    rs = slice(r * sh, r * sh + dh * (kh - 1) + 1, dh)
                    cs = slice(c * sw, c * sw + dw_ * (kw - 1) + 1, dw_)
                    dw[r, c, o] += dy[i, o, r, c] * xp[i, :, rs, cs]
                    dxp[i, :, rs, cs] += dy[i, o, r, c] * w[r, c, o]
    return _unpad_naive(dxp, pads, padding_mode, x.shape), dw, dy.sum(axis=0)


def _pool_windows(h, k, s, p, d, ceil_mode):
    """For each output index along one axis: the input indices of its window (in order),
    with None for a padded position."""
    out = out_size(h, k, s, p, p, d, ceil_mode)
    return [[(o * s - p + a * d) if 0 <= o * s - p + a * d < h else None for a in range(k)]
            for o in range(out)]


def max_pool2d_naive(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Returns (y, argmax) where argmax[n, c, r, q] is the flat index of the first maximum.

    PyTorch's CPU kernel's running update, tap by tap in row-major window order: take the
    tap if ``val > max or isnan(val)`` (so NaN propagates and a window's last NaN wins),
    starting from the first tap inside the input."""
    (kh, kw) = pair(kernel_size)
    (sh, sw) = pair(stride) if stride is not None else (kh, kw)
    (ph, pw), (dh, dw) = pair(padding), pair(dilation)
    n, ch, h, w = x.shape
    rows = _pool_windows(h, kh, sh, ph, dh, ceil_mode)
    cols = _pool_windows(w, kw, sw, pw, dw, ceil_mode)
    y = np.zeros((n, ch, len(rows), len(cols)), x.dtype)
    arg = np.zeros(y.shape, np.int64)
    for i in range(n):
        for c in range(ch):
            for r, rr in enumerate(rows):
                for q, cc in enumerate(cols):
                    best, where = -np.inf, None
                    for a in rr:
                        for b in cc:
                            if a is None or b is None:
                                continue
                            v = x[i, c, a, b]
                            if where is None or v > best or np.isnan(v):
                                best, where = v, a * w + b
                    y[i, c, r, q], arg[i, c, r, q] = best, where
    return y, arg


def max_pool2d_backward_naive(dy, x, kernel_size, stride=None, padding=0, dilation=1,
                              ceil_mode=False):
    _, arg = max_pool2d_naive(x, kernel_size, stride, padding, dilation, ceil_mode)
    dx = np.zeros(x.shape, x.dtype)
    w = x.shape[3]
    for i, c, r, q in np.ndindex(*dy.shape):
        a = arg[i, c, r, q]
        dx[i, c, a // w, a % w] += dy[i, c, r, q]
    return dx


def _avg_windows(h, k, s, p, ceil_mode):
    """Per output index: (input indices inside the input, window length clipped to the padded
    input): PyTorch's avg_pool2d divisor rule, from its docs and CPU kernel."""
    out = out_size(h, k, s, p, p, 1, ceil_mode)
    res = []
    for o in range(out):
        start = o * s - p
        end = min(start + k, h + p)
        res.append(([j for j in range(start, end) if 0 <= j < h], end - start))
    return res


def avg_pool2d_naive(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                     count_include_pad=True):
    (kh, kw) = pair(kernel_size)
    (sh, sw) = pair(stride) if stride is not None else (kh, kw)
    (ph, pw) = pair(padding)
    n, ch, h, w = x.shape
    rows = _avg_windows(h, kh, sh, ph, ceil_mode)
    cols = _avg_windows(w, kw, sw, pw, ceil_mode)
    y = np.zeros((n, ch, len(rows), len(cols)), x.dtype)
    for i, c in np.ndindex(n, ch):
        for r, (rr, lh) in enumerate(rows):
            for q, (cc, lw) in enumerate(cols):
                total = sum(x[i, c, a, b] for a in rr for b in cc)
                div = lh * lw if count_include_pad else len(rr) * len(cc)
                y[i, c, r, q] = total / div
    return y


def avg_pool2d_backward_naive(dy, x_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                              count_include_pad=True):
    (kh, kw) = pair(kernel_size)
    (sh, sw) = pair(stride) if stride is not None else (kh, kw)
    (ph, pw) = pair(padding)
    h, w = x_shape[2:]
    rows = _avg_windows(h, kh, sh, ph, ceil_mode)
    cols = _avg_windows(w, kw, sw, pw, ceil_mode)
    dx = np.zeros(x_shape, dy.dtype)
    for i, c in np.ndindex(*x_shape[:2]):
        for r, (rr, lh) in enumerate(rows):
            for q, (cc, lw) in enumerate(cols):
                div = lh * lw if count_include_pad else len(rr) * len(cc)
                for a in rr:
                    for b in cc:
                        dx[i, c, a, b] += dy[i, c, r, q] / div
    return dx


def global_avg_pool2d_naive(x):
    n, c, h, w = x.shape
    y = np.zeros((n, c, 1, 1), x.dtype)
    for i, j in np.ndindex(n, c):
        y[i, j, 0, 0] = sum(x[i, j, a, b] for a in range(h) for b in range(w)) / (h * w)
    return y


def numeric_grad(f, x, dy, h=1e-4):
    """Centred finite difference of sum(f(x) * dy) with respect to x (CS231n gradient_check:
    eval_numerical_gradient_array). x is float64 and modified in place, then restored."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = np.sum(f(x) * dy)
        x[i] = old - h
        minus = np.sum(f(x) * dy)
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


def rel_error(a, b):
    """Largest difference relative to the largest magnitude (CS231n's elementwise ratio blows
    up on entries that are ~0 by accident, where finite differences only show rounding)."""
    return np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-12)
