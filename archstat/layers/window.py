"""Sliding-window geometry shared by conv2d, locally_connected2d and the pools.

One padding resolver and one output-size rule serve every windowed layer, so the
formula of the lecture, ``out = floor((H + p_lo + p_hi - d*(k-1) - 1) / s) + 1``
(PyTorch ``Conv2d``/``MaxPool2d`` docs), is written exactly once.
"""
from __future__ import annotations

from typing import Any

from ..errors import ArchstatError

Pads = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))


def ceil_div(a: int, b: int) -> int:
    """Exact integer ceil(a / b) for b > 0."""
    return -(-a // b)


def effective_kernel(kernel: int, dilation: int) -> int:
    """Extent of a dilated kernel: ``d*(k-1) + 1``."""
    return dilation * (kernel - 1) + 1


def resolve_padding(padding: Any, kernel: tuple[int, int], dilation: tuple[int, int],
                    stride: tuple[int, int]) -> Pads:
    """Turn a spec padding (pair, ``'same'`` or ``'valid'``) into per-side pads.

    ``'same'`` follows PyTorch: only for stride 1; the total ``d*(k-1)`` is split with the
    extra pixel (even kernels) on the bottom/right.
    """
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ArchstatError("padding 'same' needs stride 1 (as in PyTorch)", field="padding",
                                hint="give the padding as an integer, e.g. (kernel_size - 1) // 2")
        pads = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            pads.append((total // 2, total - total // 2))
        return pads[0], pads[1]
    ph, pw = padding
    return (ph, ph), (pw, pw)


def output_size(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int,
                dilation: int = 1, ceil_mode: bool = False, *, axis: str = "") -> int:
    """Number of window positions along one axis, as PyTorch computes it.

    ``floor((size + p_lo + p_hi - d*(k-1) - 1 [+ s-1 with ceil_mode]) / s) + 1``; with
    ``ceil_mode`` (pools) the last window must also start inside the input or the left
    padding. Raises ArchstatError when no window fits, instead of returning a zero or
    negative size.
    """
    span = size + pad_lo + pad_hi - effective_kernel(kernel, dilation)
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and out > 1 and (out - 1) * stride >= size + pad_lo:
        out -= 1
    if out < 1:
        raise ArchstatError(
            f"the {axis + ' ' if axis else ''}input size {size} (padded {size + pad_lo + pad_hi}) "
            f"is smaller than the kernel extent {effective_kernel(kernel, dilation)}, "
            f"so the output would be empty", field="kernel_size",
            hint="use a larger input, more padding, or a smaller kernel/dilation")
    return out


def output_hw(hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int], pads: Pads,
              dilation: tuple[int, int] = (1, 1), ceil_mode: bool = False) -> tuple[int, int]:
    """Output (H, W) of a 2-D window."""
    return (output_size(hw[0], kernel[0], stride[0], *pads[0], dilation[0], ceil_mode, axis="height"),
            output_size(hw[1], kernel[1], stride[1], *pads[1], dilation[1], ceil_mode, axis="width"))


def check_pool_padding(pads: Pads, kernel: tuple[int, int], dilation: tuple[int, int]) -> None:
    """PyTorch refuses pool padding larger than half the kernel size (not the dilated extent)."""
    for (lo, _), k in zip(pads, kernel):
        if lo > k // 2:
            raise ArchstatError(f"pool padding {lo} is more than half the kernel size {k}",
                                field="padding", hint="PyTorch allows at most kernel_size // 2")
