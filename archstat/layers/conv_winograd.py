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

import functools
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import ArchstatError
from . import im2col as win
from .outbuf import usable
from .ufunc_buffers import ufunc_buffers
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


def _kron(t: Transform, which: str, dtype) -> np.ndarray:
    """``M ⊗ M`` of the transform's matrix ``which`` ("BT", "G" or "AT") in ``dtype``:
    ``(M ⊗ M) @ vec(d) = vec(M d M^T)``, so a two-sided transform of every tile is one GEMM.
    Made once per matrix and dtype and kept read-only: made per call, NumPy's kron held
    10-34 kB of temporaries beside the workspace :func:`workspace_bytes` declares."""
    return _kron_of(t.m, which, np.dtype(dtype).str)


@functools.lru_cache(maxsize=None)
def _kron_of(m: int, which: str, dtype: str) -> np.ndarray:
    mat = getattr(TRANSFORMS[m], which)
    kron = np.kron(mat, mat).astype(dtype)
    kron.flags.writeable = False
    return kron


def filter_transform(w: np.ndarray, t: Transform, out: np.ndarray | None = None) -> np.ndarray:
    """``U = G g G^T`` of every filter: w (K, C, 3, 3) -> (alpha^2, K, C) in w's dtype, as
    one GEMM ``(G ⊗ G) @ w^T`` that writes U in its final layout (an einsum in float64 took
    50-200 ms on VGG's 512x512 filters; in float32 the measured errors above did not
    change). Done per call: on small images (VGG's 14x14 at batch 1) it is a third to half
    of the forward's time."""
    k, c = w.shape[:2]
    u = None if out is None else _into(out, (t.alpha ** 2, k * c))
    u = np.matmul(_kron(t, "G", w.dtype), w.reshape(k * c, 9).T, out=u)   # (alpha^2, K*C)
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


