"""Engines that evaluate configurations in chunks: this process, a pool of local processes (the
default for ``workers > 1``), or a Dask distributed cluster (``scheduler``, imported only then).

Every engine runs :func:`work` on chunks of items (a row index, or ``(index, configuration)``)
and hands each finished chunk's rows to ``on_rows`` in the parent, in completion order; the
caller puts them in index order. A worker that dies (killed, out of memory, a crash in a native
library) loses no configuration: its unfinished chunks are submitted again to a fresh pool (Dask
reschedules them itself); a chunk that keeps failing is split into single configurations, a
configuration that was running when a worker died runs again alone (so that the blame is exact),
and one that kills its worker every time becomes an error row saying so.
"""
from __future__ import annotations

import math
import multiprocessing
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..errors import ArchstatError
from .load import Space
from .plan import Plan
from .rows import evaluate, measure

#: attempts of a chunk before it is split, and of a single configuration before it is an error row
CHUNK_ATTEMPTS = 2
ITEM_ATTEMPTS = 3
#: seconds to wait for a Dask scheduler
SCHEDULER_TIMEOUT = 10.0

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Task:
    """What a worker needs for a chunk: the space, the plan that turns indices into
    configurations (None when items carry their configuration), the analysis' batch and dtype,
    and ``measure`` (options of :func:`archstat.space.rows.measure`) to time instead of analyse."""

    space: Space
    plan: Plan | None = None
    batch: int = 1
    dtype: str = "float32"
    measure: dict[str, Any] | None = field(default=None)


def work(task: Task, items: Sequence[Any]) -> Rows:
    """Evaluate one chunk (runs on a worker). The collector stays paused for the whole chunk:
    each configuration's objects are freed by reference counting, and the young collection that
    every load and analysis would otherwise pay on its way out (~0.4 ms each) is paid once."""
    from ..graph import paused_gc

    with paused_gc():
        return _work(task, items)


def _work(task: Task, items: Sequence[Any]) -> Rows:
    rows = []
    for item in items:
        if isinstance(item, int):
            index, config = item, task.plan.config(item)
        else:
            index, config = item
        if task.measure is not None:
            rows.append({"index": index, **measure(task.space, config, batch=task.batch, dtype=task.dtype,
                                                   **task.measure)})
        else:
            rows.append(evaluate(task.space, config, index=index, batch=task.batch, dtype=task.dtype))
    return rows


def _died_row(task: Task, item: Any, attempts: int) -> dict[str, Any]:
    index, config = (item, task.plan.config(item)) if isinstance(item, int) else item
    text = f"the worker process died evaluating this configuration ({attempts} times)"
    if task.measure is not None:
        return {"index": index, "measured_ms": None, "measured_min_ms": None, "host": "", "cpu": "",
                "measure_error": text}
    from .rows import METRICS
    return {"index": index, **config, "name": "", "zoo": "", **dict.fromkeys(METRICS), "error": text}


