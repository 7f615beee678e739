"""Receptive fields of every node of a model (Araujo et al., Distill 2019): size, effective
stride and centre per axis, through windows (from each layer type's ``window``), merges,
permutes and mixing layers."""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple

from .graph import Model
from .layers.registry import Shape, Window
from .layers.window import effective_kernel
from .spec import INPUT_NAME


class ReceptiveField(NamedTuple):
    """Receptive field of one node, per axis (h, w), after Araujo et al., Distill 2019.

    ``size`` r, ``stride`` (jump) j and ``offset`` (centre of the first output's field, in
    input pixels; Distill's effective padding is ``(r - 1) / 2 - offset``) follow, for a
    window of kernel k, stride s, padding p and dilation d (extent ``k' = d (k - 1) + 1``)::

        r_out = r_in + (k' - 1) j_in      j_out = j_in s      c_out = c_in + ((k' - 1) / 2 - p) j_in

    A merge takes the union of its inputs' fields (the largest over its paths) and is
    ``aligned`` only when every path has the same centre and stride. An adaptive pool whose
    windows differ in size or step (11 -> 4) is described by its largest window and largest
    step: ``size`` is then an upper bound of every output's field, while ``stride`` and
    ``offset`` (and everything after it) only approximate where each output's field lies;
    ``aligned`` is false from there on.
    """

    size: tuple[int, int]
    stride: tuple[int, int]
    offset: tuple[float, float]
    aligned: bool = True


def receptive_fields(model: Model, shapes: Mapping[str, Shape]) -> dict[str, ReceptiveField]:
    """Receptive field of every node, walked in topological order on the DAG.

    The field is tracked on the image's H and W axes, followed through permutes (a layer's
    ``permutation``). Windows (conv, pools) are geometry over axes 2 and 3 of NCHW; a layer
    that reads the whole extent of an axis (``mixing_axes``: a layer norm, a softmax) widens
    the field to that whole axis where it is H or W. A window applied while H and W are not
    at axes 2 and 3 (a conv on a channels-last tensor) leaves the field unaligned: its
    geometry is not the image's.
    """
    rfs: dict[str, ReceptiveField] = {INPUT_NAME: ReceptiveField((1, 1), (1, 1), (0.0, 0.0))}
    axes: dict[str, tuple[int, int] | None] = {INPUT_NAME: (2, 3) if len(shapes[INPUT_NAME]) == 4 else None}
    # the geometry of a layer depends only on its type, fields and input shapes, which repeat
    # (a network stacks the same layers): asked of the registry once per combination
    geometry: dict[tuple[Any, ...], tuple[Window | None, tuple[int, ...], tuple[int, ...] | None, int]] = {}
    for layer in model.layers():
        if not layer.inputs:
            continue
        ltype, attrs = layer.type, layer.attrs
        srcs = layer.inputs
        rf = rfs[srcs[0]] if len(srcs) == 1 else _union([rfs[src] for src in srcs])
        in_shapes = [shapes[src] for src in srcs]
        where = axes[srcs[0]]
        key = (ltype, id(attrs), where is None, *in_shapes)   # the layers outlive this call: so do their attrs' ids
        known = geometry.get(key)
        if known is None:
            known = geometry[key] = (ltype.window(in_shapes, attrs),
                                     ltype.mixing_axes(in_shapes, attrs) if where is not None else (),
                                     ltype.permutation(in_shapes, attrs) if where is not None else None,
                                     len(shapes[layer.name]))   # the output's rank, as its shape follows
        window, mixed, perm, rank = known
        if window is not None and where != (2, 3):
            rf = ReceptiveField(rf.size, rf.stride, rf.offset, False)
        elif window is not None:
            # unequal windows (adaptive pooling): the field is the largest of any output
            rf = _widen(rf, window, rf.aligned and window.uniform)
        if where is not None:
            if where[0] in mixed or where[1] in mixed:
                # every output reads the whole axis: the window that covers it from any
                # position is 2 * extent - 1 wide, centred on the output
                ext = [in_shapes[0][a] if a in mixed else 1 for a in where]
                rf = _widen(rf, Window((2 * ext[0] - 1, 2 * ext[1] - 1), (1, 1), (ext[0] - 1, ext[1] - 1)),
                            rf.aligned)
            if perm is not None:
                where = (perm.index(where[0]), perm.index(where[1]))
            if rank <= max(where):
                where = None
        axes[layer.name] = where
        rfs[layer.name] = rf
    return rfs


def _widen(rf: ReceptiveField, window: Window, aligned: bool) -> ReceptiveField:
    """The field after one window (Araujo et al.'s recurrences, per axis)."""
    if window.kernel == (1, 1) and window.stride == (1, 1) and window.padding == (0, 0) and aligned == rf.aligned:
        return rf   # a 1x1 window, stride 1: the same field
    (sh, sw), (jh, jw), (oh, ow) = rf.size, rf.stride, rf.offset
    (kh, kw), (dh, dw) = window.kernel, window.dilation
    eh, ew = effective_kernel(kh, dh), effective_kernel(kw, dw)
    return ReceptiveField((sh + (eh - 1) * jh, sw + (ew - 1) * jw),
                          (jh * window.stride[0], jw * window.stride[1]),
                          (oh + ((eh - 1) / 2 - window.padding[0]) * jh,
                           ow + ((ew - 1) / 2 - window.padding[1]) * jw), aligned)


def _union(rfs: list[ReceptiveField]) -> ReceptiveField:
    size, stride, offset = [], [], []
    for axis in (0, 1):
        lo = min(r.offset[axis] - (r.size[axis] - 1) / 2 for r in rfs)
        hi = max(r.offset[axis] + (r.size[axis] - 1) / 2 for r in rfs)
        size.append(int(round(hi - lo)) + 1)
        offset.append((lo + hi) / 2)
        stride.append(max(r.stride[axis] for r in rfs))
    # a path that is already misaligned stays so, even where the merged centres agree
    aligned = all(r.aligned and r.offset == rfs[0].offset and r.stride == rfs[0].stride for r in rfs)
    return ReceptiveField(tuple(size), tuple(stride), tuple(offset), aligned)
