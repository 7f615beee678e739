"""torchinfo 1.8.0: ``summary(model, input_size=...).total_mult_adds`` ("Mult-Adds").

torchinfo hooks every module without children and, for each of its parameters named
``weight`` or ``bias``, adds the parameter's size times the output's positions: N * H_out *
W_out for a module whose class name contains "Conv", else the output's first axis, N
(torchinfo/layer_info.py:225-245; summed in model_statistics.py:31-34). So a conv counts its
MACs plus its bias per output position, a linear layer and a norm N times their parameters,
and a layer without parameters, a function call, or a parameter of a container module
(ConvNeXt's layer scale) counts nothing. A module called twice counts at each call.
"""
from __future__ import annotations

from .base import Convention, LayerView, modules_only, rule

SOURCE = "torchinfo/layer_info.py:225-245"


@rule(SOURCE)
@modules_only
def conv(v: LayerView) -> int:
    """(weight + bias elements) x N x H_out x W_out: the MACs plus one per output element for a bias"""
    return v.param_count("weight", "bias") * v.batch * v.out_shape[2] * v.out_shape[3]


@rule(SOURCE)
@modules_only
def parameters_times_batch(v: LayerView) -> int:
    """(weight + bias elements) x N, the output's first axis (a linear layer on channels-last
    (N, H, W, C) features loses H x W)"""
    return v.param_count("weight", "bias") * v.batch


@rule(SOURCE)
def container_parameter(v: LayerView) -> int:
    """0: the scale is a parameter of the block (a container module), whose own work torchinfo does not count"""
    return 0


@rule(SOURCE)
def no_module(v: LayerView) -> int:
    """0: PyTorch has no module for it, so torchinfo has nothing to hook"""
    return 0


CONVENTIONS = (
    Convention(
        name="torchinfo", tool="torchinfo", version="1.8.0", entry="summary(model).total_mult_adds",
        unit="Mult-Adds",
        reason="+ biases; N x params for norms and linears; a channels-last linear loses H x W",
        rules={"conv2d": conv, "layer_scale": container_parameter, "channel_bias": container_parameter,
               "locally_connected2d": no_module},
        default=parameters_times_batch),
)
