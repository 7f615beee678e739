"""Peer tools' conventions: archstat computes each tool's number from its layer facts, and it
must equal what the tool itself says.

Three levels: the totals measured with the tools (tests/data/peer_tools.csv, 12 conventions x
68 torchvision CNNs, checked on every run); small hand-derived cases for the rules that
are easy to get wrong (double counting, folding, what a module-hooking tool cannot see); and,
where torch, torchvision and the tools are installed (CI), the tools run live on torchvision's
models and must agree exactly.
"""
from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import os
import warnings
from pathlib import Path

import pytest

import archstat
from archstat import ArchstatError
from archstat import conventions as C
from archstat.cli import main

DATA = Path(__file__).parent / "data" / "peer_tools.csv"


def _measured() -> dict[str, dict[str, int]]:
    rows = list(csv.DictReader(line for line in DATA.open() if not line.startswith("#")))
    return {r.pop("model"): {k: int(v) for k, v in r.items()} for r in rows}


MEASURED = _measured()
#: the models the issue names; the live check runs on these
REQUIRED = ("alexnet", "vgg16", "googlenet", "inception_v3", "resnet50", "resnet152", "mobilenet_v2",
            "densenet121")


@pytest.fixture(scope="module")
def analyses():
    return {name: archstat.analyze(name) for name in MEASURED}


@pytest.mark.parametrize("convention", sorted(next(iter(MEASURED.values()))))
def test_every_measured_total_is_reproduced_exactly(analyses, convention):
    got = {name: C.total(analyses[name], convention) for name in MEASURED}
    want = {name: row[convention] for name, row in MEASURED.items()}
    assert got == want


def test_the_issue_s_resnet50_numbers():
    # the numbers users compare (issue 16): torchinfo, fvcore, ptflops, thop, calflops,
    # FlopCounterMode, onnx-tool on torchvision's ResNet-50, and the exact MACs
    a = archstat.analyze("resnet50")
    assert a.totals["macs"] == 4_089_184_256
    assert {n: C.total(a, n) for n in ("torchinfo", "fvcore", "ptflops", "thop", "calflops-flops",
                                        "flopcountermode", "onnx-tool")} == {
        "torchinfo": 4_089_238_376, "fvcore": 4_111_512_576, "ptflops": 4_132_436_968, "thop": 4_133_742_592,
        "calflops-flops": 8_211_108_352, "flopcountermode": 8_178_368_512, "onnx-tool": 4_117_342_184}


def test_every_convention_has_a_sourced_rule_per_entry():
    for conv in C.all_conventions().values():
        assert conv.reason and conv.unit and conv.version and conv.entry
        for key, rule in conv.rules.items():
            assert rule.__doc__ and getattr(rule, "source", ""), (conv.name, key)


# ------------------------------------------------------------------ hand-derived small cases

def _tiny(call_relu: str = "module", **extra):
    """conv 3->4 3x3 pad 1 (bias) + batch norm + relu + 2x2 max pool on 3x8x8, then a linear."""
    return archstat.load({"name": "tiny", "input": [3, 8, 8], "layers": [
        {"name": "conv", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"name": "bn", "type": "batch_norm2d"},
        {"name": "relu", "type": "relu", "call": call_relu},
        {"name": "pool", "type": "max_pool2d", "kernel_size": 2},
        {"name": "flat", "type": "flatten"},
        {"name": "fc", "type": "linear", "out_features": 10}, *extra.get("more", [])]})


def _by_name(model, convention):
    a = archstat.analyze(model)
    return dict(zip(a._columns["name"], C.counts(a, convention)))


