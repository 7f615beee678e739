"""Bad input gets one clear error and loses nothing.

Every case below is a spec a user could write by mistake. The library must raise
:class:`ArchstatError` naming the spec file, the layer and the field, with what was
expected and (where one exists) a did-you-mean hint. The CLI must turn it into exactly one
line on stderr starting ``archstat: error: ``, exit code 2, nothing on stdout and no
traceback. YAML tags must never construct (or run) anything. Nothing the user already had
(an earlier report file) may be lost because a run failed.
"""
from __future__ import annotations

import contextlib
import signal
from dataclasses import dataclass
from typing import Any

import pytest

import archstat
from archstat import ArchstatError
from archstat.errors import ExitCode

MARKER = "pwned"  # a file the hostile YAML specs try to create in tmp_path


# --------------------------------------------------------------------------- helpers

class Watchdog(Exception):
    """Raised inside the test when an operation that must be instant is still running."""


@contextlib.contextmanager
def watchdog(seconds: float):
    """Interrupt the block after ``seconds`` (SIGALRM), so a hang fails instead of hanging."""
    def fire(signum, frame):
        raise Watchdog(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def spec(*layers, **top) -> dict[str, Any]:
    """A spec on a 3x10x10 input."""
    return {"input": [3, 10, 10], "layers": list(layers), **top}


def conv(**fields) -> dict[str, Any]:
    """conv2d 8 filters 3x3 unless overridden."""
    return {"type": "conv2d", "out_channels": 8, "kernel_size": 3, **fields}


CONV_RELU = {"conv_relu": {"args": {"out": "required", "k": 3},
                           "layers": [{"type": "conv2d", "out_channels": "$out", "kernel_size": "$k"},
                                      {"type": "relu"}]}}

ANY = object()  # "do not check this part"


@dataclass
class Case:
    id: str
    spec: Any                      # dict (dumped as YAML/JSON) or verbatim text
    says: str                      # substring of the message (what was expected)
    layer: Any = None              # None: no layer; str or tuple of acceptable names; ANY
    field: Any = None
    hint: str | None = None        # substring of the hint
    name: str = "model.yaml"

    def __str__(self):
        return self.id


CASES = [
    # -- reading ------------------------------------------------------------------
    Case("malformed-yaml", "input: [3, 10, 10]\nlayers:\n  - type: conv2d: 3\n",
         "malformed YAML at line 3", hint="indentation"),
    Case("malformed-yaml-unclosed", "input: [3, 10, 10]\nlayers:\n  - {type: relu\n",
         "malformed YAML at line 4"),
    Case("malformed-json", '{\n  "input": [3, 10, 10],\n  "layers": [{"type": "relu"},]\n}\n',
         "malformed JSON at line 3", name="model.json"),
    Case("not-a-mapping", "- {type: relu}\n- {type: relu}\n", "must be a mapping", ),
    Case("empty-file", "", "the spec is empty", hint="'layers' list"),
    Case("tab-indent", "input: [3, 10, 10]\nlayers:\n\t- {type: relu}\n",
         "malformed YAML at line 3, column 1: a tab character", hint="spaces only"),
    Case("yaml-tag-apply", f'input: [3, 10, 10]\nlayers: !!python/object/apply:os.system ["touch {MARKER}"]\n',
         "YAML tags are not allowed"),
    Case("yaml-tag-apply-in-field",
         f'input: [3, 10, 10]\nlayers:\n  - type: relu\n    inplace: !!python/object/apply:os.system ["touch {MARKER}"]\n',
         "YAML tags are not allowed in specs at line 4"),
    Case("yaml-tag-name", "input: [3, 10, 10]\nlayers:\n  - type: !!python/name:os.system\n",
         "YAML tags are not allowed"),
    Case("yaml-tag-new", f'input: [3, 10, 10]\nlayers: !!python/object/new:subprocess.check_output [[touch, {MARKER}]]\n',
         "YAML tags are not allowed"),
    # -- top level --------------------------------------------------------------------
    Case("no-layers", {"input": [3, 10, 10]}, "non-empty list of layers", field="layers"),
    Case("empty-layers", spec(), "non-empty list of layers", field="layers"),
    Case("no-input", {"layers": [{"type": "relu"}]}, "missing the input size", field="input"),
    Case("unknown-top-level-key", {"input": [3, 10, 10], "layer": [{"type": "relu"}]},
         "unknown top-level key", field="layer", hint="did you mean 'layers'?"),
    # -- layer types and fields -----------------------------------------------------------
    Case("unknown-type", spec({"name": "c1", "type": "conv2", "out_channels": 8, "kernel_size": 3}),
         "unknown layer type 'conv2'", layer="c1", field="type", hint="did you mean 'conv2d'?"),
    Case("unknown-field-in-a-block",
         {"input": [3, 10, 10], "blocks": {"cr": {"layers": [{"type": "conv2d", "out_channels": 4,
                                                               "kernal_size": 3}]}},
          "layers": [{"block": "cr", "name": "c1"}]},
         "(in block 'cr', defined under 'blocks')", layer="c1.conv1", field="kernal_size",
         hint="did you mean 'kernel_size'?"),
    Case("unknown-field", spec({"type": "conv2d", "out_channels": 8, "kernal_size": 3}),
         "unknown field for a conv2d layer", layer="conv1", field="kernal_size",
         hint="did you mean 'kernel_size'?"),
    Case("missing-field", spec({"type": "conv2d", "kernel_size": 3}), "missing required field",
         layer="conv1", field="out_channels"),
    Case("kernel-three", spec(conv(kernel_size="three")), "expected an integer or a pair",
         layer="conv1", field="kernel_size"),
    Case("padding-sme", spec(conv(padding="sme")), "'same' or 'valid', got 'sme'",
         layer="conv1", field="padding", hint="did you mean 'same'?"),
    Case("stride-0", spec(conv(stride=0)), ">= 1, got 0", layer="conv1", field="stride"),
    Case("negative-channels", spec(conv(out_channels=-8)), "integer >= 1, got -8",
         layer="conv1", field="out_channels"),
    Case("negative-padding", spec(conv(padding=[-1, 1])), "got [-1, 1]", layer="conv1", field="padding"),
    Case("bool-kernel", spec(conv(kernel_size=True)), "got True", layer="conv1", field="kernel_size"),
    Case("bool-channels", spec(conv(out_channels=True)), "got True", layer="conv1", field="out_channels"),
    Case("float-channels", spec(conv(out_channels=8.0)), "got 8.0", layer="conv1", field="out_channels"),
    Case("same-stride-2", spec(conv(padding="same", stride=2)), "'same' needs stride 1",
         layer="conv1", field="padding"),
    Case("bad-choice", spec(conv(padding_mode="reflekt")), "got 'reflekt'", layer="conv1",
         field="padding_mode", hint="did you mean 'reflect'?"),
    # -- shapes that do not fit --------------------------------------------------------------
    Case("add-mismatch", spec(conv(name="a", padding=1), conv(name="b", out_channels=4, padding=1, inputs="input"),
                              {"name": "sum", "type": "add", "inputs": ["a", "b"]}),
         "same shape; got (1, 8, 10, 10), (1, 4, 10, 10)", layer="sum", field="inputs"),
    Case("concat-mismatch", spec(conv(name="a"), conv(name="b", inputs="input", padding=1),
                                 {"name": "cat", "type": "concat", "inputs": ["a", "b"]}),
         "agree on every dimension but the joined one", layer="cat", field="inputs"),
    Case("in-channels", spec(conv(in_channels=4)), "declared 4 but the input has 3 channels",
         layer="conv1", field="in_channels", hint="set in_channels: 3"),
    Case("in-features", spec({"type": "flatten"}, {"name": "fc", "type": "linear", "in_features": 30,
                                                  "out_features": 10}),
         "declared 30 but the input has 300 features", layer="fc", field="in_features",
         hint="set in_features: 300"),
    Case("num-features", spec({"type": "batch_norm2d", "num_features": 64}),
         "declared 64 but the input has 3 channels", layer="bn1", field="num_features"),
    Case("groups-in", spec(conv(groups=2)), "groups 2 does not divide the 3 input channels",
         layer="conv1", field="groups"),
    Case("groups-out", spec(conv(out_channels=7, groups=3)), "groups 3 does not divide out_channels 7",
         layer="conv1", field="groups"),
    # 10 + 0 + 0 - 11 < 0: the output would be empty; the field is checked by a test below
    Case("kernel-larger-than-input", spec(conv(kernel_size=11)), "smaller than the kernel extent 11",
         layer="conv1", field=ANY),
    Case("pool-larger-than-input", spec({"type": "max_pool2d", "kernel_size": 3, "dilation": 5}),
         "smaller than the kernel extent 11", layer="pool1", field=ANY),
    Case("reflect-too-large", spec(conv(padding=10, padding_mode="reflect")),
         "reflect padding 10 needs an input height larger than 10", layer="conv1", field="padding"),
    # PyTorch's Linear acts on the last axis of any rank; on an image that is the width
    Case("linear-on-4d", spec({"name": "fc", "type": "linear", "out_features": 10}),
         "the input has shape (1, 3, 10, 10): this linear layer would act on its last axis, of size 10",
         layer="fc", field="in_features", hint="insert a 'flatten' layer before it (in_features 300)"),
    Case("linear-on-4d-declared-flat", spec({"name": "fc", "type": "linear", "in_features": 300,
                                             "out_features": 10}),
         "declared 300 but the input (1, 3, 10, 10) has 10 features on its last axis", layer="fc",
         field="in_features", hint="insert a 'flatten' layer before it"),
    Case("pool-padding", spec({"type": "max_pool2d", "kernel_size": 2, "padding": 2}),
         "pool padding 2 is more than half", layer="pool1", field="padding"),
    # -- the graph ----------------------------------------------------------------------------
    Case("cycle", spec(conv(name="a", inputs="b", padding=1), conv(name="b", inputs="a", padding=1)),
         "form a cycle", layer=("a", "b"), field="inputs"),
    # the layer with the forward reference is blamed, not whichever edge the search found first
    Case("cycle-forward-reference", spec(conv(name="a", padding=1), conv(name="b", inputs="d", padding=1),
                                         conv(name="c", padding=1), conv(name="d", padding=1)),
         "form a cycle: d -> b -> c -> d", layer="b", field="inputs"),
    Case("inputs-unknown", spec(conv(name="features"), {"type": "relu", "inputs": "featurs"}),
         "no layer named 'featurs'", layer="relu1", field="inputs", hint="did you mean 'features'?"),
    Case("duplicate-names", spec(conv(name="a", padding=1), conv(name="a", padding=1)),
         "the name 'a' is used twice", layer="a", field="name"),
    Case("own-input", spec(conv(name="a", inputs="a")), "cannot be its own input", layer="a", field="inputs"),
    Case("add-one-input", spec({"name": "sum", "type": "add", "inputs": "input"}),
         "takes at least 2 input(s), got 1", layer="sum", field="inputs"),
    Case("inplace-shared", spec(conv(name="a"), {"name": "r", "type": "relu", "inplace": True},
                                {"name": "side", "type": "relu", "inputs": "a"}),
         "would overwrite 'a', which 'side' reads later", layer="r", field="inplace",
         hint="inplace: false"),
    # -- blocks, variables, repeat -----------------------------------------------------------
    Case("unknown-block", spec({"block": "conv_rleu", "name": "b", "out": 8}, blocks=CONV_RELU),
         "unknown block 'conv_rleu'", layer="b", field="block", hint="did you mean 'conv_relu'?"),
    Case("unknown-block-arg", spec({"block": "conv_relu", "name": "b", "outt": 8}, blocks=CONV_RELU),
         "block 'conv_relu' has no argument 'outt'", layer="b", field="outt", hint="did you mean 'out'?"),
    Case("missing-block-arg", spec({"block": "conv_relu", "name": "b"}, blocks=CONV_RELU),
         "needs the argument 'out'", layer="b", field="out"),
    Case("unknown-variable", spec(conv(out_channels="$x")), "unknown variable $x", layer="conv1",
         field="out_channels"),
    Case("unknown-variable-in-block",
         spec({"block": "blk", "name": "b", "out": 8},
              blocks={"blk": {"args": {"out": 4}, "layers": [conv(name="c", out_channels="$outt")]}}),
         "unknown variable $outt", layer="b.c", field="out_channels", hint="did you mean 'out'?"),
    Case("block-recursion", spec({"block": "r", "name": "top"}, blocks={"r": {"layers": [{"block": "r"}]}}),
         "nest deeper than 32 levels", layer=ANY, field="block", hint=None),
    Case("block-mutual-recursion",
         spec({"block": "a"}, blocks={"a": {"layers": [{"block": "b"}]}, "b": {"layers": [{"block": "a"}]}}),
         "nest deeper than 32 levels", layer=ANY, field="block"),
    Case("repeat-negative", spec(conv(name="c", repeat=-1)), "expected an integer >= 0, got -1", layer="c",
         field="repeat"),
    Case("repeat-many", spec(conv(name="c", repeat="many")), "got 'many'", layer="c", field="repeat"),
    Case("repeat-huge", spec({"name": "r", "type": "relu", "repeat": 10**12}),
         "more than 1,000,000 layers", layer="r", field="repeat"),
    Case("when-not-bool", spec({"name": "r", "type": "relu", "when": "yes"}), "expected true or false",
         layer="r", field="when"),
]


@pytest.fixture
def case_file(request, tmp_path, write_spec):
    """Write the case's spec; afterwards check that no hostile tag ran."""
    case: Case = request.param
    text = case.spec.replace(MARKER, str(tmp_path / MARKER)) if isinstance(case.spec, str) else case.spec
    path = write_spec(text, case.name)
    yield case, path
    assert not (tmp_path / MARKER).exists(), "a YAML tag executed code"


def check_error(exc: ArchstatError, case: Case, path) -> None:
    assert exc.file == str(path)
    assert case.says in exc.message
    if case.layer is not ANY:
        assert exc.layer == case.layer or (isinstance(case.layer, tuple) and exc.layer in case.layer)
    if case.field is not ANY:
        assert exc.field == case.field
    if case.hint:
        assert exc.hint and case.hint in exc.hint
    assert "\n" not in str(exc)


def check_line(line: str, case: Case, path) -> None:
    assert line.startswith("archstat: error: ")
    assert f"{path}: " in line
    if isinstance(case.layer, str):
        assert f"layer '{case.layer}'" in line
    if isinstance(case.field, str):
        assert f"field '{case.field}'" in line
    assert case.says in line
    if case.hint:
        assert case.hint in line


@pytest.mark.parametrize("case_file", CASES, indirect=True, ids=str)
def test_library_raises_archstat_error(case_file):
    case, path = case_file
    with watchdog(5), pytest.raises(ArchstatError) as info:
        archstat.analyze(archstat.load(path))
    check_error(info.value, case, path)


@pytest.mark.parametrize("case_file", CASES, indirect=True, ids=str)
def test_cli_prints_one_line_and_exits_2(case_file, cli):
    case, path = case_file
    with watchdog(5):
        code, out, err = cli("report", path)
    assert code == ExitCode.USER_ERROR == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    check_line(lines[0], case, path)


def test_compare_reports_the_bad_spec_and_prints_nothing(write_spec, cli, tmp_path):
    good = write_spec(spec(conv()), "good.yaml")
    bad = write_spec(spec(conv(kernal_size=3)), "bad.yaml")
    code, out, err = cli("compare", good, bad, good)
    assert (code, out) == (2, "")
    (line,) = err.splitlines()
    assert line.startswith(f"archstat: error: {bad}: layer 'conv1', field 'kernal_size': unknown field "
                           "for a conv2d layer (it takes: in_channels, out_channels, kernel_size, ")
    assert line.endswith("; did you mean 'kernel_size'?")


# ------------------------------------------------------------------- real subprocesses

def test_subprocess_unknown_field(write_spec, archstat_proc):
    path = write_spec(spec(conv(kernal_size=3)), "vgg.yaml")
    proc = archstat_proc("report", path.name)
    assert proc.returncode == 2
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("archstat: error: vgg.yaml: layer 'conv1', field 'kernal_size': unknown field "
                           "for a conv2d layer (it takes: ")
    assert line.endswith("; did you mean 'kernel_size'?")
    assert "Traceback" not in proc.stderr


def test_subprocess_yaml_tag_does_not_execute(tmp_path, archstat_proc):
    marker = tmp_path / MARKER
    (tmp_path / "evil.yaml").write_text(
        f'input: [3, 10, 10]\nlayers: !!python/object/apply:os.system ["touch {marker}"]\n')
    proc = archstat_proc("report", "evil.yaml")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("archstat: error: evil.yaml: YAML tags are not allowed in specs at line 2")
    assert not marker.exists()


def test_subprocess_argparse_usage_error(write_spec, archstat_proc):
    path = write_spec(spec(conv()))
    proc = archstat_proc("report", path.name, "--input", "3", "x")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert "archstat report: error: argument --input: expected a positive integer, got 'x'" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------- files and paths

def test_missing_spec_file_suggests_a_close_name(write_spec, cli, tmp_path):
    write_spec(spec(conv()), "lenet5.yaml")
    missing = tmp_path / "lenet.yaml"
    with pytest.raises(ArchstatError) as info:
        archstat.load(missing)
    assert (info.value.file, info.value.message) == (str(missing), "no such spec file")
    assert info.value.hint == "did you mean 'lenet5.yaml'?"
    code, out, err = cli("report", missing)
    assert (code, out) == (2, "")
    assert err == f"archstat: error: {missing}: no such spec file; did you mean 'lenet5.yaml'?\n"


def test_directory_as_spec(tmp_path, cli):
    with pytest.raises(ArchstatError, match="is a directory, not a spec file"):
        archstat.load(tmp_path)
    code, out, err = cli("report", tmp_path)
    assert (code, out) == (2, "")
    assert err.startswith(f"archstat: error: {tmp_path}: is a directory, not a spec file")
    assert "inside it" in err and "did you mean" not in err   # not "did you mean <itself>"
    assert len(err.splitlines()) == 1


def test_unwritable_output_path(write_spec, cli, tmp_path):
    path = write_spec(spec(conv()))
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file, so nothing can be created under it")
    target = blocker / "report.md"
    code, out, err = cli("report", path, "-o", target)
    assert (code, out) == (2, "")
    assert err.startswith(f"archstat: error: {target}: field '--output': {blocker} is a file, not a folder")
    assert len(err.splitlines()) == 1
    assert blocker.read_text() == "a file, so nothing can be created under it"


def test_crash_paths_found_in_review_are_clean_errors(write_spec, cli, tmp_path):
    # brackets nested 200,000 deep crashed PyYAML's C loader (segfault); a 5000-digit number
    # raised ValueError; a full disk on stdout raised OSError
    deep = tmp_path / "deep.yaml"
    deep.write_text("input: [3, 8, 8]\nlayers: [{type: relu, inplace: " + "[" * 200000 + "]" * 200000 + "}]\n")
    code, out, err = cli("report", deep)
    assert (code, out) == (2, "") and "brackets nest 200002 levels deep" in err  # the spec's own two levels too
    big = tmp_path / "big.json"
    big.write_text('{"input": [3, 8, 8], "layers": [{"type": "conv2d", "kernel_size": 1, "out_channels": '
                   + "9" * 5000 + "}]}")
    code, out, err = cli("report", big)
    assert (code, out) == (2, "") and "cannot read the spec" in err
    huge = write_spec(spec(conv(out_channels=2**40)))
    code, out, err = cli("report", huge)
    assert (code, out) == (2, "") and "field 'out_channels'" in err


def test_output_is_a_directory(write_spec, cli, tmp_path):
    path = write_spec(spec(conv()))
    code, out, err = cli("report", path, "-o", tmp_path)
    assert (code, out) == (2, "")
    assert err == f"archstat: error: {tmp_path}: field '--output': is a folder, not a file; give a file name inside it\n"


def test_failed_run_loses_nothing(write_spec, cli, tmp_path):
    """A bad spec must not truncate the report the user already has, nor leave temp files."""
    good = write_spec(spec(conv()), "good.yaml")
    bad_text = "input: [3, 10, 10]\nlayers:\n  - {type: conv2d, out_channels: 8, kernal_size: 3}\n"
    bad = write_spec(bad_text, "bad.yaml")
    report = tmp_path / "report.md"
    assert cli("report", good, "-o", report)[0] == 0
    before = report.read_bytes()
    assert b"conv1" in before
    code, out, err = cli("report", bad, "-o", report)
    assert (code, out) == (2, "")
    assert report.read_bytes() == before
    assert bad.read_text() == bad_text
    code, _, _ = cli("compare", good, bad, "-o", tmp_path / "cmp.csv")
    assert code == 2 and not (tmp_path / "cmp.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "good.yaml", "report.md"]


# ------------------------------------------------------------- API and CLI arguments

def test_unknown_dtype_from_the_api():
    model = archstat.load(spec(conv()))
    with pytest.raises(ArchstatError) as info:
        archstat.analyze(model, dtype="float8")
    assert info.value.field == "dtype"
    assert "unknown dtype 'float8'" in info.value.message
    assert "float32" in info.value.message  # says what is allowed


@pytest.mark.parametrize("batch", [0, -1, True, 2.0, "8"])
def test_bad_batch_from_the_api(batch):
    model = archstat.load(spec(conv()))
    with pytest.raises(ArchstatError, match="batch must be a positive integer"):
        archstat.analyze(model, batch=batch)


@pytest.mark.parametrize("args, says", [
    (["--batch", "0"], "argument --batch/-b: expected a positive integer, got '0'"),
    (["--input", "3", "x"], "argument --input: expected a positive integer, got 'x'"),
    (["--input", "3", "0", "10"], "argument --input: expected a positive integer, got '0'"),
    (["--dtype", "float8"], "argument --dtype: invalid choice: 'float8'"),
    (["--format", "pdf"], "argument --format/-f: invalid choice: 'pdf'"),
])
def test_cli_usage_errors_exit_2(write_spec, capsys, args, says):
    from archstat.cli import main
    path = write_spec(spec(conv()))
    with pytest.raises(SystemExit) as info:
        main(["report", str(path), *args])
    out, err = capsys.readouterr()
    assert (info.value.code, out) == (2, "")
    assert says in err and "Traceback" not in err


@pytest.mark.parametrize("dims, says", [
    (["3", "10"], "expected [C, H, W] (or [F]) of positive integers up to 2,147,483,647, got [3, 10]"),
    # at 3x4x4 the first 3x3 conv gives 2x2 (4 - 3 + 1), too small for the second one
    (["3", "4", "4"], "smaller than the kernel extent 3"),
])
def test_cli_input_override_errors(write_spec, cli, dims, says):
    path = write_spec(spec(conv(), conv(out_channels=4)))
    code, out, err = cli("report", path, "--input", *dims)
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1 and says in err
    assert err.startswith(f"archstat: error: {path}: ")


# --------------------------------------------------------------------- huge inputs

HUGE = {"input": [3, 100000, 100000], "layers": [
    conv(name="c1", padding=1),                                  # 3 -> 8, 3x3, pad 1: 100000x100000
    conv(name="c2", out_channels=16, stride=2, padding=1),       # 8 -> 16, stride 2: 50000x50000
    conv(name="c3", out_channels=4, kernel_size=1),              # 16 -> 4, 1x1: 50000x50000
]}
# c1: MACs = 8 * 100000^2 * (3*3*3)  = 8 * 10^10 * 27   = 2_160_000_000_000
# c2: H = (100000 + 2 - 3) // 2 + 1 = 50000; MACs = 16 * 50000^2 * (8*3*3) = 16 * 2.5e9 * 72
#                                                                       = 2_880_000_000_000
# c3: MACs = 4 * 50000^2 * 16 = 160_000_000_000
HUGE_MACS = 2_160_000_000_000 + 2_880_000_000_000 + 160_000_000_000
# params: 8*27+8 = 224; 16*72+16 = 1168; 4*16+4 = 68
HUGE_PARAMS = 224 + 1168 + 68


def test_huge_input_analyses_instantly_and_exactly():
    with watchdog(5):
        analysis = archstat.analyze(archstat.load(HUGE))
    t = analysis.totals
    assert t["macs"] == HUGE_MACS == 5_200_000_000_000
    assert t["params"] == HUGE_PARAMS == 1460
    # activations: input 3e10 + 8e10 + 16*2.5e9 + 4*2.5e9 = 3e10 + 8e10 + 4e10 + 1e10
    assert t["activations"] == 160_000_000_000
    assert t["activation_bytes"] == 4 * 160_000_000_000
    assert type(t["macs"]) is int and type(t["activation_bytes"]) is int
    assert analysis.layers.set_index("name").loc["c2", "output_shape"] == (1, 16, 50000, 50000)


def test_huge_batch_counts_stay_exact_python_ints():
    batch = 10**7  # per-layer MACs beyond 2**63: no int64 anywhere
    with watchdog(5):
        t = archstat.analyze(archstat.load(HUGE), batch=batch).totals
    assert t["macs"] == HUGE_MACS * batch == 52_000_000_000_000_000_000
    assert t["macs"] > 2**63 and type(t["macs"]) is int


def test_huge_batch_dataframe_column_sums_do_not_overflow():
    # per-layer MACs (4.32e18, 5.76e18, 3.2e17) each fit int64; their sum 1.04e19 does not
    batch = 2_000_000
    analysis = archstat.analyze(archstat.load(HUGE), batch=batch)
    assert analysis.totals["macs"] == HUGE_MACS * batch
    assert analysis.layers["macs"].sum() == analysis.totals["macs"]


def test_huge_repeat_fails_fast():
    with watchdog(1):
        with pytest.raises(ArchstatError, match="more than 1,000,000 layers"):
            archstat.load(spec({"type": "relu", "repeat": 10**12}))


def test_nested_huge_repeat_fails_fast():
    blocks = {"deep": {"layers": [{"type": "relu", "repeat": 1000}]}}
    with watchdog(1):
        with pytest.raises(ArchstatError, match="layers"):
            archstat.load(spec({"block": "deep", "repeat": 10000}, blocks=blocks))


def test_yaml_alias_bomb_fails_fast(write_spec):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]  # 10^9 leaves
    text = ("input: [3, 10, 10]\nblocks:\n  unused:\n    args:\n"
            + "".join(f"      {line}\n" for line in lines)
            + "    layers: [{type: relu}]\nlayers:\n  - {type: relu, inplace: *a8}\n")
    path = write_spec(text)
    assert len(text) < 1000
    with watchdog(1):
        with pytest.raises(ArchstatError):
            archstat.load(path)


# --------------------------------------------------------- known bugs, documented

def test_kernel_larger_than_input_names_the_field():
    with pytest.raises(ArchstatError) as info:
        archstat.load(spec(conv(kernel_size=11)))
    assert info.value.field == "kernel_size"


def test_deeply_nested_value_is_an_archstat_error(write_spec):
    path = write_spec("input: [3, 10, 10]\nlayers:\n  - {type: relu, inplace: "
                      + "[" * 3000 + "]" * 3000 + "}\n")
    with pytest.raises(ArchstatError):
        archstat.load(path)


def test_newline_in_a_key_still_gives_one_line(write_spec, cli):
    path = write_spec('input: [3, 10, 10]\nlayers: [{type: relu}]\n"lay\\ners": 1\n')
    code, out, err = cli("report", path)
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1, err


def test_unhashable_yaml_key_message(write_spec):
    path = write_spec("input: [3, 10, 10]\nlayers: [{type: relu}]\n? [a, b]\n: 1\n")
    with pytest.raises(ArchstatError) as info:
        archstat.load(path)
    assert "tags" not in info.value.message


def test_duplicate_yaml_key_is_an_error(write_spec):
    path = write_spec("input: [3, 10, 10]\nlayers:\n  - {type: conv2d, out_channels: 8, kernel_size: 3}\n"
                      "layers:\n  - {type: relu}\n")
    with pytest.raises(ArchstatError):
        archstat.load(path)


def test_inputs_hint_never_suggests_the_layer_itself():
    with pytest.raises(ArchstatError) as info:
        archstat.load(spec(conv(inputs="conv_1")))   # the conv is called conv1
    assert info.value.hint != "did you mean 'conv1'?"


def test_inplace_through_a_view_is_refused():
    shared = spec({"name": "f", "type": "flatten"},
                  {"name": "r", "type": "relu", "inplace": True},            # writes over f = input
                  {"name": "g", "type": "flatten", "inputs": "input"},       # reads input afterwards
                  {"name": "s", "type": "add", "inputs": ["r", "g"]})
    with pytest.raises(ArchstatError, match="inplace"):
        archstat.load(shared)


def test_bad_input_shape_type_from_the_api():
    model = archstat.load(spec(conv()))
    with pytest.raises(ArchstatError):
        archstat.analyze(model, input_shape=5)


@pytest.mark.parametrize("argv, hint", [
    (["reprot", "lenet5"], "did you mean 'report'? See 'archstat --help'"),
    (["compre", "lenet5"], "did you mean 'compare'?"),
    (["report", "lenet5", "--format", "mdd"], "did you mean 'md'? See 'archstat report --help'"),
])
def test_a_mistyped_subcommand_or_choice_gets_a_did_you_mean(argv, hint, capsys):
    from archstat.cli import main
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and hint in err and err.count("\n") == 1


def test_a_mistyped_option_gets_a_did_you_mean(capsys):
    from archstat.cli import main
    with pytest.raises(SystemExit) as exit_:
        main(["report", "lenet5", "--btach", "2"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err == ("archstat report: error: unrecognized arguments: --btach 2; "
                                             "did you mean '--batch'? See 'archstat report --help'\n")
