"""The layer DAG as Graphviz DOT text (Graphviz itself is not needed to write it).

Owns DOT's quoting and the layout of the text; what each node says and how it is filled
comes from :mod:`.graph_style`, which nodes there are from :mod:`.graph_collapse`.
"""
from __future__ import annotations

from typing import Any, Sequence

from .graph_collapse import graph_nodes
from .graph_style import (EDGE_COLOR, box_fill, color_column, color_scale, label_lines, node_stats,
                          subtitle, text_color)


def to_dot(model: Any, analysis: Any = None, color_by: str | None = None,
           collapse: bool = True, blocks: int | None = None) -> str:
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
        Merge pointwise layers into their producer (see :func:`.graph_nodes`).
    blocks : int, optional
        One node per block instance (see :func:`.graph_nodes`).

    Raises
    ------
    ArchstatError
        An unknown ``color_by``, or an analysis of another model.
    """
    from ..graph import load
    model = load(model)
    column = color_column(color_by)
    nodes = graph_nodes(model, collapse, blocks)
    stats = node_stats(nodes, analysis) if analysis is not None else None
    color_stats = stats
    if column is not None and stats is None:
        from ..analysis import analyze
        color_stats = node_stats(nodes, analyze(model))
    scale = color_scale(column, color_stats)
    title = model.name
    if analysis is not None:
        title += "\n" + subtitle(model, nodes, analysis.totals)
    if scale is not None:
        values = [s[column] for s in color_stats.values() if s[column] > 0]
        title += (f"\nfill: {scale.describe()}, pale {scale.format(min(values, default=0))} to dark "
                  f"{scale.format(max(values, default=0))}; grey: none")
    out = [f"digraph {_dot_quote(model.name)} {{",
           f"  graph [rankdir=TB, labelloc=t, fontname=\"Helvetica\", label={_dot_quote(title)}];",
           "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];",
           f"  edge [arrowsize=0.7, color=\"{EDGE_COLOR}\"];"]
    for name, node in nodes.items():
        lines = [text for text, _ in label_lines(node, stats[name] if stats else None, column)]
        fill = box_fill(node, color_stats, scale)
        attrs = f"label={_dot_label(lines)}, fillcolor=\"{fill}\""
        if text_color(fill) == "white":
            attrs += ", fontcolor=\"white\""
        out.append(f"  {_dot_quote(name)} [{attrs}];")
    for name, node in nodes.items():
        for src in node.inputs:
            out.append(f"  {_dot_quote(src)} -> {_dot_quote(name)};")
    out.append("}")
    return "\n".join(out) + "\n"


def _dot_quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, newlines as ``\\n``."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n") + '"'


def _dot_label(lines: Sequence[str]) -> str:
    """One quoted label, its lines separated by DOT's ``\\n`` (centred lines)."""
    return '"' + "\\n".join(_dot_quote(line)[1:-1] for line in lines) + '"'
