"""Fully connected layer: ``linear`` (torch.nn.Linear), on flat features ``(N, F)``.

Weights are ``[out_features, in_features]`` as PyTorch; y = x W^T + b.

Kernels: :func:`linear` and :func:`linear_backward` (float32 or float64; the output keeps
the input's dtype, parameters are cast to it).
"""
from __future__ import annotations

import numpy as np

from ..errors import ArchstatError
from .registry import (INFERRED, REQUIRED, Field, LayerType, affine_flops, check_declared, fmt_shape,
                       register)

__kernels__ = ("linear", "linear_backward")


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Fully connected layer ``y = x W^T + b`` (torch.nn.functional.linear).

    x: (N, in_features); w: (out_features, in_features); b: (out_features,) or None.
    Returns y: (N, out_features) in x's dtype.
    """
    y = x @ w.astype(x.dtype, copy=False).T
    if b is not None:
        y += b.astype(x.dtype, copy=False)
    return y


def linear_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`linear`: ``dx = dy W``, ``dW = dy^T x``, ``db = sum_n dy``.

    dy: (N, out_features), x: (N, in_features), w: (out_features, in_features).
    Returns ``(dx, dw, db)`` with the shapes of x, w and the bias, in dy's dtype.
    """
    dx = dy @ w.astype(dy.dtype, copy=False)
    dw = dy.T @ x.astype(dy.dtype, copy=False)
    db = dy.sum(axis=0)
    return dx, dw, db


@register
class Linear(LayerType):
    """Fully connected layer y = x W^T + b, as torch.nn.Linear (input must be flat: (N, F)).

    Counts: MACs = N * in_features * out_features.
    FLOPs = 2 * MACs, plus N * out_features bias adds when bias is true.
    Parameters: M * N + N for M inputs and N outputs (the lecture's formula).
    """

    name = "linear"
    alias = "fc"
    family = "linear"
    fields = (
        Field("in_features", "int", INFERRED, "input features; inferred from the graph", minimum=1),
        Field("out_features", "int", REQUIRED, "output features", minimum=1),
        Field("bias", "bool", True, "learn one bias per output"),
    )

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        if len(x) != 2:
            raise ArchstatError(
                f"a linear layer expects flat features (N, F), got shape {fmt_shape(x)}",
                hint="insert a 'flatten' layer (or 'global_avg_pool2d' then 'flatten') before it")
        check_declared(attrs, "in_features", x[1], "features")
        return (x[0], attrs["out_features"])

    def param_shapes(self, in_shapes, attrs):
        shapes = {"weight": (attrs["out_features"], in_shapes[0][1])}
        if attrs["bias"]:
            shapes["bias"] = (attrs["out_features"],)
        return shapes

    def macs(self, in_shapes, out_shape, attrs):
        return in_shapes[0][0] * in_shapes[0][1] * attrs["out_features"]

    def flops(self, in_shapes, out_shape, attrs):
        return affine_flops(self.macs(in_shapes, out_shape, attrs), out_shape, attrs["bias"])

    def forward(self, xs, params, attrs, ctx):
        x, w, b = xs[0], params["weight"], params.get("bias")
        return linear(x, w, b), (x, w, b is not None)

    def backward(self, dy, cache):
        x, w, has_bias = cache
        dx, dw, db = linear_backward(dy, x, w)
        return [dx], ({"weight": dw, "bias": db} if has_bias else {"weight": dw})
