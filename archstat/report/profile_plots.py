"""Figures of measured performance: time per layer, the roofline, operations vs time and
batch sweeps (matplotlib, lazily; PNG or SVG by the file's suffix).

Each function takes a result of :mod:`archstat.profiling` and a path, writes the figure and
returns the path. Every figure carries the machine it was measured on in a footnote.
Style and helpers come from :mod:`archstat.report.plots`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .plots import FAMILY_COLOURS, FAMILY_LABELS, _figures, _log_axis, save, styled
from .profile_table import _num, ms

FORWARD_ALPHA = 1.0
BACKWARD_LIGHTEN = 0.55
BOUND_MARKERS = {"compute": "o", "memory": "^"}
MODEL_COLOURS = ("#3b75af", "#ef8636", "#519e3e", "#c53a32", "#8d69b8", "#84584e", "#d57dbf", "#7f7f7f",
                 "#bcbd45", "#58bbcc")


def profile_figures(p, path: str | Path) -> list[Path]:
    """The three figures of one profile: ``path`` (time per layer), ``<stem>_roofline`` and
    ``<stem>_ops`` (MACs vs time), with ``path``'s suffix."""
    path = Path(path)
    return [layer_times(p, path), roofline(p, path.with_name(f"{path.stem}_roofline{path.suffix}")),
            ops_vs_time(p, path.with_name(f"{path.stem}_ops{path.suffix}"))]


# ------------------------------------------------------------------------ helpers

def _lighten(hex_colour: str, amount: float) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb
    r, g, b = to_rgb(hex_colour)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


def _machine_note(machine: dict[str, Any], cal, dtype: str | None = None) -> str:
    from ..profiling.calibration import describe_blas
    peak = (f"GEMM peak {cal.peak(dtype):.0f} GFLOP/s {dtype}" if dtype in cal.gemm_gflops
            else ", ".join(f"GEMM peak {v:.0f} GFLOP/s {k}" for k, v in cal.gemm_gflops.items()))
    return (f"{machine.get('cpu')}, {machine.get('cores')} cores; NumPy {machine.get('numpy')}, "
            f"{describe_blas(machine)}; {peak}, memory {cal.bandwidth_gbs:.1f} GB/s (np.copyto)")


def _footnote(fig, text: str, profiles: Sequence[Any] = ()) -> float:
    """The machine (and, above it, a warning when other processes disturbed the timing) at the
    bottom of the figure; returns the figure fraction they take, for ``tight_layout(rect=...)``."""
    from matplotlib.transforms import offset_copy

    from ..profiling.core import BUSY
    shares = [p.totals.get("other_cpu_share") for p in profiles]
    worst = max((v for v in shares if v is not None), default=None)
    lines = 1
    fig.text(0.01, 0.003, text, fontsize=8, color="#666666", ha="left", va="bottom")
    if worst is not None and worst > BUSY:
        lines = 2
        fig.text(0.01, 0.003, f"Disturbed: other processes used {100 * worst:.0f}% of the CPUs while timing; "
                              "absolute times are inflated.", fontsize=8, color="#c53a32", ha="left", va="bottom",
                 transform=offset_copy(fig.transFigure, fig=fig, y=11, units="points"))
    return (lines * 11 + 6) / (fig.get_figheight() * 72)


def _nan0(values) -> np.ndarray:
    return np.nan_to_num(np.asarray(values, dtype=float), nan=0.0)


def _run_label(p) -> str:
    t = p.totals
    mode = "forward + backward" if t["mode"] == "training" else "forward"
    text = f"batch {p.batch}, {p.dtype}, {mode}, median of {t['repeats_done']}"
    return text + (" (interrupted)" if p.interrupted else "")


def _family_legend(ax, families: Sequence[str], extra: Sequence[Any] = (), **kwargs) -> None:
    from matplotlib.patches import Patch
    handles = [Patch(color=FAMILY_COLOURS.get(f, "#cccccc"), label=FAMILY_LABELS.get(f, f))
               for f in dict.fromkeys(families)]
    ax.legend(handles=[*handles, *extra], frameon=False, **kwargs)


# ------------------------------------------------------------------------ time per layer

