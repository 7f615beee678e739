"""thop 0.1.1: ``profile(model, inputs=(x,))`` ("MACs", returned as a float).

thop hooks modules of the classes in its table, matched by exact type (thop/profile.py:21-66;
torchvision's LayerNorm2d, a subclass, is not counted, nor are its parameters); function
calls, Tensor methods and operators are never seen, and ReLU, ReLU6, MaxPool2d and Dropout
are registered as zero.
"""
from __future__ import annotations

from .base import Convention, LayerView, modules_only, rule

_HOOKS = "thop/vision/basic_hooks.py"


@rule("thop/vision/calc_func.py:28-34, basic_hooks.py:140-147")
@modules_only
def macs(v: LayerView) -> int:
    """archstat's MACs (conv, linear; biases left out)"""
    return v.macs


@rule(f"{_HOOKS}:60-69")
@modules_only
def norm(v: LayerView) -> int:
    """2 per input element, doubled again with an affine scale and shift"""
    return v.per_norm_element(4, 2)


@rule(f"{_HOOKS}:106-111")
@modules_only
def avg_pool(v: LayerView) -> int:
    """1 per output element"""
    return v.out_numel


@rule(f"{_HOOKS}:114-121")
@modules_only
def adaptive_avg_pool(v: LayerView) -> int:
    """int((product of in/out sizes per axis, in float64, + 1) x output elements)"""
    kernel = 1.0
    for size, out in zip(v.x[2:], v.out_shape[2:]):
        kernel *= size / out
    return int((kernel + 1) * v.out_numel)


@rule(f"{_HOOKS}:98-103, thop/vision/calc_func.py:57-62")
@modules_only
def softmax(v: LayerView) -> int:
    """per row of the softmax axis (n features): n exps, n - 1 adds and n divides"""
    n = v.x[v.attrs["dim"]]
    return v.in_numel // n * (3 * n - 1)


CONVENTIONS = (
    Convention(
        name="thop", tool="thop", version="0.1.1.post2209072238", entry="profile(model, inputs=(x,))",
        unit="MACs",
        reason="+ 4/element batch norm, average pools; activations and max pools count 0",
        rules={"conv2d": macs, "linear": macs, "batch_norm2d": norm, "layer_norm": norm, "avg_pool2d": avg_pool,
               "adaptive_avg_pool2d": adaptive_avg_pool, "global_avg_pool2d": adaptive_avg_pool,
               "softmax": softmax}),
)