def test_hand_counted_tiny_network():
    # conv: 4x8x8 outputs x 27 taps = 6912 MACs, 256 outputs for the bias; bn/relu: 256
    # elements; pool: 4x4x4 = 64 outputs of 256 inputs; fc: 64 x 10 = 640 MACs, 10 biases
    m = _tiny()
    assert _by_name(m, "torchinfo") == {"input": 0, "conv": 6912 + 256, "bn": 8, "relu": 0, "pool": 0, "flat": 0,
                                         "fc": 650}
    assert _by_name(m, "fvcore") == {"input": 0, "conv": 6912, "bn": 512, "relu": 0, "pool": 0, "flat": 0,
                                      "fc": 640}
    # ptflops: ReLU and the max pool counted twice (module hook + patched F.*)
    assert _by_name(m, "ptflops") == {"input": 0, "conv": 6912 + 256, "bn": 512, "relu": 512, "pool": 512,
                                       "flat": 0, "fc": 650}
    # thop: 4 per batch-norm element; ReLU and max pool zero
    assert _by_name(m, "thop") == {"input": 0, "conv": 6912, "bn": 1024, "relu": 0, "pool": 0, "flat": 0,
                                    "fc": 640}
    # torchscan: an int kernel 2 is not squared: (2 - 1) per output; flops: conv 2*27-1+1 per output
    assert _by_name(m, "torchscan-macs")["pool"] == 64
    assert _by_name(m, "torchscan-flops")["conv"] == 256 * 54
    assert _by_name(m, "torchscan-flops")["bn"] == 2 * 4 + 4 * 256
    # onnx-tool: the batch norm folds into the conv (which already has a bias): 0 there
    tool = _by_name(m, "onnx-tool")
    assert tool["bn"] == 0 and tool["conv"] == 6912 + 256 and tool["pool"] == 64 * 4 and tool["relu"] == 256
    # FlopCounterMode training: the conv reads the image (no input gradient): forward + weight
    # gradient; the linear: forward + input + weight gradients
    train = _by_name(m, "flopcountermode-train")
    assert train["conv"] == 2 * 6912 * 2 and train["fc"] == 2 * 640 * 3


def test_a_function_call_is_invisible_to_tools_that_hook_modules():
    module, function = _tiny("module"), _tiny("function")
    assert _by_name(module, "ptflops")["relu"] == 512 and _by_name(function, "ptflops")["relu"] == 256
    assert _by_name(module, "torchscan-flops")["relu"] == 256 and _by_name(function, "torchscan-flops")["relu"] == 0
    # calflops and fvcore see calls, not modules
    assert _by_name(module, "calflops-flops")["relu"] == _by_name(function, "calflops-flops")["relu"] == 256


def test_a_batch_norm_after_a_concat_does_not_fold():
    m = archstat.load({"input": [3, 8, 8], "layers": [
        {"name": "a", "type": "conv2d", "out_channels": 2, "kernel_size": 1, "bias": False},
        {"name": "b", "type": "conv2d", "out_channels": 2, "kernel_size": 1, "bias": False, "inputs": "input"},
        {"name": "cat", "type": "concat", "inputs": ["a", "b"]},
        {"name": "bn", "type": "batch_norm2d"}]})
    tool = _by_name(m, "onnx-tool")
    assert tool["bn"] == 31 * 4 * 64 and tool["a"] == 2 * 64 * 3   # no folded bias on the convs


def test_grouped_conv_weight_gradients_as_torch_counts_them():
    m = archstat.load({"input": [8, 4, 4], "layers": [
        {"name": "stem", "type": "conv2d", "out_channels": 8, "kernel_size": 1},
        {"name": "dw", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1, "groups": 8}]})
    macs = 8 * 16 * 9
    # torch 2.14.1's FlopCounterMode counts a depthwise conv's weight gradient 8 (groups) times over
    assert _by_name(m, "flopcountermode-train")["dw"] == 2 * macs * (1 + 1 + 8)
    # archstat's own backward: input and weight gradients, 2 FLOPs per MAC each, and a bias gradient
    a = archstat.analyze(m)
    backward = dict(zip(a._columns["name"], a._columns["backward_flops"]))
    assert backward["dw"] == 2 * macs + 2 * macs + 8 * 16


def test_keras_counts_running_statistics_as_weights():
    a = archstat.analyze("resnet50")
    assert C.total(a, "keras") == a.totals["params"] + a.totals["buffers"] == 25_557_032 + 53_120


