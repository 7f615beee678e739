"""Figures of measured performance: time per layer, the roofline, operations vs time
(matplotlib, lazily; PNG, SVG or PDF by the file's suffix); the batch sweep's figure is
:mod:`.sweep_plots`'s, the shared pieces :mod:`.plot_parts`'.

Each function takes a result of :mod:`archstat.profiling` and a path, writes the figure and
returns the path. Every figure carries the machine it was measured on in a footnote.
Style and helpers come from :mod:`archstat.report.plots`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .labels import place_labels as _place_labels
from .plot_parts import (_family_legend, _footnote, _freeze_legend, _layout, _lighten, _machine_note, _nan0,
                         _plural, _run_label, _title, mac_unit)
from .plots import FAMILY_COLOURS, _figures, _log_axis, decade_ticks, save, styled
from .profile_table import _num, ms

FORWARD_ALPHA = 1.0
BACKWARD_LIGHTEN = 0.55
BOUND_MARKERS = {"compute": "o", "memory": "^"}
MODEL_COLOURS = ("#3b75af", "#ef8636", "#519e3e", "#c53a32", "#8d69b8", "#84584e", "#d57dbf", "#7f7f7f",
                 "#bcbd45", "#58bbcc")
#: the time-per-layer figure draws at most this many bars: for a deeper model, its slowest layers (in
#: execution order) and one bar summing the rest, so that the figure stays slide-shaped (about 10 x 11 inches)
MAX_BARS = 30
OTHER_COLOUR = "#8c8c8c"


def profile_figures(p, path: str | Path) -> list[Path]:
    """The three figures of one profile: ``path`` (time per layer), ``<stem>_roofline`` and
    ``<stem>_ops`` (MACs vs time), with ``path``'s suffix."""
    path = Path(path)
    return [layer_times(p, path), roofline(p, path.with_name(f"{path.stem}_roofline{path.suffix}")),
            ops_vs_time(p, path.with_name(f"{path.stem}_ops{path.suffix}"))]


# ------------------------------------------------------------------------ time per layer

def _bar_layers(rows: Sequence[dict[str, Any]], limit: int = MAX_BARS) -> tuple[list[dict], list[dict]]:
    """The layers drawn as bars of their own and those summed into one last bar: all and none when
    there are at most ``limit``; else the ``limit - 1`` slowest (by ``time_ms``, ties to the
    earlier layer), in execution order, and the rest."""
    rows = list(rows)
    if len(rows) <= limit:
        return rows, []
    times = [r["time_ms"] if r["time_ms"] == r["time_ms"] else -math.inf for r in rows]
    keep = set(sorted(range(len(rows)), key=lambda i: -times[i])[:limit - 1])
    return [r for i, r in enumerate(rows) if i in keep], [r for i, r in enumerate(rows) if i not in keep]


