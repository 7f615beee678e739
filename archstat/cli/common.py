"""What the subcommands share: the parser class and help formatter, argument types, the
options several commands take (--arg, --batch, --dtype, --format/-o, --columns, the profiler's
run options), writing a command's output, loading the model a command names, the progress bar.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Sequence

from ..errors import ArchstatError, ExitCode


def formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors say which subcommand's --help to read (with a did-you-mean),
    and the parser tells its subcommands and options (argparse keeps them private)."""

    #: the subcommands' parsers by name (set by :func:`archstat.cli.build_parser`)
    subcommands: dict[str, "Parser"] = {}

    def actions(self) -> list[argparse.Action]:
        """Every argument and option of this parser, in the order they were added."""
        return list(self._actions)

    def option_strings(self) -> list[str]:
        return [o for a in self._actions for o in a.option_strings]

    def error(self, message: str):  # noqa: D401 - argparse API
        # one line, as every other error: what is wrong, a did-you-mean for a mistyped choice
        # (a subcommand, a --format), and where the usage is
        import re
        from ..errors import did_you_mean
        choice = re.search(r"invalid choice: '(.*?)' \(choose from (.*)\)", message)
        if choice:
            hint = did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
            if hint:
                self.exit(ExitCode.USER_ERROR, f"{self.prog}: error: {message}; {hint} See '{self.prog} --help'\n")
        self.exit(ExitCode.USER_ERROR, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


MODEL_HELP = "a zoo name (see 'archstat zoo') or a spec file (YAML or JSON)"


def load_model(args: argparse.Namespace, source: str):
    """The model a command names: a zoo name, a spec file, or a foreign file (.onnx), the last
    with the command's --input (sizes the file leaves open) and --allow-unknown."""
    from ..graph import load

    shape = tuple(args.input) if getattr(args, "input", None) else None
    return load(source, dict(getattr(args, "arg", ())) or None, input_shape=shape,
                allow_unknown=getattr(args, "allow_unknown", False))


def unknown_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-unknown", action="store_true",
                   help="import the nodes of a foreign file (.onnx) that archstat has no layer type for as "
                        "layers that are not counted (listed in the report), instead of refusing the file")


def batch_dtype_options(p: argparse.ArgumentParser) -> None:
    """--batch and --dtype (the element type memory is counted in) of the analysing commands."""
    p.add_argument("--batch", "-b", type=positive_int, default=1, metavar="N", help="batch size (default 1)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16", "float64"),
                   help="element type for memory figures (default float32)")


def analysis_options(p: argparse.ArgumentParser, with_input: bool = True) -> None:
    arg_option(p)
    batch_dtype_options(p)
    if with_input:
        p.add_argument("--input", type=positive_int, nargs="+", metavar="DIM",
                       help="override the spec's input size: C H W (e.g. 3 448 448)")
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "momentum", "adam"),
                   help="optimizer state counted in the training-memory estimate (default sgd)")
    unknown_option(p)


def output_options(p: argparse.ArgumentParser, formats: Sequence[str]) -> None:
    p.add_argument("--format", "-f", choices=formats, default=None,
                   help=f"output format (default: from the -o suffix, else {formats[0]})")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(formats=tuple(formats))


def view_options(p: argparse.ArgumentParser, depth: bool = False) -> None:
    """--columns (and --depth): how the terminal table is laid out."""
    p.add_argument("--columns", type=int_at_least(40, "a width of 40 to 10000 characters", 10000), metavar="N",
                   help="fit the table to N characters (default: the terminal's width, or $COLUMNS; no limit "
                        "when writing to a file or pipe)")
    if depth:
        p.add_argument("--depth", type=int_at_least(1, "a depth of 1 to 100", 100), metavar="N",
                       help="one row per block: layers summed by the first N parts of their dotted names "
                            "(features.denseblock1 at 2), like torchinfo's depth (table, md, html)")


def terminal_width(args: argparse.Namespace) -> int | None:
    """The width the terminal table fits: --columns, else $COLUMNS, else the terminal's when
    standard output is one; None (no limit) for a file or a pipe."""
    if getattr(args, "columns", None):
        return args.columns
    if args.output:
        return None
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return max(int(env), 40)
    try:
        if sys.stdout.isatty():
            return max(shutil.get_terminal_size().columns, 40)
    except (AttributeError, ValueError, OSError):
        pass
    return None


def spec_arg(text: str) -> tuple[str, object]:
    from ..spec_io import parse_value

    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), parse_value(value)


