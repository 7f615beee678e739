"""Where the boxes of a graph picture go: a layered (Sugiyama-style) layout of the DAG.

Written here in a few small steps: generations by longest path from the input, dummy points
on edges that skip generations, barycentre ordering within a generation (fewest crossings
kept), x positions by a weighted least-squares pull towards neighbours under no-overlap
constraints (pool-adjacent-violators), and, for a very deep graph, the generations wrapped
into side-by-side columns at single-node waists (the waist is repeated, dashed, at the top
of the next column).

The column count is chosen for the whole figure, so this module also owns the figure's
frame: its margin, the size cap :data:`MAX_INCHES` and :func:`figure_size`. Everything is
in inches; drawing it is :mod:`.graph_draw`'s business.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .graph_collapse import GraphNode

#: largest figure side, in inches (text shrinks only beyond)
MAX_INCHES = 36.0
#: inches of white around the figure's content
MARGIN = 0.3

_HGAP = 0.28                # inches between neighbouring boxes in a row
_COLUMN_GAP = 0.9           # inches between wrapped columns
_DUMMY_WIDTH = 0.1          # inches an edge passing through a generation takes in its row
_WRAP_ABOVE_ROWS = 12       # never wrap a graph with fewer generations than this
_TARGET_ASPECT = 1.3        # width / height the column count aims for


@dataclass
class Layout:
    """Where everything goes, in inches from the top left of the drawing area.

    ``boxes[key] = (x_centre, y_centre, width)``; keys are node names, plus ``("ghost", s,
    name)`` for a waist repeated at the top of column ``s``. ``edges`` are point lists from
    a source box's bottom to a target box's top (through dummy points), ``(source, target,
    points)``; ``width``/``height`` the extent; ``columns`` the generation range per column;
    ``notes`` small texts ``(x, y, text)`` at the column breaks.
    """

    boxes: dict[Any, tuple[float, float, float]] = field(default_factory=dict)
    edges: list[tuple[Any, Any, list[tuple[float, float]]]] = field(default_factory=list)
    box_height: float = 0.0
    width: float = 0.0
    height: float = 0.0
    columns: list[tuple[int, int]] = field(default_factory=list)
    notes: list[tuple[float, float, str]] = field(default_factory=list)


def figure_size(content_width: float, content_height: float,
                header: tuple[float, float]) -> tuple[float, float, float]:
    """``(width, height, shrink)`` of the figure around content of the given size under a
    ``header`` of (width, height): margins added, and the factor that keeps both sides
    within :data:`MAX_INCHES` (1 when they already are)."""
    width = max(content_width, header[0]) + 2 * MARGIN
    height = content_height + header[1] + 2 * MARGIN
    return width, height, min(1.0, MAX_INCHES / width, MAX_INCHES / height)


def generations(nodes: Mapping[str, GraphNode]) -> dict[str, int]:
    """Longest-path depth from the input (what ``nx.topological_generations`` gives)."""
    gen: dict[str, int] = {}
    for name, node in nodes.items():      # execution order is topological
        gen[name] = max((gen[src] + 1 for src in node.inputs), default=0)
    return gen


def layout_graph(nodes: Mapping[str, GraphNode], widths: Mapping[str, float], box_height: float,
                 wrap: bool = True, target_aspect: float = _TARGET_ASPECT,
                 header: tuple[float, float] = (0.0, 0.0)) -> Layout:
    """Place boxes of the given widths (inches, one per node) and one height in layers
    (module docstring).

    ``header`` is the (width, height) the title needs, counted when choosing the number of
    columns, so that the whole figure comes near ``target_aspect``.
    """
    gen = generations(nodes)
    index = {name: i for i, name in enumerate(nodes)}
    ranks, up, down, weight = _layers_with_dummies(nodes, gen, index)
    _order_by_barycentre(ranks, up, down)
    sizes = {k: _DUMMY_WIDTH if _is_dummy(k) else widths[k] for r in ranks for k in r}
    x = _place_x(ranks, up, down, weight, sizes)
    pitch = box_height * 1.55 + 0.25
    wanted = [(0, len(ranks) - 1)]
    if wrap and len(ranks) > _WRAP_ABOVE_ROWS:
        waists = [g for g in range(len(ranks) - 1)
                  if len(ranks[g]) == 1 and not _is_dummy(ranks[g][0])]
        wanted = _best_columns(ranks, waists, x, sizes, pitch, target_aspect, header)
    return _assemble(nodes, ranks, x, sizes, wanted, pitch, box_height, gen)


def _dummies(src: str, dst: str, gen: Mapping[str, int]) -> list[tuple[str, str, str, int]]:
    """The dummy keys ``("~", src, dst, g)`` of the edge src -> dst, one per skipped generation."""
    return [("~", src, dst, g) for g in range(gen[src] + 1, gen[dst])]


def _is_dummy(key: Any) -> bool:
    return isinstance(key, tuple)


def _layers_with_dummies(nodes, gen, index):
    """Ranks of keys (node names, and ``("~", src, dst, g)`` dummies on long edges)."""
    depth = max(gen.values()) + 1
    ranks: list[list[Any]] = [[] for _ in range(depth)]
    up: dict[Any, list[Any]] = {}
    down: dict[Any, list[Any]] = {}
    weight: dict[tuple[Any, Any], float] = {}
    sort_key: dict[Any, tuple[float, float]] = {}
    for name in nodes:
        ranks[gen[name]].append(name)
        up.setdefault(name, [])
        down.setdefault(name, [])
        sort_key[name] = (index[name], 0)
    for name, node in nodes.items():
        for src in node.inputs:
            chain = [src, *_dummies(src, name, gen), name]
            for key in chain[1:-1]:
                ranks[key[3]].append(key)
                up[key], down[key] = [], []
                sort_key[key] = (index[name], 1)  # a skip edge sits beside the path it skips
            for a, b in zip(chain, chain[1:]):
                down[a].append(b)
                up[b].append(a)
    for a, below in down.items():
        for b in below:
            # chains of layers (one out, one in) stay straight above all, then long edges
            # (through their dummy points, cf. Gansner et al. 1993), then branch ends
            dummies = _is_dummy(a) + _is_dummy(b)
            chain = len(below) == 1 and len(up[b]) == 1 and not dummies
            weight[a, b] = weight[b, a] = 16.0 if chain else (2.0, 1.0, 4.0)[dummies]
    for r in ranks:
        r.sort(key=sort_key.__getitem__)
    return ranks, up, down, weight


def _crossings(ranks, down) -> int:
    total = 0
    for upper, lower in zip(ranks, ranks[1:]):
        pos = {k: i for i, k in enumerate(lower)}
        ends = [(i, pos[b]) for i, a in enumerate(upper) for b in down[a]]
        total += sum(1 for a, (i1, j1) in enumerate(ends) for i2, j2 in ends[a + 1:]
                     if (i1 - i2) * (j1 - j2) < 0)
    return total


def _order_by_barycentre(ranks, up, down, sweeps: int = 6) -> None:
    """Reorder each rank by its neighbours' mean position; keep the fewest crossings."""
    best = [list(r) for r in ranks]
    best_count = _crossings(ranks, down)
    for _ in range(sweeps):
        for indices, neighbours in ((range(1, len(ranks)), up), (range(len(ranks) - 2, -1, -1), down)):
            for g in indices:
                other = ranks[g - 1] if neighbours is up else ranks[g + 1]
                pos = {k: i for i, k in enumerate(other)}
                here = {k: i for i, k in enumerate(ranks[g])}

                def centre(k):
                    near = [pos[n] for n in neighbours[k]]
                    return (sum(near) / len(near) if near else here[k], here[k])
                ranks[g].sort(key=centre)
        count = _crossings(ranks, down)
        if count < best_count:
            best, best_count = [list(r) for r in ranks], count
    ranks[:] = best


