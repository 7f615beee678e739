"""Figures of a design space (matplotlib, lazily, through :mod:`archstat.report.plots`).

:func:`space_figure`: the empirical distribution functions (EDFs) of parameters, MACs and peak
activation memory over the valid configurations, as Radosavovic et al. 2019 compare design
spaces, and MACs against parameters coloured by peak memory; the zoo's named models of the spec
are marked on every panel (filled: their arguments are a configuration of the space; hollow:
a model of the same spec outside it). :func:`measured_figure`: MACs against the engine's measured
time for the configurations timed with ``--measure``, with a least-squares line and R^2
(:func:`archstat.profiling.studies.linear_fit`), coloured by the machine that measured them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..report.plots import _figures, _log_axis, decade_ticks, save, styled

_PANELS = (("params", "parameters", 1e6, "millions"), ("macs", "MACs", 1e9, "GMACs"),
           ("peak_activation_bytes", "peak activation memory", 1e6, "MB"))
_ZOO = "#c0392b"


def _edf(values):
    import numpy as np
    xs = np.sort(np.asarray(values, dtype=float))
    return xs, np.arange(1, len(xs) + 1) / len(xs)


@styled
def space_figure(frame, path: str | Path, *, title: str = "", points: Sequence[dict[str, Any]] = ()) -> Path:
    """EDFs of params, MACs and peak activation memory, and MACs vs params; returns the path."""
    import numpy as np
    from matplotlib.lines import Line2D

    valid = frame[frame["error"] == ""]
    fig, axes = _figures().subplots(2, 2, figsize=(12, 9))
    n, errors = len(frame), len(frame) - len(valid)
    labelled = []
    for ax, (key, what, scale, unit) in zip(axes.flat, _PANELS):
        values = valid[key].astype("float64").to_numpy() / scale
        if len(values):
            xs, ys = _edf(values)
            ax.step(xs, ys, where="post", color="#3b75af", lw=1.8)
            for p in points:
                x = p[key] / scale
                y = float((values <= x).mean())
                ax.plot([x], [y], marker="*", ms=13, mec=_ZOO, mfc=_ZOO if p["inside"] else "white", ls="none",
                        zorder=5)
                labelled.append((ax, x, y, p["name"]))
            _log(ax.xaxis, values)
        ax.set_xlabel(f"{what} ({unit})")
        ax.set_ylabel("fraction of configurations ≤ x")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.set_title(f"EDF of {what}")
    ax = axes[1, 1]
    if len(valid):
        x = valid["macs"].astype("float64").to_numpy() / 1e9
        y = valid["params"].astype("float64").to_numpy() / 1e6
        c = valid["peak_activation_bytes"].astype("float64").to_numpy() / 1e6
        order = np.argsort(c)
        sc = ax.scatter(x[order], y[order], c=c[order], s=10 if len(x) > 2000 else 18, cmap="viridis",
                        norm=_log_norm(c), alpha=0.7, lw=0)
        bar = fig.colorbar(sc, ax=ax, label="peak activation memory (MB)")
        from matplotlib.ticker import FuncFormatter, LogLocator
        if sc.norm is not None and type(sc.norm).__name__ == "LogNorm":
            bar.ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            bar.ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        for p in points:
            px, py = p["macs"] / 1e9, p["params"] / 1e6
            ax.plot([px], [py], marker="*", ms=14, mec=_ZOO, mfc=_ZOO if p["inside"] else "white", ls="none",
                    zorder=5)
            labelled.append((ax, px, py, p["name"]))
        _log(ax.xaxis, x)
        _log(ax.yaxis, y)
    ax.set_xlabel("GMACs")
    ax.set_ylabel("parameters (millions)")
    ax.set_title("MACs against parameters")
    ax.grid(alpha=0.3)
    head = title or "design space"
    if frame.attrs.get("mode") == "sample":
        head += f", {n:,} sampled (seed {frame.attrs.get('seed')})"
    elif frame.attrs.get("mode") == "grid":
        head += f", a grid of {n:,}"
    fig.suptitle(f"{head}: {n - errors:,} valid configurations"
                 + (f" ({errors:,} invalid, left out)" if errors else ""), fontsize=14)
    if points:
        handles = []
        if any(p["inside"] for p in points):
            handles.append(Line2D([], [], marker="*", ms=12, mec=_ZOO, mfc=_ZOO, ls="none",
                                  label="zoo model: a configuration of the space"))
        if any(not p["inside"] for p in points):
            handles.append(Line2D([], [], marker="*", ms=12, mec=_ZOO, mfc="white", ls="none",
                                  label="zoo model of this spec at other args or another input size"))
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.tight_layout(rect=(0, 0.04 if points else 0, 1, 0.97))
    _labels(labelled)
    return save(fig, path)


def _log_norm(values):
    from matplotlib.colors import LogNorm
    positive = values[values > 0]
    if not len(positive) or positive.min() == positive.max():
        return None
    return LogNorm(vmin=positive.min(), vmax=positive.max())


def _short(name: str) -> str:
    """regnet_x_400mf -> x_400mf: the family is the figure's title."""
    for prefix in ("regnet_", "efficientnet_"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _log(axis, values) -> None:
    """A log axis with plain numbers: 1-2-5 ticks over a few decades, powers of ten over more."""
    _log_axis(axis)
    decade_ticks(axis, [float(v) for v in values], 10 ** 3.5)


def _labels(labelled) -> None:
    """Name the zoo's models beside their stars, no label over another or over a star (the
    figures' shared placer; stars drawn over one another share a label). Call once the layout
    is final."""
    from ..report.labels import place_labels
    by_axis: dict[Any, list] = {}
    for ax, x, y, name in labelled:
        by_axis.setdefault(ax, []).append((x, y, name))
    for ax, items in by_axis.items():
        spots = [(x, y) for x, y, _ in items]
        place_labels(ax, spots, [_short(name) for _, _, name in items], spots, 13 ** 2, fontsize=8,
                     styles=[{"color": _ZOO}] * len(items))


@styled
def measured_figure(frame, path: str | Path, *, title: str = "") -> Path:
    """MACs against measured forward time, per machine, with a least-squares line; the path."""
    from ..profiling.studies import linear_fit

    done = frame[frame["measured_ms"].notna()]
    fig, ax = _figures().subplots(figsize=(8, 6))
    hosts = sorted(set(done["host"])) or [""]
    colours = ["#3b75af", "#ef8636", "#59a14f", "#b07aa1", "#9a9a9a"]
    for k, host in enumerate(hosts):
        part = done[done["host"] == host]
        ax.scatter(part["macs"].astype("float64") / 1e9, part["measured_ms"], s=28, alpha=0.8,
                   color=colours[k % len(colours)], label=f"{host} ({part['cpu'].iloc[0]})" if len(part) else host)
    x = done["macs"].astype("float64").to_numpy() / 1e9
    fit = linear_fit(x, done["measured_ms"].to_numpy())
    if fit.n >= 2 and fit.slope == fit.slope:
        xs = [0, float(x.max())]
        ax.plot(xs, [fit.slope * v + fit.intercept for v in xs], color="#555555", lw=1, ls="--",
                label=f"least squares: {fit.slope:.3g} ms per GMAC, R² = {fit.r2:.2f} (n = {fit.n})")
    ax.set_xlabel("GMACs (analysis)")
    ax.set_ylabel("measured forward time (ms, NumPy engine, median)")
    ax.set_title(f"{title or 'design space'}: do MACs predict time?")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=9, loc="upper left")
    fig.tight_layout()
    return save(fig, path)
