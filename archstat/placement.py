"""Where concatenated tensors live: each input of a concatenation is written straight into its
slice of the joined buffer, and a concatenation of tensors that already lie side by side in
one buffer is a view of it (the shared-memory concatenation of memory-efficient DenseNet,
Pleiss et al. 2017). No copy is made and the inputs and the joined tensor share one storage,
so the peak is lower: an Inception module's branches no longer exist twice at its concat, and
a DenseNet block's per-layer concatenations become prefixes of the block's output.

The plan is made once per model, over the inference order, from the layer registry only
(``LayerType.joined_axis``). Concatenations are visited from the last to the first, so the
largest join (a DenseNet block's final one) claims its inputs first. For each one, in order:

* a **view**: every input already lies in one host's buffer, side by side in the same order
  along the same axis, and no in-place layer writes them after the view. Nothing runs; the
  tensor is that region of the host.
* a **host**: each input storage that may move (below) is *placed* at its slice; the others
  are copied there when the concatenation runs. A host placed in a later host (a concat of
  concats, along the same axis) writes its inputs into its own slice of that one.
* otherwise the concatenation copies, as before.

A storage (a tensor and the in-place layers and views that share its memory) may move into a
host when it is not the model's input or an output, is not placed already, every member lies
in it as the owner does (same shape, C-contiguous: a same-shape permute does not), and no
in-place layer writes it after the host runs (it would change the joined tensor). Hosts and views have no in-place writers of their own, since
their members are read later. A view is never an output (it would keep the whole host alive).

The buffer of a host that is not itself placed (a *root*) is allocated when its first member
is computed and freed after the last use of any member: the liveness plan
(:mod:`archstat.liveness`) counts it so, and the executor runs it so. Offsets are computed
from the shapes of each run, so any input size works. The training plan does not place
(backward's caches keep their own tensors).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from .graph import Model

__all__ = ["NOWHERE", "Slot", "Placement", "placement", "storage_with"]


@dataclass(frozen=True)
class Slot:
    """Where a storage (or a view concatenation) lives: inputs ``first`` to ``last`` (one
    past) of ``host`` along ``axis``. A placed storage spans one input."""

    host: str
    first: int
    last: int
    axis: int


@dataclass(frozen=True)
class Placement:
    """The plan of :func:`placement`.

    ``slots``: storage owner (or view concatenation) -> its :class:`Slot`; ``hosts``: each
    concatenation that has placed inputs -> its axis; ``views``: the view concatenations;
    ``inputs``: each host's input names (to measure slices).
    """

    slots: Mapping[str, Slot]
    hosts: Mapping[str, int]
    views: frozenset
    inputs: Mapping[str, tuple[str, ...]]

    def root(self, name: str) -> str:
        """The host whose buffer ``name`` (a slotted storage or a host) lives in, or ``name``."""
        slots = self.slots
        while name in slots:
            name = slots[name].host
        return name

    def region(self, name: str, shapes: Mapping[str, tuple[int, ...]]) -> tuple[str, int, int, int]:
        """``(root, axis, start, stop)``: the part of the root's buffer ``name`` occupies, for
        the tensor shapes of one run (with batch). A root occupies all of itself."""
        slot = self.slots.get(name)
        if slot is None:
            axis = self.hosts.get(name, 1)
            return name, axis, 0, shapes[name][axis]
        root, axis, base, _ = self.region(slot.host, shapes)
        sizes = [shapes[src][axis] for src in self.inputs[slot.host]]
        start = base + sum(sizes[:slot.first])
        return root, axis, start, start + sum(sizes[slot.first:slot.last])

    def without(self, root: str) -> "Placement":
        """This plan less everything that lives in ``root``'s buffer (those concatenations copy)."""
        def keep(name: str) -> bool:
            return self.root(name) != root
        return Placement({k: v for k, v in self.slots.items() if keep(k)},
                         {k: v for k, v in self.hosts.items() if keep(k)},
                         frozenset(v for v in self.views if keep(v)),
                         {k: v for k, v in self.inputs.items() if keep(k)})

    def __bool__(self) -> bool:
        return bool(self.hosts)


