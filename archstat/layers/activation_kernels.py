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
from .special import BLOCK, float_array, blockwise, erfc
from .registry import kernel


#: one piece of zeros per float dtype, made at import (never written): NumPy's ``maximum``
#: against a scalar 0 takes a slow loop, 3x the time of ``maximum`` against an array of
#: zeros (0.38 against 0.13 ns an element on 64k float32 values in cache, and 0.37 against
#: 0.10 in place on (8, 256, 56, 56); NumPy 2.4, measured side by side). Calloc'd pages
#: that are only read take no memory of their own.
_ZEROS = {np.dtype(t): np.zeros(BLOCK, t) for t in (np.float32, np.float64)}
for _z in _ZEROS.values():
    _z.flags.writeable = False


def _relu_into(a: np.ndarray, o: np.ndarray) -> None:
    zeros = _ZEROS.get(a.dtype)   # pieces hold at most BLOCK elements
    np.maximum(a, 0 if zeros is None else zeros[:a.size], out=o)


@kernel
def relu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """max(0, x) elementwise (NaN stays NaN, -0 gives +0); ``out=x`` computes it in place
    (torch.relu_). Pieces of :data:`.special.BLOCK` elements against a piece of zeros
    (``_ZEROS``), large arrays in parts side by side (:mod:`.threads`)."""
    x = np.asarray(x)
    if out is None:
        out = np.empty(x.shape, x.dtype)   # C order, whatever x's layout (a new tensor, as planned)
    threads.chunked(_relu_into, (x, out), BLOCK, compute=False)
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
    # one piece per part: a pass this light gains nothing from cache-sized pieces (measured slower)
    threads.chunked(lambda d, m, o: select(np.greater(m, 0), d, out=o), (dy, np.asarray(y), dx), max(1, dy.size),
                    compute=False)
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
def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """1 / (1 + exp(-x)) elementwise, as PyTorch computes it; ``out`` (x itself works) takes
    the result.

    Tiny outputs keep their relative precision (1 + e rounds to e when e is huge, and 1 / e
    is exact to rounding), within 4 ulp of the exact value, down to where exp(-x) overflows
    to inf (x below -88.7 in float32, -709.8 in float64): there the output is 0 (1 / inf), as
    PyTorch's, where the exact value is subnormal; that overflow, and the underflow of 1 / e
    to a subnormal just above, are silenced. Four passes, each over a cache-sized piece at a
    time and on every core (:func:`.threads.chunked`, any layout), with no temporaries: 10x
    faster than the stable ``exp(-|x|)`` form with a ``where`` it replaced (8.4 against 0.7 ns
    an element for SiLU on (8, 96, 112, 112) float32, 2 cores).
    """
    x = float_array(x)
    if out is None:
        out = np.empty(x.shape, x.dtype)
    threads.chunked(_sigmoid_into, (x, out), BLOCK)
    return out


#: exp(-x) = inf and its reciprocal 0 are the limits wanted (above), as is a quotient that
#: underflows to a subnormal or 0: not errors, whatever the caller's ``np.errstate``
_LIMITS = dict(over="ignore", under="ignore")


def _sigmoid_into(x: np.ndarray, out: np.ndarray) -> None:
    with np.errstate(**_LIMITS):
        np.negative(x, out=out)
        np.exp(out, out=out)
        out += 1
        np.reciprocal(out, out=out)


def _silu_into(x: np.ndarray, out: np.ndarray, tmp: np.ndarray | None = None) -> None:
    """out = x / (1 + exp(-x)); ``tmp`` (x's size), if given, holds the denominator (out may
    then be x)."""
    den = out if tmp is None else tmp
    with np.errstate(**_LIMITS):
        np.negative(x, out=den)
        np.exp(den, out=den)
        den += 1
        np.divide(x, den, out=out)


def _silu_sigmoid_into(x: np.ndarray, out: np.ndarray, s: np.ndarray) -> None:
    """:func:`_silu_into` keeping sigmoid(x) = 1 / (1 + exp(-x)) in ``s``."""
    _silu_into(x, out, s)
    with np.errstate(**_LIMITS):
        np.reciprocal(s, out=s)


def silu_workspace(size: int, itemsize: int, in_place: bool) -> int:
    """Bytes :func:`silu` allocates at inference beyond its output: nothing, or, in place,
    one piece of :data:`archstat.layers.special.BLOCK` elements per core it runs on (the
    denominators, as the input is still to be read)."""
    if not in_place:
        return 0
    return threads.chunked_scratch_bytes(size, 2 * size * itemsize, BLOCK, itemsize, scratch=1)


@kernel
def sigmoid_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dx = dy * y * (1 - y), with y = sigmoid(x)."""
    dx = np.empty(np.shape(dy), np.result_type(dy, y))

    def piece(d, s, o):
        np.subtract(1, s, out=o)
        o *= s
        o *= d
    threads.chunked(piece, (np.asarray(dy), np.asarray(y), dx), BLOCK)
    return dx


@kernel
def tanh(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Hyperbolic tangent elementwise; ``out`` takes the result."""
    return np.tanh(x, out=out)


@kernel
def tanh_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dx = dy * (1 - y^2), with y = tanh(x)."""
    return dy * (1 - y * y)


@kernel
def silu(x: np.ndarray, out: np.ndarray | None = None, keep_sigmoid: bool = True
         ) -> tuple[np.ndarray, np.ndarray | None]:
    """x * sigmoid(x) (torch.nn.SiLU, "swish"), computed as PyTorch does, x / (1 + exp(-x)):
    within 4 ulp of the exact value, but -0 where exp(-x) overflows (as :func:`sigmoid`; the
    exact value is then under 3e-37 in float32, 1e-305 in float64); returns ``(y, sigmoid(x))``
    for the backward, or ``(y, None)`` without ``keep_sigmoid`` (inference: no array but y;
    ``out=x`` works, with one piece of temporaries per core, :func:`silu_workspace`).
    Cache-sized pieces on every core, any layout, as :func:`sigmoid`."""
    x = float_array(x)
    in_place = out is not None and np.shares_memory(x, out)
    if out is None:
        out = np.empty(x.shape, x.dtype)
    if keep_sigmoid:                       # the same y, bit for bit, and 1 / (1 + exp(-x))
        s = np.empty(x.shape, x.dtype)
        threads.chunked(_silu_sigmoid_into, (x, out, s), BLOCK)
        return out, s
    threads.chunked(_silu_into, (x, out), BLOCK, scratch=int(in_place))
    return out, None


@kernel
def silu_backward(dy: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """dx = dy * (s + y (1 - s)): d/dx x s(x) = s + x s (1 - s), and x s = y, so the input
    itself is not needed (an in-place SiLU can still be differentiated)."""
    dx = np.empty(np.shape(dy), np.result_type(dy, y, s))

    def piece(d, yy, ss, o):
        np.subtract(1, ss, out=o)
        o *= yy
        o += ss
        o *= d
    threads.chunked(piece, (np.asarray(dy), np.asarray(y), np.asarray(s), dx), BLOCK)
    return dx


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
