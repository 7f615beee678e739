"""What this machine can do: its description, and its calibrated GEMM and memory peaks.

The roofline of a NumPy engine has two roofs, both measured here with NumPy itself:

* **compute**: the best ``np.matmul`` rate on a large square matrix product, in GFLOP/s,
  counting 2 n^3 FLOPs for an (n x n) @ (n x n) product (one multiply and one add per
  MAC, the convention of the analysis). This runs on every BLAS thread: it is what the
  engine's im2col GEMMs can reach at best, not the CPU's FMA peak (a C microbenchmark
  may be about 2x higher; see ``/work/shared/reference/perf-anchors.md``).
* **memory**: the best ``np.copyto`` rate between two large arrays, in GB/s (10^9 bytes),
  counting the bytes read plus the bytes written (2 x the array size, as STREAM's "copy"
  does; the write-allocate traffic of the destination is not counted). NumPy copies on
  one thread, so this is the bandwidth NumPy's own elementwise kernels can reach.

Both are the best of several runs (the fastest run is the one least disturbed by other
work on the machine). Results are cached as JSON under ``$XDG_CACHE_HOME/archstat/``
(``~/.cache/archstat/`` by default), one file per machine key: CPU model, usable cores,
the BLAS library (name, version, kernel architecture, thread count) and the NumPy
version, so that changing any of them calibrates afresh. OPENBLAS_* environment
variables are recorded through threadpoolctl's report of the kernel, never changed.
"""
from __future__ import annotations

import datetime as _dt
import gc
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import ArchstatError
from ..machine import cache_dir, machine_info, machine_key

#: bumped when the cache file's layout changes (older files are then ignored)
CACHE_VERSION = 1

#: full calibration: matrix side, bytes per copied array, minimum runs and seconds per figure
FULL = {"gemm_size": 2048, "copy_bytes": 256 * 2**20, "repeats": 10, "min_seconds": 1.5}
#: what ``profile`` does when nothing is cached: smaller and shorter, good to ~10-20 %
QUICK = {"gemm_size": 1024, "copy_bytes": 128 * 2**20, "repeats": 5, "min_seconds": 0.3}

Progress = Callable[[float, float, str], None]


# ------------------------------------------------------------------------ the machine

def load_average() -> float | None:
    """The 1-minute load average (runnable processes), or None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


class CpuWatch:
    """How much of the machine's CPU time *other* processes used while we measured.

    Reads the system's busy time (all CPUs, steal time of a virtual machine included) from
    ``/proc/stat`` and this process's own CPU time (``os.times``) at start and at
    :meth:`share`; other processes' share = (system busy - ours) / (wall time x CPUs).
    Near 0 on an idle machine; 0.5 means others took half the CPUs, so our timings are
    inflated. None where ``/proc/stat`` does not exist.

    The counters tick every 10 ms, too coarse for a window under :attr:`MIN_SECONDS`: a
    shorter measurement (a small model) is topped up by idling until the window is that
    long, so the reading is still the others' load, seen partly while we wait.
    """

    MIN_SECONDS = 0.25

    def __init__(self):
        self.start = _cpu_counters()

    def share(self) -> float | None:
        end = _cpu_counters()
        if self.start is None or end is None:
            return None
        seconds = end[0] - self.start[0]
        if seconds < self.MIN_SECONDS:
            time.sleep(self.MIN_SECONDS - seconds)
            end = _cpu_counters()
            seconds = end[0] - self.start[0]
        wall = seconds * (os.cpu_count() or 1)
        others = (end[1] - self.start[1]) - (end[2] - self.start[2])
        return round(min(max(others / wall, 0.0), 1.0), 3)


def _cpu_counters() -> tuple[float, float, float] | None:
    """(wall seconds, busy CPU seconds of the whole system, CPU seconds of this process)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    values = [int(v) for v in fields[1:9]]
    busy = sum(values) - values[3] - values[4]
    own = os.times()
    return time.monotonic(), busy / ticks, own.user + own.system


