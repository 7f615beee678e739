"""Vectorized special functions the kernels need and NumPy lacks: :func:`erf` and :func:`erfc`.

NumPy has no vectorized error function and scipy is not a dependency. These follow the
piecewise rational approximations of Sun's fdlibm ``s_erf.c`` (1993; the algorithm of
FreeBSD's and musl's libm): on |x| < 0.84375 an odd rational function of x^2; on
[0.84375, 1.25) a rational function of |x| - 1 around erf(1); on [1.25, 28) erfc(|x|) =
exp(-x^2 - 0.5625 + R(1/x^2) / S(1/x^2)) / |x|, with two (R, S) pairs split at |x| = 1/0.35;
beyond, the limits. fdlibm bounds each approximation by 2^-57.9 or better; evaluated with
NumPy's ``exp`` the results are within a few ulp of ``math.erf`` / ``math.erfc`` over the
whole real line (tests/test_layers_act_norm.py measures it).

Each region is evaluated only on its own elements (index gathers), a cache-sized block at
a time, so a call costs a handful of passes over the array plus one rational function per
element (bench/act_norm.py times it). float32 and float64 are computed in their own dtype;
other inputs are converted to float64.
"""
from __future__ import annotations

import numpy as np

__all__ = ["blockwise", "erf", "erfc", "float_array"]

#: erf(1) rounded to single precision (fdlibm's ``erx``): the mid region adds a small P/Q to it
_ERX = 8.45062911510467529297e-01
# |x| < 0.84375: erf(x) = x + x * P(x^2) / Q(x^2)
_PP = (1.28379167095512558561e-01, -3.25042107247001499370e-01, -2.84817495755985104766e-02,
       -5.77027029648944159157e-03, -2.37630166566501626084e-05)
_QQ = (1.0, 3.97917223959155352819e-01, 6.50222499887672944485e-02, 5.08130628187576562776e-03,
       1.32494738004321644526e-04, -3.96022827877536812320e-06)
# 0.84375 <= |x| < 1.25: erf(|x|) = erx + P(s) / Q(s), s = |x| - 1
_PA = (-2.36211856075265944077e-03, 4.14856118683748331666e-01, -3.72207876035701323847e-01,
       3.18346619901161753674e-01, -1.10894694282396677476e-01, 3.54783043256182359371e-02,
       -2.16637559486879084300e-03)
_QA = (1.0, 1.06420880400844228286e-01, 5.40397917702171048937e-01, 7.18286544141962662868e-02,
       1.26171219808761642112e-01, 1.36370839120290507362e-02, 1.19844998467991074170e-02)
# 1.25 <= |x| < 1/0.35: erfc(|x|) = exp(-x^2 - 0.5625 + R(z) / S(z)) / |x|, z = 1/x^2
_RA = (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
       -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
       -8.12874355063065934246e+01, -9.81432934416914548592e+00)
_SA = (1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
       6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
       6.57024977031928170135e+00, -6.04244152148580987438e-02)
# 1/0.35 <= |x| < 28: the same form with another (R, S)
_RB = (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
       -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
       -4.83519191608651397019e+02)
_SB = (1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
       3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
       -2.24409524465858183362e+01)
#: where fdlibm switches from (RA, SA) to (RB, SB): the double whose high word is 0x4006DB6E
_SPLIT = 2.8571434020996094

#: clears the low bits of |x| so that z * z is exact (fdlibm's SET_LOW_WORD(z, 0); s_erff.c
#: keeps 11 significant bits for float32): exp(-x^2) = exp(-z^2) * exp((z - x)(z + x))
_TRUNCATE = {np.dtype(np.float64): (np.int64, np.int64(-(1 << 32))),
             np.dtype(np.float32): (np.int32, np.int32(-(1 << 13)))}


def float_array(x) -> np.ndarray:
    """x as an array of float32 or float64 (its own dtype if one of them, else float64)."""
    x = np.asarray(x)
    if x.dtype not in _TRUNCATE:
        x = x.astype(np.float64)
    return x


def _ratio(t: np.ndarray, num: tuple[float, ...], den: tuple[float, ...]) -> np.ndarray:
    """num(t) / den(t), both polynomials by Horner's rule, coefficients lowest order first."""
    p = t * num[-1]
    p += num[-2]
    for c in num[-3::-1]:
        p *= t
        p += c
    q = t * den[-1]
    q += den[-2]
    for c in den[-3::-1]:
        q *= t
        q += c
    p /= q
    return p


def _small_xy(x: np.ndarray) -> np.ndarray:
    """x * P(x^2) / Q(x^2): erf(x) - x for |x| < 0.84375."""
    xy = _ratio(x * x, _PP, _QQ)
    xy *= x
    return xy


def _mid_pq(a: np.ndarray) -> np.ndarray:
    """P(a - 1) / Q(a - 1): erf(a) - erx for 0.84375 <= a < 1.25."""
    return _ratio(a - 1, _PA, _QA)


