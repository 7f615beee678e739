"""Phase planes of a strided window: the layout in which every kernel tap of a strided,
dilated window reads a unit-stride block.

Every phase of the stride (the pixels (p::s_h, q::s_w) of the padded input) is laid out as its
own plane, so that tap (a, b) of output (i, j) is the pixel (i + o_a, j + o_b) of one phase
plane, whatever the stride and dilation. Laid out flat (each plane row-major, with a tail), the
tap's inputs for all outputs on a plane-wide grid (H_out rows of W_g, the W_g - W_out last
columns junk) are one contiguous run at offset o_a * W_g + o_b. Depthwise convolution
(:mod:`.conv_depthwise`) and max pooling's backward (:mod:`.pool_kernels`) use it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import im2col as win


@dataclass(frozen=True)
class PhaseGrid:
    """Where each kernel tap reads in the phase planes of a strided, dilated window."""

    phases: tuple[int, int]      # stride (s_h, s_w): s_h * s_w phase planes
    plane_hw: tuple[int, int]    # size of one phase plane
    taps: tuple[tuple[int, int, int], ...]   # per tap (a, b): (phase index, row, column offset)
    pads: tuple[tuple[int, int], tuple[int, int]]   # the window's full pads (geometry.full_pads)

    @classmethod
    def of(cls, geom):
        (sh, sw), (dh, dw), (hp, wp) = geom.stride, geom.dilation, geom.padded_hw
        taps = tuple(((a * dh % sh) * sw + b * dw % sw, a * dh // sh, b * dw // sw)
                     for a in range(geom.kernel[0]) for b in range(geom.kernel[1]))
        return cls((sh, sw), (-(-hp // sh), -(-wp // sw)), taps, geom.full_pads)

    def flat_taps(self):
        """Per tap, in kernel order: ``(phase, offset)``, where its run starts in a plane laid
        out flat (row-major over (H_g, W_g))."""
        wg = self.plane_hw[1]
        return [(phase, oa * wg + ob) for phase, oa, ob in self.taps]

    def _phase_runs(self, shape):
        """Per phase (p, q): its plane index, the slice of an unpadded (..., H, W) array that
        lands on it (every s-th pixel from the first) and where that starts in the plane."""
        (sh, sw), (lo_h, lo_w) = self.phases, (self.pads[0][0], self.pads[1][0])
        for p in range(sh):
            i0 = -(-(lo_h - p) // sh)           # first plane row that holds an input pixel
            r0 = i0 * sh + p - lo_h
            for q in range(sw):
                j0 = -(-(lo_w - q) // sw)
                c0 = j0 * sw + q - lo_w
                yield p * sw + q, (slice(r0, None, sh), slice(c0, None, sw)), (i0, j0)

    def plane_view(self, buf):
        """(n, c, s_h*s_w, flat) buffer -> its (n, c, s_h*s_w, H_g, W_g) planes."""
        hg, wg = self.plane_hw
        return buf[..., :hg * wg].reshape(buf.shape[:3] + (hg, wg))

    def fill(self, buf, xb, padding_mode="zeros"):
        """Write ``xb`` (n, c, H, W), padded, as phase planes into ``buf`` (n, c, s_h*s_w,
        flat). Zero padding is never built: each phase takes its strided share of x straight
        in, and the positions no pixel lands on (the padding, a plane's overhang, the tail
        past H_g * W_g) are left as they are: the same for every block, so the caller sets
        them once (zeros for a conv, NaN for max pooling). Other modes write the padded block.
        """
        self.fill_planes(self.plane_view(buf), xb, padding_mode)

    def fill_planes(self, planes, xb, padding_mode="zeros"):
        """:meth:`fill` into planes already shaped (n, c, s_h*s_w, H_g, W_g), of any strides:
        a channels-last buffer (n, s_h*s_w, H_g, W_g, c) seen through ``transpose(0, 4, 1, 2, 3)``."""
        if padding_mode != "zeros":
            xp = win.pad(xb, self.pads, padding_mode)
            for p in range(self.phases[0]):
                for q in range(self.phases[1]):
                    ph = xp[:, :, p::self.phases[0], q::self.phases[1]]
                    planes[:, :, p * self.phases[1] + q, :ph.shape[2], :ph.shape[3]] = ph
            return
        for phase, (rows, cols), (i0, j0) in self._phase_runs(xb.shape):
            src = xb[:, :, rows, cols]
            planes[:, :, phase, i0:i0 + src.shape[2], j0:j0 + src.shape[3]] = src

    def gather(self, buf, dxb):
        """Adjoint of :meth:`fill` for zero padding: each pixel of ``dxb`` (n, c, H, W) takes
        its value from its phase plane in ``buf``; the padding's positions are dropped."""
        self.gather_planes(self.plane_view(buf), dxb)

    def gather_planes(self, planes, dxb):
        """:meth:`gather` from planes already shaped (n, c, s_h*s_w, H_g, W_g), as :meth:`fill_planes`."""
        for phase, (rows, cols), (i0, j0) in self._phase_runs(dxb.shape):
            dst = dxb[:, :, rows, cols]
            dst[...] = planes[:, :, phase, i0:i0 + dst.shape[2], j0:j0 + dst.shape[3]]

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
