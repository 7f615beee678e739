"""Labels next to points, placed without overlaps (no dependency: a greedy search in display
coordinates, deterministic, so figures stay byte-identical): every figure that names its points
(the roofline, operations vs time, the zoo's complexity figures) uses :func:`place_labels`."""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

#: directions from a point to its label, in the order tried: the four sides, the four corners, then
#: every 15 degrees, the nearest to horizontal first (labels are wide: leaders out of a crowd fan sideways)
_DIRECTIONS = tuple(math.radians(a) for a in (0, 180, 90, 270, 45, 315, 135, 225)) + tuple(
    math.radians(a) for a in sorted((a for a in range(0, 360, 15) if a % 45),
                                    key=lambda a: (abs(math.sin(math.radians(a))), a)))
#: gaps (points) between a point's edge and its label, in the order tried; past the first a leader
#: line joins the two
_RINGS = (2.0, 14.0, 28.0, 44.0, 62.0, 84.0, 110.0, 140.0)
LEADER = {"color": "#666666", "lw": 0.6}


def place_labels(ax, xy, labels: Sequence[str], markers, sizes, *, avoid: Sequence[Any] = (),
                 lines: Sequence[Any] = (), fontsize: float = 9,
                 styles: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
    """Name the points ``xy`` (data coordinates) with ``labels``, most important first, so that no
    label hides another, a point, a line or a legend.

    Each label takes the first place (the :data:`_DIRECTIONS` at the gaps of :data:`_RINGS`)
    where its box stays inside the axes and touches none of: the labels and leader lines placed
    before it, the markers (data coordinates ``markers``, scatter areas ``sizes`` in points^2, a
    number or one per marker), the ``lines`` (Line2D) and the ``avoid`` artists (a legend, texts).
    Its leader line, if any, crosses no label, no marker and no other leader. Points drawn over one
    another share a label, a name a line. A label with no such place is left out. Call once the
    layout is final. ``styles``: text properties per label (colour, weight, size), the first
    label's for a shared one. Returns the labels placed.
    """
    from matplotlib.path import Path as MPath
    from matplotlib.transforms import offset_copy

    fig = ax.figure
    fig.canvas.draw()  # places the legend, ticks and titles
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72
    frame = ax.get_window_extent(renderer).padded(-2)
    centres = ax.transData.transform(np.asarray(markers, dtype=float).reshape(-1, 2))
    radii = np.sqrt(np.broadcast_to(np.asarray(sizes, dtype=float), (len(centres),))) / 2 * px
    blocked = [a.get_window_extent(renderer).padded(2) for a in avoid]
    paths = [line.get_transform().transform_path(line.get_path()) for line in lines]
    boxes: list[Any] = []
    leaders: list[Any] = []
    placed: list[str] = []

    def radius(at) -> float:  # of the marker drawn at ``at`` (display), in pixels
        return float(radii[int(np.argmin(np.hypot(*(centres - at).T)))]) if len(centres) else 3.0 * px

    # points drawn over one another share one label, a name a line
    groups: list[tuple[Any, Any, list[str], Mapping[str, Any]]] = []
    for i, ((x, y), label) in enumerate(zip(xy, labels)):
        at = ax.transData.transform((x, y))
        for _, g_at, names, _ in groups:
            if math.dist(at, g_at) < max(radius(at), radius(g_at)):
                names.append(label)
                break
        else:
            groups.append(((x, y), at, [label], styles[i] if styles else {}))

    def free(box) -> bool:
        if not (frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1):
            return False
        if any(box.overlaps(b) for b in (*boxes, *blocked)):
            return False
        gap_x = np.maximum(np.maximum(box.x0 - centres[:, 0], centres[:, 0] - box.x1), 0)
        gap_y = np.maximum(np.maximum(box.y0 - centres[:, 1], centres[:, 1] - box.y1), 0)
        if np.any(gap_x ** 2 + gap_y ** 2 < radii ** 2):
            return False
        return not any(path.intersects_bbox(box, filled=False) for path in (*paths, *leaders))

    for (x, y), at, names, style in groups:
        own = radius(at) / px  # this point's radius (points)
        text = ax.text(x, y, "\n".join(names), **{"fontsize": fontsize, "zorder": 4, "path_effects": [halo()],
                                                  **style})
        for k, gap in enumerate(_RINGS):
            found = None
            for angle in _DIRECTIONS[:8] if k == 0 else _DIRECTIONS:
                unit = np.array([math.cos(angle), math.sin(angle)])
                off = unit * (own + gap)
                # the label's near side faces the point: left-aligned to the right of it, and so on
                ha = "left" if unit[0] > 0.3 else "right" if unit[0] < -0.3 else "center"
                va = "bottom" if unit[1] > 0.3 else "top" if unit[1] < -0.3 else "center"
                text.set(transform=offset_copy(ax.transData, fig=fig, x=off[0], y=off[1], units="points"),
                         ha=ha, va=va)
                box = text.get_window_extent(renderer).padded(1.5)
                if not free(box):
                    continue
                leader = None
                if k:  # from the point's edge to the label's near side
                    start = at + unit * own * px
                    leader = MPath([start, at + off * px])
                    if any(leader.intersects_bbox(b.padded(4), filled=False) for b in (*boxes, *blocked)) or \
                            any(leader.intersects_path(o) for o in leaders) or \
                            _crosses_markers(start, at + off * px, centres, radii, at):
                        continue
                found = (box, leader, off)
                break
            if found:
                break
        if not found:
            text.remove()
            continue
        box, leader, off = found
        boxes.append(box)
        placed += names
        if leader is not None:
            leaders.append(leader)
            ax.annotate("", (x, y), xytext=tuple(off), textcoords="offset points", zorder=2,
                        arrowprops={"arrowstyle": "-", "shrinkA": 0, "shrinkB": own, **LEADER})
    return placed


def _crosses_markers(a, b, centres: np.ndarray, radii: np.ndarray, at) -> bool:
    """Whether the segment ``a``-``b`` (display coordinates) passes over a marker, leaving out those
    over the labelled point ``at`` itself (they hide it anyway)."""
    if not len(centres):
        return False
    d = np.asarray(b, dtype=float) - a
    t = np.clip(((centres - a) @ d) / max(float(d @ d), 1e-12), 0, 1)
    dist = np.hypot(*(a + t[:, None] * d - centres).T)
    return bool(np.any((dist < radii + 1) & (np.hypot(*(centres - at).T) > radii)))


def halo():
    """A white outline behind a label, so that a line or a point under it does not cut it."""
    from matplotlib.patheffects import withStroke
    return withStroke(linewidth=3, foreground="white")