@styled
def layer_times(p, path: str | Path, max_bars: int = MAX_BARS) -> Path:
    """Horizontal bars of each layer's median time, forward (dark) and backward (light)
    stacked, coloured by layer family, with min-max whiskers and the share of the total.

    A model of more than ``max_bars`` layers shows its slowest ones, in execution order, and
    one hatched bar with the sum of the others (cut at the axis, with its value written, when
    it is much longer than the slowest layer), so that the bars still add up to the total."""
    plt = _figures()
    from matplotlib.patches import Patch

    every = [r for r in p.rows() if r["inputs"]]
    rows, rest = _bar_layers(every, max_bars)
    train = p.totals["mode"] == "training"
    n = len(rows)
    bars = n + bool(rest)
    fig, ax = plt.subplots(figsize=(11, 0.25 * bars + 2.4 + 0.25 * bool(rest)))
    y = np.arange(n)
    fwd = _nan0([r["forward_ms"] for r in rows])
    bwd = _nan0([r["backward_ms"] for r in rows]) if train else np.zeros(n)
    families = [r["family"] for r in rows]
    colours = [FAMILY_COLOURS.get(f, "#cccccc") for f in families]
    ax.barh(y, fwd, color=colours, height=0.75)
    if train:
        ax.barh(y, bwd, left=fwd, color=[_lighten(c, BACKWARD_LIGHTEN) for c in colours], height=0.75)
    total = fwd + bwd
    lo = _nan0([r["forward_min_ms"] for r in rows]) + (_nan0([r["backward_min_ms"] for r in rows]) if train else 0)
    hi = _nan0([r["forward_max_ms"] for r in rows]) + (_nan0([r["backward_max_ms"] for r in rows]) if train else 0)
    # the axis follows the medians: a disturbed repeat must not squash every bar; whiskers that
    # run past it are cut, and the label gives their end
    slowest = max(float(total.max()) if n else 1.0, 1e-9)
    other_fwd = float(np.sum(_nan0([r["forward_ms"] for r in rest])))
    other_bwd = float(np.sum(_nan0([r["backward_ms"] for r in rest]))) if train else 0.0
    other = other_fwd + other_bwd
    # the summed bar sets the axis unless it would squash the layers' bars; then it is cut
    right = max(slowest, other if other <= 2.5 * slowest else 0.0) * 1.2
    cut = hi > right
    ax.errorbar(total, y, xerr=[np.clip(total - lo, 0, None), np.clip(np.minimum(hi, right) - total, 0, None)],
                fmt="none", ecolor="#444444", elinewidth=0.8, capsize=2)
    if cut.any():
        ax.plot(np.full(int(cut.sum()), right), y[cut], marker=">", ls="none", color="#444444", ms=5)
    for i, r in enumerate(rows):
        if r["share"] == r["share"] and r["share"] >= 0.01:
            text = f"{ms(total[i])} ms  {100 * r['share']:.0f}%" + (f"  (max {ms(hi[i])})" if cut[i] else "")
            ax.text(min(max(hi[i], total[i]), right) + right * 0.012, i, text, va="center", fontsize=8.5,
                    color="#333333")
    names = [r["name"] for r in rows]
    extra = [Patch(facecolor="#777777", label="forward"), Patch(facecolor=_lighten("#777777", BACKWARD_LIGHTEN),
                                                                 label="backward")] if train else []
    if rest:
        shown_fwd = min(other_fwd, right)
        hatch = {"height": 0.75, "hatch": "///", "edgecolor": "white", "linewidth": 0}
        ax.barh([n], [shown_fwd], color=OTHER_COLOUR, **hatch)
        if train:
            ax.barh([n], [min(other_bwd, right - shown_fwd)], left=[shown_fwd],
                    color=_lighten(OTHER_COLOUR, BACKWARD_LIGHTEN), **hatch)
        share = float(np.nansum([r["share"] for r in rest]))
        text = f"{ms(other)} ms  {100 * share:.0f}%" if share == share else f"{ms(other)} ms"
        if other > right:
            ax.plot([right], [n], marker=">", ls="none", color="#444444", ms=5)
            ax.text(right * 0.985, n, text + "  (bar cut)", ha="right", va="center", fontsize=8.5, color="#333333",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5})
        else:
            ax.text(other + right * 0.012, n, text, va="center", fontsize=8.5, color="#333333")
        names.append(f"other {_plural(len(rest), 'layer')}")
        extra.append(Patch(facecolor=OTHER_COLOUR, hatch="///", edgecolor="white", linewidth=0,
                           label="other layers, summed"))
    ax.set_yticks(np.arange(bars), names, fontsize=9 if bars < 60 else 7)
    ax.set_ylim(bars - 0.4, -0.6)
    ax.set_xlim(0, right * 1.22)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel("time per batch (ms): median over the repeats, whiskers min-max")
    t = p.totals
    if train:
        sub = (f"forward {ms(t['forward_ms'])} ms + backward {ms(t['backward_ms'])} ms per batch, "
               f"{_num(t['images_per_s'])} images/s")
    else:
        sub = f"forward {ms(t['forward_ms'])} ms per batch, {_num(t['images_per_s'])} images/s"
    lines = [f"{p.model.name}: measured time per layer ({_run_label(p)})", sub]
    if rest:
        lines.append(f"the {n} slowest of {len(every)} layers, in execution order; "
                     f"the other {len(rest)} summed in the last bar")
    visible = [f for f, r in zip(families, rows) if r["share"] == r["share"] and r["share"] >= 0.005]
    # a long model's last bar is the summed one, often long: the legend goes where the bars leave room
    _family_legend(ax, visible or families, extra, loc="best" if rest else "lower right", fontsize=9)
    bottom = _footnote(fig, _machine_note(p.machine, p.calibration, p.dtype), [p])
    _layout(fig, bottom, [(ax, lines)])
    return save(fig, path)


# ------------------------------------------------------------------------ roofline

