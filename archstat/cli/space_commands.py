"""The design-space subcommands: space and search (their work is :mod:`archstat.space.commands`')."""
from __future__ import annotations

import argparse
import sys

from .common import (ProgressBar, arg_option, batch_dtype_options, formatter, int_at_least, non_negative_int,
                     positive_int, quiet_option)
from .examples import EXAMPLES


def add_parsers(sub) -> None:
    """Register space and search on ``sub`` (argparse's subparsers)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("spec", help="a spec file with a 'space:' section, or a zoo name (its family's space)")
    arg_option(common, help="fix one of the spec's args (one the space varies then stays fixed); repeatable")
    common.add_argument("--workers", "-j", type=positive_int, default=1, metavar="N",
                        help="local processes (default 1: this process)")
    common.add_argument("--scheduler", metavar="ADDRESS",
                        help="a Dask distributed scheduler (tcp://host:8786) instead of local processes "
                             "(pip install 'archstat[dask]')")
    common.add_argument("--seed", type=non_negative_int, default=0, help="decides every draw (default 0)")
    batch_dtype_options(common)
    common.add_argument("--output", "-o", metavar="FILE", help="write the rows: .csv, .parquet, .jsonl or .json")
    quiet_option(common)
    p = sub.add_parser("space", parents=[common], help="sample or enumerate a spec's design space: one row per "
                       "configuration, EDFs", description="Analyse many configurations of a spec's design space "
                       "(its 'space:' section): a grid or a seeded sample, on local processes or a Dask cluster.",
                       epilog=EXAMPLES["space"], formatter_class=formatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--grid", action="store_true", help="every configuration")
    what.add_argument("--samples", "-n", type=positive_int, metavar="N", help="N configurations drawn at random")
    p.add_argument("--levels", type=positive_int, metavar="N", help="grid points per continuous dimension")
    p.add_argument("--chunk", type=positive_int, metavar="N", help="configurations per task (default: ~16 tasks "
                   "per worker, at most 256)")
    p.add_argument("--checkpoint", metavar="FILE", help="the checkpoint file (default: the -o file + .checkpoint.csv)")
    p.add_argument("--resume", action="store_true", help="finish an interrupted run from its checkpoint")
    p.add_argument("--plot", metavar="FILE", help="EDFs of params, MACs, peak memory and a scatter (PNG, SVG, PDF); "
                   "with --measure also FILE_measured.png")
    p.add_argument("--measure", type=non_negative_int, default=0, metavar="N",
                   help="also time N configurations (the first valid rows) on the NumPy engine, on the workers")
    p.add_argument("--measure-repeat", type=positive_int, default=3, metavar="N",
                   help="timed forward passes per measured configuration (default 3, the median kept)")
    p.set_defaults(func=_cmd_space)
    p = sub.add_parser("search", parents=[common], help="search a design space under budgets (regularized "
                       "evolution)", description="Find the configurations of a spec's design space that do best "
                       "on an objective while meeting every budget.", epilog=EXAMPLES["search"],
                       formatter_class=formatter)
    p.add_argument("--budget", action="append", default=[], metavar="EXPR",
                   help="a limit such as 'macs<=400e6' or 'peak_activation_bytes<20M'; repeatable")
    p.add_argument("--objective", required=True, metavar="METRIC:max|min", help="what to maximise or minimise")
    p.add_argument("--population", type=int_at_least(2, "an integer >= 2"), default=64, metavar="P")
    p.add_argument("--sample-size", type=positive_int, metavar="S", help="tournament size (default P/4)")
    p.add_argument("--generations", type=non_negative_int, default=50, metavar="G",
                   help="rounds of P children after the first population (default 50)")
    p.add_argument("--batch-size", type=positive_int, default=8, metavar="B",
                   help="children evaluated together, in parallel (default 8; part of what the seed decides)")
    p.add_argument("--strategy", choices=("auto", "evolution", "exhaustive"), default="auto")
    p.add_argument("--top", type=positive_int, default=10, metavar="K", help="configurations to print (default 10)")
    p.set_defaults(func=_cmd_search)


def _cmd_space(args: argparse.Namespace) -> None:
    from ..space.commands import space_command
    _space_run(space_command, args)


def _cmd_search(args: argparse.Namespace) -> None:
    from ..space.commands import search_command
    _space_run(search_command, args)


def _space_run(command, args: argparse.Namespace) -> None:
    bar = ProgressBar(args.quiet)
    try:
        text, notes = command(args, bar)
    except KeyboardInterrupt as exc:
        bar.close()
        for note in getattr(exc, "notes", ()):
            print(note, file=sys.stderr)
        raise
    finally:
        bar.close()
    sys.stdout.write(text)
    for note in notes:
        print(note, file=sys.stderr)
