"""The normalisation family's kernels (the layer types are in :mod:`.norm`): batch norm,
LRN, layer norm (trailing dimensions, and ConvNeXt's channels-first form) and layer scale.

NCHW (any rank >= 2 with channels on axis 1, where a kernel says so); float32 or float64;
outputs keep the input's dtype and parameters are cast to it.
"""
from __future__ import annotations

import math
import threading

import numpy as np

from ..errors import ArchstatError
from . import threads
from .outbuf import reshaped, usable
from .registry import CACHE_BLOCK_BYTES, CacheBlocks, fmt_shape, kernel
from .ufunc_buffers import ufunc_buffers

# ------------------------------------------------------------------- batch norm

def _per_channel(v: np.ndarray | None, x: np.ndarray) -> np.ndarray | None:
    """A (C,) vector cast to x's dtype and shaped to broadcast over (N, C, H, W)."""
    if v is None:
        return None
    return np.asarray(v).astype(x.dtype, copy=False).reshape((1, -1) + (1,) * (x.ndim - 2))


# Every batch-norm pass runs block by block (:func:`archstat.layers.registry.cache_blocks`),
# the (N, C, ...) arrays seen as rows (N, C, L) of one channel of one image: per block, the
# row sums are BLAS products with a vector of ones and the row dot products ``np.vecdot``
# (both about 2x faster than ``sum`` over the rows), and a temporary stays in cache. So the
# training forward reads x twice and writes y once (the statistics, then y = x * a + c), the
# backward reads dy and x twice and writes dx once. Against the earlier kernels (whole-array
# passes: ``mean``, ``var``, x - mean, ...), float32, measured side by side in one process on
# ResNet-50's 256x56x56 and 512x28x28 at batch 1 and 8 (bench/before_after.py): training
# forward 1.6-2.2x faster, backward (statistics recomputed) 1.2-2.1x; the inference forward,
# already one x * a + c, is unchanged for one image (two whole passes) and 1.1-1.3x faster
# from two images on. A pass with a per-channel operand (x * a[c]) runs at about half the
# speed of a plain one in NumPy 2.4 (its stride-0 inner loop is not vectorised), so the
# passes avoid them where a fold is exact enough. bench/norm_dw.py times them next to
# PyTorch's.

#: input bytes per block
BLOCK_BYTES = CACHE_BLOCK_BYTES
#: rows (H*W) this short or shorter get their per-channel operands repeated to full rows
#: (:meth:`_Blocks.per_channel`): a (C, 1) operand makes NumPy loop once per row, which
#: costs more than the row's work on small planes (measured side by side, a layer's forward
#: and backward at batch 4: 1.15-1.35x faster on 28x28, 14x14 and 7x7; no change at 56x56+)
SHORT_ROWS = 1024


def _rows(a: np.ndarray) -> np.ndarray:
    """(N, C, ...) as (N, C, L) rows, L the product of the trailing sizes (1 for (N, C))."""
    return a.reshape(a.shape[0], a.shape[1], -1)