@styled
def roofline(p, path: str | Path, label_top: int = 8) -> Path:
    """The roofline of this machine with every layer that computes as a point: x its
    arithmetic intensity, y its achieved forward GFLOP/s, area ~ its share of the forward time."""
    plt = _figures()
    from ..profiling.roofline import Roofline

    t = p.totals
    roof = Roofline(t["gemm_peak_gflops"], t["bandwidth_gbs"])
    rows = [r for r in p.rows() if r["inputs"] and r["flops"] and r["gflops"] == r["gflops"] and r["gflops"] > 0]
    skipped = sum(1 for r in p.rows() if r["inputs"]) - len(rows)
    fig, ax = plt.subplots(figsize=(10.5, 6.8))
    xs = np.array([r["intensity"] for r in rows]) if rows else np.array([roof.ridge])
    ys = np.array([r["gflops"] for r in rows]) if rows else np.array([roof.peak_gflops])
    x_lo = min(xs.min(), roof.ridge) / 3
    x_hi = max(xs.max(), roof.ridge) * 3
    grid = np.geomspace(x_lo, x_hi, 400)
    roof_line, = ax.plot(grid, roof.attainable(grid), color="#222222", lw=2.2, zorder=2)
    ax.axvline(roof.ridge, color="#888888", ls=":", lw=1, zorder=1)
    y_lo = min(ys.min(), float(roof.attainable(x_lo))) / 3
    y_hi = max(roof.peak_gflops, ys.max()) * 2.5
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    families = [r["family"] for r in rows]
    fwd_total = sum(r["forward_ms"] for r in p.rows() if r["forward_ms"] == r["forward_ms"]) or 1.0
    shares = np.array([r["forward_ms"] / fwd_total for r in rows]) if rows else np.array([])
    ax.scatter(xs[:len(rows)], ys[:len(rows)], s=25 + 1800 * shares,
               c=[FAMILY_COLOURS.get(f, "#cccccc") for f in families], alpha=0.8, edgecolor="k", linewidth=0.6,
               zorder=3)
    _log_axis(ax.xaxis)
    _log_axis(ax.yaxis)
    # roof labels: on the flat roof just right of the ridge, and along the slope at its on-screen angle
    notes = [ax.text(roof.ridge * 1.12, roof.peak_gflops * 1.1,
                     f"GEMM peak {roof.peak_gflops:.0f} GFLOP/s\n(np.matmul, {p.dtype})", ha="left", va="bottom",
                     fontsize=10)]
    x0 = x_lo * 1.6
    slope = ax.text(x0, float(roof.attainable(x0)) * 1.25, f"memory {roof.bandwidth_gbs:.1f} GB/s (np.copyto)",
                    rotation_mode="anchor", ha="left", va="bottom", fontsize=10)
    notes += [slope,
              ax.text(roof.ridge, y_lo * 2.3, f"ridge {roof.ridge:.1f} FLOP/B", fontsize=9, color="#555555",
                      ha="center", bbox={"facecolor": "white", "edgecolor": "none", "pad": 1}),
              ax.text(roof.ridge / 1.08, y_lo * 1.25, "memory-bound \u2190", fontsize=10, color="#777777", ha="right"),
              ax.text(roof.ridge * 1.08, y_lo * 1.25, "\u2192 compute-bound", fontsize=10, color="#777777",
                      ha="left")]
    ax.set_xlabel("arithmetic intensity (FLOPs per byte of inputs, weights and output, each moved once)")
    ax.set_ylabel("achieved forward rate (GFLOP/s)")
    ax.grid(alpha=0.25, which="major")
    order = sorted(range(len(rows)), key=lambda i: -shares[i])[:label_top]

    def title(named: int) -> list[str]:
        asked = len(order)
        which = ("the slowest layer" if asked == 1 else f"the {asked} slowest layers") + " named"
        lines = [f"{p.model.name}: roofline ({_run_label(p)})",
                 "point area ~ share of the forward time" + ("" if not asked else f"; {which}" if named == asked
                                                             else f"; {named} of {which} (no room for the rest)")]
        if skipped:
            lines.append(f"{_plural(skipped, 'layer')} without FLOPs or time not shown")
        return lines

    # "best": clear of the points, the roof and its notes (the ridge can sit near either side)
    _family_legend(ax, families, loc="best", fontsize=9)
    bottom = _footnote(fig, _machine_note(p.machine, p.calibration, p.dtype), [p])
    _layout(fig, bottom, [(ax, title(len(order)))])
    # the slope's on-screen angle, once the axes have their final size
    fig.canvas.draw()
    p0 = ax.transData.transform((x0, float(roof.attainable(x0))))
    p1 = ax.transData.transform((x0 * 2, float(roof.attainable(x0 * 2))))
    slope.set_rotation(math.degrees(math.atan2(p1[1] - p0[1], p1[0] - p0[0])))
    _freeze_legend(ax)
    named = _place_labels(ax, [(xs[i], ys[i]) for i in order], [rows[i]["name"] for i in order],
                          np.column_stack([xs[:len(rows)], ys[:len(rows)]]), 25 + 1800 * shares,
                          avoid=[ax.get_legend(), *notes], lines=[roof_line])
    if len(named) < len(order):
        _title(ax, *title(len(named)))
    return save(fig, path)


