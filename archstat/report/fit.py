"""Fit a terminal table to a width: drop or abbreviate columns in a stated order.

A table is a list of :class:`Col` (header, alignment, cells, total cell). :func:`fit` applies
the table's own *steps* in order until the table fits ``width`` characters, and says what it
did in one line. Each report chooses its order (:mod:`.table`, :mod:`.profile_table`); the
principle is the same everywhere: first what another column or command already shows (a layer's
inputs are the graph's; RF stride and element counts follow from other columns), then
secondary measures, then exact integers become K/M/G, and last long names are shortened (a
dotted layer path keeps its end, which says what the layer is; a type keeps its start).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

#: marks the middle of a shortened cell
ELLIPSIS = "…"
GAP = 2   # spaces between columns (as :func:`.table.text_table`)


@dataclass(frozen=True)
class Col:
    """One displayed column: its header, alignment (``<`` or ``>``), body cells and total cell."""

    header: str
    align: str
    cells: tuple[str, ...]
    total: str = ""
    #: the same column more compact (thousands separators -> K/M/G), used by a "compact" step
    compact: tuple[tuple[str, ...], str] | None = field(default=None, compare=False)

    @property
    def width(self) -> int:
        return max([len(self.header), len(self.total), *map(len, self.cells)])


def columns_of(headers: Sequence[str], aligns: Sequence[str], body: Sequence[Sequence[str]],
               total: Sequence[str] | None) -> list[Col]:
    """The columns of a (headers, aligns, body, total) table."""
    return [Col(h, a, tuple(r[i] for r in body), total[i] if total else "")
            for i, (h, a) in enumerate(zip(headers, aligns))]


def table_width(cols: Sequence[Col]) -> int:
    return sum(c.width for c in cols) + GAP * max(len(cols) - 1, 0)


def shorten(text: str, width: int, how: str = "path") -> str:
    """``text`` in at most ``width`` characters. ``path``: a dotted name loses its leading parts
    (``…denseblock1.denselayer1.conv1``: the end says what the layer is, the start is shared with
    the rows around it); ``end``: the text loses its end (``batch_nor…``)."""
    if len(text) <= width:
        return text
    if width < 2:
        return text[:width]
    if how == "end":
        return text[:width - 1] + ELLIPSIS
    parts = text.split(".")
    while len(parts) > 1 and len(".".join(parts)) + 1 > width:
        parts = parts[1:]
    tail = ".".join(parts)
    return ELLIPSIS + (tail if len(tail) < width else tail[len(tail) - (width - 1):])


def fit(cols: list[Col], width: int | None, steps: Sequence[tuple[str, str, int]],
        hint: str = "--columns N for a wider table, --format csv for every value") -> tuple[list[Col], str]:
    """Apply ``steps`` in order until the table is at most ``width`` wide (no limit when None).

    A step is ``("drop", header, 0)``, ``("compact", header, 0)`` (use the column's compact
    cells), ``("shorten", header, n)`` (cells past ``n`` characters lose their leading dotted
    parts, :func:`shorten`) or ``("cut", header, n)`` (they lose their end).
    Steps naming a column that is not there are skipped. Returns the columns and a one-line
    note of what was left out or shortened ("" when nothing was).
    """
    if width is None or table_width(cols) <= width:
        return cols, ""
    dropped, changed = [], []
    for action, header, n in steps:
        if table_width(cols) <= width:
            break
        at = next((i for i, c in enumerate(cols) if c.header == header), None)
        if at is None:
            continue
        col = cols[at]
        if action == "drop":
            del cols[at]
            dropped.append(header)
        elif action == "compact" and col.compact:
            cols[at] = replace(col, cells=col.compact[0], total=col.compact[1], compact=None)
            changed.append(f"{header} in K/M/G")
        elif action in ("shorten", "cut") and col.width > n:
            excess = table_width(cols) - width
            target = max(n, col.width - excess, len(col.header))
            how = "path" if action == "shorten" else "end"
            cols[at] = replace(col, cells=tuple(shorten(c, target, how) for c in col.cells),
                               total=shorten(col.total, target, how))
            if f"{header} shortened" not in changed:
                changed.append(f"{header} shortened")
    parts = []
    if dropped:
        parts.append(f"left out {', '.join(dropped)}")
    parts += changed
    return cols, f"To fit {width} columns: {'; '.join(parts)} ({hint})." if parts else ""


def render(cols: Sequence[Col], with_total: bool) -> str:
    """The columns as the aligned text table of :func:`.table.text_table`."""
    from .table import text_table
    body = [list(r) for r in zip(*(c.cells for c in cols))] if cols and cols[0].cells else []
    return text_table([c.header for c in cols], [c.align for c in cols], body,
                      [c.total for c in cols] if with_total else None)
