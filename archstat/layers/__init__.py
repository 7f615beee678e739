"""The layer registry (see :mod:`archstat.layers.registry`)."""
from .registry import (REQUIRED, INFERRED, Field, LayerType, RunContext, Shape, Window, all_types,
                       get, numel, register)

__all__ = ["REQUIRED", "INFERRED", "Field", "LayerType", "RunContext", "Shape", "Window",
           "all_types", "get", "numel", "register"]
