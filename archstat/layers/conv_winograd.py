"""Winograd minimal filtering for 3x3 stride-1 convolutions: F(2x2, 3x3) and F(4x4, 3x3).

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016, section 4:
one output tile ``Y`` (m x m) of the cross-correlation of an input tile ``d``
(alpha x alpha, alpha = m + 2, neighbouring tiles overlapping by 2) with a 3x3 filter ``g`` is

    Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A                                      (eq. 8)

so over channels and tiles the work is alpha^2 independent GEMMs in the transformed domain
(eq. 12): ``M[xi] = U[xi] @ V[xi]`` with ``U = G g G^T`` of shape (alpha^2, K, C) and
``V = B^T d B`` of shape (alpha^2, C, P), P tiles. Multiplies per output: alpha^2/m^2
(16/4 = 4 for F(2x2), 36/16 = 2.25 for F(4x4)) instead of 9.

Float error grows with the tile (the transforms' entries grow: up to 8 in F(4x4)'s A^T).
Measured in float32 on VGG-16-like data (normal inputs, He-initialised weights, C = 3..512)
against a float64 reference, as max |error| / rms(output): im2col 1e-6 to 5e-6, F(2x2) 1e-6
to 5e-6, F(4x4) 1e-5 to 8e-5 (about 15x F(2x2)); ``tests/test_conv_winograd.py`` bounds it.

Backward (the duality of :mod:`.conv`): ``dx`` is the 3x3 stride-1 cross-correlation of
``dy`` with the filters rotated 180 degrees and transposed (C <-> K), padded by
``2 - pad`` per side, so it runs the same Winograd forward. ``dw`` is the adjoint of eq. 8
in the transformed domain: ``dw = G^T [ sum_tiles (A dY A^T) ⊙ (B^T d B) ] G``, again
alpha^2 GEMMs ``dU[xi] = dM[xi] @ V[xi]^T``. Measured against im2col's backward (which
makes dx and dw together): on VGG-16 conv1_2 to conv5 the Winograd dw alone took 13-38 ms
where the whole im2col backward took 13-94 ms, about half of it its dW GEMM, so dw stays
in the Winograd domain (bench/winograd.py --backward).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import ArchstatError
from . import im2col as win
from .window import ceil_div


@dataclass(frozen=True)
class Transform:
    """The matrices of F(m x m, 3 x 3) (float64; entries of B^T and A^T are integers)."""

    m: int
    BT: np.ndarray   # (alpha, alpha): input transform
    G: np.ndarray    # (alpha, 3): filter transform
    AT: np.ndarray   # (m, alpha): output transform

    @property
    def alpha(self) -> int:
        return self.m + 2


# Lavin & Gray 2016, section 4.1 (F(2,3), interpolation points 0, 1, -1, inf) and 4.2
# (F(4,3), points 0, 1, -1, 2, -2, inf)
TRANSFORMS = {
    2: Transform(
        2,
        np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
        np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)),
    4: Transform(
        4,
        np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                  [0, 1, -1, 8, -8, 1]], np.float64)),
}

#: algorithm name -> output tile m
ALGORITHMS = {"winograd2": 2, "winograd4": 4}


def multiply_fraction(algorithm: str) -> float:
    """Multiplies of F(m x m, 3 x 3) per output as a fraction of the direct convolution's:
    (m + 2)^2 per m^2 outputs against 9 each (4/9 for F(2x2), 1/4 for F(4x4)); the
    transforms' additions (and their few multiplies by constants) not counted."""
    m = ALGORITHMS[algorithm]
    return (m + 2) ** 2 / (9 * m * m)


