"""The ``archstat`` command: argparse subcommands over the library.

This is the only module that prints or exits. An :class:`ArchstatError` becomes one line
on stderr and exit code 2 (:class:`ExitCode`); a traceback from here is a bug.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Sequence

from .errors import ArchstatError, ExitCode

PROG = "archstat"

_EXAMPLES = {
    "main": """\
examples:
  archstat zoo                                          every named model: params, GMACs, top-1
  archstat report vgg16                                 per-layer table, CS231n style
  archstat report mobilenet_v3_large -o mnv3.md         Markdown report (format from the suffix)
  archstat report efficientnet --arg variant=b4         a family spec with its arguments
  archstat report my_model.yaml --batch 8 --format json a spec file of your own
  archstat report model.onnx                            an ONNX file (pip install 'archstat[onnx]')
  archstat import model.onnx -o model.yaml              an ONNX file as a readable spec
  archstat compare resnet50 resnext50_32x4d wide_resnet50_2 regnet_y_8gf convnext_tiny
  archstat conventions resnet50                         every other tool's number, and why it differs
  archstat layers                                       every layer type and how it is counted
  archstat graph resnet50 -o resnet50.png               draw the DAG (or export DOT)
  archstat reproduce                                    regenerate the classic tables into reports/
  archstat profile alexnet --backward                   measured time per layer, roofline, memory
  archstat sweep resnet18 --batch 1 2 4 8               time per image and memory vs batch size
  archstat space regnet --samples 5000 --workers 2 --plot regnet_space.png   a design space: EDFs
  archstat search regnet --budget 'macs<=400e6' --objective params:max      search it under budgets

