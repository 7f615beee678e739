"""What a box of a graph picture says and how it is filled, the same in DOT and drawings:
the label lines, the totals line, the per-node numbers (summed over collapsed layers), the
fill colours and the colour scale of ``color_by``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..errors import ArchstatError, did_you_mean
from ..spec import INPUT_NAME
from .graph_collapse import GraphNode
from .units import human, human_bytes, shape_str

#: the per-layer columns a picture can be coloured by (analysis column names)
COLOR_BY = ("macs", "activation_bytes")
#: friendlier names accepted for ``color_by``
COLOR_ALIASES = {"memory": "activation_bytes"}

#: sequential fill ramp, light to dark (ColorBrewer YlOrRd, 9 classes), shared by DOT and PNG
PALETTE = ("#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c",
           "#bd0026", "#800026")
PLAIN_FILL = "#eef3fb"      # every node when not colouring
MERGE_FILL = "#fdf0d5"      # nodes with several inputs, when not colouring
INPUT_FILL = "#e3f1e3"      # the model's input
NO_VALUE_FILL = "#e6e6e6"   # zero in the coloured column (pools, merges, ...)
EDGE_COLOR = "#4d4d4d"

_COLUMN_TITLES = {"macs": "MACs per node", "activation_bytes": "output memory per node"}


def color_column(color_by: str | None) -> str | None:
    """The analysis column ``color_by`` names (aliases resolved), or None for no colour.

    Raises
    ------
    ArchstatError
        An unknown ``color_by`` (field ``--color-by``), with a did-you-mean hint.
    """
    if color_by is None:
        return None
    column = COLOR_ALIASES.get(color_by, color_by)
    if column not in COLOR_BY:
        choices = [*COLOR_BY, *COLOR_ALIASES]
        raise ArchstatError(f"cannot colour by {color_by!r} (choose from {', '.join(choices)})",
                            field="--color-by", hint=did_you_mean(str(color_by), choices))
    return column


def node_stats(nodes: Mapping[str, GraphNode], analysis: Any) -> dict[str, dict[str, int]]:
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


def color_scale(column: str | None, stats: Mapping[str, Mapping[str, int]] | None) -> ColorScale | None:
    """The scale fitted to ``column`` over every node's ``stats``, or None when not colouring."""
    return ColorScale.fit(column, [s[column] for s in stats.values()]) if column else None


def _ramp(t: float) -> str:
    """Hex colour at ``t`` in [0, 1] along :data:`PALETTE` (linear between stops)."""
    t = min(max(t, 0.0), 1.0) * (len(PALETTE) - 1)
    i = min(int(t), len(PALETTE) - 2)
    a, b = _rgb(PALETTE[i]), _rgb(PALETTE[i + 1])
    f = t - i
    return "#" + "".join(f"{round(x + (y - x) * f):02x}" for x, y in zip(a, b))


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def text_color(fill: str) -> str:
    """``"white"`` on a dark fill, else ``"black"`` (ITU-R BT.601 luma below 140 of 255)."""
    r, g, b = _rgb(fill)
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 140 else "black"


def box_fill(node: GraphNode, stats: Mapping[str, Mapping[str, int]] | None,
             scale: ColorScale | None) -> str:
    """A node's fill: along the scale when colouring, else by its role (input, merge, plain)."""
    if scale is not None and stats is not None:
        return scale.color(stats[node.name][scale.column])
    if node.name == INPUT_NAME:
        return INPUT_FILL
    return MERGE_FILL if len(node.inputs) > 1 else PLAIN_FILL


def label_lines(node: GraphNode, stats: Mapping[str, int] | None,
                column: str | None) -> list[tuple[str, str]]:
    """``[(text, font role), ...]``: name, type, shape, and numbers when there are any."""
    lines = [(node.title, "name"), (node.type, "detail"), (shape_str(node.shape), "detail")]
    if stats is not None:
        lines.append((f"{human(stats['params'])} params, {human(stats['macs'])} MACs", "stats"))
        if column == "activation_bytes":
            lines.append((f"output {human_bytes(stats['activation_bytes'])}", "stats"))
    return lines


def subtitle(model: Any, nodes: Mapping[str, GraphNode], totals: Mapping[str, Any]) -> str:
    """The line under the title: the model's totals, and how many boxes remain if collapsed."""
    text = (f"{human(totals['params'])} params, {human(totals['macs'])} MACs, "
            f"{len(model)} layers, input {shape_str(model.input_shape)}")
    if any(len(n.members) > 1 and not n.merged for n in nodes.values()):
        text += f"; {len(nodes)} boxes, one per block (layers grouped by their dotted names)"
    elif len(nodes) < len(model.order):
        text += f"; {len(nodes)} boxes (pointwise layers merged into the node before them)"
    return text
