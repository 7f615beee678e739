"""Symbolic analysis: per-layer shapes, parameters, MACs, FLOPs and memory, and totals.

Nothing here allocates a tensor: every number comes from shapes, through the layer
registry, so a 100000 x 100000 input analyses as fast as a 32 x 32 one. Counts are exact
Python ints.

Conventions (see also ``archstat layers``):

* shapes are NCHW with the batch axis; ``(N, F)`` after ``flatten``;
* ``params`` are trainable parameters, biases included (PyTorch's ``numel`` sum);
  ``buffers`` are non-trainable state (batch norm's running statistics);
* a MAC is one multiply-accumulate of conv, locally connected or linear layers; FLOPs
  are 2 per MAC plus each layer's elementwise work, by its documented rule;
* ``activation_bytes`` is the new storage a layer's output needs in the chosen dtype:
  0 for in-place layers (``inplace: true``) and views (flatten, dropout at inference);
* ``forward_memory_bytes`` is the CS231n figure, input plus every output (the sum);
  ``peak_activation_bytes`` is the largest live set over the execution order when each
  tensor is freed after its last consumer (the same plan the engine executes).
"""
from __future__ import annotations

import math
from itertools import compress
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

from .errors import ArchstatError, did_you_mean
from .graph import Model, load, paused_gc
from .layers.registry import Forward, Shape
from .liveness import LivenessPlan, liveness  # noqa: F401 (part of the analysis' API)
from .receptive_field import ReceptiveField, receptive_fields  # noqa: F401 (part of the analysis' API)
from .spec import INPUT_NAME

#: bytes per element of the dtypes archstat reports in
DTYPES: dict[str, int] = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}



@dataclass(frozen=True)
class Optimizer:
    """What an optimizer costs per trainable parameter: ``state`` parameter-sized copies kept
    between steps, and ``update_flops`` FLOPs per update (PyTorch's updates, scalars folded)."""

    state: int
    update_flops: int


#: sgd: w -= lr*g; momentum (PyTorch's, no dampening): b = m*b + g, w -= lr*b; adam:
#: m = b1*m + (1-b1)*g (3 FLOPs), v = b2*v + (1-b2)*g*g (4), w -= lr * m / (sqrt(v) + eps) (5)
OPTIMIZERS: dict[str, Optimizer] = {"sgd": Optimizer(0, 2), "momentum": Optimizer(1, 4), "adam": Optimizer(2, 12)}

#: every per-layer column, in order, with what it holds (one home for column names)
COLUMNS: dict[str, str] = {
    "name": "layer name",
    "type": "layer type (registry name)",
    "family": "layer family: conv, linear, pool, norm, activation, merge or shape",
    "inputs": "names of the layers it reads, in order",
    "output_shape": "output shape with the batch axis (N, C, H, W) or (N, F)",
    "params": "trainable parameters, biases included",
    "weight_params": "trainable parameters other than biases",
    "bias_params": "bias parameters",
    "buffers": "non-trainable state (batch norm running statistics)",
    "macs": "multiply-accumulates (conv, locally connected, linear)",
    "flops": "floating-point operations: 2 per MAC plus elementwise work",
    "activations": "output elements",
    "activation_bytes": "new storage for the output (0 if in place or a view)",
    "param_bytes": "storage of the trainable parameters",
    "buffer_bytes": "storage of the buffers",
    "live_bytes": "activation storage live while the layer runs at inference (inputs and output; 0 for a "
                  "training-only layer)",
    "training_only": "true for a layer that runs only in training (an auxiliary head): its parameters count, "
                     "its MACs, FLOPs and memory are left out of the inference totals",
    "shares": "the tensors this layer uses from other layers, {tensor: layer} (a module called twice: all of "
              "them; they count there), or None",
    "backward_flops": "FLOPs of the layer's backward pass in a training step: its type's rule (conv and "
                      "linear 2x their forward MAC FLOPs, less the input gradient the image does not need), "
                      "plus the adds that sum its output's gradient over several readers",
    "needs_grad": "true where the output needs a gradient in a training step: the layer has parameters or "
                  "reads a layer that needs one (the input does not)",
    "rf_size": "receptive field (h, w) in input pixels",
    "rf_stride": "effective stride (jump) (h, w): input pixels between neighbouring outputs",
    "rf_offset": "centre (h, w) of the first output's receptive field, in input pixel coordinates",
    "rf_aligned": ("false where the receptive field differs between output positions: a merge of "
                   "paths centred differently, or an adaptive pool with unequal windows"),
}

