"""Depthwise convolution's backward (groups = C_in), row by row on the stride's phase planes.

Part of the conv family (:mod:`archstat.layers.conv`, which re-exports it): NCHW, weights
``[C_out, 1, kH, kW]`` with C_out a multiple of C_in (the channel multiplier).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import im2col as win

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


def is_depthwise(w, groups):
    return groups > 1 and w.shape[1] == 1


def _channel_blocks(c, plane_bytes):
    """``(c0, c1)`` blocks of channels whose output planes fill about
    :data:`DEPTHWISE_BLOCK_BYTES` (at least one channel)."""
    step = max(1, DEPTHWISE_BLOCK_BYTES // max(plane_bytes, 1))
    for c0 in range(0, c, step):
        yield c0, min(c, c0 + step)


def depthwise_backward(dy, x, w, geom, padding_mode):
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
