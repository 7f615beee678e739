"""ONNX files in: :func:`read_onnx` turns an ONNX model into an archstat spec and its weights.

The importer reads the file with the ``onnx`` package (an optional extra, imported when
called), checks the graph (opset 7 and newer, acyclic, one image or feature input), folds
every constant computation (initializers, ``Constant`` nodes, shape arithmetic, weights
computed by constant subgraphs) into arrays, and maps each remaining node, or pattern of
nodes, onto registry layer types (:mod:`.onnx_ops`, :mod:`.onnx_shapes`,
:mod:`.onnx_patterns`). archstat infers every shape with its registry as it goes; at the end
the shapes the file states (``value_info``, graph outputs) are compared with archstat's, and
a disagreement is an error naming the node.

Layer names are the ONNX node names made valid archstat names (:class:`.onnx_graph.Names`);
``Imported.spec["notes"]`` says what the import did that a reader of the numbers should know.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ArchstatError
from ..layers.registry import fmt_shape
from . import Imported
from .onnx_graph import OnnxGraph, Node, tensor_shape
from .onnx_ops import (Unsupported, convert_add, convert_batch_norm, convert_concat, convert_dropout,
                       convert_gemm, convert_identity, convert_layer_norm, convert_lrn, convert_matmul,
                       convert_mul, convert_softmax)
from .onnx_window import convert_conv, convert_global_pool, convert_pool, convert_reduce_pool
from .onnx_patterns import (convert_activation, convert_affine, convert_decomposed_layer_norm,
                            convert_layer_norm2d)
from .onnx_shapes import (convert_flatten, convert_pad, convert_reshape, convert_slice, convert_split,
                          convert_squeeze, convert_transpose)
from .onnx_walk import INPUT, Walk
from .onnx_notes import compose_notes

Converter = Callable[[Walk, Node], bool]
_ACTIVATION = (convert_activation,)
_ARITHMETIC = (convert_affine, convert_activation)

#: ops that map only as a piece of a pattern (Erf in GELU, Pow and Sqrt in a layer norm)
_PIECES = ("Erf", "Pow", "Sqrt", "Exp", "Neg", "Reciprocal", "Max", "Min")
#: ops that change nothing archstat counts (a float-to-float Cast)
_NO_OPS = ("Identity", "Cast")
#: the converters tried for each ONNX op, in order (the first that returns True wins)
HANDLERS: dict[str, tuple[Converter, ...]] = {
    "Conv": (convert_conv,), "MaxPool": (convert_pool,), "AveragePool": (convert_pool,),
    "GlobalAveragePool": (convert_global_pool,), "GlobalMaxPool": (convert_global_pool,),
    "ReduceMean": (convert_decomposed_layer_norm, convert_reduce_pool), "ReduceMax": (convert_reduce_pool,),
    "Gemm": (convert_gemm,), "MatMul": (convert_matmul,),
    "BatchNormalization": (convert_batch_norm,), "LayerNormalization": (convert_layer_norm,),
    "LRN": (convert_lrn,), "Concat": (convert_concat,),
    "Add": _ARITHMETIC + (convert_add,), "Sum": (convert_add,), "Mul": _ARITHMETIC + (convert_mul,),
    "Sub": _ARITHMETIC, "Div": _ARITHMETIC,
    **{op: _ACTIVATION for op in ("Relu", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "Clip", "Gelu")},
    "Softmax": (convert_softmax,), "Dropout": (convert_dropout,),
    "Flatten": (convert_flatten,), "Reshape": (convert_reshape,), "Squeeze": (convert_squeeze,),
    "Unsqueeze": (convert_squeeze,), "Transpose": (convert_layer_norm2d, convert_transpose),
    "Split": (convert_split,), "Slice": (convert_slice,), "Pad": (convert_pad,),
    **{op: _ACTIVATION for op in _PIECES}, **{op: (convert_identity,) for op in _NO_OPS},
}
#: the ops that map onto layers of their own (what an error about an unknown node lists)
LAYER_OPS = tuple(sorted(set(HANDLERS) - set(_PIECES) - set(_NO_OPS)))

SUPPORTED = ", ".join(LAYER_OPS).replace("Normalization", "Norm").replace("Average", "Avg")
#: graph names exporters write that say nothing about the model
_GENERIC_NAMES = ("", "main_graph", "torch_jit", "torch-jit-export", "graph", "model", "tf2onnx")
_TWO_GB = 2**31
#: the batch size a file's shape arithmetic runs at where the file leaves the batch symbolic:
#: not 1, so that a reshape to a literal 1 (or a Flatten from axis 0), which merges the batch
#: into the features at any other size, is not taken for one that keeps the batch
PROBE_BATCH = 7
#: initializers up to this many elements go into the model given to ONNX's shape inference
#: (their values may be shapes); larger ones become typed inputs
SMALL_TENSOR = 1024


def supported_ops() -> list[str]:
    """Every ONNX op type the importer maps onto archstat layers (others fold when constant)."""
    return sorted(HANDLERS)


def read_onnx(source: str | os.PathLike | Any, *, input_shape: tuple[int, ...] | None = None,
              allow_unknown: bool = False) -> Imported:
    """Read an ONNX model into an archstat spec and its weights.

    Parameters
    ----------
    source : path to an ``.onnx`` file, or an ``onnx.ModelProto``
        External data files are read from the model file's folder.
    input_shape : (C, H, W) or (F,), optional
        The input's size without the batch axis; needed where the file leaves C, H or W
        symbolic, and must agree with the dimensions the file fixes.
    allow_unknown : bool
        Import nodes archstat has no type for as ``opaque`` layers (not counted; their
        output shapes from ONNX's shape inference) instead of raising.

    Returns
    -------
    Imported
        ``spec`` (``archstat.load(imported.spec)`` builds the Model), ``weights`` in the
        registry's layouts, ``notes``, ``uncounted`` (the opaque layers).

    Raises
    ------
    ArchstatError
        For a file that is not ONNX, truncated or malformed; an opset older than 7; several
        inputs; symbolic input sizes without ``input_shape``; a node archstat cannot map
        (without ``allow_unknown``); stored shapes that disagree with archstat's. The
        message names the file and the ONNX node.

    Examples
    --------
    >>> imp = read_onnx("resnet18.onnx")                         # doctest: +SKIP
    >>> model = archstat.load(imp.spec)                          # doctest: +SKIP
    >>> archstat.Executor(model, weights=imp.weights).forward(x)  # doctest: +SKIP
    """
    onnx = _require_onnx()
    model, label, stem, base_dir = _load(onnx, source)
    graph = OnnxGraph(model, label, base_dir)
    data_input = _data_input(graph)
    batch, sample = _input_dims(graph, data_input, input_shape)
    walk = Walk(graph, data_input, (batch or PROBE_BATCH, *sample), allow_unknown)
    walk.symbolic_batch = batch is None
    if batch and batch > 1:
        walk.note(f"The file fixes the batch size at {batch}; archstat's counts are per batch of the size you "
                  "analyse (one sample by default).")
    walk.run(_convert)
    walk.tie_shared()
    _check_outputs(walk)
    _check_stored_shapes(walk)
    notes = compose_notes(walk)
    spec = {"name": _spec_name(model, stem), "source": _source(model, label, graph.opset), "notes": " ".join(notes),
            "input": list(sample), "layers": walk.layers}
    names = {name: node for name, node in walk.names.original.items() if name != node}
    return Imported(spec=spec, weights=walk.weights, notes=notes, uncounted=walk.uncounted, names=names)


# ------------------------------------------------------------------- reading the file

def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ArchstatError("reading ONNX files needs the onnx package", hint="pip install 'archstat[onnx]'") from None
    return onnx


def _load(onnx: Any, source: Any) -> tuple[Any, str, str, str | None]:
    """(ModelProto, label for messages, name stem, folder of its external data files or None).
    External data stays on disk until a converter reads it (:meth:`OnnxGraph.initializer_array`)."""
    if isinstance(source, onnx.ModelProto):
        label = "<onnx.ModelProto>"
        _check_model(source, label)
        return source, label, "model", None
    if not isinstance(source, (str, os.PathLike)):
        raise ArchstatError(f"expected a path to an .onnx file or an onnx.ModelProto, got {type(source).__name__}")
    path = Path(source)
    label = str(source)
    if not path.is_file():
        raise ArchstatError("no such ONNX file", file=label)
    size = path.stat().st_size
    if size == 0:
        raise ArchstatError("the file is empty, not an ONNX model", file=label)
    if size >= _TWO_GB:
        raise ArchstatError(f"a {size / 1e9:.1f} GB protobuf: ONNX files over 2 GB keep their weights in "
                            "external data files, and protobuf cannot read this one", file=label,
                            hint="save it with onnx.save_model(model, path, save_as_external_data=True)")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: not ONNX, or cut short
        raise ArchstatError(f"not an ONNX model, or a truncated one: protobuf cannot parse it "
                            f"({type(exc).__name__})", file=label,
                            hint="check that it is an .onnx file, and copy or export it again if it was cut "
                                 "short") from None
    _check_model(model, label)
    return model, label, path.stem, str(path.parent)


def _check_model(model: Any, label: str) -> None:
    if not model.HasField("graph") or (model.ir_version == 0 and not len(model.opset_import)):
        raise ArchstatError("not an ONNX model (no graph or opset in the file)", file=label)


def _data_input(graph: OnnxGraph) -> str:
    """The one graph input that is not an initializer (old exporters list weights as inputs)."""
    data = [v for v in graph.graph_inputs if v not in graph.initializers]
    if not data:
        raise ArchstatError("the graph has no input (every input is an initializer)", file=graph.label)
    if len(data) > 1:
        raise ArchstatError(f"the graph has {len(data)} inputs ({', '.join(repr(v) for v in data)}): archstat "
                            "analyses models with one input tensor", file=graph.label,
                            hint="export the model with one image (or feature) input")
    return data[0]


def _input_dims(graph: OnnxGraph, name: str, given: Any) -> tuple[int | None, tuple[int, ...]]:
    """(the file's batch size, None when symbolic; the per-sample input size)."""
    info = next(v for v in graph.model.graph.input if v.name == name)
    elem = info.type.tensor_type.elem_type if info.type.HasField("tensor_type") else 0
    if elem not in (0, 1, 10, 11, 16):
        from onnx import helper
        raise ArchstatError(f"the input {name!r} holds {helper.tensor_dtype_to_np_dtype(elem)}: archstat "
                            "analyses models of floating-point images or features", file=graph.label)
    dims = tensor_shape(info)
    if given is not None:
        given = _given_shape(given, graph.label)
    if dims is None:
        if given is None:
            raise ArchstatError(f"the file states no shape for the input {name!r}", file=graph.label,
                                field="input_shape", hint="give its size: --input C H W (input_shape=(C, H, W))")
        dims = (None, *given)
    if len(dims) not in (2, 4):
        raise ArchstatError(f"the input {name!r} has shape {_fmt(dims)}: archstat reads an image (N, C, H, W) or "
                            "flat features (N, F)", file=graph.label)
    sample = dims[1:]
    # what --input may say: the file's fixed sizes, letters for its symbolic ones
    template = " ".join(str(d) if d is not None else letter
                        for d, letter in zip(sample, ("C", "H", "W") if len(sample) == 3 else ("F",)))
    if given is not None:
        if len(given) != len(sample) or any(d is not None and d != g for d, g in zip(sample, given)):
            if all(d is not None for d in sample):
                raise ArchstatError(f"the file fixes the input {name!r} at {_fmt(dims)}; input_shape "
                                    f"{tuple(given)} cannot change it", file=graph.label, field="input_shape",
                                    hint="leave out --input (input_shape), or export the model with dynamic "
                                         "height and width")
            raise ArchstatError(f"input_shape {tuple(given)} disagrees with the input {name!r} of shape "
                                f"{_fmt(dims)} in the file", file=graph.label, field="input_shape",
                                hint=f"give the sizes the file leaves open: --input {template}")
        sample = tuple(given)
    if any(d is None for d in sample):
        raise ArchstatError(f"the input {name!r} has symbolic dimensions {_fmt(dims)}: archstat needs its size",
                            file=graph.label, field="input_shape",
                            hint=f"give it: --input {template} (input_shape=({template.replace(' ', ', ')}))")
    return dims[0], tuple(int(d) for d in sample)


def _given_shape(given: Any, label: str) -> tuple[int, ...]:
    try:
        values = tuple(given)
    except TypeError:
        values = None
    if not values or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                             for v in values):
        raise ArchstatError(f"input_shape must be positive integers (C, H, W) or (F,), got {given!r}", file=label,
                            field="input_shape")
    return tuple(int(v) for v in values)


def _fmt(dims: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


# ------------------------------------------------------------------- converting nodes

def _convert(walk: Walk, node: Node) -> None:
    """Map one node (not constant): the first converter that takes it, else unknown."""
    reason = None
    for convert in HANDLERS.get(node.op, ()):
        try:
            if convert(walk, node):
                return
        except Unsupported as exc:
            reason = str(exc)
            break
    if reason is None and not walk.tensor_inputs(node):
        reason = "its inputs are constants it cannot fold"
    _unknown(walk, node, reason)


def _unknown(walk: Walk, node: Node, reason: str | None) -> None:
    """An error naming the node, or (allow_unknown) an opaque layer per used output."""
    batch = "N" if walk.symbolic_batch else None
    shapes = ", ".join(_fmt((batch or walk.shape(v)[0], *walk.shape(v)[1:])) if walk.is_tensor(v) else "a constant"
                       for v in node.inputs if v)
    if not walk.allow_unknown:
        if node.op not in HANDLERS:
            what = f"this {node.op} node has no archstat layer type"
        else:
            what = f"this {node.op} node is not supported" + (f": {reason}" if reason else " in this form")
            if batch and f"({PROBE_BATCH}, " in what:   # the reason quotes the probe's shapes
                what += f" (shapes at batch {PROBE_BATCH}: the file leaves the batch open)"
        raise ArchstatError(f"{what} (inputs: {shapes or 'none'})", file=walk.label, layer=node.label,
                            hint=f"import it uncounted with --allow-unknown (allow_unknown=True); archstat maps: "
                                 f"{SUPPORTED}")
    inputs = [walk.layer(v) for v in dict.fromkeys(walk.tensor_inputs(node))]
    if not inputs:
        raise ArchstatError(f"this {node.op} node reads no tensor computed from the input, so it cannot be passed "
                            "through", file=walk.label, layer=node.label)
    used = [(i, v) for i, v in enumerate(node.outputs) if walk.g.used(v)]
    for i, value in used:
        shape = _inferred_shape(walk, node, value)
        suffix = f".{i}" if len(used) > 1 else ""
        name = walk.emit(node, "opaque", {"op": node.op[:200], "output_shape": list(shape[1:])}, inputs, [value],
                         suffix=suffix)
        walk.uncounted.append({"name": name, "op": node.op, "inputs": inputs, "output_shape": list(shape[1:])})
    walk.done.add(node.index)


def _inferred_shape(walk: Walk, node: Node, value: str) -> tuple[int, ...]:
    """The shape ONNX's own shape inference gives ``value`` (with the batch axis)."""
    if walk.onnx_shapes is None:
        walk.onnx_shapes = _onnx_inference(walk)
    shape = walk.onnx_shapes.get(value)
    if shape is None or any(d is None for d in shape) or not shape:
        raise ArchstatError(f"cannot pass this {node.op} node through: ONNX's shape inference gives no static "
                            f"shape for its output {value!r}", file=walk.label, layer=node.label,
                            hint="replace the node, or give the model static shapes")
    batch = walk.shapes[INPUT][0]
    if shape[0] != batch:
        raise ArchstatError(f"this {node.op} node's output {value!r} has shape {_fmt(shape)}: its first axis is "
                            "not the batch", file=walk.label, layer=node.label)
    return shape


def _onnx_inference(walk: Walk) -> dict[str, tuple[int | None, ...]]:
    """ONNX shape inference on a light copy of the model: the input at archstat's size, and
    large initializers replaced by typed inputs (the weights' values play no part)."""
    import onnx
    from onnx import helper, numpy_helper

    graph = walk.g.model.graph
    data = next(v for v in graph.input if v.name in walk.tensors and walk.tensors[v.name] == INPUT)
    elem = data.type.tensor_type.elem_type or onnx.TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info(data.name, elem, list(walk.shapes[INPUT]))]
    small = []
    for tensor in graph.initializer:
        if np.prod(tensor.dims, dtype=np.int64) > SMALL_TENSOR:
            inputs.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
        else:
            small.append(numpy_helper.from_array(walk.g.initializer_array(tensor.name), tensor.name))
    light = helper.make_model(helper.make_graph(graph.node, graph.name or "g", inputs, graph.output, small),
                              opset_imports=walk.g.model.opset_import, ir_version=walk.g.model.ir_version)
    try:
        inferred = onnx.shape_inference.infer_shapes(light, data_prop=True)
    except Exception:  # inference refused the model: no shapes to offer
        return {}
    return {v.name: tensor_shape(v) for v in list(inferred.graph.value_info) + list(inferred.graph.output)
            if tensor_shape(v) is not None}


# ------------------------------------------------------------------- checks and the spec

def _check_outputs(walk: Walk) -> None:
    """Every graph output is a layer's output (not the input itself, nor only constants)."""
    outputs = [v for v in walk.g.graph_outputs if walk.is_tensor(v)]
    if not outputs or all(walk.layer(v) == INPUT for v in outputs):
        raise ArchstatError("no graph output is computed by a layer from the input", file=walk.label,
                            hint="the model must compute something from its input")
    if not walk.layers:
        raise ArchstatError("the graph computes nothing archstat counts (its nodes change nothing)", file=walk.label)


def _check_stored_shapes(walk: Walk) -> None:
    """The shapes the file states must be archstat's (symbolic dimensions aside)."""
    for value, stored in walk.g.stored_shapes().items():
        if value not in walk.tensors or walk.layer(value) == INPUT:
            continue
        ours = walk.shape(value)
        if walk.symbolic_batch and stored and ours:   # the probe's batch is not the file's
            ours = (stored[0], *ours[1:])
        if len(stored) != len(ours) or any(s is not None and s != o for s, o in zip(stored, ours)):
            node = walk.g.producer.get(value)
            raise ArchstatError(f"the file states shape {_fmt(stored)} for {value!r}, but archstat's shape rules give "
                                f"{_fmt(ours)}", file=walk.label, layer=node.label if node else None,
                                hint="the file's shapes are stale, or archstat maps this node wrongly")


def _spec_name(model: Any, stem: str) -> str:
    name = model.graph.name
    if name.strip().lower() in _GENERIC_NAMES:
        name = stem
    return name.replace("$", "$$")  # the spec's name may use ${...}: a literal dollar is $$


def _source(model: Any, label: str, opset: int) -> str:
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p) or "unknown"
    where = label if label.startswith("<") else Path(label).name
    return f"imported from {where} (ONNX opset {opset}, producer {producer})"
