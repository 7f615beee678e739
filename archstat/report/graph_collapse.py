"""The boxes of a graph picture: one per layer, with pointwise layers collapsed into the
layer before them, so that ResNet-50 or GoogLeNet stay legible: ``conv1 +bn+relu``.

Both views of the DAG (:mod:`.graph_dot` and :mod:`.graph_draw`) read the graph only
through :func:`graph_nodes`. A layer is absorbed into its producer when

* it has exactly one input, and that producer feeds nothing else (and is not the input);
* the registry says it is pointwise (``window`` is ``None``) and counts no MACs;
* its output shape equals its input's shape.

The rule reads shapes, MACs and the graph only; it never looks at a type's name (the
project rule: only :mod:`archstat.layers` branches on type names). Merges (several inputs)
and branch points (several consumers) therefore always stay visible, and every edge between
surviving nodes is kept.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..spec import INPUT_NAME


@dataclass(frozen=True)
class GraphNode:
    """One box of a picture: a layer and the pointwise layers collapsed into it.

    ``members`` lists the layers, the head (``name``) first; ``inputs`` are surviving nodes
    in the head's input order; ``shape`` is the per-sample output shape (the last member's).
    """

    name: str
    type: str
    shape: tuple[int, ...]
    inputs: tuple[str, ...]
    members: tuple[str, ...]
    merged: tuple[str, ...] = ()     # type aliases of the absorbed layers, in order
    training_only: bool = False      # runs only in training (an auxiliary head)

    @property
    def title(self) -> str:
        """``"conv1 +bn+relu"``: the name, and what was merged into it; ``(train)`` marks a
        layer that runs only in training."""
        return (self.name + (" +" + "+".join(self.merged) if self.merged else "")
                + (" (train)" if self.training_only else ""))


def graph_nodes(model: Any, collapse: bool = True, blocks: int | None = None) -> dict[str, GraphNode]:
    """The nodes of a picture, in execution order, keyed by their (head) layer name.

    Parameters
    ----------
    model : Model, path or mapping
    collapse : bool
        Merge shape-preserving pointwise layers into their producer (module docstring).
    blocks : int, optional
        Then one node per block instance at this depth of the dotted names
        (:func:`collapse_blocks`); 0 picks the depth.

    Examples
    --------
    >>> nodes = graph_nodes(load("vgg16"))                 # doctest: +SKIP
    >>> nodes["conv1_1"].title                             # doctest: +SKIP
    'conv1_1 +relu'
    """
    from ..graph import load
    model = load(model)
    graph = model.graph
    depth = None
    if blocks is not None:   # pointwise layers merge only within their block
        from .blocks import block_key
        depth = blocks if blocks > 0 else block_depth(graph_nodes(model, collapse=False))
    head: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for name in model.order:
        src = _absorbing_producer(model, name) if collapse else None
        if (src is not None and depth is not None and block_key(src, depth) != block_key(name, depth)
                and (block_key(src, depth) != src or block_key(name, depth) != name)):
            src = None   # not across a block's border (two layers outside any block may merge)
        if src is None:
            head[name] = name
            members[name] = [name]
        else:
            head[name] = head[src]
            members[head[src]].append(name)
    nodes = {}
    for name, group in members.items():
        layer = model.layer(name)
        inputs = list(dict.fromkeys(head[src] for src in layer.inputs))
        nodes[name] = GraphNode(name, layer.type_name, tuple(graph.nodes[group[-1]]["shape"]),
                                tuple(inputs), tuple(group),
                                tuple(model.layer(m).type.alias for m in group[1:]), layer.training_only)
    if depth is not None:
        nodes = collapse_blocks(nodes, depth)
    return nodes


#: ``--collapse`` without a depth picks the deepest one that leaves at most this many boxes
BLOCK_BOXES = 40


def block_depth(nodes: dict[str, GraphNode], most: int = BLOCK_BOXES) -> int:
    """The deepest name depth (1 to 8) at which :func:`collapse_blocks` leaves at most ``most``
    boxes; 1 when none does."""
    best = 1
    for depth in range(1, 9):
        if len(collapse_blocks(nodes, depth)) <= most:
            best = depth
    return best


def collapse_blocks(nodes: dict[str, GraphNode], depth: int) -> dict[str, GraphNode]:
    """One node per block instance: consecutive nodes (in execution order) whose names share
    their first ``depth`` dotted parts (:func:`.blocks.block_key`) become one box named by the
    prefix, its type "N layers", its shape the last one's. Runs of the execution order are
    grouped, never scattered layers, so the boxes still form a DAG (every edge goes forward);
    a prefix that comes back later gets a second box, "name (2)"."""
    from .blocks import block_key
    groups: list[tuple[str, list[GraphNode]]] = []
    for node in nodes.values():
        key = (block_key(node.name, depth), node.training_only)
        if groups and groups[-1][0] == key:
            groups[-1][1].append(node)
        else:
            groups.append((key, [node]))
    seen: dict[tuple[str, bool], int] = {}
    head: dict[str, str] = {}
    named = []
    for key, group in groups:
        seen[key] = seen.get(key, 0) + 1
        name = key[0] + (f" ({seen[key]})" if seen[key] > 1 else "")
        for node in group:
            head[node.name] = name
        named.append((name, group))
    out = {}
    for name, group in named:
        inputs = tuple(dict.fromkeys(head[i] for n in group for i in n.inputs if head[i] != name))
        if len(group) == 1 and group[0].name == name:
            out[name] = replace(group[0], inputs=inputs)
            continue
        members = tuple(m for n in group for m in n.members)
        kind = group[0].type if len(members) == 1 else f"{len(members)} layers"
        out[name] = GraphNode(name, kind, group[-1].shape, inputs, members, (),
                              all(n.training_only for n in group))
    return out


def _absorbing_producer(model: Any, name: str) -> str | None:
    """The producer ``name`` collapses into, or None (rule in the module docstring)."""
    layer = model.layer(name)
    if len(layer.inputs) != 1 or layer.inputs[0] == INPUT_NAME:
        return None
    src = layer.inputs[0]
    graph = model.graph
    if graph.out_degree(src) != 1:
        return None
    in_shape = (1, *graph.nodes[src]["shape"])
    out_shape = (1, *graph.nodes[name]["shape"])
    if out_shape != in_shape:
        return None
    ltype = layer.type
    if ltype.window([in_shape], layer.attrs) is not None:
        return None
    if ltype.macs([in_shape], out_shape, layer.attrs) != 0:
        return None
    return src
