"""Rich display in Jupyter: what ``_repr_html_`` and ``_repr_markdown_`` of a Model, an
Analysis, a Profile and a :class:`Comparison` return (the classes call these on use).

Each shows a compact header (name, input, batch, the headline totals) and then the table,
long tables cut to their first and last rows with a note, as pandas does
(:data:`MAX_ROWS`, settable). The HTML is a fragment with its own scoped stylesheet, so it reads
the same in JupyterLab, VS Code and an exported notebook.
"""
from __future__ import annotations

import html
from typing import Any, Sequence

#: tables longer than this show their first and last MAX_ROWS // 2 rows
MAX_ROWS = 40

_STYLE = """<style>
.archstat-nb { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.archstat-nb h3 { margin: 0.2em 0 0.1em; font-size: 1.15em; }
.archstat-nb .meta { color: #5b6066; font-size: 0.85em; margin: 0.1em 0 0.5em; }
.archstat-nb .cards { display: flex; flex-wrap: wrap; gap: 0.4em; margin: 0.3em 0 0.6em; }
.archstat-nb .card { border: 1px solid #d9dce0; border-radius: 5px; padding: 0.3em 0.65em; }
.archstat-nb .card .label { font-size: 0.72em; color: #5b6066; text-transform: uppercase; }
.archstat-nb .card .value { font-size: 1.1em; font-weight: 600; font-variant-numeric: tabular-nums; }
.archstat-nb .card .exact { font-size: 0.75em; color: #5b6066; font-variant-numeric: tabular-nums; }
.archstat-nb table { border-collapse: collapse; font-size: 0.85em; font-variant-numeric: tabular-nums; }
.archstat-nb th, .archstat-nb td { padding: 0.15em 0.6em; border-bottom: 1px solid #e3e5e8; white-space: nowrap; }
.archstat-nb th { background: #eef0f3; }
.archstat-nb td.num, .archstat-nb th.num { text-align: right; }
.archstat-nb td.txt, .archstat-nb th.txt { text-align: left; }
.archstat-nb tbody tr:nth-child(even) { background: #f6f7f9; }
.archstat-nb tr.gap td { text-align: center; color: #888; }
.archstat-nb tfoot td { font-weight: 700; border-top: 2px solid #8a9099; }
</style>"""


def truncate(body: Sequence[Sequence[str]], max_rows: int | None = None) -> tuple[list[list[str]], int]:
    """``body`` cut to its first and last ``max_rows // 2`` rows; returns (rows, rows left out)."""
    limit = MAX_ROWS if max_rows is None else max_rows
    body = [list(r) for r in body]
    if limit <= 0 or len(body) <= limit:
        return body, 0
    head = (limit + 1) // 2
    tail = limit // 2
    return body[:head] + body[len(body) - tail:], len(body) - head - tail


