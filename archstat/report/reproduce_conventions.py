"""The report of ``archstat reproduce`` on other tools' numbers: for the classic CNNs and two
of today's, every peer tool's total computed by that tool's own rules, and, for ResNet-50,
where each one's difference from the exact MACs comes from."""
from __future__ import annotations

from .. import conventions as C
from ..analysis import analyze
from ..graph import load
from .conventions_table import explain_rows
from .reproduce import Report, _csv_text
from .table import md_table
from .units import thousands

#: the models the issue names, then two of today's
MODELS = ("alexnet", "vgg16", "googlenet", "inception_v3", "resnet50", "resnet152", "mobilenet_v2",
          "densenet121", "efficientnet_b0", "convnext_tiny")


def peer_tools() -> list[Report]:
    convs = [c for c in C.all_conventions().values() if c.kind == "work"]
    rows, data = [], []
    for name in MODELS:
        a = analyze(load(name))
        macs = a.totals["macs"]
        totals = [C.total(a, c) for c in convs]
        rows.append([a.model.name, f"{macs / 1e9:.3f}"] + [f"{t / macs:.3f}" for t in totals])
        data.append([name, macs] + totals)
    short = {c.name: c.name.replace("flopcountermode", "FCM").replace("calflops-", "calflops ")
             .replace("torchscan-", "torchscan ") for c in convs}
    headers = ["Model", "GMACs"] + [f"{short[c.name]} ({c.unit})" for c in convs]
    table = md_table(headers, ["<"] + [">"] * (len(headers) - 1), rows, None)
    a = analyze(load("resnet50"))
    breakdown = []
    for c in ("ptflops", "thop", "fvcore", "onnx-tool"):
        for g in explain_rows(a, c):
            if g["difference"]:
                breakdown.append([c, g["type"], g["call"], str(g["layers"]), f"{g['difference']:+,}", g["rule"]])
    versions = "; ".join(dict.fromkeys(f"{c.tool} {c.version}" for c in convs))
    text = "\n".join([
        "# Every other tool's number, explained", "",
        "Each tool's total for the same model, computed by archstat from its layer facts with that tool's own "
        "rules (`archstat/conventions/`, one module per tool, with the source lines they follow), as a ratio to "
        "archstat's exact MACs (conv and linear multiply-accumulates, biases left out). The tools run as users "
        "run them: batch 1, eval mode, at the model's eval crop, auxiliary heads off. `tests/test_conventions.py` "
        "checks each total against the tool's own output on 18 torchvision models, and runs the tools where "
        f"they are installed. Versions: {versions}.", "",
        "A ratio near 1 (MACs) or 2 (FLOPs) hides a different rule: the tools add biases, batch norm (2 or 4 "
        "per element), activations and pools, or leave out what they cannot see (function calls, operators). "
        "FlopCounterMode's forward + backward is about 3x its forward, more where grouped convs' weight "
        "gradients are counted `groups` times over.", "",
        table, "",
        "## ResNet-50: where the differences come from", "",
        f"archstat: {thousands(a.totals['macs'])} MACs. Per layer type (and how PyTorch calls it), the tool's "
        "count minus archstat's MACs, and the tool's rule (`archstat conventions resnet50 --explain NAME`):", "",
        md_table(["Tool", "Layer type", "Called as", "Layers", "Difference", "The tool's rule"],
                 ["<", "<", "<", ">", ">", "<"], breakdown, None), ""])
    return [Report("peer_tools.md", "Every other tool's number",
                   "torchinfo, fvcore, ptflops, thop, calflops, torchscan, FlopCounterMode and onnx-tool on the "
                   "classic CNNs, by each tool's rules, and why they differ", text=text),
            Report("peer_tools.csv", "Every other tool's number (data)", "the exact totals behind the table",
                   text=_csv_text(["model", "macs"] + [c.name for c in convs], data))]
