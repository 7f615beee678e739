"""Which algorithm runs each layer: the reference, one the caller forces, or the fastest one
measured on this machine for the layer's shape (``auto``), as cuDNN's and oneDNN's algorithm
search do.

A layer type lists its algorithms (``LayerType.algorithm_names``, the reference first: the
lecture's im2col + GEMM for a convolution) and which of them apply to one layer
(``LayerType.algorithms``: Winograd only for a 3x3, stride-1 convolution). The executor tells
the kernel its choice in ``RunContext.algorithm``.

Choices:

* ``"reference"``: every layer runs its type's reference algorithm (the default);
* an algorithm's name (``"winograd4"``): every layer it applies to runs it, the others their
  reference;
* ``"auto"``: each layer with a choice runs the algorithm that was fastest for its type,
  input shapes, fields, dtype and pass (inference: forward, ties within :data:`TIE` going to
  the least workspace, under the workspace cap the executor gives the layer when one binds,
  :mod:`archstat.engine.workspace`, as cuDNN's search within a workspace limit; training:
  forward + backward),
  measured once on this machine (the best of a few runs of each, on random data) and cached as
  JSON in ``$XDG_CACHE_HOME/archstat/algorithms-<machine key>.json`` beside the calibrated roofs
  (:mod:`archstat.machine`). Deleting the file measures again.
"""
from __future__ import annotations

import json
import time
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ArchstatError, did_you_mean
from ..layers import registry
from ..layers.registry import RunContext, Shape

AUTO = "auto"
REFERENCE = "reference"
#: bumped when the cache file's layout changes (older files are then ignored)
CACHE_VERSION = 2    # 2: Winograd's blocks and filter chunks changed, and ties go to less workspace
#: at inference, algorithms within this fraction of the fastest time count as tied, and the
#: one with the least workspace (``LayerType.workspace_bytes``) wins: as cuDNN's search, a
#: lower peak for a time within the noise of measuring it
TIE = 0.05
#: timed runs per candidate (after one untimed), the best kept
RUNS = 3


def names() -> tuple[str, ...]:
    """Every algorithm some registered layer type has, in registration order."""
    out: dict[str, None] = {}
    for ltype in registry.all_types().values():
        out.update(dict.fromkeys(ltype.algorithm_names))
    return tuple(out)


def check_choice(choice: Any, field: str = "algorithm") -> str:
    """``choice`` when it is ``auto``, ``reference`` or an algorithm's name; else a clear error
    (naming ``field``: the argument, or the command's option)."""
    known = (AUTO, REFERENCE, *names())
    if not isinstance(choice, str) or choice not in known:
        raise ArchstatError(f"unknown algorithm {choice!r} (choose from {', '.join(known)})", field=field,
                            hint=did_you_mean(str(choice), known))
    return choice


def choose(model: Any, shapes: Mapping[str, Shape], choice: str, *, dtype: str, train: bool,
           tuner: "Tuner | None" = None, measure: bool = True,
           caps: Mapping[str, int] | None = None) -> dict[str, str]:
    """``{layer: algorithm}`` for every layer with more than one algorithm (``shapes``: every
    layer's output shape, batch included). ``measure=False`` measures nothing: an ``auto``
    layer this machine's cache does not know yet is left out. ``caps``: each layer's workspace
    cap (bytes) at inference; ``auto`` measures a layer under its cap where the cap binds (some
    option's default workspace is over it)."""
    out = {}
    for layer in model.layers():
        if not layer.inputs or not layer.type.algorithm_names:
            continue
        in_shapes = [tuple(shapes[src]) for src in layer.inputs]
        options = layer.type.algorithms(in_shapes, layer.attrs)
        if len(options) < 2:
            continue
        if choice == AUTO:
            tuner = tuner or Tuner()
            cap = None if train or not caps else binding_cap(layer.type, in_shapes, layer.attrs, options, dtype,
                                                             caps.get(layer.name))
            best = (tuner.best if measure else tuner.known)(layer.type, in_shapes, layer.attrs, options, dtype,
                                                            train, cap)
            if best is not None:
                out[layer.name] = best
        elif choice in options:
            out[layer.name] = choice
        else:   # the reference, or an algorithm that does not apply to this layer
            out[layer.name] = options[0]
    return out


def binding_cap(ltype: registry.LayerType, in_shapes: Sequence[Shape], attrs: Mapping[str, Any],
                options: Sequence[str], dtype: str, cap: int | None) -> int | None:
    """``cap`` when it binds some option (its default workspace is over it), else None: the
    uncapped measurement then holds, and is shared with every cap that changes nothing."""
    itemsize = np.dtype(dtype).itemsize
    if cap is None or all(ltype.workspace_bytes(in_shapes, attrs, itemsize, name) <= cap for name in options):
        return None
    return cap