A MODEL is a zoo name (archstat zoo lists them), a spec file (.yaml or .json) or an ONNX
file (.onnx); PyTorch modules come in from Python: archstat.from_torch(module, input_shape).
Conventions: tensors are NCHW; a MAC is one multiply-accumulate of conv or linear layers;
FLOPs are 2 per MAC plus each layer's elementwise work (see 'archstat layers').""",
    "report": """\
examples:
  archstat report vgg16
  archstat report vgg16 --batch 8 --dtype float16
  archstat report alexnet_lecture --format md -o alexnet.md
  archstat report vgg16 --input 3 448 448                  resolution study
  archstat report efficientnet --arg variant=b4            a family spec's own arguments
  archstat report lenet5 --format csv > lenet5.csv
  archstat report resnet50 --convention fvcore             fvcore's count per layer and in total

The table shows per layer: output shape (with batch), parameters, MACs, FLOPs, output
elements and the new memory the output needs; then the totals explained: the CS231n
forward-memory sum and the peak live activations.""",
    "conventions": """\
examples:
  archstat conventions resnet50                        every tool's total, ratio and why
  archstat conventions resnet50 --explain ptflops      where ptflops' number comes from, by layer type
  archstat report resnet50 --convention fvcore         fvcore's count per layer

Each tool's rules (torchinfo, fvcore, ptflops, thop, calflops, torchscan, FlopCounterMode,
onnx-tool, Keras) are written per layer type in archstat/conventions/, with the tool's
version and source lines; they reproduce the tools' own totals exactly on torchvision's
models run as the tools run them (batch 1, eval mode, auxiliary heads off).""",
    "compare": """\
examples:
  archstat compare vgg11 vgg11_lrn vgg13 vgg16_c vgg16 vgg19
  archstat compare resnet50 resnext50_32x4d wide_resnet50_2 regnet_y_8gf convnext_tiny
  archstat compare specs/*.yaml --format csv -o models.csv""",
    "zoo": """\
examples:
  archstat zoo                                every named model, grouped by family
  archstat zoo --family efficientnet          one family's variants
  archstat zoo --format csv -o zoo.csv        exact integers, published figures beside them

Each model is analysed at its own input size (the crop its published weights are evaluated
at). Check says whether archstat reproduces the publisher's own counts: torchvision's
num_params exactly, and its _ops (GMACs) at the digits torchvision prints.""",
    "graph": """\
examples:
  archstat graph resnet50 -o resnet50.png                     the DAG, layered, branches side by side
  archstat graph googlenet -o googlenet.svg --color-by macs
  archstat graph vgg16 -o vgg16.dot                           Graphviz DOT (render: dot -Tpdf vgg16.dot)
  archstat graph densenet121 --collapse -o densenet.pdf        one box per block: reads on a slide
  archstat graph resnet50 -o resnet50.html                    interactive: pan, zoom, hover for numbers
  archstat graph lenet5                                       DOT on standard output

Pointwise layers (batch norm, ReLU, ...) are drawn inside the box of the layer before
them ("conv1 +bn+relu"); --no-collapse draws every layer.""",
    "reproduce": """\
examples:
  archstat reproduce                          regenerate every report into reports/
  archstat reproduce --out /tmp/reports --no-figures

Writes VGG Table 2, the CS231n VGG-16 table with its totals reconciled, the AlexNet layer
table, why convolution, complexity vs accuracy (Canziani et al. 2016) and their figures,
each with published vs computed numbers and sources, indexed by README.md.""",
    "calibrate": """\
examples:
  archstat calibrate                      measure this machine once: GEMM GFLOP/s, memory GB/s
  archstat calibrate --quick --dtype float32
  archstat calibrate --show --format json print the cached calibration (measures nothing)

The GEMM peak is the best np.matmul rate on a large square product (2 n^3 FLOPs); the
memory bandwidth the best np.copyto rate (bytes read + written). They are the roofs of
'archstat profile'. Cached under $XDG_CACHE_HOME/archstat (~/.cache/archstat), one file
per machine (CPU, cores, BLAS and its threads, NumPy version).""",
    "profile": """\
examples:
  archstat profile alexnet_lecture --batch 8 --repeat 5 --warmup 1 --backward
  archstat profile vgg16 --format csv -o vgg16_profile.csv --plot vgg16_profile.png
  archstat profile lenet5 --dtype float64 -q
  archstat profile alexnet vgg16 resnet18 --plot ops.png
                                          several models: MACs vs measured time, linear fit and R^2

Each layer's forward (and with --backward, backward) time is the median over the repeats,
with min-max beside; GFLOP/s = the analysis' FLOPs / time; FLOP/B = FLOPs / the minimum
bytes moved (inputs + weights + output); the roofline (calibrated GEMM peak and memory
bandwidth, see 'archstat calibrate') says whether a layer is compute- or memory-bound.
Peak memory is measured with tracemalloc on one untimed pass, beside the analysis'
prediction. --plot FILE.png writes FILE.png (time per layer), FILE_roofline.png and
FILE_ops.png (MACs vs time); with several specs, FILE.png is MACs vs time across models.
Ctrl-C stops cleanly and prints what was measured (exit 130).""",
    "sweep": """\
examples:
  archstat sweep resnet18 --batch 1 2 4 8 16
  archstat sweep alexnet --backward --plot alexnet_sweep.png
  archstat sweep vgg16 --batch 1 2 4 --format csv -o vgg16_sweep.csv

Every batch size is checked against --memory-limit before anything runs.""",
    "import": """\
examples:
  archstat import model.onnx -o model.yaml       a readable spec of an ONNX file, names from its graph
  archstat import model.onnx --input 3 224 224   a file with open (dynamic) sizes
  archstat import model.onnx --allow-unknown     keep nodes archstat has no type for, uncounted
  archstat import resnet50 -o resnet50.yaml      a zoo model written out flat, one line per layer

Any command that takes a model takes an .onnx file as well (archstat report model.onnx).""",
    "completion": """\
examples:
  eval "$(archstat completion bash)"       complete archstat's commands, options and zoo names
  archstat completion bash >> ~/.bashrc    keep it for every new shell (zsh: ~/.zshrc, 'zsh')""",
    "space": """\
examples:
  archstat space my_space.yaml --grid -o grid.csv               every configuration
  archstat space regnet --samples 100000 --seed 0 -o s.parquet  a seeded sample (CSV without pyarrow)
  archstat space regnet --samples 100000 --workers 2            local processes
  archstat space regnet --samples 1000000 --scheduler tcp://host:8786 -o s.parquet   a Dask cluster
  archstat space regnet --samples 5000 --plot space.png         EDFs of params, MACs, peak memory; scatter
  archstat space regnet --samples 200 --measure 20 --plot t.png time 20 of them on the engine too
  archstat space regnet --samples 100000 -o s.csv --resume      finish an interrupted run
  archstat space efficientnet --grid --levels 3                 3 points of each continuous dimension

The spec's 'space:' section names the args that vary: {choice: [...]}, {int: [lo, hi]},
{range: [lo, hi, step]}, {uniform: [lo, hi]}, {loguniform: [lo, hi]}. One row per
configuration: its args, then params, MACs, FLOPs, peak activation memory, forward memory,
layers, the output's receptive field, and its error when it is invalid. Row i of a sample is
drawn from its own generator (seed, i): same seed, same rows, whatever runs them. With -o, the
rows done so far are checkpointed to FILE.checkpoint.csv as the run goes (removed when it
completes); --resume finishes an interrupted run without recomputing them. --measure times
configurations on the workers, each recording its machine; local workers run side by side with
their share of the cores (--workers 1 gives the steadiest times).""",
    "search": """\
examples:
  archstat search regnet --budget 'macs<=400e6' --budget 'peak_activation_bytes<=20e6' \\
                         --objective params:max --population 64 --generations 50 --seed 0
  archstat search my_space.yaml --budget 'params<2M' --objective macs:min
  archstat search regnet --budget 'macs<=1.6G' --objective rf_h:max --workers 2 -o history.csv

Regularized evolution (Real et al. 2019): tournaments of --sample-size among the population,
the winner's child differs in one argument, the oldest member dies. A discrete space no larger
than population x (generations + 1) is searched exhaustively instead (--strategy to choose).
Every configuration printed meets every budget. Budgets: METRIC OP NUMBER, OP one of <= < >= >
== !=, NUMBER like 400e6 or 400M; metrics: params, macs, flops, peak_activation_bytes,
forward_memory_bytes, layers, rf_h, rf_w (and numeric args of the space).""",
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
        # one line, as every other error: what is wrong, a did-you-mean for a mistyped choice
        # (a subcommand, a --format), and where the usage is
        import re
        from .errors import did_you_mean
        choice = re.search(r"invalid choice: '(.*?)' \(choose from (.*)\)", message)
        if choice:
            hint = did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
            if hint:
                self.exit(ExitCode.USER_ERROR, f"{self.prog}: error: {message}; {hint} See '{self.prog} --help'\n")
        self.exit(ExitCode.USER_ERROR, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog=PROG, formatter_class=_formatter,
                     description="Exact, explained analysis of CNN architectures: the model zoo by name, "
                                 "ONNX files, or your own YAML specs.",
                     epilog=_EXAMPLES["main"])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("report", help="per-layer table of shapes, parameters, MACs, FLOPs and memory",
                       description="Analyse one spec and print its per-layer report.",
                       epilog=_EXAMPLES["report"], formatter_class=_formatter)
    p.add_argument("spec", metavar="MODEL", help=_MODEL_HELP)
    _analysis_options(p)
    _output_options(p, ("table", "md", "csv", "json", "html"))
    p.add_argument("--convention", metavar="NAME",
                   help="add another tool's count per layer and in total (archstat conventions lists them)")
    _view_options(p, depth=True)
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("conventions", help="every other tool's MACs/FLOPs for a model, and why each differs",
                       description="Compute each peer tool's number by that tool's own rules, beside archstat's.",
                       epilog=_EXAMPLES["conventions"], formatter_class=_formatter)
    p.add_argument("spec", metavar="MODEL", help=_MODEL_HELP)
    p.add_argument("--explain", metavar="NAME", help="one tool's count against archstat's, by layer type")
    _analysis_options(p)
    _output_options(p, ("table", "md", "csv", "json"))
    p.set_defaults(func=_cmd_conventions)

    p = sub.add_parser("compare", help="one row per model: parameters, MACs, FLOPs, memory",
                       description="Analyse several specs and compare them side by side.",
                       epilog=_EXAMPLES["compare"], formatter_class=_formatter)
    p.add_argument("specs", nargs="+", metavar="MODEL", help="zoo names or spec files (YAML or JSON)")
    _analysis_options(p, with_input=False)
    _output_options(p, ("table", "md", "csv", "json", "html"))
    _view_options(p)
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("zoo", help="every named model: family, params, GMACs, FLOPs, memory, top-1",
                       description="List the model zoo: every named model analysed at its own input size, "
                                   "with its published accuracy and whether archstat reproduces the "
                                   "publisher's counts.",
                       epilog=_EXAMPLES["zoo"], formatter_class=_formatter)
    p.add_argument("--family", metavar="F", help="only this family (e.g. resnet, efficientnet, regnet_y)")
    p.add_argument("--batch", "-b", type=_positive_int, default=1, metavar="N", help="batch size (default 1)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16", "float64"),
                   help="element type for memory figures (default float32)")
    _output_options(p, ("table", "md", "csv", "json", "html"))
    p.set_defaults(func=_cmd_zoo)

    p = sub.add_parser("graph", help="draw the layer DAG (PNG, SVG, PDF) or export it as Graphviz DOT",
                       description="Draw a spec's layer graph readably, or write it as DOT.",
                       epilog=_EXAMPLES["graph"], formatter_class=_formatter)
    p.add_argument("spec", metavar="MODEL", help=_MODEL_HELP)
    p.add_argument("--output", "-o", metavar="FILE",
                   help="FILE.png, .svg, .pdf, .html (interactive: pan, zoom, numbers on hover) or .dot "
                        "(default: DOT on stdout)")
    p.add_argument("--color-by", choices=("macs", "memory"), default=None,
                   help="fill each box by its MACs or its output memory")
    p.add_argument("--no-collapse", dest="collapse", action="store_false",
                   help="draw every layer, pointwise ones included")
    p.add_argument("--collapse", dest="blocks", nargs="?", const=0, default=None, metavar="DEPTH",
                   type=_int_at_least(1, "a depth of 1 to 100", 100),
                   help="one box per block: layers grouped by the first DEPTH parts of their dotted names "
                        "(features.denseblock1 at 2); without DEPTH, the deepest level with at most 40 boxes")
    p.add_argument("--title", help="figure title (default: model name and totals)")
    p.add_argument("--arg", "-a", action="append", default=[], metavar="NAME=VALUE", type=_spec_arg,
                   help="override one of the spec's top-level args; repeatable")
    p.add_argument("--input", type=_positive_int, nargs="+", metavar="DIM",
                   help="for a foreign file (.onnx) whose sizes are open: C H W")
    _unknown_option(p)
    p.set_defaults(func=_cmd_graph)

    p = sub.add_parser("import", help="write a model (an ONNX file, a zoo name) as a readable archstat spec",
                       description="Import a model and write it as an archstat spec: one line per layer, "
                                   "names from the file, weights left out. The spec loads back into the "
                                   "same model.",
                       epilog=_EXAMPLES["import"], formatter_class=_formatter)
    p.add_argument("spec", metavar="MODEL", help="an ONNX file (pip install 'archstat[onnx]'), a zoo name or a spec")
    p.add_argument("--output", "-o", metavar="FILE", help="FILE.yaml or FILE.json (default: YAML on standard output)")
    p.add_argument("--input", type=_positive_int, nargs="+", metavar="DIM",
                   help="for a file whose sizes are open (a dynamic height and width): C H W")
    p.add_argument("--arg", "-a", action="append", default=[], metavar="NAME=VALUE", type=_spec_arg,
                   help="override one of a spec's top-level args; repeatable")
    _unknown_option(p)
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("reproduce", help="regenerate the classic tables and figures into reports/",
                       description="Regenerate the lecture's and the papers' tables and plots from the specs.",
                       epilog=_EXAMPLES["reproduce"], formatter_class=_formatter)
    p.add_argument("--out", default="reports", metavar="DIR", help="output folder (default reports/)")
    p.add_argument("--no-figures", dest="figures", action="store_false", help="write the text reports only")
    p.add_argument("--no-timing", dest="timing", action="store_false",
                   help="skip the measured report (operations vs time: about a minute on two cores)")
    p.add_argument("--force", action="store_true", help="replace the measured reports even when other processes "
                                                        "disturbed the timing (kept otherwise)")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("calibrate", help="measure this machine's GEMM GFLOP/s and memory GB/s (cached)",
                       description="Measure the roofs of the profiler: the best np.matmul GFLOP/s and "
                                   "np.copyto GB/s on this machine, and cache them.",
                       epilog=_EXAMPLES["calibrate"], formatter_class=_formatter)
    p.add_argument("--dtype", nargs="+", default=["float32", "float64"], choices=("float32", "float64"),
                   help="GEMM peaks to measure (default: both)")
    p.add_argument("--quick", action="store_true", help="smaller matrices, fewer runs (what profile does "
                                                        "when nothing is cached)")
    p.add_argument("--show", action="store_true", help="print the cached calibration; measure nothing")
    p.add_argument("--force", action="store_true", help="cache the result even when other processes "
                                                        "disturbed the measurement")
    _output_options(p, ("table", "json"))
    _threads_option(p)
    _quiet_option(p)
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("profile", help="measured time per layer, GFLOP/s, roofline and peak memory",
                       description="Run a spec through the NumPy engine and time every layer; compare "
                                   "with the analysis and the calibrated roofs.",
                       epilog=_EXAMPLES["profile"], formatter_class=_formatter)
    p.add_argument("specs", nargs="+", metavar="MODEL", help="zoo names or spec files (YAML or JSON)")
    p.add_argument("--batch", "-b", type=_positive_int, default=1, metavar="N", help="batch size (default 1)")
    p.add_argument("--repeat", "-r", type=_positive_int, default=5, metavar="N",
                   help="timed passes; times are their median (default 5)")
    _run_options(p)
    p.add_argument("--no-memory", dest="memory", action="store_false",
                   help="skip the untimed tracemalloc pass that measures peak memory")
    _output_options(p, ("table", "md", "csv", "json", "html"))
    _view_options(p)
    p.set_defaults(func=_cmd_profile)

    p = sub.add_parser("sweep", help="time per image and peak memory against batch size",
                       description="Profile one spec at several batch sizes (the same weights).",
                       epilog=_EXAMPLES["sweep"], formatter_class=_formatter)
    p.add_argument("spec", metavar="MODEL", help=_MODEL_HELP)
    p.add_argument("--batch", "-b", type=_positive_int, nargs="+", default=[1, 2, 4, 8, 16], metavar="N",
                   help="batch sizes (default 1 2 4 8 16)")
    p.add_argument("--repeat", "-r", type=_positive_int, default=3, metavar="N",
                   help="timed passes per batch size (default 3)")
    _run_options(p)
    _output_options(p, ("table", "md", "csv", "json", "html"))
    _view_options(p)
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("completion", help="print the shell completion script (bash, zsh)",
                       description="Print a completion script for archstat's subcommands, options, choices "
                                   "and zoo names. Load it with: eval \"$(archstat completion bash)\" "
                                   "(in ~/.bashrc or ~/.zshrc to keep it).",
                       epilog=_EXAMPLES["completion"], formatter_class=_formatter)
    p.add_argument("shell", choices=("bash", "zsh"), help="your shell (zsh uses the bash script through "
                                                          "bashcompinit)")
    p.set_defaults(func=_cmd_completion)

    _space_parsers(sub)
    p = sub.add_parser("layers", help="list every layer type, its fields and counting rule",
                       description="Print the layer registry: fields, defaults and the MAC/FLOP rule "
                                   "of every layer type (generated, so it cannot drift from the code).",
                       epilog=_EXAMPLES["layers"], formatter_class=_formatter)
    _output_options(p, ("table", "md", "json"))
    p.set_defaults(func=_cmd_layers)
    return parser


