"""Running a grid or a sample of a design space: rows in index order, checkpoints, ``--resume``,
and ``--measure`` (engine time of some configurations) on the same engines.

:func:`sample` and :func:`grid` return a pandas DataFrame, one row per configuration: ``index``,
the space's arguments, ``name`` (the model's name), ``zoo`` (the zoo's name when the
configuration is a named model), the metrics of :data:`archstat.space.rows.METRICS` as
exact integers (pandas' nullable ``Int64``; missing where the configuration is invalid) and
``error`` (empty, or the configuration's one-line error). ``frame.attrs`` holds ``errors`` (the
number of invalid configurations), ``resumed`` (rows read from a checkpoint), ``engine``,
``seconds`` and what ran (``spec``, ``mode``, ``seed``, ``levels``).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import ArchstatError
from . import checkpoint as ckpt
from .load import Space, load_space
from .plan import Plan, grid_plan, sample_plan
from .rows import MEASURE_COLUMNS, METRICS
from .runner import Task, execute

Progress = Callable[[float, float, str], None]


def columns(space: Space) -> dict[str, Any]:
    """The columns of a row and their dtypes, in order."""
    out: dict[str, Any] = {"index": "int64"}
    for d in space.dims:
        default = space.defaults[d.name]
        out[d.name] = ("int64" if d.integer else "float64" if isinstance(default, float) and not
                       isinstance(default, bool) else "bool" if isinstance(default, bool) else "str")
    out.update(name="str", zoo="str")
    out.update(dict.fromkeys(METRICS, "Int64"))
    out["error"] = "str"
    return out


def frame_of(rows: list[dict[str, Any]], space: Space):
    """Rows as a DataFrame with :func:`columns`' dtypes, sorted by index."""
    import pandas as pd

    dtypes = columns(space)
    data = {key: [r.get(key) for r in rows] for key in dtypes}
    frame = pd.DataFrame({key: pd.Series(values, dtype=_pandas_dtype(dtypes[key])) for key, values in data.items()})
    return frame.sort_values("index", kind="stable").reset_index(drop=True)


def _pandas_dtype(kind: str):
    return object if kind == "str" else kind


def run(plan: Plan, *, workers: int = 1, scheduler: Any = None, chunk: int | None = None,
        checkpoint: str | os.PathLike | None = None, resume: bool = False, progress: Progress | None = None,
        batch: int = 1, dtype: str = "float32", measure: int = 0, measure_options: Mapping[str, Any] | None = None):
    """Evaluate every row of ``plan`` (see the module docstring); optionally time ``measure`` of them."""

    import pandas as pd

    from ..analysis import itemsize

    itemsize(dtype)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ArchstatError(f"batch must be a positive integer, got {batch!r}", field="batch")
    if isinstance(measure, bool) or not isinstance(measure, int) or measure < 0:
        raise ArchstatError(f"measure must be a non-negative integer, got {measure!r}", field="--measure")
    space = plan.space
    dtypes = columns(space)
    signature = {**plan.signature(), "batch": batch, "dtype": dtype}
    done = None
    if checkpoint is not None:
        if resume:
            done = ckpt.read(checkpoint, signature, dtypes)
        elif Path(checkpoint).exists():
            raise ArchstatError("a checkpoint of an earlier run is there", file=str(checkpoint), field="--checkpoint",
                                hint="add --resume to finish that run, or remove the file to start again")
    elif resume:
        raise ArchstatError("--resume needs the checkpoint file to resume from", field="--resume",
                            hint="give --checkpoint FILE (the CLI's default is the -o file with .checkpoint.csv)")
    frames = [] if done is None or done.empty else [done]
    seen = set() if done is None else set(done["index"].tolist())
    todo = range(plan.n) if not seen else [i for i in range(plan.n) if i not in seen]
    total, count = plan.n, len(seen)
    fresh: list[dict[str, Any]] = []
    unsaved: list = []       # frames done since the last save
    throttle = ckpt.Throttle()
    started = time.monotonic()
    writer = None
    if checkpoint is not None:
        writer = ckpt.Writer(checkpoint, signature)
        writer.start(done if done is not None else frame_of([], space))   # also drops a torn last block

    def collect() -> None:
        if fresh:
            frames.append(frame_of(fresh, space))
            unsaved.append(frames[-1])
            fresh.clear()

    def save() -> None:
        collect()
        if writer is not None and unsaved:
            at = time.monotonic()
            block = unsaved[0] if len(unsaved) == 1 else pd.concat(unsaved, ignore_index=True)
            writer.append(block)
            unsaved.clear()
            throttle.wrote(at)

    def on_rows(rows: list[dict[str, Any]]) -> None:
        nonlocal count
        fresh.extend(rows)
        count += len(rows)
        if len(fresh) >= 4096:
            collect()
        if writer is not None and throttle.due():
            save()
        if progress is not None:
            progress(count, total, "analysing")

    engine = _engine_name(workers, scheduler)
    task = Task(space, plan, batch, dtype)
    try:
        execute(task, todo, on_rows, workers=workers, scheduler=scheduler, chunk=chunk)
    except BaseException:
        save()   # Ctrl-C or an error: what was done stays in the checkpoint
        raise
    save()
    frame = _concat(frames, space)
    elapsed = time.monotonic() - started
    if measure:
        frame = _measure(frame, space, measure, workers=workers, scheduler=scheduler, batch=batch, dtype=dtype,
                         options=measure_options or {}, progress=progress)
    if checkpoint is not None:
        try:
            os.remove(checkpoint)   # the run is complete: its rows are the result
        except OSError:
            pass
    frame.attrs.update(spec=space.label, mode=plan.mode, seed=plan.seed if plan.mode == "sample" else None,
                       levels=plan.levels, n=plan.n, errors=int((frame["error"] != "").sum()),
                       resumed=len(seen), engine=engine, seconds=elapsed,
                       no_checkpoint=bool(resume and done is None),
                       dims=[d.name for d in space.dims])
    return frame


