"""Normalisation family: ``batch_norm2d`` (torch.nn.BatchNorm2d), ``lrn``
(torch.nn.LocalResponseNorm, the AlexNet "NORM" layer), ``layer_norm`` (torch.nn.LayerNorm),
``layer_norm2d`` (torchvision's ConvNeXt LayerNorm2d) and ``layer_scale`` (ConvNeXt's learned
per-channel scale). Output shape = input shape.

Kernels (in :mod:`.norm_kernels`, re-exported here): :func:`batch_norm2d`, :func:`lrn`,
:func:`layer_norm`, :func:`layer_norm2d`, :func:`layer_scale` and their ``*_backward``.
float32 or float64; outputs keep the input's dtype and parameters are cast to it.
"""
from __future__ import annotations

import numpy as np

from ..errors import ArchstatError
from .norm_kernels import (_cast, _bn_backward, _bn_forward, _ln_backward, _ln_forward, _lrn_scale,
                           _per_channel, _trailing_axes, bn_inference_affine, bn_inference_workspace, channel_bias,
                           channel_bias_backward, layer_scale, layer_scale_backward, ln_workspace, lrn_backward)
from .norm_kernels import (batch_norm2d, batch_norm2d_backward, layer_norm,  # noqa: F401 (kernels)
                           layer_norm2d, layer_norm2d_backward, layer_norm_backward, lrn)
from .registry import (INFERRED, REQUIRED, check_declared, declare_family, Field, fmt_shape, LayerType,
                       numel, register, require_rank)

FAMILY = declare_family("norm", "normalisation", rank=3)



@register
class BatchNorm2d(LayerType):
    """Batch normalisation over (N, H, W) per channel, as torch.nn.BatchNorm2d.

    Counts: MACs = 0. FLOPs = 2 per element at inference (the running statistics and the
    affine weight fold into one multiply and one add per element). Backward (training, batch
    statistics): 3 per element for the reductions sum(dy) and sum(dy * x_hat) that give the
    shift's and scale's gradients, and 7 more for the input's gradient when it needs one
    (recompute x_hat: 2; gamma / std * (dy - mean(dy) - x_hat * mean(dy * x_hat)): 5).
    Parameters: weight (gamma) and bias (beta), C each, when affine. Buffers: running_mean and
    running_var, C each, when track_running_stats (PyTorch's scalar num_batches_tracked is not counted).
    """

    writes_out = True

    name = "batch_norm2d"
    alias = "bn"
    family = FAMILY

    def backward_flops(self, in_shapes, out_shape, attrs, input_grads, forward=None):
        n = numel(out_shape)
        if input_grads[0]:
            return 10 * n
        return 3 * n if attrs["affine"] else 0
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

    def workspace_bytes(self, in_shapes, attrs, itemsize, algorithm=None, limit=None):
        return bn_inference_workspace(in_shapes[0], itemsize)

    def affine_at_inference(self, attrs):
        return attrs["track_running_stats"]    # without, it normalises by the batch's statistics

    def inference_affine(self, params, buffers, attrs, dtype):
        return bn_inference_affine(params.get("weight"), params.get("bias"), buffers["running_mean"],
                                   buffers["running_var"], attrs["eps"], dtype)

    def forward(self, xs, params, attrs, ctx):
        return _bn_forward(xs[0], params.get("weight"), params.get("bias"),
                           ctx.buffers.get("running_mean"), ctx.buffers.get("running_var"),
                           ctx.train, attrs["momentum"], attrs["eps"], ctx.out)

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
    family = FAMILY
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

    def workspace_bytes(self, in_shapes, attrs, itemsize, algorithm=None, limit=None):
        # the squares and their window sum side by side; then the scale (kept for backward)
        # and its power, which the multiply by x reuses as the output (NumPy elides a large
        # temporary): one array of the input's size beyond the output either way
        return numel(in_shapes[0]) * itemsize

    def forward(self, xs, params, attrs, ctx):
        x = xs[0]
        args = attrs["size"], attrs["alpha"], attrs["beta"], attrs["k"]
        scale = _lrn_scale(x, args[0], args[1], args[3])
        return x * scale ** -args[2], (x, scale, args)

    def backward(self, dy, cache):
        x, scale, (size, alpha, beta, k) = cache
        return [lrn_backward(dy, x, size, alpha, beta, k, scale=scale)], {}


