"""Kernels that write into a buffer they are given (``RunContext.out``: a tensor's slice of a
concatenation's buffer, :mod:`archstat.placement`). Such a slice is a view, often not
C-contiguous (a channel slice of a batch), so a kernel reshapes it only where the reshape is a
view: NumPy's ``reshape`` would silently copy, and the output would be lost."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def reshaped(a: np.ndarray, shape: Sequence[int]) -> np.ndarray | None:
    """``a`` seen with ``shape`` without a copy, or None when no such view exists."""
    view = a.view()
    try:
        view.shape = tuple(shape)
    except AttributeError:    # NumPy: "incompatible shape for in-place modification"
        return None
    return view


def usable(out: np.ndarray | None, shape: Sequence[int], dtype: np.dtype, *views: Sequence[int]) -> bool:
    """True when ``out`` can take a kernel's output: this shape and dtype, and viewable with
    each shape of ``views`` (those the kernel writes through)."""
    return (out is not None and out.shape == tuple(shape) and out.dtype == dtype
            and all(reshaped(out, v) is not None for v in views))


def is_same_view(a: np.ndarray, b: np.ndarray) -> bool:
    """True when ``a`` and ``b`` are the same elements of the same memory (same start, shape
    and strides): writing one into the other would change nothing."""
    return (a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])
