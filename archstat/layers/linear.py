"""Fully connected layer: ``linear`` (torch.nn.Linear), on flat features ``(N, F)``.

Weights are ``[out_features, in_features]`` as PyTorch; y = x W^T + b.
"""
from __future__ import annotations

from ..errors import ArchstatError
from .registry import INFERRED, REQUIRED, Field, LayerType, check_declared, fmt_shape, register


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
        return 2 * self.macs(in_shapes, out_shape, attrs) + (
            in_shapes[0][0] * attrs["out_features"] if attrs["bias"] else 0)
