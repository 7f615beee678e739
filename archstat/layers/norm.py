"""Normalisation family: ``batch_norm2d`` (torch.nn.BatchNorm2d) and ``lrn``
(torch.nn.LocalResponseNorm, the AlexNet "NORM" layer). Output shape = input shape.

Kernels: :func:`batch_norm2d` / :func:`batch_norm2d_backward` and :func:`lrn` /
:func:`lrn_backward`, NCHW (any rank >= 2 with channels on axis 1), float32 or float64;
outputs keep the input's dtype and parameters are cast to it.
"""
from __future__ import annotations

import numpy as np

from ..errors import ArchstatError
from .registry import INFERRED, REQUIRED, Field, LayerType, check_declared, numel, register, require_rank

__kernels__ = ("batch_norm2d", "batch_norm2d_backward", "lrn", "lrn_backward")


# ------------------------------------------------------------------- batch norm

def _per_channel(v: np.ndarray | None, x: np.ndarray) -> np.ndarray | None:
    """A (C,) vector cast to x's dtype and shaped to broadcast over (N, C, H, W)."""
    if v is None:
        return None
    return np.asarray(v).astype(x.dtype, copy=False).reshape((1, -1) + (1,) * (x.ndim - 2))


def _reduce_axes(x: np.ndarray) -> tuple[int, ...]:
    return (0,) + tuple(range(2, x.ndim))


def _bn_statistics(x, running_mean, running_var, training, momentum, eps):
    """Mean and 1/std used to normalise; updates the running statistics in training.

    Training (or no running statistics): batch mean and *biased* variance over (N, H, W);
    the running statistics, when given, move by ``momentum`` towards the batch mean and the
    *unbiased* variance (m / (m - 1) times the biased one, m = N*H*W), as PyTorch
    (torch.nn.BatchNorm2d docs). Inference: the running statistics.
    """
    axes = _reduce_axes(x)
    if training or running_mean is None:
        m = x.size // x.shape[1]
        if m <= 1:
            raise ArchstatError(f"batch norm in training needs more than one value per channel, "
                                f"got input shape {tuple(x.shape)}", hint="use a batch larger than 1")
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        if training and running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += (momentum * m / (m - 1)) * var
    else:
        mean = np.asarray(running_mean).astype(x.dtype, copy=False)
        var = np.asarray(running_var).astype(x.dtype, copy=False)
    invstd = 1 / np.sqrt(var + eps)
    return mean.astype(x.dtype, copy=False), invstd.astype(x.dtype, copy=False)


def batch_norm2d(x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                 running_mean: np.ndarray | None, running_var: np.ndarray | None,
                 training: bool, momentum: float = 0.1, eps: float = 1e-5) -> np.ndarray:
    """Batch normalisation, as torch.nn.functional.batch_norm (Ioffe & Szegedy 2015, Alg. 1).

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` per channel. x: (N, C, H, W);
    weight, bias, running_mean, running_var: (C,) or None. In training the batch statistics
    normalise and the running statistics (if given) are updated **in place**; at inference
    the running statistics normalise (the batch ones when there are none, as PyTorch with
    ``track_running_stats=False``). Returns y in x's dtype.
    """
    return _bn_forward(x, weight, bias, running_mean, running_var, training, momentum, eps)[0]


