"""calflops 0.3.2: ``calculate_flops(model, input_shape)`` FLOPs and MACs (DeepSpeed's flops
profiler counts the same way).

calflops replaces functions by name: ``F.*``, ``torch.*`` and ``torch.Tensor.*``
(calflops/pytorch_ops.py:452-525), and counts each call to one of them from its arguments. A
module counts when its forward calls a replaced function (nn.Conv2d calls F.conv2d); no
module is hooked. So what counts is the function a layer reaches: ReLU6's module calls
F.hardtanh, which is not replaced (0); hardswish, hardsigmoid, sigmoid and dropout are not
replaced; Python operators (``x + y``, ``out += y``, ``scale * x``) go through
``Tensor.__add__``/``__iadd__``/``__mul__``, not the replaced ``Tensor.add``/``mul``, so they
count 0, as do ``x.mean`` and ``torch.relu`` (only F.relu is replaced). MACs come from conv and linear only.
"""
from __future__ import annotations

from .base import Convention, LayerView, rule

_OPS = "calflops/pytorch_ops.py"


def _reached(v: LayerView) -> bool:
    """Did the call go through a replaced function? A module's forward or F.* does; a Tensor
    method or an operator does not."""
    return v.call in ("module", "function")


@rule(f"{_OPS}:83-125")
def conv_flops(v: LayerView) -> int:
    """F.conv2d: 2 per MAC plus one per output element for a bias"""
    return 2 * v.macs + (v.out_numel if "bias" in v.params else 0) if _reached(v) else 0


@rule(f"{_OPS}:37-40")
def linear_flops(v: LayerView) -> int:
    """F.linear: 2 per MAC, the bias left out"""
    return 2 * v.macs if _reached(v) else 0


@rule(f"{_OPS}:83-125, 37-40")
def macs(v: LayerView) -> int:
    """F.conv2d, F.linear: archstat's MACs (biases left out)"""
    return v.macs if _reached(v) else 0


@rule(f"{_OPS}:174-189")
def batch_norm(v: LayerView) -> int:
    """F.batch_norm in eval mode: 2 per element with an affine scale and shift, 1 without"""
    return v.per_norm_element(2, 1) if _reached(v) else 0


@rule(f"{_OPS}:192-201")
def layer_norm(v: LayerView) -> int:
    """F.layer_norm: 5 per element with a weight, 4 without"""
    return v.per_norm_element(5, 4) if _reached(v) else 0


@rule(f"{_OPS}:43-80")
def per_input_element(v: LayerView) -> int:
    """F.relu, F.silu, F.gelu and every F.*pool*: one per input element (a pool's kernel size is ignored)"""
    return v.in_numel if _reached(v) else 0


@rule(f"{_OPS}:470")
def relu6(v: LayerView) -> int:
    """F.relu6 called directly: one per element; nn.ReLU6 calls F.hardtanh, which calflops does not replace"""
    return v.in_numel if v.call == "function" else 0


@rule(f"{_OPS}:320-350")
def elementwise_method(v: LayerView) -> int:
    """torch.add / x.add(y), torch.mul / x.mul(y): one per output element for each input after
    the first; as an operator (x + y) 0"""
    return (len(v.in_shapes) - 1) * v.out_numel if v.call in ("torch", "method") else 0


@rule(f"{_OPS}:254-255")
def softmax(v: LayerView) -> int:
    """F.softmax (nn.Softmax calls it): one per input element"""
    return v.in_numel if _reached(v) else 0


@rule(f"{_OPS}:71-80, 320-350")
def lrn(v: LayerView) -> int:
    """F.local_response_norm's replaced calls: x.mul(x), F.avg_pool3d over the channel-padded
    squares, .mul(alpha), .add(k): 3 per element + the padded squares (C + size - 1 channels)"""
    return v.lrn_patched_calls() if _reached(v) else 0


_COUNTED = {"relu": per_input_element, "silu": per_input_element, "gelu": per_input_element,
            "max_pool2d": per_input_element, "avg_pool2d": per_input_element,
            "adaptive_avg_pool2d": per_input_element, "adaptive_max_pool2d": per_input_element,
            "global_avg_pool2d": per_input_element, "relu6": relu6, "batch_norm2d": batch_norm,
            "layer_norm": layer_norm, "layer_norm2d": layer_norm, "add": elementwise_method,
            "mul": elementwise_method, "softmax": softmax, "lrn": lrn}

CONVENTIONS = (
    Convention(
        name="calflops-flops", tool="calflops", version="0.3.2", entry="calculate_flops(model, input_shape)[0]",
        unit="FLOPs", per_mac=2,
        reason="2 per MAC + conv biases, norms, ReLU/SiLU/GELU, pools; no adds",
        rules={"conv2d": conv_flops, "linear": linear_flops, **_COUNTED}),
    Convention(
        name="calflops-macs", tool="calflops", version="0.3.2", entry="calculate_flops(model, input_shape)[1]",
        unit="MACs", reason="conv and linear MACs, biases left out: the same",
        rules={"conv2d": macs, "linear": macs}),
)
