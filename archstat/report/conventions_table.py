"""Every tool's number for one model, and why each differs from archstat's (``archstat
conventions``); one tool's difference broken down by layer type (``--explain``)."""
from __future__ import annotations

import textwrap
from typing import Any, Sequence

from .. import conventions as conv_mod
from ..analysis import Analysis
from .table import md_table, text_table
from .units import thousands
from .json_out import dump

FORMATS = ("table", "md", "csv", "json")

#: archstat's own numbers, first in the table: (unit, totals key, what it counts)
_OWN = (("MACs", "macs", "conv and linear multiply-accumulates, biases left out (exact)"),
        ("FLOPs", "flops", "2 per MAC + each layer's elementwise work, by its type's rule"),
        ("train FLOPs", "training_step_flops",
         "a training step: forward + backward (each layer type's rule) + the {optimizer} update"))


def convention_rows(analysis: Analysis) -> list[dict[str, Any]]:
    """archstat's own totals, then each convention's: name, tool, version, unit, total, the
    ratio to archstat's MACs (to its parameters for a parameter convention), and why."""
    t = analysis.totals
    rows = [{"name": "archstat", "tool": "archstat", "version": "", "unit": unit, "total": t[key],
             "ratio": t[key] / t["macs"] if t["macs"] else None, "ratio_to": "macs",
             "reason": why.format(optimizer=t["optimizer"])} for unit, key, why in _OWN]
    for conv in conv_mod.all_conventions().values():
        total = conv_mod.total(analysis, conv)
        base = t["params"] if conv.kind == "params" else t["macs"]
        rows.append({"name": conv.name, "tool": conv.tool, "version": conv.version, "unit": conv.unit,
                     "total": total, "ratio": total / base if base else None,
                     "ratio_to": "params" if conv.kind == "params" else "macs", "reason": conv.reason})
    return rows


def _ratio(row: dict[str, Any]) -> str:
    if row["ratio"] is None:
        return "-"
    return f"{row['ratio']:.3f}"


def _caveat(analysis: Analysis) -> str:
    """What a foreign file cannot tell the conventions."""
    if str(analysis.model.file or "").lower().endswith(".onnx"):
        return ("This model comes from an ONNX file, which does not say how the PyTorch source ran each "
                "layer: each is taken as its type's usual call (a ReLU as an nn.ReLU module), and the tools "
                "would see any batch norm the exporter folded into a conv as that conv's bias.")
    return ""


def _header(analysis: Analysis) -> str:
    t = analysis.totals
    return (f"{analysis.model.name}: input {'x'.join(map(str, analysis.input_shape))}, batch {analysis.batch}; "
            f"archstat: {thousands(t['macs'])} MACs, {thousands(t['params'])} params")


def render_conventions(analysis: Analysis, fmt: str = "table", width: int = 100) -> str:
    """One row per tool: its unit, total, ratio to archstat's MACs and the reason."""
    rows = convention_rows(analysis)
    if fmt == "json":
        return dump("conventions", {"model": analysis.model_info(), "conventions": rows,
                                    "caveat": _caveat(analysis) or None})
    if fmt == "csv":
        keys = ("name", "tool", "version", "unit", "total", "ratio", "ratio_to", "reason")
        lines = [",".join(keys)] + [",".join(_csv_cell(r[k]) for k in keys) for r in rows]
        return "\n".join(lines) + "\n"
    headers = ["Convention", "Unit", "Total", "Ratio", "Why it differs"]
    aligns = ["<", "<", ">", ">", "<"]
    body = [[r["name"], r["unit"], thousands(r["total"]), _ratio(r), r["reason"]] for r in rows]
    versions = ", ".join(dict.fromkeys(f"{r['tool']} {r['version']}" for r in rows if r["version"]))
    notes = ("Ratio: the total over archstat's MACs (Keras: over its parameters). Each tool's rules are written "
             f"per layer type in archstat/conventions/; 'archstat conventions MODEL --explain NAME' shows "
             f"where one differs. Versions: {versions}. {_caveat(analysis)}").strip()
    if fmt == "md":
        return "\n".join([f"# {analysis.model.name}: every tool's number", "", _header(analysis), "",
                          md_table(headers, aligns, body, None), "", notes]) + "\n"
    return "\n".join([*_wrap(_header(analysis), width), "", _wrapped_table(headers, aligns, body, width),
                      "", *_wrap(notes, width)]) + "\n"


def _wrap(text: str, width: int, **kw: Any) -> list[str]:
    """textwrap.wrap that keeps "+ biases" and "H x W" together."""
    glue = text.replace("+ ", "+\xa0").replace(" x ", "\xa0x\xa0")
    return [line.replace("\xa0", " ") for line in textwrap.wrap(glue, width, **kw)]


