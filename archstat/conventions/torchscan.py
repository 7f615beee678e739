"""torchscan 0.2.0: ``crawl_module(model, input_shape)["totals"]`` ``macs`` and
``module_flops`` (``summary`` prints them as Multiply-Accumulations and module FLOPs).

torchscan hooks every module without children, once per call, and applies a formula per
module class (torchscan/modules/macs.py, flops.py); a class it has no formula for counts 0
(SiLU, Hardswish, Hardsigmoid, GELU, Permute, StochasticDepth; LayerNorm for MACs) and marks
the total partial. Function calls (F.relu, x.mean, torch.cat, x + y) and the work of
container modules (a block's layer scale or residual add) are not seen. Pools take the
kernel size as given: torchvision passes ints, so MaxPool2d(3) counts 3 - 1 = 2 comparisons
per output, not 8 (macs.py:101-116): archstat's square kernels are read that way here.
``crawl_module`` always runs one sample; at a larger batch these rules count the batch.
"""
from __future__ import annotations

from ..layers.registry import numel
from .base import Convention, LayerView, modules_only, per_element, rule

_M = "torchscan/modules/macs.py"
_F = "torchscan/modules/flops.py"


def _kernel_as_given(v: LayerView) -> int:
    """A square kernel as torchvision gives it (an int k: torchscan counts k, not k x k)."""
    kh, kw = v.attrs["kernel_size"]
    return kh if kh == kw else kh * kw


def _adaptive_kernel(v: LayerView) -> int:
    """torchscan's guess of an adaptive pool's kernel, per axis: in // out when out divides in,
    else in % out + 1 (torchscan/modules/_pooling.py:9-14)."""
    k = 1
    for size, out in zip(v.x[2:], v.out_shape[2:]):
        k *= size // out if size % out == 0 else size % out + 1
    return k


@rule(f"{_M}:55-71")
@modules_only
def macs(v: LayerView) -> int:
    """archstat's MACs (conv, linear; biases left out)"""
    return v.macs


@rule(f"{_M}:74-98")
@modules_only
def bn_macs(v: LayerView) -> int:
    """eval mode: (1 + affine) per element"""
    return v.per_norm_element(2, 1)


@rule(f"{_M}:101-107")
@modules_only
def max_pool(v: LayerView) -> int:
    """(k - 1) per output element, k the kernel size as given (an int is not squared)"""
    return v.out_numel * (_kernel_as_given(v) - 1)


@rule(f"{_M}:110-116")
@modules_only
def avg_pool(v: LayerView) -> int:
    """(k - 1 + 2) per output element, k the kernel size as given (an int is not squared)"""
    return v.out_numel * (_kernel_as_given(v) + 1)


@rule(f"{_M}:128-134")
@modules_only
def adaptive_avg_pool(v: LayerView) -> int:
    """(kH x kW + 1) per output element, the kernel guessed from the sizes"""
    return v.out_numel * (_adaptive_kernel(v) + 1)


@rule(f"{_F}:135-139, 74-81")
@modules_only
def affine_flops(v: LayerView) -> int:
    """conv and linear: per output element 2 x (MACs per output) - 1, + 1 with a bias"""
    return v.out_numel * (2 * (v.macs // v.out_numel) - 1 + ("bias" in v.params))


@rule(f"{_F}:142-166")
@modules_only
def bn_flops(v: LayerView) -> int:
    """eval mode: 2 x C + 2 per element, + 2 per element with affine"""
    return 2 * v.x[1] + v.per_norm_element(4, 2)


@rule(f"{_F}:205-209")
@modules_only
def layer_norm_flops(v: LayerView) -> int:
    """6 per element + 2 per normalised row, + 1 per element each for a weight and a bias"""
    rows = v.in_numel // numel(v.params["weight"]) if "weight" in v.params else None
    if rows is None:
        shape = v.attrs.get("normalized_shape") or (v.x[1],)
        rows = v.in_numel // numel(shape)
    return 6 * v.in_numel + 2 * rows + v.in_numel * (("weight" in v.params) + ("bias" in v.params))


@rule(f"{_F}:120-125")
@modules_only
def dropout_flops(v: LayerView) -> int:
    """one per element when p > 0, even in eval mode"""
    return v.in_numel if v.attrs["p"] > 0 else 0


@rule(f"{_M}:119-125, {_F}:187-193")
@modules_only
def adaptive_max_pool(v: LayerView) -> int:
    """(kH x kW - 1) per output element, the kernel guessed from the sizes"""
    return v.out_numel * (_adaptive_kernel(v) - 1)


_POOLS = {"adaptive_max_pool2d": adaptive_max_pool, "max_pool2d": max_pool, "avg_pool2d": avg_pool, "adaptive_avg_pool2d": adaptive_avg_pool,
          "global_avg_pool2d": adaptive_avg_pool}

CONVENTIONS = (
    Convention(
        name="torchscan-macs", tool="torchscan", version="0.2.0", entry='crawl_module(model, shape)["totals"]["macs"]',
        unit="MACs",
        reason="+ 2/element batch norm, pools (an int kernel not squared)",
        rules={"conv2d": macs, "linear": macs, "batch_norm2d": bn_macs, **_POOLS}),
    Convention(
        name="torchscan-flops", tool="torchscan", version="0.2.0",
        entry='crawl_module(model, shape)["totals"]["module_flops"]', unit="FLOPs", per_mac=2,
        reason="2 per MAC - 1 per output; + norms, activations, pools, dropout",
        rules={"conv2d": affine_flops, "linear": affine_flops, "batch_norm2d": bn_flops,
               "layer_norm": layer_norm_flops, "layer_norm2d": layer_norm_flops,
               "relu": per_element(1, f"{_F}:90-93", "one per element", modules=True),
               "relu6": per_element(2, f"{_F}:108-111", "two per element", modules=True),
               "sigmoid": per_element(4, f"{_F}:84-87", "four per element", modules=True),
               "tanh": per_element(6, f"{_F}:114-117", "six per element", modules=True),
               "dropout": dropout_flops, **_POOLS}),
)
