"""What a design-space run gives back besides its rows: the rows written to a file (CSV,
Parquet, JSON lines), a short summary for the terminal, and where the zoo's named models sit.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import ArchstatError
from ..report.units import human
from .load import Space
from .rows import METRICS

#: the row formats, by suffix
SUFFIXES = (".csv", ".parquet", ".jsonl", ".json")


def check_rows_path(path: str | os.PathLike, field: str = "--output") -> Path:
    """A path for rows: .csv, .parquet, .jsonl or .json (checked before anything runs)."""
    path = Path(path)
    if str(path) == "-":
        return path
    if path.suffix.lower() not in SUFFIXES:
        raise ArchstatError(f"cannot tell a format for the rows from {path.suffix or 'a name without a suffix'!r}",
                            file=str(path), field=field, hint=f"name the file {', '.join(SUFFIXES)} (- for CSV on standard output)")
    return path


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401  (pandas writes Parquet through it)
    except ImportError:
        return False
    return True


def write_rows(frame, path: str | os.PathLike, field: str = "--output") -> tuple[Path, str | None]:
    """Write rows through :func:`archstat.outfile.write_file` by suffix; returns ``(path written,
    note)``. Without pyarrow a ``.parquet`` name gets CSV beside it (``.csv``), and the note says so."""
    from ..outfile import write_file, write_with

    path = check_rows_path(path, field)
    suffix = path.suffix.lower()
    note = None
    if suffix == ".parquet":
        if parquet_available():
            return write_with(path, lambda f: frame.to_parquet(f, index=False), field=field), None
        path = path.with_suffix(".csv")
        note = (f"pyarrow is not installed, so the rows went to {path} (CSV) instead of Parquet; "
                "pip install pyarrow to write Parquet")
        suffix = ".csv"
    if suffix == ".jsonl":  # one row per line, nothing else (a stream of records)
        text = frame.to_json(orient="records", lines=True, double_precision=15)
        return write_file(path, text + "\n", field=field), note
    if suffix == ".json":   # a document: its schema first, then the rows
        import json
        from ..report.json_out import dump
        rows = json.loads(frame.to_json(orient="records", double_precision=15))
        return write_file(path, dump("space_rows", {"rows": rows}), field=field), note
    return write_file(path, frame.to_csv(index=False), field=field), note


def zoo_points(space: Space, batch: int = 1, dtype: str = "float32") -> list[dict[str, Any]]:
    """The zoo's named models of the space's spec file: each one's ``name``, ``inside`` (its
    arguments are a configuration of the space), its arguments and the metrics of
    :data:`METRICS` (from the analysis, at its own input size)."""
    from .. import zoo
    from ..analysis import analyze
    from ..graph import load

    if space.path is None:
        return []
    points = []
    for entry in zoo.entries().values():
        try:
            if os.path.realpath(entry.path) != space.path:
                continue
        except OSError:
            continue
        try:
            model = load(entry.name)
            totals = analyze(model, batch=batch, dtype=dtype).totals
        except ArchstatError:
            continue
        args = {**space.defaults, **dict(entry.args)}
        inside = space.contains(dict(entry.args)) and entry.input is None
        if inside:
            where = "in the space"
        elif space.contains(dict(entry.args)):
            where = f"its args are in the space; its weights' input is {'x'.join(map(str, entry.input[1:]))} px"
        else:
            where = "its args are not a configuration of the space"
        point = {"name": entry.name, "inside": inside, "where": where, **{k: args.get(k) for k in space.names}}
        point.update({k: totals[k] for k in METRICS if k in totals})
        points.append(point)
    return points


def summary(frame, space: Space, points: Sequence[dict[str, Any]] = ()) -> str:
    """A few lines for the terminal: what ran, how many rows were invalid (and the commonest
    errors), each metric's quantiles, and the zoo's models in the space."""
    attrs = frame.attrs
    n = len(frame)
    errors = int((frame["error"] != "").sum())
    what = ("grid of" if attrs.get("mode") == "grid" else f"sample (seed {attrs.get('seed')}) of")
    lines = [f"{space.label}: {what} {n:,} configurations over {', '.join(space.names)}",
             f"  analysed by {attrs.get('engine', '?')} in {attrs.get('seconds', 0):.1f} s"
             + (f" ({(n - attrs.get('resumed', 0)) / attrs['seconds']:.0f} configurations/s)"
                if attrs.get("seconds") and n > attrs.get("resumed", 0) else "")
             + (f"; {attrs['resumed']:,} rows from the checkpoint" if attrs.get("resumed") else "")]
    lines.append(f"  valid: {n - errors:,}   invalid: {errors:,}" + (f" ({100 * errors / n:.1f}%)" if n else ""))
    if errors:
        common = frame.loc[frame["error"] != "", "error"].value_counts().head(3)
        for text, count in common.items():
            lines.append(f"    {count:>7,} x {text[:150]}")
    valid = frame[frame["error"] == ""]
    if len(valid):
        lines.append("")
        lines.append(f"  {'metric':<24}{'min':>10}{'10%':>10}{'median':>10}{'90%':>10}{'max':>10}")
        for key in METRICS:
            col = valid[key].astype("float64")
            q = col.quantile([0, 0.1, 0.5, 0.9, 1.0]).tolist()
            lines.append(f"  {key:<24}" + "".join(f"{human(v):>10}" for v in q))
    if "measured_ms" in frame:
        measured = frame[frame["measured_ms"].notna()]
        if len(measured):
            hosts = ", ".join(sorted(set(measured["host"])))
            lines.append("")
            lines.append(f"  measured {len(measured)} configurations on the engine ({hosts}): "
                         f"{measured['measured_ms'].min():.3g} .. {measured['measured_ms'].max():.3g} ms per forward pass")
    if points:
        lines.append("")
        lines.append("  zoo models of this spec:")
        for p in points:
            where = p["where"]
            share = ""
            if len(valid):
                share = f", {100 * (valid['macs'].astype('float64') <= p['macs']).mean():.0f}% of the valid rows have fewer MACs"
            lines.append(f"    {p['name']:<18} {human(p['params'])} params, {human(p['macs'])} MACs ({where}{share})")
    return "\n".join(lines) + "\n"


def search_summary(result) -> str:
    """The search's outcome for the terminal: what ran and the best configurations."""
    hist = result.history
    sp = result.space
    lines = [f"{sp.label}: {result.strategy} search, seed {result.seed}, objective {result.objective}"
             + (f", budgets {', '.join(map(str, result.budgets))}" if result.budgets else ""),
             f"  {len(hist):,} steps, {result.evaluations:,} configurations analysed, "
             f"{int(hist['feasible'].sum()):,} steps within every budget, {int((hist['error'] != '').sum()):,} invalid"]
    if result.best.empty:
        return "\n".join(lines) + "\n"
    lines.append("")
    cols = ["fitness", *sp.names, "params", "macs", "peak_activation_bytes"]
    table = result.best[cols].copy()
    header = "  " + "  ".join(f"{c:>{_width(c, table[c])}}" for c in cols)
    lines.append(header)
    for _, row in table.iterrows():
        lines.append("  " + "  ".join(f"{_cell(row[c]):>{_width(c, table[c])}}" for c in cols))
    return "\n".join(lines) + "\n"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        if math.isfinite(v) and v == int(v):
            return f"{int(v):,}"
        return f"{v:g}"
    if isinstance(v, (int,)) or hasattr(v, "item"):
        v = v.item() if hasattr(v, "item") else v
        return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)
    return str(v)


def _width(name: str, col) -> int:
    return max(len(name), *(len(_cell(v)) for v in col)) if len(col) else len(name)