@styled
def layer_times(p, path: str | Path) -> Path:
    """Horizontal bars of each layer's median time, forward (dark) and backward (light)
    stacked, coloured by layer family, with min-max whiskers and the share of the total."""
    plt = _figures()
    from matplotlib.patches import Patch

    rows = [r for r in p.rows() if r["inputs"]]
    train = p.totals["mode"] == "training"
    n = len(rows)
    fig, ax = plt.subplots(figsize=(11, 0.25 * n + 2.4))
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
    right = max(float(total.max()) if n else 1.0, 1e-9) * 1.2
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
    ax.set_yticks(y, [r["name"] for r in rows], fontsize=9 if n < 60 else 7)
    ax.set_ylim(n - 0.4, -0.6)
    ax.set_xlim(0, right * 1.22)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel("time per batch (ms): median over the repeats, whiskers min-max")
    t = p.totals
    if train:
        sub = (f"forward {ms(t['forward_ms'])} ms + backward {ms(t['backward_ms'])} ms per batch, "
               f"{_num(t['images_per_s'])} images/s")
    else:
        sub = f"forward {ms(t['forward_ms'])} ms per batch, {_num(t['images_per_s'])} images/s"
    ax.set_title(f"{p.model.name}: measured time per layer ({_run_label(p)})\n{sub}", loc="left")
    extra = [Patch(facecolor="#777777", label="forward"), Patch(facecolor=_lighten("#777777", BACKWARD_LIGHTEN),
                                                                 label="backward")] if train else []
    visible = [f for f, r in zip(families, rows) if r["share"] == r["share"] and r["share"] >= 0.005]
    _family_legend(ax, visible or families, extra, loc="lower right", fontsize=9)
    bottom = _footnote(fig, _machine_note(p.machine, p.calibration, p.dtype), [p])
    fig.tight_layout(rect=(0, bottom, 1, 1))
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
    ax.plot(grid, roof.attainable(grid), color="#222222", lw=2.2, zorder=2)
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
    ax.text(roof.ridge * 1.12, roof.peak_gflops * 1.1,
            f"GEMM peak {roof.peak_gflops:.0f} GFLOP/s\n(np.matmul, {p.dtype})", ha="left", va="bottom", fontsize=10)
    x0 = x_lo * 1.6
    fig.canvas.draw()
    p0 = ax.transData.transform((x0, float(roof.attainable(x0))))
    p1 = ax.transData.transform((x0 * 2, float(roof.attainable(x0 * 2))))
    angle = math.degrees(math.atan2(p1[1] - p0[1], p1[0] - p0[0]))
    ax.text(x0, float(roof.attainable(x0)) * 1.25, f"memory {roof.bandwidth_gbs:.1f} GB/s (np.copyto)",
            rotation=angle, rotation_mode="anchor", ha="left", va="bottom", fontsize=10)
    ax.text(roof.ridge, y_lo * 2.3, f"ridge {roof.ridge:.1f} FLOP/B", fontsize=9, color="#555555", ha="center",
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    ax.text(roof.ridge / 1.08, y_lo * 1.25, "memory-bound \u2190", fontsize=10, color="#777777", ha="right")
    ax.text(roof.ridge * 1.08, y_lo * 1.25, "\u2192 compute-bound", fontsize=10, color="#777777", ha="left")
    order = sorted(range(len(rows)), key=lambda i: -shares[i])[:label_top]
    texts = [ax.text(xs[i], ys[i], f" {rows[i]['name']}", fontsize=9) for i in order]
    if texts:
        from .plots import _declutter
        _declutter(ax, texts)
    ax.set_xlabel("arithmetic intensity (FLOPs per byte of inputs, weights and output, each moved once)")
    ax.set_ylabel("achieved forward rate (GFLOP/s)")
    ax.grid(alpha=0.25, which="major")
    note = f"; {skipped} layers without FLOPs or time not shown" if skipped else ""
    ax.set_title(f"{p.model.name}: roofline ({_run_label(p)})\npoint area ~ share of the forward time; "
                 f"the {min(label_top, len(rows))} slowest layers named{note}", loc="left")
    _family_legend(ax, families, loc="lower right", fontsize=9)
    bottom = _footnote(fig, _machine_note(p.machine, p.calibration, p.dtype), [p])
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return save(fig, path)


# ------------------------------------------------------------------------ operations vs time

@styled
def ops_vs_time(data, path: str | Path) -> Path:
    """Forward time against MACs with a least-squares line and R^2: across the conv and
    linear layers (and, for several models, across whole models), after Canziani et al.
    2016. ``data`` is an :class:`~archstat.profiling.OpsTime` or a single Profile."""
    plt = _figures()
    from ..profiling.studies import OpsTime

    if not isinstance(data, OpsTime):
        data = OpsTime([data], data.calibration, data.batch, data.interrupted)
    several = len(data.model_rows) > 1
    fig, axes = plt.subplots(1, 2 if several else 1, figsize=(14 if several else 9, 6.2), squeeze=False)
    ax = axes[0, 0]
    models = list(dict.fromkeys(r["model"] for r in data.layer_rows))
    for k, model in enumerate(models):
        for bound, marker in BOUND_MARKERS.items():
            pts = [r for r in data.layer_rows if r["model"] == model and r["bound"] == bound]
            if not pts:
                continue
            if several:
                style = {"color": MODEL_COLOURS[k % len(MODEL_COLOURS)]}
            else:
                style = {"c": [FAMILY_COLOURS.get(r["family"], "#cccccc") for r in pts]}
            ax.scatter([r["macs"] / 1e9 for r in pts], [r["forward_ms"] for r in pts], s=40, alpha=0.75,
                       marker=marker, edgecolor="k", linewidth=0.5, zorder=3, **style)
    _fit_line(ax, data.fits["layers"], [r["macs"] for r in data.layer_rows])
    compute_fit = data.fits["compute-bound layers"]
    if compute_fit.n >= 3 and compute_fit.n < data.fits["layers"].n:
        _fit_line(ax, compute_fit, [r["macs"] for r in data.layer_rows if r["bound"] == "compute"],
                  color="#555555", ls="--")
    if not several and data.layer_rows:
        top = sorted(data.layer_rows, key=lambda r: -r["forward_ms"])[:12]
        texts = [ax.text(r["macs"] / 1e9, r["forward_ms"], f" {r['name']}", fontsize=9) for r in top]
        from .plots import _declutter
        _declutter(ax, texts)
    ax.set_xlabel("multiply-accumulates per batch (G MACs, from the analysis)")
    ax.set_ylabel("measured forward time per batch (ms)")
    scope = "every conv and linear layer" + (f" of {len(models)} models" if several else "")
    name = "" if several else f"{models[0]}: " if models else ""
    caption = _fit_caption(data.fits["layers"])
    if compute_fit.n >= 3 and compute_fit.n < data.fits["layers"].n:
        caption += f"\ncompute-bound layers only (dashed): R$^2$ = {compute_fit.r2:.3f} (n = {compute_fit.n})"
    ax.set_title(f"{name}MACs vs time, {scope}\n{caption}", loc="left")
    ax.grid(alpha=0.3)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    from matplotlib.lines import Line2D
    markers = [Line2D([], [], ls="", marker=m, color="#777777", markeredgecolor="k", label=f"{b}-bound layer")
               for b, m in BOUND_MARKERS.items() if any(r["bound"] == b for r in data.layer_rows)]
    markers.append(Line2D([], [], color="#c53a32", lw=1.6, label="least-squares line"))
    if compute_fit.n >= 3 and compute_fit.n < data.fits["layers"].n:
        markers.append(Line2D([], [], color="#555555", ls="--", lw=1.6, label="line of compute-bound layers"))
    if several:
        from matplotlib.patches import Patch
        ax.legend(handles=[Patch(color=MODEL_COLOURS[k % len(MODEL_COLOURS)], label=m) for k, m in enumerate(models)]
                  + markers, frameon=False, fontsize=9, loc="lower right")
        ax2 = axes[0, 1]
        rows = data.model_rows
        ax2.scatter([r["macs"] / 1e9 for r in rows], [r["forward_ms"] for r in rows], s=60,
                    color=[MODEL_COLOURS[models.index(r["model"]) % len(MODEL_COLOURS)] if r["model"] in models
                           else "#777777" for r in rows], edgecolor="k", zorder=3)
        texts = [ax2.text(r["macs"] / 1e9, r["forward_ms"], f" {r['model']}", fontsize=10) for r in rows]
        _fit_line(ax2, data.fits["models"], [r["macs"] for r in rows])
        ax2.set_xlabel("multiply-accumulates per batch (G MACs)")
        ax2.set_ylabel("measured forward time per batch (ms)")
        ax2.set_title(f"whole models\n{_fit_caption(data.fits['models'])}", loc="left")
        ax2.grid(alpha=0.3)
        ax2.set_xlim(0, max(r["macs"] for r in rows) / 1e9 * 1.25)
        ax2.set_ylim(0, max(r["forward_ms"] for r in rows) * 1.15)
        from .plots import _declutter
        _declutter(ax2, texts)
    else:
        _family_legend(ax, [r["family"] for r in data.layer_rows], markers, loc="best", fontsize=9)
    dtype = data.profiles[0].dtype if data.profiles else "float32"
    fig.suptitle(f"Do operations predict time? MACs vs measured forward time (batch {data.batch}, {dtype}, "
                 "NumPy engine)\nthe claim of Canziani, Paszke & Culurciello 2016", x=0.01, ha="left", fontsize=12)
    bottom = _footnote(fig, _machine_note(data.machine, data.calibration, dtype), data.profiles)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return save(fig, path)


def _fit_line(ax, fit, macs: Sequence[int], color: str = "#c53a32", ls: str = "-") -> None:
    if math.isnan(fit.slope) or not macs:
        return
    xs = np.linspace(0, max(macs) * 1.05, 50)
    ax.plot(xs / 1e9, fit.slope * xs + fit.intercept, color=color, ls=ls, lw=1.6, zorder=2)


def _fit_caption(fit) -> str:
    if math.isnan(fit.slope):
        return f"too few points for a fit ({fit.n})"
    return (f"fit: time = {fit.slope * 1e9:.3g} ms/GMAC x MACs {'+' if fit.intercept >= 0 else '-'} "
            f"{abs(fit.intercept):.2g} ms,  R$^2$ = {fit.r2:.3f} (n = {fit.n})")


# ------------------------------------------------------------------------ batch sweep

@styled
def batch_sweep(s, path: str | Path) -> Path:
    """Time per image (with images/s) and peak memory (measured and predicted) against
    batch size, on a log2 batch axis."""
    plt = _figures()
    from matplotlib.ticker import FixedLocator, NullLocator

    rows = s.rows()
    batches = np.array([r["batch"] for r in rows], dtype=float)
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 5.4))
    per_image = np.array([r["ms_per_image"] for r in rows], dtype=float)
    lo = np.array([r["step_min_ms"] for r in rows], dtype=float) / batches
    hi = np.array([r["step_max_ms"] for r in rows], dtype=float) / batches
    ax_t.fill_between(batches, lo, hi, color="#3b75af", alpha=0.2, lw=0, label="min-max over repeats")
    ax_t.plot(batches, per_image, "o-", color="#3b75af", lw=2, label="median")
    for b, v, r in zip(batches, per_image, rows):
        if v == v:
            ax_t.annotate(f"{_num(r['images_per_s'])} img/s", (b, v), textcoords="offset points", xytext=(0, 9),
                          ha="center", fontsize=9, color="#333333")
    ax_t.set_ylabel("time per image (ms)")
    ax_t.set_title("time per image\nlabels: images per second", loc="left")
    ax_t.set_ylim(0, np.nanmax(hi) * 1.2 if np.isfinite(np.nanmax(hi)) else 1)
    measured = np.array([np.nan if r["measured_peak_bytes"] is None else r["measured_peak_bytes"] for r in rows],
                        dtype=float) / 1e6
    predicted = np.array([r["predicted_peak_bytes"] for r in rows], dtype=float) / 1e6
    ax_m.plot(batches, measured, "o-", color="#c53a32", lw=2, label="measured (tracemalloc + weights and input)")
    ax_m.plot(batches, predicted, "s--", color="#555555", lw=1.6, label="predicted by the analysis")
    first = next(iter(s.profiles.values()))
    weights = (first.totals["param_bytes"] + first.totals["buffer_bytes"]) / 1e6
    ax_m.axhline(weights, color="#999999", ls=":", lw=1)
    ax_m.text(batches.max(), weights, "weights ", ha="right", va="top", fontsize=9, color="#777777")
    ax_m.set_ylabel("peak memory (MB)")
    ax_m.set_ylim(0, max(np.nanmax(measured) if np.isfinite(np.nanmax(measured)) else 0, np.nanmax(predicted)) * 1.15)
    from ..profiling.studies import linear_fit
    fit = linear_fit(batches, measured)
    title = "peak memory of one pass"
    if fit.n >= 2 and not math.isnan(fit.slope):
        title += f"\nmeasured ~ {fit.intercept:.3g} MB + {fit.slope:.3g} MB per image"
    ax_m.set_title(title, loc="left")
    ax_m.legend(frameon=False, fontsize=9, loc="upper left")
    ax_t.legend(frameon=False, fontsize=9, loc="upper right")
    ax_t.set_xscale("log", base=2)
    ax_t.set_xlabel("batch size (log scale)")
    ax_m.set_xlabel("batch size")
    ax_m.set_xlim(0, batches.max() * 1.05)
    for ax in (ax_t, ax_m):
        ax.xaxis.set_major_locator(FixedLocator(batches))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(int(b)) for b in batches])
        ax.grid(alpha=0.3)
    ax_t.margins(x=0.08)
    mode = "forward + backward" if s.mode == "training" else "forward"
    fig.suptitle(f"{s.model.name}: {mode} vs batch size ({s.dtype}){' (interrupted)' if s.interrupted else ''}",
                 x=0.01, ha="left", fontsize=13)
    bottom = _footnote(fig, _machine_note(s.machine, s.calibration, s.dtype), list(s.profiles.values()))
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return save(fig, path)
