"""archstat: exact, explained analysis of CNN architectures, backed by a NumPy engine.

Quick use::

    import archstat
    m = archstat.load("vgg16")                   # a zoo name or a spec path; m.graph is a networkx.DiGraph
    a = archstat.analyze(m, batch=1, dtype="float32")
    a.layers                                     # pandas DataFrame, one row per layer
    a.totals["params"], a.totals["macs"]         # exact ints

Conventions: NCHW; a MAC is one multiply-accumulate; FLOPs are 2 per MAC plus elementwise
work, by each layer type's documented rule (``archstat layers``).
"""
from .analysis import Analysis, analyze
from .errors import ArchstatError
from .graph import Layer, Model, load

__version__ = "0.1.0"

__all__ = ["Analysis", "ArchstatError", "Layer", "Model", "analyze", "backward", "load", "profile", "run",
           "__version__"]


def __getattr__(name: str):
    # the engine (and the heavier parts of NumPy it uses) loads only when asked for
    if name in ("run", "backward", "Executor"):
        from .engine import executor
        return getattr(executor, name)
    if name == "profile":  # the profiler (and the engine it drives) loads only when asked for
        from .profiling import profile
        return profile
    raise AttributeError(f"module 'archstat' has no attribute {name!r}")
