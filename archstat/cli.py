"""The ``archstat`` command: argparse subcommands over the library.

This is the only module that prints or exits. An :class:`ArchstatError` becomes one line
on stderr and exit code 2 (:class:`ExitCode`); a traceback from here is a bug.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from .errors import ArchstatError, ExitCode

PROG = "archstat"

_EXAMPLES = {
    "main": """\
examples:
  archstat report specs/vgg16.yaml                      per-layer table, CS231n style
  archstat report specs/alexnet.yaml -o alexnet.md      Markdown report (format from the suffix)
  archstat report specs/vgg16.yaml --batch 8 --format json
  archstat compare specs/vgg11.yaml specs/vgg16.yaml specs/vgg19.yaml
  archstat layers                                       every layer type and how it is counted
  archstat graph specs/resnet50.yaml -o resnet50.png    draw the DAG (or export DOT)
  archstat reproduce                                    regenerate the classic tables into reports/

Conventions: tensors are NCHW; a MAC is one multiply-accumulate of conv or linear layers;
FLOPs are 2 per MAC plus each layer's elementwise work (see 'archstat layers').""",
    "report": """\
examples:
  archstat report specs/vgg16.yaml
  archstat report specs/vgg16.yaml --batch 8 --dtype float16
  archstat report specs/alexnet.yaml --format md -o alexnet.md
  archstat report specs/vgg16.yaml --input 3 448 448      resolution study
  archstat report specs/lenet5.yaml --format csv > lenet5.csv

The table shows per layer: output shape (with batch), parameters, MACs, FLOPs, output
elements and the new memory the output needs; then the totals explained: the CS231n
forward-memory sum and the peak live activations.""",
    "compare": """\
examples:
  archstat compare specs/vgg11.yaml specs/vgg11_lrn.yaml specs/vgg13.yaml \\
                   specs/vgg16_c.yaml specs/vgg16.yaml specs/vgg19.yaml
  archstat compare specs/*.yaml --format csv -o models.csv""",
    "graph": """\
examples:
  archstat graph specs/resnet50.yaml -o resnet50.png          the DAG, layered, branches side by side
  archstat graph specs/googlenet.yaml -o googlenet.svg --color-by macs
  archstat graph specs/vgg16.yaml -o vgg16.dot                Graphviz DOT (render: dot -Tpdf vgg16.dot)
  archstat graph specs/lenet5.yaml                            DOT on standard output

Pointwise layers (batch norm, ReLU, ...) are drawn inside the box of the layer before
them ("conv1 +bn+relu"); --no-collapse draws every layer.""",
    "reproduce": """\
examples:
  archstat reproduce                          regenerate every report into reports/
  archstat reproduce --out /tmp/reports --no-figures

Writes VGG Table 2, the CS231n VGG-16 table with its totals reconciled, the AlexNet layer
table, why convolution, complexity vs accuracy (Canziani et al. 2016) and their figures,
each with published vs computed numbers and sources, indexed by README.md.""",
    "layers": """\
examples:
  archstat layers                    fields and counting rule of every layer type
  archstat layers --format md        the same as a Markdown page (docs/layers.md)""",
}


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors say which subcommand's --help to read."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USER_ERROR, f"{self.prog}: error: {message}\n"
                                       f"(see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog=PROG, formatter_class=_formatter,
                     description="Exact, explained analysis of CNN architectures written as YAML specs.",
                     epilog=_EXAMPLES["main"])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("report", help="per-layer table of shapes, parameters, MACs, FLOPs and memory",
                       description="Analyse one spec and print its per-layer report.",
                       epilog=_EXAMPLES["report"], formatter_class=_formatter)
    p.add_argument("spec", help="architecture spec (YAML or JSON)")
    _analysis_options(p)
    _output_options(p, ("table", "md", "csv", "json", "html"))
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("compare", help="one row per model: parameters, MACs, FLOPs, memory",
                       description="Analyse several specs and compare them side by side.",
                       epilog=_EXAMPLES["compare"], formatter_class=_formatter)
    p.add_argument("specs", nargs="+", metavar="SPEC", help="architecture specs (YAML or JSON)")
    _analysis_options(p, with_input=False)
    _output_options(p, ("table", "md", "csv", "json", "html"))
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("graph", help="draw the layer DAG (PNG, SVG) or export it as Graphviz DOT",
                       description="Draw a spec's layer graph readably, or write it as DOT.",
                       epilog=_EXAMPLES["graph"], formatter_class=_formatter)
    p.add_argument("spec", help="architecture spec (YAML or JSON)")
    p.add_argument("--output", "-o", metavar="FILE", help="FILE.png, FILE.svg or FILE.dot (default: DOT on stdout)")
    p.add_argument("--color-by", choices=("macs", "memory"), default=None,
                   help="fill each box by its MACs or its output memory")
    p.add_argument("--no-collapse", dest="collapse", action="store_false",
                   help="draw every layer, pointwise ones included")
    p.add_argument("--title", help="figure title (default: model name and totals)")
    p.add_argument("--arg", "-a", action="append", default=[], metavar="NAME=VALUE", type=_spec_arg,
                   help="override one of the spec's top-level args; repeatable")
    p.set_defaults(func=_cmd_graph)

    p = sub.add_parser("reproduce", help="regenerate the classic tables and figures into reports/",
                       description="Regenerate the lecture's and the papers' tables and plots from the specs.",
                       epilog=_EXAMPLES["reproduce"], formatter_class=_formatter)
    p.add_argument("--out", default="reports", metavar="DIR", help="output folder (default reports/)")
    p.add_argument("--specs", default="specs", metavar="DIR", help="folder of specs (default specs/)")
    p.add_argument("--no-figures", dest="figures", action="store_false", help="write the text reports only")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("layers", help="list every layer type, its fields and counting rule",
                       description="Print the layer registry: fields, defaults and the MAC/FLOP rule "
                                   "of every layer type (generated, so it cannot drift from the code).",
                       epilog=_EXAMPLES["layers"], formatter_class=_formatter)
    _output_options(p, ("table", "md", "json"))
    p.set_defaults(func=_cmd_layers)
    return parser


