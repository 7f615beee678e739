"""Merge family: ``concat`` (Inception), ``add`` (ResNet skip connections) and ``mul``
(squeeze-and-excitation gates, broadcasting).

Both take two or more inputs, in the order the spec's ``inputs`` lists them.

Kernels: :func:`concat` / :func:`concat_backward`, :func:`add` / :func:`add_backward` and
:func:`mul` / :func:`mul_backward`.
Backward results may be views of ``dy`` or ``dy`` itself: callers must not write into them.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ArchstatError
from .outbuf import is_same_view
from .registry import declare_family, Field, fmt_shape, kernel, LayerType, numel, register

FAMILY = declare_family("merge", "merge", rank=5)



@kernel
def concat(xs: Sequence[np.ndarray], dim: int = 1, out: np.ndarray | None = None) -> np.ndarray:
    """Join arrays along ``dim`` (torch.cat); the result has xs[0]'s dtype. With ``out``, into
    it: an input that already is its slice of ``out`` (the engine computed it there) is not
    copied."""
    if out is None:
        return np.concatenate(xs, axis=dim, dtype=xs[0].dtype)
    start = 0
    for x in xs:
        part = out[(slice(None),) * dim + (slice(start, start + x.shape[dim]),)]
        if not is_same_view(x, part):
            np.copyto(part, x)
        start += x.shape[dim]
    return out


@kernel
def concat_backward(dy: np.ndarray, sizes: Sequence[int], dim: int = 1) -> list[np.ndarray]:
    """Split dy along ``dim`` into pieces of ``sizes`` (each input's extent): views of dy."""
    return np.split(dy, np.cumsum(sizes)[:-1], axis=dim)


@kernel
def add(xs: Sequence[np.ndarray]) -> np.ndarray:
    """Elementwise sum of same-shaped arrays (one new array, xs[0]'s dtype)."""
    y = np.add(xs[0], xs[1], dtype=xs[0].dtype)
    for x in xs[2:]:
        y += x
    return y


@kernel
def add_backward(dy: np.ndarray, n: int) -> list[np.ndarray]:
    """Each of the n inputs receives dy unchanged (the same array, not copies)."""
    return [dy] * n


@kernel
def mul(xs: Sequence[np.ndarray]) -> np.ndarray:
    """Elementwise product with NumPy broadcasting (e.g. (N, C, H, W) * (N, C, 1, 1))."""
    y = np.multiply(xs[0], xs[1], dtype=xs[0].dtype)
    for x in xs[2:]:
        y *= x
    return y


@kernel
def mul_backward(dy: np.ndarray, xs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """d(x_0 x_1 ...)/dx_i = dy * (product of the others), summed back over broadcast axes."""
    grads = []
    for i, x in enumerate(xs):
        g = dy
        for j, other in enumerate(xs):
            if j != i:
                g = g * other
        axes = tuple(a for a, (gs, xs_) in enumerate(zip(g.shape, x.shape)) if xs_ == 1 and gs != 1)
        grads.append(g.sum(axis=axes, keepdims=True).astype(x.dtype, copy=False) if axes else g)
    return grads


class _Merge(LayerType):
    family = FAMILY
    min_inputs = 2
    max_inputs = None


@register
class Concat(_Merge):
    """Concatenate inputs along a dimension (channels by default), as torch.cat; one input
    gives a copy of it (DenseNet's torch.cat([x], 1)).

    Counts: MACs = 0. FLOPs = 0 (a copy).
    """

    writes_out = True

    name = "concat"
    torch_call = "torch"
    alias = "concat"
    min_inputs = 1
    fields = (Field("dim", "int", 1, "dimension to join along (1: channels)"),)

    def output_shape(self, in_shapes, attrs):
        rank = len(in_shapes[0])
        dim = attrs["dim"]
        if not -rank <= dim < rank:
            raise ArchstatError(f"dim {dim} is out of range for inputs of rank {rank}", field="dim")
        dim %= rank
        if dim == 0:
            raise ArchstatError("cannot concatenate along the batch dimension", field="dim",
                                hint="use dim: 1 for channels")
        first = in_shapes[0]
        for shape in in_shapes[1:]:
            if len(shape) != rank or any(a != b for i, (a, b) in enumerate(zip(first, shape)) if i != dim):
                raise ArchstatError(
                    "inputs must agree on every dimension but the joined one; got "
                    + ", ".join(fmt_shape(s) for s in in_shapes), field="inputs",
                    hint="check the branches' strides and padding")
        out = list(first)
        out[dim] = sum(s[dim] for s in in_shapes)
        return tuple(out)

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    joins = True

    def joined_axis(self, in_shapes, attrs):
        return attrs["dim"] % len(in_shapes[0])

    def forward(self, xs, params, attrs, ctx):
        dim = attrs["dim"] % xs[0].ndim
        return concat(xs, dim, ctx.out), ([x.shape[dim] for x in xs], dim)

    def backward(self, dy, cache):
        sizes, dim = cache
        return concat_backward(dy, sizes, dim), {}


@register
class Add(_Merge):
    """Elementwise sum of inputs of identical shape (a residual connection).

    Counts: MACs = 0. FLOPs = (number of inputs - 1) adds per output element. Backward: 0 (each
    input's gradient is the output's).
    """

    name = "add"
    torch_call = "operator"
    alias = "add"

    def output_shape(self, in_shapes, attrs):
        first = in_shapes[0]
        if any(tuple(s) != tuple(first) for s in in_shapes[1:]):
            raise ArchstatError(
                "inputs must have the same shape; got " + ", ".join(fmt_shape(s) for s in in_shapes),
                field="inputs", hint="add a 1x1 projection conv (and matching stride) on the shortcut")
        return tuple(first)

    def flops(self, in_shapes, out_shape, attrs):
        return (len(in_shapes) - 1) * numel(out_shape)

    def backward_flops(self, in_shapes, out_shape, attrs, input_grads, forward=None):
        # each input's gradient is the output's (summed over any broadcast axes)
        return sum(numel(out_shape) - numel(s) for s, needed in zip(in_shapes, input_grads) if needed)

    def forward(self, xs, params, attrs, ctx):
        return add(xs), len(xs)

    def backward(self, dy, cache):
        return add_backward(dy, cache), {}


@register
class Mul(_Merge):
    """Elementwise product of inputs with broadcasting, e.g. a squeeze-and-excitation gate
    (N, C, 1, 1) scaling features (N, C, H, W); the first input fixes the output shape.

    Counts: MACs = 0. FLOPs = (number of inputs - 1) multiplies per output element. Backward: per
    input that needs a gradient, (number of inputs - 1) multiplies per output element plus the adds
    that sum it over the axes it was broadcast along.
    """

    name = "mul"
    torch_call = "operator"
    alias = "mul"

    def output_shape(self, in_shapes, attrs):
        first = tuple(in_shapes[0])
        for shape in in_shapes[1:]:
            if len(shape) != len(first) or any(b not in (1, a) for a, b in zip(first, shape)):
                raise ArchstatError(
                    "each input must match the first one's shape or be 1 where it differs; got "
                    + ", ".join(fmt_shape(s) for s in in_shapes), field="inputs",
                    hint="put the full-size tensor first and the gate, e.g. (N, C, 1, 1), after it")
        return first

    def flops(self, in_shapes, out_shape, attrs):
        return (len(in_shapes) - 1) * numel(out_shape)

    def backward_flops(self, in_shapes, out_shape, attrs, input_grads, forward=None):
        # an input's gradient: the output's times the other inputs' product ((n - 1) multiplies
        # per output element), summed over the axes it was broadcast along
        n = numel(out_shape)
        return sum((len(in_shapes) - 1) * n + n - numel(s)
                   for s, needed in zip(in_shapes, input_grads) if needed)

    def forward(self, xs, params, attrs, ctx):
        return mul(xs), list(xs)

    def backward(self, dy, cache):
        return mul_backward(dy, cache), {}
