"""The executable NumPy engine: functional kernels (re-exported from the layer registry)
and the graph executor.

Kernels are NCHW, as PyTorch: conv weights ``[C_out, C_in/groups, kH, kW]``, linear
``[out, in]``; they accept float32 and float64 and return the input's dtype. Each
``op(...)`` has an ``op_backward(dy, ...)`` returning the gradients of its inputs and
parameters. The kernels live beside their layer type in :mod:`archstat.layers` (one
home per layer type); each family module lists them in ``__kernels__``.
"""
from __future__ import annotations

import importlib

_FAMILIES = ("conv", "pool", "linear", "activation", "norm", "merge", "shape", "loss")


def _kernel_index() -> dict[str, str]:
    index = {}
    for family in _FAMILIES:
        try:
            module = importlib.import_module(f"archstat.layers.{family}")
        except ModuleNotFoundError:
            continue
        for name in getattr(module, "__kernels__", ()):
            index[name] = module.__name__
    return index


#: the engine's own submodules: ``from archstat.engine import im2col`` must import them
#: without first importing every layer family (which may be mid-import themselves)
_SUBMODULES = ("im2col", "executor", "memory")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    index = _kernel_index()
    if name in index:
        return getattr(importlib.import_module(index[name]), name)
    if name in ("run", "backward", "Executor"):
        from . import executor
        return getattr(executor, name)
    raise AttributeError(f"module 'archstat.engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_kernel_index()) | {"run", "backward", "Executor"})
