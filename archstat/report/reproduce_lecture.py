"""The lecture's and the VGG paper's reports: VGG Table 2 (parameters per configuration),
CS231n's VGG-16 memory and parameter table, AlexNet's layer table, memory against parameters
per layer, and why convolution (shared weights against a fully connected layer)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..analysis import Analysis, analyze, itemsize
from ..graph import load
from ..layers.activation import FAMILY as ACTIVATION
from ..layers.conv import FAMILY as CONV  # the lecture's CONV, POOL and FC categories
from ..layers.linear import FAMILY as FC
from ..layers.pool import FAMILY as POOL
from . import published
from .reproduce import Report, _csv_text
from .table import md_table
from .units import human, human_bytes, thousands

MiB = 2 ** 20


def _analysis(name: str, **kwargs) -> Analysis:
    """The analysis of a zoo model (by name: the specs ship with archstat)."""
    return analyze(load(name), **kwargs)


def _pct(computed: float, published_value: float) -> str:
    return f"{100 * (computed - published_value) / published_value:+.2f}%"


def vgg_table2() -> list[Report]:
    rows, csv_rows, by_config = [], [], {}
    for config, spec, weight_layers, params_m in published.VGG_TABLE2:
        a = _analysis(spec)
        by_config[config] = a
        t = a.totals
        computed_m = t["params"] / 1e6
        weight_count = sum(1 for r in a.rows() if r["macs"])
        rows.append([config, f"`{spec}`", str(weight_count), str(params_m), f"{computed_m:.2f}",
                     str(round(computed_m)), _pct(computed_m, params_m), thousands(t["params"]),
                     thousands(t["weight_params"]), f"{t['macs'] / 1e9:.3f}"])
        csv_rows.append([config, spec, weight_layers, weight_count, params_m, t["params"], t["weight_params"],
                         t["bias_params"], t["macs"]])
        if weight_count != weight_layers:
            raise AssertionError(f"{spec}: {weight_count} weight layers, Table 1 says {weight_layers}")
    params = {c: a.totals["params"] for c, a in by_config.items()}
    d_rows = by_config["D"].rows()
    fc_params = sum(r["params"] for r in d_rows if r["family"] == FC)
    fc6 = max(r["params"] for r in d_rows)
    rounding = ", ".join(f"{params[c] / 1e6:.2f} -> {m}" for c, _, _, m in published.VGG_TABLE2 if c != "A-LRN")
    headers = ["Config", "Spec", "Weight layers", "Table 2 (M)", "archstat (M)", "rounded", "deviation",
               "params (exact)", "weights only", "GMACs"]
    text = "\n".join([
        "# VGG Table 2: number of parameters", "",
        f"Source: {published.VGG_SOURCE}. Computed by archstat from the specs (224x224 RGB input, "
        "1000 classes, biases included).", "",
        md_table(headers, ["<", "<"] + [">"] * 8, rows, None), "",
        "Every configuration rounds to the published figure. The deviations are the paper's rounding "
        f"to whole millions: {rounding}. "
        "Configurations A and A-LRN are equal because LRN has no parameters. The 1x1 convolutions of "
        f"C add {(params['C'] - params['B']) / 1e6:.2f} M parameters over B; the 3x3 convolutions that "
        f"replace them in D add another {(params['D'] - params['C']) / 1e6:.2f} M. "
        f"Even so, {100 * fc_params / params['D']:.0f}% of VGG-16's parameters sit in the three fully "
        f"connected layers (fc6 alone: {fc6 / 1e6:.1f} M), which is why the configurations differ so "
        "little in size while their operation counts (last column) grow by "
        f"{by_config['E'].totals['macs'] / by_config['A'].totals['macs']:.1f}x from A to E.", "",
        "MACs are multiply-accumulates of the convolutional and fully connected layers; torchvision "
        "labels the same numbers \"GFLOPS\" (7.609 / 11.308 / 15.470 / 19.632 for A, B, D, E).", ""])
    return [Report("vgg_table2.md", "VGG Table 2", "parameters of configurations A to E, published vs computed",
                   text=text),
            Report("vgg_table2.csv", "VGG Table 2 (data)", "the exact counts behind vgg_table2.md",
                   text=_csv_text(["config", "spec", "weight_layers_table1", "weight_layers_computed",
                                   "params_M_table2", "params", "weight_params", "bias_params", "macs"],
                                  csv_rows))]


# ---------------------------------------------------------------- CS231n VGG-16

def _lecture_line(label: str, row: dict[str, Any], batch_free_shape: tuple[int, ...], weights: str) -> str:
    hwc = "x".join(str(v) for v in (batch_free_shape[1:] + batch_free_shape[:1])) \
        if len(batch_free_shape) == 3 else f"1x1x{batch_free_shape[0]}"
    if len(batch_free_shape) == 3:
        c, h, w = batch_free_shape
        memory = f"{h}*{w}*{c}={human(h * w * c)}"
    else:
        memory = str(batch_free_shape[0])
    return f"{label}: [{hwc}] memory: {memory} params: {weights}"


def cs231n_vgg16() -> list[Report]:
    a = _analysis("vgg16")
    rows = a.rows()
    shapes = a.model.shapes(a.batch)
    # the slide lists the input and every conv, max pool and FC output; torchvision's VGG adds an
    # adaptive average pool after pool5 (7x7 in, 7x7 out at 224), which the slide does not have
    named = lecture_names(rows)
    stored = [r for r in rows if r["activation_bytes"] and (not r["inputs"] or r["name"] in named)]
    extra = [r for r in rows if r["activation_bytes"] and r not in stored]
    if len(stored) != len(published.CS231N_VGG16):
        raise AssertionError("the zoo's vgg16 no longer lines up with the CS231n table")
    table, lines = [], []
    elements_sum = 0
    weights_sum = 0
    for (label, hwc, mem_slide, params_slide), r in zip(published.CS231N_VGG16, stored):
        shape = r["output_shape"][1:]
        elements = r["activations"]
        elements_sum += elements
        weights_sum += r["weight_params"]
        if r["params"]:
            weights = f"{_weight_formula(a.model, r['name'], shapes)} = {thousands(r['weight_params'])}"
        else:
            weights = "0"
        lines.append(_lecture_line(label, r, shape, weights))
        table.append([label, hwc, mem_slide, thousands(elements), params_slide.split(" = ")[-1],
                      thousands(r["weight_params"]), thousands(r["bias_params"]), thousands(r["params"])])
    t = a.totals
    relu_elements = sum(r["activations"] for r in rows if r["family"] == ACTIVATION)  # VGG's are ReLUs
    fwd_bytes = t["forward_memory_bytes"]
    size = itemsize(a.dtype)
    lines += [f"TOTAL memory: {human(elements_sum)} * {size} bytes ~= {human_bytes(elements_sum * size)} / image "
              "(only forward! ~*2 for bwd)",
              f"TOTAL params: {human(weights_sum)} parameters ({thousands(weights_sum)} weights; "
              f"{thousands(t['params'])} with the {thousands(t['bias_params'])} biases)"]
    headers = ["Layer", "Output", "memory (slide)", "memory (exact)", "params (slide)", "weights (exact)",
               "biases", "params with biases"]
    peak = t["peak_activation_bytes"]
    at_peak = next(r["name"] for r in rows if r["live_bytes"] == peak)
    train = analyze(a.model, optimizer="sgd").totals["training_memory_bytes"]
    b8 = analyze(a.model, batch=8).totals
    text = "\n".join([
        "# The CS231n VGG-16 table, recomputed", "",
        f"Source: {published.CS231N_SOURCE}. Computed by archstat from the zoo model `vgg16` (float32, batch 1).",
        "", "## In the lecture's own format, every number computed", "", "```", *lines, "```", "",
        "## Line by line against the slide", "",
        md_table(headers, ["<", "<", "<", ">", ">", ">", ">", ">"], table, None), "",
        "Every output size and every weight count on the slide is right; its memory figures are "
        "rounded loosely (150K for 150,528; 3.2M for 3,211,264) and its parameter column leaves out "
        "the biases, as the 2017 slide says (\"not counting biases\").", "",
        "## Reconciling the slide's totals", "",
        f"- **\"{published.CS231N_TOTAL_MEMORY}\".** The slide's own rows add up to "
        f"**{thousands(elements_sum)} activations** (input plus every conv, pool and FC output), "
        f"which at {size} bytes is {thousands(elements_sum * size)} bytes = **{human_bytes(elements_sum * size)}** "
        f"({elements_sum * size / MiB:.1f} MiB), not 24M and 96 MB: the 24M total is not the sum of the "
        f"table above it ({100 * (published.CS231N_TOTAL_MEMORY_ELEMENTS - elements_sum) / elements_sum:.0f}% "
        "more). Counting the ReLU outputs as separate tensors (not in place) would give "
        f"{thousands(elements_sum + relu_elements)} elements ({human(elements_sum + relu_elements)}), "
        "which is not 24M either; we found no reading of the table that gives 24M. The course notes now "
        "print \"~= 93MB\" for the same 24M * 4 bytes. archstat's `forward_memory_bytes` is the sum of "
        "the stored outputs: for torchvision's VGG-16 the slide's rows plus "
        + ", ".join(f"`{r['name']}` ({r['type']}, {thousands(r['activations'])} elements)" for r in extra)
        + f", which the slide does not have: {thousands(fwd_bytes)} bytes.",
        f"- **\"{published.CS231N_TOTAL_PARAMS}\".** The weights on the slide sum to "
        f"{thousands(weights_sum)}; adding the {thousands(t['bias_params'])} biases (one per filter "
        f"or FC unit: 64+64+128+128+256x3+512x6+4096+4096+1000) gives **{thousands(t['params'])}**, "
        "exactly torchvision's `num_params` for vgg16. Both round to 138M.",
        f"- **\"only forward! ~*2 for bwd\".** Keeping every activation and its gradient doubles the "
        f"figure: {human_bytes(2 * fwd_bytes)} per image. archstat's fuller training estimate (kept "
        f"activations + weights + weight gradients + the largest activation gradient, plain SGD) is "
        f"{human_bytes(train)} at batch 1, dominated by the weights ({human_bytes(t['param_bytes'])} "
        "each for weights and gradients).",
        f"- **What inference really needs.** Freeing each tensor after its last reader (ReLU in place), "
        f"the largest live set is **{human_bytes(peak)}** ({thousands(peak)} bytes) per image, reached "
        f"while `{at_peak}` runs with its input and output alive together: {fwd_bytes / peak:.1f}x less "
        f"than the sum. At "
        f"batch 8 the sum is {human_bytes(b8['forward_memory_bytes'])} and the peak "
        f"{human_bytes(b8['peak_activation_bytes'])}.", ""])
    return [Report("cs231n_vgg16.md", "CS231n VGG-16 table",
                   "the lecture's per-layer memory/params table recomputed and its totals reconciled", text=text)]


def _weight_formula(model, name: str, shapes) -> str:
    """The slide's way of writing a weight count, from the layer's weight shape:
    (kH*kW*C_in)*C_out for a convolution, fan_in*fan_out for a fully connected layer, with a
    flattened image written as H*W*C, as the slide does (7*7*512*4096)."""
    layer = model.layer(name)
    weight = layer.type.param_shapes([shapes[src] for src in layer.inputs], layer.attrs)["weight"]
    if len(weight) == 4:
        c_out, c_in, kh, kw = weight
        return f"({kh}*{kw}*{c_in})*{c_out}"
    fan_out, fan_in = weight
    reader = model.layer(layer.inputs[0])
    if reader.inputs:
        before = shapes[reader.inputs[0]]
        if len(before) == 4 and before[1] * before[2] * before[3] == fan_in:
            return f"{before[2]}*{before[3]}*{before[1]}*{fan_out}"
    return f"{fan_in}*{fan_out}"


# -------------------------------------------------------------------------- AlexNet

def alexnet() -> list[Report]:
    one = _analysis("alexnet_lecture")
    two = _analysis("alexnet_2012")
    two_rows = {r["name"]: r for r in two.rows()}
    lecture = list(published.ALEXNET_LECTURE)
    rows = [r for r in one.rows() if r["activation_bytes"]]  # the lecture lists the tensors stored
    if len(rows) != len(lecture):
        raise AssertionError("alexnet.yaml no longer lines up with the lecture's layer list")
    table = []
    for (volume, desc), r in zip(lecture, rows):
        shape = r["output_shape"][1:]
        computed = "x".join(str(v) for v in (shape[1:] + shape[:1])) if len(shape) == 3 else str(shape[0])
        t2 = two_rows.get(r["name"], {})
        table.append([desc, volume, computed, "yes" if computed == volume else "**no**", thousands(r["activations"]),
                      thousands(r["params"]) if r["params"] else "-",
                      thousands(t2["params"]) if t2.get("params") else "-",
                      human(r["macs"]) if r["macs"] else "-"])
    t1, t2 = one.totals, two.totals
    conv_macs = sum(r["macs"] for r in one.rows() if r["family"] == CONV)
    fc_params = sum(r["params"] for r in one.rows() if r["family"] == FC)
    table.append(["**Total**", "", "", "", thousands(sum(r["activations"] for r in rows)),
                  f"**{thousands(t1['params'])}**", f"**{thousands(t2['params'])}**", f"**{human(t1['macs'])}**"])
    headers = ["Lecture line", "Volume (lecture)", "Volume (archstat)", "match", "Activations",
               "Params, one tower", "Params, 2012 groups", "MACs"]
    text = "\n".join([
        "# AlexNet, layer by layer", "",
        f"Source: {published.ALEXNET_SOURCE}. Computed by archstat from `alexnet_lecture` (`specs/alexnet.yaml`, "
        "the lecture's single-tower network, 227x227x3 input) and `alexnet_2012` (the paper's "
        "two-GPU connectivity: groups 2 on conv2, conv4 and conv5).", "",
        md_table(headers, ["<", ">", ">", "^", ">", ">", ">", ">"], table, None), "",
        f"- Single tower: **{thousands(t1['params'])}** parameters ({human(t1['params'])}), "
        f"{thousands(t1['macs'])} MACs ({human(t1['macs'])}); the paper's two-GPU layout has "
        f"**{thousands(t2['params'])}** ({human(t2['params'])}; the paper says \"60 million\"), "
        f"{human(t2['macs'])} MACs: grouping halves the weights and MACs of conv2, conv4 and conv5.",
        f"- The convolutions do {100 * conv_macs / t1['macs']:.0f}% of the multiply-accumulates but hold "
        f"only {100 * (t1['params'] - fc_params) / t1['params']:.0f}% of the parameters; the three FC "
        f"layers hold {100 * fc_params / t1['params']:.0f}% (fc6 alone 37.7 M). See "
        "`memory_vs_params.png`.",
        "- Some transcriptions of the slide add a \"[13x13x256] MAX POOL3: 3x3 filters at stride 1, pad 1\" "
        "line between CONV4 and CONV5; it is not on the CS231n slide and contradicts CONV4's "
        "13x13x384 output, so it is left out here.",
        "- The paper's 224x224 input does not give its own 55x55 conv1 output with an 11x11 filter at "
        "stride 4 and no padding: (224 - 11) / 4 + 1 = 54.25. With 227: (227 - 11) / 4 + 1 = 55.", ""])
    return [Report("alexnet.md", "AlexNet layer table",
                   "the lecture's AlexNet: volumes, parameters (one tower and 2012 groups), MACs", text=text)]


def lecture_names(rows: list[dict[str, Any]]) -> dict[str, str]:
    """The lecture's names for a plain chain of convs, pools and FC layers (VGG-16's
    features.0 is conv1_1, features.4 pool1, classifier.0 fc6), by counting along the chain:
    a pool that shrinks the map closes a stage, and the FC layers continue the numbering after the last conv."""
    names, stage, conv, fc, size = {}, 1, 0, 0, None
    for r in rows:
        shape = r["output_shape"]
        if r["family"] == CONV:
            conv += 1
            names[r["name"]] = f"conv{stage}_{conv}"
        elif r["family"] == POOL and len(shape) == 4 and size is not None and shape[2:] < size:
            names[r["name"]] = f"pool{stage}"   # a pool that shrinks the map closes a stage
            stage, conv = stage + 1, 0
        elif r["family"] == FC:
            fc += 1
            names[r["name"]] = f"fc{stage + fc - 1}"
        if len(shape) == 4:
            size = shape[2:]
    return names


def memory_vs_params() -> list[Report]:
    models, data = [], []
    for title, spec in (("AlexNet", "alexnet_lecture"), ("VGG-16", "vgg16")):
        a = _analysis(spec)
        rows = a.rows()
        lecture = lecture_names(rows) if spec == "vgg16" else {}
        layers = [{"name": r["name"] + (f" ({lecture[r['name']]})" if r["name"] in lecture else ""),
                   "family": r["family"], "memory": r["activation_bytes"], "params": r["params"]}
                  for r in rows if r["activation_bytes"] or r["params"]]
        models.append({"title": title, "layers": layers})
        data += [[title, l["name"], l["family"], l["memory"], l["params"]] for l in layers]

    def draw(path: Path) -> None:
        from .plots import memory_and_params
        memory_and_params(models, path)

    return [Report("memory_vs_params.png", "Memory vs parameters per layer",
                   "the lecture's claim, drawn: most memory in the early conv layers, most parameters in FC",
                   draw=draw),
            Report("memory_vs_params.csv", "Memory vs parameters (data)", "the numbers behind the figure",
                   text=_csv_text(["model", "layer", "family", "activation_bytes", "params"], data))]


# ------------------------------------------------------------------ why convolution

def why_convolution() -> list[Report]:
    c, h, w, n = 3, 224, 224, 64
    k = 3
    spec = {"name": "why-convolution", "input": [c, h, w], "layers": [
        {"name": "fully_connected", "type": "flatten"},
        {"name": "fc", "type": "linear", "out_features": n * h * w},
        {"name": "locally_connected", "type": "locally_connected2d", "out_channels": n, "kernel_size": k,
         "padding": 1, "inputs": "input"},
        {"name": "convolution", "type": "conv2d", "out_channels": n, "kernel_size": k, "padding": 1,
         "inputs": "input"}]}
    rows = {r["name"]: r for r in analyze(spec).rows()}
    fc, lc, conv = rows["fc"], rows["locally_connected"], rows["convolution"]
    m_in, n_out = c * h * w, n * h * w
    table = [
        ["Fully connected", "M*N + N", f"{m_in:,}*{n_out:,} + {n_out:,}", thousands(m_in * n_out + n_out),
         thousands(fc["params"]), thousands(fc["macs"])],
        ["Locally connected", "(K1*K2*C + 1) * N per location", f"({k}*{k}*{c} + 1) * {n} * {h}*{w}",
         thousands((k * k * c + 1) * n * h * w), thousands(lc["params"]), thousands(lc["macs"])],
        ["Convolution", "N * (K1*K2*C + 1)", f"{n} * ({k}*{k}*{c} + 1)", thousands(n * (k * k * c + 1)),
         thousands(conv["params"]), thousands(conv["macs"])],
    ]
    text = "\n".join([
        "# Why convolution: parameters of three layers with the same input and output", "",
        f"The lecture's opening argument: map a {h}x{w}x{c} image to {n} feature maps of {h}x{w}. "
        "Formulas from the lecture (fully connected M*N + N; locally connected (K1xK2 + 1) per "
        "output node, times C input channels; convolution N*(K1*K2*C + 1) with shared weights); the "
        "last two columns are computed by archstat from specs of the three layers "
        f"({k}x{k} windows, padding 1).", "",
        md_table(["Layer", "Lecture formula", "Here", "By the formula", "archstat params", "archstat MACs"],
                 ["<", "<", "<", ">", ">", ">"], table, None), "",
        f"- Restricting each output to a {k}x{k} window (locality) divides the parameters by "
        f"{fc['params'] / lc['params']:,.0f}.",
        f"- Sharing those weights across the {h * w:,} locations (stationarity) divides them by another "
        f"{lc['params'] / conv['params']:,.0f}: {thousands(conv['params'])} parameters in all.",
        "- Locally connected and convolutional layers do the same arithmetic "
        f"({human(conv['macs'])} MACs): weight sharing saves parameters, not operations. The fully "
        f"connected layer would need {human(fc['macs'])} MACs and {human_bytes(fc['param_bytes'])} of "
        "float32 weights.", ""])
    return [Report("why_convolution.md", "Why convolution",
                   "parameters of fully connected, locally connected and convolutional layers", text=text)]


# --------------------------------------------------------------------------- driver
