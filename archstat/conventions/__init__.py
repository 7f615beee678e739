"""Other tools' counting conventions, reproduced exactly from archstat's layer facts.

``counts(analysis, name)`` gives the named tool's number for every row of an analysis (the
input row counts 0) and ``total(analysis, name)`` their sum; ``all_conventions()`` lists
them. Each tool's rules live in one module of this package (see :mod:`.base`).
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from ..errors import ArchstatError, did_you_mean
from .base import Convention, LayerView

if TYPE_CHECKING:
    from ..analysis import Analysis

__all__ = ["Convention", "LayerView", "all_conventions", "get", "views", "counts", "total", "apply"]

#: the modules that define conventions, in the order tables list them
_MODULES = ("torchinfo", "fvcore", "ptflops", "thop", "calflops", "torchscan", "flopcounter", "onnx_tool", "keras")


def all_conventions() -> dict[str, Convention]:
    """Every convention by name, in table order."""
    out: dict[str, Convention] = {}
    for mod in _MODULES:
        for conv in import_module(f"{__name__}.{mod}").CONVENTIONS:
            out[conv.name] = conv
    return out


def get(name: str, field: str = "convention") -> Convention:
    """The convention called ``name`` (any case); ArchstatError naming ``field`` otherwise,
    with the tool's conventions when ``name`` is a tool that has several (``calflops``)."""
    known = all_conventions()
    key = str(name).strip().lower()
    if key in known:
        return known[key]
    family = [c for c in known if c.startswith(key + "-")] if key else []
    if family:
        raise ArchstatError(f"{name!r} has {len(family)} conventions: {', '.join(family)}", field=field,
                            hint=f"choose one, e.g. {family[0]}")
    raise ArchstatError(f"unknown convention {name!r} (known: {', '.join(known)})", field=field,
                        hint=did_you_mean(key, known))


def views(analysis: "Analysis") -> list[LayerView | None]:
    """A :class:`LayerView` per analysed row (None for the input), at the analysis' batch
    and input size (built once per analysis)."""
    cached = getattr(analysis, "_convention_views", None)
    if cached is None:
        cached = analysis._convention_views = _views(analysis)
    return cached


def _views(analysis: "Analysis") -> list[LayerView | None]:
    model = analysis.model
    shapes = model.shapes(analysis.batch, analysis.input_shape)
    needs_grad = dict(zip(analysis.column("name"), analysis.column("needs_grad")))
    out: list[LayerView | None] = []
    for layer, macs, flops in zip(model.layers(), analysis.column("macs"), analysis.column("flops")):
        if not layer.inputs:
            out.append(None)
            continue
        ins = tuple(shapes[src] for src in layer.inputs)
        ltype = layer.type
        out.append(LayerView(
            name=layer.name, type=ltype.name, family=ltype.family, in_shapes=ins,
            out_shape=shapes[layer.name], attrs=layer.attrs,
            params=ltype.param_shapes(ins, layer.attrs), buffers=ltype.buffer_shapes(ins, layer.attrs),
            tied=frozenset(model.ties.get(layer.name, ())),
            macs=macs, flops=flops, call=layer.torch_call,
            input_grads=tuple(needs_grad[src] for src in layer.inputs), model=model))
    return out


def counts(analysis: "Analysis", name: str | Convention) -> list[int]:
    """The convention's count for every row of ``analysis`` (0 for the input, and for rows
    that run only in training under a work convention)."""
    conv = get(name) if isinstance(name, str) else name
    skip = analysis.column("training_only")
    return [0 if view is None or (only and conv.kind != "params") else conv.count(view)
            for view, only in zip(views(analysis), skip)]


def total(analysis: "Analysis", name: str | Convention) -> int:
    return sum(counts(analysis, name))


def apply(analysis: "Analysis", name: str) -> "Analysis":
    """Add the convention's per-layer counts to ``analysis`` as the column ``convention``,
    and ``totals["convention"] = {"name", "tool", "version", "unit", "total", "reason", "kind"}``
    (kind: ``work`` or ``params``);
    return the analysis."""
    conv = get(name)
    per_layer = counts(analysis, conv)
    analysis.add_column("convention", per_layer)
    analysis.totals["convention"] = {"name": conv.name, "tool": conv.tool, "version": conv.version,
                                     "unit": conv.unit, "total": sum(per_layer), "reason": conv.reason,
                                     "kind": conv.kind}
    return analysis