_MODEL_HELP = "a zoo name (see 'archstat zoo') or a spec file (YAML or JSON)"


def _space_parsers(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("spec", help="a spec file with a 'space:' section, or a zoo name (its family's space)")
    common.add_argument("--arg", "-a", action="append", default=[], metavar="NAME=VALUE", type=_spec_arg,
                        help="fix one of the spec's args (one the space varies then stays fixed); repeatable")
    common.add_argument("--workers", "-j", type=_positive_int, default=1, metavar="N",
                        help="local processes (default 1: this process)")
    common.add_argument("--scheduler", metavar="ADDRESS",
                        help="a Dask distributed scheduler (tcp://host:8786) instead of local processes "
                             "(pip install 'archstat[dask]')")
    common.add_argument("--seed", type=_non_negative_int, default=0, help="decides every draw (default 0)")
    common.add_argument("--batch", "-b", type=_positive_int, default=1, metavar="N", help="batch size (default 1)")
    common.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16", "float64"),
                        help="element type for memory figures (default float32)")
    common.add_argument("--output", "-o", metavar="FILE", help="write the rows: .csv, .parquet, .jsonl or .json")
    _quiet_option(common)
    p = sub.add_parser("space", parents=[common], help="sample or enumerate a spec's design space: one row per "
                       "configuration, EDFs", description="Analyse many configurations of a spec's design space "
                       "(its 'space:' section): a grid or a seeded sample, on local processes or a Dask cluster.",
                       epilog=_EXAMPLES["space"], formatter_class=_formatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--grid", action="store_true", help="every configuration")
    what.add_argument("--samples", "-n", type=_positive_int, metavar="N", help="N configurations drawn at random")
    p.add_argument("--levels", type=_positive_int, metavar="N", help="grid points per continuous dimension")
    p.add_argument("--chunk", type=_positive_int, metavar="N", help="configurations per task (default: ~16 tasks "
                   "per worker, at most 256)")
    p.add_argument("--checkpoint", metavar="FILE", help="the checkpoint file (default: the -o file + .checkpoint.csv)")
    p.add_argument("--resume", action="store_true", help="finish an interrupted run from its checkpoint")
    p.add_argument("--plot", metavar="FILE", help="EDFs of params, MACs, peak memory and a scatter (PNG, SVG, PDF); "
                   "with --measure also FILE_measured.png")
    p.add_argument("--measure", type=_non_negative_int, default=0, metavar="N",
                   help="also time N configurations (the first valid rows) on the NumPy engine, on the workers")
    p.add_argument("--measure-repeat", type=_positive_int, default=3, metavar="N",
                   help="timed forward passes per measured configuration (default 3, the median kept)")
    p.set_defaults(func=_cmd_space)
    p = sub.add_parser("search", parents=[common], help="search a design space under budgets (regularized "
                       "evolution)", description="Find the configurations of a spec's design space that do best "
                       "on an objective while meeting every budget.", epilog=_EXAMPLES["search"],
                       formatter_class=_formatter)
    p.add_argument("--budget", action="append", default=[], metavar="EXPR",
                   help="a limit such as 'macs<=400e6' or 'peak_activation_bytes<20M'; repeatable")
    p.add_argument("--objective", required=True, metavar="METRIC:max|min", help="what to maximise or minimise")
    p.add_argument("--population", type=_int_at_least(2, "an integer >= 2"), default=64, metavar="P")
    p.add_argument("--sample-size", type=_positive_int, metavar="S", help="tournament size (default P/4)")
    p.add_argument("--generations", type=_non_negative_int, default=50, metavar="G",
                   help="rounds of P children after the first population (default 50)")
    p.add_argument("--batch-size", type=_positive_int, default=8, metavar="B",
                   help="children evaluated together, in parallel (default 8; part of what the seed decides)")
    p.add_argument("--strategy", choices=("auto", "evolution", "exhaustive"), default="auto")
    p.add_argument("--top", type=_positive_int, default=10, metavar="K", help="configurations to print (default 10)")
    p.set_defaults(func=_cmd_search)


def _cmd_space(args: argparse.Namespace) -> None:
    from .space.commands import space_command
    _space_run(space_command, args)


def _cmd_search(args: argparse.Namespace) -> None:
    from .space.commands import search_command
    _space_run(search_command, args)


def _space_run(command, args: argparse.Namespace) -> None:
    bar = _ProgressBar(args.quiet)
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


def _load_model(args: argparse.Namespace, source: str):
    """The model a command names: a zoo name, a spec file, or a foreign file (.onnx), the last
    with the command's --input (sizes the file leaves open) and --allow-unknown."""
    from .graph import load

    shape = tuple(args.input) if getattr(args, "input", None) else None
    return load(source, dict(getattr(args, "arg", ())) or None, input_shape=shape,
                allow_unknown=getattr(args, "allow_unknown", False))


def _unknown_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-unknown", action="store_true",
                   help="import the nodes of a foreign file (.onnx) that archstat has no layer type for as "
                        "layers that are not counted (listed in the report), instead of refusing the file")