def _concat(frames: list, space: Space):
    import pandas as pd

    if not frames:
        return frame_of([], space)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return frame.sort_values("index", kind="stable").reset_index(drop=True)


def _engine_name(workers: int, scheduler: Any) -> str:
    if scheduler is not None:
        return f"dask ({scheduler if isinstance(scheduler, str) else 'client'})"
    return "this process" if workers == 1 else f"{workers} local processes"


def _measure(frame, space: Space, n: int, *, workers: int, scheduler: Any, batch: int, dtype: str,
             options: Mapping[str, Any], progress: Progress | None):
    """Time the first ``n`` valid configurations (in row order) on the engine, on the workers."""
    import pandas as pd

    valid = frame[frame["error"] == ""].head(n)
    items = [(int(row["index"]), {d: _plain(row[d]) for d in space.names}) for _, row in valid.iterrows()]
    results: list[dict[str, Any]] = []

    def on_rows(rows):
        results.extend(rows)
        if progress is not None:
            progress(len(results), len(items), "measuring")

    opts = {"repeat": 3, "warmup": 1, "seed": 0, **options}
    if scheduler is None and workers > 1 and "threads" not in opts:
        # local workers time side by side: each gets its share of the cores, not all of them
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        opts["threads"] = max(1, cores // workers)
    execute(Task(space, None, batch, dtype, measure=opts), items, on_rows, workers=workers, scheduler=scheduler,
            chunk=1)
    measured = pd.DataFrame(results, columns=["index", *MEASURE_COLUMNS, "measure_error"])
    measured = measured.astype({"measured_ms": "float64", "measured_min_ms": "float64"})
    out = frame.merge(measured, on="index", how="left")
    for key in ("host", "cpu", "measure_error"):
        out[key] = out[key].fillna("")
    return out


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# ------------------------------------------------------------------------------ public API

def sample(spec: Any, n: int = 1000, *, seed: int = 0, workers: int = 1, scheduler: Any = None,
           args: Mapping[str, Any] | None = None, space: Mapping[str, Any] | None = None,
           chunk: int | None = None, checkpoint: str | os.PathLike | None = None, resume: bool = False,
           measure: int = 0, batch: int = 1, dtype: str = "float32", progress: Progress | None = None):
    """``n`` configurations of a spec's design space drawn with ``seed``, analysed: a DataFrame.

    Parameters
    ----------
    spec : zoo name, spec path, mapping or :class:`~archstat.space.load.Space`
    n, seed : how many rows, and the seed that decides them (row i from ``default_rng([seed, i])``).
    workers : local processes (1: this process). ``scheduler``: a Dask scheduler address
        (``tcp://host:8786``) or a ``distributed.Client``, instead.
    args : fix arguments (a varied one then leaves the space). ``space``: replace the spec's own.
    chunk : configurations per task (default: about 16 tasks per worker, at most 256).
    checkpoint, resume : a file of the rows done so far; ``resume=True`` continues from it.
    measure : time this many configurations (the first valid rows) on the NumPy engine, on the
        workers: columns ``measured_ms`` (median of 3 after 1 warm-up), ``measured_min_ms``,
        ``host``, ``cpu``, ``measure_error``.
    batch, dtype : of the analysis (and of the measurement).
    progress : ``progress(done, total, label)``.

    Returns
    -------
    pandas.DataFrame
        One row per configuration, in index order (see the module docstring); ``.attrs`` has
        ``errors``, ``resumed``, ``engine``, ``seconds``.

    Examples
    --------
    >>> rows = sample("regnet", n=1000, seed=0, workers=2)        # doctest: +SKIP
    >>> rows[rows.error == ""].macs.describe()                     # doctest: +SKIP
    """
    plan = sample_plan(load_space(spec, args, space=space), n, seed)
    return run(plan, workers=workers, scheduler=scheduler, chunk=chunk, checkpoint=checkpoint, resume=resume,
               progress=progress, batch=batch, dtype=dtype, measure=measure)


def grid(spec: Any, *, levels: int | None = None, workers: int = 1, scheduler: Any = None,
         args: Mapping[str, Any] | None = None, space: Mapping[str, Any] | None = None,
         chunk: int | None = None, checkpoint: str | os.PathLike | None = None, resume: bool = False,
         measure: int = 0, batch: int = 1, dtype: str = "float32", progress: Progress | None = None):
    """Every configuration of a spec's design space, analysed (``levels`` points of each
    continuous dimension): a DataFrame in ``itertools.product`` order (the last dimension varies
    fastest). The other parameters are :func:`sample`'s."""
    plan = grid_plan(load_space(spec, args, space=space), levels)
    return run(plan, workers=workers, scheduler=scheduler, chunk=chunk, checkpoint=checkpoint, resume=resume,
               progress=progress, batch=batch, dtype=dtype, measure=measure)
