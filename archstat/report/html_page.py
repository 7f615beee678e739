"""The HTML pages of every command (report, compare, profile, sweep) and of the notebook: one
self-contained page each (inline stylesheet, figures as data URIs, no external file or
network), with the headline totals at the top, a table with a sticky header, right-aligned
tabular numbers and zebra rows, and a print stylesheet. Units are written as units
(10<sup>3</sup>, R<sup>2</sup>), not as ``10^3``.
"""
from __future__ import annotations

import base64
import html
import re
from typing import Sequence

STYLE = """
:root { --ink: #1d1f21; --muted: #5b6066; --rule: #d9dce0; --zebra: #f6f7f9; --head: #eef0f3;
        --accent: #2f5d8a; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); margin: 0 auto; padding: 1.5rem 2rem 3rem; max-width: 84rem; line-height: 1.4; }
h1 { font-size: 1.6rem; margin: 0 0 0.2rem; }
h2 { font-size: 1.15rem; margin: 1.8rem 0 0.6rem; color: var(--accent); }
p.lead { margin: 0.2rem 0 1rem; color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(11.5rem, 1fr)); gap: 0.6rem;
         margin: 1rem 0 1.2rem; }
.card { border: 1px solid var(--rule); border-radius: 6px; padding: 0.55rem 0.8rem; background: #fff; }
.card .label { font-size: 0.78rem; color: var(--muted); text-transform: uppercase; letter-spacing: 0.04em; }
.card .value { font-size: 1.35rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .exact { font-size: 0.8rem; color: var(--muted); font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.86rem; font-variant-numeric: tabular-nums; margin: 0.4rem 0; }
th, td { padding: 0.22rem 0.7rem; border-bottom: 1px solid var(--rule); white-space: nowrap; }
thead th { position: sticky; top: 0; background: var(--head); border-bottom: 2px solid #b9bec5;
           font-weight: 600; z-index: 1; }
tbody tr:nth-child(even) { background: var(--zebra); }
tbody tr:hover { background: #e6eef7; }
td.num, th.num { text-align: right; }
td.txt, th.txt { text-align: left; }
td.name { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.82rem; }
tfoot td { font-weight: 700; border-top: 2px solid #8a9099; border-bottom: none; }
dl.totals { display: grid; grid-template-columns: max-content auto; gap: 0.25rem 1.2rem; margin: 0.4rem 0; }
dl.totals dt { font-weight: 600; }
dl.totals dd { margin: 0; }
.meta, .note { color: var(--muted); font-size: 0.85rem; }
figure { margin: 1rem 0 1.6rem; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--rule); }
figcaption { color: var(--muted); font-size: 0.85rem; margin-top: 0.3rem; }
footer { margin-top: 2rem; border-top: 1px solid var(--rule); padding-top: 0.6rem; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  thead th { position: static; }
  thead { display: table-header-group; }
  tr, figure, .card { break-inside: avoid; }
  tbody tr:hover { background: none; }
  .scroll { overflow: visible; }
  a { color: inherit; text-decoration: none; }
}
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="archstat">
<title>{title}</title>
<style>{style}</style></head><body>
{body}
</body></html>
"""


def page(title: str, parts: Sequence[str]) -> str:
    """A whole page: ``parts`` (HTML) under the stylesheet."""
    return _PAGE.format(title=html.escape(title), style=STYLE, body="\n".join(parts))


_POWER = re.compile(r"\b(10|R)\^(-?\d+)")


_CODE = re.compile(r"`([^`<>]+)`")


def text(value: str) -> str:
    """Escaped text with its powers written as superscripts (``10^3`` -> 10<sup>3</sup>) and
    Markdown code spans as code (a spec's description says `config`)."""
    return _CODE.sub(r"<code>\1</code>", _POWER.sub(r"\1<sup>\2</sup>", html.escape(value)))


def table(headers: Sequence[str], aligns: Sequence[str], body: Sequence[Sequence[str]],
          total: Sequence[str] | None, name_column: bool = True, caption: str | None = None) -> str:
    """A table: ``>`` columns right-aligned (numbers), the first column in monospace when it
    holds layer names, the total row in the footer."""
    kind = {"<": "txt", ">": "num", "^": "txt"}

    def cells(tag: str, row: Sequence[str]) -> str:
        return "".join(f'<{tag} class="{kind[a]}{" name" if i == 0 and name_column and tag == "td" else ""}">'
                       f"{text(c)}</{tag}>" for i, (c, a) in enumerate(zip(row, aligns)))

    out = ['<div class="scroll"><table>']
    if caption:
        out.append(f"<caption>{text(caption)}</caption>")
    head = "".join(f'<th class="{kind[a]}">{text(h)}</th>' for h, a in zip(headers, aligns))
    out.append(f"<thead><tr>{head}</tr></thead>")
    out.append("<tbody>")
    out += [f"<tr>{cells('td', r)}</tr>" for r in body]
    out.append("</tbody>")
    if total:
        out.append(f'<tfoot><tr class="total">{cells("td", total).replace(" name", "")}</tr></tfoot>')
    out.append("</table></div>")
    return "\n".join(out)


def cards(items: Sequence[tuple[str, str, str]]) -> str:
    """Headline numbers: (label, value, exact or explanation) each."""
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="label">{text(label)}</div><div class="value">{text(value)}</div>'
        + (f'<div class="exact">{text(exact)}</div>' if exact else "") + "</div>"
        for label, value, exact in items) + "</div>"


def definitions(pairs: Sequence[tuple[str, str]]) -> str:
    return '<dl class="totals">' + "".join(f"<dt>{text(k)}</dt><dd>{text(v)}</dd>" for k, v in pairs) + "</dl>"


def note(value: str, cls: str = "note") -> str:
    return f'<p class="{cls}">{text(value)}</p>'


def figure(data: bytes, suffix: str, caption: str, alt: str) -> str:
    """An embedded figure: the file's bytes as a data URI (SVG stays vector)."""
    mime = {".svg": "image/svg+xml", ".png": "image/png"}[suffix]
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return (f'<figure><img src="{uri}" alt="{html.escape(alt)}">'
            f"<figcaption>{text(caption)}</figcaption></figure>")


def figures_of(draw, caption_of) -> list[str]:
    """Draw figures into a temporary folder with ``draw(path) -> [paths]`` (SVG) and embed each;
    ``caption_of(path)`` gives its caption. Nothing is left on disk."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="archstat-") as tmp:
        paths = draw(Path(tmp) / "figure.svg")
        return [figure(Path(p).read_bytes(), ".svg", caption_of(Path(p)), caption_of(Path(p)))
                for p in paths]
