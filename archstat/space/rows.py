"""One configuration of a design space -> one row: its arguments, then the analysis' metrics
(:data:`METRICS`), or its error.

The metrics are :func:`archstat.analyze`'s totals, read by name (nothing is recomputed here);
the output receptive field is the analysis' ``rf_size`` of the model's output (the largest
over several outputs). A configuration that does not build (a size that goes to zero, a
channel count that does not divide) is a row whose ``error`` is the :class:`ArchstatError`'s
one line and whose metrics are missing; anything else that goes wrong in one configuration is
recorded the same way, prefixed ``internal error:`` (a bug to report), so that one bad
configuration never stops a sweep of a million.
"""
from __future__ import annotations

import functools
import platform
import socket
import time
from typing import Any, Mapping

from ..errors import ArchstatError

#: the metric columns of a row, and what each is (``analysis.totals`` keys, and the output's RF)
METRICS = {
    "params": "trainable parameters",
    "macs": "multiply-accumulates of one forward pass (batch 1 unless asked)",
    "flops": "floating-point operations of one forward pass: 2 per MAC plus elementwise work",
    "peak_activation_bytes": "peak of the live activations over the execution order (liveness plan)",
    "forward_memory_bytes": "CS231n forward memory: the input plus every layer's new output storage",
    "layers": "layers of the model (the input not counted)",
    "rf_h": "receptive field of the output, in input pixels (height)",
    "rf_w": "receptive field of the output, in input pixels (width)",
}
#: the columns --measure adds
MEASURE_COLUMNS = ("measured_ms", "measured_min_ms", "host", "cpu")


def evaluate(space, config: Mapping[str, Any], *, index: int = 0, batch: int = 1,
             dtype: str = "float32") -> dict[str, Any]:
    """The row of one configuration of ``space`` (:class:`archstat.space.load.Space`)."""
    from ..analysis import analyze

    row: dict[str, Any] = {"index": index, **config, "name": "", "zoo": ""}
    try:
        model = space.model(config)
        analysis = analyze(model, batch=batch, dtype=dtype)
    except ArchstatError as exc:
        return {**row, **dict.fromkeys(METRICS), "error": str(exc)}
    except RecursionError:
        return {**row, **dict.fromkeys(METRICS), "error": "internal error: too deeply nested"}
    except Exception as exc:  # noqa: BLE001 - one configuration must not stop a sweep
        return {**row, **dict.fromkeys(METRICS), "error": f"internal error: {type(exc).__name__}: {exc}"}
    totals = analysis.totals
    names = analysis.column("name")
    sizes = dict(zip(names, analysis.column("rf_size")))
    outputs = list(model.outputs) or [names[-1]]
    rf = [sizes[o] for o in outputs]
    row.update(name=model.name, zoo=model.zoo_name or "")
    for key in METRICS:
        if key in totals:
            row[key] = totals[key]
    row["rf_h"] = max(r[0] for r in rf)
    row["rf_w"] = max(r[1] for r in rf)
    row["error"] = ""
    return row


@functools.lru_cache(maxsize=1)
def _machine() -> tuple[str, str]:
    from ..machine import machine_info
    return socket.gethostname(), machine_info().get("cpu") or platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """Where a measurement ran: host name and CPU model (:func:`archstat.machine.machine_info`)."""
    host, cpu = _machine()
    return {"host": host, "cpu": cpu}


def measure(space, config: Mapping[str, Any], *, batch: int = 1, dtype: str = "float32", repeat: int = 3,
            warmup: int = 1, seed: int = 0, memory_limit: int | None = None,
            threads: int | None = None) -> dict[str, Any]:
    """Time one configuration's forward pass on the NumPy engine (inference): the median and the
    fastest of ``repeat`` timed passes after ``warmup`` untimed ones, in milliseconds, and the
    machine it ran on. ``threads`` limits the BLAS threads (local workers share the cores). An error (the model does not fit ``memory_limit``, by default 80% of this
    machine's memory, checked before anything is allocated) is returned as text."""
    import numpy as np

    from ..engine.executor import Executor

    out: dict[str, Any] = {"measured_ms": None, "measured_min_ms": None, **machine(), "measure_error": ""}
    if memory_limit is None:   # as the CLI's profile: refuse, before allocating, a run over 80% of the memory
        from ..machine import physical_memory
        total = physical_memory()
        memory_limit = None if total is None else total * 4 // 5
    if threads is not None:   # workers sharing a machine: each BLAS its share of the cores
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=threads):
            return measure(space, config, batch=batch, dtype=dtype, repeat=repeat, warmup=warmup, seed=seed,
                           memory_limit=memory_limit)
    try:
        model = space.model(config)
        ex = Executor(model, seed=seed, dtype=dtype, memory_limit=memory_limit)
        shape = (batch, *model.input_shape)
        x = np.random.default_rng(seed).standard_normal(shape).astype(ex.dtype)
        times = []
        for k in range(warmup + repeat):
            start = time.perf_counter()
            ex.forward(x, keep_cache=False)
            if k >= warmup:
                times.append(time.perf_counter() - start)
    except ArchstatError as exc:
        out["measure_error"] = str(exc)
        return out
    except MemoryError:
        out["measure_error"] = "out of memory"
        return out
    times.sort()
    out["measured_ms"] = 1e3 * times[len(times) // 2]
    out["measured_min_ms"] = 1e3 * times[0]
    return out
