"""The report of ``archstat reproduce`` on other tools' numbers: ResNet-50 by every tool, how
far each tool is from the exact count on the classic CNNs and two of today's, and where
ptflops' difference on ResNet-50 comes from."""
from __future__ import annotations

from .. import conventions as C
from ..analysis import analyze
from ..graph import load
from .conventions_table import convention_rows, explain_rows
from .reproduce import Report, _csv_text
from .table import md_table
from .units import thousands

#: the models the issue names, then two of today's
MODELS = ("alexnet", "vgg16", "googlenet", "inception_v3", "resnet50", "resnet152", "mobilenet_v2",
          "densenet121", "efficientnet_b0", "convnext_tiny")


def _pct(value: int, exact: int) -> str:
    return f"{100 * (value - exact) / exact:+.2f}%"


def peer_tools() -> list[Report]:
    convs = list(C.all_conventions().values())
    forward = [c for c in convs if c.kind == "work"]
    fcm, fcm_train = C.get("flopcountermode"), C.get("flopcountermode-train")
    r50 = analyze(load("resnet50"))
    own = [r for r in convention_rows(r50)]
    table1 = md_table(["Convention", "Tool", "Unit", "Total", "Why it differs"], ["<", "<", "<", ">", "<"],
                      [[r["name"], f"{r['tool']} {r['version']}".strip(), r["unit"], thousands(r["total"]),
                        r["reason"]] for r in own], None)
    rows, data = [], []
    for name in MODELS:
        a = r50 if name == "resnet50" else analyze(load(name))
        macs = a.totals["macs"]
        totals = {c.name: C.total(a, c) for c in convs if c.kind != "params"}
        rows.append([a.model.name, f"{macs / 1e9:.3f}"]
                    + [_pct(totals[c.name], c.per_mac * macs) for c in forward]
                    + [f"{totals[fcm_train.name] / totals[fcm.name]:.1f}"])
        data.append([name, macs] + [totals[c.name] for c in convs if c.kind != "params"])
    headers = ["Model", "GMACs"] + [c.name for c in forward] + ["FCM train / forward"]
    table2 = md_table(headers, ["<"] + [">"] * (len(headers) - 1), rows, None)
    groups = [g for g in explain_rows(r50, "ptflops") if g["difference"]]
    rules = list(dict.fromkeys(f"{g['type']} ({g['call']}): {g['rule']}" for g in groups))
    breakdown = md_table(["Layer type", "Called as", "Layers", "ptflops minus archstat MACs"], ["<", "<", ">", ">"],
                         [[g["type"], g["call"], str(g["layers"]), f"{g['difference']:+,}"] for g in groups], None)
    versions = "; ".join(dict.fromkeys(f"{c.tool} {c.version}" for c in convs))
    text = "\n".join([
        "# Every other tool's number, explained", "",
        "Each tool's count for the same model, computed by archstat from its layer facts with that tool's own "
        "rules (`archstat/conventions/`, one module per tool, with the source lines they follow). The tools run "
        "as users run them: batch 1, eval mode, at the model's eval crop, auxiliary heads off. "
        "`tests/test_conventions.py` checks every total against the tool's own output on all 68 torchvision "
        f"CNNs, and runs the tools where they are installed. Versions: {versions}.", "",
        "## ResNet-50, by every tool", "",
        f"archstat's exact count: {thousands(r50.totals['macs'])} multiply-accumulates of conv and linear "
        "layers (MACs), biases left out.", "",
        table1, "",
        "## How far each tool is from the exact count", "",
        "The difference from archstat's exact MACs (from twice the MACs for the tools that count FLOPs: "
        + ", ".join(c.name for c in forward if c.per_mac == 2) + "). FCM is torch's FlopCounterMode; its "
        "last column is its forward + backward over its forward.", "",
        table2, "",
        "What stands out:", "",
        "- **torchinfo on ConvNeXt-T**: it multiplies a linear layer's parameters by the output's first axis "
        "only, so the channels-last linears of ConvNeXt lose their H x W.",
        "- **FlopCounterMode's training count on MobileNetV2 and EfficientNet-B0**: torch 2.14.1 counts a grouped "
        "conv's weight gradient `groups` times over, so each depthwise conv's counts C times "
        "(`archstat conventions NAME` also gives archstat's own training-step FLOPs).",
        "- **onnx-tool on EfficientNet-B0 and DenseNet-121**: it prices a sigmoid (SiLU = sigmoid x x) at 32 per "
        "element, and a batch norm that cannot fold into a conv (DenseNet's, after a concatenation) at 31.",
        "- **ptflops and thop on MobileNetV2 and EfficientNet-B0**: batch norm, pools and activations weigh "
        "more against the depthwise convs' few MACs.", "",
        "## ResNet-50: where ptflops' difference comes from", "",
        f"ptflops says {thousands(C.total(r50, 'ptflops'))} MACs. By layer type and how PyTorch calls it "
        "(`archstat conventions resnet50 --explain ptflops`; any tool by name):", "",
        breakdown, "",
        "The rules, as ptflops applies them:", "",
        *[f"- {line}" for line in rules], ""])
    return [Report("peer_tools.md", "Every other tool's number",
                   "torchinfo, fvcore, ptflops, thop, calflops, torchscan, FlopCounterMode and onnx-tool on "
                   "ResNet-50 and how far each is from the exact count on the classic CNNs and two of today's",
                   text=text),
            Report("peer_tools.csv", "Every other tool's number (data)", "the exact totals behind the tables",
                   text=_csv_text(["model", "macs"] + [c.name for c in convs if c.kind != "params"], data))]
