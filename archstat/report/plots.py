"""Plots for reports, drawn with matplotlib (imported lazily, Agg backend, never shown).

Each function takes plain data, writes PNG (or SVG, by suffix) and returns the path.
Figures are sized and lettered to go on a lecture slide as they are.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Sequence

FAMILY_COLOURS = {"conv": "#3b75af", "linear": "#ef8636", "pool": "#9a9a9a", "norm": "#59a14f",
                  "merge": "#b07aa1", "activation": "#d4a6c8", "shape": "#cccccc"}
FAMILY_LABELS = {"conv": "convolution", "linear": "fully connected", "pool": "pooling",
                 "norm": "normalisation", "merge": "merge", "activation": "activation", "shape": "input / reshape"}


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
        FigureCanvasAgg(fig)  # a renderer for text layout (adjustText), whatever the backend
        return fig, fig.subplots(*args, **kwargs)


def _figures() -> _Figures:
    return _Figures()


def stable_metadata(path: str | Path) -> dict[str, None]:
    """``savefig(metadata=...)`` that drops what changes from run to run or with an upgrade
    (the date, matplotlib's version), so that regenerated files only change when the data does. SVG clip
    ids are made stable by STYLE's ``svg.hashsalt``."""
    return {"Software": None} if Path(path).suffix.lower() == ".png" else {"Date": None, "Creator": None}


#: the picture formats reports and profiles write, by file suffix
PLOT_SUFFIXES = (".png", ".svg")


def check_plot_path(path: str | Path, field: str = "--plot") -> Path:
    """``path`` as a Path when it names a PNG or SVG file; ArchstatError otherwise (checked
    before anything is measured, so that a typo does not cost the run)."""
    from ..errors import ArchstatError
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PLOT_SUFFIXES:
        raise ArchstatError(f"cannot draw a figure as {suffix or 'a file without a suffix'!r} "
                            f"({path})", field=field,
                            hint=f"use a file name ending in {' or '.join(PLOT_SUFFIXES)}")
    return path


def save(fig, path: str | Path) -> Path:
    """Save as PNG or SVG (by suffix) without volatile metadata (:func:`stable_metadata`)."""
    path = check_plot_path(path, field="path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", metadata=stable_metadata(path))
    return path


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
        conv_mem = sum(m for m, l in zip(mem, layers) if l["family"] not in ("linear", "shape"))  # not input/FC
        fc_par = sum(p for p, l in zip(par, layers) if l["family"] == "linear")
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


@styled
def complexity_vs_accuracy(points: Sequence[dict[str, Any]], path: str | Path, *, x_key: str = "gmacs",
                           x_label: str = "operations (G multiply-accumulates, computed by archstat)",
                           title: str = "Top-1 accuracy vs operations (bubble area ~ parameters)") -> Path:
    """Canziani et al. 2016 Fig. 2 style: top-1 vs operations, bubble area ~ parameters.

    ``points``: dicts with ``label``, ``top1``, ``params`` (count), ``approximate`` (bool) and
    the x value under ``x_key``. Labels are placed without overlap (adjustText if installed,
    else a greedy nudge).
    """
    plt = _figures()
    fig, ax = plt.subplots(figsize=(10, 6.5))
    max_params = max(p["params"] for p in points)
    for p in points:
        area = 60 + 2400 * p["params"] / max_params
        ax.scatter(p[x_key], p["top1"], s=area, alpha=0.45,
                   color="#ef8636" if p.get("approximate") else "#3b75af", edgecolor="k", linewidth=0.6)
    texts = [ax.text(p[x_key], p["top1"], p["label"] + (" *" if p.get("approximate") else ""), fontsize=10)
             for p in points]
    _log_axis(ax.xaxis)
    ax.set_xlabel(x_label)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.margins(x=0.12, y=0.1)
    for size in (5e6, 25e6, 100e6):
        ax.scatter([], [], s=60 + 2400 * size / max_params, color="#999999", alpha=0.4, edgecolor="k",
                   label=f"{size / 1e6:.0f}M")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), labelspacing=2.2, borderpad=1.2, frameon=False,
              title="parameters", handletextpad=1.6)
    _declutter(ax, texts)
    _approximate_note(ax, points)
    return save(fig, path)


@styled
def accuracy_density(points: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Canziani et al. 2016 Fig. 10 style: top-1 accuracy per million parameters, as bars."""
    plt = _figures()
    ordered = sorted(points, key=lambda p: p["top1"] / (p["params"] / 1e6), reverse=True)
    fig, ax = plt.subplots(figsize=(10, 0.4 * len(ordered) + 1.5))
    values = [p["top1"] / (p["params"] / 1e6) for p in ordered]
    colours = ["#ef8636" if p.get("approximate") else "#3b75af" for p in ordered]
    y = range(len(ordered))
    if max(values) / min(values) > 20:
        # a wide range: a dot plot on a log axis (bars on a log axis would start nowhere)
        ax.hlines(y, min(values) / 1.5, values, color="#cccccc", lw=1)
        ax.scatter(values, y, color=colours, s=50, zorder=3)
        _log_axis(ax.xaxis)
        scale = "log scale"
    else:
        ax.barh(y, values, color=colours)
        scale = "linear scale"
    ax.set_yticks(list(y), [p["label"] + (" *" if p.get("approximate") else "") for p in ordered])
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.text(v, i, f"  {v:.2f}", va="center", fontsize=9)
    ax.set_xlabel(f"accuracy density: top-1 % per million parameters ({scale})")
    ax.set_title("Accuracy per parameter (Canziani et al. 2016, Fig. 10)")
    ax.grid(axis="x", alpha=0.3, which="both")
    _approximate_note(ax, ordered)
    return save(fig, path)


def _approximate_note(ax, points: Sequence[dict[str, Any]]) -> None:
    """The key to the orange points, when there are any."""
    if any(p.get("approximate") for p in points):
        ax.annotate("* accuracy approximate (read off a published figure)", (0.01, 0.01),
                    xycoords="axes fraction", fontsize=9, color="#ef8636")


def _log_axis(axis) -> None:
    """Log scale with plain-number ticks (0.5, 1, 2, 5, 10 ...) instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator
    axis.axes.set_xscale("log") if axis is axis.axes.xaxis else axis.axes.set_yscale("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _declutter(ax, texts) -> None:
    try:
        from adjustText import adjust_text
    except ImportError:  # greedy fallback: push overlapping labels apart vertically
        fig = ax.figure
        fig.canvas.draw()
        placed = []
        for t in sorted(texts, key=lambda t: t.get_position()[1]):
            box = t.get_window_extent()
            while any(box.overlaps(p) for p in placed):
                x, y = t.get_position()
                t.set_position((x, y + 0.35))
                box = t.get_window_extent()
            placed.append(box)
        return
    adjust_text(texts, ax=ax, expand=(1.3, 1.6), arrowprops={"arrowstyle": "-", "color": "#666", "lw": 0.6})
