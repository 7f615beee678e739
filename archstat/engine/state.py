"""A model's state for the engine: the shapes of its parameters and buffers (from the
registry, tied tensors at their holder), each layer's fan-in, the memory they need, their
initial values and the user's weights checked against them.

Initialisation is deterministic and independent of layer order and of which weights are
given: each parameter draws from its own generator, seeded by ``(seed, crc32(layer name),
crc32(parameter name))``; the layer's type gives each value
(``LayerType.initial_param`` / ``initial_buffer``; see :mod:`archstat.engine.executor`).
"""
from __future__ import annotations

import zlib
from typing import Any, Mapping

import numpy as np

from ..errors import ArchstatError, did_you_mean
from ..graph import Model
from ..layers.registry import Shape, fmt_shape, numel

__all__ = ["StateLayout", "name_hash"]

Arrays = dict[str, dict[str, np.ndarray]]


def name_hash(name: str) -> int:
    """Stable across runs and platforms (unlike hash()): CRC-32 of the UTF-8 name."""
    return zlib.crc32(name.encode("utf-8"))


class StateLayout:
    """Which layer holds which parameter and buffer, in which shape, and each layer's fan-in
    (MACs per output element, the He initialisation's fan-in).

    Raises ArchstatError when the state alone is over ``memory_limit`` bytes in ``dtype``.
    """

    def __init__(self, model: Model, dtype: np.dtype, memory_limit: int | None = None):
        self.model, self.dtype = model, dtype
        self.params: dict[str, dict[str, Shape]] = {}
        self.buffers: dict[str, dict[str, Shape]] = {}
        self.fan_in: dict[str, int] = {}
        shapes = model.shapes(1)
        for layer in model.layers():
            if not layer.inputs:
                continue
            ins = [shapes[src] for src in layer.inputs]
            try:
                pshapes = layer.type.param_shapes(ins, layer.attrs)
                bshapes = layer.type.buffer_shapes(ins, layer.attrs)
                macs = layer.type.macs(ins, shapes[layer.name], layer.attrs)
            except ArchstatError as exc:
                raise exc.with_context(file=model.file, layer=layer.name)
            pshapes = model.own_tensors(layer.name, pshapes)   # a tied tensor is its holder's
            bshapes = model.own_tensors(layer.name, bshapes)
            if pshapes:
                self.params[layer.name] = pshapes
            if bshapes:
                self.buffers[layer.name] = bshapes
            self.fan_in[layer.name] = macs // numel(shapes[layer.name])
        if memory_limit is not None and self.nbytes > memory_limit:
            raise ArchstatError(f"the parameters and buffers alone need {self.nbytes:,} bytes, over "
                                f"memory_limit {memory_limit:,}", file=model.file, field="memory_limit",
                                hint=("raise the memory limit, or use a smaller model" if dtype.itemsize <= 4
                                      else "use float32, raise the memory limit, or use a smaller model"))

    @property
    def nbytes(self) -> int:
        """Bytes of every parameter and buffer in the engine's dtype."""
        return self.dtype.itemsize * sum(numel(s) for group in (self.params, self.buffers)
                                         for shapes in group.values() for s in shapes.values())

    def initial(self, weights: Mapping[str, Mapping[str, Any]], seed: int) -> tuple[Arrays, Arrays]:
        """``(params, buffers)``: the given ``weights`` where given (checked), the rest
        initialised from ``seed``; every array a fresh copy in the engine's dtype."""
        given = self.check(weights)
        params: Arrays = {}
        buffers: Arrays = {}
        for name in self.model.order:
            pshapes, bshapes = self.params.get(name, {}), self.buffers.get(name, {})
            if not (pshapes or bshapes):
                continue
            layer = self.model.layer(name)
            mine = given.get(name, {})
            own = {}
            for field, shape in pshapes.items():
                if field in mine:  # given: nothing drawn (each parameter has its own generator)
                    own[field] = _own(mine[field], self.dtype)
                    continue
                rng = np.random.default_rng([seed, name_hash(name), name_hash(field)])
                value = layer.type.initial_param(field, shape, self.fan_in[name], rng, layer.attrs)
                own[field] = np.asarray(value, dtype=self.dtype)  # a new array: no copy in the engine's dtype
            if own:
                params[name] = own
            if bshapes:
                buffers[name] = {field: _own(mine.get(field, layer.type.initial_buffer(field, shape)), self.dtype)
                                 for field, shape in bshapes.items()}
        return params, buffers

    def check(self, weights: Any) -> Arrays:
        """The user's weights ``{layer: {name: array}}`` validated against the layout (names,
        ties, shapes, numbers), as arrays; ArchstatError with a did-you-mean otherwise."""
        model = self.model
        if not isinstance(weights, Mapping):
            raise ArchstatError(f"weights must be a mapping {{layer: {{name: array}}}}, got "
                                f"{type(weights).__name__}", field="weights")
        out: Arrays = {}
        with_state = [n for n in model.order if n in self.params or n in self.buffers]
        for lname, fields in weights.items():
            if lname not in model.graph:
                raise ArchstatError("no such layer in the model", file=model.file, layer=str(lname),
                                    field="weights", hint=did_you_mean(str(lname), with_state))
            known = {**self.params.get(lname, {}), **self.buffers.get(lname, {})}
            ties = model.ties.get(lname, {})
            for field in fields if isinstance(fields, Mapping) else ():
                if field in ties:
                    raise ArchstatError(f"this layer uses the {field} of '{ties[field]}' (shares): give it there",
                                        file=model.file, layer=lname, field="weights")
            if not known:
                raise ArchstatError("this layer has no parameters or buffers", file=model.file,
                                    layer=lname, field="weights", hint=did_you_mean(lname, with_state))
            if not isinstance(fields, Mapping):
                raise ArchstatError(f"expected {{name: array}} with names {', '.join(known)}",
                                    file=model.file, layer=lname, field="weights")
            out[lname] = {}
            for field, value in fields.items():
                if field not in known:
                    raise ArchstatError(f"unknown parameter (this layer has: {', '.join(known)})",
                                        file=model.file, layer=lname, field=str(field),
                                        hint=did_you_mean(str(field), known))
                arr = np.asarray(value)
                if arr.shape != known[field]:
                    raise ArchstatError(f"expected shape {fmt_shape(known[field])}, got "
                                        f"{fmt_shape(arr.shape)}", file=model.file, layer=lname,
                                        field=field)
                if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
                    raise ArchstatError(f"expected numbers, got dtype {arr.dtype}", file=model.file,
                                        layer=lname, field=field)
                out[lname][field] = arr
        return out


def _own(value: Any, dtype: np.dtype) -> np.ndarray:
    """A fresh array of the dtype (never the caller's array: training updates it)."""
    return np.array(value, dtype=dtype, copy=True)
