"""The profiler: measured per-layer times through the NumPy engine, achieved throughput,
the roofline per layer, batch sweeps and operations-vs-time across models.

Quick use::

    import archstat
    p = archstat.profile("alexnet_lecture", batch=8, repeat=5, backward=True)
    p.layers[["name", "forward_ms", "backward_ms", "gflops", "intensity", "bound", "share"]]
    p.totals["images_per_s"], p.totals["measured_peak_bytes"], p.totals["predicted_peak_bytes"]

    from archstat.profiling import sweep, ops_vs_time, calibrate
    s = sweep("specs/resnet18.yaml", batches=[1, 2, 4, 8])       # s.batches: DataFrame
    o = ops_vs_time(["alexnet_lecture", "vgg16"])   # o.fits["layers"].r2

Modules: :mod:`.calibration` (machine description, GEMM and memory roofs, cache),
:mod:`.timing` (the measurement loop, tracemalloc pass, Ctrl-C), :mod:`.roofline`
(intensity, attainable rate, bound), :mod:`.core` (``profile``), :mod:`.studies`
(``sweep``, ``ops_vs_time``, ``linear_fit``). The package is called ``profiling`` and
not ``profile`` so that importing it never shadows the function ``archstat.profile``.
"""
from ..machine import machine_info
from .calibration import Calibration, calibrate, get_calibration, load_calibration
from .core import PROFILE_COLUMNS, PROFILE_TOTALS, Profile, profile
from .roofline import Roofline, intensity, traffic_bytes
from .studies import SWEEP_COLUMNS, Fit, OpsTime, Sweep, linear_fit, ops_vs_time, sweep

__all__ = ["Calibration", "Fit", "OpsTime", "PROFILE_COLUMNS", "PROFILE_TOTALS", "Profile", "Roofline",
           "SWEEP_COLUMNS", "Sweep", "calibrate", "get_calibration", "intensity", "linear_fit",
           "load_calibration", "machine_info", "ops_vs_time", "profile", "sweep", "traffic_bytes"]
