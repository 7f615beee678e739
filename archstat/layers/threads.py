"""Work outside BLAS on every core: NumPy's ufuncs release the GIL while they loop, so the
parts of one large elementwise pass (a ReLU, batch norm's per-channel affine pass) run side by
side in threads. BLAS already uses the cores for the GEMMs; this is for the passes between them.

A pass is split only when it moves at least :data:`MIN_BYTES` (handing a part to another
thread costs tens of microseconds) into one contiguous part per core. The threads are a pool
made on first use, per process (a forked child makes its own). Results do not depend on the
split: every element is computed by the same operations whichever thread computes it.

**Off by default** (one core): measured side by side on this project's 2-core machine
(``bench/models.py --ab threads``, 7-9 paired rounds, 2026-12-05), whole networks ran 0.99x
as fast *with* the second core: ResNet-50 and MobileNetV2 forward at batch 1 and 8, and a
ResNet-18 training step at batch 8. The passes are memory-bound, and OpenBLAS's threads still
spin on both cores after each GEMM. ``ARCHSTAT_THREADS=N`` (or :func:`set_cores`) turns it on
for N cores, for machines where that measures faster.

Kernels that make many passes over each cache block (the direct depthwise convolution: two
per tap) use every core by default (``compute=True``): measured the same way, MobileNetV2 and
EfficientNet-B0 ran 1.11x and 1.06x faster at batch 1 with it, and the same at batch 8. So do
sigmoid and SiLU (:func:`chunked`: four passes, one an ``exp``, over each cache-sized piece):
0.66 against 0.99 ns an element for SiLU on (8, 96, 112, 112) float32 with the second core.
``ARCHSTAT_THREADS`` and :func:`set_cores` cover them too.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

#: passes moving fewer bytes (read + written) stay in the calling thread
MIN_BYTES = 2 << 20

_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None
_UNREAD = object()
#: the cores ``ARCHSTAT_THREADS`` or :func:`set_cores` asked for; None: neither (the defaults)
_asked: Any = _UNREAD


def _setting() -> int | None:
    global _asked
    if _asked is _UNREAD:
        given = os.environ.get("ARCHSTAT_THREADS", "").strip()
        _asked = min(int(given), available()) if given.isdigit() and int(given) >= 1 else None
    return _asked


def cores() -> int:
    """How many cores memory-bound passes use: ``ARCHSTAT_THREADS`` (a positive integer, at
    most this process's cores) or :func:`set_cores`, else 1."""
    return _setting() or 1


def compute_cores() -> int:
    """How many cores cache-blocked kernels with many passes per block use (the depthwise
    convolution's taps): as :func:`cores` when asked, else every core of this process."""
    return _setting() or available()


def available() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


def set_cores(n: int | None) -> None:
    """Use ``n`` cores from now on for every kind of pass (None: the defaults again)."""
    global _asked, _pool
    _asked = _UNREAD if n is None else max(1, int(n))
    if _pool is not None and _pool_pid == os.getpid():
        _pool.shutdown(wait=True)
    _pool = None


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="archstat")
        _pool_pid = os.getpid()
    return _pool


def parts(total: int, nbytes: int, compute: bool = False) -> list[slice]:
    """Contiguous parts of ``range(total)`` to run side by side: one per core when the pass
    moves at least :data:`MIN_BYTES`, else the whole range. ``compute``: a kernel that
    works on each part from cache (:func:`compute_cores`), not a memory-bound pass."""
    k = min(compute_cores() if compute else cores(), total)
    if k < 2 or nbytes < MIN_BYTES:
        return [slice(0, total)]
    bounds = [total * i // k for i in range(k + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def each(fn: Callable[[slice], object], total: int, nbytes: int, compute: bool = False,
         split: Sequence[slice] | None = None) -> None:
    """``fn(part)`` for the :func:`parts` of ``range(total)`` (or the given ``split``), the
    first in the calling thread and the others in the pool, all under the caller's
    ``np.errstate`` (NumPy's error settings belong to a thread's context, which the pool's
    threads do not inherit); returns when all are done, raising the first error."""
    split = parts(total, nbytes, compute) if split is None else split
    if len(split) == 1:
        fn(split[0])
        return
    pool = _executor(max(available(), len(split)) - 1)
    caller = np.geterr()

    def as_caller(part: slice) -> None:
        with np.errstate(**caller):
            fn(part)
    futures = [pool.submit(as_caller, part) for part in split[1:]]
    error = None
    try:
        fn(split[0])
    except BaseException as exc:   # the others still finish before it propagates
        error = exc
    for f in futures:
        try:
            f.result()
        except BaseException as exc:
            error = error or exc
    if error is not None:
        raise error