def _cmd_import(args: argparse.Namespace) -> None:
    import json

    from .spec_writer import spec_data, spec_text

    model = _load_model(args, args.spec)
    json_out = (args.output or "").lower().endswith(".json")
    _emit(args, json.dumps(spec_data(model), indent=2) + "\n" if json_out else spec_text(model))


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
    _unknown_option(p)


def _output_options(p: argparse.ArgumentParser, formats: Sequence[str]) -> None:
    p.add_argument("--format", "-f", choices=formats, default=None,
                   help=f"output format (default: from the -o suffix, else {formats[0]})")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(formats=tuple(formats))


def _view_options(p: argparse.ArgumentParser, depth: bool = False) -> None:
    """--columns (and --depth): how the terminal table is laid out."""
    p.add_argument("--columns", type=_int_at_least(40, "a width of 40 to 10000 characters", 10000), metavar="N",
                   help="fit the table to N characters (default: the terminal's width, or $COLUMNS; no limit "
                        "when writing to a file or pipe)")
    if depth:
        p.add_argument("--depth", type=_int_at_least(1, "a depth of 1 to 100", 100), metavar="N",
                       help="one row per block: layers summed by the first N parts of their dotted names "
                            "(features.denseblock1 at 2), like torchinfo's depth (table, md, html)")