def _tail_erfc(a: np.ndarray) -> np.ndarray:
    """erfc(a) for 1.25 <= a < 28."""
    near = a < _SPLIT
    rs = np.empty_like(a)
    inv = 1 / (a * a)
    for part, num, den in ((np.flatnonzero(near), _RA, _SA), (np.flatnonzero(~near), _RB, _SB)):
        rs[part] = _ratio(inv.take(part), num, den)
    bits, mask = _TRUNCATE[a.dtype]
    z = (a.view(bits) & mask).view(a.dtype)
    r = np.multiply(z, z)
    r += 0.5625
    np.negative(r, out=r)
    np.exp(r, out=r)
    rs += (z - a) * (z + a)
    np.exp(rs, out=rs)
    r *= rs
    r /= a
    return r


def _regions(flat: np.ndarray, tail_end: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The indices of |x| < 0.84375, of 0.84375 <= |x| < 1.25 and of 1.25 <= |x| < tail_end.

    Index gathers (``flatnonzero``, ``take``) rather than boolean masks: on random data
    NumPy's masked indexing and ``where`` branch per element, and were 5-10x slower here
    (1e6 normal float64 values: ``x[mask]`` 4.2 ms, ``flatnonzero`` + ``take`` 0.8 ms;
    ``np.where`` 3.2 ms against 0.36 ms for a multiply)."""
    a = np.abs(flat)
    small = a < 0.84375
    below = a < 1.25
    tail = a < tail_end
    tail ^= below
    below ^= small
    return np.flatnonzero(small), np.flatnonzero(below), np.flatnonzero(tail)


#: elements per block: a block's temporaries (a few dozen arrays of up to its size) stay in
#: the CPU caches instead of streaming through memory at every operation; 2-3x faster than
#: whole-array passes for erfc on 1e6 values and on (8, 96, 56, 56), float32 and float64
#: (measured side by side, 2 cores; bench/act_norm.py: "erfc whole" against "erfc block")
BLOCK = 1 << 16


def blockwise(kernel, *arrays) -> np.ndarray:
    """``kernel(*blocks)`` over arrays of one shape, flattened, :data:`BLOCK` elements at a
    time; returns a new array of that shape in the first array's float dtype (float32 or
    float64; anything else becomes float64). For elementwise kernels of many passes."""
    flats = [float_array(a).reshape(-1) for a in arrays]
    out = np.empty_like(flats[0])
    for start in range(0, out.size, BLOCK):
        out[start:start + BLOCK] = kernel(*(f[start:start + BLOCK] for f in flats))
    return out.reshape(np.shape(arrays[0]))


def _erf_flat(flat: np.ndarray) -> np.ndarray:
    small, mid, tail = _regions(flat, 6.0)
    out = np.sign(flat)                  # |x| >= 6: erf is +-1 to double precision; nan stays
    xs = flat.take(small)
    out[small] = xs + _small_xy(xs)
    xm = flat.take(mid)
    out[mid] = np.copysign(_ERX + _mid_pq(np.abs(xm)), xm)
    xt = flat.take(tail)
    out[tail] = np.copysign(1 - _tail_erfc(np.abs(xt)), xt)
    return out


def _erfc_flat(flat: np.ndarray) -> np.ndarray:
    # the two signs of each region are merged by exact arithmetic, not `where`
    small, mid, tail = _regions(flat, 28.0)
    out = np.sign(flat)
    np.subtract(1, out, out=out)         # |x| >= 28: 0 or 2; nan stays
    xs = flat.take(small)
    # fdlibm: 1 - (x + xy) below 1/4; from 1/4, 0.5 - (xy + (x - 0.5)) loses less to rounding.
    # Both are (1 - c) - (xy + (x - c)), c = 0 or 1/2, exactly.
    c = np.greater_equal(xs, 0.25).astype(xs.dtype)
    c *= 0.5
    res = _small_xy(xs)
    res += xs - c
    np.subtract(1 - c, res, out=res)
    out[small] = res
    # 0.84375 <= |x| < 1.25: (1 - erx) - pq for x > 0, (1 + erx) + pq for x < 0 (both exact sums)
    xm = flat.take(mid)
    sign = np.sign(xm)
    res = _mid_pq(np.abs(xm))
    res *= sign
    np.subtract(1 - sign * _ERX, res, out=res)
    out[mid] = res
    # 1.25 <= |x| < 28: q for x > 0, 2 - q for x < 0 (which rounds to 2 from x = -6 on)
    xt = flat.take(tail)
    sign = np.sign(xt)
    res = _tail_erfc(np.abs(xt))
    res *= sign
    res += 1 - sign
    out[tail] = res
    return out


def erf(x) -> np.ndarray:
    """The error function 2/sqrt(pi) * integral_0^x exp(-t^2) dt, elementwise (as math.erf).

    erf(+-0) = +-0, erf(+-inf) = +-1, erf(nan) = nan. Returns a new array of x's dtype
    (float32 or float64; anything else is computed as float64), of x's shape.
    """
    return blockwise(_erf_flat, x)


def erfc(x) -> np.ndarray:
    """The complementary error function 1 - erf(x), elementwise (as math.erfc), without the
    cancellation of 1 - erf(x) for large x: erfc(x) keeps its relative precision down to
    the smallest subnormal (x ~ 27.2).

    erfc(-inf) = 2, erfc(inf) = 0, erfc(nan) = nan. Returns a new array of x's dtype
    (float32 or float64; anything else is computed as float64), of x's shape.
    """
    return blockwise(_erfc_flat, x)
