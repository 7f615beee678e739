"""Naive loop references for the engine's non-window kernels, written from the formulas
(one output element at a time, plain Python arithmetic), and the finite-difference helper.

They are slow on purpose: clarity is their job. Each says the formula it implements.
"""
from __future__ import annotations

import math

import numpy as np


def linear_naive(x, w, b=None):
    """y[n, o] = sum_i x[n, i] * w[o, i] + b[o]."""
    n_batch, n_in = x.shape
    n_out = w.shape[0]
    y = np.zeros((n_batch, n_out), dtype=np.float64)
    for n in range(n_batch):
        for o in range(n_out):
            acc = 0.0
            for i in range(n_in):
                acc += float(x[n, i]) * float(w[o, i])
            y[n, o] = acc + (float(b[o]) if b is not None else 0.0)
    return y


def _elementwise(x, fn):
    y = np.zeros(x.shape, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        y[idx] = fn(float(x[idx]))
    return y


def relu_naive(x):
    """max(0, x)."""
    return _elementwise(x, lambda v: v if v > 0 else 0.0)


def sigmoid_naive(x):
    """1 / (1 + e^-x)."""
    return _elementwise(x, lambda v: 1.0 / (1.0 + math.exp(-v)) if v >= 0 else
                        math.exp(v) / (1.0 + math.exp(v)))


def tanh_naive(x):
    """(e^x - e^-x) / (e^x + e^-x)."""
    return _elementwise(x, math.tanh)


def lrn_naive(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """b_c = a_c / (k + alpha/size * sum_{j = c - size//2}^{c + (size-1)//2} a_j^2)^beta,
    channels outside [0, C) contributing 0 (PyTorch's local_response_norm)."""
    channels = x.shape[1]
    y = np.zeros(x.shape, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        n, c, rest = idx[0], idx[1], idx[2:]
        acc = 0.0
        for j in range(c - size // 2, c + (size - 1) // 2 + 1):
            if 0 <= j < channels:
                acc += float(x[(n, j, *rest)]) ** 2
        y[idx] = float(x[idx]) / (k + alpha / size * acc) ** beta
    return y


def batch_norm_backward_naive(dy, x, weight, mean=None, var=None, eps=1e-5):
    """``(dx, dweight, dbias)`` of :func:`batch_norm_naive`, per channel with Python floats.
    With xhat_i = (x_i - mu) / s, s = sqrt(sigma^2 + eps), m values per channel:
    dbias = sum dy_i; dweight = sum dy_i xhat_i; with batch statistics (Ioffe & Szegedy 2015,
    Sec. 3) dx_i = gamma / s * (dy_i - dbias / m - xhat_i * dweight / m), with given
    (constant) statistics dx_i = gamma / s * dy_i."""
    n_batch, channels = x.shape[:2]
    spatial = list(np.ndindex(x.shape[2:]))
    dx = np.zeros(x.shape, dtype=np.float64)
    dweight, dbias = np.zeros(channels), np.zeros(channels)
    for c in range(channels):
        idx = [(n, c, *s) for n in range(n_batch) for s in spatial]
        vals = [float(x[i]) for i in idx]
        g = [float(dy[i]) for i in idx]
        m = len(vals)
        if mean is None:
            mu = sum(vals) / m
            v = sum((a - mu) ** 2 for a in vals) / m
        else:
            mu, v = float(mean[c]), float(var[c])
        s = (v + eps) ** 0.5
        xhat = [(a - mu) / s for a in vals]
        db = sum(g)
        dw = sum(gi * h for gi, h in zip(g, xhat))
        gamma = 1.0 if weight is None else float(weight[c])
        for i, gi, h in zip(idx, g, xhat):
            dx[i] = gamma / s * (gi - db / m - h * dw / m) if mean is None else gamma / s * gi
        dweight[c], dbias[c] = dw, db
    return dx, dweight, dbias


def batch_norm_naive(x, weight, bias, mean=None, var=None, eps=1e-5):
    """y = (x - mu_c) / sqrt(sigma_c^2 + eps) * gamma_c + beta_c. With mean/var None the batch
    statistics over (N, H, W) are used: mu = 1/m sum x, sigma^2 = 1/m sum (x - mu)^2 (biased).
    Returns (y, batch_mean, batch_var) (the statistics used)."""
    n_batch, channels = x.shape[:2]
    spatial = list(np.ndindex(x.shape[2:]))
    used_mean, used_var = np.zeros(channels), np.zeros(channels)
    y = np.zeros(x.shape, dtype=np.float64)
    for c in range(channels):
        vals = [float(x[(n, c, *s)]) for n in range(n_batch) for s in spatial]
        if mean is None:
            mu = sum(vals) / len(vals)
            v = sum((a - mu) ** 2 for a in vals) / len(vals)
        else:
            mu, v = float(mean[c]), float(var[c])
        used_mean[c], used_var[c] = mu, v
        g = 1.0 if weight is None else float(weight[c])
        b = 0.0 if bias is None else float(bias[c])
        for n in range(n_batch):
            for s in spatial:
                y[(n, c, *s)] = (float(x[(n, c, *s)]) - mu) / math.sqrt(v + eps) * g + b
    return y, used_mean, used_var


def dropout_naive(x, mask, p):
    """y = x * mask / (1 - p) (inverted dropout), 0 where mask is False."""
    y = np.zeros(x.shape, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        y[idx] = float(x[idx]) / (1 - p) if mask[idx] else 0.0
    return y


def softmax_naive(x, dim=1):
    """y_i = e^(x_i - max) / sum_j e^(x_j - max) along dim."""
    moved = np.moveaxis(np.asarray(x, dtype=np.float64), dim, -1)
    y = np.zeros(moved.shape)
    for idx in np.ndindex(moved.shape[:-1]):
        row = [float(v) for v in moved[idx]]
        top = max(row)
        exps = [math.exp(v - top) for v in row]
        total = sum(exps)
        y[idx] = [e / total for e in exps]
    return np.moveaxis(y, -1, dim)


def concat_naive(xs, dim=1):
    """out[..., offset_k + i, ...] = xs[k][..., i, ...] with offset_k = sum of earlier sizes."""
    shape = list(xs[0].shape)
    shape[dim] = sum(x.shape[dim] for x in xs)
    y = np.zeros(shape, dtype=np.float64)
    offset = 0
    for x in xs:
        for idx in np.ndindex(x.shape):
            out = list(idx)
            out[dim] += offset
            y[tuple(out)] = x[idx]
        offset += x.shape[dim]
    return y


def add_naive(xs):
    """y = sum_k xs[k] elementwise."""
    y = np.zeros(xs[0].shape, dtype=np.float64)
    for idx in np.ndindex(y.shape):
        y[idx] = sum(float(x[idx]) for x in xs)
    return y


def flatten_naive(x, start_dim=1, end_dim=-1):
    """Row-major index arithmetic: dims start..end merge into one, the last varying fastest."""
    rank = x.ndim
    start, end = start_dim % rank, end_dim % rank
    merged = x.shape[start:end + 1]
    out_shape = x.shape[:start] + (math.prod(merged),) + x.shape[end + 1:]
    y = np.zeros(out_shape, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        flat = 0
        for i, size in zip(idx[start:end + 1], merged):
            flat = flat * size + i
        y[idx[:start] + (flat,) + idx[end + 1:]] = x[idx]
    return y


def cross_entropy_naive(logits, labels):
    """L = 1/N sum_n -log(e^{z_{n,y_n}} / sum_c e^{z_{n,c}})."""
    total = 0.0
    for row, label in zip(logits, labels):
        top = max(float(v) for v in row)
        log_sum = top + math.log(sum(math.exp(float(v) - top) for v in row))
        total += log_sum - float(row[label])
    return total / len(labels)


# ------------------------------------------------------------- gradient checking

def numerical_gradient(f, x, df, h=1e-5):
    """Centred differences of ``sum(f() * df)`` with respect to x, element by element
    (CS231n gradient_check.eval_numerical_gradient_array): x is perturbed in place and
    restored; f takes no arguments and reads x."""
    grad = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        plus = np.array(f(), dtype=np.float64, copy=True)
        x[idx] = old - h
        minus = np.array(f(), dtype=np.float64, copy=True)
        x[idx] = old
        grad[idx] = np.sum((plus - minus) * df) / (2 * h)
    return grad


def numerical_gradient_at(f, x, indices, h=1e-5):
    """Centred differences of the scalar f() at a few indices of x (for big tensors)."""
    out = []
    for idx in indices:
        old = x[idx]
        x[idx] = old + h
        plus = f()
        x[idx] = old - h
        minus = f()
        x[idx] = old
        out.append((plus - minus) / (2 * h))
    return np.array(out)


def sample_indices(shape, count, rng):
    """Up to ``count`` distinct random indices into an array of ``shape``."""
    total = math.prod(shape)
    flat = rng.choice(total, size=min(count, total), replace=False)
    return [tuple(int(i) for i in np.unravel_index(f, shape)) for f in flat]


def rel_error(a, b):
    """Normwise relative error max|a - b| / max(max|a|, max|b|).

    Elementwise relative error (CS231n's) is dominated by near-zero entries, where the
    finite difference's rounding (~1e-16 / h) is all there is; relative to the gradient's
    scale a wrong formula still shows as O(1) and a right one as ~1e-9."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), 1e-12)
    return float(np.max(np.abs(a - b), initial=0.0) / scale)
