"""Complexity vs accuracy over the whole zoo (after Canziani et al. 2016 and the EfficientNet
paper's scaling curves): one colour per model family, a family's variants joined in order of
cost, labels placed clear of each other.

Each point is a dict: ``label`` (zoo name), ``family``, ``series`` (the curve it belongs to:
variants of a family that agree on every on/off design switch, e.g. VGG and VGG with batch
norm), ``top1``, ``params``, ``gmacs``, ``approximate`` (the accuracy was read off a figure)
and ``paper`` (the accuracy is a paper's own figure rather than the published weights'):
paper points are drawn hollow and are never joined into a curve with weights' points.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .labels import place_labels
from .plots import _figures, _log_axis, save, styled

#: a qualitative palette of 20 colours that stay apart on a slide (Tableau 10 and its darker half)
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#5f5f5f", "#1f4e79", "#b85c00", "#8c1d2f", "#2f7f7a", "#2d6a2e", "#a68a00",
           "#6b3f7a", "#d4607a", "#5e4634", "#9a9a9a")


#: marker shapes, cycled with the colours so that families of similar colour still differ
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def family_colours(points: Sequence[dict[str, Any]]) -> dict[str, str]:
    """One colour per family, in the order the families first appear."""
    return {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(_families(points))}


def family_markers(points: Sequence[dict[str, Any]]) -> dict[str, str]:
    """One marker per family (colour and marker together tell 20 families apart)."""
    return {f: MARKERS[i % len(MARKERS)] for i, f in enumerate(_families(points))}


def _families(points: Sequence[dict[str, Any]]) -> list[str]:
    families: list[str] = []
    for p in points:
        if p["family"] not in families:
            families.append(p["family"])
    return families


def _series(points: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        groups.setdefault(p["series"], []).append(p)
    return groups


@styled
def scaling_curves(points: Sequence[dict[str, Any]], path: str | Path, *, x_key: str = "gmacs",
                   x_label: str = "operations: G multiply-accumulates per image (computed by archstat, log scale)",
                   title: str = "Top-1 accuracy vs operations") -> Path:
    """Top-1 against ``x_key`` (log axis): each family's variants joined in order of cost."""
    plt = _figures()
    fig, ax = plt.subplots(figsize=(14, 9))
    colours, markers = family_colours(points), family_markers(points)
    spots, names, styles, lines = [], [], [], []   # the labels, placed once the axes are final
    for series, members in _series(points).items():
        members = sorted(members, key=lambda p: p[x_key])
        colour, marker = colours[members[0]["family"]], markers[members[0]["family"]]
        paper = members[0]["paper"]
        xs, ys = [p[x_key] for p in members], [p["top1"] for p in members]
        if not paper:  # a segment between two training recipes (V1 and V2 weights) is dashed
            for a, b in zip(members, members[1:]):
                lines += ax.plot([a[x_key], b[x_key]], [a["top1"], b["top1"]],
                                 "-" if a["recipe"] == b["recipe"] else "--", color=colour, lw=1.8, alpha=0.85,
                                 zorder=2)
        ax.scatter(xs, ys, s=40, zorder=3, linewidths=1.4, marker=marker,
                   facecolors="white" if paper else colour, edgecolors=colour)
        if paper:  # single published networks: each labelled by its own name
            for p in members:
                spots.append((p[x_key], p["top1"]))
                names.append(p["label"] + (" *" if p["approximate"] else ""))
                styles.append({"fontsize": 9, "color": colour})
        else:      # a family: labelled once, at its most accurate variant
            best = max(members, key=lambda p: p["top1"])
            spots.append((best[x_key], best["top1"]))
            names.append(series)
            styles.append({"fontsize": 10, "color": colour, "fontweight": "bold"})
    _log_axis(ax.xaxis)
    ax.set_xlabel(x_label)
    ax.set_ylabel("top-1 accuracy on ImageNet-1K (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.margins(x=0.08, y=0.06)
    _legend_note(ax)
    insets = _zoom_clusters(ax, points, x_key, colours, markers)
    place_labels(ax, spots, names, [(p[x_key], p["top1"]) for p in points], 40, lines=lines, styles=styles,
                 avoid=insets)
    return save(fig, path)


#: a family whose variants all lie within this factor of x (VGG's 133M to 144M parameters, over
#: three decades) is drawn again, spread out, in an inset
CLUSTER_SPAN = 1.25


def _zoom_clusters(ax, points: Sequence[dict[str, Any]], x_key: str, colours, markers) -> list[Any]:
    """An inset, lower right (where the largest models leave room), for the family of the most
    variants (at least four) that the main axis piles onto one spot (:data:`CLUSTER_SPAN`):
    linear axes, each variant named. Returns the insets drawn (for labels to keep clear of)."""
    clusters, insets = [], []
    for family in _families(points):
        members = [p for p in points if p["family"] == family]
        xs = [p[x_key] for p in members]
        if len(members) >= 4 and max(xs) / min(xs) <= CLUSTER_SPAN:
            clusters.append((len(members), family, members))
    for _, family, members in sorted(clusters, key=lambda c: -c[0])[:1]:
        xs = [p[x_key] for p in members]
        inset = ax.inset_axes((0.815, 0.04, 0.175, 0.42))
        insets.append(inset)
        for series, group in _series(members).items():
            group = sorted(group, key=lambda p: p[x_key])
            colour = colours[family]
            if not group[0]["paper"]:
                inset.plot([p[x_key] for p in group], [p["top1"] for p in group], "-", color=colour, lw=1.4,
                           alpha=0.85, zorder=2)
            inset.scatter([p[x_key] for p in group], [p["top1"] for p in group], s=30, marker=markers[family],
                          zorder=3, linewidths=1.2, facecolors="white" if group[0]["paper"] else colour,
                          edgecolors=colour)
        span = max(xs) - min(xs)
        ys = [p["top1"] for p in members]
        gap = (max(ys) - min(ys) + 1.6) / 22   # a label's height, in accuracy points
        last = -1e9
        for p in sorted(members, key=lambda p: p["top1"]):   # bottom up, each clear of the one below
            at = max(p["top1"], last + gap)
            last = at
            inset.annotate(p["label"] + (" *" if p["approximate"] else ""), (p[x_key], p["top1"]),
                           xytext=(p[x_key] + 0.06 * span, at), textcoords="data", va="center", fontsize=7.5,
                           color="#333333", arrowprops={"arrowstyle": "-", "color": "#999999", "lw": 0.5}
                           if at - p["top1"] > gap / 3 else None)
        inset.set_xlim(min(xs) - 0.1 * span, max(xs) + 0.75 * span)
        inset.set_ylim(min(ys) - 0.8, max(last, max(ys)) + 0.8)
        inset.tick_params(labelsize=7.5)
        inset.grid(alpha=0.3)
        inset.set_title(f"{family} variants, spread out\n(linear axes)", fontsize=8.5)
        ax.indicate_inset_zoom(inset, edgecolor="#777777")
    return insets


@styled
def accuracy_density(points: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Canziani et al. 2016 Fig. 10 style: top-1 per million parameters, one row per model, most
    accuracy per parameter first, in two columns (landscape, for a slide), coloured and shaped by
    family (log axis)."""
    plt = _figures()
    from matplotlib.lines import Line2D

    ordered = sorted(points, key=lambda p: p["top1"] / (p["params"] / 1e6), reverse=True)
    colours, markers = family_colours(points), family_markers(points)
    values = [p["top1"] / (p["params"] / 1e6) for p in ordered]
    half = (len(ordered) + 1) // 2
    height = 0.21 * half + 2.2
    fig, axes = plt.subplots(1, 2, figsize=(15, height), sharex=True, squeeze=False)
    for ax, lo in zip(axes[0], (0, half)):
        part, vals = ordered[lo:lo + half], values[lo:lo + half]
        y = range(len(part))
        ax.hlines(y, min(values) / 1.5, vals, color="#dddddd", lw=1)
        for i, (p, v) in enumerate(zip(part, vals)):
            colour = colours[p["family"]]
            ax.scatter([v], [i], s=40, zorder=3, linewidths=1.3, marker=markers[p["family"]],
                       facecolors="white" if p["paper"] else colour, edgecolors=colour)
            ax.text(v, i, f"  {v:.2f}", va="center", fontsize=8)
        ax.set_yticks(list(y), [p["label"] + (" *" if p["approximate"] else "") for p in part], fontsize=8)
        ax.set_ylim(half - 0.5, -0.5)
        _log_axis(ax.xaxis)
        ax.set_xlim(min(values) / 1.5, max(values) * 2.5)
        ax.set_xlabel("top-1 % per million parameters (log scale)")
        ax.grid(axis="x", alpha=0.3, which="both")
    fig.suptitle("Accuracy per parameter (after Canziani et al. 2016, Fig. 10)")
    handles = [Line2D([], [], marker=markers[f], ls="", color=c, label=f) for f, c in colours.items()]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 10), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.text(0.5, 0.95 / height, "filled: accuracy of torchvision's published weights; hollow: a paper's own "
             "figure; * approximate (read off a figure)", ha="center", fontsize=8.5, color="#555555")
    fig.tight_layout(rect=(0, 1.15 / height, 1, 1))
    return save(fig, path)


def _legend_note(ax, y: float = -0.09, curves: bool = True) -> None:
    ax.annotate("filled: accuracy of torchvision's published weights; hollow: a paper's own figure; "
                "* approximate (read off a figure)"
                + ("\ndashed: the two ends were trained with different recipes (torchvision's V1 and V2 "
                   "weights, SWAG): the step is not the family's scaling alone" if curves else ""),
                (0.0, y), xycoords="axes fraction", fontsize=8.5, color="#555555", va="top")
