"""The batch sweep's figure: time per image and peak memory against batch size (a result of
:func:`archstat.profiling.sweep`)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .labels import halo as _halo
from .plot_parts import _footnote, _machine_note
from .plots import _figures, save, styled
from .profile_table import _num


def _beside_line(xs, ys, i: int) -> tuple[tuple[float, float], str, str]:
    """Where point ``i``'s label goes so that it does not sit on the line through the points:
    to the right (to the left for the last point), above where the line on that side goes down
    and below where it goes up. Returns (offset in points, ha, va)."""
    last = i == len(xs) - 1 or not (ys[i + 1] == ys[i + 1])
    j = i - 1 if last else i + 1
    goes_up = 0 <= j < len(ys) and ys[j] == ys[j] and ys[j] > ys[i]
    dy = -7 if goes_up else 7
    return ((-6 if last else 6), dy), ("right" if last else "left"), ("top" if goes_up else "bottom")


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
    ax_t.set_xscale("log", base=2)
    for i, (b, v, r) in enumerate(zip(batches, per_image, rows)):
        if v == v:
            offset, ha, va = _beside_line(batches, per_image, i)
            ax_t.annotate(f"{_num(r['images_per_s'])} img/s", (b, v), textcoords="offset points", xytext=offset,
                          ha=ha, va=va, fontsize=9, color="#333333", zorder=4,
                          path_effects=[_halo()])
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
    # the same batch axis on both panels (log 2: 1, 2, 4 ... evenly spaced)
    ax_m.set_xscale("log", base=2)
    for ax in (ax_t, ax_m):
        ax.set_xlabel("batch size (log scale)")
        ax.xaxis.set_major_locator(FixedLocator(batches))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(int(b)) for b in batches])
        ax.grid(alpha=0.3)
    ax_t.margins(x=0.12)
    ax_m.margins(x=0.12)
    mode = "forward + backward" if s.mode == "training" else "forward"
    fig.suptitle(f"{s.model.name}: {mode} vs batch size ({s.dtype}){' (interrupted)' if s.interrupted else ''}",
                 x=0.01, ha="left", fontsize=13)
    bottom = _footnote(fig, _machine_note(s.machine, s.calibration, s.dtype), list(s.profiles.values()))
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return save(fig, path)
