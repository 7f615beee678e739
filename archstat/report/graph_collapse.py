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

from dataclasses import dataclass
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


def graph_nodes(model: Any, collapse: bool = True) -> dict[str, GraphNode]:
    """The nodes of a picture, in execution order, keyed by their (head) layer name.

    Parameters
    ----------
    model : Model, path or mapping
    collapse : bool
        Merge shape-preserving pointwise layers into their producer (module docstring).

    Examples
    --------
    >>> nodes = graph_nodes(load("vgg16"))                 # doctest: +SKIP
    >>> nodes["conv1_1"].title                             # doctest: +SKIP
    'conv1_1 +relu'
    """
    from ..graph import load
    model = load(model)
    graph = model.graph
    head: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for name in model.order:
        src = _absorbing_producer(model, name) if collapse else None
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
    return nodes


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