class _LayerNormType(LayerType):
    """Shared by layer_norm and layer_norm2d: fields, parameters, counts, init, kernels.
    A subclass gives the normalised axes and the parameters' shape."""

    family = FAMILY
    alias = "ln"

    def mixing_axes(self, in_shapes, attrs):
        return tuple(self._axes(in_shapes[0], attrs))  # every output reads its whole group

    def _axes(self, x_shape, attrs) -> tuple[int, ...]:
        raise NotImplementedError

    def _param_shape(self, x_shape, attrs) -> tuple[int, ...]:
        raise NotImplementedError

    def _broadcast(self, param, x):
        """A parameter (or None) cast to x's dtype, shaped to broadcast against x."""
        return _cast(param, x)

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        self._axes(x, attrs)
        return tuple(x)

    def param_shapes(self, in_shapes, attrs):
        if not attrs["elementwise_affine"]:
            return {}
        shape = self._param_shape(in_shapes[0], attrs)
        return {"weight": shape, "bias": shape} if attrs["bias"] else {"weight": shape}

    def initial_param(self, name, shape, fan_in, rng, attrs=None):
        # torch.nn.LayerNorm.reset_parameters: the identity transform
        return np.zeros(shape) if name == "bias" else np.ones(shape)

    def flops(self, in_shapes, out_shape, attrs):
        per = 5
        if attrs["elementwise_affine"]:
            per += 2 if attrs["bias"] else 1
        return per * numel(out_shape)

    def workspace_bytes(self, in_shapes, attrs, itemsize, algorithm=None, limit=None):
        return ln_workspace(in_shapes[0], self._axes(in_shapes[0], attrs), itemsize)

    def forward(self, xs, params, attrs, ctx):
        x = xs[0]
        axes = self._axes(x.shape, attrs)
        w, b = (self._broadcast(params.get(k), x) for k in ("weight", "bias"))
        y, mean, invstd = _ln_forward(x, axes, w, b, attrs["eps"])
        return y, (x, mean, invstd, w, axes, b is not None)

    def backward(self, dy, cache):
        x, mean, invstd, w, axes, has_bias = cache
        dx, dweight, dbias = _ln_backward(dy, x, mean, invstd, w, axes)
        dparams = {} if w is None else {"weight": dweight}
        if has_bias:
            dparams["bias"] = dbias
        return [dx], dparams


_LN_FIELDS = (
    Field("eps", "float", 1e-5, "added to the variance", minimum=0.0),
    Field("elementwise_affine", "bool", True, "learn a scale (weight) and a shift (bias) per "
          "normalised element"),
    Field("bias", "bool", True, "learn the shift too (only with elementwise_affine)"),
)


@register
class LayerNorm(_LayerNormType):
    """Layer normalisation over the trailing dimensions of each sample, as torch.nn.LayerNorm:
    y = (x - mean) / sqrt(var + eps) * weight + bias, with the biased variance.

    Counts: MACs = 0. FLOPs = 5 per element (add into the mean, subtract the mean, square,
    add into the variance, multiply by 1/std), plus 1 multiply with elementwise_affine and 1
    add with its bias. Not counted: per normalised group, the two divisions by its size, the
    eps add, the square root and the reciprocal.
    Parameters: weight and bias of normalized_shape each, when elementwise_affine (bias only
    with bias: true).
    """

    name = "layer_norm"
    fields = (Field("normalized_shape", "shape", INFERRED, "the trailing dimensions normalised "
                    "over; inferred: the last dimension", minimum=1),) + _LN_FIELDS

    def _axes(self, x_shape, attrs):
        return _trailing_axes(x_shape, attrs["normalized_shape"] or (x_shape[-1],))

    def _param_shape(self, x_shape, attrs):
        return tuple(x_shape[a] for a in self._axes(x_shape, attrs))



