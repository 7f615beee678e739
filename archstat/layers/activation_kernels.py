"""The activation family's kernels (the layer types are in :mod:`.activation`).

:func:`relu`, :func:`relu6`, :func:`sigmoid`, :func:`tanh` and their ``*_backward`` take the
forward *output* ``y`` (the derivatives are functions of it, so an in-place ReLU can still be
differentiated); :func:`silu_backward` takes ``y`` and ``sigmoid(x)``;
:func:`hardswish_backward`, :func:`hardsigmoid_backward` and :func:`gelu_backward` take the
forward *input* x (hardswish is not monotonic, and hardsigmoid's output cannot tell x just
below 3 from 3). Any shape; float32 or float64, the output keeps the dtype.
"""
from __future__ import annotations

import math

import numpy as np

from . import threads
from .outbuf import reshaped
from .special import BLOCK, blockwise, erfc
from .registry import kernel


@kernel
def relu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """max(0, x) elementwise; ``out=x`` computes it in place (torch.relu_). Large arrays are
    done in parts side by side (:mod:`.threads`)."""
    x = np.asarray(x)
    if out is None:
        out = np.empty(x.shape, x.dtype)   # C order, whatever x's layout (a new tensor, as planned)
    threads.elementwise(lambda a, o: np.maximum(a, 0, out=o), (x, out))
    return out


#: the integer type of each float type's bit pattern (same size)
_BITS = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def select(mask: np.ndarray, dy: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``dy`` where ``mask``, else +0.0, in dy's dtype: ``np.where(mask, dy, 0)`` bit for bit,
    so an inf or NaN of ``dy`` outside the mask gives 0 (a float multiply by the mask would
    give NaN there).

    Computed as dy's bit pattern times the 0/1 mask, in integers: as fast as a float
    multiply, which would not do (inf * 0 is NaN), and 3.6-4.9x faster than ``np.where``
    for ReLU's backward on (1 or 8, 64, 224, 224) float32 (measured side by side, 2 cores;
    masked ``where=`` ufuncs are slower still on an irregular mask). ``out`` (optional)
    takes the result.
    """
    dy = np.asarray(dy)
    bits = _BITS.get(dy.dtype)
    if bits is None:                             # other dtypes: the plain (slower) form
        res = np.where(mask, dy, 0).astype(dy.dtype, copy=False)
        if out is None:
            return res
        np.copyto(out, res)
        return out
    res = np.multiply(dy.view(bits), mask, out=None if out is None else out.view(bits))
    return res.view(dy.dtype)


@kernel
def relu_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dx = dy where y > 0, else 0 (y may be ReLU's output or its input: same mask).

    At x = 0 the subgradient 0 is used, as PyTorch. Where y is NaN the gradient is 0 here,
    while PyTorch passes dy through (its mask is ``not (y <= 0)``).
    """
    dy = np.asarray(dy)
    dx = np.empty(dy.shape, dy.dtype)
    threads.elementwise(lambda d, m, o: select(np.greater(m, 0), d, out=o), (dy, np.asarray(y), dx))
    return dx