# ------------------------------------------------------------------------ operations vs time

@styled
def ops_vs_time(data, path: str | Path, label_top: int = 8) -> Path:
    """Forward time against MACs with a least-squares line and R^2: across the conv and
    linear layers (and, for several models, across whole models), after Canziani et al.
    2016. ``data`` is an :class:`~archstat.profiling.OpsTime` or a single Profile.

    Each panel counts MACs in the unit its largest value calls for (:func:`mac_unit`) and gives
    the fit's slope per that unit. One model's ``label_top`` slowest layers are named."""
    plt = _figures()
    from matplotlib.lines import Line2D

    from ..profiling.studies import OpsTime

    if not isinstance(data, OpsTime):
        data = OpsTime([data], data.calibration, data.batch, data.interrupted)
    several = len(data.model_rows) > 1
    fig, axes = plt.subplots(1, 2 if several else 1, figsize=(14 if several else 9, 6.2), squeeze=False)
    ax = axes[0, 0]
    models = list(dict.fromkeys(r["model"] for r in data.layer_rows))
    scale, prefix = mac_unit(max((r["macs"] for r in data.layer_rows), default=0))
    for k, model in enumerate(models):
        for bound, marker in BOUND_MARKERS.items():
            pts = [r for r in data.layer_rows if r["model"] == model and r["bound"] == bound]
            if not pts:
                continue
            if several:
                style = {"color": MODEL_COLOURS[k % len(MODEL_COLOURS)]}
            else:
                style = {"c": [FAMILY_COLOURS.get(r["family"], "#cccccc") for r in pts]}
            ax.scatter([r["macs"] / scale for r in pts], [r["forward_ms"] for r in pts], s=40, alpha=0.75,
                       marker=marker, edgecolor="k", linewidth=0.5, zorder=3, **style)
    fit_lines = _fit_line(ax, data.fits["layers"], [r["macs"] for r in data.layer_rows], scale)
    compute_fit = data.fits["compute-bound layers"]
    dashed = compute_fit.n >= 3 and compute_fit.n < data.fits["layers"].n
    if dashed:
        fit_lines += _fit_line(ax, compute_fit, [r["macs"] for r in data.layer_rows if r["bound"] == "compute"],
                               scale, color="#555555", ls="--")
    ax.set_xlabel(f"multiply-accumulates per batch ({_macs_label(prefix)}, from the analysis; log scale)")
    ax.set_ylabel("measured forward time per batch (ms, log scale)")
    scope = "every conv and linear layer" + (f" of {len(models)} models" if several else "")
    name = "" if several else f"{models[0]}: " if models else ""
    titles = [(ax, [f"{name}MACs vs time, {scope}", _fit_caption(data.fits["layers"], scale, prefix)]
               + ([f"compute-bound layers only (dashed): R$^2$ = {compute_fit.r2:.3f} (n = {compute_fit.n})"]
                  if dashed else []))]
    ax.grid(alpha=0.3)
    # log-log: layers span three or four decades of MACs and of time; on linear axes most of
    # them pile up at the origin under the few largest
    _log_axis(ax.xaxis)
    _log_axis(ax.yaxis)
    _pad_log(ax, [r["macs"] / scale for r in data.layer_rows], [r["forward_ms"] for r in data.layer_rows])
    markers = [Line2D([], [], ls="", marker=m, color="#777777", markeredgecolor="k", label=f"{b}-bound layer")
               for b, m in BOUND_MARKERS.items() if any(r["bound"] == b for r in data.layer_rows)]
    markers.append(Line2D([], [], color="#c53a32", lw=1.6, label="least-squares line"))
    if dashed:
        markers.append(Line2D([], [], color="#555555", ls="--", lw=1.6, label="line of compute-bound layers"))
    ax2 = None
    if several:
        from matplotlib.patches import Patch
        ax.legend(handles=[Patch(color=MODEL_COLOURS[k % len(MODEL_COLOURS)], label=m) for k, m in enumerate(models)]
                  + markers, frameon=False, fontsize=9, loc="lower left", bbox_to_anchor=(1.01, 0.0))   # off the points, under the titles
        ax2 = axes[0, 1]
        rows = data.model_rows
        scale2, prefix2 = mac_unit(max(r["macs"] for r in rows))
        ax2.scatter([r["macs"] / scale2 for r in rows], [r["forward_ms"] for r in rows], s=60,
                    color=[MODEL_COLOURS[models.index(r["model"]) % len(MODEL_COLOURS)] if r["model"] in models
                           else "#777777" for r in rows], edgecolor="k", zorder=3)
        model_lines = _fit_line(ax2, data.fits["models"], [r["macs"] for r in rows], scale2)
        ax2.set_xlabel(f"multiply-accumulates per batch ({_macs_label(prefix2)}, log scale)")
        ax2.set_ylabel("measured forward time per batch (ms, log scale)")
        titles.append((ax2, ["whole models", _fit_caption(data.fits["models"], scale2, prefix2)]))
        ax2.grid(alpha=0.3)
        _log_axis(ax2.xaxis)
        _log_axis(ax2.yaxis)
        _pad_log(ax2, [r["macs"] / scale2 for r in rows], [r["forward_ms"] for r in rows])
    else:
        _family_legend(ax, [r["family"] for r in data.layer_rows], markers, loc="best", fontsize=9)
    dtype = data.profiles[0].dtype if data.profiles else "float32"
    fig.suptitle(f"Do operations predict time? MACs vs measured forward time (batch {data.batch}, {dtype}, "
                 "NumPy engine)\nthe claim of Canziani, Paszke & Culurciello 2016", x=0.01, ha="left", fontsize=12)
    bottom = _footnote(fig, _machine_note(data.machine, data.calibration, dtype), data.profiles)
    _layout(fig, bottom, titles)
    _freeze_legend(ax)
    if ax2 is not None:
        _place_labels(ax2, [(r["macs"] / scale2, r["forward_ms"]) for r in rows], [r["model"] for r in rows],
                      [(r["macs"] / scale2, r["forward_ms"]) for r in rows], 60, lines=model_lines, fontsize=10)
    elif data.layer_rows:
        top = sorted(data.layer_rows, key=lambda r: -r["forward_ms"])[:label_top]
        _place_labels(ax, [(r["macs"] / scale, r["forward_ms"]) for r in top], [r["name"] for r in top],
                      [(r["macs"] / scale, r["forward_ms"]) for r in data.layer_rows], 40,
                      avoid=[ax.get_legend()], lines=fit_lines)
    return save(fig, path)


