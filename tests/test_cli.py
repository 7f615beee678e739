"""The command line: report in every format, compare, layers, --help, golden reports,
and the torchinfo habits (columns sum to the totals; totals scale with the batch).

Regenerate the golden files after an intended change of the report layout with::

    ARCHSTAT_UPDATE_GOLDEN=1 python -m pytest tests/test_cli.py
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest

import archstat
from archstat.analysis import ADDITIVE, COLUMNS, STATE_COLUMNS, WORK_COLUMNS
from archstat.layers import all_types

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("ARCHSTAT_UPDATE_GOLDEN") == "1"

# LeNet-5 as in LeCun et al. 1998 (tanh, average pooling, full C3 connections), PyTorch-style.
LENET = """\
name: LeNet-5
description: LeCun et al. 1998, with tanh and average pooling
input: [1, 32, 32]
layers:
  - {name: c1, type: conv2d, out_channels: 6, kernel_size: 5}
  - {type: tanh}
  - {name: s2, type: avg_pool2d, kernel_size: 2}
  - {name: c3, type: conv2d, out_channels: 16, kernel_size: 5}
  - {type: tanh}
  - {name: s4, type: avg_pool2d, kernel_size: 2}
  - {type: flatten}
  - {name: f5, type: linear, out_features: 120}
  - {type: tanh}
  - {name: f6, type: linear, out_features: 84}
  - {type: tanh}
  - {name: out, type: linear, out_features: 10}
