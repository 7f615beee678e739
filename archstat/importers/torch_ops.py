"""PyTorch functions and tensor methods onto archstat's layer types: the table.

Each operation is one :class:`Op` of :func:`table`: its argument names (to bind the fx node's
positional and keyword arguments, PyTorch's defaults filled in) and a handler that writes
layers through the :class:`~archstat.importers.torch_graph.Translator`, or raises
:class:`Unmappable` with the reason when a use has no archstat equivalent. The handlers live
in :mod:`.torch_op_math` (activations, merges, pools) and :mod:`.torch_op_shape` (views,
concatenation, splits, the channel shuffle pattern).
"""
from __future__ import annotations

import functools
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.fx
import torch.nn.functional as F

from .torch_graph import Translator
from .torch_names import op_text
from .torch_modules import MODULES, Unmappable


@dataclass(frozen=True)
class Op:
    """One function or method. ``params``: argument names in order (``a|b``: PyTorch spells
    it both ways; ``*rest``: the remaining positional arguments, or the one list given);
    ``fixed``: values the variant implies (``relu_`` is in place)."""

    name: str
    params: tuple[str, ...]
    handler: Callable[[Translator, torch.fx.Node, dict[str, Any]], None]
    defaults: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)


def bind(node: torch.fx.Node, op: Op) -> dict[str, Any]:
    """The node's arguments by canonical name (the first spelling in ``op.params``)."""
    names = [p.split("|") for p in op.params]
    bound: dict[str, Any] = dict(op.defaults)
    args = list(node.args)
    for spelling in names:
        canonical = spelling[0]
        if canonical.startswith("*"):
            rest = args
            bound[canonical[1:]] = rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else tuple(rest)
            args = []
            break
        if args:
            bound[canonical] = args.pop(0)
    if args:
        raise Unmappable(f"{len(args)} more positional arguments than archstat reads")
    canonical_of = {s: spelling[0] for spelling in names for s in spelling}
    for key, value in node.kwargs.items():
        if key not in canonical_of:
            raise Unmappable(f"keyword argument {key}={value!r} has no archstat equivalent")
        bound[canonical_of[key]] = value
    bound.update(op.fixed)
    return bound


def lookup(node: torch.fx.Node) -> Op | None:
    """The node's Op: by the function object, or by method name."""
    key = ("method", node.target) if node.op == "call_method" else node.target
    try:
        return table().get(key)
    except TypeError:   # an unhashable target
        return None


def translate_op(tr: Translator, node: torch.fx.Node) -> None:
    """Write the layers of a call_function / call_method node."""
    op = lookup(node)
    if op is None:
        raise Unmappable(None)
    op.handler(tr, node, bind(node, op))


# ---------------------------------------------------------------------- the table

_UNARY = ("input", "inplace")