def _macs_label(prefix: str) -> str:
    return f"{prefix} MACs" if prefix else "MACs"


def _fit_line(ax, fit, macs: Sequence[int], scale: float = 1e9, color: str = "#c53a32", ls: str = "-") -> list[Any]:
    """Draw ``fit`` (ms against MACs) across ``macs`` on a log-log axis of MACs / ``scale``: the
    straight line of the fit bends there; where it predicts no time or less it is not drawn."""
    positive = [m for m in macs if m > 0]
    if math.isnan(fit.slope) or not positive:
        return []
    xs = np.geomspace(min(positive) / 1.5, max(positive) * 1.5, 200)
    ys = fit.slope * xs + fit.intercept
    keep = ys > 0
    return ax.plot(xs[keep] / scale, ys[keep], color=color, ls=ls, lw=1.6, zorder=2)


def _pad_log(ax, xs: Sequence[float], ys: Sequence[float], factor: float = 1.8) -> None:
    """Log-axis limits around the positive points, ``factor`` beyond them each way."""
    px = [x for x in xs if x > 0]
    py = [y for y in ys if y == y and y > 0]
    for axis, values, limit in ((ax.xaxis, px, ax.set_xlim), (ax.yaxis, py, ax.set_ylim)):
        if values:
            limit(min(values) / factor, max(values) * factor)
            decade_ticks(axis, values, 300)


def _slope_text(ms_per_mac: float, scale: float, prefix: str) -> str:
    """A slope in ms per MAC as time per ``prefix``MAC (the axis' unit), in ms, \u00b5s or ns: the
    first in which it reads at least 0.1."""
    per_unit = ms_per_mac * scale
    for factor, unit in ((1.0, "ms"), (1e3, "\u00b5s"), (1e6, "ns")):
        value = per_unit * factor
        if abs(value) >= 0.1:
            break
    return f"{value:.3g} {unit}/{prefix}MAC"


def _fit_caption(fit, scale: float = 1e9, prefix: str = "G") -> str:
    if math.isnan(fit.slope):
        return f"too few points for a fit ({fit.n})"
    return (f"fit: time = {_slope_text(fit.slope, scale, prefix)} x MACs {'+' if fit.intercept >= 0 else '-'} "
            f"{abs(fit.intercept):.2g} ms,  R$^2$ = {fit.r2:.3f} (n = {fit.n})")
