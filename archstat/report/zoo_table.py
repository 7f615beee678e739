"""``archstat zoo``: every named model of the zoo analysed, one row each.

Each row says what the model costs (parameters, MACs, FLOPs, peak activation memory at the
model's own input size), how accurate its published weights are and where that figure
comes from, and whether archstat's counts reproduce the publisher's own (torchvision's
``num_params`` exactly, its ``_ops`` GMACs at the digits it prints).
"""
from __future__ import annotations

import textwrap
from typing import Any, Sequence

from ..analysis import analyze
from ..errors import ArchstatError, did_you_mean
from ..graph import load
from ..zoo import reproduces
from .table import _csv, md_table, text_table
from .units import human, human_bytes, shape_str
from .json_out import dump

#: columns of the csv and json output, in order
ZOO_KEYS = ("model", "family", "title", "spec", "args", "input", "layers", "params", "macs", "flops",
            "peak_activation_bytes", "top1", "top5", "accuracy_source", "published_params", "published_gmacs",
            "reproduces_published")


def zoo_rows(family: str | None = None, batch: int = 1, dtype: str = "float32") -> list[dict[str, Any]]:
    """One analysed row per named model of the zoo (index order), optionally of one family
    (a family name, ``regnet_y``, or a family spec's file name, ``regnet``, for all its models)."""
    from .. import zoo

    rows = []
    for name, entry in zoo.entries().items():
        model = load(name)
        if family is not None and family not in (model.family, entry.spec.rsplit(".", 1)[0]):
            continue
        t = analyze(model, batch=batch, dtype=dtype).totals
        acc = model.accuracy or {}
        published = model.published or {}
        rows.append({
            "model": name, "family": model.family, "title": model.name, "spec": entry.spec,
            "args": " ".join(f"{k}={v}" for k, v in entry.args.items()),
            "input": shape_str(model.input_shape), "layers": t["layers"], "params": t["params"],
            "macs": t["macs"], "flops": t["flops"], "peak_activation_bytes": t["peak_activation_bytes"],
            "top1": acc.get("top1"), "top5": acc.get("top5"),
            "accuracy_source": " ".join(str(acc["source"]).split()) if acc.get("source") else None,
            "published_params": published.get("params"), "published_gmacs": published.get("gmacs"),
            # the publisher's counts are per image: compare the MACs of one image
            "reproduces_published": reproduces(t["params"], t["macs"] // batch, published)})
    if family is not None and not rows:
        families = sorted({load(n).family for n in zoo.entries()})
        raise ArchstatError(f"no zoo model of family {family!r} (families: {', '.join(families)})",
                            field="--family", hint=did_you_mean(family, families))
    return rows


def _gmacs(macs: int) -> str:
    """G multiply-accumulates at three decimals, or two significant digits below 0.01."""
    g = macs / 1e9
    return f"{g:.3f}" if g >= 0.01 or g == 0 else f"{g:.2g}"


_TORCHVISION = "torchvision 0.29.1 "


def _source_cell(source: str | None) -> str:
    """The weights tag for torchvision's figures (footnoted), else the source's first clause."""
    if not source:
        return ""
    if source.startswith(_TORCHVISION):
        return source[len(_TORCHVISION):].split(".")[-1].split()[0]
    first = source.split(",")[0]
    return first if len(first) <= 32 else first[:31] + "..."


def render_zoo(rows: Sequence[dict[str, Any]], fmt: str = "table", batch: int = 1,
               dtype: str = "float32") -> str:
    """The zoo table in ``fmt`` (table, md, csv, json or html)."""
    if fmt == "json":
        return dump("zoo", {"batch": batch, "dtype": dtype, "models": list(rows)})
    if fmt == "csv":
        return _csv(list(rows), ZOO_KEYS)
    headers = ["Model", "Family", "Input", "Params", "GMACs", "GFLOPs", "Peak act.", "Top-1 %", "Check",
               "Top-1 source"]
    aligns = ["<", "<", ">", ">", ">", ">", ">", ">", "^", "<"]
    body = [[r["model"], r["family"], r["input"].replace(" ", ""), human(r["params"]), _gmacs(r["macs"]),
             _gmacs(r["flops"]), human_bytes(r["peak_activation_bytes"]),
             "" if r["top1"] is None else f"{r['top1']:.2f}",
             {True: "ok", False: "DIFF", None: ""}[r["reproduces_published"]], _source_cell(r["accuracy_source"])]
            for r in rows]
    checked = [r for r in rows if r["reproduces_published"] is not None]
    ok = sum(1 for r in checked if r["reproduces_published"])
    lines = [
        f"{len(rows)} model{'s' if len(rows) != 1 else ''}; batch {batch}, {dtype}, each at its own input size. GMACs: conv and linear "
        "multiply-accumulates (torchvision's docs call them GFLOPS); GFLOPs = 2 per MAC + elementwise work; "
        "Peak act.: the largest live set of activations at inference."]
    if checked:
        lines.append(f"Check: archstat's params equal the publisher's exactly and its GMACs per image round to "
                     f"the published figure: {ok} of {len(checked)} models.")
    if any(r["accuracy_source"] for r in rows):
        lines.append("Top-1 source: a weights tag is torchvision 0.29.1's <Model>_Weights.<tag> (ImageNet-1K "
                     "acc@1 of the DEFAULT weights); 'archstat report NAME' shows each model's full source.")
    note = "\n".join(lines)
    if fmt == "table":
        wrapped = "\n".join(textwrap.fill(line, 100) for line in note.split("\n"))
        return text_table(headers, aligns, body, None) + "\n\n" + wrapped + "\n"
    if fmt == "md":
        return md_table(headers, aligns, body, None) + "\n\n" + note.replace("\n", "\n\n") + "\n"
    if fmt == "html":
        from . import html_page as H
        return H.page("archstat zoo", ["<h1>The archstat model zoo</h1>", H.table(headers, aligns, body, None, False),
                                       *(H.note(n) for n in note.split("\n"))])
    raise ValueError(fmt)
