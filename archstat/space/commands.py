"""The work of ``archstat space`` and ``archstat search`` (the CLI's options are parsed in
:mod:`archstat.cli`, which prints what these return: a report for standard output and notes for
standard error)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from ..errors import ArchstatError
from .output import check_rows_path, search_summary, summary, write_rows, zoo_points

Progress = Callable[[float, float, str], None]


def checkpoint_path(args: argparse.Namespace) -> str | None:
    """--checkpoint, or beside -o: ``rows.csv`` -> ``rows.csv.checkpoint.csv``."""
    if args.checkpoint:
        return args.checkpoint
    if args.output and args.output != "-":
        return str(args.output) + ".checkpoint.csv"
    return None


def space_command(args: argparse.Namespace, progress: Progress | None) -> tuple[str, list[str]]:
    """Run ``archstat space``: returns (summary, notes)."""
    from ..report.plots import check_plot_path
    from .load import load_space
    from .plan import grid_plan, sample_plan
    from .sweep import run

    if args.output:
        check_rows_path(args.output)
    if args.plot:
        check_plot_path(args.plot)
    if args.levels is not None and not args.grid:
        raise ArchstatError("--levels sets the grid's points per continuous dimension: give it with --grid",
                            field="--levels")
    if args.resume and not checkpoint_path(args):
        raise ArchstatError("--resume needs the checkpoint of the run: give the same -o FILE (or --checkpoint FILE)",
                            field="--resume")
    space = load_space(args.spec, dict(args.arg) or None)
    plan = grid_plan(space, args.levels) if args.grid else sample_plan(space, args.samples, args.seed)
    ckpt = checkpoint_path(args)
    notes: list[str] = []
    try:
        frame = run(plan, workers=args.workers, scheduler=args.scheduler, chunk=args.chunk, checkpoint=ckpt,
                    resume=args.resume, progress=progress, batch=args.batch, dtype=args.dtype, measure=args.measure,
                    measure_options={"repeat": args.measure_repeat})
    except KeyboardInterrupt:
        if ckpt:
            notes.append(f"the rows done so far are in {ckpt}: run the same command with --resume to finish")
        raise _Interrupted(notes) from None
    if frame.attrs.get("no_checkpoint"):
        notes.append(f"--resume: there was no checkpoint at {ckpt}, so the run started from the beginning")
    points = zoo_points(space, batch=args.batch, dtype=args.dtype)
    if args.output:
        path, note = write_rows(frame, args.output)
        if note:
            notes.append(note)
        if str(path) != "-":
            notes.append(f"wrote {path} ({len(frame):,} rows)")
    if args.plot:
        from .plots import measured_figure, space_figure
        title = _title(space)
        notes.append(f"wrote {space_figure(frame, args.plot, title=title, points=points)}")
        if args.measure and "measured_ms" in frame and frame["measured_ms"].notna().any():
            path = Path(args.plot)
            measured = path.with_name(path.stem + "_measured" + path.suffix)
            notes.append(f"wrote {measured_figure(frame, measured, title=title)}")
    text = summary(frame, space, points)
    return ("" if args.output == "-" else text), notes


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what the user needs to know to resume."""

    def __init__(self, notes: list[str]):
        super().__init__()
        self.notes = notes


def _title(space) -> str:
    family = {"regnet_x": "RegNet", "regnet_y": "RegNet", "efficientnet": "EfficientNet"}.get(space.family)
    return f"{family or space.family or Path(space.label).stem} design space"


def search_command(args: argparse.Namespace, progress: Progress | None) -> tuple[str, list[str]]:
    """Run ``archstat search``: returns (the best configurations, notes)."""
    from .evolve import search

    if args.output:
        check_rows_path(args.output)
    result = search(args.spec, args.budget, args.objective, population=args.population,
                    sample_size=args.sample_size, generations=args.generations, seed=args.seed,
                    strategy=args.strategy, batch_size=args.batch_size, top=args.top, workers=args.workers,
                    scheduler=args.scheduler, args=dict(args.arg) or None, batch=args.batch, dtype=args.dtype,
                    progress=progress)
    notes = []
    if args.output:
        path, note = write_rows(result.history, args.output)
        notes += [n for n in (note, f"wrote {path} (every step of the search)") if n]
    if result.best.empty:
        hist = result.history
        closest = []
        for b in result.budgets:
            seen = hist[b.metric].dropna()
            if len(seen):
                best = seen.min() if b.op in ("<=", "<") else seen.max()
                closest.append(f"{b.metric}: {'lowest' if b.op in ('<=', '<') else 'highest'} seen {best:,}")
        raise ArchstatError(f"none of the {len(hist):,} configurations searched meets every budget "
                            f"({', '.join(map(str, result.budgets))})" + (f"; {'; '.join(closest)}" if closest else ""),
                            field="--budget", hint="loosen a budget, or search longer (--generations)")
    return search_summary(result), notes
