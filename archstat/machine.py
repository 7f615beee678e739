"""This machine: what it is (CPU, cores, memory, BLAS and its threads, versions), a short key of
what decides its speed, and the folder where archstat caches what it measured on it.

Below the engine and the profiler, which both cache per machine: the calibrated roofs
(:mod:`archstat.profiling.calibration`) and the algorithm chosen for each layer shape
(:mod:`archstat.engine.algorithms`).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np


def machine_info() -> dict[str, Any]:
    """Describe this machine: CPU model, cores, memory, BLAS and its threads, versions.

    ``blas`` is threadpoolctl's report of the BLAS NumPy loaded (``internal_api`` such as
    ``openblas``, its ``version``, the kernel ``architecture`` it chose and ``num_threads``).
    """
    import threadpoolctl

    blas = [info for info in threadpoolctl.threadpool_info() if info.get("user_api") == "blas"]
    blas_info = {k: blas[0].get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                                             "threading_layer")} if blas else {}
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return {"cpu": _cpu_model(), "cores": cores, "logical_cpus": os.cpu_count(),
            "memory_bytes": physical_memory(), "system": f"{platform.system()} {platform.release()}",
            "machine": platform.machine(), "python": platform.python_version(), "numpy": np.__version__,
            "blas": blas_info}


def machine_key(machine: dict[str, Any]) -> str:
    """A short hash of what decides the peaks: CPU, cores, BLAS (+ kernel, threads), NumPy."""
    blas = machine.get("blas", {})
    parts = {"cpu": machine.get("cpu"), "cores": machine.get("cores"), "numpy": machine.get("numpy"),
             "blas": [blas.get(k) for k in ("internal_api", "version", "architecture", "num_threads")]}
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/archstat`` (``~/.cache/archstat`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "archstat"