def _width(args: argparse.Namespace) -> int | None:
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


def _spec_arg(text: str) -> tuple[str, object]:
    from .spec_io import parse_value

    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), parse_value(value)


def _int_at_least(minimum: int, what: str, maximum: int | None = None):
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


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "an integer >= 0")


_SUFFIX_FORMATS = {".md": "md", ".markdown": "md", ".csv": "csv", ".json": "json", ".html": "html",
                   ".htm": "html", ".txt": "table"}


def _format(args: argparse.Namespace, default: str) -> str:
    if args.format:
        return args.format
    if args.output:
        suffix = Path(args.output).suffix.lower()
        formats = getattr(args, "formats", tuple(_SUFFIX_FORMATS.values()))
        if _SUFFIX_FORMATS.get(suffix) in formats:
            return _SUFFIX_FORMATS[suffix]
        if suffix in _SUFFIX_FORMATS:
            raise ArchstatError(f"this command does not write {_SUFFIX_FORMATS[suffix]} (the suffix {suffix!r})",
                                field="--output", file=str(args.output),
                                hint=f"it writes {', '.join(formats)}: choose a suffix for one of them, "
                                     "or give --format")
        if suffix:  # x.pdf, x.png: text under a name that promises something else
            raise ArchstatError(f"cannot tell a report format from the suffix {suffix!r}", field="--output",
                                file=str(args.output),
                                hint=f"name the file {', '.join(sorted(set(_SUFFIX_FORMATS)))}, or give "
                                     "--format explicitly")
    return default


