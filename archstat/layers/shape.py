"""Shape family: the model ``input``, ``flatten``, ``dropout`` and ``softmax``.

Kernels: :func:`flatten`, :func:`dropout`, :func:`softmax` and their ``*_backward``. Any
float dtype; outputs keep the input's dtype.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArchstatError
from .registry import Field, LayerType, Window, numel, register

__kernels__ = ("flatten", "flatten_backward", "dropout", "dropout_backward", "softmax",
               "softmax_backward")


def flatten(x: np.ndarray, start_dim: int = 1, end_dim: int = -1) -> np.ndarray:
    """Merge dimensions start_dim..end_dim into one (torch.flatten); a view when x is
    contiguous (as the outputs of the kernels are), a copy otherwise."""
    rank = x.ndim
    start, end = start_dim % rank, end_dim % rank
    return x.reshape(x.shape[:start] + (numel(x.shape[start:end + 1]),) + x.shape[end + 1:])


def flatten_backward(dy: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """Reshape the gradient back to the input's shape (a view)."""
    return dy.reshape(in_shape)


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


def dropout_backward(dy: np.ndarray, mask: np.ndarray | None, p: float) -> np.ndarray:
    """dx = dy * mask / (1 - p) (dy itself at inference, when mask is None)."""
    if mask is None:
        return dy
    dx = dy * mask
    if 0 < p < 1:
        dx *= 1 / (1 - p)
    return dx


def softmax(x: np.ndarray, dim: int = 1) -> np.ndarray:
    """exp(x) / sum exp(x) along ``dim`` (torch.softmax), with the max subtracted first so
    exp never overflows (the result is unchanged)."""
    y = x - x.max(axis=dim, keepdims=True)
    np.exp(y, out=y)
    y /= y.sum(axis=dim, keepdims=True)
    return y


def softmax_backward(dy: np.ndarray, y: np.ndarray, dim: int = 1) -> np.ndarray:
    """dx = y * (dy - sum(dy * y) along dim), with y = softmax(x) (the softmax Jacobian
    diag(y) - y y^T applied to dy)."""
    dx = dy - (dy * y).sum(axis=dim, keepdims=True)
    dx *= y
    return dx


@register
class Input(LayerType):
    """The model's input tensor (N, C, H, W), named `input`; its size comes from the spec.

    Counts: MACs = 0. FLOPs = 0.
    """

    name = "input"
    alias = "input"
    family = "shape"
    min_inputs = 0
    max_inputs = 0

    def output_shape(self, in_shapes, attrs):  # pragma: no cover - the graph sets it
        raise AssertionError("the input's shape comes from the spec")

    def flops(self, in_shapes, out_shape, attrs):
        return 0


@register
class Flatten(LayerType):
    """Flatten dimensions start_dim..end_dim into one, as torch.nn.Flatten (a view).

    Counts: MACs = 0. FLOPs = 0 (a reshape).
    """

    is_view = True

    name = "flatten"
    alias = "flatten"
    family = "shape"
    fields = (
        Field("start_dim", "int", 1, "first dimension to flatten"),
        Field("end_dim", "int", -1, "last dimension to flatten"),
    )

    def _dims(self, shape, attrs):
        rank = len(shape)
        start, end = attrs["start_dim"], attrs["end_dim"]
        for key, d in (("start_dim", start), ("end_dim", end)):
            if not -rank <= d < rank:
                raise ArchstatError(f"{d} is out of range for an input of rank {rank}", field=key)
        start, end = start % rank, end % rank
        if start == 0:
            raise ArchstatError("cannot flatten the batch dimension", field="start_dim",
                                hint="use start_dim: 1")
        if end < start:
            raise ArchstatError(f"end_dim {attrs['end_dim']} comes before start_dim "
                                f"{attrs['start_dim']}", field="end_dim")
        return start, end

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        start, end = self._dims(x, attrs)
        return tuple(x[:start]) + (numel(x[start:end + 1]),) + tuple(x[end + 1:])

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    def forward(self, xs, params, attrs, ctx):
        x = xs[0]
        return flatten(x, attrs["start_dim"], attrs["end_dim"]), x.shape

    def backward(self, dy, cache):
        return [flatten_backward(dy, cache)], {}

    def window(self, in_shapes, attrs):
        x = in_shapes[0]
        if len(x) == 4 and self._dims(x, attrs)[1] >= 2:
            return Window((x[2], x[3]), (1, 1), (0, 0))  # every pixel feeds the flat vector
        return None


@register
class Dropout(LayerType):
    """Dropout with probability p, as torch.nn.Dropout (identity at inference).

    Counts: MACs = 0. FLOPs = 0 at inference (identity).
    """

    is_view = True  # at inference PyTorch returns the input tensor itself

    def training_extra_bytes(self, out_elements, itemsize):
        # training draws a new output and keeps a one-byte mask per element for backward
        return out_elements * (itemsize + 1)

    name = "dropout"
    alias = "drop"
    family = "shape"
    fields = (
        Field("p", "float", 0.5, "probability of zeroing an element", minimum=0.0, maximum=1.0),
        Field("inplace", "bool", False, "overwrite the input (no new activation memory)"),
    )

    def output_shape(self, in_shapes, attrs):
        return tuple(in_shapes[0])

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    def forward(self, xs, params, attrs, ctx):
        y, mask = dropout(xs[0], attrs["p"], ctx.train, ctx.rng, self.writes_in_place(attrs))
        return y, (mask, attrs["p"])

    def backward(self, dy, cache):
        mask, p = cache
        return [dropout_backward(dy, mask, p)], {}


@register
class Softmax(LayerType):
    """Softmax along a dimension (classes by default), as torch.nn.Softmax.

    Counts: MACs = 0. FLOPs = 3 per element (exp, add into the sum, divide); the
    max-subtraction for numerical stability is not counted.
    """

    name = "softmax"
    alias = "softmax"
    family = "shape"
    fields = (Field("dim", "int", 1, "dimension that sums to one"),)

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        if not -len(x) <= attrs["dim"] < len(x) or attrs["dim"] % len(x) == 0:
            raise ArchstatError(f"dim {attrs['dim']} is not a feature dimension of shape {x}",
                                field="dim", hint="use dim: 1")
        return tuple(x)

    def flops(self, in_shapes, out_shape, attrs):
        return 3 * numel(out_shape)

    def forward(self, xs, params, attrs, ctx):
        y = softmax(xs[0], attrs["dim"])
        return y, (y, attrs["dim"])

    def backward(self, dy, cache):
        y, dim = cache
        return [softmax_backward(dy, y, dim)], {}