def test_unknown_convention_is_a_clear_error():
    with pytest.raises(ArchstatError, match="did you mean 'fvcore'"):
        C.get("fvcorre")


# ------------------------------------------------------------------ the training step

@pytest.mark.parametrize("name", ["alexnet", "vgg16", "resnet50", "densenet121", "inception_v3", "squeezenet1_0"])
def test_backward_of_conv_and_linear_matches_flopcountermode(name):
    # without grouped convs, FlopCounterMode's forward+backward is archstat's conv and linear
    # forward MAC FLOPs plus their backward, bias gradients left out (torch counts sums as 0)
    # and the sums of a gradient over several readers (DenseNet's concatenations), which torch
    # does not count either
    a = archstat.analyze(name)
    total = 0
    for row in a.rows():
        if row["macs"] and not row["training_only"]:
            sums = max(0, a.model.graph.out_degree(row["name"]) - 1) * row["activations"]
            total += (2 * row["macs"] + row["backward_flops"] - (row["activations"] if row["bias_params"] else 0)
                      - sums)
    assert total == MEASURED[name]["flopcountermode-train"]


def test_training_step_flops_by_rule():
    # the tiny network, by hand: the conv reads the image (no input gradient): weight gradient
    # 2 x 6,912 + bias gradient 256; batch norm 10 per element (its input needs a gradient);
    # ReLU its forward again, 1 per element; max pool 1 per output; flatten 0; the linear
    # input and weight gradients 2 x 640 each + 10 for its bias
    a = archstat.analyze(_tiny(), optimizer="adam")
    backward = dict(zip(a._columns["name"], a._columns["backward_flops"]))
    assert backward == {"input": 0, "conv": 2 * 6912 + 256, "bn": 10 * 256, "relu": 256, "pool": 64,
                        "flat": 0, "fc": 2 * 640 * 2 + 10}
    assert dict(zip(a._columns["name"], a._columns["needs_grad"])) == {
        "input": False, "conv": True, "bn": True, "relu": True, "pool": True, "flat": True, "fc": True}
    t = a.totals
    assert t["backward_flops"] == sum(backward.values())
    # forward (every layer) + backward + adam's 12 FLOPs per parameter (conv 108 + 4, bn 8, fc 650)
    assert t["training_step_flops"] == t["flops"] + t["backward_flops"] + 12 * (112 + 8 + 650)


def test_backward_of_merges_and_of_a_gradient_read_twice():
    # a squeeze-excitation gate and a residual: x (8x4x4) -> conv -> relu -> gate (mean, linear
    # map as a 1x1 conv, sigmoid) -> mul -> add with relu's output
    m = archstat.load({"input": [8, 4, 4], "layers": [
        {"name": "conv", "type": "conv2d", "out_channels": 8, "kernel_size": 1, "bias": False},
        {"name": "relu", "type": "relu"},
        {"name": "pool", "type": "global_avg_pool2d"},
        {"name": "fc", "type": "conv2d", "out_channels": 8, "kernel_size": 1, "bias": False},
        {"name": "gate", "type": "sigmoid"},
        {"name": "mul", "type": "mul", "inputs": ["relu", "gate"]},
        {"name": "add", "type": "add", "inputs": ["mul", "relu"]}]})
    a = archstat.analyze(m)
    b = dict(zip(a._columns["name"], a._columns["backward_flops"]))
    n = 8 * 16
    # mul: each input's gradient is dy times the other (128 multiplies each); the gate's is
    # also summed over the 16 positions it was broadcast along (128 - 8 adds)
    assert b["mul"] == n + (n + n - 8)
    assert b["add"] == 0                       # both gradients are dy itself
    # relu's output is read by pool, mul and add: its gradient sums three (2 x 128 adds)
    relu_forward = a._columns["flops"][a._columns["name"].index("relu")]
    assert b["relu"] == relu_forward + 2 * n


