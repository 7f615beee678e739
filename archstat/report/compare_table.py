"""``archstat compare``: one row per model (parameters, MACs, FLOPs, memory, accuracy) as a
terminal table, Markdown, CSV, JSON or HTML."""
from __future__ import annotations

import html
import os
import textwrap
from typing import Any, Sequence

from ..analysis import Analysis
from .fit import columns_of, fit, render as render_cols
from .json_out import dump
from .table import _csv, md_table
from .units import human, human_bytes, shape_str

COMPARE_KEYS = ("model", "file", "input", "layers", "params", "macs", "flops", "forward_memory_bytes",
                "peak_activation_bytes", "param_bytes", "training_memory_bytes", "optimizer", "top1", "top1_source")


def compare_rows(analyses: Sequence[Analysis]) -> list[dict[str, Any]]:
    rows = []
    for a in analyses:
        t = a.totals
        acc = a.model.accuracy or {}
        rows.append({"model": a.model.name, "file": a.model.file, "input": shape_str(a.input_shape),
                     "layers": t["layers"], "params": t["params"], "macs": t["macs"], "flops": t["flops"],
                     "forward_memory_bytes": t["forward_memory_bytes"],
                     "peak_activation_bytes": t["peak_activation_bytes"], "param_bytes": t["param_bytes"],
                     "training_memory_bytes": t["training_memory_bytes"], "optimizer": t["optimizer"],
                     "top1": acc.get("top1"),
                     "top1_source": " ".join(str(acc["source"]).split()) if acc.get("source") else None})
    return rows


def _source_marks(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Per row a mark like " [2]" after its top-1, and the footnotes, when the accuracies come
    from more than one provider (the source's first word: torchvision's weights and a paper's
    table differ by a point or more for the same architecture, so side by side they must say
    so); no marks otherwise. A footnote gives the words its rows' sources share."""
    groups: dict[str, list[str]] = {}
    for r in rows:
        if r["top1"] is not None:
            src = r["top1_source"] or "no source given"
            groups.setdefault(src.split()[0], []).append(src)
    if len(groups) < 2:
        return ["" for _ in rows], []
    number = {key: i + 1 for i, key in enumerate(groups)}
    marks = ["" if r["top1"] is None else f" [{number[(r['top1_source'] or 'no source given').split()[0]]}]"
             for r in rows]
    notes = []
    for key, sources in groups.items():
        words = os.path.commonprefix([src.split() for src in sources])
        if len(set(sources)) > 1:  # end the shared words at a clause, not mid-sentence
            ends = [i for i, word in enumerate(words) if word[-1] in ",:;)"]
            opens = [i for i, word in enumerate(words) if word.startswith("(")]
            if ends:
                words = words[:ends[-1] + 1]
            elif opens and opens[-1] > 0:      # drop an unclosed parenthesis
                words = words[:opens[-1]]
            words[-1] = words[-1].rstrip(",:;")
        notes.append(f"[{number[key]}] top-1 from: {' '.join(words)}" + ("" if len(set(sources)) == 1
                                                                       else " (each model's own entry)"))
    return marks, notes


def render_compare(analyses: Sequence[Analysis], fmt: str = "table", width: int | None = None) -> str:
    """One row per model: size, operations and memory side by side (``width``: as
    :func:`render_report`)."""
    rows = compare_rows(analyses)
    if fmt == "json":
        return dump("compare", {"batch": analyses[0].batch, "dtype": analyses[0].dtype, "models": rows})
    if fmt == "csv":
        return _csv(rows, COMPARE_KEYS)
    headers, aligns, body, note = _compare_table(analyses, rows)
    if fmt == "table":
        cols, fitted = fit(columns_of(headers, aligns, body, None), width, COMPARE_FIT)
        wrap = min(100, width) if width else 100
        lines = [render_cols(cols, False)] + textwrap.wrap(fitted, wrap) + [""]
        for paragraph in note.split("\n"):
            lines += textwrap.wrap(paragraph, wrap)
        return "\n".join(lines) + "\n"
    if fmt == "md":
        return md_table(headers, aligns, body, None) + "\n\n" + note + "\n"
    if fmt == "html":
        return html_compare(analyses, headers, aligns, body, note)
    raise ValueError(fmt)


def _compare_table(analyses: Sequence[Analysis], rows: list[dict[str, Any]] | None = None):
    """(headers, aligns, body, note) of the compare table."""
    rows = compare_rows(analyses) if rows is None else rows
    headers = ["Model", "Input", "Layers", "Params", "MACs", "FLOPs", "Fwd memory", "Peak act.", "Weights",
               "Train mem.", "Top-1 %"]
    aligns = ["<"] + [">"] * (len(headers) - 1)
    marks, footnotes = _source_marks(rows)
    # units per cell (K/M/G, kB/MB/GB): LeNet's 417K MACs and VGG's 15.5G read alike
    body = [[r["model"], r["input"], str(r["layers"]), human(r["params"]), human(r["macs"]),
             human(r["flops"]), human_bytes(r["forward_memory_bytes"]),
             human_bytes(r["peak_activation_bytes"]), human_bytes(r["param_bytes"]),
             human_bytes(r["training_memory_bytes"]),
             "" if r["top1"] is None else f"{r['top1']:.1f}{mark}"] for r, mark in zip(rows, marks)]
    note = "\n".join([f"batch {analyses[0].batch}, {analyses[0].dtype}; K/M/G = 10^3/10^6/10^9, "
                      "kB/MB/GB = 10^3/10^6/10^9 bytes; "
                      "MACs count conv, locally connected and linear multiply-accumulates; FLOPs = 2 per MAC "
                      f"+ elementwise work; Train mem.: one training step with {analyses[0].totals['optimizer']}",
                      *footnotes])
    return headers, aligns, body, note


#: the order in which the compare table gives up columns to fit a width: what follows from
#: another column (weights = params x bytes), then the secondary memory figures
COMPARE_FIT = (("drop", "Weights", 0), ("drop", "Peak act.", 0), ("drop", "Train mem.", 0),
               ("drop", "Layers", 0), ("drop", "FLOPs", 0), ("drop", "Input", 0), ("cut", "Model", 16))


def html_compare(analyses: Sequence[Analysis], headers, aligns, body, note: str) -> str:
    """The comparison as one self-contained page."""
    from . import html_page as H

    a = analyses[0]
    names = [x.model.name for x in analyses]
    title = f"Comparing {len(analyses)} models" if len(analyses) > 1 else f"{names[0]}"
    parts = [f"<h1>{html.escape(title)}</h1>",
             H.note(", ".join(names) + f": batch {a.batch}, {a.dtype}, each at its own input size.", "lead"),
             H.table(headers, aligns, body, None, name_column=False)]
    parts += [H.note(line) for line in note.split("\n")]
    parts.append('<footer><p class="note">Generated by archstat.</p></footer>')
    return H.page(title + " (archstat)", parts)


# ------------------------------------------------------------------- layer types
