"""Plots for reports, drawn with matplotlib (imported lazily, Agg backend, never shown).

Each function takes plain data, writes PNG (or SVG, by suffix) and returns the path.
Figures are sized and lettered to go on a lecture slide as they are.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Sequence

def _family_look() -> tuple[dict[str, str], dict[str, str]]:
    """Colour and label of each layer family, from the registry: colours by the family's rank
    (the heavy families get the strong colours), labels as the family declares them."""
    from ..layers.registry import families
    # one hue per rank, none two alike (Tableau 10): activation yellow beside merge purple,
    # pooling teal beside reshape grey, so that a roofline's or a bar chart's families read apart
    palette = ("#3b75af", "#ef8636", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#bab0ac", "#9c755f", "#ff9da7")
    found = families().values()
    return ({f.name: palette[min(f.rank, len(palette) - 1)] for f in found},
            {f.name: f.label for f in found})


FAMILY_COLOURS, FAMILY_LABELS = _family_look()


#: the look of every archstat figure, applied per figure (the user's rcParams stay as they are)
STYLE = {"font.size": 11, "axes.titlesize": 13, "axes.labelsize": 11, "figure.dpi": 100, "savefig.dpi": 150,
         "axes.spines.top": False, "axes.spines.right": False, "svg.hashsalt": "archstat"}


def styled(draw):
    """Decorator: draw under archstat's STYLE without touching global rcParams or the backend."""
    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        import matplotlib
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)
    return wrapper


class _Figures:
    """pyplot's ``subplots`` without pyplot: figures are plain ``Figure`` objects, never
    registered with pyplot or shown, so plotting does not switch a notebook's backend."""

    @staticmethod
    def subplots(*args, figsize=None, **kwargs):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        fig = Figure(figsize=figsize)
        FigureCanvasAgg(fig)  # a renderer for text layout (label placement), whatever the backend
        return fig, fig.subplots(*args, **kwargs)


def _figures() -> _Figures:
    return _Figures()


def stable_metadata(fmt: str) -> dict[str, None]:
    """``savefig(metadata=...)`` for the format ``fmt`` (png, svg, pdf) that drops what changes
    from run to run or with an upgrade (the date, matplotlib's version), so that regenerated files
    only change when the data does. SVG clip ids are made stable by STYLE's ``svg.hashsalt``."""
    return {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
            "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}[fmt]


#: the picture formats reports and profiles write, by file suffix
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_plot_path(path: str | Path, field: str = "--plot", suffixes: Sequence[str] = PLOT_SUFFIXES,
                    what: str = "a figure") -> Path:
    """``path`` as a Path when its suffix is one of ``suffixes`` (PNG, SVG or PDF); ArchstatError
    otherwise, naming ``what`` is drawn (checked before anything is measured or drawn, so that a
    typo does not cost the run)."""
    from ..errors import ArchstatError
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        raise ArchstatError(f"cannot draw {what} as {suffix or 'a file without a suffix'!r} ({path.name})",
                            field=field, hint=f"use a file name ending in {', '.join(s[1:] for s in suffixes)}")
    return path


def save(fig, path: str | Path) -> Path:
    """Save as PNG, SVG or PDF (by suffix) without volatile metadata (:func:`stable_metadata`),
    through :func:`archstat.outfile.write_with`."""
    from ..outfile import write_with
    path = check_plot_path(path, field="path")
    fmt = path.suffix.lower()[1:]
    return write_with(path, lambda f: fig.savefig(f, format=fmt, bbox_inches="tight",
                                                  metadata=stable_metadata(fmt)))


@styled
def memory_and_params(models: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Per-layer activation memory and parameters, side by side, one row of panels per model.

    ``models``: dicts with ``title`` and ``layers`` (list of dicts with ``name``, ``family``,
    ``memory`` (bytes) and ``params``), in execution order. Shows the lecture's claim: most
    memory in the early conv layers, most parameters in the FC layers.
    """
    plt = _figures()
    from matplotlib.patches import Patch

    heights = [max(len(m["layers"]), 4) for m in models]
    fig, axes = plt.subplots(len(models), 2, figsize=(12, 0.26 * sum(heights) + 1.6 * len(models)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    families_seen: dict[str, str] = {}
    for row, model in enumerate(models):
        layers = model["layers"]
        names = [l["name"] for l in layers]
        colours = [FAMILY_COLOURS.get(l["family"], "#cccccc") for l in layers]
        for l in layers:
            families_seen[l["family"]] = FAMILY_COLOURS.get(l["family"], "#cccccc")
        y = range(len(layers))
        mem = [l["memory"] / 1e6 for l in layers]
        par = [l["params"] / 1e6 for l in layers]
        ax_m, ax_p = axes[row]
        ax_m.barh(y, mem, color=colours)
        ax_p.barh(y, par, color=colours)
        for ax in (ax_m, ax_p):
            ax.set_yticks(list(y), names, fontsize=9)
            ax.invert_yaxis()
            ax.grid(axis="x", alpha=0.3)
        ax_p.set_yticklabels([])
        total_mem = sum(mem)
        total_par = sum(par)
        from ..layers.linear import FAMILY as FC
        from ..layers.shape import FAMILY as SHAPE
        conv_mem = sum(m for m, l in zip(mem, layers) if l["family"] not in (FC, SHAPE))  # not input/FC
        fc_par = sum(p for p, l in zip(par, layers) if l["family"] == FC)
        ax_m.set_title(f"{model['title']}: activation memory per layer\n"
                       f"{100 * conv_mem / total_mem:.0f}% before the FC layers, input aside ({total_mem:.1f} MB with it)")
        ax_p.set_title(f"{model['title']}: parameters per layer\n"
                       f"{100 * fc_par / total_par:.0f}% in FC layers ({total_par:.1f} M in all)")
        ax_m.set_xlabel("output memory (MB, float32, batch 1)")
        ax_p.set_xlabel("parameters (millions)")
    handles = [Patch(color=c, label=FAMILY_LABELS.get(f, f)) for f, c in families_seen.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False,
               bbox_to_anchor=(0.5, -0.01))
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return save(fig, path)


def decade_ticks(axis, values, ratio: float) -> None:
    """Ticks at powers of ten only (1, 10, 100) when the positive ``values`` span more than
    ``ratio``: over many decades the 1-2-5 ticks of :func:`_log_axis` would collide."""
    positive = [v for v in values if v == v and v > 0]
    if positive and max(positive) / min(positive) > ratio:
        from matplotlib.ticker import LogLocator
        axis.set_major_locator(LogLocator(base=10, subs=(1.0,)))


def _log_axis(axis) -> None:
    """Log scale with plain-number ticks (0.5, 1, 2, 5, 10 ...) instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator
    axis.axes.set_xscale("log") if axis is axis.axes.xaxis else axis.axes.set_yscale("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
