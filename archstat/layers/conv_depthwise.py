"""Depthwise convolution (groups = C_in): a direct forward and a backward, tap by tap on the
stride's phase planes.

Part of the conv family (:mod:`archstat.layers.conv`, which re-exports it): NCHW, weights
``[C_out, 1, kH, kW]`` with C_out a multiple of C_in (the channel multiplier).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import im2col as win
from .registry import cache_blocks

# Depthwise convs (groups = C_in, each group sees one input channel) make the backward's
# GEMMs degenerate: per group dW is a (C_out/G x L) @ (L x kH*kW) product and dcols a
# (kH*kW x C_out/G) @ (C_out/G x L) one with 1-2 rows, G tiny matmuls plus a col2im pass
# (1.3-2x slower than what follows, on MobileNetV2's shapes). Their backward computes the
# same two products one column-matrix row at a time, without building the columns: with
# row_ab the input pixels that kernel offset (a, b) reads, dW[:, a, b] = <dY, row_ab> and dX
# gets w[:, a, b] * dY added at row_ab's pixels. (Their forward stays im2col + GEMM: done
# row by row it measured no faster, as NumPy cannot fuse the kH*kW multiply-adds.)
#
# Every phase of the stride (pixels (p::s_h, q::s_w) of the padded input) is laid out as its
# own plane, so that tap (a, b) of output (i, j) is the pixel (i + o_a, j + o_b) of one phase
# plane: row_ab is a unit-stride window of that plane, whatever the stride and dilation. One
# image's planes at a time, so the memory stays about one image's input.
#
# The forward sums the kH*kW taps directly, y = sum_ab w[:, a, b] * (the input at tap (a, b)),
# on the phase planes laid out flat: output (i, j) is computed at position i * W_g + j of a
# plane-wide grid (W_g - W_out junk columns per row, dropped at the end), so that every tap is
# one contiguous run of each channel's flat plane, at offset o_a * W_g + o_b. Each tap is then
# one multiply by the per-channel weight and one add over a whole cache block of channels
# with long inner loops (the row-by-row form the comment above tried has short ones). That is
# still 2 * kH*kW passes over the output, NumPy having no fused multiply-add: against im2col +
# G tiny GEMMs, measured side by side in one process (float32, MobileNetV2's 3x3 shapes), the
# direct form is 1.1-1.7x faster at batch 8 and on planes of 56x56 outputs or more at batch 1,
# but 0.6-0.85x on one image's smaller planes (28x28, 14x14), where im2col's columns stay in
# cache: :func:`direct_forward_pays` keeps im2col there.


@dataclass(frozen=True)
class _PhaseGrid:
    """Where each kernel tap reads in the phase planes of a strided, dilated window."""

    phases: tuple[int, int]      # stride (s_h, s_w): s_h * s_w phase planes
    plane_hw: tuple[int, int]    # size of one phase plane
    taps: tuple[tuple[int, int, int], ...]   # per tap (a, b): (phase index, row, column offset)

    @classmethod
    def of(cls, geom):
        (sh, sw), (dh, dw), (hp, wp) = geom.stride, geom.dilation, geom.padded_hw
        taps = tuple(((a * dh % sh) * sw + b * dw % sw, a * dh // sh, b * dw // sw)
                     for a in range(geom.kernel[0]) for b in range(geom.kernel[1]))
        return cls((sh, sw), (-(-hp // sh), -(-wp // sw)), taps)

    def split(self, xp):
        """(N, C, Hp, Wp) padded input -> (N, C, s_h*s_w, H_g, W_g) phase planes (zeros
        where a phase has no pixel)."""
        (sh, sw), (hg, wg) = self.phases, self.plane_hw
        n, c = xp.shape[:2]
        out = np.zeros((n, c, sh * sw, hg, wg), xp.dtype)
        for p in range(sh):
            for q in range(sw):
                ph = xp[:, :, p::sh, q::sw]
                out[:, :, p * sw + q, :ph.shape[2], :ph.shape[3]] = ph
        return out

    def merge(self, planes, hw):
        """Adjoint of :meth:`split`: phase planes (N, C, s_h*s_w, H_g, W_g) back to the
        (N, C, Hp, Wp) padded layout (each padded pixel lives in exactly one plane)."""
        sh, sw = self.phases
        out = np.empty(planes.shape[:2] + hw, planes.dtype)
        for p in range(sh):
            for q in range(sw):
                ph = out[:, :, p::sh, q::sw]
                ph[...] = planes[:, :, p * sw + q, :ph.shape[2], :ph.shape[3]]
        return out


#: target size of one block of the depthwise gradient rows (bytes): it and its temporary stay in L2
DEPTHWISE_BLOCK_BYTES = 256 * 2**10


#: input bytes per block of the direct forward and the backward on flat planes (measured side
#: by side: 2 MiB 0-12 % faster than 1 MiB, 4 MiB and 128-512 KiB slower)
PLANE_BLOCK_BYTES = 2**21


def _fill_planes(buf, xb, grid, geom, padding_mode):
    """Write the padded block ``xb`` (n, c, H, W) as phase planes into ``buf`` (n, c, s_h*s_w,
    flat), each plane row-major over (H_g, W_g) at the start of its run. Zero padding is never
    built: each phase takes its strided share of x straight in, and the positions no pixel
    lands on are the same for every block, so ``buf`` is zeroed once, when allocated."""
    (sh, sw), (hg, wg) = grid.phases, grid.plane_hw
    planes = buf[..., :hg * wg].reshape(buf.shape[:3] + (hg, wg))
    if padding_mode != "zeros":
        xb, lo = win.pad(xb, geom.full_pads, padding_mode), (0, 0)
    else:
        lo = (geom.full_pads[0][0], geom.full_pads[1][0])
    for p in range(sh):
        i0 = -(-(lo[0] - p) // sh)          # first plane row holding a pixel of xb
        r0 = i0 * sh + p - lo[0]
        for q in range(sw):
            j0 = -(-(lo[1] - q) // sw)
            c0 = j0 * sw + q - lo[1]
            src = xb[:, :, r0::sh, c0::sw]
            planes[:, :, p * sw + q, i0:i0 + src.shape[2], j0:j0 + src.shape[3]] = src


#: the fewest outputs per channel (over the whole batch) for which the direct forward pays
#: off against im2col at batch 1 (above); from two images on it always did
DIRECT_MIN_PLANE = 56 * 56


def direct_forward_pays(n, geom):
    """Whether :func:`depthwise_forward` beats im2col + GEMM for n images (measured, above)."""
    return n > 1 or geom.out_hw[0] * geom.out_hw[1] >= DIRECT_MIN_PLANE


def _gather_planes(planes, dxb, grid, geom):
    """Adjoint of :func:`_fill_planes` for zero padding: each pixel of ``dxb`` (n, c, H, W)
    takes its value from its phase plane in ``planes`` (n, c, s_h*s_w, flat); the padding's
    positions are dropped."""
    (sh, sw), (hg, wg) = grid.phases, grid.plane_hw
    planes = planes[..., :hg * wg].reshape(planes.shape[:3] + (hg, wg))
    lo = (geom.full_pads[0][0], geom.full_pads[1][0])
    for p in range(sh):
        i0 = -(-(lo[0] - p) // sh)
        r0 = i0 * sh + p - lo[0]
        for q in range(sw):
            j0 = -(-(lo[1] - q) // sw)
            c0 = j0 * sw + q - lo[1]
            dst = dxb[:, :, r0::sh, c0::sw]
            dst[...] = planes[:, :, p * sw + q, i0:i0 + dst.shape[2], j0:j0 + dst.shape[3]]


def depthwise_forward(x, w, b, geom, padding_mode):
    """Depthwise conv2d (groups = C_in, C_out = m * C_in): y (N, C_out, H_out, W_out), each
    output channel c*m + j the cross-correlation of input channel c with w[c*m + j], plus b.

    Direct: per cache block of channels, the input as flat phase planes and per tap one
    multiply-add over the block (see the comment at the top of this module).
    """
    n, c = x.shape[:2]
    m = w.shape[0] // c                         # channel multiplier
    grid = _PhaseGrid.of(geom)
    (ho, wo), (hg, wg) = geom.out_hw, grid.plane_hw
    taps = [(phase, oa * wg + ob) for phase, oa, ob in grid.taps]
    span = ho * wg                              # the plane-wide output grid, per channel
    flat = max(hg * wg, max(off for _, off in taps) + span)
    wt = w.reshape(c, m, -1)
    bt = None if b is None else b.reshape(c, m)
    y = np.empty((n, c * m, ho, wo), x.dtype)
    y5 = y.reshape(n, c, m, ho, wo)
    bufs = {}
    for imgs, chans in cache_blocks(x.shape, x.itemsize, PLANE_BLOCK_BYTES):
        xb = x[imgs, chans]
        nb, cb = xb.shape[:2]
        if bufs.get("shape") != (nb, cb):       # a new shape only for a last, smaller block
            phases = grid.phases[0] * grid.phases[1]
            bufs = {"shape": (nb, cb), "planes": np.zeros((nb, cb, phases, flat), x.dtype),
                    "out": np.empty((nb, cb, span), x.dtype), "tmp": np.empty((nb, cb, span), x.dtype)}
        planes, out, tmp = bufs["planes"], bufs["out"], bufs["tmp"]
        _fill_planes(planes, xb, grid, geom, padding_mode)
        for j in range(m):
            for k, (phase, off) in enumerate(taps):
                src = planes[:, :, phase, off:off + span]
                wk = wt[chans, j, k, None]
                if k == 0:
                    np.multiply(src, wk, out=out)
                else:
                    np.multiply(src, wk, out=tmp)
                    out += tmp
            if bt is not None:
                out += bt[chans, j, None]
            y5[imgs, chans, j] = out.reshape(nb, cb, ho, wg)[..., :wo]
    return y


def is_depthwise(w, groups):
    return groups > 1 and w.shape[1] == 1


def _channel_blocks(c, plane_bytes):
    """``(c0, c1)`` blocks of channels whose output planes fill about
    :data:`DEPTHWISE_BLOCK_BYTES` (at least one channel)."""
    step = max(1, DEPTHWISE_BLOCK_BYTES // max(plane_bytes, 1))
    for c0 in range(0, c, step):
        yield c0, min(c, c0 + step)


def depthwise_backward(dy, x, w, geom, padding_mode):
    """Gradients ``(dx, dw, db)`` of :func:`depthwise_forward` (and of any depthwise conv2d).

    On the flat phase planes of the forward, per cache block of channels and per tap: dW's
    entry is one ``np.vecdot`` of dY (laid on the plane-wide grid, its junk columns zero)
    with the tap's run of the input planes, and dX's planes get w times dY added along the
    same run. A junk column pairs a zero of dY with a pixel of the next row: where that pixel
    is not finite (0 * inf), the block's dW is taken again without junk; weights that are not
    all finite take the junk-free form throughout (:func:`_backward_by_rows`). Against that
    form, measured side by side in one process (float32, MobileNetV2's 3x3 shapes, batch 1
    and 8): 1.4-2.0x faster.
    """
    wt = w.reshape(x.shape[1], w.shape[0] // x.shape[1], -1)
    if not np.isfinite(wt).all():
        return _backward_by_rows(dy, x, w, geom, padding_mode)
    n, c = x.shape[:2]
    m = wt.shape[1]
    grid = _PhaseGrid.of(geom)
    (ho, wo), (hg, wg) = geom.out_hw, grid.plane_hw
    taps = [(phase, oa * wg + ob) for phase, oa, ob in grid.taps]
    span = ho * wg
    flat = max(hg * wg, max(off for _, off in taps) + span)
    phases = grid.phases[0] * grid.phases[1]
    dy5 = dy.reshape(n, c, m, ho, wo)
    dx = np.empty(x.shape, x.dtype)
    dw = np.zeros(wt.shape, x.dtype)
    bufs = {}
    for imgs, chans in cache_blocks(x.shape, x.itemsize, PLANE_BLOCK_BYTES):
        xb = x[imgs, chans]
        nb, cb = xb.shape[:2]
        if bufs.get("shape") != (nb, cb):       # a new shape only for a last, smaller block
            bufs = {"shape": (nb, cb), "planes": np.zeros((nb, cb, phases, flat), x.dtype),
                    "dplanes": np.empty((nb, cb, phases, flat), x.dtype),
                    "dyx": np.zeros((nb, cb, m, ho, wg), x.dtype),   # junk columns stay 0
                    "tmp": np.empty((nb, cb, span), x.dtype)}
        planes, dplanes, dyx, tmp = bufs["planes"], bufs["dplanes"], bufs["dyx"], bufs["tmp"]
        _fill_planes(planes, xb, grid, geom, padding_mode)
        dyx[..., :wo] = dy5[imgs, chans]
        dplanes[...] = 0
        dwb = np.empty((cb, m, len(taps)), x.dtype)
        for j in range(m):
            g = dyx[:, :, j].reshape(nb, cb, span)
            for k, (phase, off) in enumerate(taps):
                with np.errstate(invalid="ignore"):    # a junk 0 * inf is redone below
                    dwb[:, j, k] = np.vecdot(g, planes[:, :, phase, off:off + span]).sum(axis=0)
                np.multiply(g, wt[chans, j, k, None], out=tmp)
                target = dplanes[:, :, phase, off:off + span]
                target += tmp
        if not np.isfinite(dwb).all():          # maybe junk: 0 * inf; again on exact views
            for j in range(m):
                for k, (phase, oa, ob) in enumerate(grid.taps):
                    row = planes[:, :, phase, oa * wg + ob:oa * wg + ob + span]
                    row = row.reshape(nb, cb, ho, wg)[..., :wo]
                    dwb[:, j, k] = np.einsum("nchw,nchw->c", dy5[imgs, chans, j], row)
        dw[chans] += dwb
        if padding_mode == "zeros":
            _gather_planes(dplanes, dx[imgs, chans], grid, geom)
        else:                                   # fold the padding's gradient back in
            dxp = grid.merge(dplanes[..., :hg * wg].reshape(nb, cb, phases, hg, wg), geom.padded_hw)
            dx[imgs, chans] = win.pad_backward(dxp, geom.full_pads, padding_mode)
    return dx, dw.reshape(w.shape), dy.sum(axis=(0, 2, 3))


def _backward_by_rows(dy, x, w, geom, padding_mode):
    """:func:`depthwise_backward` on (H_out, W_out) views of the phase planes, the junk-free
    form: for weights that are not all finite (0 * inf would be NaN on the flat grid)."""
    n, c = x.shape[:2]
    m = w.shape[0] // c                         # channel multiplier
    grid = _PhaseGrid.of(geom)
    wt = w.reshape(c, m, -1)
    ho, wo = geom.out_hw
    dy5 = dy.reshape(n, c, m, ho, wo)
    dx = np.empty(x.shape, x.dtype)
    dw = np.zeros((c, m, len(grid.taps)), x.dtype)
    tmp = np.empty(c * ho * wo, x.dtype)
    for i in range(n):                          # one image's planes at a time: bounded memory
        planes = grid.split(win.pad(x[i:i + 1], geom.full_pads, padding_mode))[0]
        dplanes = np.zeros_like(planes)
        for c0, c1 in _channel_blocks(c, m * ho * wo * x.itemsize):
            dyb = dy5[i, c0:c1]                 # (cb, m, H_out, W_out)
            t = tmp[:(c1 - c0) * ho * wo].reshape(c1 - c0, ho, wo)
            for k, (phase, oa, ob) in enumerate(grid.taps):
                # only the pixels the tap reads: an inf elsewhere must not meet a zero of dY
                row = planes[c0:c1, phase, oa:oa + ho, ob:ob + wo]
                dw[c0:c1, :, k] += np.einsum("cmhw,chw->cm", dyb, row)
                if m == 1:
                    np.multiply(dyb[:, 0], wt[c0:c1, 0, k, None, None], out=t)
                else:
                    np.einsum("cmhw,cm->chw", dyb, wt[c0:c1, :, k], out=t)
                target = dplanes[c0:c1, phase, oa:oa + ho, ob:ob + wo]
                target += t
        dxp = grid.merge(dplanes[None], geom.padded_hw)
        dx[i] = win.pad_backward(dxp, geom.full_pads, padding_mode)[0]
    return dx, dw.reshape(w.shape), dy.sum(axis=(0, 2, 3))