def test_a_module_called_twice_has_its_gradients_counted_at_each_call():
    m = archstat.load({"input": [6], "layers": [
        {"name": "fc", "type": "linear", "out_features": 6},
        {"name": "again", "type": "linear", "out_features": 6, "shares": "fc"}]})
    a = archstat.analyze(m)
    assert a.totals["params"] == 42                      # one set of weights
    assert dict(zip(a._columns["name"], a._columns["backward_flops"])) == {
        "input": 0, "fc": 2 * 36 + 6, "again": 2 * 2 * 36 + 6}
    # the tools run the module twice: its MACs count at both calls, its parameters once
    assert C.total(a, "torchinfo") == 2 * 42 and C.total(a, "keras") == 42


# ------------------------------------------------------------------ the command line

def _run(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_conventions_table_lists_every_tool_with_its_ratio():
    code, out, _ = _run("conventions", "resnet50")
    assert code == 0
    for conv in C.all_conventions():
        assert f"\n{conv} " in out
    assert "4,132,436,968" in out and "1.011" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_explain_shows_the_rows_that_make_the_difference():
    code, out, _ = _run("conventions", "resnet50", "--explain", "ptflops")
    assert code == 0
    assert "+43,252,712" in out                  # 4,132,436,968 - 4,089,184,256
    assert "relu" in out and "19,217,408" in out  # 2 x 9,608,704: hook and patched F.relu
    assert "ptflops/pytorch_ops.py" in out
    data = json.loads(_run("conventions", "resnet50", "--explain", "ptflops", "-f", "json")[1])
    assert sum(g["difference"] for g in data["groups"]) == 43_252_712


def test_report_with_a_convention_adds_its_column_and_total():
    code, out, _ = _run("report", "resnet50", "--convention", "fvcore", "-f", "json")
    data = json.loads(out)
    assert data["totals"]["convention"]["total"] == 4_111_512_576
    assert data["totals"]["convention"]["unit"] == "flops"
    assert sum(row["convention"] for row in data["layers"]) == 4_111_512_576
    code, out, _ = _run("report", "resnet18", "--convention", "thop")
    header = next(line for line in out.splitlines() if line.startswith("Layer "))
    assert header.index("FLOPs") < header.index("thop MACs") < header.index("Activations")
    total = C.total(archstat.analyze("resnet18"), "thop")
    assert any(line.startswith("thop ") and f"{total:,} MACs (thop 0.1.1" in line for line in out.splitlines())


@pytest.mark.parametrize("model", ["resnet50", "googlenet", "convnext_tiny", "bn_alexnet"])
def test_every_explanation_adds_up_and_fits_a_terminal(model):
    a = archstat.analyze(model)
    for conv in C.all_conventions().values():
        data = json.loads(_run("conventions", model, "--explain", conv.name, "-f", "json")[1])
        base = a.totals["params"] if conv.kind == "params" else a.totals["macs"]
        assert sum(g["tool"] for g in data["groups"]) == data["convention"]["total"] == C.total(a, conv)
        assert sum(g["archstat"] for g in data["groups"]) == base, conv.name
        code, out, _ = _run("conventions", model, "--explain", conv.name)
        assert code == 0 and max(map(len, out.splitlines())) <= 100, conv.name
    assert max(map(len, _run("conventions", model)[1].splitlines())) <= 100


def test_conventions_refuse_a_format_they_do_not_write(tmp_path):
    code, _, err = _run("conventions", "resnet18", "-o", str(tmp_path / "t.html"))
    assert code == 2 and "does not write html" in err and not (tmp_path / "t.html").exists()


def test_unknown_convention_on_the_command_line_exits_2():
    code, out, err = _run("conventions", "resnet50", "--explain", "fvcorre")
    assert code == 2 and not out
    assert "unknown convention 'fvcorre'" in err and "did you mean 'fvcore'" in err


# ------------------------------------------------------------------ the tools themselves

def _tool_totals(name: str, model, shape) -> dict[str, int]:
    """Run every installed tool on a torchvision model as the measured table says."""
    import torch
    out: dict[str, int] = {}
    x = torch.randn(1, *shape)
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import torchinfo
            out["torchinfo"] = int(torchinfo.summary(model, input_size=(1, *shape), verbose=0).total_mult_adds)
        except ImportError:
            pass
        try:
            from fvcore.nn import FlopCountAnalysis
            fca = FlopCountAnalysis(model, x)
            fca.unsupported_ops_warnings(False)
            fca.uncalled_modules_warnings(False)
            out["fvcore"] = int(fca.total())
        except ImportError:
            pass
        try:
            import thop
            out["thop"] = int(thop.profile(copy.deepcopy(model), inputs=(x,), verbose=False)[0])
        except ImportError:
            pass
        try:
            import ptflops
            for conv, backend in (("ptflops", "pytorch"), ("ptflops-aten", "aten")):
                out[conv] = int(ptflops.get_model_complexity_info(
                    copy.deepcopy(model), tuple(shape), as_strings=False, print_per_layer_stat=False,
                    backend=backend)[0])
        except ImportError:
            pass
        try:
            import torchscan
            overall = torchscan.crawl_module(copy.deepcopy(model), tuple(shape))["totals"]
            for conv, key in (("torchscan-macs", "macs"), ("torchscan-flops", "module_flops")):
                value = overall[key]
                out[conv] = int(value["value"] if value["value"] is not None else value["known_value"])
        except ImportError:
            pass
        try:
            from calflops import calculate_flops
            flops, macs, _ = calculate_flops(model=copy.deepcopy(model), input_shape=(1, *shape),
                                             output_as_string=False, print_results=False, print_detailed=False)
            out["calflops-flops"], out["calflops-macs"] = int(flops), int(macs)
        except ImportError:
            pass
        from torch.utils.flop_counter import FlopCounterMode
        with FlopCounterMode(display=False) as fcm:
            model(x)
        out["flopcountermode"] = fcm.get_total_flops()
        model.zero_grad(set_to_none=True)
        with FlopCounterMode(display=False) as fcm:
            model(x).sum().backward()
        out["flopcountermode-train"] = fcm.get_total_flops()
    return out


def _onnx_tool_total(model, shape, folder) -> int | None:
    try:
        import onnx_tool
    except ImportError:
        return None
    import torch
    path = str(folder / "model.onnx")
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.randn(1, *shape), path, opset_version=17, dynamo=False)
        graph = onnx_tool.Model(path).graph
        graph.graph_reorder_nodes()
        graph.shape_infer(None)
        graph.profile()
    return int(round(graph.macs[0]))