@register
class LayerNorm2d(_LayerNormType):
    """Layer normalisation over the channels of each pixel of (N, C, H, W), as torchvision's
    ConvNeXt LayerNorm2d (F.layer_norm over C in NHWC).

    Counts: MACs = 0. FLOPs = 5 per element (add into the mean, subtract the mean, square,
    add into the variance, multiply by 1/std), plus 1 multiply with elementwise_affine and 1
    add with its bias. Not counted: per pixel, the two divisions by C, the eps add, the
    square root and the reciprocal.
    Parameters: weight and bias, C each, when elementwise_affine (bias only with bias: true).
    """

    name = "layer_norm2d"
    fields = (Field("num_features", "int", INFERRED, "channels; inferred from the graph",
                    minimum=1),) + _LN_FIELDS

    def _axes(self, x_shape, attrs):
        require_rank(x_shape, 4, self.name)
        check_declared(attrs, "num_features", x_shape[1], "channels")
        return (1,)

    def _param_shape(self, x_shape, attrs):
        return (x_shape[1],)

    def _broadcast(self, param, x):
        return _per_channel(_cast(param, x), x)


class _PerChannel(LayerType):
    """A learned tensor per channel applied elementwise (a scale or a shift): (N, C, H, W) or
    (N, C) in, the same shape out."""

    family = FAMILY
    torch_call = "operator"

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        if len(x) not in (2, 4):
            raise ArchstatError(f"a {self.name} layer expects an image tensor (N, C, H, W) or flat "
                                f"features (N, C), got shape {fmt_shape(x)}")
        check_declared(attrs, "num_features", x[1], "channels")
        return tuple(x)


@register
class LayerScale(_PerChannel):
    """A learned scale per channel, y = gamma * x, as ConvNeXt's layer scale (torchvision
    CNBlock: `nn.Parameter(torch.ones(dim, 1, 1) * layer_scale)`, used as `layer_scale * x`).

    Counts: MACs = 0. FLOPs = 1 multiply per element. Backward: the scale's gradient
    sum(dy * x), 2 per element, and the input's gamma * dy, 1 per element when it needs one.
    Parameters: weight, C values: shape (C, 1, 1) for (N, C, H, W), (C,) for (N, C).
    """

    name = "layer_scale"
    alias = "scale"
    fields = (
        Field("num_features", "int", INFERRED, "channels; inferred from the graph", minimum=1),
        Field("init", "float", 1e-6, "the initial value of every scale (ConvNeXt: 1e-6)"),
    )

    def param_shapes(self, in_shapes, attrs):
        x = in_shapes[0]
        return {"weight": (x[1], 1, 1) if len(x) == 4 else (x[1],)}

    def initial_param(self, name, shape, fan_in, rng, attrs=None):
        init = self.fields[1].default if attrs is None else attrs["init"]
        return np.full(shape, init)

    def flops(self, in_shapes, out_shape, attrs):
        return numel(out_shape)

    def backward_flops(self, in_shapes, out_shape, attrs, input_grads, forward=None):
        return numel(out_shape) * (2 + (1 if input_grads[0] else 0))

    def forward(self, xs, params, attrs, ctx):
        x = xs[0]
        return layer_scale(x, params["weight"]), (x, params["weight"])

    def backward(self, dy, cache):
        dx, dweight = layer_scale_backward(dy, *cache)
        return [dx], {"weight": dweight}


@register
class ChannelBias(_PerChannel):
    """A learned shift per channel, y = x + b: the per-channel ``Add`` of an imported graph
    that no conv or linear layer takes in as its bias.

    Counts: MACs = 0. FLOPs = 1 add per element. Backward: the shift's gradient sum(dy), 1
    per element (the input's gradient is dy itself).
    Parameters: bias, C values.
    """

    name = "channel_bias"
    alias = "shift"
    fields = (
        Field("num_features", "int", INFERRED, "channels; inferred from the graph", minimum=1),
    )

    def backward_flops(self, in_shapes, out_shape, attrs, input_grads, forward=None):
        return numel(out_shape)

    def param_shapes(self, in_shapes, attrs):
        return {"bias": (in_shapes[0][1],)}

    def initial_param(self, name, shape, fan_in, rng, attrs=None):
        return np.zeros(shape)

    def flops(self, in_shapes, out_shape, attrs):
        return numel(out_shape)

    def forward(self, xs, params, attrs, ctx):
        return channel_bias(xs[0], params["bias"]), None

    def backward(self, dy, cache):
        dx, dbias = channel_bias_backward(dy)
        return [dx], {"bias": dbias}

