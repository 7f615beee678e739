"""The state of one ONNX import: which values are constants and which are tensors of layers,
the layers emitted so far with their shapes (inferred by archstat's registry), their
weights, and what the notes will say.

Converters (:mod:`.onnx_ops`, :mod:`.onnx_patterns`) read values through :meth:`Walk.const`
and :meth:`Walk.shape` and write layers with :meth:`Walk.emit`. Shapes carry the batch axis:
the file's static batch size, or a probe size (``onnx_import.PROBE_BATCH``) where the file
leaves it symbolic, so that the shape arithmetic in the file (``Shape`` of a tensor, then
``Reshape`` to it) folds to the same numbers as at run time.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import ArchstatError
from ..layers import registry
from ..layers.registry import INFERRED, REQUIRED, fmt_shape
from .onnx_fold import NOT_FOLDABLE, evaluate
from .onnx_graph import Names, Node, OnnxGraph

INPUT = "input"
Shape = tuple[int, ...]


class Walk:
    """Translate an :class:`OnnxGraph` node by node into archstat layers.

    Attributes: ``layers`` (spec entries, in order), ``weights`` (``{layer: {name: array}}``),
    ``uncounted`` (opaque layers), ``shapes`` and ``types`` (layer name -> output shape with
    batch, archstat type), ``tensors`` (ONNX value -> layer name), ``consts`` (ONNX value ->
    array), ``static`` (the values that can fold), ``names`` (layer names and the ONNX node
    each comes from), ``counters`` and ``remarks`` (facts for the notes).
    """

    def __init__(self, graph: OnnxGraph, data_input: str, in_shape: Shape, allow_unknown: bool):
        self.g = graph
        self.label = graph.label
        self.opset = graph.opset
        self.allow_unknown = allow_unknown
        self.names = Names(graph)
        self.consts: dict[str, np.ndarray] = {}
        self.origin: dict[str, str] = {}          # constant value -> the file tensor it is (aliases)
        self.tensors: dict[str, str] = {data_input: INPUT}
        self.shapes: dict[str, Shape] = {INPUT: tuple(in_shape)}
        self.types: dict[str, str] = {}           # layer name -> its archstat type
        self.done: set[int] = set()
        self.layers: list[dict[str, Any]] = []
        self.weights: dict[str, dict[str, np.ndarray]] = {}
        self.uses: dict[str, list[str]] = defaultdict(list)  # file tensor -> "layer.param" using it
        self.origins: dict[str, dict[str, str]] = {}         # layer -> param -> file tensor
        self.uncounted: list[dict[str, Any]] = []
        self.counters: dict[str, Counter] = defaultdict(Counter)
        self.remarks: list[str] = []
        #: ONNX's own shape inference, run once when an unknown node is passed through
        self.onnx_shapes: dict[str, tuple[int | None, ...]] | None = None
        self._last = INPUT
        self.static = self._static_values()
        self.symbolic_batch = False   # set by the reader: the file leaves the batch open
        self.tied: dict[str, list[str]] = {}   # file tensor -> the later "layer.param" that share it

    # -- constants ----------------------------------------------------------------
    def _static_values(self) -> set[str]:
        """Values that do not depend on the input's values: initializers, and the outputs of
        foldable nodes whose inputs are static or that read only a shape (Shape, Size). Only
        these are folded, so that looking ahead never walks back through the network."""
        static = set(self.g.initializers)
        for node in self.g.nodes:
            if not _foldable(node):
                continue
            if node.op in ("Shape", "Size") or all(v in static for v in node.inputs if v):
                static.update(v for v in node.outputs if v)
        return static

    def const(self, value: str) -> np.ndarray | None:
        """The constant array of ``value``, folding its producers on demand; None when it is
        computed from the model's input (or by a node that cannot fold)."""
        if not value or value not in self.static:
            return None
        if value in self.consts:
            return self.consts[value]
        if value in self.g.initializers and value not in self.g.producer:
            self.consts[value] = self.g.initializer_array(value)
            self.origin[value] = value
            return self.consts[value]
        node = self.g.producer.get(value)
        if node is None or node.index in self.done or not self.fold(node):
            return None
        return self.consts.get(value)

    def fold(self, node: Node) -> bool:
        """Fold ``node`` into constants when all its inputs are known; True when it did."""
        if node.index in self.done or not _foldable(node):
            return False
        if node.op in ("Shape", "Size") and node.inputs[0] in self.tensors:
            outputs = [self._shape_op(node)]
        elif node.op == "Constant":
            outputs = [self._constant_node(node)]
        else:
            inputs = [self.const(v) if v else None for v in node.inputs]
            if any(a is None for v, a in zip(node.inputs, inputs) if v):
                return False
            if node.op == "Identity" or (node.op == "Cast" and inputs[0].dtype == _cast_dtype(node)):
                self._alias_const(node.outputs[0], node.inputs[0])
                self._mark_folded(node)
                return True
            try:
                outputs = evaluate(node.proto, inputs, node.attrs, self.opset)
            except ArchstatError as exc:
                raise exc.with_context(file=self.label, layer=node.label)
        for value, array in zip(node.outputs, outputs):
            if value:
                self.consts[value] = np.asarray(array)
                self.origin[value] = value
        self._mark_folded(node)
        return True

    def _mark_folded(self, node: Node) -> None:
        self.done.add(node.index)
        self.counters["folded"][node.op] += 1

    def _alias_const(self, out: str, src: str) -> None:
        self.consts[out] = self.consts[src]
        self.origin[out] = self.origin.get(src, src)

    def _shape_op(self, node: Node) -> np.ndarray:
        shape = self.shape(node.inputs[0])
        if node.op == "Size":
            return np.array(int(np.prod(shape)), dtype=np.int64)
        start, end = node.attr("start", 0), node.attr("end")
        return np.array(shape[start:end], dtype=np.int64)

    def _constant_node(self, node: Node) -> np.ndarray:
        for key, dtype in (("value", None), ("value_float", np.float32), ("value_floats", np.float32),
                           ("value_int", np.int64), ("value_ints", np.int64)):
            if key in node.attrs:
                return np.asarray(node.attrs[key], dtype=dtype)
        raise ArchstatError(f"a Constant node with {', '.join(node.attrs) or 'no value'} is not supported "
                            "(dense numeric values only)", file=self.label, layer=node.label)

    # -- tensors ------------------------------------------------------------------
    def is_tensor(self, value: str) -> bool:
        """True for a value computed from the model's input (a layer's output)."""
        return value in self.tensors

    def shape(self, value: str) -> Shape:
        """The shape (with the batch axis) of a tensor value."""
        return self.shapes[self.tensors[value]]

    def layer(self, value: str) -> str:
        """The archstat layer whose output is ``value``."""
        return self.tensors[value]

    def tensor_inputs(self, node: Node) -> list[str]:
        return [v for v in node.inputs if v and v in self.tensors]

    def sole_reader(self, value: str) -> Node | None:
        """The one node that reads ``value``, when exactly one does, it has not been handled,
        and ``value`` is not a graph output (so a pattern may swallow ``value``)."""
        readers = self.g.readers(value)
        if len(readers) != 1 or self.g.is_output(value) or readers[0].index in self.done:
            return None
        return readers[0]

    def alias(self, out: str, src: str, *nodes: Node) -> None:
        """``out`` is the same tensor as ``src`` (Identity, a float-to-float Cast, an identity
        Reshape): no layer; the nodes are done."""
        self.tensors[out] = self.tensors[src]
        for node in nodes:
            self.done.add(node.index)
            self.counters["dropped"][node.op] += 1

    # -- layers -------------------------------------------------------------------
    def emit(self, node: Node, type_name: str, fields: Mapping[str, Any], inputs: Sequence[str],
             outputs: Iterable[str] = (), weights: Mapping[str, np.ndarray] | None = None,
             origins: Mapping[str, str] | None = None, suffix: str = "",
             nodes: Iterable[Node] = ()) -> str:
        """Add one layer named after ``node`` and return its name.

        ``inputs``: archstat layer names (``walk.layer(value)`` for a tensor value).
        ``outputs``: the ONNX values this layer's output is. ``weights``: its parameters and
        buffers in the registry's layouts; ``origins``: for each, the constant value it came
        from (sharing is detected on them). ``nodes``: the ONNX nodes it stands for (marked
        done; ``node`` always is).
        """
        ltype = registry.get(type_name)
        fields = _without_defaults(ltype, {k: _plain(v) for k, v in fields.items()})
        name = self.names.make(node, suffix)
        try:
            attrs = ltype.normalise(fields)
            in_shapes = [self.shapes[i] for i in inputs]
            out_shape = tuple(ltype.output_shape(in_shapes, attrs))
            self._check_weights(ltype, in_shapes, attrs, weights or {})
        except ArchstatError as exc:
            raise exc.with_context(file=self.label, layer=node.label)
        entry: dict[str, Any] = {"name": name, "type": type_name, **fields}
        if list(inputs) != [self._last]:
            entry["inputs"] = list(inputs)
        self.layers.append(entry)
        self.shapes[name] = out_shape
        self.types[name] = type_name
        self._last = name
        if weights:
            self.weights[name] = {k: _float_array(v) for k, v in weights.items()}
            for key, source in (origins or {}).items():
                if source and key in weights:
                    root = self.origin.get(source, source)
                    self.uses[root].append(f"{name}.{key}")
                    self.origins.setdefault(name, {})[key] = root
        for value in outputs:
            self.tensors[value] = name
        for n in (node, *nodes):
            self.done.add(n.index)
        return name

    def tie_shared(self) -> None:
        """A file tensor that several layers read counts once: each later layer that holds it
        under the same name, in the same layout, gets ``shares: {name: first layer}`` (or
        ``shares: <first layer>`` when that covers all its tensors and both are of one type)
        and keeps no copy. Uses in another layout (a transposed Gemm weight) stay counted per
        use; :attr:`tied` and :attr:`uses` tell the notes which."""
        entries = {entry["name"]: entry for entry in self.layers}
        for root, users in self.uses.items():
            first, key = users[0].rsplit(".", 1)
            for user in list(users[1:]):
                layer, field = user.rsplit(".", 1)
                mine, theirs = self.weights[layer].get(field), self.weights[first][key]
                if field != key or mine is None or mine.shape != theirs.shape or not np.array_equal(mine, theirs):
                    continue
                entries[layer].setdefault("shares", {})[field] = first
                del self.weights[layer][field]
                users.remove(user)
                self.tied.setdefault(root, []).append(user)
        for entry in self.layers:
            ties = entry.get("shares")
            if ties and not self.weights.get(entry["name"]):
                self.weights.pop(entry["name"], None)
                owner = next(iter(ties.values()))
                if set(ties.values()) == {owner} and self.types[owner] == entry["type"] and \
                        set(ties) == set(self.weights.get(owner, ())):
                    entry["shares"] = owner   # all its tensors are the other's: a module called twice

    def _check_weights(self, ltype: Any, in_shapes: list[Shape], attrs: Any,
                       weights: Mapping[str, np.ndarray]) -> None:
        expected = {**ltype.param_shapes(in_shapes, attrs), **ltype.buffer_shapes(in_shapes, attrs)}
        for key, array in weights.items():
            if tuple(np.shape(array)) != tuple(expected.get(key, ())):
                raise ArchstatError(f"the file's {key} has shape {fmt_shape(np.shape(array))}, but a "
                                    f"{ltype.name} layer on an input of shape {fmt_shape(in_shapes[0])} "
                                    f"needs {fmt_shape(expected.get(key, ()))}", field=key,
                                    hint="the weights do not fit the tensor this node reads")
        if set(expected) != set(weights):  # pragma: no cover - a converter bug
            raise AssertionError(f"{ltype.name}: weights {sorted(weights)} != {sorted(expected)}")

    def note(self, text: str) -> None:
        """A sentence for the notes (kept once)."""
        if text not in self.remarks:
            self.remarks.append(text)

    def run(self, convert: Callable[["Walk", Node], None]) -> None:
        """Walk the live nodes in order: fold what is constant, ``convert`` the rest."""
        for node in self.g.nodes:
            if node.index in self.done or node.index not in self.g.live:
                continue
            if self.fold(node):
                continue
            try:
                convert(self, node)
            except ArchstatError as exc:
                raise exc.with_context(file=self.label, layer=node.label)
            except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError) as exc:
                raise ArchstatError(f"cannot import this {node.op} node ({type(exc).__name__}: {exc})",
                                    file=self.label, layer=node.label,
                                    hint="the node's attributes or inputs may be malformed") from None