def each_block(step: Callable[[Any, Any], object], x: np.ndarray, blocks: Sequence[Any], arrays: float,
               scratch: Callable[[int, int], Any] | None = None, compute: bool = False,
               ordered: bool = False) -> None:
    """``step(block, buffers)`` for every cache block of x (``(images, channels)`` slices,
    :func:`archstat.layers.registry.cache_blocks`), the blocks shared out as :func:`each`
    does. ``buffers = scratch(n, c)`` for a block of n images and c channels, made for every
    part before the parts start and again only when a block's extent changes (a last,
    smaller block); None without ``scratch``. ``arrays``: how many arrays of x's size the pass reads and writes.
    ``ordered``: every block in turn in the calling thread (for steps that add into one array)."""
    nbytes = int(arrays * x.nbytes)
    # blocks: a list, or CacheBlocks (never listed)
    split = [slice(0, len(blocks))] if ordered else parts(len(blocks), nbytes, compute)
    # each part's first buffers are made here, before any part starts, so that they are all
    # held at once whatever the threads' timing (the peak :func:`scratch_bytes` states)
    first = ({p.start: scratch(*x[blocks[p.start]].shape[:2]) for p in split if p.start < p.stop}
             if scratch is not None else {})

    def run(part: slice) -> None:
        made = first.pop(part.start, None)
        extent = None if made is None else x[blocks[part.start]].shape[:2]
        for j in range(part.start, part.stop):
            block = blocks[j]
            if scratch is not None and x[block].shape[:2] != extent:
                extent = x[block].shape[:2]
                made = None   # the old buffers go before the new ones come
                made = scratch(*extent)
            step(block, made)
    each(run, len(blocks), nbytes, compute, split)


def scratch_bytes(shape: Sequence[int], itemsize: int, blocks: Any, arrays: float,
                  per_block: Callable[[int, int], int], compute: bool = False) -> int:
    """The most bytes of scratch that :func:`each_block` can hold at once over an array of
    ``shape`` cut into ``blocks`` (a :class:`archstat.layers.registry.CacheBlocks`, never
    listed): for every part that runs side by side, ``per_block(n, c)`` of its largest
    block. Blocks are full-sized but for the last of the batch or of an image's channel
    bands, so that is the part's first block or, when the first is such a last one, the
    next (a full band of the next image): a bound, reached when the parts overlap in time,
    and exact when every part starts on a full block."""
    total = int(arrays * itemsize * math.prod(shape))
    n, c = shape[:2]

    def scratch_of(j: int) -> int:
        imgs, chans = blocks[j]
        return per_block(len(range(n)[imgs]), len(range(c)[chans]))
    held = 0
    for part in parts(blocks.count, total, compute):
        if part.start == part.stop:    # no blocks (an empty batch)
            continue
        held += max(scratch_of(j) for j in range(part.start, min(part.stop, part.start + 2)))
    return held


def flat(*arrays: np.ndarray) -> list[np.ndarray] | None:
    """The arrays as 1-D views (all C-contiguous and of one size), else None."""
    if not all(a.flags.c_contiguous for a in arrays) or len({a.size for a in arrays}) != 1:
        return None
    return [a.reshape(-1) for a in arrays]


def chunked(fn: Callable[..., object], arrays: Sequence[np.ndarray], chunk: int, scratch: int = 0,
            compute: bool = True) -> None:
    """``fn(*pieces, *temps)`` over pieces of at most ``chunk`` elements of same-shaped
    arrays (inputs and outputs alike), the :func:`parts` side by side: for elementwise
    kernels of several passes, which then run from cache. Each part has ``scratch``
    temporaries of ``chunk`` elements (of the first array's dtype; a shorter piece gets
    their first elements). Pieces are flat runs of C-contiguous arrays; arrays of another
    layout (a concatenation's slot, a strided view) are taken one index of the first axis
    at a time, down to rows, each as such, so that no temporary is ever larger."""
    views = flat(*arrays)
    if views is None:
        if arrays[0].ndim <= 1:        # strided rows: pieces of the rows themselves
            views = [np.asarray(a).reshape(-1) for a in arrays]
        else:
            for i in range(arrays[0].shape[0]):
                chunked(fn, [a[i] for a in arrays], chunk, scratch, compute)
            return
    total = views[0].size
    dtype = views[0].dtype

    def run(part: slice) -> None:
        temps = [np.empty(min(chunk, part.stop - part.start), dtype) for _ in range(scratch)]
        for start in range(part.start, part.stop, chunk):
            stop = min(start + chunk, part.stop)
            fn(*(v[start:stop] for v in views), *(t[:stop - start] for t in temps))
    each(run, total, sum(a.nbytes for a in arrays), compute)


def chunked_scratch_bytes(size: int, nbytes: int, chunk: int, itemsize: int, scratch: int,
                          compute: bool = True) -> int:
    """The bytes of temporaries :func:`chunked` holds at once over C-contiguous arrays of
    ``size`` elements moving ``nbytes`` in all: ``scratch`` pieces of up to ``chunk``
    elements per part, the parts side by side (for other layouts, a bound)."""
    return sum(scratch * min(chunk, p.stop - p.start) * itemsize for p in parts(size, nbytes, compute))