#: the plan that places nothing
NOWHERE = Placement({}, {}, frozenset(), {})


def storage_with(model: Model, in_place: frozenset = frozenset()) -> Mapping[str, str]:
    """The model's storage owners (``Model.storage``) with the layers ``in_place`` also
    writing over their input's storage (the batch norms the executor runs in place at
    inference, :mod:`archstat.engine.folding`), and what shared theirs following."""
    if not in_place:
        return model.storage
    storage: dict[str, str] = {}
    for name in model.order:
        own = model.storage[name]
        storage[name] = (storage[model.layer(name).inputs[0]] if name in in_place
                         else name if own == name else storage[own])
    return storage


def placement(model: Model, order: Iterable[str], outputs: Iterable[str],
              in_place: frozenset = frozenset()) -> Placement:
    """Plan where the concatenations of ``order`` (a pass's execution order) put their inputs;
    ``outputs`` are the pass's outputs; ``in_place``: layers that also write over their
    input (:func:`storage_with`). See the module docstring for the rules."""
    order = list(order)
    if not any(model.layer(name).type.joins for name in order):
        return NOWHERE
    outputs = set(outputs)
    storage = storage_with(model, in_place)
    position = {name: i for i, name in enumerate(order)}
    members: dict[str, list[str]] = {}
    for name in order:
        members.setdefault(storage[name], []).append(name)
    shape = {name: model.graph.nodes[name]["shape"] for name in order}

    def writers(owner: str) -> list[int]:
        """Positions of the in-place layers that write ``owner``'s storage."""
        return [position[m] for m in members[owner][1:]
                if m in in_place or model.layer(m).type.writes_in_place(model.layer(m).attrs)]

    def same_layout(owner: str) -> bool:
        """Every tensor of the storage lies in it as the owner does (same shape, C-contiguous):
        an in-place result or a dropout view, not a permute or a split."""
        return all(shape[m] == shape[owner] and model.contiguous[m] for m in members[owner])

    slots: dict[str, Slot] = {}
    hosts: dict[str, int] = {}
    views: set[str] = set()
    inputs: dict[str, tuple[str, ...]] = {}

    def movable(owner: str, host: str) -> bool:
        return (owner not in slots and owner not in outputs and bool(model.layer(owner).inputs)
                and not any(m in outputs for m in members[owner]) and same_layout(owner)
                and all(at < position[host] for at in writers(owner)))

    for name in reversed(order):
        layer = model.layer(name)
        if not layer.type.joins or storage[name] != name or writers(name):
            continue
        axis = layer.type.joined_axis([(1, *shape[src]) for src in layer.inputs], layer.attrs)
        owners = [storage[src] for src in layer.inputs]
        placed = [slots.get(owner) for owner in owners]
        if (name not in slots and name not in outputs and same_layout(name) and all(placed)
                and len({s.host for s in placed}) == 1 and placed[0].axis == axis
                and all(a.last == b.first for a, b in zip(placed, placed[1:]))
                and all(at < position[name] for owner in owners for at in writers(owner))):
            # (a view must not see its inputs' storage written in place after it)
            slots[name] = Slot(placed[0].host, placed[0].first, placed[-1].last, axis)
            views.add(name)
            continue
        if name in slots and (slots[name].axis != axis or not same_layout(name)):
            continue   # lies in a host along another axis: it copies into its slice
        mine = [i for i, owner in enumerate(owners) if movable(owner, name) and owner not in owners[:i]]
        for i in mine:
            slots[owners[i]] = Slot(name, i, i + 1, axis)
        if mine or name in slots:
            hosts[name] = axis
            inputs[name] = tuple(layer.inputs)
    return Placement(slots, hosts, frozenset(views), inputs)