def _foldable(node: Node) -> bool:
    """A default-domain op that is deterministic and has no subgraph."""
    return (node.op not in NOT_FOLDABLE and "." not in node.op
            and not any(hasattr(v, "node") for v in node.attrs.values()))


def _cast_dtype(node: Node) -> np.dtype | None:
    from onnx import helper
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(node.attr("to")))
    except (KeyError, TypeError, ValueError):
        return None


def _without_defaults(ltype: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """The fields that differ from the type's defaults (a spec reads like a hand-written one:
    no ``stride: 1``, ``dilation: 1``, ``groups: 1``)."""
    known = {field.name for field in ltype.fields}
    out = {key: value for key, value in fields.items() if key not in known}  # refused by normalise
    for field in ltype.fields:
        if field.name not in fields:
            continue
        value, default = fields[field.name], field.default
        if default is not REQUIRED and default is not INFERRED and default is not None:
            try:
                if field.normalise(value) == field.normalise(default):
                    continue
            except ArchstatError:
                pass  # an invalid value: kept, and refused by the type's own check
        out[field.name] = value
    return out


def _plain(value: Any) -> Any:
    """A spec value as plain Python data (ints, floats, lists), never NumPy scalars."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value


def _float_array(array: Any) -> np.ndarray:
    """Weights as float32 (float64 kept), C-contiguous."""
    array = np.asarray(array)
    dtype = np.float64 if array.dtype == np.float64 else np.float32
    return np.ascontiguousarray(array, dtype=dtype)
