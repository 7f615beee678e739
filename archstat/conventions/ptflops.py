"""ptflops 0.7.5: ``get_model_complexity_info(model, (C, H, W), backend=...)`` MACs.

Backend ``pytorch`` (the default): two counters added together. Module hooks fire for the
classes in ptflops' table, matched by exact type (ptflops/pytorch_engine.py:311-314), so a
subclass such as torchvision's LayerNorm2d is not seen; and patched functions:
``F.relu/relu6/gelu/silu/elu/prelu``, every ``F.*pool*`` and ``F.softmax``
(pytorch_engine.py:348-390). A ReLU, GELU or pool module is therefore counted twice: by its
hook, then by the patched function its forward calls (ptflops/pytorch_ops.py:30-48,
347-348). ReLU6 calls ``F.hardtanh`` (not patched) and SiLU has no hook, so each counts once.
Of Tensor methods and torch.* functions it patches add, mul and matrix products
(pytorch_engine.py:434-457); Python operators (``x + y``, ``out += y``, ``scale * x``),
``torch.relu`` and ``x.mean`` are not seen. ptflops builds a batch of one; given a larger one (``input_constructor``), it divides
what its hooks counted by the batch size but not what its patched functions counted
(pytorch_engine.py:69-71): the rules below do the same, so at batch 1 nothing changes.

Backend ``aten``: a dispatch mode that counts only convolutions and matrix products
(ptflops/aten_ops.py:109-116), biases included: ``aten.addmm`` carries a linear layer's bias
when its input is 2-D or contiguous; on a permuted (non-contiguous) input the bias is a
separate, uncounted ``aten.add``.
"""
from __future__ import annotations

from .base import Convention, LayerView, modules_only, rule

_OPS = "ptflops/pytorch_ops.py"
_ENGINE = "ptflops/pytorch_engine.py"


@rule(f"{_OPS}:35-43, 60-92")
@modules_only
def macs_and_bias(v: LayerView) -> int:
    """MACs plus one per output element for a bias (per sample)"""
    return v.macs_plus_bias() // v.batch


@rule(f"{_OPS}:51-57")
@modules_only
def batch_norm(v: LayerView) -> int:
    """2 per input element (1 without affine), per sample"""
    return v.per_norm_element(2, 1) // v.batch


@rule(f"{_OPS}:51-57")
@modules_only
def layer_norm(v: LayerView) -> int:
    """1 per input element, per sample (the hook looks for `affine`, which LayerNorm does not have)"""
    return v.in_numel // v.batch


@rule(f"{_OPS}:30-32, {_ENGINE}:348-390")
def hooked_and_patched(v: LayerView) -> int:
    """a module: 1 per input element of a sample (its hook) + 1 per input element (the
    patched F.* its forward calls); F.* called directly: 1 per input element; a method: 0"""
    if v.call == "module":
        return v.in_numel // v.batch + v.in_numel
    return v.in_numel if v.call == "function" else 0


@rule(f"{_ENGINE}:348-390")
def patched_only(v: LayerView) -> int:
    """1 per element, by the patched F.* (ReLU6's module calls F.hardtanh, which is not; SiLU has no hook)"""
    return v.in_numel if v.call in ("module", "function") else 0


@rule(f"{_OPS}:30-32, {_ENGINE}:348-390")
def relu6(v: LayerView) -> int:
    """a module: its hook only, 1 per element of a sample (the F.hardtanh its forward calls is
    not patched); F.relu6 called directly: 1 per element (patched)"""
    if v.call == "module":
        return v.in_numel // v.batch
    return v.in_numel if v.call == "function" else 0


@rule("ptflops/aten_ops.py:71-106")
def aten_conv(v: LayerView) -> int:
    """aten.convolution: MACs plus one per output element for a bias"""
    return v.macs_plus_bias()


@rule("ptflops/aten_ops.py:23-53")
def aten_linear(v: LayerView) -> int:
    """aten.addmm (MACs + bias) on a 2-D or contiguous input; aten.mm (MACs, the bias add
    uncounted) on a permuted one"""
    permuted = len(v.x) > 2 and v.input_permuted()
    return v.macs if permuted else v.macs_plus_bias()


@rule(f"{_ENGINE}:348-390, {_OPS}:347-348")
def softmax(v: LayerView) -> int:
    """1 per element by the patched F.softmax (nn.Softmax calls it; it has no hook)"""
    return v.in_numel if v.call in ("module", "function") else 0


@rule(f"{_OPS}:465-468")
def tensor_op(v: LayerView) -> int:
    """torch.add / x.add(y), torch.mul / x.mul(y) (patched): 1 per output element for each
    input after the first; as an operator (x + y) 0"""
    return (len(v.in_shapes) - 1) * v.out_numel if v.call in ("torch", "method") else 0


@rule(f"{_OPS}:432, 465-468")
def lrn(v: LayerView) -> int:
    """F.local_response_norm's patched calls: x.mul(x), F.avg_pool3d over the channel-padded
    squares, .mul(alpha), .add(k): 3 per element + the padded squares (C + size - 1 channels)"""
    return v.lrn_patched_calls() if v.call in ("module", "function") else 0


_POOLS = ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "global_avg_pool2d")

CONVENTIONS = (
    Convention(
        name="ptflops", tool="ptflops (pytorch backend)", version="0.7.5",
        entry="get_model_complexity_info(model, (C, H, W), backend='pytorch')", unit="MACs",
        reason="+ biases, 2/element batch norm; ReLU, GELU and pools counted twice",
        rules={"conv2d": macs_and_bias, "linear": macs_and_bias, "batch_norm2d": batch_norm,
               "layer_norm": layer_norm, "relu": hooked_and_patched, "gelu": hooked_and_patched,
               "silu": patched_only, "relu6": relu6, "softmax": softmax, "lrn": lrn, "add": tensor_op,
               "mul": tensor_op, **{p: hooked_and_patched for p in _POOLS}}),
    Convention(
        name="ptflops-aten", tool="ptflops (aten backend)", version="0.7.5",
        entry="get_model_complexity_info(model, (C, H, W), backend='aten')", unit="MACs",
        reason="+ conv and linear biases; nothing else",
        rules={"conv2d": aten_conv, "linear": aten_linear}),
)