@kernel
def relu6(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """min(max(0, x), 6) elementwise (torch.nn.ReLU6); ``out=x`` computes it in place."""
    return np.clip(x, 0, 6, out=out)


@kernel
def relu6_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dx = dy where 0 < y < 6, else 0 (PyTorch's hardtanh rule: zero at both kinks)."""
    mask = np.greater(y, 0)
    mask &= np.less(y, 6)
    return select(mask, dy)


@kernel
def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), stably: with e = exp(-|x|) (never overflows), 1 / (1 + e) for
    x >= 0 and e / (1 + e) for x < 0, so tiny outputs keep their relative precision.
    Computed in cache-sized blocks (:func:`.special.blockwise`): its five temporaries stay
    small instead of five arrays of x's size."""
    return blockwise(_sigmoid, x)


def sigmoid_workspace(size: int, itemsize: int) -> int:
    """Bytes :func:`sigmoid` (and :func:`silu` at inference) allocate beyond the output: three
    arrays of one block of :data:`archstat.layers.special.BLOCK` elements at once (measured:
    exp(-|x|), the ``where``'s result and ``1 + e``)."""
    return 3 * min(size, BLOCK) * itemsize


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    y = np.where(x >= 0, 1, e)
    y /= 1 + e
    return y


@kernel
def sigmoid_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dx = dy * y * (1 - y), with y = sigmoid(x)."""
    return dy * y * (1 - y)


@kernel
def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent elementwise."""
    return np.tanh(x)


@kernel
def tanh_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dx = dy * (1 - y^2), with y = tanh(x)."""
    return dy * (1 - y * y)


@kernel
def silu(x: np.ndarray, out: np.ndarray | None = None, keep_sigmoid: bool = True
         ) -> tuple[np.ndarray, np.ndarray | None]:
    """x * sigmoid(x) (torch.nn.SiLU, "swish"); returns ``(y, sigmoid(x))`` for the backward,
    or ``(y, None)`` without ``keep_sigmoid`` (inference: y is then made block by block, with
    no array of x's size but y; ``out=x`` works, each block read before it is written)."""
    if keep_sigmoid:
        s = sigmoid(x)
        return np.multiply(x, s, out=out), s
    if out is None:
        return blockwise(lambda xb: xb * _sigmoid(xb), x), None
    flat_x, flat_out = reshaped(np.asarray(x), (-1,)), reshaped(out, (-1,))
    if flat_x is None or flat_out is None:     # not contiguous: the whole-array form
        return np.multiply(x, sigmoid(x), out=out), None
    for start in range(0, flat_x.size, BLOCK):
        xb = flat_x[start:start + BLOCK]
        flat_out[start:start + BLOCK] = xb * _sigmoid(xb)
    return out, None


@kernel
def silu_backward(dy: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """dx = dy * (s + y (1 - s)): d/dx x s(x) = s + x s (1 - s), and x s = y, so the input
    itself is not needed (an in-place SiLU can still be differentiated)."""
    return dy * (s + y * (1 - s))


@kernel
def hardswish(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """x * relu6(x + 3) / 6 elementwise (torch.nn.Hardswish; Howard et al. 2019, "Searching
    for MobileNetV3", Sec. 5.2), in PyTorch's order of operations, so the results are its bits;
    ``out=x`` computes it in place."""
    r = np.add(x, 3)
    np.clip(r, 0, 6, out=r)
    y = np.multiply(x, r, out=r if out is None else out)
    y /= 6
    return y


@kernel
def hardswish_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dx = 0 for x <= -3, dy * (x / 3 + 1/2) for -3 < x < 3, dy for x >= 3 (and for NaN x),
    PyTorch's rule and arithmetic at both kinks (torch hardswish_backward). Where x <= -3 the
    gradient is +0.0 even for an inf or NaN dy, as PyTorch's."""
    slope = np.divide(x, 3)
    slope += 0.5
    # slope 1 from x = 3 on (and for NaN): zeroed there by a select, then the 0/1 mask added;
    # a masked copyto or `where` branches per element and was 4x slower here
    below = np.less(x, 3)
    select(below, slope, out=slope)
    np.logical_not(below, out=below)
    slope += below
    np.multiply(dy, slope, out=slope)
    keep = np.less_equal(x, -3, out=below)
    np.logical_not(keep, out=keep)
    return select(keep, slope, out=slope)


@kernel
def hardsigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """relu6(x + 3) / 6 elementwise (torch.nn.Hardsigmoid; Howard et al. 2019, Sec. 5.2);
    ``out=x`` computes it in place."""
    y = np.add(x, 3, out=out)
    np.clip(y, 0, 6, out=y)
    y /= 6
    return y


def _hardsigmoid_inside(x: np.ndarray) -> np.ndarray:
    """The mask -3 < x < 3 where hardsigmoid has slope 1/6 (both kinks excluded, as PyTorch)."""
    inside = np.greater(x, -3)
    inside &= np.less(x, 3)
    return inside


def _sixth_where(dy: np.ndarray, inside: np.ndarray) -> np.ndarray:
    dx = np.multiply(dy, 1 / 6)
    return select(inside, dx, out=dx)


@kernel
def hardsigmoid_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dx = dy / 6 where -3 < x < 3, else +0.0 (also at both kinks, for NaN x and for an inf
    or NaN dy outside), as PyTorch. dy is multiplied by 1/6 rounded to the dtype; PyTorch
    2.x's float64 kernel multiplies by 1/6 rounded to float32 (a relative 3e-8 apart)."""
    return _sixth_where(dy, _hardsigmoid_inside(x))


#: sqrt(2/pi) and the cubic coefficient of GELU's tanh form (Hendrycks & Gimpel 2016, Sec. 2)
_GELU_BETA = math.sqrt(2 / math.pi)
_GELU_KAPPA = 0.044715
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


@kernel
def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """Gaussian error linear unit x * Phi(x), as torch.nn.functional.gelu (Hendrycks & Gimpel
    2016, "Gaussian Error Linear Units", Sec. 2).

    ``approximate='none'``: Phi(x) = (1 + erf(x / sqrt 2)) / 2, computed as
    erfc(-x / sqrt 2) / 2, the same value without the cancellation of 1 + erf for x << 0 (so
    GELU(-10) is -7.6e-23 rather than 0). ``'tanh'``: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715
    x^3))). Returns a new array of x's dtype.
    """
    return blockwise(_gelu_tanh if approximate == "tanh" else _gelu_erf, x)


def _gelu_erf(x):
    y = erfc(np.multiply(x, -math.sqrt(0.5)))
    y *= x
    y *= 0.5
    return y


def _gelu_tanh(x):
    y = _gelu_inner(x)
    np.tanh(y, out=y)
    y += 1
    y *= x
    y *= 0.5
    return y


def _gelu_inner(x: np.ndarray) -> np.ndarray:
    """sqrt(2/pi) * (x + 0.044715 x^3), the tanh form's argument (a new array)."""
    u = np.multiply(x, x)
    u *= x
    u *= _GELU_KAPPA
    u += x
    u *= _GELU_BETA
    return u


def gelu_workspace(size: int, itemsize: int, approximate: str = "none") -> int:
    """Bytes :func:`gelu` allocates beyond its output: its temporaries for one block of
    :data:`archstat.layers.special.BLOCK` elements. The tanh form's is one array of the
    block; the exact form's depend on which of erf's three regions each value falls in
    (index arrays, gathered values, partial results): measured 57-65 bytes per element in
    float32 and 97-113 in float64 over normal, uniform, constant and NaN blocks, under the
    bound stated here, 16 values and one 8-byte index per element."""
    block = min(size, BLOCK)
    return block * itemsize if approximate == "tanh" else block * (16 * itemsize + 8)


@kernel
def gelu_backward(dy: np.ndarray, x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """Gradient of :func:`gelu` with respect to x (x: the forward input), as PyTorch's
    GeluBackward: exact, dx = dy (Phi(x) + x phi(x)) with phi(x) = exp(-x^2/2) / sqrt(2 pi);
    tanh form, with t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3),
    dx = dy (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2))."""
    return blockwise(_gelu_tanh_grad if approximate == "tanh" else _gelu_erf_grad, x, dy)


def _gelu_erf_grad(x, dy):
    g = np.multiply(x, x)
    g *= -0.5
    np.exp(g, out=g)
    g *= _INV_SQRT_2PI
    g *= x
    cdf = erfc(np.multiply(x, -math.sqrt(0.5)))
    cdf *= 0.5
    g += cdf
    g *= dy
    return g


def _gelu_tanh_grad(x, dy):
    t = _gelu_inner(x)
    np.tanh(t, out=t)
    du = np.multiply(x, x)
    du *= 3 * _GELU_KAPPA
    du += 1
    du *= _GELU_BETA
    dt = np.multiply(t, t)
    np.subtract(1, dt, out=dt)
    dt *= du
    dt *= x
    dt *= 0.5
    t += 1
    t *= 0.5
    t += dt
    t *= dy
    return t