def _wrapped_table(headers: Sequence[str], aligns: Sequence[str], body: Sequence[Sequence[str]],
                   width: int) -> str:
    """A text table whose last column wraps to fit ``width``."""
    fixed = [max(len(r[i]) for r in [headers, *body]) for i in range(len(headers) - 1)]
    room = max(30, width - sum(fixed) - 2 * len(fixed))
    rows = []
    for r in body:
        lines = _wrap(r[-1], room) or [""]
        rows.append([*r[:-1], lines[0]])
        rows += [[""] * (len(r) - 1) + [more] for more in lines[1:]]
    return text_table(headers, aligns, rows, None)


def _csv_cell(value: Any) -> str:
    text = "" if value is None else (f"{value:.6f}" if isinstance(value, float) else str(value))
    return f'"{text}"' if any(c in text for c in ',"\n') else text


# ------------------------------------------------------------------------- explain

def explain_rows(analysis: Analysis, name: str) -> list[dict[str, Any]]:
    """The convention's count beside archstat's MACs, summed per (layer type, how PyTorch
    calls it), largest difference first; each with the rule the tool applies."""
    conv = conv_mod.get(name)
    counts = conv_mod.counts(analysis, conv)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for view, count in zip(conv_mod.views(analysis), counts):
        if view is None:
            continue
        skip = conv.kind != "params" and analysis.model.layer(view.name).training_only
        key = (view.type, view.call)
        rule = conv.rule_for(view.type, view.family)
        g = groups.setdefault(key, {"type": view.type, "call": view.call, "layers": 0, "archstat": 0, "tool": 0,
                                    "rule": " ".join((rule.__doc__ or "not counted").split()),
                                    "source": getattr(rule, "source", "")})
        g["layers"] += 1
        g["archstat"] += 0 if skip else (view.own_params() if conv.kind == "params" else view.macs)
        g["tool"] += count
    for g in groups.values():
        g["difference"] = g["tool"] - g["archstat"]
    return sorted(groups.values(), key=lambda g: (-abs(g["difference"]), -g["tool"], g["type"]))


def render_explain(analysis: Analysis, name: str, fmt: str = "table", width: int = 100) -> str:
    conv = conv_mod.get(name)
    rows = explain_rows(analysis, name)
    what = "parameters" if conv.kind == "params" else "MACs"
    base = analysis.totals["params"] if conv.kind == "params" else analysis.totals["macs"]
    total = sum(r["tool"] for r in rows)
    if fmt == "json":
        return dump("explain", {"model": analysis.model_info(),
                           "convention": {"name": conv.name, "tool": conv.tool, "version": conv.version,
                                          "entry": conv.entry, "unit": conv.unit, "total": total,
                                          "reason": conv.reason},
                           "archstat": {"unit": what, "total": base}, "groups": rows,
                           "caveat": _caveat(analysis) or None})
    keys = ("type", "call", "layers", "archstat", "tool", "difference", "rule", "source")
    if fmt == "csv":
        return "\n".join([",".join(keys)] + [",".join(_csv_cell(r[k]) for k in keys) for r in rows]) + "\n"
    counted = [r for r in rows if r["tool"] or r["archstat"]]
    silent = [r for r in rows if not (r["tool"] or r["archstat"])]
    headers = ["Layer type", "Called as", "Layers", f"archstat {what}", f"{conv.name} {conv.unit}", "Difference"]
    aligns = ["<", "<", ">", ">", ">", ">"]
    body = [[r["type"], r["call"], str(r["layers"]), thousands(r["archstat"]), thousands(r["tool"]),
             f"{r['difference']:+,}"] for r in counted]
    head = (f"{analysis.model.name}: {conv.tool} {conv.version} says {thousands(total)} {conv.unit}, "
            f"archstat {thousands(base)} {what} ({total - base:+,}): {conv.reason}. Measured as "
            f"{conv.entry}. {_caveat(analysis)}").strip()
    rules = [f"{r['type']} ({r['call']}): {r['rule']}" + (f" [{r['source']}]" if r["source"] else "")
             for r in counted]
    zero = ("Counted by neither: " + ", ".join(f"{r['type']} ({r['call']}) x{r['layers']}" for r in silent) + "."
            if silent else "")
    if fmt == "md":
        return "\n".join([f"# {analysis.model.name}: {conv.name} explained", "", head, "",
                          md_table(headers, aligns, body, None), "", f"The rules, as {conv.tool} applies them:", "",
                          *[f"- {line}" for line in rules], "", zero]) + "\n"
    out = [*_wrap(head, width), "", text_table(headers, aligns, body, None), "",
           f"The rules, as {conv.tool} {conv.version} applies them:"]
    for line in rules:
        out += _wrap(line, width, initial_indent="- ", subsequent_indent="  ")
    return "\n".join(out + ([""] + _wrap(zero, width) if zero else [])) + "\n"
