"""Pictures of the layer DAG: Graphviz DOT text, and PNG/SVG drawings (networkx + matplotlib).

Both views share one reading of the graph, :func:`graph_nodes`, which can *collapse* a
chain of pointwise layers into the node before them, so that ResNet-50 or GoogLeNet stay
legible: ``conv1 +bn+relu``. A layer is absorbed into its producer when

* it has exactly one input, and that producer feeds nothing else (and is not the input);
* the registry says it is pointwise (``window`` is ``None``) and counts no MACs;
* its output shape equals its input's shape.

The rule reads shapes, MACs and the graph only; it never looks at a type's name (the
project rule: only :mod:`archstat.layers` branches on type names). Merges (several inputs)
and branch points (several consumers) therefore always stay visible, and every edge between
surviving nodes is kept.

The drawing is a layered (Sugiyama-style) layout written here in a few small steps:
generations by longest path from the input, dummy points on edges that skip generations,
barycentre ordering within a generation (fewest crossings kept), x positions by a weighted
least-squares pull towards neighbours under no-overlap constraints (pool-adjacent-violators),
and, for a very deep graph, the generations wrapped into side-by-side columns at single-node
waists (the waist is repeated, dashed, at the top of the next column).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import ArchstatError, did_you_mean
from ..spec import INPUT_NAME
from .units import human, human_bytes, shape_str

#: the per-layer columns a picture can be coloured by (analysis column names)
COLOR_BY = ("macs", "activation_bytes")
#: friendlier names accepted for ``color_by``
COLOR_ALIASES = {"memory": "activation_bytes"}
#: output suffixes :func:`draw_graph` writes
SUFFIXES = (".png", ".svg", ".dot")
#: largest figure side, in inches, and the PNG resolution (so at most 4320 px a side)
MAX_INCHES = 36.0
DPI = 120

#: sequential fill ramp, light to dark (ColorBrewer YlOrRd, 9 classes), shared by DOT and PNG
PALETTE = ("#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c",
           "#bd0026", "#800026")
PLAIN_FILL = "#eef3fb"      # every node when not colouring
MERGE_FILL = "#fdf0d5"      # nodes with several inputs, when not colouring
INPUT_FILL = "#e3f1e3"      # the model's input
NO_VALUE_FILL = "#e6e6e6"   # zero in the coloured column (pools, merges, ...)
EDGE_COLOR = "#4d4d4d"

_FONT = {"name": 9.0, "detail": 8.0, "stats": 7.5, "title": 13.0, "subtitle": 9.0, "note": 7.0}
_PAD = 0.07                 # inches of padding inside a box
_HGAP = 0.28                # inches between neighbouring boxes in a row
_COLUMN_GAP = 0.9           # inches between wrapped columns
_MARGIN = 0.3
_WRAP_ABOVE_ROWS = 12       # never wrap a graph with fewer generations than this
_TARGET_ASPECT = 1.3        # width / height the column count aims for


# ---------------------------------------------------------------------- the nodes shown

@dataclass(frozen=True)
class GraphNode:
    """One box of a picture: a layer and the pointwise layers collapsed into it.

    ``members`` lists the layers, the head (``name``) first; ``inputs`` are surviving nodes
    in the head's input order; ``shape`` is the per-sample output shape (the last member's).
    """

    name: str
    type: str
    shape: tuple[int, ...]
    inputs: tuple[str, ...]
    members: tuple[str, ...]
    merged: tuple[str, ...] = ()     # type aliases of the absorbed layers, in order

    @property
    def title(self) -> str:
        """``"conv1 +bn+relu"``: the name, and what was merged into it."""
        return self.name + (" +" + "+".join(self.merged) if self.merged else "")


def graph_nodes(model: Any, collapse: bool = True) -> dict[str, GraphNode]:
    """The nodes of a picture, in execution order, keyed by their (head) layer name.

    Parameters
    ----------
    model : Model, path or mapping
    collapse : bool
        Merge shape-preserving pointwise layers into their producer (module docstring).

    Examples
    --------
    >>> nodes = graph_nodes(load("specs/vgg16.yaml"))      # doctest: +SKIP
    >>> nodes["conv1_1"].title                             # doctest: +SKIP
    'conv1_1 +relu'
    """
    from ..graph import load
    model = load(model)
    graph = model.graph
    head: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for name in model.order:
        src = _absorbing_producer(model, name) if collapse else None
        if src is None:
            head[name] = name
            members[name] = [name]
        else:
            head[name] = head[src]
            members[head[src]].append(name)
    nodes = {}
    for name, group in members.items():
        layer = model.layer(name)
        inputs = list(dict.fromkeys(head[src] for src in layer.inputs))
        nodes[name] = GraphNode(name, layer.type_name, tuple(graph.nodes[group[-1]]["shape"]),
                                tuple(inputs), tuple(group),
                                tuple(model.layer(m).type.alias for m in group[1:]))
    return nodes


def _absorbing_producer(model: Any, name: str) -> str | None:
    """The producer ``name`` collapses into, or None (rule in the module docstring)."""
    layer = model.layer(name)
    if len(layer.inputs) != 1 or layer.inputs[0] == INPUT_NAME:
        return None
    src = layer.inputs[0]
    graph = model.graph
    if graph.out_degree(src) != 1:
        return None
    in_shape = (1, *graph.nodes[src]["shape"])
    out_shape = (1, *graph.nodes[name]["shape"])
    if out_shape != in_shape:
        return None
    ltype = layer.type
    if ltype.window([in_shape], layer.attrs) is not None:
        return None
    if ltype.macs([in_shape], out_shape, layer.attrs) != 0:
        return None
    return src


# -------------------------------------------------------------------- numbers and colour

def _color_column(color_by: str | None) -> str | None:
    if color_by is None:
        return None
    column = COLOR_ALIASES.get(color_by, color_by)
    if column not in COLOR_BY:
        choices = [*COLOR_BY, *COLOR_ALIASES]
        raise ArchstatError(f"cannot colour by {color_by!r} (choose from {', '.join(choices)})",
                            field="--color-by", hint=did_you_mean(str(color_by), choices))
    return column


def _node_stats(nodes: Mapping[str, GraphNode], analysis: Any) -> dict[str, dict[str, int]]:
    """Per node, the sums over its members of the additive analysis columns."""
    rows = {row["name"]: row for row in analysis.rows()}
    stats = {}
    for name, node in nodes.items():
        missing = [m for m in node.members if m not in rows]
        if missing:
            raise ArchstatError(f"the analysis has no layer {missing[0]!r}: it is of another model",
                                field="analysis")
        stats[name] = {key: sum(rows[m][key] for m in node.members)
                       for key in ("params", "macs", "flops", "activation_bytes")}
    return stats


@dataclass(frozen=True)
class ColorScale:
    """How values of one column map onto :data:`PALETTE`: logarithmic when they span more
    than :attr:`LOG_SPAN` (a factor), else linear from zero. Zero has no colour."""

    column: str
    low: float
    high: float
    log: bool

    LOG_SPAN = 30.0

    @classmethod
    def fit(cls, column: str, values: Sequence[float]) -> "ColorScale":
        positive = [v for v in values if v > 0]
        if not positive:
            return cls(column, 0.0, 1.0, False)
        low, high = min(positive), max(positive)
        if high / low >= cls.LOG_SPAN:
            return cls(column, float(low), float(high), True)
        return cls(column, 0.0, float(high), False)

    def fraction(self, value: float) -> float | None:
        """Position in [0, 1] along the ramp, or None for zero (no colour)."""
        if value <= 0:
            return None
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return value / self.high if self.high > 0 else 0.0

    def color(self, value: float) -> str:
        t = self.fraction(value)
        return NO_VALUE_FILL if t is None else _ramp(t)

    def describe(self) -> str:
        what = _COLUMN_TITLES[self.column]
        return f"{what}{' (log scale)' if self.log else ''}"

    def format(self, value: float) -> str:
        return human_bytes(value) if self.column == "activation_bytes" else human(value)

    def tick(self, value: float) -> str:
        """A colour-bar tick: ``1M``, ``10 kB`` (no trailing zeros)."""
        return re.sub(r"\.0+(?=\D|$)", "", self.format(value))


_COLUMN_TITLES = {"macs": "MACs per node", "activation_bytes": "output memory per node"}


def _ramp(t: float) -> str:
    """Hex colour at ``t`` in [0, 1] along :data:`PALETTE` (linear between stops)."""
    t = min(max(t, 0.0), 1.0) * (len(PALETTE) - 1)
    i = min(int(t), len(PALETTE) - 2)
    a, b = _rgb(PALETTE[i]), _rgb(PALETTE[i + 1])
    f = t - i
    return "#" + "".join(f"{round(x + (y - x) * f):02x}" for x, y in zip(a, b))


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def _text_color(fill: str) -> str:
    r, g, b = _rgb(fill)
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 140 else "black"


def _fill(node: GraphNode, stats: Mapping[str, Mapping[str, int]] | None,
          scale: ColorScale | None) -> str:
    if scale is not None and stats is not None:
        return scale.color(stats[node.name][scale.column])
    if node.name == INPUT_NAME:
        return INPUT_FILL
    return MERGE_FILL if len(node.inputs) > 1 else PLAIN_FILL


def _label_lines(node: GraphNode, stats: Mapping[str, int] | None,
                 column: str | None) -> list[tuple[str, str]]:
    """``[(text, font role), ...]``: name, type, shape, and numbers when there are any."""
    lines = [(node.title, "name"), (node.type, "detail"), (shape_str(node.shape), "detail")]
    if stats is not None:
        lines.append((f"{human(stats['params'])} params, {human(stats['macs'])} MACs", "stats"))
        if column == "activation_bytes":
            lines.append((f"output {human_bytes(stats['activation_bytes'])}", "stats"))
    return lines


def _subtitle(model: Any, nodes: Mapping[str, GraphNode], totals: Mapping[str, Any]) -> str:
    text = (f"{human(totals['params'])} params, {human(totals['macs'])} MACs, "
            f"{len(model)} layers, input {shape_str(model.input_shape)}")
    if len(nodes) < len(model.order):
        text += f"; {len(nodes)} boxes (pointwise layers merged into the node before them)"
    return text


# ---------------------------------------------------------------------------------- DOT

def _dot_quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, newlines as ``\\n``."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n") + '"'


def _dot_label(lines: Sequence[str]) -> str:
    """One quoted label, its lines separated by DOT's ``\\n`` (centred lines)."""
    return '"' + "\\n".join(_dot_quote(line)[1:-1] for line in lines) + '"'