#: columns whose totals sum every row: the model's state
STATE_COLUMNS = ("params", "weight_params", "bias_params", "buffers", "param_bytes", "buffer_bytes")
#: columns whose totals sum the rows that run at inference (training-only rows are left out)
WORK_COLUMNS = ("macs", "flops", "activations", "activation_bytes")
#: columns that are summed into the totals
ADDITIVE = STATE_COLUMNS + WORK_COLUMNS


def itemsize(dtype: str) -> int:
    """Bytes per element of a dtype name; ArchstatError with did-you-mean otherwise."""
    try:
        return DTYPES[dtype]
    except (KeyError, TypeError):
        raise ArchstatError(f"unknown dtype {dtype!r} (choose from {', '.join(DTYPES)})", field="dtype",
                            hint=did_you_mean(str(dtype), DTYPES)) from None


def _numel(tensors: Mapping[str, Shape]) -> int:
    """Elements of a layer's tensors (``{name: shape}``)."""
    return sum(math.prod(shape) for shape in tensors.values()) if tensors else 0


def _bias(tensors: Mapping[str, Shape]) -> int:
    """Elements of a layer's ``bias`` tensor (0 without one)."""
    return math.prod(tensors["bias"]) if "bias" in tensors else 0


def training_step_flops(forward_flops: int, backward_flops: int, params: int, optimizer: str) -> int:
    """FLOPs of one training step: the forward of every layer (training-only ones included),
    the backward, and the optimizer's update of every trainable parameter."""
    return forward_flops + backward_flops + OPTIMIZERS[optimizer].update_flops * params


def training_memory(totals: Mapping[str, int], transient_grad_bytes: int, optimizer: str,
                    training_extra: int = 0) -> int:
    """Estimated bytes to train one step at this batch size.

    = activations kept for the backward pass (every output, as the forward sum counts them,
    plus what a layer allocates only in training: dropout's output and mask, and the outputs
    of training-only layers such as an auxiliary head)
    + parameters + their gradients + optimizer state (sgd 0, momentum 1, adam 2 copies)
    + buffers + the largest transient activation gradient (one layer's output and input
    gradients alive together). Engine workspace such as im2col buffers is not included.
    """
    params = totals["param_bytes"]
    return (totals["forward_memory_bytes"] + training_extra + params * (2 + OPTIMIZERS[optimizer].state)
            + totals["buffer_bytes"] + transient_grad_bytes)


class Analysis:
    """The result of :func:`analyze`: ``layers`` (a pandas DataFrame, one row per node,
    the input first) and ``totals`` (a dict); ``model``, ``batch``, ``dtype``, ``input_shape``.
    """

    def __init__(self, model: Model, batch: int, dtype: str, input_shape: tuple[int, ...],
                 columns: dict[str, list[Any]], totals: dict[str, Any]):
        self.model = model
        self.batch = batch
        self.dtype = dtype
        self.input_shape = input_shape
        self._columns = columns
        self._layers = None
        self.totals = totals

    @property
    def layers(self):
        """Per-layer table (pandas DataFrame, built on first use)."""
        if self._layers is None:
            import pandas as pd

            from .layer_frame import LayerFrame
            frame = LayerFrame(self._columns, columns=list(self._columns))
            for key in ADDITIVE:
                # exact Python ints where a column (or its sum) would overflow int64
                if self.totals[key] >= 2 ** 63:
                    frame[key] = pd.Series(self._columns[key], dtype=object)
            self._layers = frame
        return self._layers

    def column(self, key: str) -> list[Any]:
        """One per-layer column as a plain list (the input first), without building the
        DataFrame."""
        return self._columns[key]

    def add_column(self, key: str, values: list[Any]) -> None:
        """Add a per-layer column (one value per row, the input first), e.g. another tool's
        counts (:func:`archstat.conventions.apply`)."""
        if len(values) != len(self._columns["name"]):
            raise ValueError(f"column {key!r} has {len(values)} values for {len(self._columns['name'])} rows")
        self._columns[key] = list(values)
        self._layers = None

    def rows(self) -> list[dict[str, Any]]:
        """Per-layer records as plain Python values (no pandas needed)."""
        keys = list(self._columns)
        return [dict(zip(keys, values)) for values in zip(*self._columns.values())]

    def model_info(self) -> dict[str, Any]:
        m = self.model
        return {"name": m.name, "description": m.description, "source": m.source, "notes": m.notes,
                "file": m.file, "input_shape": list(self.input_shape), "layers": len(m),
                "outputs": list(m.outputs), "accuracy": m.accuracy}

    def to_dict(self) -> dict[str, Any]:
        """``{"model": {...}, "totals": {...}, "layers": [{...}, ...]}``, JSON-ready."""
        layers = []
        for row in self.rows():
            row = dict(row)
            row["inputs"] = list(row["inputs"])
            for key in ("output_shape", "rf_size", "rf_stride", "rf_offset"):
                row[key] = list(row[key])
            layers.append(row)
        totals = dict(self.totals)
        totals["input_shape"] = list(totals["input_shape"])
        return {"model": self.model_info(), "totals": totals, "layers": layers}

    def __repr__(self) -> str:
        t = self.totals
        return (f"<Analysis {self.model.name!r} batch={self.batch} {self.dtype}: "
                f"{t['params']:,} params, {t['macs']:,} MACs>")

    # the notebook's rich display lives with the reports (report/notebook.py), loaded on use
    def _repr_html_(self) -> str:
        from .report.notebook import analysis_html
        return analysis_html(self)

    def _repr_markdown_(self) -> str:
        from .report.notebook import analysis_markdown
        return analysis_markdown(self)


