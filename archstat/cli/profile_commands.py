"""The profiler's subcommands: calibrate, profile and sweep (they run the NumPy engine)."""
from __future__ import annotations

import argparse
import sys

from ..errors import ArchstatError
from .common import (MODEL_HELP, ProgressBar, emit, formatter, load_model, memory_limit_of, output_format,
                     output_options, positive_int, quiet_option, run_options, terminal_width, threads_option,
                     view_options)
from .examples import EXAMPLES


def add_parsers(sub) -> None:
    """Register the profiler's subcommands on ``sub`` (argparse's subparsers)."""
    p = sub.add_parser("calibrate", help="measure this machine's GEMM GFLOP/s and memory GB/s (cached)",
                       description="Measure the roofs of the profiler: the best np.matmul GFLOP/s and "
                                   "np.copyto GB/s on this machine, and cache them.",
                       epilog=EXAMPLES["calibrate"], formatter_class=formatter)
    p.add_argument("--dtype", nargs="+", default=["float32", "float64"], choices=("float32", "float64"),
                   help="GEMM peaks to measure (default: both)")
    p.add_argument("--quick", action="store_true", help="smaller matrices, fewer runs (what profile does "
                                                        "when nothing is cached)")
    p.add_argument("--show", action="store_true", help="print the cached calibration; measure nothing")
    p.add_argument("--force", action="store_true", help="cache the result even when other processes "
                                                        "disturbed the measurement")
    output_options(p, ("table", "json"))
    threads_option(p)
    quiet_option(p)
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("profile", help="measured time per layer, GFLOP/s, roofline and peak memory",
                       description="Run a spec through the NumPy engine and time every layer; compare "
                                   "with the analysis and the calibrated roofs.",
                       epilog=EXAMPLES["profile"], formatter_class=formatter)
    p.add_argument("specs", nargs="+", metavar="MODEL", help="zoo names or spec files (YAML or JSON)")
    p.add_argument("--batch", "-b", type=positive_int, default=1, metavar="N", help="batch size (default 1)")
    p.add_argument("--repeat", "-r", type=positive_int, default=5, metavar="N",
                   help="timed passes; times are their median (default 5)")
    run_options(p)
    p.add_argument("--algorithm", "--conv-algorithm", default="reference", metavar="NAME",
                   help="how the engine runs layers it can run several ways: 'reference' (the default: "
                        "im2col + GEMM convolutions), 'auto' (the fastest for each layer's shape on this "
                        "machine, measured once and cached), or an algorithm's name, used wherever it applies "
                        "(a wrong name lists them); the table's Algorithm column says what each layer ran")
    p.add_argument("--no-memory", dest="memory", action="store_false",
                   help="skip the untimed tracemalloc pass that measures peak memory")
    output_options(p, ("table", "md", "csv", "json", "html"))
    view_options(p)
    p.set_defaults(func=_cmd_profile)

    p = sub.add_parser("sweep", help="time per image and peak memory against batch size",
                       description="Profile one spec at several batch sizes (the same weights).",
                       epilog=EXAMPLES["sweep"], formatter_class=formatter)
    p.add_argument("spec", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--batch", "-b", type=positive_int, nargs="+", default=[1, 2, 4, 8, 16], metavar="N",
                   help="batch sizes (default 1 2 4 8 16)")
    p.add_argument("--repeat", "-r", type=positive_int, default=3, metavar="N",
                   help="timed passes per batch size (default 3)")
    run_options(p)
    output_options(p, ("table", "md", "csv", "json", "html"))
    view_options(p)
    p.set_defaults(func=_cmd_sweep)


def _cmd_calibrate(args: argparse.Namespace) -> None:
    from ..profiling.calibration import calibrate, load_calibration
    from ..report.profile_table import render_calibration

    if args.show:
        cal = load_calibration()
        if cal is None:
            raise ArchstatError("no calibration is cached for this machine", field="--show",
                                hint="run 'archstat calibrate'")
    else:
        bar = ProgressBar(args.quiet, "calibrating: ")
        try:
            cal = calibrate(args.dtype, quick=args.quick, force=args.force, progress=bar)
        finally:
            bar.close()
    emit(args, render_calibration(cal, output_format(args, "table")))