def describe_blas(machine: dict[str, Any]) -> str:
    """``'OpenBLAS 0.3.31 (Haswell kernel, 2 threads)'`` from :func:`machine_info`'s ``blas``."""
    blas = machine.get("blas") or {}
    if not blas:
        return "BLAS unknown (threadpoolctl found none)"
    name = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS"}.get(blas.get("internal_api"),
                                                                    str(blas.get("internal_api")))
    extra = [f"{blas['architecture']} kernel"] if blas.get("architecture") else []
    extra.append(f"{blas.get('num_threads')} thread{'s' if blas.get('num_threads') != 1 else ''}")
    return f"{name} {blas.get('version') or ''}".strip() + f" ({', '.join(extra)})"


# ------------------------------------------------------------------------ calibration

#: other processes' CPU share above which a run or a calibration is disturbed: a disturbed
#: calibration is used for the run that measured it but never cached
BUSY = 0.15
#: a layer measured above this share of the calibrated GEMM peak shows the roofs are too low
ABOVE_ROOF = 1.05


def above_roof(peak_pct: float) -> bool:
    """A rate at ``peak_pct`` percent of the GEMM peak is above the roofs (:data:`ABOVE_ROOF`);
    False for NaN (a layer without FLOPs or time)."""
    return peak_pct == peak_pct and peak_pct > 100 * ABOVE_ROOF