def _emit(args: argparse.Namespace, text: str) -> None:
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
    from .outfile import write_file
    path = write_file(args.output, text, field="--output")
    if str(path) != "-":
        print(f"wrote {path}", file=sys.stderr)


def _cmd_report(args: argparse.Namespace) -> None:
    from .analysis import analyze
    from .report.table import render_report

    model = _load_model(args, args.spec)
    analysis = analyze(model, batch=args.batch, dtype=args.dtype,
                       input_shape=tuple(args.input) if args.input else None, optimizer=args.optimizer)
    if args.convention is not None:
        from .conventions import apply, get
        apply(analysis, get(args.convention, "--convention").name)
    _emit(args, render_report(analysis, _format(args, "table"), width=_width(args), depth=args.depth))


def _cmd_conventions(args: argparse.Namespace) -> None:
    from .analysis import analyze
    from .conventions import get
    from .report.conventions_table import render_conventions, render_explain

    if args.explain is not None:
        args.explain = get(args.explain, "--explain").name   # an unknown name fails before any work
    model = _load_model(args, args.spec)
    analysis = analyze(model, batch=args.batch, dtype=args.dtype,
                       input_shape=tuple(args.input) if args.input else None, optimizer=args.optimizer)
    fmt = _format(args, "table")
    _emit(args, render_explain(analysis, args.explain, fmt) if args.explain is not None
          else render_conventions(analysis, fmt))


