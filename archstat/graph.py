"""The Model: a spec turned into a ``networkx.DiGraph`` of layers, with shapes inferred.

Nodes are layer names (the input is the node ``input``); each node carries

* ``layer``: the :class:`Layer` (its registered type, validated attrs, ordered inputs),
* ``type``: the type's spec name (a convenience for users of the graph),
* ``shape``: the output shape for one sample at the spec's input size (no batch axis).

Edges run from producer to consumer; ``Layer.inputs`` keeps their order (it matters for
``concat``). Shapes are NCHW, or ``(N, F)`` after ``flatten``.
"""
from __future__ import annotations

import contextlib
import copy
import functools
from types import MappingProxyType
import gc
import os
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import networkx as nx

from .errors import ArchstatError, did_you_mean
from .layers import registry
from .layers.registry import Shape, fmt_shape
from .spec import INPUT_NAME, Spec, load_spec


@contextlib.contextmanager
def paused_gc(layers: int = 0):
    """Pause the cyclic garbage collector while building many small objects.

    Loading and analysis allocate a few objects per layer and create no reference cycles
    to collect, but CPython's collector still walks every live object each time it runs,
    which made a 100,000-layer analysis 40% slower per layer than a 1,000-layer one.

    On the way out of a large piece of work (``layers``: the model's size, when the caller
    knows it; else more new objects than a model of ~20,000 layers makes), every object is
    moved into the collector's oldest generation (``gc.freeze()`` then ``gc.unfreeze()``):
    the next collection of the young generation would otherwise walk all that was built at
    once (2 s after loading a million layers, 0.2 s after analysing them), then the middle
    generation again, before the full collections that walk everything anyway. Nothing stays
    frozen: a full collection still frees any cycle among them. Skipped when the program has
    frozen objects of its own (``gc.get_freeze_count()``), which unfreeze would release. The
    collector's state (enabled or not) is restored, also when an exception is raised.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_freeze_count() == 0 and (layers >= _PROMOTE_LAYERS or gc.get_count()[0] >= _PROMOTE_OBJECTS):
                gc.freeze()
                gc.unfreeze()
            gc.enable()


#: a pause moves what it built into the oldest generation past this many layers, or past this
#: many new objects (the collector's count: allocations less deallocations) when it is not told
_PROMOTE_LAYERS = 20_000
_PROMOTE_OBJECTS = 100_000


@dataclass(frozen=True)
class Layer:
    """One node of the graph."""

    name: str
    type: registry.LayerType
    attrs: Mapping[str, Any]
    inputs: tuple[str, ...]
    #: runs only in training (an auxiliary classifier): skipped at inference
    training_only: bool = False
    #: tensors this layer uses from other layers, as the spec wrote them: ``{tensor: layer}``,
    #: ``{"*": layer}`` for all of them (a module called twice); see ``Model.ties``
    shares: Mapping[str, str] | None = None
    #: how the source PyTorch code runs it where that differs from the type's usual way
    call: str | None = None

    @property
    def type_name(self) -> str:
        return self.type.name

    @property
    def torch_call(self) -> str:
        """How the PyTorch source runs this layer: ``module``, ``function``, ``method`` or
        ``operator`` (the spec's ``call``, else the type's usual way)."""
        return self.call or self.type.torch_call


class Model:
    """An architecture: metadata plus the layer DAG in execution (topological) order.

    Build one with :func:`archstat.load`. Attributes: ``name``, ``family``, ``description``,
    ``source``, ``notes``, ``accuracy``, ``input_shape`` (per sample, e.g. ``(3, 224, 224)``),
    ``file``, ``args`` (every argument's value), ``zoo_name`` and ``published`` (when the
    model is a named model of the zoo: its name and the publisher's own counts), ``graph``
    (networkx.DiGraph), ``order`` (layer names, input first), ``outputs`` (every output,
    training-only ones included), ``inference_order`` and ``inference_outputs`` (without the
    layers that run only in training).
    """

    def __init__(self, spec: Spec, zoo_name: str | None = None, published: Mapping[str, Any] | None = None):
        self.name = spec.name
        self.family = spec.family
        self.description = spec.description
        self.source = spec.source
        self.notes = spec.notes
        # copies: the loader memoises specs, and a user's change to a Model stays in that Model
        self.accuracy = copy.deepcopy(spec.accuracy)
        self.input_shape: tuple[int, ...] = spec.input_shape
        self.file = spec.file
        self.args = copy.deepcopy(spec.args)
        self.zoo_name = zoo_name
        self.published = dict(published) if published else None
        #: weights the model came with ({layer: {name: array}}, an imported file's), or None
        self.weights: dict[str, dict[str, Any]] | None = None
        #: foreign nodes passed through without counts (an import with allow_unknown)
        self.uncounted: list[dict[str, Any]] = []
        input_type = registry.get(INPUT_NAME, internal=True)
        layers = [Layer(INPUT_NAME, input_type, {}, ())]
        layers += [Layer(rec.name, rec.type, rec.attrs, rec.inputs, rec.training_only, rec.shares, rec.call)
                   for rec in spec.layers]
        #: each layer by name (the graph's nodes hold the same objects)
        self._by_name: dict[str, Layer] = {layer.name: layer for layer in layers}
        self.graph = nx.DiGraph(name=spec.name)
        order = self._spec_order(spec)
        if order is None:   # the spec lists a layer before one it reads: the graph gives the order
            self._add_nodes(layers, None)
            order = self._topological_order(spec)
            layers = [self._by_name[name] for name in order]
        self.order = order
        self._layers: list[Layer] = layers
        self._check_training_only()
        self.inference_order = [layer.name for layer in self._layers if not layer.training_only]
        if len(self.inference_order) == 1 and len(self.order) > 1:
            raise ArchstatError("every layer is training_only: nothing would run at inference", file=self.file,
                                field="training_only", hint="mark only the branches that run in training alone")
        shapes = self.shapes(batch=1)
        if self.graph.number_of_nodes():
            for name, shape in shapes.items():
                self.graph.nodes[name]["shape"] = shape[1:]
        else:
            self._add_nodes(layers, shapes)
        self.storage = self._storage_owners(shapes)
        self._check_in_place()
        self._check_shares(shapes)
        #: how many layers read each node's output
        self.readers: dict[str, int] = {name: len(succ) for name, succ in self.graph.adjacency()}
        self.outputs = [n for n in self.order if self.readers[n] == 0]
        self.inference_outputs = self.outputs
        if self.has_training_only:  # an output at inference: no layer that runs at inference reads it
            read = {src for layer in self._layers if not layer.training_only for src in layer.inputs}
            self.inference_outputs = [n for n in self.inference_order if n not in read]

    def _add_nodes(self, layers: list[Layer], shapes: Mapping[str, Shape] | None) -> None:
        """The graph's nodes, in the spec's order (``shape`` too, when known), then its edges.

        A million ``add_node`` and ``add_edge`` calls cost ~4 s; this fills the dict of dicts
        a ``networkx.DiGraph`` is made of (``_node``, ``_succ``, ``_pred``: nodes' attributes,
        successors and predecessors, each edge's attribute dict shared by both sides, all
        plain dicts, the DiGraph's factories) as those calls would, on a graph made here."""
        graph = self.graph
        node, succ, pred = graph._node, graph._succ, graph._pred
        for layer in layers:
            name = layer.name
            node[name] = ({"layer": layer, "type": layer.type.name} if shapes is None else
                          {"layer": layer, "type": layer.type.name, "shape": shapes[name][1:]})
            succ[name] = {}
            pred[name] = {}
        for layer in layers:
            name = layer.name
            for src in layer.inputs:
                if name not in succ[src]:   # a layer that reads one input twice has one edge
                    succ[src][name] = pred[name][src] = {}

    # -- structure --------------------------------------------------------------
    def _spec_order(self, spec: Spec) -> list[str] | None:
        """The spec's order, input first, when every layer comes after the layers it reads."""
        position = {INPUT_NAME: -1}
        for rec in spec.layers:
            for src in rec.inputs:
                if src not in position:
                    return None
            position[rec.name] = rec.index
        return [INPUT_NAME, *(rec.name for rec in spec.layers)]

    def _topological_order(self, spec: Spec) -> list[str]:
        position = {INPUT_NAME: -1, **{rec.name: rec.index for rec in spec.layers}}
        try:
            # spec order wherever the dependencies allow it, so reports read like the spec
            return list(nx.lexicographical_topological_sort(self.graph, key=position.__getitem__))
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(self.graph)
            # blame the layer that reads from a layer written after it (the spec's forward
            # reference), and start the path there
            back = max(range(len(cycle)), key=lambda i: position[cycle[i][0]] - position[cycle[i][1]])
            cycle = cycle[back:] + cycle[:back]
            path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
            raise ArchstatError(f"the layers form a cycle: {path}", file=self.file, layer=cycle[0][1],
                                field="inputs", hint="a layer's inputs must come from earlier in the graph")

    def _check_training_only(self) -> None:
        """A layer that runs at inference cannot read one that runs only in training."""
        if not any(layer.training_only for layer in self._layers):
            return
        for layer in self._layers:
            if layer.training_only:
                continue
            for src in layer.inputs:
                if self._by_name[src].training_only:
                    raise ArchstatError(f"this layer runs at inference but reads '{src}', which runs only in "
                                        "training", file=self.file, layer=layer.name, field="inputs",
                                        hint="mark this layer training_only too, or read a layer that "
                                             "always runs")

    def _check_shares(self, shapes: Mapping[str, Shape]) -> None:
        """Resolve ``shares`` into :attr:`ties`: ``{layer: {tensor: owner layer}}``, each tensor
        named by the layer that holds it (a share of a share followed to its owner). A layer
        that shares all (a module called twice) is of the owner's type; every shared tensor has
        the owner's tensor's shape."""
        tensors: dict[str, dict[str, Shape]] = {}

        def tensors_of(name: str) -> dict[str, Shape]:
            if name not in tensors:
                layer = self._by_name[name]
                ins = [shapes[src] for src in layer.inputs]
                tensors[name] = {**layer.type.param_shapes(ins, layer.attrs),
                                 **layer.type.buffer_shapes(ins, layer.attrs)}
            return tensors[name]

        self.ties: dict[str, dict[str, str]] = {}
        for layer in self._layers:
            if not layer.shares:
                continue
            mine = tensors_of(layer.name)
            ties: dict[str, str] = {}
            for tensor, owner in layer.shares.items():
                other = self.layer(owner)
                if tensor == "*" and other.type is not layer.type:
                    raise ArchstatError(f"shares the parameters of '{owner}', a {other.type.name} layer, but is a "
                                        f"{layer.type.name} layer", file=self.file, layer=layer.name, field="shares")
                for name in (mine if tensor == "*" else [tensor]):
                    if name not in mine:
                        raise ArchstatError(f"has no tensor {name!r} to share (it has: {', '.join(mine) or 'none'})",
                                            file=self.file, layer=layer.name, field="shares",
                                            hint=did_you_mean(name, mine))
                    theirs = tensors_of(owner).get(name)
                    if theirs is None:
                        raise ArchstatError(f"shares {name!r} with '{owner}', a {other.type.name} layer that has no "
                                            f"{name!r} (it has: {', '.join(tensors_of(owner)) or 'none'})",
                                            file=self.file, layer=layer.name, field="shares",
                                            hint="name a layer that holds this tensor")
                    if theirs != mine[name]:
                        raise ArchstatError(f"shares {name!r} with '{owner}', whose {name!r} is {fmt_shape(theirs)}, "
                                            f"not {fmt_shape(mine[name])}", file=self.file, layer=layer.name,
                                            field="shares", hint="a shared module sees inputs of the same channels"
                                            if tensor == "*" else "tied tensors have one shape")
                    ties[name] = owner
            self.ties[layer.name] = ties
        for name, ties in self.ties.items():   # a share of a share: the tensor's first holder
            for tensor, owner in ties.items():
                seen = {name}
                while tensor in self.ties.get(owner, {}):
                    if owner in seen:
                        raise ArchstatError("the layers share a tensor in a circle", file=self.file, layer=name,
                                            field="shares")
                    seen.add(owner)
                    owner = self.ties[owner][tensor]
                ties[tensor] = owner

    def own_tensors(self, name: str, shapes: Mapping[str, Shape]) -> dict[str, Shape]:
        """Of a layer's parameter or buffer ``shapes``, those it holds itself: not tied to
        another layer's (``shares``), which count and live there."""
        tied = self.ties.get(name)
        if not tied:
            return shapes
        return {k: s for k, s in shapes.items() if k not in tied}

    @property
    def has_training_only(self) -> bool:
        """True when some layers run only in training (e.g. an auxiliary head)."""
        return len(self.inference_order) != len(self.order)

    def _storage_owners(self, shapes: Mapping[str, Shape]) -> dict[str, str]:
        """For each node, the node whose output owns the memory it writes: itself, or, for
        in-place layers and views, the owner of its first input's storage.

        A view follows its input's layout (strides, judged at batch 2 so that the batch axis
        counts): where no view of that layout exists, as for a flatten of a permuted tensor, the
        layer copies, as NumPy's and PyTorch's reshape do, and owns its storage. A layer that
        computes a new tensor gives a C-contiguous one. ``shapes``: at batch 1."""
        storage: dict[str, str] = {}
        #: whether each node's output is C-contiguous (a permute's view is not)
        self.contiguous: dict[str, bool] = {}
        odd: dict[str, tuple[int, ...]] = {}   # the strides of outputs that are not C-contiguous

        def strides(name: str) -> tuple[int, ...]:
            return odd[name] if name in odd else _contiguous((2, *shapes[name][1:]))

        for layer in self._layers:
            name, ltype, src = layer.name, layer.type, (layer.inputs[0] if layer.inputs else None)
            view = None
            if src is not None and ltype.shares_input_storage(layer.attrs):
                view = (ltype.view_strides((2, *shapes[src][1:]), strides(src), layer.attrs) if ltype.is_view
                        else strides(src))   # in place: the input's own array
            if view is None:
                storage[name] = name
                self.contiguous[name] = True
            else:
                storage[name] = storage[src]
                self.contiguous[name] = view == _contiguous((2, *shapes[name][1:]))
                if not self.contiguous[name]:
                    odd[name] = view
        return storage

    def owns_storage(self, name: str) -> bool:
        """True when the layer's output needs memory of its own (not in place, not a view)."""
        return self.storage[name] == name

    def _check_in_place(self) -> None:
        """An in-place layer must be the last reader of the values it overwrites: no layer
        after it may read that storage's old contents (directly or through a view).

        One pass: for each storage an in-place layer writes, the two latest readers (of two
        different names) of the nodes that held it before; the first layer that fails is
        then described by :meth:`_in_place_error`."""
        writers = [layer for layer in self._layers if layer.inputs and layer.type.writes_in_place(layer.attrs)]
        if not writers:
            return
        position = {name: i for i, name in enumerate(self.order)}
        storage, succ = self.storage, self.graph.succ
        owners = {storage[layer.name] for layer in writers}
        holders: dict[str, list[str]] = {owner: [] for owner in owners}   # nodes holding it, in order
        for name in self.order:
            if storage[name] in holders:
                holders[storage[name]].append(name)
        seen = dict.fromkeys(owners, 0)            # holders of each storage taken into `latest`
        latest: dict[str, list[tuple[int, str]]] = {owner: [] for owner in owners}
        for layer in writers:
            owner, here = storage[layer.name], position[layer.name]
            mine, top = holders[owner], latest[owner]
            while seen[owner] < len(mine) and position[mine[seen[owner]]] < here:
                for reader in succ[mine[seen[owner]]]:
                    entry = (position[reader], reader)
                    if entry not in top:
                        top.append(entry)
                        top.sort(reverse=True)
                        del top[2:]
                seen[owner] += 1
            if any(name != layer.name and at > here for at, name in top):
                raise self._in_place_error(layer, holders[owner], position)

    def _in_place_error(self, layer: Layer, holders: list[str], position: Mapping[str, int]) -> ArchstatError:
        """The error of an in-place layer that overwrites values a later layer reads: the first
        holder of the storage, in execution order, with such a reader."""
        here = position[layer.name]
        for holder in holders:
            if position[holder] >= here:
                break
            for reader in self.graph.successors(holder):
                if reader != layer.name and position[reader] > here:
                    via = "" if holder == layer.inputs[0] else f" (through the view '{holder}')"
                    return ArchstatError(
                        f"inplace: true would overwrite '{layer.inputs[0]}', which '{reader}' reads "
                        f"later{via}", file=self.file, layer=layer.name, field="inplace",
                        hint="set inplace: false")
        raise AssertionError("no reader after the in-place layer")

    def layer(self, name: str) -> Layer:
        """The :class:`Layer` called ``name``."""
        try:
            return self._by_name[name]
        except (KeyError, TypeError):
            raise ArchstatError(f"no layer named {name!r}", file=self.file,
                                hint=did_you_mean(name, self.order)) from None

    def layers(self) -> Iterator[Layer]:
        """Layers in execution order, the input first."""
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self.order) - 1  # layers, not counting the input

    def __repr__(self) -> str:
        return f"<Model {self.name!r}: {len(self)} layers, input {fmt_shape(self.input_shape)}>"

    # the notebook's rich display lives with the reports (report/notebook.py), loaded on use
    def _repr_html_(self) -> str:
        from .report.notebook import model_html
        return model_html(self)

    def _repr_markdown_(self) -> str:
        from .report.notebook import model_markdown
        return model_markdown(self)

    # -- shapes -----------------------------------------------------------------
    def shapes(self, batch: int = 1, input_shape: tuple[int, ...] | None = None) -> Mapping[str, Shape]:
        """Output shape (with the batch axis) of every node, by the registry's shape rules
        (read-only; the last few sizes asked for are kept, as a model does not change)."""
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ArchstatError(f"batch must be a positive integer, got {batch!r}", file=self.file)
        in_shape = self.input_shape if input_shape is None else _check_input(input_shape, self.file)
        key = (batch, tuple(in_shape))
        cache = self.__dict__.setdefault("_shape_cache", {})
        if key not in cache:
            if len(cache) >= 8:
                cache.pop(next(iter(cache)))
            cache[key] = MappingProxyType(self._compute_shapes(batch, in_shape))
        return cache[key]

    def _compute_shapes(self, batch: int, in_shape: tuple[int, ...]) -> dict[str, Shape]:
        """Every node's shape, in the layers' order (the analysis walks both together)."""
        shapes: dict[str, Shape] = {INPUT_NAME: (batch, *in_shape)}
        for layer in self._layers[1:]:
            try:
                shapes[layer.name] = layer.type.output_shape([shapes[src] for src in layer.inputs],
                                                             layer.attrs)
            except ArchstatError as exc:
                raise exc.with_context(file=self.file, layer=layer.name)
        return shapes


@functools.lru_cache(maxsize=4096)
def _contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    """C-contiguous strides, in elements."""
    out, step = [], 1
    for size in reversed(shape):
        out.append(step)
        step *= size
    return tuple(reversed(out))


def _check_input(shape: Any, label: str) -> tuple[int, ...]:
    from .spec import parse_input_shape
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise ArchstatError(f"expected an input size (C, H, W), got {shape!r}", file=label, field="input_shape")
    return parse_input_shape(list(shape), label)


def load(source: str | os.PathLike | Mapping[str, Any] | Model, args: Mapping[str, Any] | None = None, *,
         input_shape: tuple[int, ...] | None = None, allow_unknown: bool = False) -> Model:
    """Load a model: a zoo name, a spec (a path to YAML/JSON, or a mapping), or a foreign model
    file (``.onnx``, through :mod:`archstat.importers`), into a :class:`Model`.

    A zoo name (``"resnet50"``, ``"efficientnet"``; see :mod:`archstat.zoo`) loads a packaged
    spec with the arguments that name selects. ``args`` override the spec's top-level
    ``args`` defaults (see :mod:`archstat.spec`). A model that is exactly a configuration of
    the zoo, however it was loaded, carries that entry's accuracy and published counts.

    For a foreign file, ``input_shape`` (C, H, W) fixes the sizes the file leaves open, and
    ``allow_unknown`` passes the nodes archstat has no layer type for through, uncounted; the
    model then carries the file's weights (``Model.weights``).

    Examples
    --------
    >>> m = load("vgg16")                      # doctest: +SKIP
    >>> m.graph.nodes["conv1_1"]["shape"]      # doctest: +SKIP
    (64, 224, 224)
    """
    if not isinstance(source, (str, os.PathLike, Mapping, Model)):
        raise ArchstatError(f"expected a spec path, a mapping or a Model, got {type(source).__name__}")
    if isinstance(source, str) and not source.strip():
        raise ArchstatError("no spec file given", hint="name a zoo model (archstat zoo lists them) or give a spec path such as my_model.yaml")
    if isinstance(source, Model):
        if args:
            raise ArchstatError("args apply when a spec is loaded, not to a built Model", field="args")
        return source
    from . import importers, zoo

    if isinstance(source, (str, os.PathLike)) and importers.importer_for(str(source)):
        if args:
            raise ArchstatError("args apply to specs; an imported model has none", file=str(source), field="args")
        return from_imported(importers.read_file(source, input_shape=input_shape, allow_unknown=allow_unknown),
                             label=str(source))

    entry = label = None
    if isinstance(source, str) and zoo.looks_like_name(source):
        path, zoo_args, entry = zoo.resolve(source)
        label = f"{source} ({path.name})"
        source = path
        args = {**zoo_args, **(args or {})}
    with paused_gc():
        try:
            spec = load_spec(source, args, label)
        except ArchstatError as exc:
            if entry is not None and exc.field == "args":
                exc.hint = exc.hint or f"the zoo model {entry.name!r} is {entry.spec} with {dict(entry.args)}"
            if (exc.message == "no such spec file" and isinstance(source, (str, os.PathLike))
                    and Path(source).stem in zoo.names()):
                exc.hint = (f"{Path(source).stem!r} is a zoo model: name it without a path "
                            f"(archstat report {Path(source).stem})")
            raise
        if entry is not None and entry.input is not None:
            spec.input_shape = entry.input
        if not isinstance(source, Mapping):
            entry = zoo.match(source, spec.args, spec.defaults, spec.input_shape)
            if entry is not None and entry.accuracy is not None:
                spec.accuracy = dict(entry.accuracy)
        return Model(spec, zoo_name=entry.name if entry else None,
                     published=entry.published if entry else None)


def from_imported(imported: Any, label: str | None = None) -> Model:
    """The Model of an importer's result (:class:`archstat.importers.Imported`), carrying the
    weights it read; errors name ``label`` (the foreign file) as the file."""
    with paused_gc():
        spec = load_spec(imported.spec, None, label)
        model = Model(spec)
    model.weights = imported.weights
    model.uncounted = list(imported.uncounted)
    return model
