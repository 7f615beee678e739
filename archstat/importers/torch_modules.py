"""PyTorch modules onto archstat's layer types: one small function per module class.

Each function takes the module and its inputs' shapes (batch axis first) and returns a
:class:`Mapped` (the registry type, its spec fields in PyTorch's names, and the module's
tensors under the registry's parameter names), :data:`SAME` for a module that passes its input
through (``nn.Identity``), or raises :class:`Unmappable` with the reason when a setting has no
archstat equivalent. Tensors keep PyTorch's layouts, which are the registry's (conv
``[C_out, C_in/groups, kH, kW]``, linear ``[out, in]``). Classes are matched exactly (a
subclass may change ``forward``); the table is keyed by ``module.Class`` so that torchvision
need not be imported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

Shape = tuple[int, ...]


class Unmappable(Exception):
    """A module or operation archstat has no layer type for; ``reason`` says what is missing
    (None: the class or function itself is unknown)."""

    def __init__(self, reason: str | None = None):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Mapped:
    """One layer: registry type, spec fields, ``{registry name: torch tensor}``, and a note
    when the mapping leaves out a setting that changes no count (one sentence, for the
    import's notes, which list the layers it applies to)."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


#: a module that returns its input (no layer)
SAME = object()


def pair(value: Any) -> int | list[int]:
    """A PyTorch int-or-tuple argument as spec data: an int, or ``[h, w]``."""
    if isinstance(value, (tuple, list)):
        if len(value) == 1:
            return int(value[0])
        return [int(v) for v in value]
    return int(value)


def dim_index(dim: int, rank: int, what: str) -> int:
    """A dimension as a non-negative index; the batch axis (0) cannot be one."""
    if not -rank <= dim < rank:
        raise Unmappable(f"{what} {dim} is out of range for a tensor of rank {rank}")
    dim %= rank
    if dim == 0:
        raise Unmappable(f"{what} {dim} acts on the batch axis, which archstat keeps apart")
    return dim


def _present(mod, *names: str) -> dict[str, Any]:
    """The module's tensors of these names that are not None."""
    return {n: getattr(mod, n) for n in names if getattr(mod, n, None) is not None}


# ---------------------------------------------------------------------- weighted layers

def conv2d(mod, shapes: Sequence[Shape]) -> Mapped:
    padding = mod.padding if isinstance(mod.padding, str) else pair(mod.padding)
    fields = {"out_channels": mod.out_channels, "kernel_size": pair(mod.kernel_size), "stride": pair(mod.stride),
              "padding": padding, "dilation": pair(mod.dilation), "groups": mod.groups,
              "bias": mod.bias is not None}
    if mod.padding_mode != "zeros":
        fields["padding_mode"] = mod.padding_mode
    return Mapped("conv2d", fields, _present(mod, "weight", "bias"))


def linear(mod, shapes: Sequence[Shape]) -> Mapped:
    fields = {"out_features": mod.out_features, "bias": mod.bias is not None}
    if len(shapes[0]) != 2:   # on the last axis of (N, *, F): the spec says which axis it reads
        fields = {"in_features": mod.in_features, **fields}
    return Mapped("linear", fields, _present(mod, "weight", "bias"))


def batch_norm2d(mod, shapes: Sequence[Shape]) -> Mapped:
    fields = {"eps": float(mod.eps), "affine": bool(mod.affine),
              "track_running_stats": bool(mod.track_running_stats)}
    note = None
    if mod.momentum is not None:
        fields["momentum"] = float(mod.momentum)
    else:
        note = ("Batch norm momentum None (PyTorch's cumulative average) is not an archstat setting: these layers "
                "keep the default 0.1, which matters only when the engine trains them")
    return Mapped("batch_norm2d", fields, _present(mod, "weight", "bias", "running_mean", "running_var"), note)


def layer_norm(mod, shapes: Sequence[Shape]) -> Mapped:
    fields = {"normalized_shape": [int(s) for s in mod.normalized_shape], "eps": float(mod.eps),
              "elementwise_affine": bool(mod.elementwise_affine)}
    if mod.elementwise_affine:
        fields["bias"] = mod.bias is not None
    return Mapped("layer_norm", fields, _present(mod, "weight", "bias"))


def layer_norm2d(mod, shapes: Sequence[Shape]) -> Mapped:
    """torchvision's ConvNeXt LayerNorm2d: nn.LayerNorm over the channels of each pixel."""
    if len(mod.normalized_shape) != 1:
        raise Unmappable(f"LayerNorm2d over {tuple(mod.normalized_shape)}: archstat's layer_norm2d "
                         "normalises the channel axis alone")
    fields = {"eps": float(mod.eps), "elementwise_affine": bool(mod.elementwise_affine)}
    if mod.elementwise_affine:
        fields["bias"] = mod.bias is not None
    return Mapped("layer_norm2d", fields, _present(mod, "weight", "bias"))


def lrn(mod, shapes: Sequence[Shape]) -> Mapped:
    return Mapped("lrn", {"size": int(mod.size), "alpha": float(mod.alpha), "beta": float(mod.beta),
                          "k": float(mod.k)})


# ---------------------------------------------------------------------- pools

def max_pool2d(mod, shapes: Sequence[Shape]) -> Mapped:
    if mod.return_indices:
        raise Unmappable("MaxPool2d with return_indices=True returns two tensors")
    return Mapped("max_pool2d", pool_fields(mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode,
                                            dilation=mod.dilation))


def avg_pool2d(mod, shapes: Sequence[Shape]) -> Mapped:
    if mod.divisor_override is not None:
        raise Unmappable("AvgPool2d with divisor_override: archstat's avg_pool2d divides by the window")
    return Mapped("avg_pool2d", pool_fields(mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode,
                                            count_include_pad=mod.count_include_pad))


def pool_fields(kernel_size, stride, padding, ceil_mode, **extra) -> dict[str, Any]:
    """The fields of max_pool2d / avg_pool2d (stride None or empty: the kernel size)."""
    fields = {"kernel_size": pair(kernel_size),
              "stride": None if stride is None or stride in ((), []) else pair(stride),
              "padding": pair(padding), "ceil_mode": bool(ceil_mode)}
    for name, value in extra.items():
        fields[name] = pair(value) if name == "dilation" else bool(value)
    return fields


def adaptive_pool(kind: str, output_size: Any) -> Mapped:
    """Adaptive average or max pooling; average pooling to 1 x 1 is global_avg_pool2d (as the
    zoo's specs write torchvision's AdaptiveAvgPool2d(1): the same counts, a clearer row)."""
    size = list(output_size) if isinstance(output_size, (tuple, list)) else [output_size, output_size]
    if len(size) == 1:
        size = size * 2
    if kind == "avg" and size == [1, 1]:
        return Mapped("global_avg_pool2d")
    value = [None if s is None else int(s) for s in size]
    return Mapped(f"adaptive_{kind}_pool2d", {"output_size": value[0] if value[0] == value[1] else value})


def adaptive_avg_pool2d(mod, shapes: Sequence[Shape]) -> Mapped:
    return adaptive_pool("avg", mod.output_size)


def adaptive_max_pool2d(mod, shapes: Sequence[Shape]) -> Mapped:
    if mod.return_indices:
        raise Unmappable("AdaptiveMaxPool2d with return_indices=True returns two tensors")
    return adaptive_pool("max", mod.output_size)


# ---------------------------------------------------------------------- elementwise and shape

def activation(type_name: str, inplace: bool = True) -> Callable[[Any, Sequence[Shape]], Mapped]:
    """An activation module: the registry type, with PyTorch's ``inplace`` where it has one."""
    def mapping(mod, shapes: Sequence[Shape]) -> Mapped:
        return Mapped(type_name, {"inplace": bool(mod.inplace)} if inplace else {})
    mapping.__name__ = type_name
    return mapping


def gelu(mod, shapes: Sequence[Shape]) -> Mapped:
    return Mapped("gelu", {"approximate": mod.approximate})


def softmax(mod, shapes: Sequence[Shape]) -> Mapped:
    rank = len(shapes[0])
    dim = mod.dim if mod.dim is not None else (0 if rank in (0, 1, 3) else 1)  # PyTorch's legacy choice
    return Mapped("softmax", {"dim": dim_index(dim, rank, "dim")})


def dropout(mod, shapes: Sequence[Shape]) -> Mapped:
    return Mapped("dropout", {"p": float(mod.p), "inplace": bool(mod.inplace)})


def stochastic_depth(mod, shapes: Sequence[Shape]) -> Mapped:
    return Mapped("stochastic_depth", {"p": float(mod.p), "mode": mod.mode})


def flatten(mod, shapes: Sequence[Shape]) -> Mapped:
    rank = len(shapes[0])
    start = dim_index(mod.start_dim, rank, "start_dim")
    end = mod.end_dim % rank if -rank <= mod.end_dim < rank else mod.end_dim
    return Mapped("flatten", {"start_dim": start, "end_dim": -1 if end == rank - 1 else end})


def permute(mod, shapes: Sequence[Shape]) -> Mapped:
    return permute_dims(mod.dims, len(shapes[0]))


def permute_dims(dims: Sequence[int], rank: int) -> Mapped:
    """A permute layer; the batch axis must stay first."""
    dims = [int(d) % rank if -rank <= int(d) < rank else int(d) for d in dims]
    if not dims or dims[0] != 0:
        raise Unmappable(f"permute {dims} moves the batch axis, which archstat keeps first")
    return Mapped("permute", {"dims": dims})


def channel_shuffle(mod, shapes: Sequence[Shape]) -> Mapped:
    return Mapped("channel_shuffle", {"groups": int(mod.groups)})


def identity(mod, shapes: Sequence[Shape]) -> Any:
    return SAME


#: module class (``module.Class``) -> its mapping
MODULES: dict[str, Callable[[Any, Sequence[Shape]], Any]] = {
    "torch.nn.modules.conv.Conv2d": conv2d,
    "torch.nn.modules.linear.Linear": linear,
    "torch.nn.modules.batchnorm.BatchNorm2d": batch_norm2d,
    "torch.nn.modules.normalization.LayerNorm": layer_norm,
    "torchvision.models.convnext.LayerNorm2d": layer_norm2d,
    "torch.nn.modules.normalization.LocalResponseNorm": lrn,
    "torch.nn.modules.pooling.MaxPool2d": max_pool2d,
    "torch.nn.modules.pooling.AvgPool2d": avg_pool2d,
    "torch.nn.modules.pooling.AdaptiveAvgPool2d": adaptive_avg_pool2d,
    "torch.nn.modules.pooling.AdaptiveMaxPool2d": adaptive_max_pool2d,
    "torch.nn.modules.activation.ReLU": activation("relu"),
    "torch.nn.modules.activation.ReLU6": activation("relu6"),
    "torch.nn.modules.activation.SiLU": activation("silu"),
    "torch.nn.modules.activation.Hardswish": activation("hardswish"),
    "torch.nn.modules.activation.Hardsigmoid": activation("hardsigmoid"),
    "torch.nn.modules.activation.Sigmoid": activation("sigmoid", inplace=False),
    "torch.nn.modules.activation.Tanh": activation("tanh", inplace=False),
    "torch.nn.modules.activation.GELU": gelu,
    "torch.nn.modules.activation.Softmax": softmax,
    "torch.nn.modules.dropout.Dropout": dropout,
    "torchvision.ops.stochastic_depth.StochasticDepth": stochastic_depth,
    "torch.nn.modules.flatten.Flatten": flatten,
    "torchvision.ops.misc.Permute": permute,
    "torch.nn.modules.channelshuffle.ChannelShuffle": channel_shuffle,
    "torch.nn.modules.linear.Identity": identity,
}