def _two_sided(kron: np.ndarray, d: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``mat @ d @ mat^T`` of every tile, given ``kron = mat ⊗ mat`` (r^2, a^2)
    (:func:`_kron`): d (a, a, ...) -> (r, r, ...), as one GEMM into the flat buffer ``out``.
    Measured against two GEMMs (rows, then columns, through a temporary): 1.1-5x faster on
    VGG-16 sizes, one pass over memory instead of two (and the temporary's buffer saved)."""
    r, a = math.isqrt(kron.shape[0]), math.isqrt(kron.shape[1])
    rest = d.shape[2:]
    full = _into(out, (r * r, int(np.prod(rest))))
    np.matmul(kron, d.reshape(a * a, -1), out=full)
    return full.reshape((r, r) + rest)


class _Buffers(NamedTuple):
    """The flat work buffers of one call, sized for its largest block of tiles and filter
    chunk (preallocated: fresh pages for every block cost more than the transforms,
    measured): ``a`` the gathered tiles, then the output tiles; ``b`` the transformed
    tiles; ``m`` their products with the filters."""

    a: np.ndarray
    b: np.ndarray
    m: np.ndarray

    @staticmethod
    def sizes(t: Transform, blocks, tiles_w: int, c: int, k: int) -> dict[str, int]:
        """Elements of each buffer for ``c`` input and ``k`` output channels."""
        most = max(((n1 - n0) * (r1 - r0) for n0, n1, r0, r1 in blocks), default=0) * tiles_w
        a2 = t.alpha ** 2
        return {"a": max(a2 * c, t.m ** 2 * k) * most, "b": a2 * c * most, "m": a2 * k * most}

    @classmethod
    def sized(cls, t: Transform, blocks, tiles_w: int, c: int, k: int, dtype) -> "_Buffers":
        return cls(*(np.empty(size, dtype) for size in cls.sizes(t, blocks, tiles_w, c, k).values()))


def _input_transform(xp, t, block, bufs):
    """``V = B^T d B`` of a block of tiles: (alpha^2, C, P), P = n * rows * tiles_w, in
    ``bufs.b`` (the tiles are gathered into ``bufs.a``)."""
    d = _tiles(xp, block, t.alpha, t.m, bufs.a)
    v = _two_sided(_kron(t, "BT", xp.dtype), d, bufs.b)
    return v.reshape(t.alpha ** 2, xp.shape[1], -1), d.shape[3:]


def _grid(in_hw, pads, t: Transform):
    """The output size and the tile grid of an input ``in_hw`` with per-side ``pads``."""
    (pt, pb), (pl, pr) = pads
    ho, wo = in_hw[0] + pt + pb - 2, in_hw[1] + pl + pr - 2
    return (ho, wo), (ceil_div(ho, t.m), ceil_div(wo, t.m))


def _padded(x: np.ndarray, pads, t: Transform) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """Zero-pad (or crop, for a negative pad) ``x`` so that whole tiles cover the output:
    returns the padded input, the output size and the tile grid."""
    (ho, wo), (th, tw) = _grid(x.shape[2:], pads, t)
    band = np.empty((x.shape[0], x.shape[1], th * t.m + 2, tw * t.m + 2), x.dtype)
    _fill_band(x, pads, t, (0, x.shape[0], 0, th), band)
    return band, (ho, wo), (th, tw)


def _fill_band(x: np.ndarray, pads, t: Transform, block, band: np.ndarray) -> np.ndarray:
    """Write into ``band`` (n, C, rows * m + 2, tiles_w * m + 2) the zero-padded (or, for
    a negative pad, cropped) input that the tiles of ``block`` (images n0:n1, tile rows
    r0:r1) read: padded row ``p`` is input row ``p - top``, zero outside the input."""
    n0, n1, r0, r1 = block
    (pt, _), (pl, _) = pads
    h, w = x.shape[2:]
    rows, cols = band.shape[2:]
    lo, hi = r0 * t.m - pt, r0 * t.m - pt + rows          # input rows the band covers
    left, right = -pl, -pl + cols                         # input columns
    i0, i1 = max(lo, 0), min(hi, h)
    j0, j1 = max(left, 0), min(right, w)
    if i1 <= i0 or j1 <= j0:
        band[...] = 0
        return band
    band[:, :, :i0 - lo] = 0
    band[:, :, i1 - lo:] = 0
    band[:, :, i0 - lo:i1 - lo, :j0 - left] = 0
    band[:, :, i0 - lo:i1 - lo, j1 - left:] = 0
    band[:, :, i0 - lo:i1 - lo, j0 - left:j1 - left] = x[n0:n1, :, i0:i1, j0:j1]
    return band


#: Winograd's block of tiles aims at this many bytes of transformed tiles (alpha^2 * C each),
#: and holds at least :data:`MIN_BLOCK_TILES` tiles (see :func:`_blocks`). Measured on VGG-16
#: conv1_2 to conv3_1 in F(4x4) against the earlier 2,048-tile minimum (paired rounds, a noisy
#: machine): as fast or faster at batch 1 and 8, with half to a third of the work buffers
#: (conv1_2 at batch 8: 132 MB traced in all, output included, where it was 264 MB); a
#: 256-tile minimum saved a little more memory but was up to 1.4x slower at batch 8.
BLOCK_BYTES = 8 * 2**20
MIN_BLOCK_TILES = 512
#: the filters are transformed in chunks of output channels whose U (alpha^2 * C each)
#: stays under this many bytes: VGG's 512x512 filters have a U of 37.7 MB in F(4x4), where
#: the output of their 14x14 layer is 0.4 MB
FILTER_CHUNK_BYTES = 8 * 2**20


def _blocks(n: int, grid, t: Transform, channels: int, itemsize: int, block_bytes: int | None = None):
    """Blocks of images / tile rows whose transformed tiles (alpha^2 * channels each) aim at
    :data:`BLOCK_BYTES` (:func:`archstat.layers.im2col.grid_blocks`; an iterator), or at
    ``block_bytes`` (:class:`archstat.layers.im2col.Blocking`: a workspace cap)."""
    return win.grid_blocks(n, grid, t.alpha ** 2 * channels * itemsize,
                           *win.aim(BLOCK_BYTES, MIN_BLOCK_TILES, block_bytes))


def _chunks(k: int, c: int, t: Transform, itemsize: int, chunk_bytes: int | None = None) -> list[tuple[int, int]]:
    """Output-channel chunks ``(k0, k1)`` whose transformed filters stay under
    :data:`FILTER_CHUNK_BYTES`, or ``chunk_bytes`` (a workspace cap), one chunk when all of them do."""
    limit = FILTER_CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    step = max(1, min(k, limit // max(1, t.alpha ** 2 * c * itemsize)))
    return [(k0, min(k, k0 + step)) for k0 in range(0, k, step)]


def _tile_parts(block, out_hw, t: Transform, tiles_w: int):
    """The parts of a block's output tiles that fall inside the output: ``(rows, cols)`` pairs
    of tile-index slices with the extent they cover, whole tiles first, then the partial last
    tile row / column (cropped) where the tiles overhang the output."""
    n0, n1, r0, r1 = block
    ho, wo = out_hw
    full_r = min(r1, ho // t.m) - r0          # tile rows of the block that are whole
    full_c = wo // t.m
    row_parts = [(slice(0, full_r), t.m)] if full_r > 0 else []
    if r0 + max(full_r, 0) < r1:               # the last tile row, cut at the output's edge
        row_parts.append((slice(max(full_r, 0), r1 - r0), ho - (r1 - 1) * t.m))
    col_parts = [(slice(0, full_c), t.m)] if full_c > 0 else []
    if full_c < tiles_w:
        col_parts.append((slice(full_c, tiles_w), wo - full_c * t.m))
    return [(rp, cp) for rp in row_parts for cp in col_parts]


@dataclass(frozen=True)
class _Plan:
    """How :func:`_forward` cuts one call: the output size and tile grid, the filter chunks,
    the blocks of tiles, and the sizes (elements) of the buffers it allocates besides y
    (from the first block, the largest: blocks shrink only at the end)."""

    out_hw: tuple[int, int]
    grid: tuple[int, int]
    chunks: list
    blocks: Any      # a function: the blocks of images / tile rows, in order (an iterator)
    buffers: dict

    @classmethod
    def of(cls, x_shape, k: int, pads, t: Transform, itemsize: int, block_bytes: int | None = None,
           chunk_bytes: int | None = None, has_bias: bool = False) -> "_Plan":
        n, c = x_shape[:2]
        out_hw, (th, tw) = _grid(tuple(x_shape[2:]), pads, t)
        chunks = _chunks(k, c, t, itemsize, chunk_bytes)
        kc = max((k1 - k0 for k0, k1 in chunks), default=0)

        def blocks():
            return _blocks(n, (th, tw), t, max(c, kc), itemsize, block_bytes)
        first = next(blocks(), None)
        first = [] if first is None else [first]
        band = sum((n1 - n0) * ((r1 - r0) * t.m + 2) for n0, n1, r0, r1 in first)
        tiles = sum((n1 - n0) * (r1 - r0) for n0, n1, r0, r1 in first) * tw
        buffers = dict(_Buffers.sizes(t, first, tw, c, kc), band=band * c * (tw * t.m + 2),
                       u=t.alpha ** 2 * kc * c,
                       # the bias added to a chunk's output tiles: NumPy buffers the broadcast
                       # add (measured: one buffer)
                       bias=ufunc_buffers(1, t.m ** 2 * kc * tiles) if has_bias else 0)
        return cls(out_hw, (th, tw), chunks, blocks, buffers)


def workspace_bytes(x_shape, k: int, padding: Any, tile: int, itemsize: int, block_bytes: int | None = None,
                    chunk_bytes: int | None = None, has_bias: bool = False) -> int:
    """Bytes :func:`winograd_conv2d` allocates beyond y while it runs, for an input of
    ``x_shape`` and ``k`` filters: the transformed filters (or one chunk's), the block's input
    band, tiles, transformed tiles and products, and NumPy's buffer for the bias (:class:`_Plan`).
    ``block_bytes``, ``chunk_bytes``: as :func:`winograd_conv2d`."""
    t = TRANSFORMS[tile]
    geom = win.geometry(tuple(x_shape[2:]), (3, 3), 1, padding, 1)
    plan = _Plan.of(x_shape, k, geom.pads, t, itemsize, block_bytes, chunk_bytes, has_bias)
    return itemsize * sum(plan.buffers.values())


def _forward(x: np.ndarray, w: np.ndarray, b, pads, t: Transform, out: np.ndarray | None = None,
             block_bytes: int | None = None, chunk_bytes: int | None = None) -> np.ndarray:
    """Winograd forward of ``x`` with the filters ``w`` (K, C, 3, 3) and per-side ``pads``
    (entries may be negative: cropped). Per block of tiles: the block's padded input band,
    its transformed tiles, then per chunk of output channels the alpha^2 GEMMs and the
    output transform, written straight into y (a filter chunk is transformed once when
    there is one block, else once per block). y is ``out`` when that fits
    (:func:`archstat.layers.outbuf.usable`)."""
    n, c = x.shape[:2]
    k = w.shape[0]
    plan = _Plan.of(x.shape, k, pads, t, x.itemsize, block_bytes, chunk_bytes)
    out_hw, (_, tw), chunks = plan.out_hw, plan.grid, plan.chunks
    y = out if usable(out, (n, k) + out_hw, x.dtype) else np.empty((n, k) + out_hw, x.dtype)
    sizes = plan.buffers
    bufs = _Buffers(*(np.empty(sizes[name], x.dtype) for name in _Buffers._fields))
    band_buf = np.empty(sizes["band"], x.dtype)
    u_buf = np.empty(sizes["u"], x.dtype)
    whole = filter_transform(w, t, u_buf) if len(chunks) == 1 else None
    at = _kron(t, "AT", x.dtype)
    for block in plan.blocks():
        n0, n1, r0, r1 = block
        band = _into(band_buf, (n1 - n0, c, (r1 - r0) * t.m + 2, tw * t.m + 2))
        _fill_band(x, pads, t, block, band)
        v, (nb, rows, _) = _input_transform(band, t, (0, n1 - n0, 0, r1 - r0), bufs)
        for k0, k1 in chunks:
            u = whole if whole is not None else filter_transform(w[k0:k1], t, u_buf)
            mm = _into(bufs.m, (t.alpha ** 2, k1 - k0, v.shape[2]))
            np.matmul(u, v, out=mm)                                # the alpha^2 GEMMs
            yt = _two_sided(at, mm.reshape(t.alpha, t.alpha, -1), bufs.a)  # (m, m, K*P)
            if b is not None:   # while the block is in cache; in place on a C-contiguous array,
                # so NumPy needs no buffers (added on the way into y's strided view, it did)
                yt.reshape(t.m, t.m, k1 - k0, -1)[...] += b[k0:k1, None]
            yt = yt.reshape(t.m, t.m, k1 - k0, nb, rows, tw).transpose(3, 2, 4, 0, 5, 1)
            for (rs, hr), (cs, wc) in _tile_parts(block, out_hw, t, tw):
                i0 = (r0 + rs.start) * t.m
                j0 = cs.start * t.m
                nr, nc = rs.stop - rs.start, cs.stop - cs.start
                out = y[n0:n1, k0:k1, i0:i0 + (nr - 1) * t.m + hr, j0:j0 + (nc - 1) * t.m + wc]
                src = yt[:, :, rs, :, cs, :]
                if hr < t.m or wc < t.m:   # a partial tile row / column: one tile wide, cropped
                    out = out.reshape(nb, k1 - k0, nr, hr, nc, wc)
                    src = src[:, :, :, :hr, :, :wc]
                else:
                    out = out.reshape(nb, k1 - k0, nr, t.m, nc, t.m)
                np.copyto(out, src)
    return y


def winograd_conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, padding: Any,
                    tile: int, out: np.ndarray | None = None, block_bytes: int | None = None,
                    chunk_bytes: int | None = None) -> np.ndarray:
    """3x3 stride-1 convolution by Winograd F(tile x tile, 3x3), ``tile`` 2 or 4.

    x: (N, C, H, W) float32/float64; w: (K, C, 3, 3); b: (K,) or None (cast to x's dtype
    by the caller, :func:`archstat.layers.conv.conv2d`). ``padding``: anything
    :func:`archstat.layers.im2col.geometry` takes (int, pair, per-side pairs, 'same',
    'valid'). Returns y: (N, K, H_out, W_out) in x's dtype, as ``conv2d`` (``out`` when it
    fits, :func:`archstat.layers.outbuf.usable`). Memory: the
    padded input and its transformed tiles are built per block of images / tile rows
    (:func:`_blocks`), the filters transformed in chunks of output channels
    (:data:`FILTER_CHUNK_BYTES`), and the output tiles written straight into y, cropped where
    they overhang it; :func:`workspace_bytes` says how much all that takes. ``block_bytes``
    and ``chunk_bytes`` replace the blocks' aim and the filter chunks' size
    (:class:`archstat.layers.im2col.Blocking`: the conv's workspace cap).
    """
    geom = win.geometry(x.shape[2:], w.shape[2:], 1, padding, 1)
    t = TRANSFORMS[tile]
    return _forward(x, w, b, geom.pads, t, out, block_bytes, chunk_bytes)


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
    dx = _forward(dy, w_dual, None, ((2 - pt, 2 - pb), (2 - pl, 2 - pr)), t)
    return dx, _weight_grad(dy, x, geom.pads, t), dy.sum(axis=(0, 2, 3))


def _weight_grad(dy: np.ndarray, x: np.ndarray, pads, t: Transform) -> np.ndarray:
    """``dw = G^T [sum_tiles (A dY A^T) ⊙ (B^T d B)] G``: (K, C, 3, 3)."""
    n, c = x.shape[:2]
    k = dy.shape[1]
    xp, (ho, wo), (th, tw) = _padded(x, pads, t)
    # dy zero-padded to whole tiles: the partial tiles' missing outputs get no gradient
    dyp = win.pad(dy, ((0, th * t.m - ho), (0, tw * t.m - wo)), "zeros")
    plan = list(_blocks(n, (th, tw), t, max(c, k), x.itemsize))
    bufs = _Buffers.sized(t, plan, tw, c, k, x.dtype)
    a = _kron(t, "AT", x.dtype).T     # (A^T)^T ⊗ (A^T)^T
    du = (np.zeros if len(plan) > 1 else np.empty)((t.alpha ** 2, k, c), x.dtype)
    part = np.empty_like(du) if len(plan) > 1 else du   # one block: the GEMMs write du
    for block in plan:
        v, _ = _input_transform(xp, t, block, bufs)                 # in bufs.b
        dyt = _tiles(dyp, block, t.m, t.m, bufs.a)                  # (m, m, K, n, rows, tw)
        dm = _two_sided(a, dyt, bufs.m).reshape(t.alpha ** 2, k, -1)  # A dY A^T
        np.matmul(dm, v.transpose(0, 2, 1), out=part)
        if part is not du:
            du += part
    dw = np.matmul(_kron(t, "G", x.dtype).T, du.reshape(t.alpha ** 2, k * c))  # (9, K*C)
    return np.ascontiguousarray(dw.T).reshape(k, c, 3, 3)
