"""The analysis subcommands: report, conventions, compare, zoo, graph, import, reproduce,
layers and completion (nothing here runs the engine)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ArchstatError
from .common import (MODEL_HELP, analysis_options, arg_option, batch_dtype_options, emit, formatter,
                     int_at_least, load_model, output_format, output_options, positive_int, terminal_width,
                     unknown_option, view_options)
from .examples import EXAMPLES


def add_parsers(sub) -> None:
    """Register the analysis subcommands on ``sub`` (argparse's subparsers)."""
    p = sub.add_parser("report", help="per-layer table of shapes, parameters, MACs, FLOPs and memory",
                       description="Analyse one spec and print its per-layer report.",
                       epilog=EXAMPLES["report"], formatter_class=formatter)
    p.add_argument("spec", metavar="MODEL", help=MODEL_HELP)
    analysis_options(p)
    output_options(p, ("table", "md", "csv", "json", "html"))
    p.add_argument("--convention", metavar="NAME",
                   help="add another tool's count per layer and in total (archstat conventions lists them)")
    view_options(p, depth=True)
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("conventions", help="every other tool's MACs/FLOPs for a model, and why each differs",
                       description="Compute each peer tool's number by that tool's own rules, beside archstat's.",
                       epilog=EXAMPLES["conventions"], formatter_class=formatter)
    p.add_argument("spec", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--explain", metavar="NAME", help="one tool's count against archstat's, by layer type")
    analysis_options(p)
    output_options(p, ("table", "md", "csv", "json"))
    p.set_defaults(func=_cmd_conventions)

    p = sub.add_parser("compare", help="one row per model: parameters, MACs, FLOPs, memory",
                       description="Analyse several specs and compare them side by side.",
                       epilog=EXAMPLES["compare"], formatter_class=formatter)
    p.add_argument("specs", nargs="+", metavar="MODEL", help="zoo names or spec files (YAML or JSON)")
    analysis_options(p, with_input=False)
    output_options(p, ("table", "md", "csv", "json", "html"))
    view_options(p)
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("zoo", help="every named model: family, params, GMACs, FLOPs, memory, top-1",
                       description="List the model zoo: every named model analysed at its own input size, "
                                   "with its published accuracy and whether archstat reproduces the "
                                   "publisher's counts.",
                       epilog=EXAMPLES["zoo"], formatter_class=formatter)
    p.add_argument("--family", metavar="F", help="only this family (e.g. resnet, efficientnet, regnet_y)")
    batch_dtype_options(p)
    output_options(p, ("table", "md", "csv", "json", "html"))
    p.set_defaults(func=_cmd_zoo)

    p = sub.add_parser("graph", help="draw the layer DAG (PNG, SVG, PDF) or export it as Graphviz DOT",
                       description="Draw a spec's layer graph readably, or write it as DOT.",
                       epilog=EXAMPLES["graph"], formatter_class=formatter)
    p.add_argument("spec", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--output", "-o", metavar="FILE",
                   help="FILE.png, .svg, .pdf, .html (interactive: pan, zoom, numbers on hover) or .dot "
                        "(default: DOT on stdout)")
    p.add_argument("--color-by", choices=("macs", "memory"), default=None,
                   help="fill each box by its MACs or its output memory")
    p.add_argument("--no-collapse", dest="collapse", action="store_false",
                   help="draw every layer, pointwise ones included")
    p.add_argument("--collapse", dest="blocks", nargs="?", const=0, default=None, metavar="DEPTH",
                   type=int_at_least(1, "a depth of 1 to 100", 100),
                   help="one box per block: layers grouped by the first DEPTH parts of their dotted names "
                        "(features.denseblock1 at 2); without DEPTH, the deepest level with at most 40 boxes")
    p.add_argument("--title", help="figure title (default: model name and totals)")
    arg_option(p)
    p.add_argument("--input", type=positive_int, nargs="+", metavar="DIM",
                   help="for a foreign file (.onnx) whose sizes are open: C H W")
    unknown_option(p)
    p.set_defaults(func=_cmd_graph)

    p = sub.add_parser("import", help="write a model (an ONNX file, a zoo name) as a readable archstat spec",
                       description="Import a model and write it as an archstat spec: one line per layer, "
                                   "names from the file, weights left out. The spec loads back into the "
                                   "same model.",
                       epilog=EXAMPLES["import"], formatter_class=formatter)
    p.add_argument("spec", metavar="MODEL", help="an ONNX file (pip install 'archstat[onnx]'), a zoo name or a spec")
    p.add_argument("--output", "-o", metavar="FILE", help="FILE.yaml or FILE.json (default: YAML on standard output)")
    p.add_argument("--input", type=positive_int, nargs="+", metavar="DIM",
                   help="for a file whose sizes are open (a dynamic height and width): C H W")
    arg_option(p)
    unknown_option(p)
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("reproduce", help="regenerate the classic tables and figures into reports/",
                       description="Regenerate the lecture's and the papers' tables and plots from the specs.",
                       epilog=EXAMPLES["reproduce"], formatter_class=formatter)
    p.add_argument("--out", default="reports", metavar="DIR", help="output folder (default reports/)")
    p.add_argument("--no-figures", dest="figures", action="store_false", help="write the text reports only")
    p.add_argument("--no-timing", dest="timing", action="store_false",
                   help="skip the measured report (operations vs time: about a minute on two cores)")
    p.add_argument("--force", action="store_true", help="replace the measured reports even when other processes "
                                                        "disturbed the timing (kept otherwise)")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("layers", help="list every layer type, its fields and counting rule",
                       description="Print the layer registry: fields, defaults and the MAC/FLOP rule "
                                   "of every layer type (generated, so it cannot drift from the code).",
                       epilog=EXAMPLES["layers"], formatter_class=formatter)
    output_options(p, ("table", "md", "json"))
    p.set_defaults(func=_cmd_layers)

    p = sub.add_parser("completion", help="print the shell completion script (bash, zsh)",
                       description="Print a completion script for archstat's subcommands, options, choices "
                                   "and zoo names. Load it with: eval \"$(archstat completion bash)\" "
                                   "(in ~/.bashrc or ~/.zshrc to keep it).",
                       epilog=EXAMPLES["completion"], formatter_class=formatter)
    p.add_argument("shell", choices=("bash", "zsh"), help="your shell (zsh uses the bash script through "
                                                          "bashcompinit)")
    p.set_defaults(func=_cmd_completion)


def _cmd_report(args: argparse.Namespace) -> None:
    from ..analysis import analyze
    from ..report.table import render_report

    model = load_model(args, args.spec)
    analysis = analyze(model, batch=args.batch, dtype=args.dtype,
                       input_shape=tuple(args.input) if args.input else None, optimizer=args.optimizer)
    if args.convention is not None:
        from ..conventions import apply, get
        apply(analysis, get(args.convention, "--convention").name)
    emit(args, render_report(analysis, output_format(args, "table"), width=terminal_width(args), depth=args.depth))


def _cmd_conventions(args: argparse.Namespace) -> None:
    from ..analysis import analyze
    from ..conventions import get
    from ..report.conventions_table import render_conventions, render_explain

    if args.explain is not None:
        args.explain = get(args.explain, "--explain").name   # an unknown name fails before any work
    model = load_model(args, args.spec)
    analysis = analyze(model, batch=args.batch, dtype=args.dtype,
                       input_shape=tuple(args.input) if args.input else None, optimizer=args.optimizer)
    fmt = output_format(args, "table")
    emit(args, render_explain(analysis, args.explain, fmt) if args.explain is not None
          else render_conventions(analysis, fmt))


def _cmd_compare(args: argparse.Namespace) -> None:
    from ..analysis import analyze
    from ..report.compare_table import render_compare

    analyses = [analyze(load_model(args, path), batch=args.batch, dtype=args.dtype, optimizer=args.optimizer)
                for path in args.specs]
    emit(args, render_compare(analyses, output_format(args, "table"), width=terminal_width(args)))


def _cmd_zoo(args: argparse.Namespace) -> None:
    from ..report.zoo_table import render_zoo, zoo_rows

    rows = zoo_rows(args.family, batch=args.batch, dtype=args.dtype)
    emit(args, render_zoo(rows, output_format(args, "table"), batch=args.batch, dtype=args.dtype))


def _cmd_graph(args: argparse.Namespace) -> None:
    from ..analysis import analyze
    from ..report.graph_dot import to_dot
    from ..report.graph_draw import draw_graph

    model = load_model(args, args.spec)
    analysis = analyze(model)
    if not args.output:
        sys.stdout.write(to_dot(model, analysis, color_by=args.color_by, collapse=args.collapse, blocks=args.blocks))
        return
    path = draw_graph(model, args.output, analysis=analysis, color_by=args.color_by,
                      collapse=args.collapse, title=args.title, blocks=args.blocks)
    print(f"wrote {path}", file=sys.stderr)


def _cmd_import(args: argparse.Namespace) -> None:
    import json

    from ..spec_writer import spec_data, spec_text

    model = load_model(args, args.spec)
    json_out = (args.output or "").lower().endswith(".json")
    emit(args, json.dumps(spec_data(model), indent=2) + "\n" if json_out else spec_text(model))


def _cmd_reproduce(args: argparse.Namespace) -> None:
    from ..report.reproduce import reproduce

    import warnings
    out = Path(args.out)
    try:
        out.stat()
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:
        raise ArchstatError(f"cannot use this folder ({exc.strerror or exc})", file=str(out), field="--out",
                            hint="choose a shorter path you can write to") from None
    if out.exists() and not out.is_dir():
        raise ArchstatError(f"{out} is a file, not a folder", field="--out", hint="name a folder for the reports")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            paths = reproduce(out, figures=args.figures, timing=args.timing, force=args.force)
        except OSError as exc:   # a folder that cannot be made or written to
            raise ArchstatError(f"cannot write the reports ({exc.strerror or exc})", file=str(exc.filename or out),
                                field="--out", hint="choose a folder you can write to") from None
    for path in paths:
        print(f"wrote {path}", file=sys.stderr)
    for w in caught:
        print(f"archstat: warning: {w.message}", file=sys.stderr)


def _cmd_layers(args: argparse.Namespace) -> None:
    from ..report.layer_types_table import render_layer_types

    emit(args, render_layer_types(output_format(args, "table")))


def _cmd_completion(args: argparse.Namespace) -> None:
    from .. import zoo
    from . import build_parser
    from .completion import bash_script
    sys.stdout.write(bash_script(build_parser(), list(zoo.entries())))
