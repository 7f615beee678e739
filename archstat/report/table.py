"""Render analyses as a terminal table, Markdown, CSV, JSON or HTML.

Terminal, Markdown and HTML show human units (decimal: K = 10^3, MB = 10^6 bytes) and
thousands separators; CSV and JSON carry the exact integers of :data:`archstat.analysis.COLUMNS`.
Everything here returns text; only the CLI prints.
"""
from __future__ import annotations

import csv
import html
import io
import textwrap
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..analysis import COLUMNS, Analysis
from .blocks import block_rows
from .fit import Col, fit, render as render_cols
from .units import human, human_bytes, shape_str, thousands
from .json_out import dump

FORMATS = ("table", "md", "csv", "json", "html")


@dataclass(frozen=True)
class Column:
    """A displayed column: header, how to format a row value, alignment."""

    key: str
    header: str
    fmt: Callable[[Any], str]
    align: str = ">"


def _count(n: int) -> str:
    return thousands(n) if n else "-"


def _human(n: int) -> str:
    return human(n) if n else "-"


def _bytes(n: int) -> str:
    return human_bytes(n) if n else "-"


def _rf(value) -> str:
    return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"


LAYER_COLUMNS = (
    Column("name", "Layer", str, "<"),
    Column("type", "Type", str, "<"),
    Column("inputs", "Inputs", lambda v: ", ".join(v), "<"),
    Column("output_shape", "Output", shape_str, ">"),
    Column("params", "Params", _count),
    Column("macs", "MACs", _human),
    Column("flops", "FLOPs", _human),
    Column("activations", "Activations", _human),
    Column("activation_bytes", "Memory", _bytes),
    Column("rf_size", "RF", _rf),
    Column("rf_stride", "RF stride", _rf),
)


def _is_chain(analysis: Analysis) -> bool:
    """True when every layer reads exactly the layer before it (no Inputs column needed)."""
    rows = analysis.rows()
    return all(r["inputs"] == (prev["name"],) for prev, r in zip(rows, rows[1:]))


def _inputs_cell(inputs: tuple[str, ...], previous: str | None, width: int = 36) -> str:
    """Inputs as read in a table: blank when the layer reads the row above, else the names,
    abbreviated past ``width`` characters."""
    if inputs == (previous,) or not inputs:
        return ""
    text = ", ".join(inputs)
    if len(text) <= width:
        return text
    return f"{inputs[0]} (+{len(inputs) - 1} more)" if len(inputs) > 1 else inputs[0]


#: marks the name of a layer that runs only in training (explained under the table)
TRAINING_ONLY_MARK = " (train)"


def _layer_columns(analysis: Analysis, rows: Sequence[dict[str, Any]] | None = None) -> list[Column]:
    """The displayed columns: without Inputs for a chain; with another tool's count after
    FLOPs when a convention was applied (``--convention``)."""
    chain = _is_chain(analysis) if rows is None else all(
        r["inputs"] == (prev["name"],) for prev, r in zip(rows, rows[1:]))
    cols = [c for c in LAYER_COLUMNS if not (c.key == "inputs" and chain)]
    conv = analysis.totals.get("convention")
    if conv:
        at = [c.key for c in cols].index("flops") + 1
        cols.insert(at, Column("convention", f"{conv['name']} {conv['unit']}", _human))
    return cols


def layer_cols(analysis: Analysis, depth: int | None = None) -> list[Col]:
    """The per-layer table as columns (:class:`.fit.Col`); with ``depth``, one row per block
    instance (:func:`.blocks.block_rows`). The Params column carries a K/M/G form for fitting."""
    rows = analysis.rows() if not depth else block_rows(analysis, depth)
    cols = _layer_columns(analysis, rows if depth else None)
    body, previous = [], None
    for row in rows:
        cells = [_inputs_cell(row["inputs"], previous) if c.key == "inputs" else c.fmt(row[c.key]) for c in cols]
        if row["training_only"] and not row["name"].endswith(TRAINING_ONLY_MARK):
            cells[0] += TRAINING_ONLY_MARK
        body.append(cells)
        previous = row["name"]
    t = analysis.totals
    total_values = {"name": "Total", "params": _count(t["params"]), "macs": _human(t["macs"]),
                    "flops": _human(t["flops"]), "activations": _human(_stored_elements(analysis)),
                    "activation_bytes": _bytes(t["activation_bytes"])}
    if t.get("convention"):
        total_values["convention"] = _human(t["convention"]["total"])
    out = []
    for i, c in enumerate(cols):
        cells = tuple(r[i] for r in body)
        compact = None
        if c.key == "params":
            compact = (tuple(_human(r["params"]) for r in rows), _human(t["params"]))
        out.append(Col(c.header, c.align, cells, total_values.get(c.key, ""), compact))
    return out


