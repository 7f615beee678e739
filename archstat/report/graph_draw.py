"""The layer DAG drawn to a PNG, SVG or PDF file with matplotlib (imported lazily, Agg canvas,
no pyplot state).

Owns the output checks, text measurement, and the painting of boxes, curved edges, the
title and the colour bar. Where things go comes from :mod:`.graph_layout`, what each box
says and its fill from :mod:`.graph_style`; a ``.dot`` path is written by :mod:`.graph_dot`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..outfile import write_file, write_with
from .graph_collapse import graph_nodes
from .graph_dot import to_dot
from .graph_layout import MARGIN, figure_size, layout_graph
from .graph_style import (EDGE_COLOR, PALETTE, box_fill, color_column, color_scale, label_lines,
                          node_stats, subtitle, text_color)
from .plots import STYLE, check_plot_path, stable_metadata

#: output suffixes :func:`draw_graph` writes
SUFFIXES = (".png", ".svg", ".pdf", ".html", ".dot")
#: the PNG resolution (with :data:`.graph_layout.MAX_INCHES`, at most 4320 px a side)
DPI = 120

_FONT = {"name": 9.0, "detail": 8.0, "stats": 7.5, "title": 13.0, "subtitle": 9.0, "note": 7.0}
_BOLD = ("name", "title")   # font roles set in bold
_PAD = 0.07                 # inches of padding inside a box


def draw_graph(model: Any, path: str | os.PathLike, analysis: Any = None,
               color_by: str | None = None, collapse: bool = True,
               title: str | None = None, blocks: int | None = None) -> Path:
    """Draw the layer DAG to a PNG, SVG or PDF file (by suffix; ``.dot`` writes :func:`.to_dot`).

    Generations of the DAG run top to bottom and parallel branches side by side, each node
    a rounded box "name / type / CxHxW" (plus params and MACs when an analysis is given).
    A deep graph wraps into columns at single-node waists (the waist is repeated, dashed,
    at the top of the next column). The title gives the model name and its totals; the
    figure is at most :data:`.graph_layout.MAX_INCHES` a side at :data:`DPI` (text shrinks
    only beyond).

    Parameters
    ----------
    model : Model, path or mapping
    path : str or Path
        Output file, ``.png``, ``.svg``, ``.pdf``, ``.html`` (interactive: pan, zoom, each
        box's numbers on hover, :mod:`.graph_html`) or ``.dot``.
    analysis : Analysis, optional
        Numbers for the labels and totals (otherwise totals at batch 1, float32).
    color_by : {'macs', 'activation_bytes', 'memory'}, optional
        Fill boxes along a light-to-dark ramp, with a labelled colour bar.
    collapse : bool
        Merge pointwise layers into the node before them (see :func:`.graph_nodes`).
    title : str, optional
        Replaces the model name as the title (the totals line stays).
    blocks : int, optional
        One box per block: layers summed by the first ``blocks`` parts of their dotted names
        (:func:`.graph_collapse.collapse_blocks`); 0 chooses the depth that leaves at most
        :data:`.graph_collapse.BLOCK_BOXES` boxes.

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
    path = check_plot_path(path, "--output", SUFFIXES, "a graph picture")
    model = load(model)
    column = color_column(color_by)
    if path.suffix.lower() == ".dot":
        write_file(path, to_dot(model, analysis, color_by, collapse, blocks))
        return path
    nodes = graph_nodes(model, collapse, blocks)
    full = analysis if analysis is not None else analyze(model)
    all_stats = node_stats(nodes, full)
    html_page = path.suffix.lower() == ".html"
    shown = all_stats if analysis is not None or html_page else None
    drawing = _Drawing(nodes, shown, all_stats, color_scale(column, all_stats), column,
                       title or model.name, subtitle(model, nodes, full.totals))
    if html_page:
        from .graph_html import graph_page
        write_file(path, graph_page(drawing, full))
        return path
    write_with(path, lambda f: drawing.save(f, path.suffix.lower()[1:]))
    return path


def _weight(role: str) -> str:
    return "bold" if role in _BOLD else "normal"


class _Drawing:
    """One matplotlib figure of the graph (Agg canvas, no pyplot state)."""

    def __init__(self, nodes, shown, all_stats, scale, column, title, subtitle):
        from matplotlib.backends.backend_agg import RendererAgg
        from matplotlib.font_manager import FontProperties
        self._renderer = RendererAgg(8, 8, 72)
        self._fonts = {role: FontProperties(family="DejaVu Sans", size=size, weight=_weight(role))
                       for role, size in _FONT.items()}
        self.nodes, self.scale = nodes, scale
        self.all_stats = all_stats
        self.title, self.subtitle = title, subtitle
        self.lines = {name: label_lines(node, shown[name] if shown else None, column)
                      for name, node in nodes.items()}
        # every box gets the height of the tallest label, so rows line up
        self.line_h = {role: _FONT[role] * 1.3 / 72 for role in _FONT}
        tallest = max(self.lines.values(), key=len)
        self.box_height = sum(self.line_h[role] for _, role in tallest) + 2 * _PAD
        widths = {name: max(self._width(t, r) for t, r in lines) + 2 * _PAD + 0.06
                  for name, lines in self.lines.items()}
        self.header_height = 0.62 + (0.8 if scale else 0.0)
        header = (max(self._width(title, "title"), self._width(subtitle, "subtitle")), self.header_height)
        self.layout = layout_graph(nodes, widths, self.box_height, header=header)
        self.width, self.height, self.shrink = figure_size(self.layout.width, self.layout.height, header)

    def _width(self, text: str, role: str) -> float:
        w, _, _ = self._renderer.get_text_width_height_descent(text, self._fonts[role], ismath=False)
        return w / 72

    def save(self, file, fmt: str) -> None:
        """Draw into the open binary ``file`` as ``fmt`` (png, svg, pdf)."""
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        fig = Figure(figsize=(self.width * self.shrink, self.height * self.shrink), dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, self.width)
        ax.set_ylim(self.height, 0)
        ax.set_axis_off()
        ox = MARGIN + (self.width - 2 * MARGIN - self.layout.width) / 2
        oy = MARGIN + self.header_height
        self._draw_header(fig, ax)
        self._draw_edges(ax, ox, oy)
        self._draw_boxes(ax, ox, oy)
        with matplotlib.rc_context({"svg.hashsalt": STYLE["svg.hashsalt"]}):
            fig.savefig(file, format=fmt, dpi=DPI, facecolor="white", metadata=stable_metadata(fmt))

    def _fs(self, role: str) -> float:
        return _FONT[role] * self.shrink

    def _draw_header(self, fig, ax) -> None:
        ax.text(self.width / 2, MARGIN, self.title, ha="center", va="top", fontsize=self._fs("title"),
                fontweight="bold")
        ax.text(self.width / 2, MARGIN + 0.3, self.subtitle, ha="center", va="top",
                fontsize=self._fs("subtitle"), color="#333333")
        if self.scale is None:
            return
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import LinearSegmentedColormap, LogNorm, Normalize
        from matplotlib.ticker import FuncFormatter
        scale = self.scale
        norm = LogNorm(scale.low, scale.high) if scale.log else Normalize(scale.low, scale.high)
        cmap = LinearSegmentedColormap.from_list("archstat", PALETTE)
        bar_w = min(6.0, self.width - 2 * MARGIN)
        left = (self.width - bar_w) / 2
        top = MARGIN + 0.66
        cax = fig.add_axes((left / self.width, 1 - (top + 0.2) / self.height,
                            bar_w / self.width, 0.2 / self.height))
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, orientation="horizontal")
        bar.ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: scale.tick(v)))
        bar.ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        bar.ax.tick_params(labelsize=self._fs("subtitle"), length=3 * self.shrink, width=0.5)
        bar.outline.set_linewidth(0.5)
        bar.ax.xaxis.set_label_position("top")
        bar.set_label(f"{scale.describe()}; grey boxes: none", fontsize=self._fs("subtitle"),
                      labelpad=3)

    def _ports(self):
        """Spread the ends of several edges at one box side, ordered left to right."""
        outs: dict[Any, list[int]] = {}
        ins: dict[Any, list[int]] = {}
        for i, (src, dst, _) in enumerate(self.layout.edges):
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
        for i, (_, _, pts) in enumerate(self.layout.edges):
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
            ghost = isinstance(key, tuple)      # ("ghost", column, name): a repeated waist
            name = key[2] if ghost else key
            node = self.nodes[name]
            fill = "white" if ghost else box_fill(node, self.all_stats, self.scale)
            x, y = x + ox, y + oy
            ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                                        boxstyle=f"round,pad=0,rounding_size={0.08}",
                                        facecolor=fill, edgecolor="#555555" if ghost else "#333333",
                                        linewidth=0.8 * self.shrink, linestyle="--" if ghost else "-",
                                        zorder=2))
            lines = self.lines[name]
            color = "#555555" if ghost else text_color(fill)
            total = sum(self.line_h[r] for _, r in lines)
            ty = y - total / 2
            for text, role in lines:
                ty += self.line_h[role] / 2
                ax.text(x, ty, text, ha="center", va="center", fontsize=self._fs(role),
                        fontweight=_weight(role), color=color, zorder=3,
                        fontfamily="DejaVu Sans", style="italic" if ghost and role != "name" else "normal")
                ty += self.line_h[role] / 2
        for x, y, text in self.layout.notes:
            above = text.startswith("from")
            ax.text(x + ox, y + oy + (-0.03 if above else 0.03), text, ha="center",
                    va="bottom" if above else "top", fontsize=self._fs("note"), style="italic",
                    color="#555555", zorder=3)