class _Blocks:
    """The blocks of (N, C, L) rows, each with its per-channel column slice and one scratch
    array of the block's shape, reused."""

    def __init__(self, rows: np.ndarray):
        self.rows = rows
        self.shape, self.dtype = rows.shape, rows.dtype
        self.ones = np.ones(rows.shape[2], rows.dtype)
        self._bufs: dict[int, np.ndarray] = {}   # one scratch array per thread
        self._wide = {}

    def each(self, fn, arrays: int) -> None:
        """``fn(blk, chans)`` for every block, the blocks shared out over the cores
        (:mod:`.threads`) when the pass is large; ``arrays``: how many arrays of the rows'
        size the pass reads and writes."""
        blocks = CacheBlocks.of(self.shape, self.dtype.itemsize, BLOCK_BYTES)
        threads.each_block(lambda blk, _: fn(blk, blk[1]), self.rows, blocks, arrays)

    @staticmethod
    def widens(shape) -> bool:
        """Whether :meth:`per_channel` repeats its vectors to full rows for (N, C, L) rows:
        short rows of several images (long rows, or one image: nothing to share)."""
        return shape[2] <= SHORT_ROWS and shape[0] >= 2

    def per_channel(self, v: np.ndarray, chans: slice) -> np.ndarray:
        """Channels ``chans`` of a (C,) vector as an operand against (n, C_block, L) rows:
        (C_block, 1) for long rows; for short ones (L <= :data:`SHORT_ROWS`) each value
        repeated L times, (C_block, L), made once per vector and channel slice, so that the
        pass runs as one long contiguous loop instead of one short loop per row."""
        l = self.shape[2]
        if not self.widens(self.shape):
            return v[chans, None]
        key = (id(v), chans.start, chans.stop)
        if key not in self._wide:
            self._wide[key] = (v, np.repeat(v[chans], l).reshape(-1, l))  # v kept: id stays valid
        return self._wide[key][1]

    def scratch(self, like: np.ndarray) -> np.ndarray:
        """An array of ``like``'s shape, this thread's, reused from block to block."""
        me = threading.get_ident()
        buf = self._bufs.get(me)
        if buf is None or buf.size < like.size:
            buf = self._bufs[me] = np.empty(like.size, self.dtype)
        return buf[:like.size].reshape(like.shape)


def _batch_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and *biased* variance over (N, H, W), in float64.

    Each row (one channel of one image) is centred on its own mean in cache and its sum of
    squared deviations M2 taken; the rows then merge exactly as Chan, Golub & LeVeque (1979,
    "Updating formulae and a pairwise algorithm for computing sample variances") combine
    equal-sized parts: M2 = sum of the rows' M2 + L * sum of (row mean - mean)^2. No
    cancellation of E[x^2] - E[x]^2, and x is read once.
    """
    x3 = _rows(x)
    n, c, l = x3.shape
    row_mean = np.empty((n, c))
    row_m2 = np.empty((n, c))
    blocks = _Blocks(x3)

    def moments(blk, chans):
        xb = x3[blk]
        mb = np.matmul(xb, blocks.ones)
        mb /= l
        t = np.subtract(xb, mb[..., None], out=blocks.scratch(xb))
        row_mean[blk] = mb
        row_m2[blk] = np.vecdot(t, t)
    blocks.each(moments, 2)
    mean = row_mean.mean(axis=0)
    row_mean -= mean
    var = row_m2.sum(axis=0)
    var += l * np.einsum("nc,nc->c", row_mean, row_mean)
    var /= n * l
    return mean, var


def _bn_statistics(x, running_mean, running_var, training, momentum, eps):
    """Mean and 1/std used to normalise (float64); updates the running statistics in training.

    Training (or no running statistics): batch mean and *biased* variance over (N, H, W);
    the running statistics, when given, move by ``momentum`` towards the batch mean and the
    *unbiased* variance (m / (m - 1) times the biased one, m = N*H*W), as PyTorch
    (torch.nn.BatchNorm2d docs). Inference: the running statistics.
    """
    if training or running_mean is None:
        m = x.size // x.shape[1]
        if m <= 1:
            raise ArchstatError(f"batch norm in training needs more than one value per channel, "
                                f"got input shape {tuple(x.shape)}", hint="use a batch larger than 1")
        mean, var = _batch_moments(x)
        if training and running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += (momentum * m / (m - 1)) * var
    else:
        return _running_statistics(running_mean, running_var, x.dtype, eps)
    invstd = 1 / np.sqrt(var + eps)
    return mean, invstd


def _running_statistics(running_mean, running_var, dtype, eps):
    """Mean and 1/std (float64) of the running statistics, as rounded to ``dtype``."""
    mean = np.asarray(running_mean).astype(dtype, copy=False).astype(np.float64)
    invstd = np.asarray(running_var).astype(dtype, copy=False).astype(np.float64)
    invstd += eps
    np.sqrt(invstd, out=invstd)
    np.reciprocal(invstd, out=invstd)
    return mean, invstd


@kernel
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


@kernel
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
    mean, invstd = _bn_statistics(x, running_mean, running_var, False, 0.0, eps)
    w = None if weight is None else np.asarray(weight).astype(x.dtype, copy=False)
    return _bn_backward(dy, (running_mean is None, x, mean, invstd, w))


def bn_inference_workspace(shape, itemsize: int) -> int:
    """Bytes :func:`_bn_forward` allocates beyond y at inference for an input of ``shape``.
    Held through the pass: the float64 mean and 1/std of the running statistics (the cache
    keeps them) and the scale and shift cast to the input's dtype (:func:`bn_affine`; a copy
    for float32, none for float64: there a bound). Besides them, the most of: before the pass,
    the float64 scale and shift they are cast from; during it, NumPy's buffer for a broadcast
    per-channel operand, for every part that runs side by side (a bound: NumPy does not
    buffer every such pass), and for several images a row of ones and, on short rows, the
    scale and shift repeated to full rows (:meth:`_Blocks.per_channel`)."""
    n, c = shape[:2]
    rows = (n, c, math.prod(shape[2:]))
    if n == 1:
        split = threads.parts(c, 3 * itemsize * math.prod(rows))
        during = itemsize * sum(ufunc_buffers(1, (p.stop - p.start) * rows[2]) for p in split)
    else:
        wide = rows[2] * (1 + (2 * c if _Blocks.widens(rows) else 0))
        during = itemsize * wide + threads.scratch_bytes(rows, itemsize, CacheBlocks.of(rows, itemsize, BLOCK_BYTES),
                                                         2, lambda nb, cb: itemsize * ufunc_buffers(1, nb * cb * rows[2]))
    kept = c * (2 * 8 + 2 * itemsize)
    return kept + max(c * 2 * 8, during)


def bn_affine(mean, invstd, weight, bias, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Batch norm as y = x * a + c per channel: a = invstd * weight, c = bias - mean * a
    (computed in float64 from the statistics, then rounded to ``dtype``); weight and bias may
    be None."""
    a = invstd if weight is None else invstd * np.asarray(weight).astype(dtype, copy=False)
    c = np.multiply(mean, a)
    np.negative(c, out=c)
    if bias is not None:
        c += np.asarray(bias).astype(dtype, copy=False)
    return a.astype(dtype, copy=False), c.astype(dtype, copy=False)