@dataclass
class Calibration:
    """Calibrated peaks of one machine (see the module docstring for what is counted).

    ``gemm_gflops`` maps a dtype name to the best ``np.matmul`` GFLOP/s; ``bandwidth_gbs``
    is the best ``np.copyto`` GB/s (read + write). ``source`` says where the numbers came
    from this time: ``'measured'`` or ``'cache'`` (then ``path`` is the file).
    """

    machine: dict[str, Any]
    gemm_gflops: dict[str, float]
    bandwidth_gbs: float
    gemm_size: int
    copy_bytes: int
    measured_at: str
    quick: bool = False
    seconds: float = 0.0
    source: str = "measured"
    path: str | None = None
    #: 1-minute load average just before measuring (other work lowers the figures)
    load_average: float | None = None
    #: share of the CPUs other processes used while measuring (see :class:`CpuWatch`)
    other_cpu_share: float | None = None
    runs: dict[str, list[float]] = field(default_factory=dict)
    #: why the calibration was not cached (None when it was, or was not asked to be)
    cache_note: str | None = None

    @property
    def disturbed(self) -> bool:
        """Other processes used more than :data:`BUSY` of the CPUs while it was measured."""
        return self.other_cpu_share is not None and self.other_cpu_share > BUSY

    def peak(self, dtype: str) -> float:
        """The GEMM roof in GFLOP/s for a dtype name."""
        try:
            return self.gemm_gflops[dtype]
        except KeyError:
            raise ArchstatError(f"no calibrated GEMM peak for {dtype}", field="dtype",
                                hint=f"run 'archstat calibrate --dtype {dtype}'") from None

    def roofline(self, dtype: str):
        """The :class:`~archstat.profiling.roofline.Roofline` of this machine for ``dtype``."""
        from .roofline import Roofline
        return Roofline(self.peak(dtype), self.bandwidth_gbs)

    def ridge(self, dtype: str) -> float:
        """Arithmetic intensity (FLOP/byte) where the two roofs meet (see Roofline.ridge)."""
        return self.roofline(dtype).ridge

    @property
    def key(self) -> str:
        return machine_key(self.machine)

    def to_dict(self) -> dict[str, Any]:
        return {"version": CACHE_VERSION, "key": self.key, **asdict(self)}

    def summary_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the raw runs and the machine (what a profile's JSON carries
        beside its own ``machine``)."""
        data = self.to_dict()
        data.pop("runs", None)
        data.pop("machine", None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Calibration":
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})


def cache_path(machine: dict[str, Any] | None = None) -> Path:
    """The cache file of this machine (or of ``machine``)."""
    return cache_dir() / f"calibration-{machine_key(machine or machine_info())}.json"


def load_calibration(machine: dict[str, Any] | None = None) -> Calibration | None:
    """The cached calibration of this machine, or None (missing, unreadable or outdated)."""
    machine = machine or machine_info()
    path = cache_path(machine)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != CACHE_VERSION or data.get("key") != machine_key(machine):
            return None
        cal = Calibration.from_dict(data)
        if not cal.gemm_gflops or not cal.bandwidth_gbs > 0:
            return None
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    cal.source, cal.path = "cache", str(path)
    return cal


def save_calibration(cal: Calibration, *, force: bool = False) -> Path | None:
    """Write the cache file atomically; None (and ``cal.cache_note`` says why) when the
    calibration was disturbed (unless ``force``) or the cache folder is not writable."""
    path = cache_path(cal.machine)
    if cal.disturbed and not force:
        cal.cache_note = (f"not cached: other processes used {100 * cal.other_cpu_share:.0f}% of the CPUs "
                          "while measuring; run 'archstat calibrate' again when the machine is idle "
                          "(or add --force to cache it anyway)")
        return None
    from ..outfile import write_file
    data = cal.to_dict()
    data.update(source="measured", path=None)
    try:
        write_file(path, json.dumps(data, indent=2) + "\n", field="calibration cache")
    except ArchstatError as exc:
        cal.cache_note = f"not cached: {exc}"
        return None
    cal.path, cal.cache_note = str(path), None
    return path


def discard_cached(cal: Calibration) -> bool:
    """Delete the cache file ``cal`` was read from, when it still holds that calibration (a
    layer ran above its roofs: they were measured too low); True when it was deleted."""
    if cal.source != "cache" or not cal.path:
        return False
    path = Path(cal.path)
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("measured_at") != cal.measured_at:
            return False  # replaced meanwhile by another run
        path.unlink()
    except (OSError, ValueError, AttributeError):
        return False
    return True


def calibrate(dtypes: Iterable[str] = ("float32", "float64"), *, quick: bool = False,
              gemm_size: int | None = None, copy_bytes: int | None = None, repeats: int | None = None,
              min_seconds: float | None = None, save: bool = True, force: bool = False,
              progress: Progress | None = None) -> Calibration:
    """Measure this machine's GEMM peak (per dtype) and memory bandwidth; cache the result.

    Parameters
    ----------
    dtypes : dtype names for the GEMM peak ('float32', 'float64').
    quick : use the smaller, shorter :data:`QUICK` settings instead of :data:`FULL`.
    gemm_size, copy_bytes, repeats, min_seconds : override the settings: matrix side n,
        bytes of each copied array, and each figure is the best of at least ``repeats``
        runs and of as many as fit in ``min_seconds``.
    save : write the cache file (see :func:`cache_path`), unless other processes used more than
        :data:`BUSY` of the CPUs meanwhile (then ``cache_note`` says so).
    force : cache it even then.
    progress : ``progress(done, total, label)`` callable, called between runs.

    Returns
    -------
    Calibration
    """
    settings = dict(QUICK if quick else FULL)
    for name, value in (("gemm_size", gemm_size), ("copy_bytes", copy_bytes), ("repeats", repeats),
                        ("min_seconds", min_seconds)):
        if value is not None:
            settings[name] = value
    dtypes = list(dict.fromkeys(dtypes))
    for dt in dtypes:
        if dt not in ("float32", "float64"):
            raise ArchstatError(f"can calibrate float32 or float64, not {dt!r}", field="dtype")
    load = load_average()
    watch = CpuWatch()
    start = time.perf_counter()
    total = len(dtypes) + 1
    runs: dict[str, list[float]] = {}
    gemm: dict[str, float] = {}
    for i, dt in enumerate(dtypes):
        label = f"np.matmul {settings['gemm_size']}x{settings['gemm_size']} {dt}"
        rates = _gemm_runs(settings["gemm_size"], dt, settings["repeats"], settings["min_seconds"],
                           _sub_progress(progress, i, total, label))
        runs[f"gemm_{dt}"] = rates
        gemm[dt] = max(rates)
    rates = _copy_runs(settings["copy_bytes"], settings["repeats"], settings["min_seconds"],
                       _sub_progress(progress, len(dtypes), total, "np.copyto"))
    runs["copy"] = rates
    cal = Calibration(machine=machine_info(), gemm_gflops=gemm, bandwidth_gbs=max(rates),
                      gemm_size=settings["gemm_size"], copy_bytes=settings["copy_bytes"],
                      measured_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                      quick=quick, seconds=time.perf_counter() - start, load_average=load,
                      other_cpu_share=watch.share(), runs=runs)
    if save:
        # keep the float32/float64 peaks measured before, unless re-measured now
        old = load_calibration(cal.machine)
        if old is not None:
            cal.gemm_gflops = {**{k: v for k, v in old.gemm_gflops.items() if k not in gemm}, **gemm}
        save_calibration(cal, force=force)
    return cal


def get_calibration(dtype: str = "float32", *, progress: Progress | None = None) -> Calibration:
    """The cached calibration when it has ``dtype``'s peak, else a quick one (then cached)."""
    cal = load_calibration()
    if cal is not None and dtype in cal.gemm_gflops:
        return cal
    if cal is not None:  # the bandwidth is cached: measure only the missing GEMM peak
        watch = CpuWatch()
        rates = _gemm_runs(QUICK["gemm_size"], dtype, QUICK["repeats"], QUICK["min_seconds"],
                           _sub_progress(progress, 0, 1, f"np.matmul {dtype}"))
        cal.gemm_gflops[dtype] = max(rates)
        cal.runs[f"gemm_{dtype}"] = rates
        cal.source = "measured"
        share = watch.share()
        if share is not None and share > BUSY:
            cal.cache_note = (f"not cached: other processes used {100 * share:.0f}% of the CPUs while the "
                              f"{dtype} peak was measured; run 'archstat calibrate' when the machine is idle")
        else:
            save_calibration(cal)
        return cal
    return calibrate((dtype,), quick=True, progress=progress)