def check_applicable(algorithm: str, kernel: Any, stride: Any, dilation: Any, groups: int,
                     padding_mode: str) -> int:
    """The tile ``m`` of ``algorithm`` when it applies to the layer; ArchstatError naming
    the first field that rules it out otherwise."""
    tile = ALGORITHMS[algorithm]
    needs = (("kernel_size", tuple(kernel), (3, 3), "a 3x3 kernel"),
             ("stride", win.pair(stride, "stride", 1), (1, 1), "stride 1"),
             ("dilation", win.pair(dilation, "dilation", 1), (1, 1), "dilation 1"),
             ("groups", groups, 1, "groups 1"),
             ("padding_mode", padding_mode, "zeros", "padding_mode 'zeros'"))
    for field, got, want, what in needs:
        if got != want:
            raise ArchstatError(f"algorithm '{algorithm}' needs {what}, got {got!r}", field=field,
                                hint="use algorithm 'im2col'")
    return tile


def _kron(t: Transform) -> np.ndarray:
    """``G ⊗ G`` (alpha^2, 9): ``U[xi, nu] = sum_ab G[xi, a] G[nu, b] g[a, b]`` as one GEMM."""
    return np.kron(t.G, t.G)


def filter_transform(w: np.ndarray, t: Transform) -> np.ndarray:
    """``U = G g G^T`` of every filter: w (K, C, 3, 3) -> (alpha^2, K, C) in w's dtype, as
    one GEMM ``(G ⊗ G) @ w^T`` that writes U in its final layout (an einsum in float64 took
    50-200 ms on VGG's 512x512 filters; in float32 the measured errors above did not
    change). Done per call: on small images (VGG's 14x14 at batch 1) it is a third to half
    of the forward's time."""
    k, c = w.shape[:2]
    u = np.matmul(_kron(t).astype(w.dtype), w.reshape(k * c, 9).T)   # (alpha^2, K*C)
    return u.reshape(t.alpha ** 2, k, c)


def _tiles(xp: np.ndarray, block, size: int, step: int, out: np.ndarray) -> np.ndarray:
    """Copy the ``size x size`` tiles at ``step`` of images n0:n1, tile rows r0:r1 of ``xp``
    (N, C, Hp, Wp) into the buffer ``out`` as (size, size, C, n, rows, tiles_w)."""
    n0, n1, r0, r1 = block
    src = xp[n0:n1, :, r0 * step:]
    sn, sc, sh, sw = src.strides
    tw = (xp.shape[3] - size) // step + 1
    shape = (size, size, xp.shape[1], n1 - n0, r1 - r0, tw)
    view = as_strided(src, shape, (sh, sw, sc, sn, step * sh, step * sw), writeable=False)
    return _into(out, shape, view)


def _into(buf: np.ndarray, shape, value: np.ndarray | None = None) -> np.ndarray:
    """The first elements of the flat buffer ``buf`` seen as ``shape`` (``value`` copied in)."""
    out = buf[:int(np.prod(shape))].reshape(shape)
    if value is not None:
        np.copyto(out, value)
    return out