def _layer_table(analysis: Analysis, depth: int | None = None
                 ) -> tuple[list[str], list[str], list[list[str]], list[str]]:
    cols = layer_cols(analysis, depth)
    body = [list(r) for r in zip(*(c.cells for c in cols))]
    return [c.header for c in cols], [c.align for c in cols], body, [c.total for c in cols]


#: the order in which the terminal report gives up columns to fit a width (see :mod:`.fit`):
#: what the graph or other columns already show, then secondary measures, then exact integers
#: become K/M/G, last long names are shortened (:func:`.fit.shorten`)
REPORT_FIT = (("shorten", "Inputs", 20), ("drop", "Inputs", 0), ("drop", "RF stride", 0),
              ("drop", "Activations", 0), ("compact", "Params", 0), ("drop", "RF", 0), ("drop", "FLOPs", 0),
              ("shorten", "Layer", 24), ("cut", "Type", 12), ("shorten", "Layer", 12), ("cut", "Type", 6))


def _title(analysis: Analysis) -> str:
    return (f"{analysis.model.name}: input {shape_str(analysis.input_shape)}, "
            f"batch {analysis.batch}, {analysis.dtype}")


#: the units line under every per-layer report (table, md, html)
REPORT_UNITS = ("Units: K/M/G = 10^3/10^6/10^9; kB/MB/GB = 10^3/10^6/10^9 bytes. RF: receptive field "
                "in input pixels; RF stride: input pixels between neighbouring outputs.")


def _stored_elements(analysis: Analysis) -> int:
    """Elements that need storage: the input and every output that is not in place or a view
    (the Total of the Activations column, so that it agrees with Forward memory; the rows
    still show every output's elements)."""
    return sum(r["activations"] for r in analysis.rows() if r["activation_bytes"] and not r["training_only"])


def summary_lines(analysis: Analysis) -> list[tuple[str, str]]:
    """The totals explained, as (label, text) pairs."""
    t = analysis.totals
    return [
        ("Parameters", f"{thousands(t['params'])} ({human(t['params'])}): weights "
                       f"{thousands(t['weight_params'])} + biases {thousands(t['bias_params'])}; "
                       f"{human_bytes(t['param_bytes'])} in {analysis.dtype}"),
        ("Buffers", f"{thousands(t['buffers'])} non-trainable (batch-norm running statistics)"
                    + (f", {human_bytes(t['buffer_bytes'])}" if t["buffers"] else "")),
        ("MACs", f"{thousands(t['macs'])} ({human(t['macs'])}) multiply-accumulates of conv and linear layers"
                 + (f" at inference; layers marked{TRAINING_ONLY_MARK} run only in training (an auxiliary "
                    f"head): their parameters are counted, their {thousands(t['training_only_macs'])} MACs, "
                    "FLOPs and memory are not" if analysis.model.has_training_only else "")),
        ("FLOPs", f"{thousands(t['flops'])} ({human(t['flops'])}) = 2 per MAC + elementwise work "
                  "('archstat layers' lists each rule)"),
        ("Training FLOPs", f"{thousands(t['training_step_flops'])} ({human(t['training_step_flops'])}) per "
                           f"training step with {t['optimizer']}: every layer's forward + backward "
                           f"{thousands(t['backward_flops'])} (each layer type's rule, 'archstat layers') + "
                           f"the update of each parameter"),
        *_convention(analysis),
        ("Forward memory", f"{human_bytes(t['forward_memory_bytes'])} ({thousands(t['forward_memory_bytes'])} B) "
                           f"= {thousands(_stored_elements(analysis))} stored elements: the input + every "
                           "layer's output, the CS231n sum (in-place and view outputs, memory '-', need none)"),
        ("Peak activations", f"{human_bytes(t['peak_activation_bytes'])}: the largest live set when each "
                             "tensor is freed after its last reader"),
        ("Training memory", f"~{human_bytes(t['training_memory_bytes'])} with {t['optimizer']}: kept activations "
                            "+ weights + gradients + optimizer state + the largest activation gradient"),
        *_provenance(analysis),
        *_not_counted(analysis),
    ]


