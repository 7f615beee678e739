"""Shape-family kernels: flatten, dropout, softmax, permute, split, channel shuffle and
stochastic depth, forward and backward. Any float dtype; outputs keep the input's dtype.
Part of the shape family: :mod:`archstat.layers.shape` registers the layer types and
re-exports these for :mod:`archstat.engine`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArchstatError
from .registry import kernel, numel
from .window import ceil_div


@kernel
def flatten(x: np.ndarray, start_dim: int = 1, end_dim: int = -1) -> np.ndarray:
    """Merge dimensions start_dim..end_dim into one (torch.flatten); a view when x is
    contiguous (as the outputs of the kernels are), a copy otherwise."""
    rank = x.ndim
    start, end = start_dim % rank, end_dim % rank
    return x.reshape(x.shape[:start] + (numel(x.shape[start:end + 1]),) + x.shape[end + 1:])


@kernel
def flatten_backward(dy: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """Reshape the gradient back to the input's shape (a view)."""
    return dy.reshape(in_shape)


@kernel
def dropout(x: np.ndarray, p: float, training: bool, rng: Any = None,
            inplace: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Inverted dropout (Srivastava et al. 2014; torch.nn.functional.dropout).

    In training each element is kept with probability 1 - p and scaled by 1 / (1 - p), so
    inference is the identity (x itself is returned, mask None). ``rng``: a
    numpy.random.Generator or a seed. Returns ``(y, mask)``, mask a bool array of kept
    elements; ``inplace`` writes y into x. With p = 1 everything is dropped (y = 0).
    """
    if not training:
        return x, None
    rng = np.random.default_rng(rng)
    mask = rng.random(x.shape, dtype=np.float32) >= p if p < 1 else np.zeros(x.shape, bool)
    y = np.multiply(x, mask, out=x if inplace else None)
    if 0 < p < 1:
        y *= 1 / (1 - p)
    return y, mask


@kernel
def dropout_backward(dy: np.ndarray, mask: np.ndarray | None, p: float) -> np.ndarray:
    """dx = dy * mask / (1 - p) (dy itself at inference, when mask is None)."""
    if mask is None:
        return dy
    dx = dy * mask
    if 0 < p < 1:
        dx *= 1 / (1 - p)
    return dx


def _softmax_dim(x: np.ndarray, dim: int) -> int:
    """``dim`` checked against x's axes as torch does (a 0-d tensor takes dim 0 or -1)."""
    rank = max(x.ndim, 1)
    if not -rank <= dim < rank:
        raise ArchstatError(f"dim {dim} is out of range for an array of {x.ndim} dimension(s)", field="dim",
                            hint=f"use a dim from {-rank} to {rank - 1}")
    return dim


def softmax_workspace(shape, dim: int, itemsize: int) -> int:
    """Bytes :func:`softmax` allocates beyond its output: the maximum and the sum, one per row
    along ``dim`` each."""
    size = numel(shape)
    rows = size // max(1, shape[dim % len(shape)]) if shape else 0
    return itemsize * 2 * rows


@kernel
def softmax(x: np.ndarray, dim: int = 1) -> np.ndarray:
    """exp(x) / sum exp(x) along ``dim`` (torch.softmax), with the max subtracted first so
    exp never overflows (the result is unchanged). As torch: a 0-d array gives 1, an empty
    one an empty result."""
    x = np.asarray(x)
    _softmax_dim(x, dim)
    if x.ndim == 0:
        return np.ones_like(x)
    if x.size == 0:
        return x.copy()
    y = x - x.max(axis=dim, keepdims=True)
    np.exp(y, out=y)
    y /= y.sum(axis=dim, keepdims=True)
    return y


@kernel
def softmax_backward(dy: np.ndarray, y: np.ndarray, dim: int = 1) -> np.ndarray:
    """dx = y * (dy - sum(dy * y) along dim), with y = softmax(x) (the softmax Jacobian
    diag(y) - y y^T applied to dy). A 0-d softmax is constant: its gradient is 0."""
    _softmax_dim(np.asarray(y), dim)
    if np.ndim(y) == 0:
        return np.zeros_like(dy)
    dx = dy - (dy * y).sum(axis=dim, keepdims=True)
    dx *= y
    return dx


@kernel
def permute(x: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """Reorder the axes (torch.permute): output axis i is input axis ``dims[i]``. A view."""
    return np.transpose(x, dims)


@kernel
def permute_backward(dy: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """The gradient permuted back by the inverse permutation (a view of dy)."""
    return np.transpose(dy, np.argsort(dims))


def split_bounds(extent: int, index: int, chunks: int | None = None,
                 sizes: tuple[int, ...] | None = None) -> tuple[int, int]:
    """``[start, stop)`` of piece ``index`` when an axis of ``extent`` is cut by
    ``torch.chunk(chunks)`` (pieces of ceil(extent / chunks), the last one smaller, so there
    may be fewer than ``chunks`` pieces) or by ``torch.split(sizes)`` (sizes summing to the
    extent). Raises ArchstatError (field ``sizes`` or ``index``) otherwise."""
    if sizes is not None:
        if sum(sizes) != extent:
            raise ArchstatError(f"sizes {list(sizes)} sum to {sum(sizes)}, but the axis has {extent}",
                                field="sizes", hint=f"give sizes that sum to {extent}")
        pieces = len(sizes)
        if 0 <= index < pieces:
            start = sum(sizes[:index])
            return start, start + sizes[index]
    else:
        step = ceil_div(extent, chunks)
        pieces = ceil_div(extent, step)
        if 0 <= index < pieces:
            return index * step, min(extent, (index + 1) * step)
    how = f"sizes {list(sizes)}" if sizes is not None else f"chunks {chunks} of an axis of {extent}"
    raise ArchstatError(f"index {index} is out of range: {how} give {pieces} piece"
                        f"{'s' if pieces != 1 else ''}", field="index",
                        hint=f"use an index from 0 to {pieces - 1}")


@kernel
def split(x: np.ndarray, index: int, chunks: int | None = None, sizes: tuple[int, ...] | None = None,
          dim: int = 1) -> np.ndarray:
    """Piece ``index`` of ``torch.chunk(x, chunks, dim)`` or ``torch.split(x, sizes, dim)``
    (see :func:`split_bounds`): a view of x."""
    start, stop = split_bounds(x.shape[dim], index, chunks, sizes)
    where = [slice(None)] * x.ndim
    where[dim] = slice(start, stop)
    return x[tuple(where)]


@kernel
def split_backward(dy: np.ndarray, x_shape: tuple[int, ...], index: int, chunks: int | None = None,
                   sizes: tuple[int, ...] | None = None, dim: int = 1) -> np.ndarray:
    """The gradient written into zeros of the input's shape, at the piece's place."""
    dx = np.zeros(x_shape, dy.dtype)
    split(dx, index, chunks, sizes, dim)[...] = dy
    return dx


@kernel
def channel_shuffle(x: np.ndarray, groups: int) -> np.ndarray:
    """ShuffleNet's channel shuffle (Zhang et al. 2018; torch.nn.ChannelShuffle): x (N, C, H, W)
    seen as (N, groups, C / groups, H, W) with the two channel axes transposed, so output
    channel ``j * groups + i`` is input channel ``i * C / groups + j``. A new array."""
    n, c = x.shape[:2]
    y = np.empty(x.shape, x.dtype)
    np.copyto(y.reshape(n, c // groups, groups, *x.shape[2:]),
              x.reshape(n, groups, c // groups, *x.shape[2:]).swapaxes(1, 2))
    return y


@kernel
def channel_shuffle_backward(dy: np.ndarray, groups: int) -> np.ndarray:
    """The inverse shuffle: with C / groups groups it transposes the channel matrix back."""
    return channel_shuffle(dy, dy.shape[1] // groups)


@kernel
def stochastic_depth(x: np.ndarray, p: float, mode: str = "row", training: bool = False,
                     rng: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Stochastic depth (Huang et al. 2016), torchvision.ops.stochastic_depth's rule.

    In training, noise ~ Bernoulli(1 - p), one value per sample (``mode='row'``, shape
    (N, 1, ..., 1)) or one for the whole batch (``'batch'``), divided by 1 - p when that is
    positive; y = x * noise. Not training, or p = 0: the identity (x itself, noise None).
    ``rng``: a numpy.random.Generator or a seed. Returns ``(y, noise)`` in x's dtype.
    """
    if mode not in ("row", "batch"):
        raise ArchstatError(f"mode must be 'row' or 'batch', got {mode!r}", field="mode")
    if not training or p == 0:
        return x, None
    rng = np.random.default_rng(rng)
    survival = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.ndim - 1) if mode == "row" else (1,) * x.ndim
    noise = (rng.random(shape) < survival).astype(x.dtype)
    if survival > 0:
        noise /= x.dtype.type(survival)
    return x * noise, noise


@kernel
def stochastic_depth_backward(dy: np.ndarray, noise: np.ndarray | None) -> np.ndarray:
    """dx = dy * noise (dy itself when the forward was the identity)."""
    return dy if noise is None else dy * noise
