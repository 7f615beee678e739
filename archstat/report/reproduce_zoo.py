"""The reports of ``archstat reproduce`` that span the zoo: complexity against accuracy for
every named model with a published accuracy (after Canziani et al. 2016, with the EfficientNet
paper's scaling curves), and measured time against operations.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..analysis import analyze
from ..graph import load
from .reproduce import Report, _csv_text
from .table import md_table
from .units import human

# ------------------------------------------------------------ complexity vs accuracy

def zoo_points() -> list[dict[str, Any]]:
    """One point per named model with a published top-1: its counts, family and curve.

    A family's models that come from the same publisher (the weights' accuracy, or a paper's
    own figure) are joined into one curve, split further by any on/off design switch that
    differs between them (VGG with and without batch norm are two curves)."""
    from .. import zoo

    points = []
    for name in zoo.entries():
        model = load(name)
        acc = model.accuracy
        if not acc or "top1" not in acc:
            continue
        t = analyze(model).totals
        source = " ".join(str(acc.get("source", "")).split())
        points.append({"label": name, "family": model.family, "title": model.name, "top1": acc["top1"],
                       "top5": acc.get("top5"), "params": t["params"], "macs": t["macs"], "flops": t["flops"],
                       "gmacs": t["macs"] / 1e9, "mparams": t["params"] / 1e6,
                       "approximate": bool(acc.get("approximate", False)),
                       "paper": not source.startswith("torchvision"), "source": source,
                       # the weights' training recipe: torchvision's tag (IMAGENET1K_V1, _V2, _SWAG_E2E_V1)
                       "recipe": source.split(".")[-1].split()[0] if source.startswith("torchvision") else "paper",
                       "switches": {k: v for k, v in model.args.items() if isinstance(v, bool)}})
    for p in points:
        mates = [q for q in points if q["family"] == p["family"] and q["paper"] == p["paper"]]
        varying = sorted(k for k in p["switches"] if len({q["switches"].get(k) for q in mates}) > 1)
        on = [k for k in varying if p["switches"][k]]
        p["series"] = p["label"] if p["paper"] else p["family"] + "".join(f" + {k}" for k in on)
    return points


def complexity_accuracy() -> list[Report]:
    points = zoo_points()
    if len(points) < 2:
        return []
    data = [[p["label"], p["title"], p["family"], p["params"], p["macs"], p["flops"], p["top1"],
             "" if p["top5"] is None else p["top5"], p["approximate"], p["source"]] for p in points]

    def draw_ops(path: Path) -> None:
        from .plots_zoo import scaling_curves
        scaling_curves(points, path)

    def draw_params(path: Path) -> None:
        from .plots_zoo import scaling_curves
        scaling_curves(points, path, x_key="mparams", title="Top-1 accuracy vs parameters",
                       x_label="parameters (millions, computed by archstat, log scale)")

    def draw_density(path: Path) -> None:
        from .plots_zoo import accuracy_density
        accuracy_density(points, path)

    families = sorted({p["family"] for p in points})
    torchvision = sum(1 for p in points if not p["paper"])
    text = "\n".join([
        "# Complexity vs accuracy (after Canziani et al. 2016)", "",
        "A. Canziani, A. Paszke, E. Culurciello, \"An Analysis of Deep Neural Network Models for "
        "Practical Applications\", arXiv:1605.07678, Figures 2 and 10, redrawn for every model of "
        f"archstat's zoo that has a published accuracy: {len(points)} models of {len(families)} families, "
        f"{torchvision} of them torchvision's ImageNet-1K weights (acc@1 of each model's DEFAULT weights, "
        "torchvision 0.29.1) and the rest the papers' own figures. As in the EfficientNet paper (Tan & "
        "Le 2019, Figures 1 and 5), the variants of a family are joined in order of cost, so each curve "
        "is that family's scaling. Operations and parameters are computed by archstat at each model's "
        "own input size (its weights' evaluation crop); auxiliary heads, which run only in training, "
        "are not in the operations.", "",
        "![top-1 vs operations](complexity_accuracy.png)", "",
        "![top-1 vs parameters](accuracy_vs_params.png)", "",
        "![accuracy density](accuracy_density.png)", "",
        md_table(["Model", "Family", "Params", "GMACs", "Top-1 %", "Top-1 per M params", "Accuracy source"],
                 ["<", "<", ">", ">", ">", ">", "<"],
                 [[f"`{p['label']}`", p["family"], human(p["params"]), f"{p['gmacs']:.3f}",
                   f"{p['top1']:.2f}" + (" *" if p["approximate"] else ""),
                   f"{p['top1'] / p['mparams']:.2f}", p["source"]] for p in points], None), "",
        "\\* approximate: read off a published figure. Canziani et al. plot G-Ops, which appear to be about "
        "2x multiply-accumulates (VGG-16: ~31 vs 15.47 GMACs); the x axis here is multiply-accumulates, "
        "exactly as archstat counts them (torchvision's docs label the same numbers GFLOPS).", ""])
    return [Report("complexity_accuracy.md", "Complexity vs accuracy",
                   "top-1 against operations and parameters for the whole zoo, scaling curves per family, "
                   "and accuracy per parameter", text=text),
            Report("complexity_accuracy.png", "Complexity vs accuracy (figure)",
                   "top-1 vs GMACs, one curve per family (Canziani et al. Fig. 2, EfficientNet Fig. 5 style)",
                   draw=draw_ops),
            Report("accuracy_vs_params.png", "Accuracy vs parameters (figure)",
                   "top-1 vs parameters, one curve per family (EfficientNet Fig. 1 style)", draw=draw_params),
            Report("accuracy_density.png", "Accuracy density (figure)", "Canziani et al. Fig. 10 style",
                   draw=draw_density),
            Report("complexity_accuracy.csv", "Complexity vs accuracy (data)", "the numbers behind the figures",
                   text=_csv_text(["model", "title", "family", "params", "macs", "flops", "top1", "top5",
                                   "approximate", "accuracy_source"], data))]


# ----------------------------------------------------------------- operations vs time

#: models timed for the operations-vs-time study: a spread of sizes and shapes that runs
#: in well under a minute on two cores at batch 1
OPS_TIME_SPECS = ("alexnet_lecture", "vgg11", "resnet18", "resnet50", "googlenet", "mobilenet_v2", "squeezenet1_0",
                  "densenet121")


def ops_vs_time(progress: Any = None, names: Sequence[str] = OPS_TIME_SPECS) -> list[Report]:
    from ..profiling.studies import ops_vs_time as measure

    data = measure(list(names), batch=1, repeat=3, warmup=1, progress=progress)
    machine = data.machine
    blas = machine.get("blas", {})
    fits = data.fits
    rows = [[m["model"], f"{m['macs'] / 1e9:.3f}", f"{m['forward_ms']:.1f}", f"{m['gflops']:.1f}"]
            for m in data.model_rows]

    from ..profiling.calibration import BUSY
    shares = [p.totals["other_cpu_share"] for p in data.profiles if p.totals["other_cpu_share"] is not None]
    disturbed, share = [], None
    if shares and max(shares) > BUSY:
        share = max(shares)
        disturbed = [f"**Warning: other processes used up to {100 * share:.0f}% of the CPUs while "
                     "these times were taken**: they are inflated and scatter more than on an idle machine "
                     "(regenerate with `archstat reproduce` when the machine is idle).", ""]

    def fit_line(key: str) -> str:
        f = fits[key]
        return (f"- {key}: time = {f.slope * 1e9:.2f} ms per GMAC x MACs + {f.intercept:.2f} ms, "
                f"R^2 = {f.r2:.3f} over {f.n} points")

    text = "\n".join([
        "# Operations vs measured time (after Canziani et al. 2016)", "",
        "Canziani, Paszke & Culurciello (arXiv:1605.07678) report that operation count predicts "
        "inference time. Here archstat's NumPy engine runs each model forward at batch 1 (median of 3 "
        "after a warm-up) and the time is set against the MACs archstat counts. **Measured on this "
        f"machine**: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, NumPy "
        f"{machine.get('numpy', '?')}, {blas.get('internal_api', 'BLAS')} {blas.get('version', '')} "
        f"({blas.get('num_threads', '?')} threads). Times vary from run to run; the fit's quality is "
        "what to read.", "", *disturbed,
        "![operations vs time](ops_vs_time.png)", "",
        md_table(["Model", "GMACs", "Forward ms", "GFLOP/s"], ["<", ">", ">", ">"], rows, None), "",
        "Least-squares fits of forward time against MACs:", "",
        *[fit_line(k) for k in fits], "",
        "Memory-bound layers (fully connected at batch 1, depthwise convolutions, 1x1 convolutions on "
        "small maps) sit above the line: they move more bytes per MAC, which operation counts do not "
        "see (see `archstat profile --plot` for the roofline).", ""])

    def draw(path: Path) -> None:
        from .profile_plots import ops_vs_time as plot
        plot(data, path)

    return [Report("ops_vs_time.md", "Operations vs time", "measured engine time against MACs across models, "
                   "with a linear fit (measured: changes from run to run)", text=text, measured=True,
                   disturbed=share),
            Report("ops_vs_time.png", "Operations vs time (figure)", "per layer and per model, with R^2",
                   draw=draw, measured=True, disturbed=share)]