def _convention(analysis: Analysis) -> list[tuple[str, str]]:
    """Another tool's total (``--convention``), beside archstat's MACs, and why it differs."""
    conv = analysis.totals.get("convention")
    if not conv:
        return []
    of, base = (("parameters", analysis.totals["params"]) if conv["kind"] == "params"
                else ("MACs", analysis.totals["macs"]))
    ratio = f", {conv['total'] / base:.3f} x archstat's {of}" if base else ""
    return [(conv["name"], f"{thousands(conv['total'])} {conv['unit']} ({conv['tool']} {conv['version']}{ratio}): "
                           f"{conv['reason']} ('archstat conventions {analysis.model.zoo_name or 'MODEL'} "
                           f"--explain {conv['name']}' shows where)")]


def _not_counted(analysis: Analysis) -> list[tuple[str, str]]:
    """The layers an import passed through without counts (--allow-unknown), by name and op."""
    names = analysis.totals["not_counted"]
    if not names:
        return []
    ops = {n: analysis.model.layer(n).attrs.get("op", "?") for n in names}
    shown = ", ".join(f"{n} ({ops[n]})" for n in names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
    return [("NOT COUNTED", f"{len(names)} layer{'s' if len(names) != 1 else ''} archstat has no type for: {shown}; "
                            "their parameters and operations are missing from every total above")]


def _provenance(analysis: Analysis) -> list[tuple[str, str]]:
    """The published accuracy and, for a zoo model, the publisher's own counts beside archstat's."""
    from ..zoo import reproduces

    m, t, out = analysis.model, analysis.totals, []
    acc = m.accuracy or {}
    if acc.get("top1") is not None:
        top5 = f", top-5 {acc['top5']:g}%" if acc.get("top5") is not None else ""
        approx = " (approximate)" if acc.get("approximate") else ""
        source = " ".join(str(acc.get("source", "")).split())
        other = (f" (measured at {shape_str(m.input_shape)}; this analysis is at {shape_str(analysis.input_shape)})"
                 if tuple(analysis.input_shape) != tuple(m.input_shape) else "")
        out.append(("Accuracy", f"top-1 {acc['top1']:g}%{top5}{approx}{other}" + (f": {source}" if source else "")))
    if m.published:
        p = m.published
        same = reproduces(t["params"], t["macs"] // analysis.batch, p)
        verdict = ("archstat's counts reproduce them" if same else
                   "archstat's counts differ (other arguments or input size than the published model?)")
        out.append(("Published", f"{int(p['params']):,} params and {p['gmacs']} GMACs per image "
                                 f"({p.get('source', 'the publisher')}): {verdict}"))
    return out


# ---------------------------------------------------------------------- renderers

def text_table(headers: Sequence[str], aligns: Sequence[str], body: Sequence[Sequence[str]],
                total: Sequence[str] | None) -> str:
    rows = [list(headers)] + [list(r) for r in body] + ([list(total)] if total else [])
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]

    def line(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, aligns, widths)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line(headers), rule] + [line(r) for r in body]
    if total:
        out += [rule, line(total)]
    return "\n".join(out)


def md_table(headers, aligns, body, total) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    marks = {"<": ":--", ">": "--:", "^": ":-:"}
    out = ["| " + " | ".join(esc(h) for h in headers) + " |",
           "|" + "|".join(marks[a] for a in aligns) + "|"]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in body]
    if total:
        out.append("| " + " | ".join(f"**{esc(c)}**" if c else "" for c in total) + " |")
    return "\n".join(out)


