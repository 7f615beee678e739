"""Naive loop references for hardswish, hardsigmoid, gelu, layer_norm, layer_norm2d and
layer_scale, written from the formulas: one element (or one normalised group) at a time,
plain Python floats, ``math.erf`` / ``math.tanh``. Slow on purpose; each says its formula."""
from __future__ import annotations

import math

import numpy as np


def _elementwise(x, fn):
    y = np.zeros(x.shape, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        y[idx] = fn(float(x[idx]))
    return y


def _relu6(v):
    return min(max(v, 0.0), 6.0)


def hardswish_naive(x):
    """x * relu6(x + 3) / 6 (Howard et al. 2019, Sec. 5.2)."""
    return _elementwise(x, lambda v: v * _relu6(v + 3.0) / 6.0)


def hardsigmoid_naive(x):
    """relu6(x + 3) / 6."""
    return _elementwise(x, lambda v: _relu6(v + 3.0) / 6.0)


def gelu_naive(x, approximate="none"):
    """0.5 x (1 + erf(x / sqrt 2)); tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    (Hendrycks & Gimpel 2016, Sec. 2)."""
    if approximate == "tanh":
        k = math.sqrt(2.0 / math.pi)
        return _elementwise(x, lambda v: 0.5 * v * (1.0 + math.tanh(k * (v + 0.044715 * v ** 3))))
    return _elementwise(x, lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))))


def _normalise_group(values, weights, biases, eps):
    """(v - mu) / sqrt(sigma^2 + eps) * w + b over one group; mu = 1/m sum v,
    sigma^2 = 1/m sum (v - mu)^2 (biased)."""
    m = len(values)
    mu = sum(values) / m
    var = sum((v - mu) ** 2 for v in values) / m
    return [(v - mu) / math.sqrt(var + eps) * w + b for v, w, b in zip(values, weights, biases)]


def layer_norm_naive(x, k, weight=None, bias=None, eps=1e-5):
    """Layer norm over the last k dimensions of x: each index of the leading dimensions is one
    group of prod(x.shape[-k:]) values; weight and bias (or None: 1 and 0) of x.shape[-k:]."""
    lead, tail = x.shape[:x.ndim - k], x.shape[x.ndim - k:]
    y = np.zeros(x.shape, dtype=np.float64)
    for i in np.ndindex(lead):
        cells = list(np.ndindex(tail))
        out = _normalise_group([float(x[i + c]) for c in cells],
                               [1.0 if weight is None else float(weight[c]) for c in cells],
                               [0.0 if bias is None else float(bias[c]) for c in cells], eps)
        for c, v in zip(cells, out):
            y[i + c] = v
    return y


def layer_norm2d_naive(x, weight=None, bias=None, eps=1e-5):
    """Layer norm over the channels of each pixel (n, :, h, w) of an (N, C, H, W) array;
    weight and bias (or None) of (C,)."""
    n_batch, channels, height, width = x.shape
    y = np.zeros(x.shape, dtype=np.float64)
    for n in range(n_batch):
        for h in range(height):
            for w in range(width):
                out = _normalise_group([float(x[n, c, h, w]) for c in range(channels)],
                                       [1.0 if weight is None else float(weight[c]) for c in range(channels)],
                                       [0.0 if bias is None else float(bias[c]) for c in range(channels)], eps)
                for c, v in enumerate(out):
                    y[n, c, h, w] = v
    return y


def channel_bias_naive(x, bias):
    """y[n, c, ...] = x[n, c, ...] + b_c."""
    b = np.asarray(bias).reshape(-1)
    y = np.zeros(x.shape, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        y[idx] = float(x[idx]) + float(b[idx[1]])
    return y


def layer_scale_naive(x, weight):
    """y[n, c, ...] = gamma_c * x[n, c, ...] (weight: C values in any shape)."""
    gamma = np.asarray(weight).reshape(-1)
    y = np.zeros(x.shape, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        y[idx] = float(gamma[idx[1]]) * float(x[idx])
    return y