"""
# params: c1 6*(1*5*5)+6 = 156; c3 16*(6*5*5)+16 = 2,416; f5 400*120+120 = 48,120;
#         f6 120*84+84 = 10,164; out 84*10+10 = 850                        -> 61,706
LENET_PARAMS = 156 + 2416 + 48120 + 10164 + 850
# MACs: c1 6*28*28*25 = 117,600; c3 16*10*10*150 = 240,000; f5 48,000; f6 10,080; out 840 -> 416,520
LENET_MACS = 117600 + 240000 + 48000 + 10080 + 840
# FLOPs: convs and linears 2*MACs + one bias add per output; tanh 5/element; avg pool 2x2 4/output
#   c1 235,200+4,704; tanh 5*4,704; s2 4*1,176; c3 480,000+1,600; tanh 5*1,600; s4 4*400;
#   f5 96,000+120; tanh 600; f6 20,160+84; tanh 420; out 1,680+10          -> 878,402
LENET_FLOPS = (239904 + 23520 + 4704 + 481600 + 8000 + 1600 + 96120 + 600 + 20244 + 420 + 1690)
# new activation storage (float32): every output but flatten's (a view), plus the input:
#   1,024 + 2*4,704 + 1,176 + 2*1,600 + 400 + 2*120 + 2*84 + 10 = 15,626 elements * 4 bytes
LENET_ACT_BYTES = 4 * 15626

TINY = {"name": "tiny", "input": [3, 10, 10],
        "layers": [{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}]}
# conv 3->8, 3x3, pad 1 on 3x10x10: params 8*(3*3*3)+8 = 224; MACs 8*10*10*27 = 21,600
BRANCHY = {"name": "branchy", "input": [3, 8, 8], "layers": [
    {"name": "stem", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
    {"name": "act", "type": "relu", "inplace": True},
    {"name": "a", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
    {"name": "b", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "inputs": "act"},
    {"name": "sum", "type": "add", "inputs": ["a", "b"]},
    {"name": "cat", "type": "concat", "inputs": ["sum", "act"]},
    {"name": "bn", "type": "batch_norm2d"},
    {"type": "global_avg_pool2d"}, {"type": "flatten"}, {"type": "dropout"},
    {"type": "linear", "out_features": 3}, {"type": "softmax"}]}
# an auxiliary classifier that runs only in training (as GoogLeNet's and Inception-v3's heads)
AUX = {"name": "aux", "input": [3, 8, 8], "layers": [
    {"name": "stem", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
    {"name": "head.pool", "type": "global_avg_pool2d", "training_only": True},
    {"name": "head.flatten", "type": "flatten", "training_only": True},
    {"name": "head.fc", "type": "linear", "out_features": 3, "training_only": True},
    {"name": "pool", "type": "global_avg_pool2d", "inputs": "stem"},
    {"name": "flatten", "type": "flatten"},
    {"name": "fc", "type": "linear", "out_features": 5}]}


@pytest.fixture
def lenet(write_spec) -> Path:
    return write_spec(LENET, "lenet5.yaml")


def report(cli, *args) -> str:
    code, out, err = cli("report", *args)
    assert (code, err) == (0, ""), err
    return out


# ------------------------------------------------------------------------ formats

def test_report_table(cli, lenet):
    out = report(cli, lenet)
    lines = out.splitlines()
    assert lines[0] == "LeNet-5: input 1x32x32, batch 1, float32"
    assert "61,706" in out and "416,520" in out and "878,402" in out
    c1 = next(line for line in lines if line.startswith("c1 "))
    assert c1.split()[:4] == ["c1", "conv2d", "1x6x28x28", "156"]


def test_report_md(cli, lenet):
    out = report(cli, lenet, "--format", "md")
    assert out.startswith("# LeNet-5\n")
    assert "| c1 | conv2d | 1x6x28x28 | 156 |" in out
    assert "| **Total** |" in out


def test_report_html(cli, lenet):
    out = report(cli, lenet, "-f", "html")
    assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")
    assert "<h1>LeNet-5</h1>" in out and "<table>" in out and "61,706" in out


def test_report_json(cli, lenet):
    data = json.loads(report(cli, lenet, "--format", "json"))
    assert set(data) == {"schema", "archstat_version", "model", "totals", "layers"}
    assert data["schema"] == "archstat.analysis/1" and list(data)[:2] == ["schema", "archstat_version"]
    assert data["model"]["name"] == "LeNet-5" and data["model"]["input_shape"] == [1, 32, 32]
    t = data["totals"]
    assert (t["params"], t["macs"], t["flops"], t["activation_bytes"]) == (
        LENET_PARAMS, LENET_MACS, LENET_FLOPS, LENET_ACT_BYTES)
    # peak live set: while tanh1 runs, c1's and tanh1's outputs (the input was freed after c1):
    # 2 * 6*28*28*4 = 2 * 18,816 = 37,632 bytes
    assert t["peak_activation_bytes"] == 37632
    assert [row["name"] for row in data["layers"]] == [
        "input", "c1", "tanh1", "s2", "c3", "tanh2", "s4", "flatten1", "f5", "tanh3", "f6", "tanh4", "out"]
    for row in data["layers"]:
        assert list(row) == list(COLUMNS)  # the analysis column names, in order
    c3 = data["layers"][4]
    assert (c3["output_shape"], c3["params"], c3["macs"]) == ([1, 16, 10, 10], 2416, 240000)


def test_report_csv_columns_sum_to_totals(cli, lenet):
    rows = list(csv.DictReader(io.StringIO(report(cli, lenet, "--format", "csv"))))
    assert list(rows[0]) == list(COLUMNS)
    assert len(rows) == 13
    totals = json.loads(report(cli, lenet, "--format", "json"))["totals"]
    for key, expected in (("params", LENET_PARAMS), ("macs", LENET_MACS), ("flops", LENET_FLOPS),
                          ("activation_bytes", LENET_ACT_BYTES)):
        assert sum(int(r[key]) for r in rows) == totals[key] == expected


@pytest.mark.parametrize("suffix, fmt", [(".md", "md"), (".csv", "csv"), (".json", "json"),
                                         (".html", "html"), (".txt", "table")])
def test_format_inferred_from_output_suffix(cli, lenet, tmp_path, suffix, fmt):
    target = tmp_path / "sub" / f"lenet{suffix}"
    code, out, err = cli("report", lenet, "-o", target)
    assert (code, out) == (0, "")
    assert err == f"wrote {target}\n"
    assert target.read_text(encoding="utf-8") == report(cli, lenet, "--format", fmt)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left


def test_explicit_format_beats_the_suffix(cli, lenet, tmp_path):
    target = tmp_path / "lenet.md"
    assert cli("report", lenet, "-o", target, "--format", "json")[0] == 0
    assert json.loads(target.read_text())["totals"]["params"] == LENET_PARAMS


# -------------------------------------------------------------- analysis options

def test_batch_scales_counts_not_params(cli, lenet):
    one = json.loads(report(cli, lenet, "-f", "json"))["totals"]
    eight = json.loads(report(cli, lenet, "-f", "json", "--batch", "8"))["totals"]
    assert eight["batch"] == 8
    assert eight["params"] == one["params"] == LENET_PARAMS
    assert eight["macs"] == 8 * LENET_MACS == 3_332_160
    assert eight["activation_bytes"] == 8 * LENET_ACT_BYTES


@pytest.mark.parametrize("dtype, size", [("float16", 2), ("bfloat16", 2), ("float32", 4), ("float64", 8)])
def test_dtype_scales_bytes(cli, lenet, dtype, size):
    t = json.loads(report(cli, lenet, "-f", "json", "--dtype", dtype))["totals"]
    assert t["dtype"] == dtype
    assert t["activation_bytes"] == size * 15626
    assert t["param_bytes"] == size * LENET_PARAMS
    assert t["macs"] == LENET_MACS  # counts do not depend on the dtype


def test_input_override_changes_shapes(cli, lenet):
    data = json.loads(report(cli, lenet, "-f", "json", "--input", "1", "64", "64"))
    shapes = {row["name"]: row["output_shape"] for row in data["layers"]}
    # 64 -5+1-> 60 -/2-> 30 -5+1-> 26 -/2-> 13; flatten 16*13*13 = 2,704
    assert shapes["c1"] == [1, 6, 60, 60] and shapes["s2"] == [1, 6, 30, 30]
    assert shapes["c3"] == [1, 16, 26, 26] and shapes["s4"] == [1, 16, 13, 13]
    assert shapes["flatten1"] == [1, 2704]
    params = {row["name"]: row["params"] for row in data["layers"]}
    assert params["f5"] == 2704 * 120 + 120 == 324_600   # in_features is inferred
    assert data["totals"]["input_shape"] == [1, 64, 64]
    assert report(cli, lenet, "--input", "1", "64", "64").startswith("LeNet-5: input 1x64x64,")


# ------------------------------------------------------------------------ compare

def test_compare_several_specs(cli, lenet, write_spec):
    tiny = write_spec(TINY, "tiny.yaml")
    branchy = write_spec(BRANCHY, "branchy.json")
    code, out, err = cli("compare", lenet, tiny, branchy, "--format", "json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert (data["batch"], data["dtype"]) == (1, "float32")
    rows = {r["model"]: r for r in data["models"]}
    assert list(rows) == ["LeNet-5", "tiny", "branchy"]
    assert (rows["LeNet-5"]["params"], rows["LeNet-5"]["macs"]) == (LENET_PARAMS, LENET_MACS)
    assert (rows["tiny"]["params"], rows["tiny"]["macs"]) == (224, 21600)
    expected = archstat.analyze(archstat.load(BRANCHY)).totals
    assert rows["branchy"]["params"] == expected["params"]
    assert rows["branchy"]["flops"] == expected["flops"]

    code, table, _ = cli("compare", lenet, tiny, branchy, "--batch", "2", "--dtype", "float16")
    assert code == 0
    assert [line.split()[0] for line in table.splitlines()[2:5]] == ["LeNet-5", "tiny", "branchy"]
    assert "batch 2, float16" in table

    rows_csv = list(csv.DictReader(io.StringIO(cli("compare", lenet, tiny, "-f", "csv")[1])))
    assert [int(r["params"]) for r in rows_csv] == [LENET_PARAMS, 224]


def test_compare_marks_accuracies_from_different_providers(cli, write_spec):
    # torchvision's VGG-11 weights score 69.0; the paper's Table 3 gives A-LRN 70.3: side by side
    # the table must say that the two numbers come from different places
    def spec(name, top1, source):
        return write_spec(dict(TINY, name=name, accuracy={"top1": top1, "source": source}), f"{name}.yaml")
    a = spec("a", 69.02, "torchvision 0.29.1 VGG11_Weights meta")
    b = spec("b", 69.93, "torchvision 0.29.1 VGG13_Weights meta")
    c = spec("c", 70.3, "Simonyan & Zisserman 2014, Table 3: top-1 error 29.7%")
    code, out, _ = cli("compare", a, b, c)
    assert code == 0
    assert [line.split()[-2:] for line in out.splitlines()[2:5]] == [["69.0", "[1]"], ["69.9", "[1]"],
                                                                     ["70.3", "[2]"]]
    assert "[1] top-1 from: torchvision 0.29.1 (each model's own entry)" in out
    assert "[2] top-1 from: Simonyan & Zisserman 2014, Table 3: top-1 error 29.7%" in out
    code, out, _ = cli("compare", a, b)                      # one provider: no marks
    assert "[1]" not in out and out.splitlines()[2].split()[-1] == "69.0"
    rows = list(csv.DictReader(io.StringIO(cli("compare", a, c, "-f", "csv")[1])))
    assert [r["top1_source"] for r in rows] == ["torchvision 0.29.1 VGG11_Weights meta",
                                                "Simonyan & Zisserman 2014, Table 3: top-1 error 29.7%"]


# ------------------------------------------------------------------------- layers

def listed_types():
    return [t for name, t in all_types().items() if name != "input"]


def test_layers_lists_every_registered_type_and_rule(cli):
    code, out, err = cli("layers")
    assert (code, err) == (0, "")
    assert max(len(line) for line in out.splitlines()) <= 100          # wrapped for a terminal
    flat = " ".join(out.split())
    for t in listed_types():
        assert f"{t.name}: {t.summary()}" in flat
        assert f"counts: {t.counting_rule()}" in flat
        for f in t.fields:
            assert f.name in out


def test_layers_json_is_generated_from_the_registry(cli):
    doc = json.loads(cli("layers", "--format", "json")[1])
    assert doc["schema"] == "archstat.layer_types/1"
    data = doc["layer_types"]
    assert sorted(d["type"] for d in data) == sorted(t.name for t in listed_types())
    assert data[0]["type"] == "conv2d"                                 # the heavy families first
    data = sorted(data, key=lambda d: [t.name for t in listed_types()].index(d["type"]))
    for entry, t in zip(data, listed_types()):
        assert entry["rule"] == t.counting_rule()
        assert entry["rule"].startswith("MACs")
        assert [f["name"] for f in entry["fields"]] == [f.name for f in t.fields]


def test_layers_md(cli):
    out = cli("layers", "-f", "md")[1]
    for t in listed_types():
        assert f"| `{t.name}` | {t.summary()} | {t.counting_rule()} |" in out
        assert f"## `{t.name}`" in out


# -------------------------------------------------------------------------- --help

def subcommands() -> list[str]:
    import argparse
    from archstat.cli import build_parser
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(action.choices)


def test_every_documented_subcommand_is_there():
    assert {"report", "compare", "layers"} <= set(subcommands())


@pytest.mark.parametrize("argv", [["--help"]] + [[cmd, "--help"] for cmd in subcommands()])
def test_help_shows_examples(argv, capsys):
    from archstat.cli import main
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    assert info.value.code == 0
    assert "examples:" in out and err == ""


def test_no_subcommand_prints_help_and_exits_2(cli):
    code, out, err = cli()
    assert code == 2 and out == "" and "examples:" in err


def test_real_subprocess_report(lenet, archstat_proc):
    proc = archstat_proc("report", lenet.name, "--format", "csv")
    assert (proc.returncode, proc.stderr) == (0, "")
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert sum(int(r["macs"]) for r in rows) == LENET_MACS


# -------------------------------------------------------------------------- golden

@pytest.mark.parametrize("fmt, golden", [("table", "lenet5_table.txt"), ("md", "lenet5.md")])
def test_golden_report(cli, lenet, fmt, golden):
    out = report(cli, lenet, "--format", fmt)
    path = GOLDEN / golden
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(out, encoding="utf-8")
    assert path.exists(), f"missing {path}: run ARCHSTAT_UPDATE_GOLDEN=1 python -m pytest tests/test_cli.py"
    assert out == path.read_text(encoding="utf-8"), (
        f"{fmt} report differs from {path}; if the change is intended, regenerate with "
        "ARCHSTAT_UPDATE_GOLDEN=1 python -m pytest tests/test_cli.py")


# ------------------------------------------------- columns sum to totals; batch scaling

SPECS = {"lenet": LENET, "tiny": TINY, "branchy": BRANCHY, "aux": AUX}


def _load(name, write_spec):
    spec = SPECS[name]
    return archstat.load(write_spec(spec) if isinstance(spec, str) else spec)


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("batch", [1, 3])
def test_every_column_sums_to_its_total(name, batch, write_spec):
    a = archstat.analyze(_load(name, write_spec), batch=batch)
    # the state (parameters, buffers) sums every row; the work (MACs, FLOPs, activations) the
    # rows that run at inference, the training-only rows' going to training_only_macs / _flops
    assert set(ADDITIVE) == set(STATE_COLUMNS) | set(WORK_COLUMNS)
    inference = ~a.layers["training_only"].astype(bool)
    for column in ADDITIVE:
        rows = a.layers[column] if column in STATE_COLUMNS else a.layers[column][inference]
        assert int(rows.sum()) == a.totals[column], column
        assert sum(row[column] for row in a.rows()
                   if column in STATE_COLUMNS or not row["training_only"]) == a.totals[column], column
    for column in ("macs", "flops"):
        assert int(a.layers[column][~inference].sum()) == a.totals[f"training_only_{column}"], column
    assert a.totals["forward_memory_bytes"] == a.totals["activation_bytes"]
    assert a.totals["peak_activation_bytes"] <= a.totals["forward_memory_bytes"]


def test_branchy_numbers_by_hand():
    t = archstat.analyze(archstat.load(BRANCHY)).totals
    # stem 4*27+4 = 112; a 4*4+4 = 20; b 4*36+4 = 148; bn 2*8 = 16 (+16 buffers); fc 3*8+3 = 27
    assert t["params"] == 112 + 20 + 148 + 16 + 27 == 323
    assert t["buffers"] == 16
    # MACs: stem 4*64*27 = 6,912; a 4*64*4 = 1,024; b 4*64*36 = 9,216; fc 8*3 = 24
    assert t["macs"] == 6912 + 1024 + 9216 + 24 == 17176


def test_aux_numbers_by_hand():
    t = archstat.analyze(archstat.load(AUX)).totals
    # stem 4*27+4 = 112; head.fc 4*3+3 = 15; fc 4*5+5 = 25: a training-only head's parameters
    # count (they are trained and stored)
    assert t["params"] == 112 + 15 + 25 == 152
    # MACs: stem 4*64*27 = 6,912; fc 4*5 = 20 at inference; head.fc 4*3 = 12 only in training
    assert t["macs"] == 6912 + 20 == 6932
    assert t["training_only_macs"] == 12
    # activations at inference: input 3*64 = 192, stem 4*64 = 256, pool 4, flatten (a view) 0,
    # fc 5; the head's 4 + 3 are not stored at inference
    assert t["activation_bytes"] == 4 * (192 + 256 + 4 + 5)


LINEAR_IN_BATCH = ("macs", "flops", "activations", "activation_bytes", "forward_memory_bytes",
                   "peak_activation_bytes", "training_only_macs", "training_only_flops")
CONSTANT_IN_BATCH = ("params", "weight_params", "bias_params", "buffers", "param_bytes", "buffer_bytes")


@pytest.mark.parametrize("name", sorted(SPECS))
def test_totals_scale_linearly_with_batch(name, write_spec):
    model = _load(name, write_spec)
    one = archstat.analyze(model, batch=1).totals
    for batch in (2, 7, 64):
        t = archstat.analyze(model, batch=batch).totals
        for key in LINEAR_IN_BATCH:
            assert t[key] == batch * one[key], key
        for key in CONSTANT_IN_BATCH:
            assert t[key] == one[key], key


def test_activation_total_agrees_with_forward_memory(cli):
    # CS231n VGG-16: 15,237,608 stored activations = 60,950,432 B in float32
    # (tests/data/cs231n_vgg16.csv); torchvision's VGG (the zoo's vgg16) adds avgpool, an
    # nn.AdaptiveAvgPool2d((7, 7)) that writes a new 7x7x512 tensor after pool5: 15,237,608 +
    # 25,088 = 15,262,696 elements = 61,050,784 B (61.1 MB). In-place ReLUs and views show
    # their outputs per row but need no storage
    code, out, _ = cli("report", "vgg16")
    assert code == 0
    total = next(line for line in out.splitlines() if line.startswith("Total"))
    assert total.split()[-3:] == ["15.3M", "61.1", "MB"]
    assert "(61,050,784 B) = 15,262,696 stored elements" in out
    assert 15_237_608 + 7 * 7 * 512 == 15_262_696 and 4 * 15_262_696 == 61_050_784


def test_an_output_suffix_that_is_no_report_format_is_refused(cli, lenet, tmp_path):
    code, out, err = cli("report", lenet, "-o", tmp_path / "x.pdf")
    assert code == 2 and err.count("\n") == 1 and "'.pdf'" in err and "--format" in err
    assert not (tmp_path / "x.pdf").exists()
    code, _, _ = cli("report", lenet, "-o", tmp_path / "x.pdf", "--format", "md")   # explicit: allowed
    assert code == 0 and (tmp_path / "x.pdf").read_text().startswith("# LeNet-5")


def test_extra_arguments_get_the_subcommand_usage(capsys, lenet):
    from archstat.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["report", str(lenet), str(lenet)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("archstat report: error: unrecognized arguments")
    assert err.count("\n") == 1   # one line, as every error
    assert "'archstat compare'" in err and "see 'archstat report --help'" in err


def test_reproduce_into_a_file_or_an_impossible_folder_is_one_line(cli, tmp_path):
    target = tmp_path / "taken"
    target.write_text("mine")
    code, out, err = cli("reproduce", "--out", str(target), "--no-timing", "--no-figures")
    assert code == 2 and "is a file, not a folder" in err and "Traceback" not in err
    assert target.read_text() == "mine"
    code, out, err = cli("reproduce", "--out", "/proc/archstat-reports", "--no-timing", "--no-figures")
    assert code == 2 and "cannot write the reports" in err and "Traceback" not in err


def test_ctrl_c_while_the_command_line_is_imported_exits_130(monkeypatch, capsys):
    import sys
    import types

    from archstat.__main__ import entry

    class Interrupted(types.ModuleType):
        def __getattr__(self, name):
            raise KeyboardInterrupt

    monkeypatch.setitem(sys.modules, "archstat.cli", Interrupted("archstat.cli"))
    with pytest.raises(SystemExit) as stop:
        entry()
    assert stop.value.code == 130 and capsys.readouterr().err == "archstat: interrupted\n"


def test_running_out_of_memory_is_one_line(cli, monkeypatch):
    import archstat.analysis

    def refuse(*args, **kwargs):
        raise MemoryError("Unable to allocate 12.0 GiB for an array with shape (3, 1000000000)")

    monkeypatch.setattr(archstat.analysis, "analyze", refuse)
    code, out, err = cli("report", "lenet5")
    assert code == 2 and err.startswith("archstat: error: out of memory (Unable to allocate 12.0 GiB")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def _complete(script: str, words: list[str]) -> list[str]:
    """What bash's completion gives after ``words`` (the last one being completed)."""
    import shutil
    import subprocess
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    run = (f"{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _archstat; "
           "printf '%s\\n' \"${COMPREPLY[@]}\"")
    out = subprocess.run(["bash", "-c", run], capture_output=True, text=True, check=True).stdout
    return [w for w in out.splitlines() if w]