def _csv(rows: list[dict[str, Any]], keys: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(keys)
    for row in rows:
        writer.writerow([_csv_value(row[k]) for k in keys])
    return buf.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return shape_str(value)
    if isinstance(value, (tuple, list)):
        return " ".join(str(v) for v in value)
    return value


# ------------------------------------------------------------------------ reports

def render_report(analysis: Analysis, fmt: str = "table", width: int | None = None,
                  depth: int | None = None) -> str:
    """One model's per-layer report in ``fmt`` (one of :data:`FORMATS`).

    ``width``: the terminal table fits this many characters (columns dropped or shortened in
    the order of :data:`REPORT_FIT`, said in one line under the table); None: no limit.
    ``depth``: one row per block instance at this depth of the dotted layer names
    (:mod:`.blocks`) in table, md and html; CSV and JSON keep every layer.
    """
    if fmt == "json":
        return dump("analysis", analysis.to_dict())
    if fmt == "csv":
        return _csv(analysis.rows(), list(COLUMNS) + [k for k in analysis.rows()[0] if k not in COLUMNS])
    summary = summary_lines(analysis)
    m = analysis.model
    rows_note = _depth_note(analysis, depth)
    if fmt == "table":
        cols, fitted = fit(layer_cols(analysis, depth), width, REPORT_FIT,
                           "--columns N for a wider table, --depth N for one row per block, --format csv "
                           "for every value" if not depth else "--columns N for a wider table")
        wrap = min(100, width) if width else 100
        label = max(len(k) for k, _ in summary)
        lines = textwrap.wrap(_title(analysis), wrap) + ["", render_cols(cols, True)]
        for extra in (rows_note, fitted):
            lines += textwrap.wrap(extra, wrap)
        lines.append("")
        for k, v in summary:   # wrapped under its text, so the labels stay a column
            if wrap - label - 2 >= 30:
                lines += textwrap.wrap(f"{k:<{label}}  {v}", wrap, subsequent_indent=" " * (label + 2))
            else:
                lines += textwrap.wrap(f"{k}: {v}", wrap, subsequent_indent="  ")
        lines += textwrap.wrap(REPORT_UNITS, wrap)
        # the citation and notes after the numbers: in a terminal the table should not scroll away
        if m.source:
            lines += [""] + textwrap.wrap(f"source: {m.source}", wrap, subsequent_indent="        ")
        if m.notes:
            lines += [""] + textwrap.wrap(f"notes: {m.notes}", width=wrap, subsequent_indent="       ")
        return "\n".join(lines) + "\n"
    headers, aligns, body, total = _layer_table(analysis, depth)
    if fmt == "md":
        lines = [f"# {m.name}", ""]
        if m.description:
            lines += [m.description, ""]
        lines += [f"Input {shape_str(analysis.input_shape)}, batch {analysis.batch}, {analysis.dtype}."]
        if m.source:
            lines += ["", f"Source: {m.source}"]
        if m.notes:
            lines += ["", f"Notes: {m.notes}"]
        lines += ["", md_table(headers, aligns, body, total), ""]
        if rows_note:
            lines += [rows_note, ""]
        lines += [f"- **{k}**: {v}" for k, v in summary]
        lines += ["", REPORT_UNITS]
        return "\n".join(lines) + "\n"
    if fmt == "html":
        return html_report(analysis, depth)
    raise ValueError(fmt)  # the CLI validates formats


def _depth_note(analysis: Analysis, depth: int | None) -> str:
    if not depth:
        return ""
    n = len(block_rows(analysis, depth))
    return (f"Depth {depth}: {analysis.totals['layers']} layers in {n} rows, one per block (the first {depth} "
            f"part{'s' if depth > 1 else ''} of the dotted layer names), its numbers summed; a block's Output "
            "and RF are its last layer's.")


def headline(analysis: Analysis) -> list[tuple[str, str, str]]:
    """The totals a reader looks for first: (label, value in units, exact value)."""
    t = analysis.totals
    return [("Parameters", human(t["params"]), f"{thousands(t['params'])} ({human_bytes(t['param_bytes'])})"),
            ("MACs", human(t["macs"]), thousands(t["macs"])),
            ("FLOPs", human(t["flops"]), thousands(t["flops"])),
            ("Forward memory", human_bytes(t["forward_memory_bytes"]),
             f"{thousands(t['forward_memory_bytes'])} B"),
            ("Peak activations", human_bytes(t["peak_activation_bytes"]),
             f"{thousands(t['peak_activation_bytes'])} B"),
            ("Training memory", "~" + human_bytes(t["training_memory_bytes"]), f"one step with {t['optimizer']}")]


def html_report(analysis: Analysis, depth: int | None = None) -> str:
    """The report as one self-contained HTML page: headline totals, the table, the totals
    explained, the source."""
    from . import html_page as H

    m = analysis.model
    headers, aligns, body, total = _layer_table(analysis, depth)
    parts = [f"<h1>{html.escape(m.name)}</h1>"]
    if m.description:
        parts.append(H.note(m.description, "lead"))
    parts.append(H.note(f"Input {shape_str(analysis.input_shape)}, batch {analysis.batch}, {analysis.dtype}; "
                        f"{analysis.totals['layers']} layers.", "meta"))
    parts.append(H.cards(headline(analysis)))
    parts.append("<h2>Layers</h2>" if not depth else f"<h2>Blocks (depth {depth})</h2>")
    parts.append(H.table(headers, aligns, body, total))
    if depth:
        parts.append(H.note(_depth_note(analysis, depth)))
    parts.append(H.note(REPORT_UNITS))
    parts += ["<h2>The totals explained</h2>", H.definitions(summary_lines(analysis))]
    foot = []
    if m.source:
        foot.append(H.note(f"Source: {m.source}"))
    if m.notes:
        foot.append(H.note(f"Notes: {m.notes}"))
    foot.append(H.note("Generated by archstat."))
    parts.append("<footer>" + "".join(foot) + "</footer>")
    return H.page(m.name, parts)


# ------------------------------------------------------------------------ compare
