"""The roofline model per layer: arithmetic intensity, the attainable rate, the bound.

After S. Williams, A. Waterman, D. Patterson, "Roofline: an insightful visual performance
model for multicore architectures", CACM 52(4), 2009: a kernel of arithmetic intensity I
(FLOPs per byte of memory traffic) can reach at most

    attainable(I) = min(peak, I * bandwidth)                 GFLOP/s, with bandwidth in GB/s

It is *compute-bound* when I * bandwidth >= peak (I at or right of the ridge point
peak / bandwidth) and *memory-bound* otherwise. The roofs come from
:mod:`archstat.profiling.calibration` (np.matmul and np.copyto on this machine).

What is counted, exactly, from the analysis (never re-derived here):

* FLOPs: the analysis' ``flops`` column (2 per MAC plus the layer's elementwise work);
* bytes: the minimum traffic of the layer, each tensor read or written once, in the
  profiled dtype: every input's elements + parameters + buffers + the output's elements.
  Caches are ignored (a tensor that fits in cache is still counted), kernel workspace
  (im2col columns) is not counted, and an in-place or view layer still counts its output.
  So the intensity is the *best case* of the layer; the engine moves more.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..analysis import itemsize


@dataclass(frozen=True)
class Roofline:
    """Two roofs: ``peak_gflops`` (compute, GFLOP/s) and ``bandwidth_gbs`` (memory, GB/s)."""

    peak_gflops: float
    bandwidth_gbs: float

    @property
    def ridge(self) -> float:
        """Intensity (FLOP/byte) at which the roofs meet."""
        return self.peak_gflops / self.bandwidth_gbs

    def attainable(self, intensity: Any) -> Any:
        """``min(peak, intensity * bandwidth)`` in GFLOP/s (scalar or array)."""
        return np.minimum(self.peak_gflops, np.asarray(intensity, dtype=float) * self.bandwidth_gbs)

    def bound(self, intensity: float) -> str:
        """``'compute'`` when intensity * bandwidth reaches the peak, else ``'memory'``."""
        return "compute" if intensity * self.bandwidth_gbs >= self.peak_gflops else "memory"


def traffic_bytes(rows: Sequence[Mapping[str, Any]], dtype: str) -> list[int]:
    """Minimum bytes each layer moves: (inputs + params + buffers + output elements) x itemsize.

    ``rows`` are :meth:`archstat.analysis.Analysis.rows` records (in order, the input
    first); an input's element count is the ``activations`` of the row that produced it.
    The model input row moves nothing (it is not a layer): 0.
    """
    size = itemsize(dtype)
    elements = {r["name"]: r["activations"] for r in rows}
    out = []
    for r in rows:
        if not r["inputs"]:
            out.append(0)
            continue
        n = sum(elements[src] for src in r["inputs"]) + r["params"] + r["buffers"] + r["activations"]
        out.append(n * size)
    return out


def intensity(flops: int, nbytes: int) -> float:
    """Arithmetic intensity in FLOP/byte (0 for a layer that moves or computes nothing)."""
    return flops / nbytes if nbytes else 0.0