def analyze(model: Model | Any, batch: int = 1, dtype: str = "float32",
            input_shape: tuple[int, ...] | None = None, optimizer: str = "sgd") -> Analysis:
    """Analyse a model (or a spec path/mapping) at a batch size, dtype and input size.

    Parameters
    ----------
    model : Model, path or mapping
    batch : int
        Batch size N; every count but params and buffers scales with it.
    dtype : {'float32', 'float16', 'bfloat16', 'float64'}
        Element type for the byte columns.
    input_shape : (C, H, W), optional
        Override the spec's input size (resolution studies).
    optimizer : {'sgd', 'momentum', 'adam'}
        For the training-memory estimate: optimizer state per parameter (0, 1 or 2 copies).

    Returns
    -------
    Analysis
        ``.layers`` DataFrame with the columns of :data:`COLUMNS`, ``.totals`` dict.

    Raises
    ------
    ArchstatError
        A bad argument, or a layer whose shape rule fails at this input size.
    """
    model = load(model)
    with paused_gc(layers=len(model)):
        try:
            return _analyze(model, batch, dtype, input_shape, optimizer)
        except ArchstatError as exc:
            raise exc.with_context(file=model.file)


class _Row(NamedTuple):
    """What the layer loop of :func:`_analyze` finds per layer, named as the columns of
    :data:`COLUMNS` it fills (the other columns come from the liveness plan, the receptive
    fields and the model)."""

    name: str
    type: str
    family: str
    inputs: tuple[str, ...]
    output_shape: tuple[int, ...]
    params: int
    weight_params: int
    bias_params: int
    buffers: int
    macs: int
    flops: int
    activations: int
    activation_bytes: int
    param_bytes: int
    buffer_bytes: int
    needs_grad: bool
    backward_flops: int
    training_only: bool


