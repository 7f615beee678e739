"""The measurement loop: per-layer wall-clock times through the executor's hooks, and the
peak memory of one untimed pass under tracemalloc.

A layer's forward time is the ``time.perf_counter`` interval between the executor's hook
calls before and after it (the input's hook opens the first interval), so it covers the
layer's kernel plus the executor's bookkeeping for it (freeing the tensors its
predecessor was the last reader of, a few dict operations); the hook's own work (the
progress report) is excluded. Backward times are the same between
:meth:`Executor.backward`'s hook calls, the first interval opening just before the call,
and include the accumulation of gradients at branch points. End-to-end times are the
whole ``forward``/``backward`` calls, so they also include input checks and casts.

The garbage collector is off during timed passes (as :mod:`timeit` does). Ctrl-C
(KeyboardInterrupt) stops the loop cleanly: everything measured up to then is kept and
the result says where it stopped.
"""
from __future__ import annotations

import gc
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ..spec import INPUT_NAME
from .calibration import CpuWatch

Progress = Callable[[float, float, str], None]


@dataclass
class Memory:
    """Peak memory of one pass, from tracemalloc (bytes newly allocated during the pass).

    ``peak`` is over the whole pass (forward, and backward in training mode); ``layers``
    maps each layer to the peak reached while it ran in the forward pass. Neither counts
    what was allocated before the pass (weights, the input, the output gradient).
    """

    peak: int
    layers: dict[str, int]


@dataclass
class Measurement:
    """Raw timings in seconds: per layer over the timed passes, and end to end per pass."""

    forward: dict[str, list[float]]
    backward: dict[str, list[float]]
    forward_total: list[float] = field(default_factory=list)
    backward_total: list[float] = field(default_factory=list)
    memory: Memory | None = None
    interrupted: bool = False
    #: what was running when Ctrl-C came ('memory', 'warm-up 1/1', 'repeat 3/5'), else None
    interrupted_at: str | None = None
    #: share of the CPUs other processes used during the timed passes (None: unknown)
    other_cpu_share: float | None = None

    @property
    def passes(self) -> int:
        """Complete timed passes."""
        return len(self.forward_total)


class _Clock:
    """Hook target: appends each layer's interval; reports progress between intervals."""

    __slots__ = ("last", "samples", "step", "done", "per_pass", "offset")

    def __init__(self, step: Callable[[float], None] | None, per_pass: int):
        self.last = 0.0
        self.samples: dict[str, list[float]] | None = None
        self.step = step
        self.done = 0
        self.per_pass = per_pass
        self.offset = 0.0

    def start(self) -> None:
        self.last = time.perf_counter()

    def hook(self, name: str, _value: Any, _live: Mapping[str, Any]) -> None:
        now = time.perf_counter()
        if name != INPUT_NAME:
            if self.samples is not None:
                self.samples[name].append(now - self.last)
            self.done += 1
            if self.step is not None:
                self.step(self.offset + self.done / self.per_pass)
        self.last = time.perf_counter()


def measure(ex, x: np.ndarray, *, train: bool, repeat: int, warmup: int, dy: Any = None,
            memory: bool = True, progress: Progress | None = None, offset: float = 0.0,
            total: float | None = None) -> Measurement:
    """Run ``ex`` on ``x``: one untimed tracemalloc pass (if ``memory``), ``warmup`` untimed
    passes, then ``repeat`` timed passes; each pass is ``forward`` and, when ``train``,
    ``backward(dy)``.

    ``progress(done, total, label)`` is called after every layer, ``done`` counted in
    passes from ``offset`` (so callers running several measurements can share one bar).
    """
    names = [n for n in ex.plans[bool(train)].order if n != INPUT_NAME]  # at inference: no training-only layers
    m = Measurement(forward={n: [] for n in names}, backward={n: [] for n in names})
    passes = [("memory", None)] if memory else []
    passes += [(f"warm-up {i + 1}/{warmup}", None) for i in range(warmup)]
    passes += [(f"repeat {i + 1}/{repeat}", i) for i in range(repeat)]
    total = float(total if total is not None else len(passes))
    label = passes[0][0]

    def step(done: float) -> None:
        progress(done, total, label)

    clock = _Clock(step if progress is not None else None, len(names) * (2 if train else 1))
    gc_was = gc.isenabled()
    watch = None
    try:
        for index, (label, timed) in enumerate(passes):
            clock.offset, clock.done = offset + index, 0
            if label == "memory":
                m.memory = _memory_pass(ex, x, train, dy, clock.hook)
                continue
            clock.samples = None
            if timed is not None:
                if watch is None:
                    watch = CpuWatch()
                gc.disable()
                clock.samples = m.forward
            t0 = time.perf_counter()
            clock.last = t0
            out = ex.forward(x, train=train, hook=clock.hook)
            t1 = time.perf_counter()
            del out
            if train:
                clock.samples = m.backward if timed is not None else None
                clock.start()
                t2 = clock.last
                ex.backward(dy, hook=clock.hook)
                t3 = time.perf_counter()
            if timed is not None:
                m.forward_total.append(t1 - t0)
                if train:
                    m.backward_total.append(t3 - t2)
            if gc_was:
                gc.enable()
    except KeyboardInterrupt:
        m.interrupted, m.interrupted_at = True, label
    finally:
        if gc_was:
            gc.enable()
    if watch is not None:
        m.other_cpu_share = watch.share()
    return m


def _memory_pass(ex, x: np.ndarray, train: bool, dy: Any, hook) -> Memory:
    """One pass under tracemalloc; the peak (and each forward layer's peak) above the start.

    NumPy reports its array buffers to tracemalloc, so this sees every activation, cache,
    gradient and kernel workspace the pass allocates through NumPy; BLAS's private thread
    buffers (allocated once, outside NumPy) are not seen.
    """
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        layers: dict[str, int] = {}
        worst = 0

        def record(name: str, value: Any, live: Mapping[str, Any]) -> None:
            nonlocal worst
            peak = tracemalloc.get_traced_memory()[1] - base
            worst = max(worst, peak)
            if name not in layers:  # forward (backward revisits the names)
                layers[name] = peak
            tracemalloc.reset_peak()
            hook(name, value, live)

        out = ex.forward(x, train=train, hook=record)
        del out
        if train:
            ex.backward(dy, hook=record)
        worst = max(worst, tracemalloc.get_traced_memory()[1] - base)
    finally:
        if started:
            tracemalloc.stop()
    layers.pop(INPUT_NAME, None)
    return Memory(peak=worst, layers=layers)
