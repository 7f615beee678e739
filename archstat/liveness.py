"""The free-after-last-use plan: when each tensor's storage is allocated and freed over the
execution order. The analysis reports its peak (``peak_activation_bytes``) and the engine's
executor frees tensors by it, so prediction and execution follow one plan."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .graph import Model


@dataclass(frozen=True)
class LivenessPlan:
    """When each tensor's storage is allocated and freed over the execution order.

    ``storage[name]`` is the node whose output owns the storage ``name`` writes to (itself,
    or an ancestor for in-place layers and views); ``free_after[name]`` lists the storages
    released once ``name`` has run. Model outputs are never freed.
    """

    order: tuple[str, ...]
    storage: Mapping[str, str]
    free_after: Mapping[str, tuple[str, ...]]

    def peak(self, nbytes: Mapping[str, int]) -> tuple[int, dict[str, int]]:
        """Peak live bytes, and the live bytes while each layer runs, given bytes per storage."""
        live = 0
        peak = 0
        during: dict[str, int] = {}
        storage, free_after = self.storage, self.free_after
        for name in self.order:
            if storage[name] == name:
                live += nbytes[name]
            during[name] = live
            if live > peak:
                peak = live
            for owner in free_after[name]:
                live -= nbytes[owner]
        return peak, during


def liveness(model: Model, training: bool = False) -> LivenessPlan:
    """The free-after-last-use plan (used by analysis and the engine): over
    ``model.inference_order`` at inference, over every layer (``model.order``) in training."""
    storage = model.storage
    order = model.order if training else model.inference_order
    outputs = set(model.outputs if training else model.inference_outputs)
    layers = [layer for layer in model.layers() if training or not layer.training_only]
    last_use: dict[str, int] = {}
    for step, layer in enumerate(layers):
        for node in layer.inputs:
            last_use[storage[node]] = step
        last_use[storage[layer.name]] = step
    for out in outputs:
        last_use[storage[out]] = len(order)
    free_after: dict[str, tuple[str, ...]] = dict.fromkeys(order, ())
    for owner, step in last_use.items():
        if step < len(order):
            free_after[order[step]] += (owner,)
    return LivenessPlan(tuple(order), storage, free_after)
