"""The ``archstat`` command: argparse subcommands over the library.

This package is the only place that prints or exits. An :class:`ArchstatError` becomes one
line on stderr and exit code 2 (:class:`ExitCode`); a traceback from here is a bug. Each
group of subcommands registers its own parsers (``add_parsers``): :mod:`.analysis_commands`,
:mod:`.profile_commands`, :mod:`.space_commands`; :mod:`.common` holds what they share.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from ..errors import ArchstatError, ExitCode
from .common import Parser, blas_threads, formatter
from .examples import EXAMPLES

__all__ = ["PROG", "build_parser", "main", "run"]

PROG = "archstat"


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: the top level and every group's subcommands."""
    from . import analysis_commands, profile_commands, space_commands
    from ..version import __version__

    parser = Parser(prog=PROG, formatter_class=formatter,
                     description="Exact, explained analysis of CNN architectures: the model zoo by name, "
                                 "ONNX files, or your own YAML specs.",
                     epilog=EXAMPLES["main"])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    analysis_commands.add_parsers(sub)
    profile_commands.add_parsers(sub)
    space_commands.add_parsers(sub)
    parser.subcommands = dict(sub.choices)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (see :class:`ExitCode`)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the subcommand's own usage, not the top level's
        sub = parser.subcommands.get(args.command, parser)
        second_spec = args.command == "report" and not extra[0].startswith("-")
        more = "; 'report' takes one spec: 'archstat compare' sets several side by side" if second_spec else ""
        if extra[0].startswith("-"):
            from ..errors import did_you_mean
            hint = did_you_mean(extra[0].split("=")[0], sub.option_strings())
            if hint:
                sub.exit(ExitCode.USER_ERROR, f"{sub.prog}: error: unrecognized arguments: {' '.join(extra)}; "
                                              f"{hint} See '{sub.prog} --help'\n")
        sub.error(f"unrecognized arguments: {' '.join(extra)}{more}")
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return ExitCode.USER_ERROR
    try:
        with blas_threads(getattr(args, "threads", None)):
            args.func(args)
    except ArchstatError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return ExitCode.USER_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except MemoryError as exc:   # NumPy's _ArrayMemoryError too: an allocation the machine refused
        detail = str(exc).strip() or "an allocation failed"
        print(f"{PROG}: error: out of memory ({detail}); use a smaller batch or input, or keep "
              "--memory-limit on (the default) so that a run too large is refused before it starts",
              file=sys.stderr)
        return ExitCode.USER_ERROR
    except BrokenPipeError:
        # `archstat report ... | head`: the reader left; that is not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK
    return ExitCode.OK


def run() -> None:
    """Console-script entry point. Ctrl-C before a command starts (while the parser is built or
    the arguments read) exits 130 as it does later, with one line."""
    try:
        code = main()
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        code = ExitCode.INTERRUPTED
    sys.exit(code)
