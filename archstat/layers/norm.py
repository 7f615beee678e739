"""Normalisation family: ``batch_norm2d`` (torch.nn.BatchNorm2d) and ``lrn``
(torch.nn.LocalResponseNorm, the AlexNet "NORM" layer). Output shape = input shape.
"""
from __future__ import annotations

from .registry import INFERRED, REQUIRED, Field, LayerType, check_declared, numel, register, require_rank


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

    def flops(self, in_shapes, out_shape, attrs):
        return 2 * numel(out_shape)


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
