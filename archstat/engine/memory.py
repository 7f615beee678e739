"""Keep freed memory in the process (glibc ``mallopt``): an opt-in for programs that run
the engine again and again. The library never applies it on its own (it is process-wide);
``archstat profile``/``sweep`` and ``bench/engine.py`` do, and a caller may too.

Why: NumPy takes every array from ``malloc``. glibc serves a large request (over its mmap
threshold: 128 KiB at start, raised dynamically up to 32 MiB) with a fresh ``mmap`` and
hands it back with ``munmap`` on free; smaller freed blocks at the top of the heap are
trimmed back to the OS past ``M_TRIM_THRESHOLD``. Either way the next array of that size
starts from pages the kernel must fault in and zero again, on every call. On the VMs of
shared/reference/perf-anchors.md (which give freed memory back to the host), measured with
bench/engine.py (2026-11-25, 2 cores, one run each way, ARCHSTAT_KEEP_MEMORY=0 vs default):
conv forward at batch 8 went from 0.71 to 0.76 of the same-shape GEMM time summed over
VGG-16 (conv1_1 0.38 -> 0.65, conv1_2 0.52 -> 0.61, conv2_1 0.60 -> 0.69: the layers with
fresh 13-100 MB outputs), backward 0.66 -> 0.71; at batch 1 no change (0.76). Whole VGG-16
forward at batch 8: 334-338 -> 256-300 ms/image in two alternating pairs of runs, but no
clear change in another pair; PyTorch in the same process gains from it too.

What: ``M_MMAP_MAX = 0`` (no mmap'd chunks: every array comes from the heap, whose freed
space malloc reuses) and ``M_TRIM_THRESHOLD`` at 2 GiB (the largest value mallopt's int
takes: the heap's top is not given back below that). Raising ``M_MMAP_THRESHOLD`` instead
would only cover arrays under it (some glibc versions refuse values over 32 MiB);
``M_MMAP_MAX = 0`` covers every size.

The trade-off: the process keeps its peak heap (resident set stays at the largest pass's
footprint; glibc's free lists still reuse it, so it does not grow from call to call) and
large allocations can fragment the heap. For an engine that runs the same passes again
and again that is the point; the environment variable ``ARCHSTAT_KEEP_MEMORY=0`` (read at
the first call) turns the opt-in off, e.g. to compare. The setting is
process-wide (it also applies to allocations that are not the engine's) and is applied
only on glibc (Linux); elsewhere it is a no-op. Results are unchanged: only where the
bytes come from differs.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4

# whether mallopt was called, and whether it took: process-wide facts, hence module state
_done = False
#: whether the setting took (None until the first call)
active: bool | None = None


def keep_freed_memory() -> bool:
    """Apply the setting once per process (idempotent, cheap after the first call); returns
    whether it is active."""
    global _done, active
    if _done:
        return bool(active)
    _done = True
    active = False
    if os.environ.get("ARCHSTAT_KEEP_MEMORY", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl has no such tuning)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # the largest int: glibc takes it as a size_t, "never trim"
    active = bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1) and mallopt(M_MMAP_MAX, 0))
    return active
