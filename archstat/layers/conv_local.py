"""Locally connected 2-D kernels: a conv whose filters are not shared across locations.

Part of the conv family (:mod:`archstat.layers.conv` registers the layer type and
re-exports these): NCHW input, weights ``[H_out, W_out, C_out, C_in, kH, kW]``, bias
``[C_out, H_out, W_out]``; one GEMM per output location over the im2col columns.
"""
from __future__ import annotations

import numpy as np

from . import im2col as win
from ..errors import ArchstatError
from .registry import kernel

def _lc_args(x, w, b, padding_mode):
    x = win.check_array(x, "x", 4)
    w = np.ascontiguousarray(win.check_array(w, "w", 6, x.dtype))
    if b is not None:
        b = win.check_array(b, "b", 3, x.dtype)
    win.check_padding_mode(padding_mode)
    return x, w, b


def _lc_geometry(x, w, stride, padding, dilation):
    geom = win.geometry(x.shape[2:], w.shape[4:], stride, padding, dilation)
    expected = geom.out_hw + (w.shape[2], x.shape[1]) + geom.kernel
    if w.shape != expected:
        raise ArchstatError(f"weight must have shape {expected} [H_out, W_out, C_out, C_in, kH, "
                            f"kW] for this input, got {w.shape}", field="w")
    return geom


def _lc_cols(x, geom, padding_mode, n0, n1):
    """Per-location columns ``(H_out*W_out, C*kH*kW, n)`` of images ``n0:n1``."""
    xp = win.pad(x[n0:n1], geom.full_pads, padding_mode)
    p = geom.out_hw[0] * geom.out_hw[1]
    cols = np.empty(geom.out_hw + (x.shape[1],) + geom.kernel + (n1 - n0,), x.dtype)
    np.copyto(cols, win.windows(xp, geom).transpose(2, 3, 1, 4, 5, 0))
    return cols.reshape(p, -1, n1 - n0), xp.shape


def _lc_batch_step(x_shape, geom, itemsize):
    col_bytes = x_shape[1] * geom.kernel[0] * geom.kernel[1] * geom.out_hw[0] * geom.out_hw[1]
    return max(1, win.COL_BUDGET_BYTES // (col_bytes * itemsize))


def lc_workspace(x_shape, w_shape, stride=1, padding=0, dilation=1, padding_mode="zeros", itemsize=4) -> int:
    """Bytes :func:`locally_connected2d` allocates beyond y, for the first (largest) step of
    images: the padded copy and the columns while the columns are built, then the columns
    and the GEMM's output (``(P, K, n)`` and ``(P, C_out, n)``, P = H_out * W_out)."""
    geom = win.geometry(tuple(x_shape[2:]), tuple(w_shape[4:]), stride, padding, dilation)
    step = min(x_shape[0], _lc_batch_step(x_shape, geom, itemsize))
    p = geom.out_hw[0] * geom.out_hw[1]
    cols = p * x_shape[1] * geom.kernel[0] * geom.kernel[1] * step
    padded = win.pad_peak_elements((step,) + tuple(x_shape[1:]), geom.full_pads, padding_mode)
    return itemsize * max(padded + cols, cols + p * w_shape[2] * step)


@kernel
def locally_connected2d(x, w, b=None, stride=1, padding=0, dilation=1, padding_mode="zeros"):
    """Locally connected 2-D layer: a conv whose filter bank differs at every output location.

    x: (N, C_in, H, W); w: (H_out, W_out, C_out, C_in, kH, kW); b: (C_out, H_out, W_out).
    y[n, o, i, j] = sum_{c,a,b} w[i, j, o, c, a, b] x_pad[n, c, i*s + a*d, j*s + b*d] + b[o, i, j].
    The same columns as conv2d, grouped by location: one batched GEMM over the H_out*W_out
    locations, ``(P, C_out, K) @ (P, K, N)``.
    """
    x, w, b = _lc_args(x, w, b, padding_mode)
    geom = _lc_geometry(x, w, stride, padding, dilation)
    n = x.shape[0]
    ho, wo = geom.out_hw
    c_out = w.shape[2]
    wl = w.reshape(ho * wo, c_out, -1)
    y = np.empty((n, c_out, ho, wo), x.dtype)
    step = _lc_batch_step(x.shape, geom, x.itemsize)
    for n0 in range(0, n, step):
        n1 = min(n, n0 + step)
        cols, _ = _lc_cols(x, geom, padding_mode, n0, n1)
        yl = np.matmul(wl, cols)  # (P, C_out, n)
        y[n0:n1] = yl.reshape(ho, wo, c_out, n1 - n0).transpose(3, 2, 0, 1)
    if b is not None:
        y += b
    return y


@kernel
def locally_connected2d_backward(dy, x, w, stride=1, padding=0, dilation=1, padding_mode="zeros"):
    """Gradients of :func:`locally_connected2d`: returns ``(dx, dw, db)`` in x's dtype.

    Per location p: dW_p = dY_p @ cols_p^T, dcols_p = W_p^T @ dY_p (batched over p), then
    col2im; ``db`` is ``dy`` summed over the batch, shape (C_out, H_out, W_out).
    """
    x, w, _ = _lc_args(x, w, None, padding_mode)
    dy = win.check_array(dy, "dy", 4, x.dtype)
    geom = _lc_geometry(x, w, stride, padding, dilation)
    n = x.shape[0]
    ho, wo = geom.out_hw
    c_out = w.shape[2]
    if dy.shape != (n, c_out, ho, wo):
        raise ArchstatError(f"dy must have shape {(n, c_out, ho, wo)}, got {dy.shape}", field="dy")
    wl = w.reshape(ho * wo, c_out, -1)
    dw = np.zeros(wl.shape, x.dtype)
    dxp = None
    step = _lc_batch_step(x.shape, geom, x.itemsize)
    kh, kw = geom.kernel
    for n0 in range(0, n, step):
        n1 = min(n, n0 + step)
        cols, xp_shape = _lc_cols(x, geom, padding_mode, n0, n1)
        if dxp is None:
            dxp = np.zeros((n,) + xp_shape[1:], x.dtype)
        dyl = dy[n0:n1].transpose(2, 3, 1, 0).reshape(ho * wo, c_out, n1 - n0)
        dw += np.matmul(dyl, cols.transpose(0, 2, 1))
        dcols = np.matmul(wl.transpose(0, 2, 1), dyl)  # (P, K, n)
        dcols = dcols.reshape(ho, wo, x.shape[1], kh, kw, n1 - n0).transpose(5, 2, 0, 1, 3, 4)
        win.col2im(dcols, geom, dxp, (n0, n1, 0, ho))
    dx = win.pad_backward(dxp, geom.full_pads, padding_mode)
    return dx, dw.reshape(w.shape), dy.sum(axis=0)