def bn_inference_affine(weight, bias, running_mean, running_var, eps, dtype) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bn_affine` of the running statistics, as :func:`batch_norm2d` normalises at
    inference (the scale and shift a convolution before it can fold in)."""
    mean, invstd = _running_statistics(running_mean, running_var, np.dtype(dtype), eps)
    return bn_affine(mean, invstd, weight, bias, np.dtype(dtype))


def _bn_forward(x, weight, bias, running_mean, running_var, training, momentum, eps, out=None):
    """Return ``(y, cache)``: y = x * a + c per channel in one blocked pass, with
    a = invstd * weight and c = bias - mean * a, as PyTorch's CPU kernel folds it
    (``batch_norm_cpu_transform_input``). The cache keeps x itself, the float64 mean and
    1/std, and the weight (PyTorch saves the same). y is written into ``out`` when it fits
    (:mod:`archstat.layers.outbuf`)."""
    batch_stats = training or running_mean is None
    mean, invstd = _bn_statistics(x, running_mean, running_var, training, momentum, eps)
    w = None if weight is None else np.asarray(weight).astype(x.dtype, copy=False)
    a, c = bn_affine(mean, invstd, w, bias, x.dtype)
    x3 = _rows(x)
    rows = x3.shape
    y = out if usable(out, x.shape, x.dtype, rows) else np.empty(x.shape, x.dtype)
    y3 = reshaped(y, rows)
    if x3.shape[0] == 1:    # one image: two whole passes; blocks only add their overhead
        def affine(part):
            yp = np.multiply(x3[:, part], a[part, None], out=y3[:, part])
            yp += c[part, None]
        threads.each(affine, x3.shape[1], 3 * x.nbytes)
        return y, (batch_stats, x, mean, invstd, w)
    blocks = _Blocks(x3)

    def affine_block(blk, chans):
        yb = np.multiply(x3[blk], blocks.per_channel(a, chans), out=y3[blk])
        yb += blocks.per_channel(c, chans)
    blocks.each(affine_block, 2)
    return y, (batch_stats, x, mean, invstd, w)


def _bn_backward(dy, cache):
    """``(dx, dweight, dbias)`` from a :func:`_bn_forward` cache.

    With batch statistics (mean and var depend on x; m = N*H*W, sums over N, H, W):
    ``dx = weight * invstd * (dy - sum(dy) / m - (x - mean) * invstd^2 * sum(dy * (x - mean)) / m)``,
    PyTorch's CPU formula (``batch_norm_backward_cpu``). With running statistics (constants):
    ``dx = dy * weight * invstd``. In both, dbias = sum(dy) and
    dweight = invstd * sum(dy * (x - mean)).
    """
    batch_stats, x, mean, invstd, w = cache
    dy3, x3 = _rows(dy), _rows(x)
    n, c, l = x3.shape
    scale = (invstd if w is None else invstd * w).astype(x.dtype)
    mean_x = mean.astype(x.dtype)
    dx = np.empty(x.shape, x.dtype)
    dx3 = _rows(dx)
    sums = np.empty((n, c))
    dots = np.empty((n, c))
    blocks = _Blocks(x3)

    def reduce(blk, chans):
        dyb = dy3[blk]
        t = np.subtract(x3[blk], blocks.per_channel(mean_x, chans), out=blocks.scratch(dyb))
        sums[blk] = np.matmul(dyb, blocks.ones)
        dots[blk] = np.vecdot(dyb, t)
        if not batch_stats:
            np.multiply(dyb, blocks.per_channel(scale, chans), out=dx3[blk])
    blocks.each(reduce, 2 if batch_stats else 3)
    dbias = sums.sum(axis=0)
    dweight = dots.sum(axis=0)
    dweight *= invstd
    if batch_stats:
        # (x - mean) * k + sum(dy) / m folded into x * k + shift: the term is small next to
        # dy (k ~ invstd * |dy| / sqrt(m)), so the fold's rounding, eps * |mean| * k, is too;
        # one pass with a per-channel operand fewer (those cost 2x a plain pass in NumPy)
        m = n * l
        k = invstd * dweight / m
        shift = (dbias / m - mean * k).astype(x.dtype)
        k = k.astype(x.dtype)

        def gradient(blk, chans):
            d = np.multiply(x3[blk], blocks.per_channel(k, chans), out=dx3[blk])
            d += blocks.per_channel(shift, chans)
            np.subtract(dy3[blk], d, out=d)
            d *= blocks.per_channel(scale, chans)
        blocks.each(gradient, 3)
    return dx, dweight.astype(x.dtype), dbias.astype(x.dtype)


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


@kernel
def lrn(x: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75,
        k: float = 1.0) -> np.ndarray:
    """Local response normalisation across channels, as torch.nn.functional.local_response_norm.

    ``y_c = x_c / (k + alpha/size * sum_{j=c-size//2}^{c+(size-1)//2} x_j^2) ** beta``, the
    channel window zero-padded at both ends (Krizhevsky et al. 2012, Sec. 3.3, with
    PyTorch's alpha/size scaling). x: (N, C, ...). Returns y in x's dtype.
    """
    return x * _lrn_scale(x, size, alpha, k) ** -beta


@kernel
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


# ------------------------------------------------------------------- layer norm

def _ln_statistics(x: np.ndarray, axes: tuple[int, ...], eps: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x - mean, mean, 1 / sqrt(var + eps))`` over ``axes`` (kept as size-1 axes), with
    the *biased* variance, as PyTorch's layer norm."""
    mean = x.mean(axis=axes, keepdims=True)
    centred = x - mean
    invstd = np.square(centred).mean(axis=axes, keepdims=True)
    invstd += eps
    np.sqrt(invstd, out=invstd)
    np.reciprocal(invstd, out=invstd)
    return centred, mean, invstd


def ln_workspace(x_shape, axes, itemsize) -> int:
    """Bytes :func:`_ln_forward` allocates beyond y (x - mean, computed in place): the squares
    of the centred values (x's size) while their mean is taken, the mean and the inverse
    standard deviation (one per normalised group each), and NumPy's buffers for a reduction
    over an axis that is not the last (three of ``np.getbufsize()`` elements at most)."""
    size = math.prod(x_shape)
    stats = size // max(1, math.prod(x_shape[a] for a in axes))
    strided = any(a != len(x_shape) - 1 for a in axes)
    buffers = ufunc_buffers(3, size) if strided else 0
    return itemsize * (size + 2 * stats + buffers)


def _ln_forward(x, axes, weight, bias, eps):
    """``(y, mean, invstd)``: y = (x - mean) * invstd * weight + bias, the statistics over
    ``axes``; weight and bias (or None) already shaped to broadcast against x."""
    y, mean, invstd = _ln_statistics(x, axes, eps)
    y *= invstd
    if weight is not None:
        y *= weight
    if bias is not None:
        y += bias
    return y, mean, invstd


def _ln_backward(dy, x, mean, invstd, weight, axes):
    """``(dx, dweight, dbias)`` of :func:`_ln_forward`; dweight and dbias are summed over the
    axes that are not normalised (so they have the parameters' unbroadcast shape).

    With m the number of elements normalised together, xhat = (x - mean) * invstd and
    g = dy * weight: ``dx = invstd * (g - mean(g) - xhat * mean(g * xhat))``, the means over
    ``axes`` (Ba et al. 2016, "Layer Normalization"; the batch-norm derivation with the
    statistics taken per sample).
    """
    outer = tuple(a for a in range(dy.ndim) if a not in axes)
    xhat = x - mean
    xhat *= invstd
    dbias = dy.sum(axis=outer)
    g_xhat = dy * xhat
    dweight = g_xhat.sum(axis=outer)
    if weight is None:
        g = dy
    else:
        g = dy * weight
        np.multiply(g, xhat, out=g_xhat)
    dx = xhat
    dx *= g_xhat.mean(axis=axes, keepdims=True)
    np.subtract(g, dx, out=dx)
    dx -= g.mean(axis=axes, keepdims=True)
    dx *= invstd
    return dx, dweight, dbias


def _cast(v: np.ndarray | None, x: np.ndarray) -> np.ndarray | None:
    """A parameter (or None) as an array of x's dtype."""
    return None if v is None else np.asarray(v).astype(x.dtype, copy=False)


def _trailing_axes(x_shape, normalized_shape) -> tuple[int, ...]:
    """The axes of the trailing ``normalized_shape``; ArchstatError when they do not match."""
    ns = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    rank = len(x_shape)
    if not 0 < len(ns) < rank:
        raise ArchstatError(f"normalized_shape {list(ns)} must name 1 to {rank - 1} trailing dimensions "
                            f"of the input {fmt_shape(x_shape)} (not the batch)", field="normalized_shape",
                            hint=f"use normalized_shape: {list(x_shape[1:])} or a tail of it")
    if tuple(x_shape[rank - len(ns):]) != ns:
        tail = list(x_shape[rank - len(ns):])
        raise ArchstatError(f"normalized_shape {list(ns)} does not match the input's trailing dimensions "
                            f"{tail} (input {fmt_shape(x_shape)})", field="normalized_shape",
                            hint=f"use normalized_shape: {tail}, or leave it out to normalise over the "
                                 f"last dimension")
    return tuple(range(rank - len(ns), rank))


@kernel
def layer_norm(x: np.ndarray, normalized_shape, weight: np.ndarray | None = None,
               bias: np.ndarray | None = None, eps: float = 1e-5) -> np.ndarray:
    """Layer normalisation over the trailing dimensions, as torch.nn.functional.layer_norm
    (Ba et al. 2016; https://pytorch.org/docs/stable/generated/torch.nn.LayerNorm.html).

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, mean and biased variance over the
    last ``len(normalized_shape)`` dimensions of each sample. x: (N, ...) whose trailing
    dimensions equal ``normalized_shape`` (an int or a tuple); weight, bias: of
    normalized_shape, or None. Returns y in x's dtype.
    """
    axes = _trailing_axes(x.shape, normalized_shape)
    y, _, _ = _ln_forward(x, axes, _cast(weight, x), _cast(bias, x), eps)
    return y


@kernel
def layer_norm_backward(dy: np.ndarray, x: np.ndarray, normalized_shape,
                        weight: np.ndarray | None = None, eps: float = 1e-5
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`layer_norm` with the same arguments: ``(dx, dweight, dbias)``
    (the statistics recomputed from x; dweight and dbias of normalized_shape, returned even
    when weight/bias are None)."""
    axes = _trailing_axes(x.shape, normalized_shape)
    _, mean, invstd = _ln_statistics(x, axes, eps)
    return _ln_backward(dy, x, mean, invstd, _cast(weight, x), axes)


@kernel
def layer_norm2d(x: np.ndarray, weight: np.ndarray | None = None, bias: np.ndarray | None = None,
                 eps: float = 1e-5) -> np.ndarray:
    """Layer normalisation over the channels at each pixel, as torchvision's
    ``models.convnext.LayerNorm2d`` (permute to NHWC, F.layer_norm over C, permute back),
    computed along axis 1 without the permutes. x: (N, C, H, W); weight, bias: (C,) or None.
    Returns y in x's dtype."""
    y, _, _ = _ln_forward(x, (1,), _per_channel(_cast(weight, x), x), _per_channel(_cast(bias, x), x),
                          eps)
    return y


@kernel
def layer_norm2d_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray | None = None,
                          eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`layer_norm2d`: ``(dx, dweight, dbias)``, dweight and dbias (C,)."""
    _, mean, invstd = _ln_statistics(x, (1,), eps)
    return _ln_backward(dy, x, mean, invstd, _per_channel(_cast(weight, x), x), (1,))


@kernel
def layer_scale(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """x times a per-channel scale, as ConvNeXt's ``self.layer_scale * x`` (torchvision's
    CNBlock; Liu et al. 2022, "A ConvNet for the 2020s", after CaiT's, Touvron et al. 2021).
    x: (N, C, H, W) or (N, C); weight: C values, (C, 1, 1) or (C,). Returns x's dtype."""
    return x * _per_channel(_cast(weight, x).reshape(-1), x)


@kernel
def layer_scale_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray]:
    """``(dx, dweight)``: dx = dy * weight per channel, dweight = the sum of dy * x over all
    but the channel axis, in weight's shape."""
    w = _cast(weight, x)
    dx = dy * _per_channel(w.reshape(-1), dy)
    axes = list(range(x.ndim))
    dweight = np.einsum(dy, axes, x, axes, [1]).reshape(w.shape)
    return dx, dweight


@kernel
def channel_bias(x: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x plus a per-channel constant, ``x + b[c]``: a shift an exported graph writes as an
    ``Add`` alone (a bias no conv or linear layer took in). x: (N, C, H, W) or (N, C); bias: C
    values. Returns x's dtype."""
    return x + _per_channel(np.asarray(bias).reshape(-1), x)


@kernel
def channel_bias_backward(dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(dx, dbias)``: dx = dy; dbias = the sum of dy over all but the channel axis."""
    axes = tuple(a for a in range(dy.ndim) if a != 1)
    return dy, dy.sum(axis=axes)