def chunks_of(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """``items`` in parts of ``size``; a ``range`` stays ranges (a million row indices cost nothing)."""
    if isinstance(items, range):
        return [items[k:k + size] for k in range(0, len(items), size)]
    return [tuple(items[k:k + size]) for k in range(0, len(items), size)]


def default_chunk(n: int, workers: int) -> int:
    """Chunks small enough to balance the load (about 16 per worker) and to lose little when
    interrupted, large enough that sending them costs nothing next to the analysis."""
    return max(1, min(256, math.ceil(n / (max(workers, 1) * 16))))


def execute(task: Task, items: Sequence[Any], on_rows: Callable[[Rows], None], *, workers: int = 1,
            scheduler: Any = None, chunk: int | None = None, timeout: float | None = None) -> None:
    """Evaluate ``items`` with the chosen engine, calling ``on_rows`` per finished chunk."""
    with Engine(workers, scheduler, timeout) as engine:
        engine.run(task, items, on_rows, chunk)


class Engine:
    """Workers kept for several runs (a search's steps): ``with Engine(workers, scheduler) as e:
    e.run(task, items, on_rows)``. One worker is this process; more are a local process pool
    (started on first use, started again when a worker dies); a scheduler is a Dask cluster."""

    def __init__(self, workers: int = 1, scheduler: Any = None, timeout: float | None = None):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ArchstatError(f"workers must be a positive integer, got {workers!r}", field="workers")
        if scheduler is not None and workers > 1:
            raise ArchstatError("--workers sets local processes; with --scheduler the cluster's workers run the "
                                "chunks", field="--workers", hint="drop one of the two")
        self.workers = workers
        self.scheduler = scheduler
        self.timeout = timeout
        self.client = None
        self._own_client = False
        self._pool = None

    def __enter__(self) -> "Engine":
        if self.scheduler is not None:
            self.client, self._own_client = connect(self.scheduler, self.timeout)
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if self._pool is not None:
            interrupted = kind is not None
            self._pool.shutdown(wait=not interrupted, cancel_futures=interrupted)
            self._pool = None
        if self.client is not None and self._own_client:
            self.client.close()
        self.client = None

    def run(self, task: Task, items: Sequence[Any], on_rows: Callable[[Rows], None],
            chunk: int | None = None) -> None:
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
            raise ArchstatError(f"the chunk size must be a positive integer, got {chunk!r}", field="chunk")
        if not items:
            return
        if self.scheduler is not None:
            if self.client is None:
                raise RuntimeError("Engine.run outside its with block")
            _dask(self.client, task, items, on_rows, chunk)
        elif self.workers == 1:
            for part in chunks_of(items, chunk or 64):
                on_rows(work(task, part))
        else:
            self._local(task, items, on_rows, chunk or default_chunk(len(items), self.workers))

    def _local(self, task: Task, items: Sequence[Any], on_rows: Callable[[Rows], None], size: int) -> None:
        pending = chunks_of(items, size)
        attempts: Counter = Counter()
        suspects: list[tuple[Any, ...]] = []   # single items that were running when a worker died
        while pending or suspects:
            # a suspect runs alone, so that a worker's death is its own; the others run in parallel
            batch = pending if pending else [suspects.pop(0)]
            pending = []
            failed = self._submit_all(task, batch, on_rows)
            for part in failed:
                attempts[part] += 1
                if len(part) > 1:
                    if attempts[part] >= CHUNK_ATTEMPTS:
                        pending.extend((item,) for item in part)
                    else:
                        pending.append(part)
                elif len(batch) > 1:
                    suspects.append(part)
                elif attempts[part] >= ITEM_ATTEMPTS:
                    on_rows([_died_row(task, part[0], attempts[part])])
                else:
                    suspects.insert(0, part)

    def _submit_all(self, task: Task, parts: list[tuple[Any, ...]], on_rows: Callable[[Rows], None]):
        """Run ``parts`` on the pool; returns the parts lost to a worker that died."""
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=_context())
        futures = {self._pool.submit(work, task, part): part for part in parts}
        failed = []
        for future in as_completed(futures):
            try:
                rows = future.result()
            except BrokenProcessPool:
                failed.append(futures[future])
                continue
            on_rows(rows)
        if failed:   # the pool is broken: a fresh one runs what it lost
            self._pool.shutdown(wait=True)
            self._pool = None
        return failed


def _context():
    # fork starts a worker in milliseconds with archstat already imported; elsewhere spawn
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def connect(scheduler: Any, timeout: float | None = None):
    """A ``distributed.Client`` for an address (``tcp://host:8786``), or the Client given."""
    timeout = timeout or SCHEDULER_TIMEOUT
    try:
        import distributed
    except ImportError:
        raise ArchstatError("--scheduler needs Dask distributed, which is not installed", field="--scheduler",
                            hint="pip install 'archstat[dask]' (or 'dask[distributed]')") from None
    if isinstance(scheduler, distributed.Client):
        return scheduler, False
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ArchstatError(f"expected a scheduler address such as tcp://host:8786, got {scheduler!r}",
                            field="--scheduler")
    try:
        client = distributed.Client(scheduler, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise ArchstatError(f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s ({detail})",
                            field="--scheduler",
                            hint="start one with 'dask scheduler' and workers with 'dask worker ADDRESS', "
                                 "or drop --scheduler to use local processes (--workers N)") from None
    return client, True


def _dask(client, task: Task, items: Sequence[Any], on_rows: Callable[[Rows], None], chunk: int | None) -> None:
    from distributed import as_completed

    try:
        nworkers = max(1, len(client.scheduler_info().get("workers", {})))
    except Exception:  # noqa: BLE001 - only a hint for the chunk size
        nworkers = 1
    size = chunk or max(1, min(1000, math.ceil(len(items) / (nworkers * 8))))
    pending = chunks_of(items, size)
    attempts: Counter = Counter()
    [remote_task] = client.scatter([task], broadcast=True, hash=False)
    while pending:
        futures = {client.submit(work, remote_task, part, pure=False, retries=1): part for part in pending}
        pending = []
        try:
            for future in as_completed(futures, loop=client.loop):
                part = futures[future]
                try:
                    rows = future.result()
                except Exception as exc:   # noqa: BLE001 - KilledWorker and friends: the worker died
                    if isinstance(exc, ArchstatError):
                        raise
                    attempts[part] += 1
                    if len(part) == 1 and attempts[part] >= ITEM_ATTEMPTS:
                        on_rows([_died_row(task, part[0], attempts[part])])
                    elif len(part) > 1 and attempts[part] >= CHUNK_ATTEMPTS:
                        pending.extend((item,) for item in part)
                    else:
                        pending.append(part)
                    continue
                on_rows(rows)
        except BaseException:
            client.cancel(list(futures))
            raise