def _html_table(headers, aligns, body, total, max_rows) -> tuple[str, str]:
    from .html_page import text
    kind = {"<": "txt", ">": "num", "^": "txt"}
    rows, hidden = truncate(body, max_rows)
    head = len(rows) - (max_rows // 2 if hidden else 0)

    def cells(row):
        return "".join(f'<td class="{kind[a]}">{text(c)}</td>' for c, a in zip(row, aligns))

    out = ["<table>", "<thead><tr>" + "".join(f'<th class="{kind[a]}">{text(h)}</th>' for h, a in zip(headers, aligns))
           + "</tr></thead>", "<tbody>"]
    for i, r in enumerate(rows):
        if hidden and i == head:
            out.append(f'<tr class="gap"><td colspan="{len(headers)}">⋮ {hidden} rows not shown ⋮</td></tr>')
        out.append(f"<tr>{cells(r)}</tr>")
    out.append("</tbody>")
    if total:
        out.append(f"<tfoot><tr>{cells(total)}</tr></tfoot>")
    out.append("</table>")
    note = (f"{len(body)} rows; showing the first {head} and the last {len(rows) - head} "
            f"(archstat.report.notebook.MAX_ROWS = {max_rows}; .layers has every row)." if hidden else "")
    return "\n".join(out), note


def _md_table(headers, aligns, body, total, max_rows) -> tuple[str, str]:
    from .table import md_table
    rows, hidden = truncate(body, max_rows)
    if hidden:
        head = len(rows) - max_rows // 2
        rows = rows[:head] + [["⋮"] + [""] * (len(headers) - 1)] + rows[head:]
        note = f"{len(body)} rows; {hidden} not shown (.layers has every row)."
    else:
        note = ""
    return md_table(headers, aligns, rows, total), note


def _fragment(title: str, meta: str, cards: Sequence[tuple[str, str, str]], table: tuple, max_rows: int | None,
              notes: Sequence[str] = ()) -> str:
    from .html_page import cards as card_html
    from .html_page import note as note_html
    limit = MAX_ROWS if max_rows is None else max_rows
    body, cut = _html_table(*table, limit)
    parts = [_STYLE, '<div class="archstat-nb">', f"<h3>{html.escape(title)}</h3>",
             f'<p class="meta">{html.escape(meta)}</p>', card_html(cards) if cards else "", body]
    parts += [note_html(n, "meta") for n in (cut, *notes) if n]
    parts.append("</div>")
    return "\n".join(parts)


def _markdown(title: str, meta: str, cards: Sequence[tuple[str, str, str]], table: tuple,
              max_rows: int | None, notes: Sequence[str] = ()) -> str:
    limit = MAX_ROWS if max_rows is None else max_rows
    body, cut = _md_table(*table, limit)
    head = [" · ".join(f"**{label}** {value}" for label, value, _ in cards), ""] if cards else []
    return "\n".join([f"### {title}", "", meta, "", *head, body, "", *(n for n in (cut, *notes) if n)]) + "\n"


# ------------------------------------------------------------------ the objects

def _analysis_parts(a: Any) -> tuple[str, str, list, tuple]:
    from .table import _layer_table, headline
    from .units import shape_str
    meta = f"input {shape_str(a.input_shape)}, batch {a.batch}, {a.dtype}; {a.totals['layers']} layers"
    return a.model.name, meta, headline(a), _layer_table(a)


def analysis_html(a: Any, max_rows: int | None = None) -> str:
    return _fragment(*_analysis_parts(a), max_rows)


def analysis_markdown(a: Any, max_rows: int | None = None) -> str:
    return _markdown(*_analysis_parts(a), max_rows)


def _model_parts(m: Any) -> tuple[str, str, list, tuple]:
    from ..analysis import analyze
    name, meta, cards, table = _analysis_parts(analyze(m))
    return name, f"Model: {meta} (analysed at batch 1, float32: archstat.analyze for others)", cards, table


def model_html(m: Any, max_rows: int | None = None) -> str:
    return _fragment(*_model_parts(m), max_rows)


def model_markdown(m: Any, max_rows: int | None = None) -> str:
    return _markdown(*_model_parts(m), max_rows)


def _profile_parts(p: Any) -> tuple[str, str, list, tuple]:
    from .profile_table import _profile_cards, _profile_table, _run_line
    return f"{p.model.name} (measured)", _run_line(p), _profile_cards(p), _profile_table(p)


def profile_html(p: Any, max_rows: int | None = None) -> str:
    return _fragment(*_profile_parts(p), max_rows)


def profile_markdown(p: Any, max_rows: int | None = None) -> str:
    return _markdown(*_profile_parts(p), max_rows)


class Comparison:
    """What :func:`archstat.compare` returns: the analyses of several models side by side.

    ``analyses`` (list of Analysis); :meth:`rows` (plain dicts of exact values, as
    ``archstat compare --format json``); :meth:`to_frame` (a DataFrame of them); in a notebook
    it displays as the compare table.
    """

    def __init__(self, analyses: Sequence[Any]):
        self.analyses = list(analyses)

    def rows(self) -> list[dict[str, Any]]:
        from .compare_table import compare_rows
        return compare_rows(self.analyses)

    def to_frame(self):
        import pandas as pd
        return pd.DataFrame(self.rows())

    def render(self, fmt: str = "table") -> str:
        from .compare_table import render_compare
        return render_compare(self.analyses, fmt)

    def _parts(self):
        from .compare_table import _compare_table
        a = self.analyses[0]
        headers, aligns, body, note = _compare_table(self.analyses)
        return (f"Comparing {len(self.analyses)} models", f"batch {a.batch}, {a.dtype}, each at its own input size",
                [], (headers, aligns, body, None), None, note.split("\n"))

    def _repr_html_(self) -> str:
        return _fragment(*self._parts())

    def _repr_markdown_(self) -> str:
        return _markdown(*self._parts())

    def __repr__(self) -> str:
        return f"<Comparison of {len(self.analyses)} models: {', '.join(a.model.name for a in self.analyses)}>"


def compare(*models: Any, batch: int = 1, dtype: str = "float32", optimizer: str = "sgd") -> Comparison:
    """Analyse each model (a Model, zoo name, spec path or mapping) at its own input size and
    return them side by side (:class:`Comparison`)."""
    from ..analysis import analyze
    from ..graph import load
    if len(models) == 1 and isinstance(models[0], (list, tuple)):
        models = tuple(models[0])
    return Comparison([analyze(load(m), batch=batch, dtype=dtype, optimizer=optimizer) for m in models])
