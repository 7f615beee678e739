"""fvcore 0.1.5: ``FlopCountAnalysis(model, inputs).total()`` ("flops", one per multiply-add).

fvcore traces the model with the TorchScript tracer and counts the aten ops it has a handle
for (fvcore/nn/flop_count.py:26-44); every other op counts 0, either listed as free
(jit_analysis.py:28-87: relu, cat, flatten, dropout, permute, views) or reported as
unsupported (jit_analysis.py:577-581: add, mul, mean, max and average pools, relu6, silu,
sigmoid, hardswish, hardsigmoid, gelu). As the tracer sees every call, whether a layer is a
module or a function makes no difference, except that ``x.mean((2, 3))`` is ``aten::mean``
(unsupported, 0) where ``AdaptiveAvgPool2d`` is ``aten::adaptive_avg_pool2d`` (counted).
"""
from __future__ import annotations

from .base import Convention, LayerView, rule

_FC = "fvcore/nn/flop_count.py"
_JH = "fvcore/nn/jit_handles.py"


@rule(f"{_JH}:127-151")
def macs(v: LayerView) -> int:
    """N x C_out x (C_in / groups) x kH x kW x H_out x W_out for a conv, inputs x out_features for a linear:
    archstat's MACs (biases left out)"""
    return v.macs


@rule(f"{_JH}:251-258")
def batch_norm(v: LayerView) -> int:
    """eval mode: 2 per input element with an affine scale and shift, 1 without"""
    return v.per_norm_element(2, 1)


@rule(f"{_JH}:230-248")
def layer_norm(v: LayerView) -> int:
    """5 per input element with an affine scale, 4 without"""
    return v.per_norm_element(5, 4)


@rule(f"{_JH}:261-281, {_FC}:42")
def adaptive_avg_pool(v: LayerView) -> int:
    """1 per input element (even a 7x7 -> 7x7 pool that changes nothing); x.mean((2, 3)) is 0"""
    return 0 if v.call == "method" else v.in_numel


CONVENTIONS = (
    Convention(
        name="fvcore", tool="fvcore", version="0.1.5.post20221221", entry="FlopCountAnalysis(model, x).total()",
        unit="flops",
        reason="1 per MAC; + 2/element batch norm, 5/element layer norm, adaptive pools",
        rules={"conv2d": macs, "linear": macs, "batch_norm2d": batch_norm, "layer_norm": layer_norm,
               "layer_norm2d": layer_norm, "adaptive_avg_pool2d": adaptive_avg_pool,
               "global_avg_pool2d": adaptive_avg_pool}),
)
