"""archstat: exact, explained analysis of CNN architectures, backed by a NumPy engine.

Quick use::

    import archstat
    m = archstat.load("vgg16")                   # a zoo name or a spec path; m.graph is a networkx.DiGraph
    a = archstat.analyze(m, batch=1, dtype="float32")
    a.layers                                     # pandas DataFrame, one row per layer
    a.totals["params"], a.totals["macs"]         # exact ints
    m = archstat.load("model.onnx")              # an ONNX file (pip install 'archstat[onnx]')
    m = archstat.from_torch(module, input_shape=(3, 224, 224))   # a PyTorch module
    archstat.save(m, "model.yaml")               # a readable spec of any model

Conventions: NCHW; a MAC is one multiply-accumulate; FLOPs are 2 per MAC plus elementwise
work, by each layer type's documented rule (``archstat layers``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ArchstatError

if TYPE_CHECKING:  # imported on first use (see __getattr__): `python -m archstat` starts light
    from .analysis import Analysis, analyze
    from .graph import Layer, Model, load

from .version import __version__

__all__ = ["Analysis", "ArchstatError", "Layer", "Model", "analyze", "backward", "compare", "from_torch", "load",
           "profile", "run", "save", "__version__"]


def save(model, path):
    """Write a model's spec, readably (YAML, or JSON for a .json path); weights are left out.
    See :mod:`archstat.spec_writer`."""
    from .spec_writer import save as write
    return write(model, path)


def from_torch(module, input_shape, batch: int = 1, allow_unknown: bool = False) -> Model:
    """The Model of a PyTorch module (``torch`` is needed, imported here): traced, its modules
    and operations mapped onto archstat's layer types, named by their module paths, carrying
    the module's weights. ``input_shape`` is (C, H, W) of one sample."""
    from .graph import from_imported
    from .importers.torch_import import read_torch
    imported = read_torch(module, input_shape=tuple(input_shape), batch=batch, allow_unknown=allow_unknown)
    return from_imported(imported, label=type(module).__name__)


def __getattr__(name: str):
    # everything heavy loads on first use, so that importing the package (which `python -m
    # archstat` does before the command line can catch a Ctrl-C) costs next to nothing
    if name in ("Analysis", "analyze"):
        from . import analysis
        return getattr(analysis, name)
    if name in ("Layer", "Model", "load"):
        from . import graph
        return getattr(graph, name)
    if name in ("run", "backward", "Executor"):
        from .engine import executor
        return getattr(executor, name)
    if name in ("compare", "Comparison"):  # several models side by side (displays in a notebook)
        from .report import notebook
        return getattr(notebook, name)
    if name == "profile":  # the profiler (and the engine it drives) loads only when asked for
        from .profiling import profile
        return profile
    raise AttributeError(f"module 'archstat' has no attribute {name!r}")
