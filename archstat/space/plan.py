"""Which configurations a run visits, as a pure function of the row's index.

A grid enumerates every combination of the dimensions' values (``levels`` points of a
continuous one) in ``itertools.product`` order: the last dimension varies fastest. A sample
draws row ``i`` from its own generator, ``numpy.random.default_rng([seed, i])``, each dimension
in the space's order (draws are independent, with replacement: a small discrete space repeats
configurations). Either way a worker computes the configurations of its chunk from the indices
alone, so the rows are the same, in the same order, whatever the number of workers, the chunk
size or the machine that runs them, and a resumed run continues exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import ArchstatError
from .load import Space

#: a run may have at most this many rows: they are held in memory as one DataFrame (about 1 GB
#: per 10 million rows of a seven-dimensional space)
MAX_ROWS = 50_000_000


@dataclass(frozen=True)
class Plan:
    """What to visit: ``mode`` 'grid' or 'sample', ``n`` rows, ``seed`` (sample), ``levels``
    (grid points per continuous dimension)."""

    space: Space
    mode: str
    n: int
    seed: int = 0
    levels: int | None = None

    def config(self, index: int) -> dict[str, Any]:
        """The configuration of row ``index``."""
        if self.mode == "grid":
            out = {}
            for d, values in zip(reversed(self.space.dims), reversed(self._grid_values())):
                index, k = divmod(index, len(values))
                out[d.name] = values[k]
            return {name: out[name] for name in self.space.names}
        import numpy as np
        rng = np.random.default_rng([self.seed, index])
        return {d.name: d.draw(rng) for d in self.space.dims}

    def _grid_values(self) -> list[tuple[Any, ...]]:
        cache = self.__dict__.get("_values")
        if cache is None:
            cache = [d.levels(self.levels) for d in self.space.dims]
            object.__setattr__(self, "_values", cache)
        return cache

    def signature(self) -> dict[str, Any]:
        return {"mode": self.mode, "n": self.n, "seed": self.seed if self.mode == "sample" else None,
                "levels": self.levels, "space": self.space.signature()}


def grid_plan(space: Space, levels: int | None = None) -> Plan:
    """Every configuration of ``space`` (``levels`` points of each continuous dimension)."""
    if levels is not None and (isinstance(levels, bool) or not isinstance(levels, int) or levels < 1):
        raise ArchstatError(f"levels must be a positive integer, got {levels!r}", field="levels")
    try:
        n = math.prod(len(d.levels(levels)) for d in space.dims)
    except ArchstatError as exc:
        raise exc.with_context(file=space.label)
    if n > MAX_ROWS:
        raise ArchstatError(f"the grid has {n:,} configurations (at most {MAX_ROWS:,})", file=space.label,
                            field="space", hint="sample the space instead (--samples N), or fix some args (--arg)")
    return Plan(space, "grid", n, 0, levels)


def sample_plan(space: Space, n: int, seed: int = 0) -> Plan:
    """``n`` configurations drawn from ``space`` with ``seed``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ArchstatError(f"the number of samples must be a positive integer, got {n!r}", field="samples")
    if n > MAX_ROWS:
        raise ArchstatError(f"{n:,} samples is more than {MAX_ROWS:,} (the rows are held in memory)",
                            field="samples", hint="run several samples with different seeds")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ArchstatError(f"the seed must be a non-negative integer, got {seed!r}", field="seed")
    return Plan(space, "sample", n, seed, None)
