"""Fully connected layer: ``linear`` (torch.nn.Linear), on the last axis: flat features
``(N, F)``, or any ``(N, *, F)`` (ConvNeXt's channels-last blocks).

Weights are ``[out_features, in_features]`` as PyTorch; y = x W^T + b.

Kernels: :func:`linear` and :func:`linear_backward` (float32 or float64; the output keeps
the input's dtype, parameters are cast to it).
"""
from __future__ import annotations

import numpy as np

from ..errors import ArchstatError
from .registry import (INFERRED, REQUIRED, affine_flops, check_declared, declare_family, Field, fmt_shape,
                       kernel, LayerType, numel, register)

FAMILY = declare_family("linear", "fully connected", rank=1)



@kernel
def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Fully connected layer ``y = x W^T + b`` (torch.nn.functional.linear).

    x: (N, *, in_features); w: (out_features, in_features); b: (out_features,) or None.
    Returns y: (N, *, out_features) in x's dtype.
    """
    y = x @ w.astype(x.dtype, copy=False).T
    if b is not None:
        y += b.astype(x.dtype, copy=False)
    return y


@kernel
def linear_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`linear`: ``dx = dy W``, ``dW = dy^T x``, ``db = sum_n dy``, the
    leading axes of a rank > 2 input taken as more rows (summed over in dW and db).

    dy: (N, *, out_features), x: (N, *, in_features), w: (out_features, in_features).
    Returns ``(dx, dw, db)`` with the shapes of x, w and the bias, in dy's dtype.
    """
    dx = dy @ w.astype(dy.dtype, copy=False)
    rows_dy = dy.reshape(-1, dy.shape[-1])
    dw = rows_dy.T @ x.astype(dy.dtype, copy=False).reshape(-1, x.shape[-1])
    db = rows_dy.sum(axis=0)
    return dx, dw, db


@register
class Linear(LayerType):
    """Fully connected layer y = x W^T + b on the last axis, as torch.nn.Linear: flat
    features (N, F), or (N, *, F) with in_features given (e.g. channels-last after a permute).

    Counts: MACs = N * in_features * out_features for (N, in_features); for (N, *, in_features),
    the product of the leading axes (N and *) times in_features * out_features.
    FLOPs = 2 * MACs, plus one bias add per output element when bias is true.
    Parameters: M * N + N for M inputs and N outputs (the lecture's formula).
    """

    name = "linear"
    alias = "fc"
    family = FAMILY
    fields = (
        Field("in_features", "int", INFERRED, "input features; inferred from the graph", minimum=1),
        Field("out_features", "int", REQUIRED, "output features", minimum=1),
        Field("bias", "bool", True, "learn one bias per output"),
    )

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        if len(x) < 2:
            raise ArchstatError(
                f"a linear layer expects flat features (N, F), got shape {fmt_shape(x)}",
                hint="insert a 'flatten' layer (or 'global_avg_pool2d' then 'flatten') before it")
        if len(x) > 2:
            self._check_last_axis(x, attrs)
        check_declared(attrs, "in_features", x[-1], "features")
        return (*x[:-1], attrs["out_features"])

    @staticmethod
    def _check_last_axis(x, attrs):
        """On a rank > 2 input PyTorch acts on the last axis; an image reaching a linear layer
        is more often a missing flatten, so the spec must say in_features."""
        declared = attrs.get("in_features")
        flat = numel(x[1:])
        if declared is None:
            raise ArchstatError(
                f"the input has shape {fmt_shape(x)}: this linear layer would act on its last axis, "
                f"of size {x[-1]} (for an image, its width); a flatten is probably missing before it",
                field="in_features",
                hint=(f"insert a 'flatten' layer before it (in_features {flat}), or set in_features: "
                      f"{x[-1]} if the last axis holds the features (e.g. channels-last after a permute)"))
        if declared != x[-1]:
            raise ArchstatError(
                f"declared {declared} but the input {fmt_shape(x)} has {x[-1]} features on its last axis",
                field="in_features",
                hint=("insert a 'flatten' layer before it" if declared == flat else
                      f"set in_features: {x[-1]}"))

    def param_shapes(self, in_shapes, attrs):
        shapes = {"weight": (attrs["out_features"], in_shapes[0][-1])}
        if attrs["bias"]:
            shapes["bias"] = (attrs["out_features"],)
        return shapes

    def macs(self, in_shapes, out_shape, attrs):
        return numel(in_shapes[0]) * attrs["out_features"]

    def flops(self, in_shapes, out_shape, attrs):
        return affine_flops(self.macs(in_shapes, out_shape, attrs), out_shape, attrs["bias"])

    def forward(self, xs, params, attrs, ctx):
        x, w, b = xs[0], params["weight"], params.get("bias")
        return linear(x, w, b), (x, w, b is not None)

    def backward(self, dy, cache):
        x, w, has_bias = cache
        dx, dw, db = linear_backward(dy, x, w)
        return [dx], ({"weight": dw, "bias": db} if has_bias else {"weight": dw})