def int_at_least(minimum: int, what: str, maximum: int | None = None):
    """An argparse type: an integer >= ``minimum`` and <= ``maximum`` (``what`` names it)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


positive_int = int_at_least(1, "a positive integer")


non_negative_int = int_at_least(0, "an integer >= 0")


SUFFIX_FORMATS = {".md": "md", ".markdown": "md", ".csv": "csv", ".json": "json", ".html": "html",
                   ".htm": "html", ".txt": "table"}


def output_format(args: argparse.Namespace, default: str) -> str:
    if args.format:
        return args.format
    if args.output:
        suffix = Path(args.output).suffix.lower()
        formats = getattr(args, "formats", tuple(SUFFIX_FORMATS.values()))
        if SUFFIX_FORMATS.get(suffix) in formats:
            return SUFFIX_FORMATS[suffix]
        if suffix in SUFFIX_FORMATS:
            raise ArchstatError(f"this command does not write {SUFFIX_FORMATS[suffix]} (the suffix {suffix!r})",
                                field="--output", file=str(args.output),
                                hint=f"it writes {', '.join(formats)}: choose a suffix for one of them, "
                                     "or give --format")
        if suffix:  # x.pdf, x.png: text under a name that promises something else
            raise ArchstatError(f"cannot tell a report format from the suffix {suffix!r}", field="--output",
                                file=str(args.output),
                                hint=f"name the file {', '.join(sorted(set(SUFFIX_FORMATS)))}, or give "
                                     "--format explicitly")
    return default


def emit(args: argparse.Namespace, text: str) -> None:
    if not args.output:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            raise
        except UnicodeEncodeError:
            raise ArchstatError("the report has characters this terminal cannot encode",
                                hint="write it to a file with -o, or set PYTHONIOENCODING=utf-8") from None
        except OSError as exc:
            raise ArchstatError(f"cannot write to standard output ({exc.strerror or exc})") from None
        return
    from ..outfile import write_file
    path = write_file(args.output, text, field="--output")
    if str(path) != "-":
        print(f"wrote {path}", file=sys.stderr)


def run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by profile and sweep."""
    arg_option(p)
    p.add_argument("--warmup", "-w", type=non_negative_int, default=1, metavar="N",
                   help="untimed passes before timing (default 1)")
    p.add_argument("--backward", action="store_true", help="also time the backward pass (a training step)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="the engine's compute type (default float32)")
    p.add_argument("--input", type=positive_int, nargs="+", metavar="DIM",
                   help="override the spec's input size: C H W")
    p.add_argument("--seed", type=non_negative_int, default=0, help="weights and input seed (default 0)")
    p.add_argument("--memory-limit", type=byte_size, default="auto", metavar="SIZE",
                   help="refuse, before allocating, a run predicted to need more (e.g. 4GB, 512MB; "
                        "'none'; default 'auto': 80%% of physical memory)")
    p.add_argument("--workspace", type=byte_size, default="auto", metavar="SIZE",
                   help="cap on each convolution's work buffers at inference (im2col's columns, Winograd's "
                        "tiles): 'auto' (the default: what keeps its step under the activations' peak, at least "
                        "a tenth of it), 'none' (every kernel's default blocks, sometimes faster) or a size "
                        "such as 4MB")
    p.add_argument("--plot", metavar="FILE", help="also draw the figures (FILE.png, FILE.svg or FILE.pdf)")
    unknown_option(p)
    threads_option(p)
    quiet_option(p)


def threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", "-t", type=int_at_least(1, "a thread count from 1 to 1024", 1024), metavar="N",
                   help="BLAS threads (default: the BLAS's own, usually one per core); 1 keeps timings "
                        "steady on a busy machine. Calibrations are kept per thread count")


def blas_threads(n: int | None):
    """A context that limits the BLAS to ``n`` threads (threadpoolctl), or changes nothing."""
    if n is None:
        import contextlib
        return contextlib.nullcontext()
    import numpy  # noqa: F401  (loads the BLAS: threadpoolctl limits only loaded libraries)
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=n, user_api="blas")


def quiet_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar on standard error")


SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10,
               "mib": 2**20, "gib": 2**30, "tib": 2**40}


def byte_size(text: str) -> int | str | None:
    """Bytes from '4GB', '512MiB', '1e9' or a plain number; 'none' (no limit); 'auto'."""
    import re

    low = text.strip().lower()
    if low in ("none", "auto"):
        return None if low == "none" else "auto"
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)", low)
    if (not match or match.group(2) not in SIZE_UNITS or not 0 < float(match.group(1)) < float("inf")
            or float(match.group(1)) * SIZE_UNITS[match.group(2)] >= 2**63):
        raise argparse.ArgumentTypeError(f"expected a size such as 4GB, 512MB or 1000000, or 'auto' or 'none', "
                                         f"got {text!r}")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2)])


def memory_limit_of(value: int | str | None) -> int | None:
    if value != "auto":
        return value
    from ..machine import physical_memory

    total = physical_memory()
    return None if total is None else total * 4 // 5


class ProgressBar:
    """``progress(done, total, label)`` drawn as one line on stderr: only on a terminal, not
    with -q, not before the run has taken a second, at most ten times a second."""

    WIDTH = 28

    def __init__(self, quiet: bool, prefix: str = ""):
        import time

        self._clock = time.monotonic
        self.enabled = not quiet and sys.stderr.isatty()
        self.prefix = prefix
        self.start = self.phase_start = self._clock()
        self.phase_total: float | None = None
        self.last = 0.0
        self.shown = 0

    def __call__(self, done: float, total: float, label: str) -> None:
        if not self.enabled:
            return
        now = self._clock()
        if total != self.phase_total:  # a new phase (calibration, then timing): a new ETA
            self.phase_total, self.phase_start = total, now
        if now - self.start < 1.0 or now - self.last < 0.1:
            return
        self.last = now
        frac = min(max(done / total, 0.0), 1.0) if total else 0.0
        filled = int(frac * self.WIDTH)
        spent = now - self.phase_start
        eta = f", ~{spent * (1 - frac) / frac:.0f} s left" if frac > 0.05 and spent > 1 else ""
        text = (f"{self.prefix}{label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {100 * frac:3.0f}% "
                f"{now - self.start:.0f} s{eta}")
        width = shutil.get_terminal_size((100, 20)).columns - 1
        text = text[:width]
        sys.stderr.write("\r" + text + " " * max(self.shown - len(text), 0))
        sys.stderr.flush()
        self.shown = len(text)

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * self.shown + "\r")
            sys.stderr.flush()
            self.shown = 0


def arg_option(p: argparse.ArgumentParser, help: str = "override one of the spec's top-level args "
               "(e.g. --arg aux=false); repeatable") -> None:
    """--arg NAME=VALUE (repeatable): a spec's argument, as YAML 1.2 reads the value."""
    p.add_argument("--arg", "-a", action="append", default=[], metavar="NAME=VALUE", type=spec_arg, help=help)
