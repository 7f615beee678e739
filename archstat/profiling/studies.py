"""Studies built from profiles: time and memory against batch size (:func:`sweep`), and
measured time against operation count across layers and models (:func:`ops_vs_time`,
the claim of Canziani, Paszke & Culurciello 2016, "An Analysis of Deep Neural Network
Models for Practical Applications", arXiv:1605.07678, Sec. 3 and Fig. 6: operation count
predicts inference time, close to linearly).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..analysis import analyze
from ..errors import ArchstatError
from ..graph import Model, load
from .calibration import Calibration, get_calibration
from .core import Profile, _check_counts, _json_safe, make_executor, run_profile
from .timing import Progress

#: one row per batch size in :attr:`Sweep.batches`
SWEEP_COLUMNS: dict[str, str] = {
    "batch": "batch size N",
    "step_ms": "forward (+ backward) per batch, median (ms)",
    "step_min_ms": "fastest pass (ms)", "step_max_ms": "slowest pass (ms)",
    "forward_ms": "forward per batch, median (ms)", "backward_ms": "backward per batch, median (ms)",
    "ms_per_image": "step_ms / batch", "images_per_s": "batch / step time",
    "gflops": "achieved forward GFLOP/s", "peak_pct": "gflops as a % of the GEMM peak",
    "predicted_peak_bytes": "the analysis' peak (see PROFILE_TOTALS)",
    "measured_peak_bytes": "tracemalloc peak + weights and inputs (see PROFILE_TOTALS)",
    "repeats_done": "complete timed passes",
    "other_cpu_share": "share of the CPUs other processes used while timing this batch size",
}


#: the fewest points whose fit a report will call a verdict on (below, it only gives the numbers)
MIN_VERDICT_POINTS = 8
_NAN_PAIR = (math.nan, math.nan)


@dataclass(frozen=True)
class Fit:
    """Least-squares line ``y = slope * x + intercept`` and its coefficient of determination
    ``r2 = 1 - SS_res / SS_tot`` over ``n`` points, with 95% confidence intervals: the slope's
    from Student's t with n - 2 degrees of freedom (n >= 3), R^2's from Fisher's z of the
    correlation (n >= 4); NaN where there are too few points."""

    slope: float
    intercept: float
    r2: float
    n: int
    slope_ci: tuple[float, float] = _NAN_PAIR
    r2_ci: tuple[float, float] = _NAN_PAIR

    def verdict(self, claim: str) -> str:
        """Whether the points support ``claim`` (a linear relation), or that they cannot say."""
        if self.n < MIN_VERDICT_POINTS or math.isnan(self.r2_ci[0]):
            return (f"{self.n} points cannot carry a verdict on {claim} "
                    f"({MIN_VERDICT_POINTS} or more are needed)")
        low, high = self.r2_ci
        if low >= 0.8:
            return f"the {self.n} points support {claim} (R^2 at least {low:.2f} at 95% confidence)"
        if high < 0.5:
            return f"the {self.n} points do not support {claim} (R^2 at most {high:.2f} at 95% confidence)"
        return f"the {self.n} points neither support nor refute {claim} (R^2 between {low:.2f} and {high:.2f})"


def _t975(df: int) -> float:
    """Student's t quantile for a two-sided 95% interval (Cornish-Fisher beyond the table)."""
    table = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
             2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
             2.052, 2.048, 2.045, 2.042)
    if df <= len(table):
        return table[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def linear_fit(x: Sequence[float], y: Sequence[float]) -> Fit:
    """Fit ``y = a x + b`` by least squares (NaN fit for fewer than 2 distinct x)."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(xs) | np.isnan(ys))
    xs, ys = xs[keep], ys[keep]
    n = int(len(xs))
    if n < 2 or np.ptp(xs) == 0:
        return Fit(math.nan, math.nan, math.nan, n)
    slope, intercept = np.polyfit(xs, ys, 1)
    ss_res = float(np.sum((ys - (slope * xs + intercept)) ** 2))
    ss_tot = float(np.sum((ys - ys.mean()) ** 2))
    r2 = 1 - ss_res / ss_tot if ss_tot > 0 else math.nan
    slope_ci = r2_ci = _NAN_PAIR
    if n >= 3:
        half = _t975(n - 2) * math.sqrt(ss_res / (n - 2) / float(np.sum((xs - xs.mean()) ** 2)))
        slope_ci = (float(slope) - half, float(slope) + half)
    if n >= 4 and not math.isnan(r2):
        r = math.copysign(math.sqrt(max(r2, 0.0)), slope)
        z, se = math.atanh(min(max(r, -0.999999999), 0.999999999)), 1 / math.sqrt(n - 3)
        ends = sorted(math.tanh(z + k * 1.959964 * se) for k in (-1, 1))
        # R^2 = r^2: the interval of r squared (0 when it spans zero)
        r2_ci = (0.0 if ends[0] < 0 < ends[1] else min(e * e for e in ends), max(e * e for e in ends))
    return Fit(float(slope), float(intercept), r2, n, slope_ci, r2_ci)


class Sweep:
    """What :func:`sweep` returns: ``batches`` (DataFrame, :data:`SWEEP_COLUMNS`, one row per
    batch measured), ``profiles`` ({batch: Profile}), ``model``, ``machine``, ``calibration``,
    ``mode``, ``interrupted``."""

    def __init__(self, model: Model, profiles: dict[int, Profile], calibration: Calibration, mode: str,
                 dtype: str, interrupted: bool):
        self.model, self.profiles, self.calibration = model, profiles, calibration
        self.machine, self.mode, self.dtype, self.interrupted = calibration.machine, mode, dtype, interrupted

    def rows(self) -> list[dict[str, Any]]:
        return [{k: (b if k == "batch" else p.totals[k]) for k in SWEEP_COLUMNS} for b, p in self.profiles.items()]

    @property
    def batches(self):
        import pandas as pd
        return pd.DataFrame(self.rows(), columns=list(SWEEP_COLUMNS))

    def to_dict(self) -> dict[str, Any]:
        cal = self.calibration.summary_dict()
        first = next(iter(self.profiles.values()), None)
        return _json_safe({"model": first.model_info() if first else {"name": self.model.name},
                           "mode": self.mode, "dtype": self.dtype, "interrupted": self.interrupted,
                           "machine": self.machine, "calibration": cal, "batches": self.rows()})


def sweep(model: Model | Any, batches: Sequence[int] = (1, 2, 4, 8, 16), *, repeat: int = 3, warmup: int = 1,
          backward: bool = False, dtype: str = "float32", input_shape: tuple[int, ...] | None = None,
          seed: int = 0, memory_limit: int | None = None, calibration: Calibration | None = None,
          progress: Progress | None = None, workspace: str | int | None = "auto") -> Sweep:
    """Profile one model at several batch sizes (same weights): time per image and memory.

    Every batch size is checked against ``memory_limit`` before anything runs (the first
    that does not fit is refused with the largest that does). Arguments as :func:`profile`.
    Ctrl-C keeps the batch sizes measured so far (the interrupted one included, partially).
    """
    batches = sorted(dict.fromkeys(batches))
    if not batches:
        raise ArchstatError("give at least one batch size", field="batches")
    for b in batches:
        _check_counts(batch=b)
    _check_counts(repeat=repeat, warmup=warmup)
    model = load(model)
    analyses = {b: analyze(model, batch=b, dtype=dtype, input_shape=input_shape) for b in batches}
    ex = make_executor(model, dtype, seed, memory_limit, batches, input_shape, backward, workspace=workspace)
    calibration = calibration or get_calibration(dtype, progress=progress)
    per_run = 1 + warmup + repeat
    total = per_run * len(batches)
    profiles: dict[int, Profile] = {}
    interrupted = False
    for i, b in enumerate(batches):
        p = run_profile(ex, analyses[b], calibration, repeat=repeat, warmup=warmup, backward=backward, seed=seed,
                        progress=progress, offset=i * per_run, total=total)
        calibration = p.calibration  # measured again if the cached roofs proved too low
        if p.totals["repeats_done"] or p.measurement.memory is not None:
            profiles[b] = p
        if p.interrupted:
            interrupted = True
            break
    return Sweep(model, profiles, calibration, "training" if backward else "inference", dtype, interrupted)


LAYER_KEYS = ["model", "name", "type", "family", "macs", "flops", "forward_ms", "bound"]


class OpsTime:
    """What :func:`ops_vs_time` returns.

    ``layers``: DataFrame, one row per layer with MACs (conv, linear), of every model:
    ``model, name, type, family, macs, flops, forward_ms, bound`` (roofline bound). ``models``: one row per model:
    ``model, macs, flops, forward_ms, ms_per_image, gflops``. ``fits``: ``{"layers": Fit,
    "compute-bound layers": Fit, "models": Fit}`` of forward time (ms) against MACs. Also ``profiles``, ``machine``,
    ``calibration``, ``batch``, ``interrupted``.
    """

    def __init__(self, profiles: list[Profile], calibration: Calibration, batch: int, interrupted: bool):
        self.profiles, self.calibration, self.batch, self.interrupted = profiles, calibration, batch, interrupted
        self.machine = calibration.machine
        self.layer_rows: list[dict[str, Any]] = []
        self.model_rows: list[dict[str, Any]] = []
        for p in profiles:
            for r in p.rows():
                if r["macs"] and not math.isnan(r["forward_ms"]):
                    self.layer_rows.append({"model": p.model.name, "name": r["name"], "type": r["type"],
                                            "family": r["family"], "macs": r["macs"],
                                            "flops": r["flops"], "forward_ms": r["forward_ms"],
                                            "bound": r["bound"]})
            t = p.totals
            if t["repeats_done"]:
                self.model_rows.append({"model": p.model.name, "macs": t["macs"], "flops": t["flops"],
                                        "forward_ms": t["forward_ms"], "ms_per_image": t["forward_ms"] / p.batch,
                                        "gflops": t["gflops"]})
        compute = [r for r in self.layer_rows if r["bound"] == "compute"]
        self.fits = {"layers": linear_fit([r["macs"] for r in self.layer_rows],
                                          [r["forward_ms"] for r in self.layer_rows]),
                     "compute-bound layers": linear_fit([r["macs"] for r in compute],
                                                        [r["forward_ms"] for r in compute]),
                     "models": linear_fit([r["macs"] for r in self.model_rows],
                                          [r["forward_ms"] for r in self.model_rows])}

    @property
    def layers(self):
        import pandas as pd
        return pd.DataFrame(self.layer_rows, columns=LAYER_KEYS)

    @property
    def models(self):
        import pandas as pd
        return pd.DataFrame(self.model_rows, columns=["model", "macs", "flops", "forward_ms", "ms_per_image",
                                                      "gflops"])

    def to_dict(self) -> dict[str, Any]:
        cal = self.calibration.summary_dict()
        return _json_safe({"batch": self.batch, "interrupted": self.interrupted, "machine": self.machine,
                           "calibration": cal, "models": self.model_rows, "layers": self.layer_rows,
                           "fits": {k: vars(f) for k, f in self.fits.items()}})


def ops_vs_time(models: Sequence[Model | Any], batch: int = 1, *, repeat: int = 3, warmup: int = 1,
                dtype: str = "float32", seed: int = 0, memory_limit: int | None = None,
                calibration: Calibration | None = None, progress: Progress | None = None,
                algorithm: str = "reference", workspace: str | int | None = "auto") -> OpsTime:
    """Measure forward time against MACs for every conv/linear layer of several models, and
    per model; fit a line to each (Canziani et al. 2016's operations-predict-time claim).

    ``models`` are Models, spec paths or mappings. Each is profiled at inference
    (:func:`profile` with ``memory=False``; ``algorithm`` and ``workspace`` as there). Plot the result with
    :func:`archstat.report.profile_plots.ops_vs_time`. Ctrl-C keeps the models done.
    """
    _check_counts(batch=batch, repeat=repeat, warmup=warmup)
    loaded = [load(m) for m in models]
    if not loaded:
        raise ArchstatError("give at least one model", field="models")
    analyses = [analyze(model, batch=batch, dtype=dtype) for model in loaded]  # shape errors first
    calibration = calibration or get_calibration(dtype, progress=progress)
    per_run = warmup + repeat
    profiles: list[Profile] = []
    interrupted = False
    for i, (model, analysis) in enumerate(zip(loaded, analyses)):
        # one executor (one set of weights) at a time; its guard refuses before any activation
        ex = make_executor(model, dtype, seed, memory_limit, [batch], None, False, algorithm, workspace)
        p = run_profile(ex, analysis, calibration, repeat=repeat, warmup=warmup, backward=False, seed=seed,
                        memory=False, progress=progress, offset=i * per_run, total=per_run * len(loaded))
        calibration = p.calibration  # measured again if the cached roofs proved too low
        del ex
        profiles.append(p)
        if p.interrupted:
            interrupted = True
            break
    return OpsTime(profiles, calibration, batch, interrupted)