def to_dot(model: Any, analysis: Any = None, color_by: str | None = None,
           collapse: bool = True) -> str:
    """Graphviz DOT text of the layer DAG (no Graphviz needed to produce it).

    Each node is labelled with its name (and the pointwise layers merged into it), type and
    per-sample output shape; with an analysis, also params and MACs (summed over the merged
    layers). Edges are listed consumer by consumer, each in its input order. Render with
    e.g. ``dot -Tsvg model.dot -o model.svg``.

    Parameters
    ----------
    model : Model, path or mapping
    analysis : Analysis, optional
        Numbers for the labels (from :func:`archstat.analyze`).
    color_by : {'macs', 'activation_bytes', 'memory'}, optional
        Fill nodes along a light-to-dark ramp (computed at batch 1, float32 when no analysis
        is given); zero is grey.
    collapse : bool
        Merge pointwise layers into their producer (see :func:`graph_nodes`).

    Raises
    ------
    ArchstatError
        An unknown ``color_by``, or an analysis of another model.
    """
    from ..graph import load
    model = load(model)
    column = _color_column(color_by)
    nodes = graph_nodes(model, collapse)
    stats = _node_stats(nodes, analysis) if analysis is not None else None
    totals = analysis.totals if analysis is not None else None
    color_stats = scale = None
    if column is not None:
        from ..analysis import analyze
        color_stats = stats if stats is not None else _node_stats(nodes, analyze(model))
        scale = ColorScale.fit(column, [s[column] for s in color_stats.values()])
    title = model.name
    if totals is not None:
        title += "\n" + _subtitle(model, nodes, totals)
    if scale is not None:
        values = [s[column] for s in color_stats.values() if s[column] > 0]
        title += (f"\nfill: {scale.describe()}, pale {scale.format(min(values, default=0))} to dark "
                  f"{scale.format(max(values, default=0))}; grey: none")
    out = [f"digraph {_dot_quote(model.name)} {{",
           f"  graph [rankdir=TB, labelloc=t, fontname=\"Helvetica\", label={_dot_quote(title)}];",
           "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];",
           "  edge [arrowsize=0.7, color=\"#4d4d4d\"];"]
    for name, node in nodes.items():
        lines = [text for text, _ in _label_lines(node, stats[name] if stats else None, column)]
        fill = _fill(node, color_stats, scale)
        attrs = f"label={_dot_label(lines)}, fillcolor=\"{fill}\""
        if _text_color(fill) == "white":
            attrs += ", fontcolor=\"white\""
        out.append(f"  {_dot_quote(name)} [{attrs}];")
    for name, node in nodes.items():
        for src in node.inputs:
            out.append(f"  {_dot_quote(src)} -> {_dot_quote(name)};")
    out.append("}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------ layout

@dataclass
class Layout:
    """Where everything goes, in inches from the top left of the drawing area.

    ``boxes[key] = (x_centre, y_centre, width)``; keys are node names, plus ``("ghost", s,
    name)`` for a waist repeated at the top of column ``s``. ``edges`` are point lists from
    a source box's bottom to a target box's top (through dummy points), ``(source, target,
    points)``; ``width``/``height`` the extent; ``columns`` the generation range per column.
    """

    boxes: dict[Any, tuple[float, float, float]] = field(default_factory=dict)
    edges: list[tuple[Any, Any, list[tuple[float, float]]]] = field(default_factory=list)
    box_height: float = 0.0
    width: float = 0.0
    height: float = 0.0
    columns: list[tuple[int, int]] = field(default_factory=list)
    notes: list[tuple[float, float, str]] = field(default_factory=list)


def generations(nodes: Mapping[str, GraphNode]) -> dict[str, int]:
    """Longest-path depth from the input (what ``nx.topological_generations`` gives)."""
    gen: dict[str, int] = {}
    for name, node in nodes.items():      # execution order is topological
        gen[name] = max((gen[src] + 1 for src in node.inputs), default=0)
    return gen


def layout_graph(nodes: Mapping[str, GraphNode], widths: Mapping[str, float], box_height: float,
                 wrap: bool = True, target_aspect: float = _TARGET_ASPECT,
                 header: tuple[float, float] = (0.0, 0.0)) -> Layout:
    """Place boxes of the given widths (inches) and one height in layers (module docstring).

    ``header`` is the (width, height) the title needs, counted when choosing the number of
    columns, so that the whole figure comes near ``target_aspect``.
    """
    gen = generations(nodes)
    index = {name: i for i, name in enumerate(nodes)}
    ranks, up, down, weight = _layers_with_dummies(nodes, gen, index)
    _order_by_barycentre(ranks, up, down)
    x = _place_x(ranks, up, down, weight, {k: widths.get(k, 0.1) for r in ranks for k in r})
    pitch = box_height * 1.55 + 0.25
    wanted = [(0, len(ranks) - 1)]
    if wrap and len(ranks) > _WRAP_ABOVE_ROWS:
        waists = [g for g in range(len(ranks) - 1)
                  if len(ranks[g]) == 1 and not isinstance(ranks[g][0], tuple)]
        wanted = _best_columns(ranks, waists, x, widths, pitch, target_aspect, header)
    return _assemble(nodes, ranks, x, widths, wanted, pitch, box_height, gen)


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
            chain = [src] + [("~", src, name, g) for g in range(gen[src] + 1, gen[name])] + [name]
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
            dummies = isinstance(a, tuple) + isinstance(b, tuple)
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


def _place_x(ranks, up, down, weight, widths, iterations: int = 40) -> dict[Any, float]:
    """x centres: each key pulled to the weighted mean of its neighbours' x, with boxes in a
    rank kept in order and ``_HGAP`` apart (an exact least-squares step per rank)."""
    gaps = []
    for r in ranks:
        gaps.append([(widths[a] + widths[b]) / 2 + (_HGAP if not isinstance(a, tuple) or
                                                    not isinstance(b, tuple) else _HGAP / 2)
                     for a, b in zip(r, r[1:])])
    x: dict[Any, float] = {}
    for r, gap in zip(ranks, gaps):
        offsets = [0.0]
        for g in gap:
            offsets.append(offsets[-1] + g)
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
            offsets = [0.0]
            for gp in gaps[g]:
                offsets.append(offsets[-1] + gp)
            # the exact minimiser of sum(pull * (x - target)^2) with the gaps kept, for this rank
            fitted = _isotonic([t - o for t, o in zip(targets, offsets)], pulls)
            for k, f, o in zip(r, fitted, offsets):
                x[k] = f + o
    return x


def _extent(keys, x, widths) -> tuple[float, float]:
    return (min(x[k] - widths.get(k, 0.1) / 2 for k in keys),
            max(x[k] + widths.get(k, 0.1) / 2 for k in keys))


def _split(depth: int, waists: Sequence[int], columns: int) -> list[tuple[int, int]] | None:
    """Generation ranges for ``columns`` columns, cut after waists, so that the tallest
    column (a repeated waist on top of each column but the first) is as short as it can be."""
    if columns == 1:
        return [(0, depth - 1)]
    if len(waists) < columns - 1:
        return None

    def rows(start: int, end: int) -> int:
        return end - start + 1 + (start > 0)

    # best[j][c]: (tallest column, cuts) for the generations 0..c in j + 1 columns, last cut at c
    best: list[dict[int, tuple[int, list[int]]]] = [{c: (rows(0, c), [c]) for c in waists}]
    for _ in range(1, columns - 1):
        step = {}
        for c in waists:
            options = [(max(t, rows(p + 1, c)), cuts + [c]) for p, (t, cuts) in best[-1].items() if p < c]
            if options:
                step[c] = min(options)
        best.append(step)
    final = [(max(t, rows(c + 1, depth - 1)), cuts) for c, (t, cuts) in best[-1].items()]
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
        for s, (a, b) in enumerate(split):
            keys = [k for g in range(a, b + 1) for k in ranks[g]] + ([ranks[a - 1][0]] if s else [])
            lo, hi = _extent(keys, x, widths)
            spans.append((hi - lo, b - a + 1 + (s > 0)))
        rows = max(r for _, r in spans)
        used = sum(w * r for w, r in spans) / (rows * sum(w for w, _ in spans))
        width = max(sum(w for w, _ in spans) + _COLUMN_GAP * (columns - 1), header[0]) + 2 * _MARGIN
        height = rows * pitch + header[1] + 2 * _MARGIN
        shrink = min(1.0, MAX_INCHES / width, MAX_INCHES / height)
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
        keys = [k for g in range(a, b + 1) for k in ranks[g]]
        ghost = ranks[a - 1][0] if s else None
        lo, hi = _extent(keys + ([ghost] if ghost else []), x, widths)
        shift = left - lo
        first_row = 1 if s else 0
        for g in range(a, b + 1):
            for k in ranks[g]:
                where[k] = (x[k] + shift, top + (g - a + first_row) * pitch)
                column_of[k] = s
        if ghost is not None:
            gx, gy = x[ghost] + shift, top
            layout.boxes[("ghost", s, ghost)] = (gx, gy, widths[ghost])
            layout.notes.append((gx, gy - box_height / 2, f"from column {s}"))
            wx, wy = where[ghost]
            layout.notes.append((wx, wy + box_height / 2, f"continues in column {s + 1}"))
        layout.height = max(layout.height, top + (b - a + first_row) * pitch + box_height / 2)
        left += hi - lo + _COLUMN_GAP
    layout.width = left - _COLUMN_GAP
    for name in nodes:
        layout.boxes[name] = (*where[name], widths[name])
    half = box_height / 2
    for name, node in nodes.items():
        for src in node.inputs:
            chain = [("~", src, name, g) for g in range(gen[src] + 1, gen[name])]
            s = column_of[name]
            source = src if column_of[src] == s else ("ghost", s, src)
            sx, sy = layout.boxes[source][:2] if source != src else where[src]
            points = [(sx, sy + half)]
            for key in chain:
                dx, dy = where[key]
                points += [(dx, dy - half), (dx, dy + half)]
            tx, ty = where[name]
            points.append((tx, ty - half))
            layout.edges.append((source, name, points))
    return layout


# ----------------------------------------------------------------------------- drawing

def _check_output(path: str | os.PathLike) -> Path:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ArchstatError(f"cannot write a graph picture as {suffix or 'a file without a suffix'!r}"
                            f" ({path.name})", field="--output",
                            hint=f"use a file name ending in {', '.join(s[1:] for s in SUFFIXES)}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ArchstatError(f"no such directory: {parent}", field="--output",
                            hint="create it first, or choose another path")
    return path


def draw_graph(model: Any, path: str | os.PathLike, analysis: Any = None,
               color_by: str | None = None, collapse: bool = True,
               title: str | None = None) -> Path:
    """Draw the layer DAG to a PNG or SVG file (by suffix; ``.dot`` writes :func:`to_dot`).

    Generations of the DAG run top to bottom and parallel branches side by side, each node
    a rounded box "name / type / CxHxW" (plus params and MACs when an analysis is given).
    A deep graph wraps into columns at single-node waists (the waist is repeated, dashed,
    at the top of the next column). The title gives the model name and its totals; the
    figure is at most :data:`MAX_INCHES` a side at :data:`DPI` (text shrinks only beyond).

    Parameters
    ----------
    model : Model, path or mapping
    path : str or Path
        Output file, ``.png``, ``.svg`` or ``.dot``.
    analysis : Analysis, optional
        Numbers for the labels and totals (otherwise totals at batch 1, float32).
    color_by : {'macs', 'activation_bytes', 'memory'}, optional
        Fill boxes along a light-to-dark ramp, with a labelled colour bar.
    collapse : bool
        Merge pointwise layers into the node before them (see :func:`graph_nodes`).
    title : str, optional
        Replaces the model name as the title (the totals line stays).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ArchstatError
        An unsupported suffix or missing directory (field ``--output``), an unknown
        ``color_by``, or a file that cannot be written.
    """
    from ..analysis import analyze
    from ..graph import load
    path = _check_output(path)
    model = load(model)
    column = _color_column(color_by)
    if path.suffix.lower() == ".dot":
        _write(path, lambda p: p.write_text(to_dot(model, analysis, color_by, collapse), encoding="utf-8"))
        return path
    nodes = graph_nodes(model, collapse)
    full = analysis if analysis is not None else analyze(model)
    all_stats = _node_stats(nodes, full)
    shown = all_stats if analysis is not None else None
    scale = ColorScale.fit(column, [s[column] for s in all_stats.values()]) if column else None
    drawing = _Drawing(nodes, shown, all_stats, scale, column,
                       title or model.name, _subtitle(model, nodes, full.totals))
    _write(path, drawing.save)
    return path


def _write(path: Path, save: Callable[[Path], None]) -> None:
    try:
        save(path)
    except OSError as exc:
        raise ArchstatError(f"cannot write {path} ({exc.__class__.__name__}: {exc.strerror or exc})",
                            field="--output") from None


class _Drawing:
    """One matplotlib figure of the graph (Agg canvas, no pyplot state)."""

    def __init__(self, nodes, shown, all_stats, scale, column, title, subtitle):
        from matplotlib.backends.backend_agg import RendererAgg
        from matplotlib.font_manager import FontProperties
        self._renderer = RendererAgg(8, 8, 72)
        self._fonts = {role: FontProperties(family="DejaVu Sans", size=size,
                                            weight="bold" if role in ("name", "title") else "normal")
                       for role, size in _FONT.items()}
        self.nodes, self.scale = nodes, scale
        self.all_stats = all_stats
        self.title, self.subtitle = title, subtitle
        self.lines = {name: _label_lines(node, shown[name] if shown else None, column)
                      for name, node in nodes.items()}
        # every box gets the height of the tallest label, so rows line up
        self.line_h = {role: _FONT[role] * 1.3 / 72 for role in _FONT}
        tallest = max(self.lines.values(), key=len)
        self.box_height = sum(self.line_h[role] for _, role in tallest) + 2 * _PAD
        widths = {name: max(self._width(t, r) for t, r in lines) + 2 * _PAD + 0.06
                  for name, lines in self.lines.items()}
        self.header_height = 0.62 + (0.62 if scale else 0.0)
        header_width = max(self._width(title, "title"), self._width(subtitle, "subtitle"))
        self.layout = layout_graph(nodes, widths, self.box_height,
                                   header=(header_width, self.header_height))
        self.width = max(self.layout.width, header_width) + 2 * _MARGIN
        self.height = self.layout.height + self.header_height + 2 * _MARGIN
        self.shrink = min(1.0, MAX_INCHES / self.width, MAX_INCHES / self.height)

    def _width(self, text: str, role: str) -> float:
        w, _, _ = self._renderer.get_text_width_height_descent(text, self._fonts[role], ismath=False)
        return w / 72

    def save(self, path: Path) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        fig = Figure(figsize=(self.width * self.shrink, self.height * self.shrink), dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, self.width)
        ax.set_ylim(self.height, 0)
        ax.set_axis_off()
        ox = _MARGIN + (self.width - 2 * _MARGIN - self.layout.width) / 2
        oy = _MARGIN + self.header_height
        self._draw_header(fig, ax)
        self._draw_edges(ax, ox, oy)
        self._draw_boxes(ax, ox, oy)
        fig.savefig(path, format=path.suffix.lower()[1:], dpi=DPI, facecolor="white")

    def _fs(self, role: str) -> float:
        return _FONT[role] * self.shrink

    def _draw_header(self, fig, ax) -> None:
        ax.text(self.width / 2, _MARGIN, self.title, ha="center", va="top", fontsize=self._fs("title"),
                fontweight="bold")
        ax.text(self.width / 2, _MARGIN + 0.3, self.subtitle, ha="center", va="top",
                fontsize=self._fs("subtitle"), color="#333333")
        if self.scale is None:
            return
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import LinearSegmentedColormap, LogNorm, Normalize
        from matplotlib.ticker import FuncFormatter
        scale = self.scale
        norm = LogNorm(scale.low, scale.high) if scale.log else Normalize(scale.low, scale.high)
        cmap = LinearSegmentedColormap.from_list("archstat", PALETTE)
        bar_w = min(4.0, self.width - 2 * _MARGIN)
        left = (self.width - bar_w) / 2
        top = _MARGIN + 0.66
        cax = fig.add_axes((left / self.width, 1 - (top + 0.14) / self.height,
                            bar_w / self.width, 0.14 / self.height))
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, orientation="horizontal")
        bar.ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: scale.tick(v)))
        bar.ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        bar.ax.tick_params(labelsize=self._fs("note"), length=2 * self.shrink, width=0.5)
        bar.outline.set_linewidth(0.5)
        bar.ax.xaxis.set_label_position("top")
        bar.set_label(f"{scale.describe()}; grey boxes: none", fontsize=self._fs("note") + 0.5,
                      labelpad=2)

    def _ports(self):
        """Spread the ends of several edges at one box side, ordered left to right."""
        outs: dict[Any, list[int]] = {}
        ins: dict[Any, list[int]] = {}
        for i, (src, dst, pts) in enumerate(self.layout.edges):
            outs.setdefault(src, []).append(i)
            ins.setdefault(dst, []).append(i)
        shift: dict[tuple[int, int], float] = {}
        for table, end, probe in ((outs, 0, 1), (ins, -1, -2)):
            for key, edges in table.items():
                width = self.layout.boxes[key][2]
                edges.sort(key=lambda i: self.layout.edges[i][2][probe][0])
                step = min(0.14, 0.7 * width / max(len(edges), 1))
                for j, i in enumerate(edges):
                    shift[i, end] = (j - (len(edges) - 1) / 2) * step
        return shift

    def _draw_edges(self, ax, ox, oy) -> None:
        from matplotlib.patches import FancyArrowPatch
        from matplotlib.path import Path as MPath
        shift = self._ports()
        for i, (src, dst, pts) in enumerate(self.layout.edges):
            pts = [(x + ox, y + oy) for x, y in pts]
            pts[0] = (pts[0][0] + shift[i, 0], pts[0][1])
            pts[-1] = (pts[-1][0] + shift[i, -1], pts[-1][1])
            verts, codes = [pts[0]], [MPath.MOVETO]
            for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
                bend = (y1 - y0) / 2
                verts += [(x0, y0 + bend), (x1, y1 - bend), (x1, y1)]
                codes += [MPath.CURVE4] * 3
            arrow = FancyArrowPatch(path=MPath(verts, codes), arrowstyle="-|>,head_length=0.5,head_width=0.22",
                                    mutation_scale=10 * self.shrink, color=EDGE_COLOR,
                                    linewidth=0.8 * self.shrink, shrinkA=0, shrinkB=0, zorder=1)
            ax.add_patch(arrow)

    def _draw_boxes(self, ax, ox, oy) -> None:
        from matplotlib.patches import FancyBboxPatch
        h = self.layout.box_height
        for key, (x, y, w) in self.layout.boxes.items():
            ghost = isinstance(key, tuple)
            name = key[2] if ghost else key
            node = self.nodes[name]
            fill = "white" if ghost else _fill(node, self.all_stats, self.scale)
            x, y = x + ox, y + oy
            ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                                        boxstyle=f"round,pad=0,rounding_size={0.08}",
                                        facecolor=fill, edgecolor="#555555" if ghost else "#333333",
                                        linewidth=0.8 * self.shrink, linestyle="--" if ghost else "-",
                                        zorder=2))
            lines = self.lines[name]
            color = "#555555" if ghost else _text_color(fill)
            total = sum(self.line_h[r] for _, r in lines)
            ty = y - total / 2
            for text, role in lines:
                ty += self.line_h[role] / 2
                ax.text(x, ty, text, ha="center", va="center", fontsize=self._fs(role),
                        fontweight="bold" if role == "name" else "normal", color=color, zorder=3,
                        fontfamily="DejaVu Sans", style="italic" if ghost and role != "name" else "normal")
                ty += self.line_h[role] / 2
        for x, y, text in self.layout.notes:
            above = text.startswith("from")
            ax.text(x + ox, y + oy + (-0.03 if above else 0.03), text, ha="center",
                    va="bottom" if above else "top", fontsize=self._fs("note"), style="italic",
                    color="#555555", zorder=3)