def _cmd_compare(args: argparse.Namespace) -> None:
    from .analysis import analyze
    from .report.compare_table import render_compare

    analyses = [analyze(_load_model(args, path), batch=args.batch, dtype=args.dtype, optimizer=args.optimizer)
                for path in args.specs]
    _emit(args, render_compare(analyses, _format(args, "table"), width=_width(args)))


def _cmd_zoo(args: argparse.Namespace) -> None:
    from .report.zoo_table import render_zoo, zoo_rows

    rows = zoo_rows(args.family, batch=args.batch, dtype=args.dtype)
    _emit(args, render_zoo(rows, _format(args, "table"), batch=args.batch, dtype=args.dtype))


def _cmd_graph(args: argparse.Namespace) -> None:
    from .analysis import analyze
    from .report.graph_dot import to_dot
    from .report.graph_draw import draw_graph

    model = _load_model(args, args.spec)
    analysis = analyze(model)
    if not args.output:
        sys.stdout.write(to_dot(model, analysis, color_by=args.color_by, collapse=args.collapse, blocks=args.blocks))
        return
    path = draw_graph(model, args.output, analysis=analysis, color_by=args.color_by,
                      collapse=args.collapse, title=args.title, blocks=args.blocks)
    print(f"wrote {path}", file=sys.stderr)


def _cmd_reproduce(args: argparse.Namespace) -> None:
    from .report.reproduce import reproduce

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


def _cmd_completion(args: argparse.Namespace) -> None:
    from . import zoo
    from .cli_completion import bash_script
    sys.stdout.write(bash_script(build_parser(), list(zoo.entries())))


def _cmd_layers(args: argparse.Namespace) -> None:
    from .report.layer_types_table import render_layer_types

    _emit(args, render_layer_types(_format(args, "table")))


# ------------------------------------------------------------------ profiler commands