@functools.lru_cache(maxsize=1)
def table() -> dict[Any, Op]:
    """Every function (by object) and tensor method (``("method", name)``) the importer maps."""
    from . import torch_op_math as m
    from . import torch_op_shape as s

    ops: dict[Any, Op] = {}

    def add(keys, op: Op) -> None:
        for key in keys:
            ops[key] = op

    def method(*names):
        return [("method", n) for n in names]

    off = {"inplace": False}
    add([F.relu, torch.relu, *method("relu")], Op("relu", _UNARY, m.unary("relu"), off))
    add([F.relu_, torch.relu_, *method("relu_")], Op("relu", _UNARY, m.unary("relu"), fixed={"inplace": True}))
    add([F.relu6], Op("relu6", _UNARY, m.unary("relu6"), off))
    add([F.hardtanh], Op("hardtanh", ("input", "min_val", "max_val", "inplace"), m.hardtanh,
                         {"min_val": -1.0, "max_val": 1.0, "inplace": False}))
    add([F.silu], Op("silu", _UNARY, m.unary("silu"), off))
    add([F.hardswish], Op("hardswish", _UNARY, m.unary("hardswish"), off))
    add([F.hardsigmoid], Op("hardsigmoid", _UNARY, m.unary("hardsigmoid"), off))
    add([torch.sigmoid, F.sigmoid, *method("sigmoid")], Op("sigmoid", ("input",), m.unary("sigmoid", False)))
    add([torch.sigmoid_, *method("sigmoid_")], Op("sigmoid", ("input",), m.unary("sigmoid", False),
                                                  fixed={"inplace": True}))
    add([torch.tanh, F.tanh, *method("tanh")], Op("tanh", ("input",), m.unary("tanh", False)))
    add([torch.tanh_, *method("tanh_")], Op("tanh", ("input",), m.unary("tanh", False), fixed={"inplace": True}))
    add([F.gelu], Op("gelu", ("input", "approximate"), m.gelu, {"approximate": "none"}))
    add([F.softmax, torch.softmax, *method("softmax")],
        Op("softmax", ("input", "dim", "_stacklevel", "dtype"), m.softmax, {"dim": None, "dtype": None}))
    add([F.dropout], Op("dropout", ("input", "p", "training", "inplace"), m.dropout,
                        {"p": 0.5, "training": True, "inplace": False}))
    add([F.max_pool2d, torch.max_pool2d],
        Op("max_pool2d", ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
           m.max_pool, {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "return_indices": False}))
    add([F.avg_pool2d], Op("avg_pool2d", ("input", "kernel_size", "stride", "padding", "ceil_mode",
                                          "count_include_pad", "divisor_override"), m.avg_pool,
                           {"stride": None, "padding": 0, "ceil_mode": False, "count_include_pad": True,
                            "divisor_override": None}))
    add([F.adaptive_avg_pool2d], Op("adaptive_avg_pool2d", ("input", "output_size"), m.adaptive("avg")))
    add([F.adaptive_max_pool2d], Op("adaptive_max_pool2d", ("input", "output_size", "return_indices"),
                                    m.adaptive("max"), {"return_indices": False}))
    add([torch.mean, *method("mean")], Op("mean", ("input", "dim", "keepdim", "dtype"), m.mean,
                                          {"dim": None, "keepdim": False, "dtype": None}))
    add([torch.flatten, *method("flatten")], Op("flatten", ("input", "start_dim", "end_dim"), s.flatten,
                                                {"start_dim": 0, "end_dim": -1}))
    add(method("view", "reshape"), Op("view", ("input", "*shape"), s.reshape))
    add([torch.reshape], Op("reshape", ("input", "shape"), s.reshape))
    add(method("contiguous"), Op("contiguous", ("input", "memory_format"), s.same))
    add(method("permute"), Op("permute", ("input", "*dims"), s.permute))
    add([torch.permute], Op("permute", ("input", "dims"), s.permute))
    add([torch.transpose, *method("transpose")], Op("transpose", ("input", "dim0", "dim1"), s.transpose))
    add([torch.cat, torch.concat, torch.concatenate], Op("cat", ("tensors", "dim|axis"), s.cat, {"dim": 0}))
    add([torch.chunk, *method("chunk")], Op("chunk", ("input", "chunks", "dim"), s.pieces, {"dim": 0}))
    add([torch.split, *method("split")], Op("split", ("input|tensor", "split_size_or_sections|split_size", "dim"),
                                            s.pieces, {"dim": 0}))
    add([operator.getitem], Op("getitem", ("input", "index"), s.getitem))
    add([operator.add, operator.iadd, torch.add, *method("add")], Op("add", ("input", "other", "alpha"), m.add))
    add([*method("add_")], Op("add", ("input", "other", "alpha"), m.add, fixed={"inplace": True}))
    add([operator.mul, operator.imul, torch.mul, *method("mul")], Op("mul", ("input", "other"), m.mul))
    add([*method("mul_")], Op("mul", ("input", "other"), m.mul, fixed={"inplace": True}))
    return ops


def supported() -> dict[str, list[str]]:
    """The module classes and operations the importer maps, by name."""
    modules = [key.rsplit(".", 1)[1] for key in MODULES]
    operations = sorted({f"Tensor.{key[1]}" if isinstance(key, tuple) else op_text(key) for key in table()})
    return {"modules": modules, "operations": operations}


def supported_summary() -> str:
    """One sentence for error hints: what the importer maps and how to go on without it."""
    names = supported()
    return (f"archstat maps {len(names['modules'])} module classes ({', '.join(names['modules'][:6])}, ...) and "
            f"{len(names['operations'])} functions and tensor methods (archstat.importers.torch_import.supported() "
            "lists them); allow_unknown=True (--allow-unknown) keeps this one as an uncounted layer")