@pytest.mark.torchvision
@pytest.mark.parametrize("name", REQUIRED)
def test_the_tools_themselves_agree(name, tmp_path):
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    kw = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
    model = tv.models.get_model(name, weights=None, **kw).eval()
    a = archstat.analyze(name)
    measured = _tool_totals(name, model, a.input_shape)
    onnx_total = _onnx_tool_total(model, a.input_shape, tmp_path)
    if onnx_total is not None:
        measured["onnx-tool"] = onnx_total
    if os.environ.get("ARCHSTAT_EXPECT_PEER_TOOLS"):   # CI installed them: every one must have run
        assert set(measured) == set(MEASURED[name]), set(MEASURED[name]) - set(measured)
    assert {k: C.total(a, k) for k in measured} == measured
    assert {k: MEASURED[name][k] for k in measured} == measured   # and the pinned table is the tools' own


def test_ptflops_divides_what_its_hooks_count_by_the_batch_but_not_its_patched_functions():
    # batch 4: the conv's hook (7,168 x 4) and the batch norm's (512 x 4) come out per sample;
    # the ReLU and pool modules add their hook per sample (256) and the patched F.* whole (1,024)
    a = archstat.analyze(_tiny(), batch=4)
    got = dict(zip(a._columns["name"], C.counts(a, "ptflops")))
    assert got == {"input": 0, "conv": 6912 + 256, "bn": 512, "relu": 256 + 1024, "pool": 256 + 1024,
                   "flat": 0, "fc": 650}