def _isotonic(values: Sequence[float], weights: Sequence[float]) -> list[float]:
    """Weighted least-squares non-decreasing fit (pool adjacent violators)."""
    blocks: list[list[float]] = []          # [weighted sum, total weight, count]
    for v, w in zip(values, weights):
        blocks.append([v * w, w, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, total, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += total
            blocks[-1][2] += n
    out: list[float] = []
    for s, total, n in blocks:
        out.extend([s / total] * int(n))
    return out


def _offsets(gaps: Sequence[float]) -> list[float]:
    """Running sums of ``gaps`` from 0: each box's offset from the first in its rank."""
    offsets = [0.0]
    for gap in gaps:
        offsets.append(offsets[-1] + gap)
    return offsets


def _place_x(ranks, up, down, weight, widths, iterations: int = 40) -> dict[Any, float]:
    """x centres: each key pulled to the weighted mean of its neighbours' x, with boxes in a
    rank kept in order and ``_HGAP`` apart (an exact least-squares step per rank)."""
    gaps = []
    for r in ranks:
        gaps.append([(widths[a] + widths[b]) / 2 + (_HGAP if not _is_dummy(a) or not _is_dummy(b)
                                                    else _HGAP / 2)
                     for a, b in zip(r, r[1:])])
    x: dict[Any, float] = {}
    for r, gap in zip(ranks, gaps):
        offsets = _offsets(gap)
        for k, o in zip(r, offsets):
            x[k] = o - offsets[-1] / 2
    for it in range(iterations):
        order = range(len(ranks)) if it % 2 == 0 else range(len(ranks) - 1, -1, -1)
        for g in order:
            r = ranks[g]
            targets, pulls = [], []
            for k in r:
                near = up[k] + down[k]
                total = sum(weight[k, n] for n in near)
                targets.append(sum(weight[k, n] * x[n] for n in near) / total if near else x[k])
                pulls.append(total if near else 1e-3)
            offsets = _offsets(gaps[g])
            # the exact minimiser of sum(pull * (x - target)^2) with the gaps kept, for this rank
            fitted = _isotonic([t - o for t, o in zip(targets, offsets)], pulls)
            for k, f, o in zip(r, fitted, offsets):
                x[k] = f + o
    return x


def _rows(first: int, last: int) -> int:
    """Rows of a column of generations ``first..last``: one each, plus the waist repeated
    on top of every column but the first."""
    return last - first + 1 + (first > 0)


def _column_keys(ranks, first: int, last: int) -> list[Any]:
    """Every key a column of generations ``first..last`` shows, its repeated waist last."""
    keys = [k for g in range(first, last + 1) for k in ranks[g]]
    return keys + [ranks[first - 1][0]] if first > 0 else keys


def _extent(keys, x, widths) -> tuple[float, float]:
    return (min(x[k] - widths[k] / 2 for k in keys),
            max(x[k] + widths[k] / 2 for k in keys))


def _split(depth: int, waists: Sequence[int], columns: int) -> list[tuple[int, int]] | None:
    """Generation ranges for ``columns`` columns, cut after waists, so that the tallest
    column (a repeated waist on top of each column but the first) is as short as it can be."""
    if columns == 1:
        return [(0, depth - 1)]
    if len(waists) < columns - 1:
        return None
    # best[j][c]: (tallest column, cuts) for the generations 0..c in j + 1 columns, last cut at c
    best: list[dict[int, tuple[int, list[int]]]] = [{c: (_rows(0, c), [c]) for c in waists}]
    for _ in range(1, columns - 1):
        step = {}
        for c in waists:
            options = [(max(t, _rows(p + 1, c)), cuts + [c]) for p, (t, cuts) in best[-1].items() if p < c]
            if options:
                step[c] = min(options)
        best.append(step)
    final = [(max(t, _rows(c + 1, depth - 1)), cuts) for c, (t, cuts) in best[-1].items()]
    if not final:
        return None
    cuts = min(final)[1]
    return list(zip([0] + [c + 1 for c in cuts], cuts + [depth - 1]))


def _best_columns(ranks, waists, x, widths, pitch, target_aspect, header):
    """The column split whose figure comes nearest the target aspect, fits the cap and
    leaves little of the picture empty (short columns beside a tall one)."""
    best, best_score = [(0, len(ranks) - 1)], math.inf
    for columns in range(1, min(len(waists) + 1, 8) + 1):
        split = _split(len(ranks), waists, columns)
        if split is None:
            break
        spans = []
        for a, b in split:
            lo, hi = _extent(_column_keys(ranks, a, b), x, widths)
            spans.append((hi - lo, _rows(a, b)))
        rows = max(r for _, r in spans)
        used = sum(w * r for w, r in spans) / (rows * sum(w for w, _ in spans))
        width, height, shrink = figure_size(sum(w for w, _ in spans) + _COLUMN_GAP * (columns - 1),
                                            rows * pitch, header)
        score = abs(math.log(width / height / target_aspect)) + 4 * (1 - shrink) + (1 - used)
        if score < best_score:
            best, best_score = split, score
    return best


def _assemble(nodes, ranks, x, widths, columns, pitch, box_height, gen) -> Layout:
    layout = Layout(box_height=box_height, columns=list(columns))
    where: dict[Any, tuple[float, float]] = {}
    left = 0.0
    top = box_height / 2
    column_of = {}
    for s, (a, b) in enumerate(columns):
        lo, hi = _extent(_column_keys(ranks, a, b), x, widths)
        shift = left - lo
        first_row = 1 if s else 0
        for g in range(a, b + 1):
            for k in ranks[g]:
                where[k] = (x[k] + shift, top + (g - a + first_row) * pitch)
                column_of[k] = s
        if s:
            ghost = ranks[a - 1][0]
            gx, gy = x[ghost] + shift, top
            layout.boxes[("ghost", s, ghost)] = (gx, gy, widths[ghost])
            layout.notes.append((gx, gy - box_height / 2, f"from column {s}"))
            wx, wy = where[ghost]
            layout.notes.append((wx, wy + box_height / 2, f"continues in column {s + 1}"))
        layout.height = max(layout.height, top + (_rows(a, b) - 1) * pitch + box_height / 2)
        left += hi - lo + _COLUMN_GAP
    layout.width = left - _COLUMN_GAP
    for name in nodes:
        layout.boxes[name] = (*where[name], widths[name])
    half = box_height / 2
    for name, node in nodes.items():
        for src in node.inputs:
            s = column_of[name]
            source = src if column_of[src] == s else ("ghost", s, src)
            sx, sy = layout.boxes[source][:2] if source != src else where[src]
            points = [(sx, sy + half)]
            for key in _dummies(src, name, gen):
                dx, dy = where[key]
                points += [(dx, dy - half), (dx, dy + half)]
            tx, ty = where[name]
            points.append((tx, ty - half))
            layout.edges.append((source, name, points))
    return layout
