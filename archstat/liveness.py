"""The free-after-last-use plan: when each tensor's storage is allocated and freed over the
execution order. The analysis reports its peak (``peak_activation_bytes``) and the engine's
executor allocates and frees tensors by it, so prediction and execution follow one plan. At
inference, concatenations take their inputs into their own buffer (:mod:`archstat.placement`)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from .graph import Model
from .placement import NOWHERE, Placement, placement, storage_with


@dataclass(frozen=True)
class LivenessPlan:
    """When each tensor's storage is allocated and freed over the execution order.

    ``storage[name]`` is the node whose output owns the storage ``name`` writes to (itself;
    an ancestor for in-place layers and views; the concatenation whose buffer holds it, when
    placed); ``allocate[name]`` lists the storages allocated when ``name`` runs (each at its
    first member); ``free_after[name]`` lists the storages released once ``name`` has run.
    Model outputs are never freed. ``placement`` says where concatenated tensors live.
    """

    order: tuple[str, ...]
    storage: Mapping[str, str]
    free_after: Mapping[str, tuple[str, ...]]
    allocate: Mapping[str, tuple[str, ...]]
    placement: Placement
    #: storage owner -> the tensors that live in it, in order
    members: Mapping[str, tuple[str, ...]]

    def peak(self, nbytes: Mapping[str, int]) -> tuple[int, dict[str, int]]:
        """Peak live bytes, and the live bytes while each layer runs, given bytes per storage."""
        live = 0
        peak = 0
        during: dict[str, int] = {}
        allocate, free_after = self.allocate, self.free_after
        for name in self.order:
            for owner in allocate[name]:
                live += nbytes[owner]
            during[name] = live
            if live > peak:
                peak = live
            for owner in free_after[name]:
                live -= nbytes[owner]
        return peak, during


def liveness(model: Model, training: bool = False, place: bool | None = None,
             in_place: frozenset = frozenset()) -> LivenessPlan:
    """The free-after-last-use plan (used by analysis and the engine): over
    ``model.inference_order`` at inference, over every layer (``model.order``) in training.

    ``place`` (default: at inference) lets concatenations take their inputs into their buffer
    (:mod:`archstat.placement`). A buffer that does so is allocated when its first input is
    computed, which can raise the peak where that input is made long before the join: a root
    buffer's placements are dropped while dropping one lowers the peak, and none are made if the
    plan would still peak above the plain one (judged on the spec's input size; every
    activation scales alike with the batch). ``in_place``: layers that also write over their
    input's storage (the executor's batch norms after a convolution at inference,
    :mod:`archstat.engine.folding`)."""
    order = model.order if training else model.inference_order
    outputs = set(model.outputs if training else model.inference_outputs)
    placed = (placement(model, order, outputs, in_place) if (not training if place is None else place)
              else NOWHERE)
    plan = _plan(model, training, order, outputs, placed, in_place)
    if placed:
        sizes = {name: math.prod(model.graph.nodes[name]["shape"]) for name in order}
        best = plan.peak(sizes)[0]
        dropped = True
        while dropped and placed:   # until no single root's placements are worth dropping
            dropped = False
            for root in [h for h in placed.hosts if h not in placed.slots]:
                trial = placed.without(root)
                other = _plan(model, training, order, outputs, trial, in_place)
                peak = other.peak(sizes)[0]
                if peak < best:
                    placed, plan, best, dropped = trial, other, peak, True
        plain = _plan(model, training, order, outputs, NOWHERE, in_place)
        if plain.peak(sizes)[0] < best:   # roots that only hurt together: place nothing
            plan = plain
    return plan


def _plan(model: Model, training: bool, order: list[str], outputs: set[str], placed: Placement,
          in_place: frozenset = frozenset()) -> LivenessPlan:
    owners = storage_with(model, in_place)
    storage = {name: placed.root(owners[name]) for name in order} if placed.slots else owners
    allocate: dict[str, tuple[str, ...]] = dict.fromkeys(order, ())
    members: dict[str, tuple[str, ...]] = {}
    for name in order:
        owner = storage[name]
        if owner not in members:
            members[owner] = ()
            allocate[name] += (owner,)
        members[owner] += (name,)
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
    return LivenessPlan(tuple(order), storage, free_after, allocate, placed, members)
