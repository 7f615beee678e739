"""The faces: terminal tables that fit a width, --depth block rows, the HTML pages, the
notebook display. Values are checked exactly (the totals on a page are the analysis' own)."""
from __future__ import annotations

import html.parser
import re

import pytest

import archstat
from archstat.analysis import analyze
from archstat.graph import load
from archstat.report import notebook
from archstat.report.blocks import SUMMED, block_key, block_rows
from archstat.report.fit import shorten
from archstat.report.compare_table import render_compare
from archstat.report.table import render_report


@pytest.fixture(scope="module")
def densenet():
    return analyze(load("densenet121"))


@pytest.fixture(scope="module")
def googlenet():   # auxiliary heads that run only in training
    return analyze(load("googlenet", {"aux": True}))


class _Page(html.parser.HTMLParser):
    """Collects the text of a page and checks that every opened element is closed."""

    VOID = {"meta", "br", "img", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.text, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (self.stack[-5:], tag)
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    p.close()
    assert p.stack == [], p.stack
    return p


# ------------------------------------------------------------------ terminal width

@pytest.mark.parametrize("width", [60, 80, 100, 120])
@pytest.mark.parametrize("depth", [None, 2, 3])
def test_report_fits_the_width(densenet, width, depth):
    text = render_report(densenet, "table", width=width, depth=depth)
    assert max(map(len, text.splitlines())) <= width
    assert "Total" in text and "7,978,856" in text   # the exact total stays in the summary


def test_the_note_says_what_was_left_out(densenet):
    full = render_report(densenet, "table")
    assert "To fit" not in full
    header = next(line for line in full.splitlines() if line.startswith("Layer"))
    assert header.split()[-2:] == ["RF", "stride"]
    fitted = render_report(densenet, "table", width=100)
    note = " ".join(line for line in fitted.splitlines() if line.startswith("To fit") or "left out" in line)
    assert "To fit 100 columns: left out Inputs, RF stride" in " ".join(fitted.split())
    assert "Inputs" not in next(line for line in fitted.splitlines() if line.startswith("Layer")) and note


def test_no_width_changes_nothing(densenet):
    assert render_report(densenet, "table", width=10_000) == render_report(densenet, "table")


def test_citation_comes_after_the_table():
    text = render_report(analyze(load("vgg16")), "table", width=100)
    lines = text.splitlines()
    assert lines[0].startswith("VGG-16: input 3x224x224") and lines[2].startswith("Layer")
    assert text.index("source: K. Simonyan") > text.index("Training memory")


def test_shorten_keeps_the_end_of_a_path():
    assert shorten("features.denseblock1.denselayer1.conv1", 24) == "…denselayer1.conv1"
    assert shorten("features.denseblock1.denselayer1.conv1", 12) == "…conv1"
    assert shorten("batch_norm2d", 8, "end") == "batch_n…"
    assert shorten("short", 8) == "short"


def test_compare_fits_the_width():
    analyses = [analyze(load(n)) for n in ("vgg16", "resnet50", "mobilenet_v3_large")]
    text = render_compare(analyses, "table", width=80)
    assert max(map(len, text.splitlines())) <= 80 and "left out Weights" in " ".join(text.split())
    assert render_compare(analyses, "table").splitlines()[0].split()[-2:] == ["Top-1", "%"]


def test_cli_columns_and_env(cli, monkeypatch):
    code, out, err = cli("report", "densenet121", "--columns", "72")
    assert code == 0 and max(map(len, out.splitlines())) <= 72
    monkeypatch.setenv("COLUMNS", "90")
    code, out, _ = cli("report", "densenet121")
    assert code == 0 and max(map(len, out.splitlines())) <= 90
    with pytest.raises(SystemExit):   # a usage error, before any work
        cli("report", "densenet121", "--columns", "5")


# ------------------------------------------------------------------ --depth

def test_block_key():
    assert block_key("features.denseblock1.denselayer1.conv1", 2) == "features.denseblock1"
    assert block_key("features.conv0", 2) == "features.conv0"
    assert block_key("input", 1) == "input"


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_depth_rows_sum_to_the_layers_exactly(densenet, depth):
    rows = block_rows(densenet, depth)
    layers = densenet.rows()
    assert sum(r["layers"] for r in rows) == len(layers)
    for key in SUMMED:
        assert sum(r[key] for r in rows) == sum(r[key] for r in layers), key
    assert rows[-1]["output_shape"] == layers[-1]["output_shape"]


def test_densenet_depth_two_reads_in_one_screen(densenet):
    rows = block_rows(densenet, 2)
    names = [r["name"] for r in rows]
    assert len(rows) == 17 and "features.denseblock3" in names
    block3 = rows[names.index("features.denseblock3")]
    # DenseNet-121's third block: 24 dense layers of 7 layers each + its final concatenation
    assert block3["layers"] == 24 * 7 + 1 and block3["output_shape"] == (1, 1024, 14, 14)
    assert block3["inputs"] == ("features.transition2",)
    text = render_report(densenet, "table", depth=2)
    assert "features.denseblock3" in text and "169 layers" in text and "Depth 2: 431 layers in 17 rows" in text


def test_depth_keeps_training_only_rows_apart(googlenet):
    rows = block_rows(googlenet, 1)
    aux = [r for r in rows if r["name"].startswith("aux1")]
    assert len(aux) == 1 and aux[0]["training_only"]
    inference = [r for r in rows if not r["training_only"]]
    assert sum(r["macs"] for r in inference) == googlenet.totals["macs"]
    assert "(train)" in render_report(googlenet, "table", depth=1)


def test_depth_in_md_and_html_not_json(densenet, cli):
    md = render_report(densenet, "md", depth=2)
    assert "| features.denseblock1 | 43 layers |" in md
    code, out, _ = cli("report", "densenet121", "--depth", "2", "--format", "json")
    assert code == 0 and out.count('"name"') > 400


# ------------------------------------------------------------------ HTML pages

def _numbers_in(page: _Page) -> str:
    return " ".join(" ".join(page.text).split())


def test_report_page(densenet):
    text = render_report(densenet, "html")
    page = parse(text)
    words = _numbers_in(page)
    t = densenet.totals
    # the headline totals come before the table, with their exact values
    first_row = words.index("features.conv0")
    for exact in (f"{t['params']:,}", f"{t['macs']:,}", f"{t['flops']:,}", f"{t['forward_memory_bytes']:,} B"):
        assert 0 <= words.index(exact) < first_row, exact
    assert "10^3" not in text and "10<sup>3</sup>" in text
    assert "position: sticky" in text and "@media print" in text and "<link" not in text
    assert not re.search(r'(src|href)="(http|//)', text)          # self-contained
    cells = [attrs.get("class", "") for tag, attrs in page.tags if tag == "td"]
    assert cells.count("num") > 1000                               # numbers right-aligned


def test_compare_page_has_a_heading():
    page = parse(render_compare([analyze(load("vgg16")), analyze(load("resnet18"))], "html"))
    assert "Comparing 2 models" in _numbers_in(page)
    assert ("h1", {}) in page.tags


# ------------------------------------------------------------------ notebook

def test_notebook_analysis(densenet):
    h = densenet._repr_html_()
    parse("<div>" + h + "</div>")
    assert "7,978,856" in h and "2,834,161,664" in h
    rows = h.count("<tr>")
    assert rows <= notebook.MAX_ROWS + 3 and "rows not shown" in h
    assert "431" in h and "features.conv0" in h and "classifier" in h   # head and tail
    md = densenet._repr_markdown_()
    assert md.startswith("### DenseNet-121") and "| ⋮ |" in md and "**Parameters** 7.98M" in md


def test_notebook_small_model_not_truncated():
    m = load("lenet5")
    h = m._repr_html_()
    assert "rows not shown" not in h and h.count("<tr>") == len(m) + 1 + 1 + 1   # header, input, total
    assert "61,706" in h or "61.7K" in h


def test_notebook_compare():
    c = archstat.compare("vgg16", "resnet18")
    assert [r["params"] for r in c.rows()] == [138357544, 11689512]
    assert "Comparing 2 models" in c._repr_html_() and "| VGG-16 |" in c._repr_markdown_()
    assert list(c.to_frame()["model"]) == ["VGG-16", "ResNet-18"]


def test_layers_frame_displays_tuples_as_text(densenet):
    frame = densenet.layers
    assert frame.loc[1, "output_shape"] == (1, 64, 112, 112)          # data kept exactly
    assert frame.loc[5, "inputs"] == ("features.pool0",)
    shown = repr(frame)
    assert "(features.pool0,)" not in frame._repr_html_() and "1x64x112x112" in frame._repr_html_()
    assert "(1, 64" not in shown
    assert int(frame["params"].sum()) == densenet.totals["params"]


def test_profile_and_sweep_pages_embed_their_figures():
    from archstat.profiling import profile, sweep
    from archstat.report.profile_table import render_profile, render_sweep
    from test_profile import LENET, fake_calibration

    p = profile(LENET, repeat=1, warmup=0, calibration=fake_calibration())
    text = render_profile(p, "html")
    page = parse(text)
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert len(images) == 3 and all(src.startswith("data:image/svg+xml;base64,") for src in images)
    words = _numbers_in(page)
    assert words.index("Forward pass") < words.index("Measurements") and "10<sup>9</sup>" in text
    h = p._repr_html_()
    assert "Forward pass" in h and "GFLOP/s" in h and "c3_relu" in h
    s = sweep(LENET, batches=[1, 2], repeat=1, warmup=0, calibration=fake_calibration())
    text = render_sweep(s, "html")
    assert [a["src"][:26] for t, a in parse(text).tags if t == "img"] == ["data:image/svg+xml;base64,"]
    assert max(map(len, render_sweep(s, "table", width=70).splitlines())) <= 70


def test_html_text_writes_powers_and_code_spans():
    from archstat.report.html_page import text
    assert text("K = 10^3, R^2 <= 1, `config` & `batch_norm`") == (
        "K = 10<sup>3</sup>, R<sup>2</sup> &lt;= 1, <code>config</code> &amp; <code>batch_norm</code>")