def batch_norm2d_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray | None,
                          running_mean: np.ndarray | None, running_var: np.ndarray | None,
                          training: bool, eps: float = 1e-5
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`batch_norm2d` with the same arguments: ``(dx, dweight, dbias)``.

    In training the batch statistics are recomputed from x (the running statistics are
    not touched again); at inference the running statistics are constants. dweight and
    dbias are returned even when weight/bias are None (they are then simply unused).
    """
    if training:
        running_mean = running_var = None
    _, cache = _bn_forward(x, weight, None, running_mean, running_var, False, 0.0, eps)
    return _bn_backward(dy, cache)


def _bn_forward(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """Return ``(y, cache)``. With batch statistics the cache keeps xhat = (x - mean) * invstd;
    with running statistics y = x * a + c folds everything into one pass (a single new array)
    and the cache keeps x itself."""
    mean, invstd = _bn_statistics(x, running_mean, running_var, training, momentum, eps)
    w = None if weight is None else np.asarray(weight).astype(x.dtype, copy=False)
    if training or running_mean is None:
        xhat = x - _per_channel(mean, x)
        xhat *= _per_channel(invstd, x)
        if w is not None:
            y = xhat * _per_channel(w, x)
        else:  # the cache keeps xhat, so the bias needs an array of its own
            y = xhat if bias is None else xhat.copy()
        if bias is not None:
            y += _per_channel(bias, x)
        return y, (True, xhat, None, invstd, w)
    a = invstd if w is None else invstd * w
    c = -mean * a
    if bias is not None:
        c += np.asarray(bias).astype(x.dtype, copy=False)
    y = x * _per_channel(a, x)
    y += _per_channel(c, x)
    return y, (False, x, mean, invstd, w)


def _bn_backward(dy, cache):
    """``(dx, dweight, dbias)`` from a :func:`_bn_forward` cache.

    With batch statistics (mean and var depend on x; m = N*H*W, sums over N, H, W):
    ``dx = weight * invstd / m * (m * dy - sum(dy) - xhat * sum(dy * xhat))``.
    With running statistics (constants): ``dx = dy * weight * invstd``.
    """
    batch_stats, saved, mean, invstd, w = cache
    axes = _reduce_axes(dy)
    xhat = saved if batch_stats else (saved - _per_channel(mean, saved)) * _per_channel(invstd, saved)
    dbias = dy.sum(axis=axes)
    dweight = (dy * xhat).sum(axis=axes)
    scale = invstd if w is None else invstd * w
    if batch_stats:
        m = dy.size // dy.shape[1]
        dx = dy - _per_channel(dbias / m, dy)
        dx -= xhat * _per_channel(dweight / m, dy)
        dx *= _per_channel(scale, dy)
    else:
        dx = dy * _per_channel(scale, dy)
    return dx, dweight, dbias


# -------------------------------------------------------------------------- LRN

def _channel_window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """out[:, c] = sum of a[:, j] for c - before <= j <= c + after, zero outside [0, C)."""
    out = a.copy()
    channels = a.shape[1]
    for shift in range(1, before + 1):
        if shift < channels:
            out[:, shift:] += a[:, :channels - shift]
    for shift in range(1, after + 1):
        if shift < channels:
            out[:, :channels - shift] += a[:, shift:]
    return out


def _lrn_scale(x, size, alpha, k):
    """k + alpha / size * (sum of x^2 over channels c - size//2 .. c + (size-1)//2)."""
    scale = _channel_window_sum(x * x, size // 2, (size - 1) // 2)
    scale *= alpha / size
    scale += k
    return scale


def lrn(x: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75,
        k: float = 1.0) -> np.ndarray:
    """Local response normalisation across channels, as torch.nn.functional.local_response_norm.

    ``y_c = x_c / (k + alpha/size * sum_{j=c-size//2}^{c+(size-1)//2} x_j^2) ** beta``, the
    channel window zero-padded at both ends (Krizhevsky et al. 2012, Sec. 3.3, with
    PyTorch's alpha/size scaling). x: (N, C, ...). Returns y in x's dtype.
    """
    return x * _lrn_scale(x, size, alpha, k) ** -beta


def lrn_backward(dy: np.ndarray, x: np.ndarray, size: int, alpha: float = 1e-4,
                 beta: float = 0.75, k: float = 1.0, scale: np.ndarray | None = None) -> np.ndarray:
    """Gradient of :func:`lrn` with respect to x (``scale``: the saved denominator base, optional).

    With S_c the scale of channel c, ``dx_i = dy_i S_i^-beta - 2 alpha beta / size * x_i *
    sum_{c : i in window(c)} dy_c x_c S_c^(-beta-1)``; channel i lies in the windows of
    c = i - (size-1)//2 .. i + size//2, the transposed window.
    """
    if scale is None:
        scale = _lrn_scale(x, size, alpha, k)
    dy = dy.astype(x.dtype, copy=False)
    t = dy * x * scale ** (-beta - 1)
    dx = _channel_window_sum(t, (size - 1) // 2, size // 2)
    dx *= x * (-2 * alpha * beta / size)
    dx += dy * scale ** -beta
    return dx


@register
class BatchNorm2d(LayerType):
    """Batch normalisation over (N, H, W) per channel, as torch.nn.BatchNorm2d.

    Counts: MACs = 0. FLOPs = 2 per element at inference (the running statistics and the
    affine weight fold into one multiply and one add per element).
    Parameters: weight (gamma) and bias (beta), C each, when affine. Buffers: running_mean and
    running_var, C each, when track_running_stats (PyTorch's scalar num_batches_tracked is not counted).
    """

    name = "batch_norm2d"
    alias = "bn"
    family = "norm"
    fields = (
        Field("num_features", "int", INFERRED, "channels; inferred from the graph", minimum=1),
        Field("eps", "float", 1e-5, "added to the variance", minimum=0.0),
        Field("momentum", "float", 0.1, "running-statistics update rate", minimum=0.0, maximum=1.0),
        Field("affine", "bool", True, "learn a per-channel scale (weight) and shift (bias)"),
        Field("track_running_stats", "bool", True, "keep running mean and variance buffers"),
    )

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        require_rank(x, 4, self.name)
        check_declared(attrs, "num_features", x[1], "channels")
        return tuple(x)

    def param_shapes(self, in_shapes, attrs):
        c = in_shapes[0][1]
        return {"weight": (c,), "bias": (c,)} if attrs["affine"] else {}

    def buffer_shapes(self, in_shapes, attrs):
        c = in_shapes[0][1]
        return {"running_mean": (c,), "running_var": (c,)} if attrs["track_running_stats"] else {}

    def initial_buffer(self, name, shape):
        # PyTorch's reset_running_stats: mean 0, variance 1 (the identity before training)
        return np.ones(shape) if name == "running_var" else np.zeros(shape)

    def flops(self, in_shapes, out_shape, attrs):
        return 2 * numel(out_shape)

    def forward(self, xs, params, attrs, ctx):
        return _bn_forward(xs[0], params.get("weight"), params.get("bias"),
                           ctx.buffers.get("running_mean"), ctx.buffers.get("running_var"),
                           ctx.train, attrs["momentum"], attrs["eps"])

    def backward(self, dy, cache):
        dx, dweight, dbias = _bn_backward(dy, cache)
        return [dx], ({} if cache[-1] is None else {"weight": dweight, "bias": dbias})


@register
class LRN(LayerType):
    """Local response normalisation across channels, as torch.nn.LocalResponseNorm:
    b_c = a_c / (k + alpha/size * sum of a^2 over the `size` neighbouring channels) ^ beta.

    Counts: MACs = 0. FLOPs = size + 4 per element: one square, size - 1 adds for the
    window sum, then scale, add k, power and divide.
    """

    name = "lrn"
    alias = "lrn"
    family = "norm"
    fields = (
        Field("size", "int", REQUIRED, "number of neighbouring channels summed", minimum=1),
        Field("alpha", "float", 1e-4, "scale of the sum of squares"),
        Field("beta", "float", 0.75, "exponent"),
        Field("k", "float", 1.0, "additive constant (2 in AlexNet)"),
    )

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        if len(x) < 3:
            require_rank(x, 4, self.name)
        return tuple(x)

    def flops(self, in_shapes, out_shape, attrs):
        return (attrs["size"] + 4) * numel(out_shape)

    def forward(self, xs, params, attrs, ctx):
        x = xs[0]
        args = attrs["size"], attrs["alpha"], attrs["beta"], attrs["k"]
        scale = _lrn_scale(x, args[0], args[1], args[3])
        return x * scale ** -args[2], (x, scale, args)

    def backward(self, dy, cache):
        x, scale, (size, alpha, beta, k) = cache
        return [lrn_backward(dy, x, size, alpha, beta, k, scale=scale)], {}