def test_shell_completion_from_the_parser(cli, tmp_path, monkeypatch):
    code, script, err = cli("completion", "bash")
    assert code == 0 and "complete -o filenames -F _archstat archstat" in script
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_net.yaml").write_text("x")
    assert _complete(script, ["archstat", "rep"]) == ["report", "reproduce"]
    assert set(_complete(script, ["archstat", "report", "--fo"])) == {"--format"}
    assert _complete(script, ["archstat", "report", "x", "--format", "m"]) == ["md"]
    assert _complete(script, ["archstat", "report", "resnet1"]) == ["resnet101", "resnet152", "resnet18"]
    assert _complete(script, ["archstat", "report", "my_"]) == ["my_net.yaml"]
    assert _complete(script, ["archstat", "report", "x", "-o", "my"]) == ["my_net.yaml"]
    assert _complete(script, ["archstat", "graph", "x", "--color-by", ""]) == ["macs", "memory"]


@pytest.mark.parametrize("argv, kind", [
    (["compare", "lenet5", "alexnet_lecture", "-f", "json"], "compare"),
    (["zoo", "-f", "json", "--family", "vgg"], "zoo"),
    (["conventions", "lenet5", "-f", "json"], "conventions"),
    (["conventions", "lenet5", "--explain", "thop", "-f", "json"], "explain"),
])
def test_every_json_document_names_its_schema_first(argv, kind, cli):
    code, out, err = cli(*argv)
    doc = json.loads(out)
    assert code == 0 and list(doc)[:2] == ["schema", "archstat_version"] and doc["schema"] == f"archstat.{kind}/1"
