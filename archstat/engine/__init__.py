"""The executable NumPy engine: functional kernels (re-exported from the layer registry)
and the graph executor.

Kernels are NCHW, as PyTorch: conv weights ``[C_out, C_in/groups, kH, kW]``, linear
``[out, in]``; they accept float32 and float64 and return the input's dtype. Each
``op(...)`` has an ``op_backward(dy, ...)`` returning the gradients of its inputs and
parameters. The kernels live beside their layer type in :mod:`archstat.layers` (one
home per layer type), each marked with :func:`archstat.layers.registry.kernel`.
"""
from __future__ import annotations

import importlib

#: the engine's own submodules
_SUBMODULES = ("executor", "memory")


def _kernels() -> dict:
    from ..layers.registry import kernels
    return kernels()


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    found = _kernels().get(name)
    if found is not None:
        return found
    if name in ("run", "backward", "Executor"):
        from . import executor
        return getattr(executor, name)
    raise AttributeError(f"module 'archstat.engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_kernels()) | {"run", "backward", "Executor"})
