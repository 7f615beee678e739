"""Pieces shared by the profiler's figures (:mod:`.profile_plots`, :mod:`.sweep_plots`): the machine
footnote (with a warning when other processes disturbed the timing), titles and layout, MAC units,
legends of layer families."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .plots import FAMILY_COLOURS, FAMILY_LABELS

#: units of the MAC axes, largest first: a figure uses the largest one its biggest value reaches
MAC_UNITS = ((1e9, "G"), (1e6, "M"), (1e3, "K"), (1.0, ""))


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

    from ..profiling.calibration import BUSY
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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def mac_unit(largest: float) -> tuple[float, str]:
    """``(scale, prefix)`` of the MAC axis for values up to ``largest`` MACs: the largest unit of
    :data:`MAC_UNITS` (G, M, K or none) in which ``largest`` is at least 1, so ticks read 0-999."""
    for scale, prefix in MAC_UNITS:
        if largest >= scale:
            return scale, prefix
    return MAC_UNITS[-1]


def _wrap(line: str, fits, seps: Sequence[str] = ("; ", ", ", " ")) -> list[str]:
    """``line`` as few lines that each ``fits``, broken at the first of ``seps`` that it holds
    (clauses before words); the break keeps the separator's mark (";", ",") at the line's end."""
    if fits(line) or not seps:
        return [line]
    sep, finer = seps[0], seps[1:]
    parts = line.split(sep)
    if len(parts) == 1:
        return _wrap(line, fits, finer)
    lines, current = [], parts[0]
    for part in parts[1:]:
        if fits(current + sep + part):
            current += sep + part
        else:
            lines.append(current + sep.rstrip())
            current = part
    lines.append(current)
    return [piece for line in lines for piece in _wrap(line, fits, finer)]


def _title(ax, *lines: str) -> None:
    """``ax``'s title, left-aligned, one item a line; an item wider than the room from the axes'
    left edge to the figure's edge (or to the next axes on the right) is wrapped (:func:`_wrap`).
    Call after a first ``tight_layout``, so that the axes are where they will stay."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    left = ax.get_window_extent(renderer).x0
    right = min([a.get_window_extent(renderer).x0 for a in fig.axes
                 if a.get_window_extent(renderer).x0 > left + 1] + [fig.bbox.x1])
    room = right - left - 6
    probe = ax.set_title("", loc="left")

    def fits(text: str) -> bool:
        probe.set_text(text)
        return probe.get_window_extent(renderer).width <= room

    ax.set_title("\n".join(w for line in lines for w in _wrap(line, fits)), loc="left")


def _layout(fig, bottom: float, titles: Sequence[tuple[Any, Sequence[str]]]) -> None:
    """Lay out: ``tight_layout`` above the footnote, then the titles wrapped to the room the axes
    got (:func:`_title`), then ``tight_layout`` again for their height."""
    for ax, lines in titles:
        ax.set_title("\n".join(lines), loc="left")
    fig.tight_layout(rect=(0, bottom, 1, 1))
    for ax, lines in titles:
        _title(ax, *lines)
    fig.tight_layout(rect=(0, bottom, 1, 1))


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


def _freeze_legend(ax) -> None:
    """Pin a ``loc="best"`` legend where it is now: "best" is chosen again at every draw and
    would move over labels placed after it."""
    leg = ax.get_legend()
    if leg is None:
        return
    ax.figure.canvas.draw()
    x0, y0 = ax.transAxes.inverted().transform(leg.get_window_extent().p0)
    if hasattr(leg, "set_loc"):  # matplotlib >= 3.8
        leg.set_loc((float(x0), float(y0)))
    else:
        leg._loc = (float(x0), float(y0))