def _run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by profile and sweep."""
    p.add_argument("--arg", "-a", action="append", default=[], metavar="NAME=VALUE", type=_spec_arg,
                   help="override one of the spec's top-level args; repeatable")
    p.add_argument("--warmup", "-w", type=_non_negative_int, default=1, metavar="N",
                   help="untimed passes before timing (default 1)")
    p.add_argument("--backward", action="store_true", help="also time the backward pass (a training step)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="the engine's compute type (default float32)")
    p.add_argument("--input", type=_positive_int, nargs="+", metavar="DIM",
                   help="override the spec's input size: C H W")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="weights and input seed (default 0)")
    p.add_argument("--memory-limit", type=_size, default="auto", metavar="SIZE",
                   help="refuse, before allocating, a run predicted to need more (e.g. 4GB, 512MB; "
                        "'none'; default 'auto': 80%% of physical memory)")
    p.add_argument("--plot", metavar="FILE", help="also draw the figures (FILE.png, FILE.svg or FILE.pdf)")
    _unknown_option(p)
    _threads_option(p)
    _quiet_option(p)


def _threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", "-t", type=_int_at_least(1, "a thread count from 1 to 1024", 1024), metavar="N",
                   help="BLAS threads (default: the BLAS's own, usually one per core); 1 keeps timings "
                        "steady on a busy machine. Calibrations are kept per thread count")


def _blas_threads(n: int | None):
    """A context that limits the BLAS to ``n`` threads (threadpoolctl), or changes nothing."""
    if n is None:
        import contextlib
        return contextlib.nullcontext()
    import numpy  # noqa: F401  (loads the BLAS: threadpoolctl limits only loaded libraries)
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=n, user_api="blas")


def _quiet_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar on standard error")


_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10,
               "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _size(text: str) -> int | str | None:
    """Bytes from '4GB', '512MiB', '1e9' or a plain number; 'none' (no limit); 'auto'."""
    import re

    low = text.strip().lower()
    if low in ("none", "auto"):
        return None if low == "none" else "auto"
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)", low)
    if (not match or match.group(2) not in _SIZE_UNITS or not 0 < float(match.group(1)) < float("inf")
            or float(match.group(1)) * _SIZE_UNITS[match.group(2)] >= 2**63):
        raise argparse.ArgumentTypeError(f"expected a size such as 4GB, 512MB or 1000000, got {text!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def _memory_limit(value: int | str | None) -> int | None:
    if value != "auto":
        return value
    from .profiling.calibration import physical_memory

    total = physical_memory()
    return None if total is None else total * 4 // 5


class _ProgressBar:
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


def _cmd_calibrate(args: argparse.Namespace) -> None:
    from .profiling.calibration import calibrate, load_calibration
    from .report.profile_table import render_calibration

    if args.show:
        cal = load_calibration()
        if cal is None:
            raise ArchstatError("no calibration is cached for this machine", field="--show",
                                hint="run 'archstat calibrate'")
    else:
        bar = _ProgressBar(args.quiet, "calibrating: ")
        try:
            cal = calibrate(args.dtype, quick=args.quick, force=args.force, progress=bar)
        finally:
            bar.close()
    _emit(args, render_calibration(cal, _format(args, "table")))


def _keep_memory() -> None:
    # the command line is the program: it may opt the process in to keeping freed memory,
    # which removes page faults from every timed pass (see archstat.engine.memory)
    from .engine.memory import keep_freed_memory
    keep_freed_memory()


def _cmd_profile(args: argparse.Namespace) -> None:
    _keep_memory()
    from .profiling import get_calibration, ops_vs_time, profile
    from .report import plots, profile_plots
    from .report.profile_table import render_ops_time, render_profile

    fmt = _format(args, "table")
    if args.plot:
        plots.check_plot_path(args.plot)
    models = [_load_model(args, path) for path in args.specs]
    input_shape = tuple(args.input) if args.input else None
    limit = _memory_limit(args.memory_limit)
    bar = _ProgressBar(args.quiet)
    try:
        if len(models) == 1:
            bar.prefix = f"{models[0].name}: "
            result = profile(models[0], batch=args.batch, repeat=args.repeat, warmup=args.warmup,
                             backward=args.backward, dtype=args.dtype, input_shape=input_shape, seed=args.seed,
                             memory_limit=limit, memory=args.memory, progress=bar)
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
                                 progress=progress)
    finally:
        bar.close()
    _emit(args, (render_profile if len(models) == 1 else render_ops_time)(result, fmt, width=_width(args)))
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
    from .profiling import sweep
    from .report import plots, sweep_plots
    from .report.profile_table import render_sweep

    if args.plot:
        plots.check_plot_path(args.plot)
    model = _load_model(args, args.spec)
    bar = _ProgressBar(args.quiet, f"{model.name}: ")
    try:
        result = sweep(model, batches=args.batch, repeat=args.repeat, warmup=args.warmup, backward=args.backward,
                       dtype=args.dtype, input_shape=tuple(args.input) if args.input else None, seed=args.seed,
                       memory_limit=_memory_limit(args.memory_limit), progress=bar)
    finally:
        bar.close()
    _emit(args, render_sweep(result, _format(args, "table"), width=_width(args)))
    if args.plot and result.profiles:
        print(f"wrote {sweep_plots.batch_sweep(result, args.plot)}", file=sys.stderr)
    if result.interrupted:  # printed what was measured; main() reports it and exits 130
        raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (see :class:`ExitCode`)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the subcommand's own usage, not the top level's
        sub = next((a.choices.get(args.command) for a in parser._actions
                    if isinstance(a, argparse._SubParsersAction)), None) or parser
        second_spec = args.command == "report" and not extra[0].startswith("-")
        more = "; 'report' takes one spec: 'archstat compare' sets several side by side" if second_spec else ""
        if extra[0].startswith("-"):
            from .errors import did_you_mean
            hint = did_you_mean(extra[0].split("=")[0], [o for a in sub._actions for o in a.option_strings])
            if hint:
                sub.exit(ExitCode.USER_ERROR, f"{sub.prog}: error: unrecognized arguments: {' '.join(extra)}; "
                                              f"{hint} See '{sub.prog} --help'\n")
        sub.error(f"unrecognized arguments: {' '.join(extra)}{more}")
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return ExitCode.USER_ERROR
    try:
        with _blas_threads(getattr(args, "threads", None)):
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
    """Console-script entry point."""
    sys.exit(main())
