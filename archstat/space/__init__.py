"""Design spaces: sample, enumerate, analyse and search whole families of architectures.

A spec declares a ``space:`` over its ``args`` (:mod:`archstat.space.declare`)::

    import archstat.space
    rows = archstat.space.sample("regnet", n=10_000, seed=0, workers=2)   # a DataFrame
    rows = archstat.space.grid("my_model.yaml")                             # every configuration
    found = archstat.space.search("regnet", budgets=["macs<=400e6"], objective="params:max",
                                  population=64, generations=20, seed=0)
    found.best, found.history

Modules: ``declare`` (the ``space:`` section), ``load`` (a :class:`Space` ready to send to
workers), ``plan`` (which configuration each row is), ``rows`` (one configuration -> one
row), ``runner`` (this process, local processes, Dask), ``checkpoint``, ``sweep`` (``sample`` and
``grid``), ``budget`` (budgets and objectives), ``evolve`` (``search``: regularized evolution, exhaustive
search), ``plots``, ``output`` (writing rows, the summary). The heavy parts load when used.
"""
from __future__ import annotations

__all__ = ["Dimension", "METRICS", "SearchResult", "Space", "evaluate", "grid", "load_space", "sample",
           "search", "zoo_points"]

_LAZY = {"Dimension": "declare", "METRICS": "rows", "evaluate": "rows", "Space": "load",
         "load_space": "load", "grid": "sweep", "sample": "sweep", "search": "evolve",
         "SearchResult": "evolve", "zoo_points": "output"}


def __getattr__(name: str):
    # archstat.spec imports archstat.space.declare: nothing heavier may load with the package
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'archstat.space' has no attribute {name!r}")