def _analysis_options(p: argparse.ArgumentParser, with_input: bool = True) -> None:
    p.add_argument("--arg", "-a", action="append", default=[], metavar="NAME=VALUE", type=_spec_arg,
                   help="override one of the spec's top-level args (e.g. --arg aux=false); repeatable")
    p.add_argument("--batch", "-b", type=_positive_int, default=1, metavar="N", help="batch size (default 1)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16", "float64"),
                   help="element type for memory figures (default float32)")
    if with_input:
        p.add_argument("--input", type=_positive_int, nargs="+", metavar="DIM",
                       help="override the spec's input size: C H W (e.g. 3 448 448)")
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "momentum", "adam"),
                   help="optimizer state counted in the training-memory estimate (default sgd)")


def _output_options(p: argparse.ArgumentParser, formats: Sequence[str]) -> None:
    p.add_argument("--format", "-f", choices=formats, default=None,
                   help=f"output format (default: from the -o suffix, else {formats[0]})")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")


def _spec_arg(text: str) -> tuple[str, object]:
    import yaml

    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return name.strip(), parsed


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


_SUFFIX_FORMATS = {".md": "md", ".markdown": "md", ".csv": "csv", ".json": "json", ".html": "html",
                   ".htm": "html", ".txt": "table"}


def _format(args: argparse.Namespace, default: str) -> str:
    if args.format:
        return args.format
    if args.output:
        fmt = _SUFFIX_FORMATS.get(Path(args.output).suffix.lower())
        if fmt:
            return fmt
    return default


def _emit(args: argparse.Namespace, text: str) -> None:
    if not args.output:
        sys.stdout.write(text)
        return
    path = Path(args.output)
    if path.is_dir():
        raise ArchstatError("is a directory", file=str(path), field="--output",
                            hint="give a file name, e.g. -o report.md")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)  # never leave a half-written report behind
    except OSError as exc:
        raise ArchstatError(f"cannot write the output ({exc.strerror or exc})", file=str(path),
                            field="--output") from None
    print(f"wrote {path}", file=sys.stderr)


def _cmd_report(args: argparse.Namespace) -> None:
    from .analysis import analyze
    from .graph import load
    from .report.table import render_report

    model = load(args.spec, dict(args.arg))
    analysis = analyze(model, batch=args.batch, dtype=args.dtype,
                       input_shape=tuple(args.input) if args.input else None, optimizer=args.optimizer)
    _emit(args, render_report(analysis, _format(args, "table")))


def _cmd_compare(args: argparse.Namespace) -> None:
    from .analysis import analyze
    from .graph import load
    from .report.table import render_compare

    analyses = [analyze(load(path, dict(args.arg) or None), batch=args.batch, dtype=args.dtype, optimizer=args.optimizer)
                for path in args.specs]
    _emit(args, render_compare(analyses, _format(args, "table")))


def _cmd_graph(args: argparse.Namespace) -> None:
    from .analysis import analyze
    from .graph import load
    from .report import graph_plot

    model = load(args.spec, dict(args.arg))
    analysis = analyze(model)
    color_by = {"memory": "activation_bytes"}.get(args.color_by, args.color_by)
    if not args.output:
        sys.stdout.write(graph_plot.to_dot(model, analysis, color_by=color_by, collapse=args.collapse))
        return
    path = graph_plot.draw_graph(model, args.output, analysis=analysis, color_by=color_by,
                                 collapse=args.collapse, title=args.title)
    print(f"wrote {path}", file=sys.stderr)


def _cmd_reproduce(args: argparse.Namespace) -> None:
    from .report.reproduce import reproduce

    for path in reproduce(args.out, args.specs, figures=args.figures):
        print(f"wrote {path}", file=sys.stderr)


def _cmd_layers(args: argparse.Namespace) -> None:
    from .report.table import render_layer_types

    _emit(args, render_layer_types(_format(args, "table")))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (see :class:`ExitCode`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return ExitCode.USER_ERROR
    try:
        args.func(args)
    except ArchstatError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return ExitCode.USER_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # `archstat report ... | head`: the reader left; that is not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK
    return ExitCode.OK


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
