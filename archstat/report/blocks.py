"""Block-level rows of an analysis (``archstat report --depth N``), like torchinfo's depth.

Layer names are module paths (``features.denseblock1.denselayer1.conv1``: torchvision's, which
the zoo's specs and the importers keep), so a block instance is a name prefix: at depth ``N``
every layer whose name has more than ``N`` dotted parts is summed into the row of its first
``N`` parts (``features.denseblock1`` at depth 2). A layer with fewer parts keeps its own row.
Rows come in the order of their first layer; a block's output shape and receptive field are its
last layer's; its inputs are the rows outside it that its layers read. The additive columns are
exact sums, so the rows add up to the same totals as the layers. A layer that runs only in
training is never summed with one that runs at inference (their totals differ).
"""
from __future__ import annotations

from typing import Any

#: the per-layer columns a block sums (the others are its last layer's, or derived)
SUMMED = ("params", "weight_params", "bias_params", "buffers", "macs", "flops", "activations",
          "activation_bytes", "param_bytes", "buffer_bytes")


def block_key(name: str, depth: int) -> str:
    """The row a layer called ``name`` belongs to at ``depth``: its first ``depth`` dotted parts."""
    parts = name.split(".")
    return ".".join(parts[:depth]) if len(parts) > depth else name


def block_rows(analysis: Any, depth: int) -> list[dict[str, Any]]:
    """One row per block instance at ``depth`` (module docstring), as plain dicts with the
    analysis' column names plus ``layers`` (how many layers the row sums)."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    rows = analysis.rows()
    key_of = {r["name"]: (block_key(r["name"], depth), bool(r.get("training_only"))) for r in rows}
    groups: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(key_of[r["name"]], []).append(r)
    # a training-only part of a block shares its prefix with the rest: tell the two rows apart
    names = {k: k[0] + (" (train)" if k[1] and (k[0], False) in groups else "") for k in groups}
    out = []
    for key, members in groups.items():
        last = members[-1]
        row: dict[str, Any] = {k: sum(m[k] for m in members) for k in SUMMED if k in last}
        inputs: list[str] = []
        for m in members:
            for i in m["inputs"]:
                k = key_of.get(i)
                if k is not None and k != key and names[k] not in inputs:
                    inputs.append(names[k])
        row.update(name=names[key], type=last["type"] if len(members) == 1 else f"{len(members)} layers",
                   family=last["family"] if len(members) == 1 else "block", inputs=tuple(inputs),
                   output_shape=last["output_shape"], rf_size=last["rf_size"], rf_stride=last["rf_stride"],
                   training_only=key[1], layers=len(members))
        if "convention" in last:
            row["convention"] = sum(m["convention"] for m in members)
        out.append(row)
    return out