def _sub_progress(progress: Progress | None, offset: int, total: int, label: str):
    if progress is None:
        return None
    return lambda frac: progress(offset + frac, total, label)


def _best_runs(run: Callable[[], float], repeats: int, min_seconds: float, step) -> list[float]:
    """Time ``run`` (returns seconds) at least ``repeats`` times and for ``min_seconds``."""
    times: list[float] = []
    spent = 0.0
    gc_was = gc.isenabled()
    gc.disable()
    try:
        run()  # warm-up: thread pools, page faults, caches
        while len(times) < repeats or (spent < min_seconds and len(times) < 50 * repeats):
            t = run()
            times.append(t)
            spent += t
            if step is not None:
                step(min(1.0, max(len(times) / repeats, spent / min_seconds if min_seconds else 1.0)))
    finally:
        if gc_was:
            gc.enable()
    return times


def _gemm_runs(n: int, dtype: str, repeats: int, min_seconds: float, step=None) -> list[float]:
    """GFLOP/s of each timed ``np.matmul(a, b, out=c)`` on (n x n) matrices: 2 n^3 / seconds."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.dtype(dtype).type)
    b = rng.standard_normal((n, n), dtype=np.dtype(dtype).type)
    c = np.empty_like(a)

    def run() -> float:
        t = time.perf_counter()
        np.matmul(a, b, out=c)
        return time.perf_counter() - t

    return [2 * n**3 / t / 1e9 for t in _best_runs(run, repeats, min_seconds, step)]


def _copy_runs(nbytes: int, repeats: int, min_seconds: float, step=None) -> list[float]:
    """GB/s of each timed ``np.copyto(dst, src)``: (bytes read + bytes written) / seconds."""
    src = np.ones(nbytes // 8, dtype=np.float64)  # np.ones touches every page before timing
    dst = np.zeros_like(src)
    dst[:] = 1.0

    def run() -> float:
        t = time.perf_counter()
        np.copyto(dst, src)
        return time.perf_counter() - t

    return [2 * src.nbytes / t / 1e9 for t in _best_runs(run, repeats, min_seconds, step)]
