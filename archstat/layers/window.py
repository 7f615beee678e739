"""Sliding-window geometry shared by conv2d, locally_connected2d and the pools.

One padding resolver and one output-size rule serve every windowed layer, so the
formula of the lecture, ``out = floor((H + p_lo + p_hi - d*(k-1) - 1) / s) + 1``
(PyTorch ``Conv2d``/``MaxPool2d`` docs), is written exactly once. Adaptive pooling's
windows (one per output index, sizes that may vary) have their rule here too.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

from ..errors import ArchstatError

Pads = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))


def ceil_div(a: int, b: int) -> int:
    """Exact integer ceil(a / b) for b > 0."""
    return -(-a // b)


def effective_kernel(kernel: int, dilation: int) -> int:
    """Extent of a dilated kernel: ``d*(k-1) + 1``."""
    return dilation * (kernel - 1) + 1


def is_per_side(value: Any) -> bool:
    """True for padding written per side, ``[[top, bottom], [left, right]]`` (two pairs)."""
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (list, tuple)) and len(v) == 2 for v in value))


def resolve_padding(padding: Any, kernel: tuple[int, int], dilation: tuple[int, int],
                    stride: tuple[int, int]) -> Pads:
    """Turn a spec padding (pair, per-side ``((top, bottom), (left, right))``, ``'same'`` or
    ``'valid'``) into per-side pads.

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
    if isinstance(ph, tuple):   # per side already (an ONNX file's asymmetric pads)
        return tuple(ph), tuple(pw)
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


def max_pool_padding(kernel: tuple[int, int]) -> tuple[int, int]:
    """The most padding a pool takes on a side: half the kernel size (PyTorch's rule; not the
    dilated extent)."""
    return kernel[0] // 2, kernel[1] // 2


def check_pool_padding(pads: Pads, kernel: tuple[int, int], dilation: tuple[int, int]) -> None:
    """PyTorch refuses pool padding larger than half the kernel size (not the dilated extent)."""
    for side, k, most in zip(pads, kernel, max_pool_padding(kernel)):
        for p in side:
            if p > most:
                raise ArchstatError(f"pool padding {p} is more than half the kernel size {k}",
                                    field="padding", hint="PyTorch allows at most kernel_size // 2")


# ------------------------------------------------------------------ adaptive pooling

def adaptive_bounds(size: int, out: int, index: Any) -> tuple[Any, Any]:
    """Input range ``[start, end)`` read by output ``index`` of an adaptive pool along one
    axis, PyTorch's rule (aten ``AdaptivePooling.h``: ``start_index``, ``end_index``):
    ``start = floor(index * size / out)``, ``end = ceil((index + 1) * size / out)``.
    ``index`` may be an int or an integer array (the kernels ask for every output at once)."""
    return (index * size) // out, ceil_div((index + 1) * size, out)


def adaptive_taps(size: int, out: int) -> int:
    """Sum over the ``out`` windows of their lengths: ``size + out - gcd(size, out)``.

    Why: ``end_i = floor((i+1) size / out) + 1`` unless out divides ``(i+1) size``, so the
    floors telescope to ``size`` and each of the ``out`` windows adds 1, except the
    ``gcd(size, out)`` values of i + 1 in [1, out] with out | (i+1) size. Exact, O(1).
    """
    return size + out - math.gcd(size, out)


def adaptive_geometry(size: int, out: int) -> tuple[int, int, bool]:
    """``(largest window, largest step between window starts, uniform)`` of an adaptive pool
    along one axis, in O(1) (the analysis must not loop over a huge output). ``uniform``:
    every window has the same size and the same step to the next, so the windows are those
    of a fixed pool with that kernel and stride.

    With ``size = q out + r`` (0 <= r < out): r = 0 gives windows of q at a step of q
    (out = 1: one window of the whole axis, its step taken as its size). Otherwise window i
    covers ``q + ceil((a + r) / out)`` inputs and the next one starts ``q + floor((a + r) /
    out)`` later, where a = i r mod out runs over the multiples of g = gcd(r, out) below
    out: the largest window is q + 2 when some a > out - r, i.e. when r > g (else q + 1),
    and the largest step is q + 1 when some a >= out - r among the steps i <= out - 2,
    i.e. when r > 1 (else q). So r = 1 is uniform too: windows of q + 1 at a step of q
    (13 -> 3: 5 at a step of 4; size 1: every window reads pixel 0, a step of 0); every
    r > 1 mixes window sizes or steps. ``tests/test_layers_pool_shape.py`` checks all three
    against the windows.
    """
    q, r = divmod(size, out)
    if r == 0:
        return q, q, True
    kernel = q + 2 if r > math.gcd(r, out) else q + 1
    step = q + 1 if r > 1 else q
    return kernel, step, r == 1


def adaptive_output_hw(in_hw: tuple[int, int], output_size: Any) -> tuple[int, int]:
    """Output (H, W) of an adaptive pool: ``output_size`` is an int or a pair whose entries
    may be None, meaning "the input's size" (torch.nn.AdaptiveAvgPool2d)."""
    pair = (output_size, output_size) if not isinstance(output_size, (tuple, list)) else output_size
    if len(pair) != 2:
        raise ArchstatError(f"output_size must be an int or a pair, got {output_size!r}",
                            field="output_size")
    out = []
    for size, o in zip(in_hw, pair):
        if o is None:
            out.append(int(size))
        elif isinstance(o, bool) or not isinstance(o, numbers.Integral) or o < 1:
            raise ArchstatError(f"output_size entries must be integers >= 1 or null, got {o!r}",
                                field="output_size")
        else:
            out.append(int(o))
    return out[0], out[1]