class Tuner:
    """The fastest algorithm per layer shape on this machine: measured once, cached."""

    def __init__(self, path: str | None = None):
        from ..machine import cache_dir, machine_info, machine_key

        self.key = machine_key(machine_info())
        self.path = path or str(cache_dir() / f"algorithms-{self.key}.json")
        self.choices: dict[str, dict[str, Any]] = {}
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            if data.get("version") == CACHE_VERSION and data.get("key") == self.key:
                self.choices = dict(data.get("choices") or {})
        except (OSError, ValueError, AttributeError, TypeError):
            pass
        #: the cache could not be written (a read-only home): the measurements stay in this process
        self.note: str | None = None

    @staticmethod
    def case(ltype: registry.LayerType, in_shapes: Sequence[Shape], attrs: Mapping[str, Any], dtype: str,
             train: bool, cap: int | None = None) -> str:
        """The cache key of one layer: type, input shapes, fields, dtype and pass, and under a
        workspace cap (left out when None) the workspace each algorithm takes at it: caps that
        give the same blocks share one measurement."""
        fields = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(attrs.items())}
        key = [ltype.name, [list(s) for s in in_shapes], fields, dtype, "train" if train else "eval"]
        if cap is not None:
            itemsize = np.dtype(dtype).itemsize
            key.append({"workspace": {name: ltype.workspace_bytes(in_shapes, attrs, itemsize, name, cap)
                                      for name in ltype.algorithms(in_shapes, attrs)}})
        return json.dumps(key, sort_keys=True, default=str)

    def known(self, ltype: registry.LayerType, in_shapes: Sequence[Shape], attrs: Mapping[str, Any],
              options: Sequence[str], dtype: str, train: bool, cap: int | None = None) -> str | None:
        """The cached choice among ``options`` for this layer (:func:`pick`), None when it was
        never measured."""
        known = self.choices.get(self.case(ltype, in_shapes, attrs, dtype, train, cap))
        return known["best"] if known and set(known.get("ms", {})) == set(options) else None

    def best(self, ltype: registry.LayerType, in_shapes: Sequence[Shape], attrs: Mapping[str, Any],
             options: Sequence[str], dtype: str, train: bool, cap: int | None = None) -> str:
        known = self.known(ltype, in_shapes, attrs, options, dtype, train, cap)
        if known is not None:
            return known
        case = self.case(ltype, in_shapes, attrs, dtype, train, cap)
        ms = {name: measure(ltype, in_shapes, attrs, name, dtype, train, cap) for name in options}
        best = pick(ltype, in_shapes, attrs, ms, options, dtype, train, cap)
        self.choices[case] = {"best": best, "ms": ms}
        self.save()
        return best

    def save(self) -> None:
        from ..outfile import write_file

        data = {"version": CACHE_VERSION, "key": self.key, "choices": self.choices}
        try:
            write_file(self.path, json.dumps(data, indent=1) + "\n", field="algorithm cache")
        except ArchstatError as exc:
            self.note = f"the algorithm choices are not cached: {exc}"


def pick(ltype: registry.LayerType, in_shapes: Sequence[Shape], attrs: Mapping[str, Any], ms: Mapping[str, float],
         options: Sequence[str], dtype: str, train: bool, cap: int | None = None) -> str:
    """The algorithm ``auto`` runs given each option's measured milliseconds: the fastest; at
    inference, of those within :data:`TIE` of it, the one with the least workspace under the
    cap (then the faster, then the earlier in ``options``)."""
    if train:
        return min(options, key=lambda name: (ms[name], options.index(name)))
    fastest = min(ms[name] for name in options)
    tied = [name for name in options if ms[name] <= fastest * (1 + TIE)]
    itemsize = np.dtype(dtype).itemsize
    return min(tied, key=lambda name: (ltype.workspace_bytes(in_shapes, attrs, itemsize, name, cap), ms[name],
                                       options.index(name)))


def measure(ltype: registry.LayerType, in_shapes: Sequence[Shape], attrs: Mapping[str, Any], algorithm: str,
            dtype: str, train: bool, cap: int | None = None) -> float:
    """Milliseconds of one forward (training: forward + backward) of a layer with this
    algorithm, on random data, under the workspace cap ``cap`` (None: none): the best of
    :data:`RUNS` runs after an untimed one."""
    rng = np.random.default_rng(0)
    kind = np.dtype(dtype).type
    xs = [rng.standard_normal(s, dtype=kind) for s in in_shapes]
    params = {k: rng.standard_normal(s, dtype=kind) * 0.1 for k, s in ltype.param_shapes(in_shapes, attrs).items()}
    buffers = {k: np.asarray(ltype.initial_buffer(k, s), dtype=kind)
               for k, s in ltype.buffer_shapes(in_shapes, attrs).items()}
    best = float("inf")
    for run in range(RUNS + 1):
        ctx = RunContext(train=train, rng=np.random.default_rng(run), buffers=buffers, keep_cache=train,
                         algorithm=algorithm, workspace=cap)
        start = time.perf_counter()
        y, cache = ltype.forward(list(xs), params, attrs, ctx)
        if train:
            ltype.backward(np.ones_like(y), cache)
        if run:
            best = min(best, time.perf_counter() - start)
    return 1e3 * best
