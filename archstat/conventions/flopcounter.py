"""torch.utils.flop_counter.FlopCounterMode (torch 2.14.1): ``get_total_flops()``.

A dispatch mode that sees every aten op below autograd and counts only those in its registry
(torch/utils/flop_counter.py:822-844): convolutions and matrix products (mm, addmm, bmm,
attention). Everything else (norms, pools, activations, elementwise ops) counts 0
(flop_counter.py:1158-1159). Being below autograd, it sees function calls and modules alike.

Forward: 2 FLOPs per multiply-add of every conv and linear, biases left out
(flop_counter.py:215-261, 159-174). Forward and backward of ``model(x).sum().backward()``:
each conv and linear adds its input's gradient (2 per MAC, only when the input needs one: not
for the layer that reads the image) and its weight's gradient; torch 2.14.1 counts a grouped
conv's weight gradient ``groups`` times over (flop_counter.py:358-365: the transposed shapes
lose the division by groups, so a depthwise conv's is C times its forward), and bias
gradients (sums) as 0.
"""
from __future__ import annotations

from .base import Convention, LayerView, rule

_FCM = "torch/utils/flop_counter.py"


@rule(f"{_FCM}:215-261, 159-174")
def forward(v: LayerView) -> int:
    """2 per MAC of a conv or linear, biases left out"""
    return 2 * v.macs


@rule(f"{_FCM}:264-367")
def conv_training(v: LayerView) -> int:
    """forward 2 x MACs + input gradient 2 x MACs (if the input needs one) + weight gradient
    2 x MACs x groups (torch 2.14.1 loses the division by groups)"""
    groups = v.attrs.get("groups", 1)
    return 2 * v.macs * (1 + sum(v.input_grads) + groups)


@rule(f"{_FCM}:159-174")
def linear_training(v: LayerView) -> int:
    """forward, input gradient (if the input needs one) and weight gradient: 2 x MACs each (two mm)"""
    return 2 * v.macs * (2 + sum(v.input_grads))


CONVENTIONS = (
    Convention(
        name="flopcountermode", tool="torch.utils.flop_counter.FlopCounterMode", version="torch 2.14.1",
        entry="with FlopCounterMode() as f: model(x); f.get_total_flops()", unit="FLOPs", per_mac=2,
        reason="2 per MAC of conv and linear; nothing else",
        rules={"conv2d": forward, "linear": forward}),
    Convention(
        name="flopcountermode-train", tool="torch.utils.flop_counter.FlopCounterMode", version="torch 2.14.1",
        entry="with FlopCounterMode() as f: model(x).sum().backward(); f.get_total_flops()", unit="FLOPs",
        per_mac=2, kind="train",
        reason="forward + backward of conv and linear; grouped weight gradients x groups",
        rules={"conv2d": conv_training, "linear": linear_training}),
)
