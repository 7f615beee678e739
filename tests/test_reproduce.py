"""The committed reports/ are exactly what `archstat reproduce` produces now."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from archstat.report import published
from archstat.report.reproduce import reproduce
from reference_data import reference  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    # the figures and the measured report as committed: the index lists the files that are there
    for kept in [*ROOT.joinpath("reports").glob("*.png"), ROOT / "reports" / "ops_vs_time.md"]:
        shutil.copy(kept, out / kept.name)
    paths = reproduce(out, figures=False, timing=False)     # the zoo's models, by name
    return out, paths


def test_committed_reports_match_the_code(regenerated):
    out, paths = regenerated
    for path in paths:
        committed = ROOT / "reports" / path.name
        assert committed.exists(), f"reports/{path.name} is not committed; run archstat reproduce"
        assert committed.read_text() == path.read_text(), \
            f"reports/{path.name} differs from what the code produces; run archstat reproduce"


def test_the_index_lists_only_the_files_that_are_there(tmp_path):
    # --no-figures and --no-timing into an empty folder: no link to a figure or a measured
    # report that was not written
    reproduce(tmp_path, figures=False, timing=False)
    index = (tmp_path / "README.md").read_text()
    links = [l.split("](")[1].split(")")[0] for l in index.splitlines() if "](" in l]
    assert links and all((tmp_path / name).is_file() for name in links)
    assert "ops_vs_time" not in index and ".png" not in index


def test_every_indexed_figure_is_committed(regenerated):
    out, _ = regenerated
    index = (out / "README.md").read_text()
    for name in [l.split("](")[1].split(")")[0] for l in index.splitlines() if "](" in l]:
        assert (ROOT / "reports" / name).exists(), name


def test_cs231n_reconciliation_numbers(regenerated):
    out, _ = regenerated
    text = (out / "cs231n_vgg16.md").read_text()
    # tests/data/cs231n_vgg16.csv: the slide's rows sum to 15,237,608 activations
    # (60,950,432 bytes); weights 138,344,128 + 13,416 biases = 138,357,544
    for fact in ("15,237,608 activations", "60,950,432 bytes", "138,344,128", "13,416", "138,357,544",
                 "25,690,112 bytes"):
        assert fact in text, fact
    # the lecture-format lines are computed: the first conv line reads as the slide's
    assert "CONV3-64: [224x224x64] memory: 224*224*64=3.21M params: (3*3*3)*64 = 1,728" in text


def test_vgg_table2_rounds_to_the_paper(regenerated):
    out, _ = regenerated
    csv_text = (out / "vgg_table2.csv").read_text().splitlines()[1:]
    for line, (config, spec, layers, params_m) in zip(csv_text, published.VGG_TABLE2):
        fields = line.split(",")
        assert fields[0] == config and int(fields[3]) == layers
        assert round(int(fields[5]) / 1e6) == params_m  # Table 2 of Simonyan & Zisserman


def test_published_module_agrees_with_the_reference_folder():
    rows = [r for r in reference("cs231n_vgg16.csv") if not r["layer"].startswith("TOTAL")]
    assert [(r["layer"], r["output_hwc"], r["memory_slide"], r["params_slide"]) for r in rows] == \
        [row for row in published.CS231N_VGG16]
    table2 = reference("vgg_table2.csv")
    assert [(r["config"], int(r["weight_layers"]), int(r["params_M_paper"])) for r in table2] == \
        [(c, n, m) for c, _, n, m in published.VGG_TABLE2]


def test_the_timed_models_are_zoo_names_and_those_of_the_committed_report():
    # OPS_TIME_SPECS are zoo names (reproduce has no --specs folder any more); the committed
    # measured report (reports/ops_vs_time.md, regenerated only with timing) lists the models
    # they load, in order, with their GMACs; its times vary, its operation counts may not
    from archstat import analyze, load
    from archstat.report.reproduce_zoo import OPS_TIME_SPECS
    table = [line.split("|")[1:3] for line in (ROOT / "reports" / "ops_vs_time.md").read_text().splitlines()
             if line.startswith("| ") and not line.startswith("| Model")]
    assert len(table) == len(OPS_TIME_SPECS)
    for name, (model, gmacs) in zip(OPS_TIME_SPECS, table):
        assert f"{analyze(load(name)).totals['macs'] / 1e9:.3f}" == gmacs.strip(), (name, model.strip())


@pytest.fixture
def timed_lenet(monkeypatch):
    """reproduce's measured study on LeNet-5 alone, disturbed or not as the test says."""
    from archstat.profiling import calibration
    from archstat.report import reproduce_zoo
    real = reproduce_zoo.ops_vs_time
    monkeypatch.setattr(reproduce_zoo, "ops_vs_time", lambda progress=None: real(progress, names=("lenet5",)))

    def set_disturbed(disturbed: bool) -> None:
        monkeypatch.setattr(calibration, "BUSY", -1.0 if disturbed else 2.0)
    return set_disturbed


def test_a_disturbed_run_never_replaces_a_measured_report(tmp_path, timed_lenet, capsys):
    from archstat.cli import main
    out = tmp_path / "out"
    out.mkdir()
    committed = out / "ops_vs_time.md"
    committed.write_text("an undisturbed run\n")
    timed_lenet(True)
    assert main(["reproduce", "--no-figures", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert committed.read_text() == "an undisturbed run\n"
    assert "archstat: warning: ops_vs_time: other processes used" in err and "kept the measured reports" in err
    assert "ops_vs_time.md" in (out / "README.md").read_text()  # still listed: it is there
    # --force replaces it, and the report says it was disturbed
    assert main(["reproduce", "--no-figures", "--force", "--out", str(out)]) == 0
    assert "Warning: other processes used up to" in committed.read_text()
    assert "the measured report is disturbed" in capsys.readouterr().err
    # an undisturbed run replaces it without being asked
    timed_lenet(False)
    assert main(["reproduce", "--no-figures", "--out", str(out)]) == 0
    text = committed.read_text()
    assert "Warning" not in text and "LeNet-5" in text and "warning" not in capsys.readouterr().err


def test_a_disturbed_run_into_an_empty_folder_writes_and_says_so(tmp_path, timed_lenet, capsys):
    from archstat.cli import main
    timed_lenet(True)
    assert main(["reproduce", "--no-figures", "--out", str(tmp_path / "new")]) == 0
    assert "Warning: other processes used up to" in (tmp_path / "new" / "ops_vs_time.md").read_text()
    assert "the measured report is disturbed" in capsys.readouterr().err


def test_figures_are_byte_identical_when_their_inputs_are(tmp_path):
    """Two drawings of the same data give the same bytes (no dates, versions, random label
    placement): the labelled complexity figure, and a measured figure from fixed timings."""
    from archstat.report.reproduce import all_reports
    draw = {r.filename: r.draw for r in all_reports() if r.draw is not None}
    for name, fmts in (("complexity_accuracy.png", ("png",)), ("memory_vs_params.png", ("svg", "pdf"))):
        for fmt in fmts:
            a, b = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
            draw[name](a)
            draw[name](b)
            assert a.read_bytes() == b.read_bytes(), (name, fmt)
