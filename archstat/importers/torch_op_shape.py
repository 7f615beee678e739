"""Handlers of the PyTorch importer for shape operations: flatten, view / reshape (a flatten,
or with transpose and view the channel shuffle of torchvision's ShuffleNetV2), permute,
transpose, contiguous, cat, chunk / split and the getitem that takes one piece.

Shapes come from the shape pass (``tr.shape``: batch axis first), never from the arguments of
``view``, whose sizes are often computed at run time (``x.size(0)``).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.fx

from .torch_graph import Piece, Translator
from .torch_names import op_base, scope_of
from .torch_modules import Unmappable, dim_index, permute_dims
from .torch_trace import TensorInfo


def flatten(tr, node, a):
    rank = len(tr.shape(a["input"]))
    start = dim_index(a["start_dim"], rank, "start_dim")
    end = a["end_dim"] % rank if -rank <= a["end_dim"] < rank else a["end_dim"]
    if end < start:
        raise Unmappable(f"flatten from {start} to {end}")
    fields = {"start_dim": start} if end == rank - 1 else {"start_dim": start, "end_dim": end}
    tr.emit(node, "flatten", fields, [tr.source(a["input"])], base="flatten")


def flatten_range(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, int] | None:
    """(start, end) when ``b`` is ``a`` with the axes start..end merged (the batch axis
    kept), the earliest start first; else None."""
    merged = len(a) - len(b) + 1
    if merged < 2 or not b or a[0] != b[0]:
        return None
    for start in range(1, len(b)):
        end = start + merged - 1
        if a[:start] == b[:start] and a[end + 1:] == b[start + 1:] and math.prod(a[start:end + 1]) == b[start]:
            return start, end
    return None


def reshape(tr, node, a):
    """view / reshape: nothing (the same shape), a channel shuffle, or a flatten."""
    x, out = tr.shape(a["input"]), tr.shape(node)
    if x == out:
        tr.same(node, a["input"])
        return
    if _channel_shuffle(tr, node, a["input"], x, out):
        return
    merged = flatten_range(x, out)
    if merged is None:
        raise Unmappable(f"reshapes {x} to {out}: archstat maps a reshape that merges neighbouring axes "
                         "(a flatten) and the view / transpose / view of a channel shuffle")
    start, end = merged
    fields = {"start_dim": start} if end == len(x) - 1 else {"start_dim": start, "end_dim": end}
    tr.emit(node, "flatten", fields, [tr.source(a["input"])], base="flatten")


def _channel_shuffle(tr: Translator, view: torch.fx.Node, src: Any, x: tuple, mid: tuple) -> bool:
    """torchvision's shufflenetv2.channel_shuffle: view (N, g, C/g, H, W), transpose(1, 2),
    contiguous, view (N, C, H, W). True when ``view`` starts that pattern (then written)."""
    if len(x) != 4 or len(mid) != 5 or mid[0] != x[0] or mid[3:] != x[2:] or mid[1] * mid[2] != x[1]:
        return False
    from .torch_ops import lookup

    chain = [view]
    for names in (("transpose", "permute"), ("contiguous",), ("view", "reshape", "flatten")):
        users = tr.users(chain[-1])
        nxt = users[0] if len(users) == 1 else None
        op = lookup(nxt) if nxt is not None else None
        if op is None or op.name not in names:
            if names == ("contiguous",):
                continue   # contiguous is optional
            return False
        chain.append(nxt)
    if not _swaps_groups(chain[1]) or tr.shape(chain[-1]) != x:
        return False
    last = chain[-1]
    name = tr.namer.functional(scope_of(view), "channel_shuffle")
    tr.emit(last, "channel_shuffle", {"groups": mid[1]}, [tr.source(src)], name=name)
    tr.consume(*chain)
    return True


def _swaps_groups(node: torch.fx.Node) -> bool:
    """True for transpose(1, 2) or permute(0, 2, 1, 3, 4) of a 5-D tensor."""
    from .torch_ops import bind, lookup

    op = lookup(node)
    a = bind(node, op)
    if op.name == "transpose":
        return sorted(d % 5 for d in (a["dim0"], a["dim1"])) == [1, 2]
    return [d % 5 for d in a["dims"]] == [0, 2, 1, 3, 4]


def permute(tr, node, a):
    mapped = permute_dims(list(a["dims"]), len(tr.shape(a["input"])))
    tr.emit(node, "permute", mapped.fields, [tr.source(a["input"])], base="permute")


def transpose(tr, node, a):
    rank = len(tr.shape(a["input"]))
    dims = list(range(rank))
    i, j = (d % rank if -rank <= d < rank else d for d in (a["dim0"], a["dim1"]))
    if not (0 <= i < rank and 0 <= j < rank):
        raise Unmappable(f"transpose({a['dim0']}, {a['dim1']}) of a tensor of rank {rank}")
    dims[i], dims[j] = dims[j], dims[i]
    mapped = permute_dims(dims, rank)
    tr.emit(node, "permute", mapped.fields, [tr.source(a["input"])], base="transpose")


def same(tr, node, a):
    tr.same(node, a["input"])


def cat(tr, node, a):
    tensors = a["tensors"]
    if not isinstance(tensors, (list, tuple)) or not tensors:
        raise Unmappable("cat of something other than a list of tensors")
    dim = dim_index(a["dim"], len(tr.shape(tensors[0])), "dim")
    fields = {} if dim == 1 else {"dim": dim}
    tr.emit(node, "concat", fields, [tr.source(t) for t in tensors], base="cat")


def pieces(tr, node, a):
    """chunk / split: no layer yet; each getitem of the result is a split layer."""
    x = tr.shape(a["input"])
    dim = dim_index(a["dim"], len(x), "dim")
    value = tr.value(node)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, TensorInfo) for v in value):
        raise Unmappable("a split that does not return tensors")
    sizes = [v.shape[dim] for v in value]
    if op_base(node) == "chunk" and len(set(sizes)) == 1 and len(sizes) == a["chunks"]:
        fields = {"dim": dim, "chunks": len(sizes)}
    else:
        fields = {"dim": dim, "sizes": sizes}
    tr.pieces[node] = Piece(tr.source(a["input"]), fields, tr.namer.functional(scope_of(node), op_base(node)))


def getitem(tr, node, a):
    src, index = a["input"], a["index"]
    piece = tr.pieces.get(src) if isinstance(src, torch.fx.Node) else None
    if piece is None:
        what = "a tensor (x[...])" if isinstance(tr.value(src), TensorInfo) else "a result"
        raise Unmappable(f"indexes {what}: archstat has no slicing layer")
    count = len(tr.value(src))
    if not isinstance(index, int) or not -count <= index < count:
        raise Unmappable(f"takes item {index!r} of {count} pieces")
    index %= count
    name = tr.namer.exact(f"{piece.base}.{index}")
    tr.emit(node, "split", {**piece.fields, "index": index}, [piece.source], name=name)
