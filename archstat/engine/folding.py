"""Batch norms folded into the convolution before them at inference.

At inference a batch norm with running statistics is a fixed scale and shift per channel
(``LayerType.affine_at_inference``). After a convolution that no other layer reads, the
executor runs it one of two ways, both with no array of its own (the liveness plan counts the
batch norm as writing over the convolution's output, :func:`archstat.liveness.liveness`'s
``in_place``):

* **folded**: the convolution computes ``conv(x) * scale + shift`` directly, its weights and
  bias scaled per output channel for this call (``LayerType.absorbs_affine``), and the batch
  norm does nothing; the pass over the output is gone (inference engines from TensorRT to
  ONNX Runtime fold it the same way, once; here the fold is redone every call from the live
  parameters, so that weights updated in place are always seen);
* **in place**: where the scaled weights would cost more than the pass they save (more
  weights than outputs, as in ResNet's last stage at batch 1), or where the convolution's
  step, holding them and its new bias's workspace, would rise above the pass's peak (the
  executor's check: folding never raises the peak), the convolution runs as it is and the
  batch norm writes over its output.

A hook then sees a folded convolution's output as the batch norm's (``Executor.folded`` says
which); ``Executor(fold=False)`` runs every batch norm on its own.
"""
from __future__ import annotations

import math
from typing import Mapping

from ..graph import Model

Shape = tuple[int, ...]


def pairs(model: Model) -> dict[str, str]:
    """``{batch norm: convolution}`` for every layer that is an affine at inference, whose one
    input is the output of a layer that can absorb it and that nothing else reads (and that
    is not an output of the inference pass), both owning their storage."""
    outputs = set(model.inference_outputs)
    found: dict[str, str] = {}
    for name in model.inference_order:
        layer = model.layer(name)
        if len(layer.inputs) != 1 or not layer.type.affine_at_inference(layer.attrs):
            continue
        src = layer.inputs[0]
        prev = model.layer(src)
        if (prev.type.absorbs_affine and list(model.graph.successors(src)) == [name] and src not in outputs
                and model.storage[src] == src and model.storage[name] == name):
            found[name] = src
    return found


def pays(model: Model, conv: str, shapes: Mapping[str, Shape], itemsize: int) -> bool:
    """Whether folding into ``conv`` pays at these shapes: its folded weights are no larger
    than its output (making them costs a pass over them; the fold saves one over the output)."""
    layer = model.layer(conv)
    made = layer.type.absorb_bytes([shapes[src] for src in layer.inputs], layer.attrs, itemsize)
    return made <= math.prod(shapes[conv]) * itemsize
