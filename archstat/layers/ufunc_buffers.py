"""What NumPy's own buffers cost a kernel, for the workspace it declares.

A ufunc whose operands do not all walk memory in one simple order (a broadcast operand, a
strided view, a reduction over an axis that is not the last) runs through NumPy's buffered
iterator, which allocates a buffer of at most ``np.getbufsize()`` elements (8,192 by default)
for some of its operands, even when no cast is needed. How many operands get one is NumPy's
choice; each kernel measured its own passes with tracemalloc and states the count where it
calls :func:`ufunc_buffers` (one for an add of a broadcast bias over a contiguous array, two or
three over strided views).
"""
from __future__ import annotations

import numpy as np


def ufunc_buffers(operands: int, elements: int) -> int:
    """Elements of NumPy's buffers for a ufunc pass over ``elements`` elements that buffers
    ``operands`` of its operands: each buffer holds at most ``np.getbufsize()`` elements."""
    return operands * min(np.getbufsize(), elements)