def _two_sided(mat: np.ndarray, d: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``mat @ d @ mat^T`` of every tile: d (a, a, ...) -> (r, r, ...), r = mat.shape[0], as
    one GEMM ``(mat ⊗ mat) @ d`` into the flat buffer ``out``. Measured against two GEMMs
    (rows, then columns, through a temporary): 1.1-5x faster on VGG-16 sizes, one pass
    over memory instead of two (and the temporary's buffer saved)."""
    r, a = mat.shape
    rest = d.shape[2:]
    full = _into(out, (r * r, int(np.prod(rest))))
    np.matmul(np.kron(mat, mat), d.reshape(a * a, -1), out=full)
    return full.reshape((r, r) + rest)


class _Buffers:
    """The three flat work buffers of one call, sized for its largest block of tiles
    (preallocated: fresh pages for every block cost more than the transforms, measured)."""

    def __init__(self, t: Transform, plan, tiles_w: int, c: int, k: int, dtype):
        most = max(((n1 - n0) * (r1 - r0) for n0, n1, r0, r1 in plan), default=0) * tiles_w
        size = t.alpha ** 2 * max(c, k) * most
        self.a, self.b = np.empty(size, dtype), np.empty(size, dtype)
        self.m = np.empty(t.alpha ** 2 * k * most, dtype)


def _input_transform(xp, t, block, bufs):
    """``V = B^T d B`` of a block of tiles: (alpha^2, C, P), P = n * rows * tiles_w, in
    ``bufs.b`` (the tiles are gathered into ``bufs.a``)."""
    d = _tiles(xp, block, t.alpha, t.m, bufs.a)
    v = _two_sided(t.BT.astype(xp.dtype), d, bufs.b)
    return v.reshape(t.alpha ** 2, xp.shape[1], -1), d.shape[3:]


def _padded(x: np.ndarray, pads, t: Transform) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """Zero-pad (or crop, for a negative pad) ``x`` so that whole tiles cover the output:
    returns the padded input, the output size and the tile grid."""
    (pt, pb), (pl, pr) = pads
    h, w = x.shape[2:]
    ho, wo = h + pt + pb - 2, w + pl + pr - 2
    th, tw = ceil_div(ho, t.m), ceil_div(wo, t.m)
    bottom, right = th * t.m + 2 - h - pt, tw * t.m + 2 - w - pl
    # a negative pad on the top/left (a pad of more than 2 in the backward's dual): crop
    x = x[:, :, max(0, -pt):, max(0, -pl):]
    x = x[:, :, :x.shape[2] + min(0, bottom), :x.shape[3] + min(0, right)]
    xp = win.pad(x, ((max(0, pt), max(0, bottom)), (max(0, pl), max(0, right))), "zeros")
    return np.ascontiguousarray(xp), (ho, wo), (th, tw)


def _blocks(n: int, grid, t: Transform, channels: int, itemsize: int):
    """Blocks of images / tile rows whose transformed tiles (alpha^2 * channels each) aim at
    im2col's block size: measured on VGG-16 conv1_2 to conv4 at batch 1 (paired rounds),
    8 MiB (at least 2048 tiles) was within 10 % of the best of 1-64 MiB for every layer,
    and the best size differed by layer (4 MiB for C = 64, 32-64 MiB for C >= 128 in F(4x4))."""
    return list(win.grid_blocks(n, grid, t.alpha ** 2 * channels * itemsize))


def _forward(x: np.ndarray, u: np.ndarray, b, pads, t: Transform) -> np.ndarray:
    """Winograd forward with transformed filters ``u`` (alpha^2, K, C) and per-side
    ``pads`` (entries may be negative: cropped)."""
    n, c = x.shape[:2]
    k = u.shape[1]
    xp, (ho, wo), grid = _padded(x, pads, t)
    th, tw = grid
    # whole tiles written straight into y (a view (n, K, rows, m, tiles_w, m)); y is cropped
    # once at the end when the tiles overhang the output (only then is it larger)
    y = np.empty((n, k, th * t.m, tw * t.m), x.dtype)
    plan = _blocks(n, grid, t, max(c, k), x.itemsize)
    bufs = _Buffers(t, plan, tw, c, k, x.dtype)
    at = t.AT.astype(x.dtype)
    bias = None if b is None else b.reshape(1, k, 1, 1, 1, 1)
    for block in plan:
        n0, n1, r0, r1 = block
        v, (nb, rows, _) = _input_transform(xp, t, block, bufs)
        mm = _into(bufs.m, (t.alpha ** 2, k, v.shape[2]))
        np.matmul(u, v, out=mm)                                # the alpha^2 GEMMs
        yt = _two_sided(at, mm.reshape(t.alpha, t.alpha, -1), bufs.a)  # (m, m, K*P)
        yt = yt.reshape(t.m, t.m, k, nb, rows, tw).transpose(3, 2, 4, 0, 5, 1)
        out = y[n0:n1, :, r0 * t.m:r1 * t.m].reshape(nb, k, rows, t.m, tw, t.m)
        if bias is None:
            np.copyto(out, yt)
        else:   # the bias added on the way out of the tiles
            np.add(yt, bias, out=out)
    if (th * t.m, tw * t.m) != (ho, wo):
        y = np.ascontiguousarray(y[:, :, :ho, :wo])
    return y


def winograd_conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, padding: Any,
                    tile: int) -> np.ndarray:
    """3x3 stride-1 convolution by Winograd F(tile x tile, 3x3), ``tile`` 2 or 4.

    x: (N, C, H, W) float32/float64; w: (K, C, 3, 3); b: (K,) or None (cast to x's dtype
    by the caller, :func:`archstat.layers.conv.conv2d`). ``padding``: anything
    :func:`archstat.layers.im2col.geometry` takes (int, pair, per-side pairs, 'same',
    'valid'). Returns y: (N, K, H_out, W_out) in x's dtype, as ``conv2d``. Memory: the
    transformed input is built per block of images / tile rows
    (:func:`archstat.layers.im2col.grid_blocks`).
    """
    geom = win.geometry(x.shape[2:], w.shape[2:], 1, padding, 1)
    t = TRANSFORMS[tile]
    return _forward(x, filter_transform(w, t), b, geom.pads, t)


def winograd_conv2d_backward(dy: np.ndarray, x: np.ndarray, w: np.ndarray, padding: Any,
                             tile: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`winograd_conv2d`: ``(dx, dw, db)`` in x's dtype.

    dy: (N, K, H_out, W_out). ``dx``: the forward on ``dy`` with ``w`` rotated 180 degrees
    and transposed to (C, K, 3, 3), pads ``2 - pad`` per side. ``dw``: the adjoint of
    eq. 8, accumulated in the transformed domain over blocks of tiles.
    """
    geom = win.geometry(x.shape[2:], w.shape[2:], 1, padding, 1)
    t = TRANSFORMS[tile]
    (pt, pb), (pl, pr) = geom.pads
    w_dual = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    dx = _forward(dy, filter_transform(w_dual, t), None, ((2 - pt, 2 - pb), (2 - pl, 2 - pr)), t)
    return dx, _weight_grad(dy, x, geom.pads, t), dy.sum(axis=(0, 2, 3))


def _weight_grad(dy: np.ndarray, x: np.ndarray, pads, t: Transform) -> np.ndarray:
    """``dw = G^T [sum_tiles (A dY A^T) ⊙ (B^T d B)] G``: (K, C, 3, 3)."""
    n, c = x.shape[:2]
    k = dy.shape[1]
    xp, (ho, wo), (th, tw) = _padded(x, pads, t)
    # dy zero-padded to whole tiles: the partial tiles' missing outputs get no gradient
    dyp = win.pad(dy, ((0, th * t.m - ho), (0, tw * t.m - wo)), "zeros")
    plan = _blocks(n, (th, tw), t, max(c, k), x.itemsize)
    bufs = _Buffers(t, plan, tw, c, k, x.dtype)
    a = np.ascontiguousarray(t.AT.T, dtype=x.dtype)
    du = (np.zeros if len(plan) > 1 else np.empty)((t.alpha ** 2, k, c), x.dtype)
    part = np.empty_like(du) if len(plan) > 1 else du   # one block: the GEMMs write du
    for block in plan:
        v, _ = _input_transform(xp, t, block, bufs)                 # in bufs.b
        dyt = _tiles(dyp, block, t.m, t.m, bufs.a)                  # (m, m, K, n, rows, tw)
        dm = _two_sided(a, dyt, bufs.m).reshape(t.alpha ** 2, k, -1)  # A dY A^T
        np.matmul(dm, v.transpose(0, 2, 1), out=part)
        if part is not du:
            du += part
    dw = np.matmul(_kron(t).T.astype(x.dtype), du.reshape(t.alpha ** 2, k * c))  # (9, K*C)
    return np.ascontiguousarray(dw.T).reshape(k, c, 3, 3)