def _analyze(model: Model, batch: int, dtype: str, input_shape: tuple[int, ...] | None,
             optimizer: str) -> Analysis:
    size = itemsize(dtype)
    if optimizer not in OPTIMIZERS:
        raise ArchstatError(f"unknown optimizer {optimizer!r} (choose from {', '.join(OPTIMIZERS)})",
                            field="optimizer", hint=did_you_mean(str(optimizer), OPTIMIZERS))
    shapes = model.shapes(batch, input_shape)
    prod = math.prod
    elements: dict[str, int] = {}
    rows: list[_Row] = []
    own_bytes: dict[str, int] = {}
    transient_grad = 0
    training_extra = 0
    needs_grad: dict[str, bool] = {}   # does the layer's output need a gradient in training?
    readers, storage, ties = model.readers, model.storage, model.ties
    # a layer's counts depend only on its type, fields, input and output shapes and which inputs
    # need a gradient, which repeat (a network stacks the same layers): each combination is asked
    # of the registry once. The layers outlive this call, so their attrs' ids are theirs.
    counted: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for layer, out in zip(model.layers(), shapes.values()):   # shapes: in the layers' order
        name = layer.name
        ltype = layer.type
        attrs = layer.attrs
        elements[name] = n_out = prod(out)
        if layer.inputs:
            ins = [shapes[src] for src in layer.inputs]
            grads_in = [needs_grad[src] for src in layer.inputs]
            key = (ltype, id(attrs), out, *grads_in, *ins)
            known = counted.get(key)
            if known is None:
                try:
                    all_params = ltype.param_shapes(ins, attrs)
                    all_buffers = ltype.buffer_shapes(ins, attrs)
                    macs = ltype.macs(ins, out, attrs)
                    flops = ltype.flops(ins, out, attrs)
                    back = ltype.backward_flops(ins, out, attrs, grads_in, Forward(macs, flops, all_params))
                except ArchstatError as exc:
                    raise exc.with_context(file=model.file, layer=name)
                known = counted[key] = (all_params, all_buffers, _numel(all_params), _bias(all_params),
                                        _numel(all_buffers), macs, flops, back,
                                        ltype.training_extra_bytes(n_out, size, attrs))
            all_params, all_buffers, params, bias, buffers, macs, flops, back, extra = known
            if name in ties:   # tensors another layer holds count there
                pshapes = model.own_tensors(name, all_params)
                params, bias, buffers = _numel(pshapes), _bias(pshapes), _numel(model.own_tensors(name, all_buffers))
            n_in = elements[layer.inputs[0]] if len(layer.inputs) == 1 else sum(elements[src] for src in layer.inputs)
            if (n_out + n_in) * size > transient_grad:
                transient_grad = (n_out + n_in) * size
            own = n_out * size if storage[name] == name else 0
            training_extra += extra
            if layer.training_only:  # kept for the backward pass of a training step
                training_extra += own
            needs_grad[name] = grad = bool(all_params) or True in grads_in
            if grad and readers[name] > 1:   # the readers' gradients are summed here
                back += (readers[name] - 1) * n_out
        else:
            params = bias = buffers = macs = flops = back = 0
            own = n_out * size
            needs_grad[name] = grad = False
        own_bytes[name] = own
        rows.append(_Row(name, ltype.name, ltype.family, layer.inputs, out, params, params - bias, bias, buffers,
                         macs, flops, n_out, own, params * size, buffers * size, grad, back, layer.training_only))
    cols: dict[str, list[Any]] = dict(zip(_Row._fields, map(list, zip(*rows))))
    training_only, backward = cols["training_only"], cols["backward_flops"]
    peak, during = liveness(model).peak(own_bytes)
    # live while each layer runs at inference (0 for training-only layers, which the plan skips)
    cols["live_bytes"] = (list(during.values()) if len(during) == len(rows) else
                          [during.get(n, 0) for n in cols["name"]])
    cols["shares"] = [ties.get(layer.name) for layer in model.layers()] if ties else [None] * len(rows)
    rfs = receptive_fields(model, shapes)
    fields = list(rfs.values()) if len(rfs) == len(rows) else [rfs[n] for n in cols["name"]]
    cols["rf_size"] = [rf.size for rf in fields]
    cols["rf_stride"] = [rf.stride for rf in fields]
    cols["rf_offset"] = [rf.offset for rf in fields]
    cols["rf_aligned"] = [rf.aligned for rf in fields]
    totals: dict[str, Any] = {key: sum(cols[key]) for key in STATE_COLUMNS}
    at_inference = [not only for only in training_only]
    for key in WORK_COLUMNS:
        totals[key] = sum(compress(cols[key], at_inference))
    # imported nodes archstat has no type for: passed through, their work and parameters unknown
    totals["not_counted"] = [layer.name for layer in model.layers() if not layer.type.counted]
    totals["training_only_macs"] = sum(compress(cols["macs"], training_only))
    totals["training_only_flops"] = sum(compress(cols["flops"], training_only))
    totals["trainable_params"] = totals["params"]
    # a training step runs every layer, training-only ones included
    totals["backward_flops"] = sum(backward)
    totals["training_step_flops"] = training_step_flops(sum(cols["flops"]), sum(backward), totals["params"],
                                                        optimizer)
    totals["forward_memory_bytes"] = totals["activation_bytes"]
    totals["peak_activation_bytes"] = peak
    totals["optimizer"] = optimizer
    totals["training_memory_bytes"] = training_memory(totals, transient_grad, optimizer, training_extra)
    totals["input_shape"] = tuple(shapes[INPUT_NAME][1:])
    totals["batch"] = batch
    totals["dtype"] = dtype
    totals["layers"] = len(model)
    cols = {key: cols[key] for key in COLUMNS}   # the columns' one order: COLUMNS'
    return Analysis(model, batch, dtype, tuple(shapes[INPUT_NAME][1:]), cols, totals)