def _keep_memory() -> None:
    # the command line is the program: it may opt the process in to keeping freed memory,
    # which removes page faults from every timed pass (see archstat.engine.memory)
    from ..engine.memory import keep_freed_memory
    keep_freed_memory()


def _cmd_profile(args: argparse.Namespace) -> None:
    _keep_memory()
    from ..profiling import get_calibration, ops_vs_time, profile
    from ..report import plots, profile_plots
    from ..report.profile_table import render_ops_time, render_profile

    from ..engine.algorithms import check_choice

    fmt = output_format(args, "table")
    check_choice(args.algorithm, field="--algorithm")
    if args.plot:
        plots.check_plot_path(args.plot)
    models = [load_model(args, path) for path in args.specs]
    input_shape = tuple(args.input) if args.input else None
    limit = memory_limit_of(args.memory_limit)
    bar = ProgressBar(args.quiet)
    try:
        if len(models) == 1:
            bar.prefix = f"{models[0].name}: "
            result = profile(models[0], batch=args.batch, repeat=args.repeat, warmup=args.warmup,
                             backward=args.backward, dtype=args.dtype, input_shape=input_shape, seed=args.seed,
                             memory_limit=limit, memory=args.memory, progress=bar, algorithm=args.algorithm,
                             workspace=args.workspace)
        else:
            if args.backward or input_shape:
                raise ArchstatError("with several specs, profile measures inference at each spec's input size",
                                    field="--backward" if args.backward else "--input",
                                    hint="profile one spec at a time for --backward or --input")
            cal = get_calibration(args.dtype, progress=bar)
            per_model = args.warmup + args.repeat

            def progress(done: float, total: float, label: str) -> None:
                which = min(int(done // per_model) + 1, len(models))
                bar(done, total, f"{models[which - 1].name} ({which}/{len(models)}) {label}")

            result = ops_vs_time(models, batch=args.batch, repeat=args.repeat, warmup=args.warmup,
                                 dtype=args.dtype, seed=args.seed, memory_limit=limit, calibration=cal,
                                 progress=progress, algorithm=args.algorithm, workspace=args.workspace)
    finally:
        bar.close()
    emit(args, (render_profile if len(models) == 1 else render_ops_time)(result, fmt, width=terminal_width(args)))
    if args.plot:
        if len(models) == 1:
            paths = profile_plots.profile_figures(result, args.plot)
        else:
            paths = [profile_plots.ops_vs_time(result, args.plot)]
        for path in paths:
            print(f"wrote {path}", file=sys.stderr)
    if result.interrupted:  # printed what was measured; main() reports it and exits 130
        raise KeyboardInterrupt


def _cmd_sweep(args: argparse.Namespace) -> None:
    _keep_memory()
    from ..profiling import sweep
    from ..report import plots, sweep_plots
    from ..report.profile_table import render_sweep

    if args.plot:
        plots.check_plot_path(args.plot)
    model = load_model(args, args.spec)
    bar = ProgressBar(args.quiet, f"{model.name}: ")
    try:
        result = sweep(model, batches=args.batch, repeat=args.repeat, warmup=args.warmup, backward=args.backward,
                       dtype=args.dtype, input_shape=tuple(args.input) if args.input else None, seed=args.seed,
                       memory_limit=memory_limit_of(args.memory_limit), progress=bar, workspace=args.workspace)
    finally:
        bar.close()
    emit(args, render_sweep(result, output_format(args, "table"), width=terminal_width(args)))
    if args.plot and result.profiles:
        print(f"wrote {sweep_plots.batch_sweep(result, args.plot)}", file=sys.stderr)
    if result.interrupted:  # printed what was measured; main() reports it and exits 130
        raise KeyboardInterrupt
