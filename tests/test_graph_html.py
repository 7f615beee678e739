"""The interactive graph page (archstat graph MODEL -o g.html): its payload carries each box's
exact numbers, it is self-contained, and (where Chromium is installed) its script builds the
view, shows a box's numbers on hover and pins them on click in a real browser."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from archstat.analysis import analyze
from archstat.graph import load
from archstat.report.graph_draw import draw_graph


def payload_of(page: str) -> dict:
    match = re.search(r'<script id="archstat-graph" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def resnet18_page(tmp_path_factory):
    path = tmp_path_factory.mktemp("graph") / "resnet18.html"
    draw_graph("resnet18", path)
    return path


def test_payload_has_every_layer_with_its_numbers(resnet18_page):
    page = resnet18_page.read_text()
    data = payload_of(page)
    a = analyze(load("resnet18"))
    rows = {r["name"]: r for r in a.rows()}
    layers = [layer for n in data["nodes"] if not n["ghost"] for layer in n["layers"]]
    assert sorted(l["name"] for l in layers) == sorted(rows)          # every layer once
    conv1 = next(l for l in layers if l["name"] == "conv1")
    assert (conv1["params"], conv1["macs"], conv1["output"], conv1["rf"]) == (9408, 118013952, "1x64x112x112", "7")
    assert sum(n["params"] for n in data["nodes"] if not n["ghost"]) == a.totals["params"] == data["totals"]["params"]
    assert sum(n["macs"] for n in data["nodes"] if not n["ghost"]) == a.totals["macs"]
    box = next(n for n in data["nodes"] if n["id"] == "conv1")
    assert box["title"] == "conv1 +bn+relu" and len(box["layers"]) == 3 and box["memory"] == sum(
        rows[m]["activation_bytes"] for m in ("conv1", "bn1", "relu"))
    assert {e["to"] for e in data["edges"]} <= {n["id"] for n in data["nodes"]}


def test_page_is_self_contained(resnet18_page):
    page = resnet18_page.read_text()
    assert not re.search(r'(src|href)\s*=\s*"(?!#)', page)     # no file, CDN or font fetched
    assert "<svg" in page and page.count('class="node') >= len(payload_of(page)["nodes"])


def test_collapsed_blocks_sum_exactly():
    from archstat.report.blocks import block_rows
    from archstat.report.graph_collapse import graph_nodes
    m = load("densenet121")
    nodes = graph_nodes(m, True, 2)
    rows = {r["name"]: r for r in block_rows(analyze(m), 2)}
    assert len(nodes) == 14            # input, conv0 +bn+relu, pool0, 4 blocks, 3 transitions, norm5, ...
    block = nodes["features.denseblock3"]
    assert len(block.members) == rows["features.denseblock3"]["layers"] == 169
    assert graph_nodes(m, True, 0).keys() == nodes.keys()   # --collapse alone picks depth 2 here


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

_PROBE = """<script>
window.addEventListener("load", function () { setTimeout(function () {
  var out = {ready: document.body.dataset.ready, transform: document.getElementById("world").getAttribute("transform")};
  var g = document.querySelector('.node[data-i="1"]');
  g.dispatchEvent(new MouseEvent("mouseenter", {bubbles: false}));
  out.tip = document.getElementById("tip").textContent; out.tipShown = document.getElementById("tip").style.display;
  g.dispatchEvent(new MouseEvent("click", {bubbles: true}));
  out.panel = document.getElementById("panel").textContent; out.pinned = g.classList.contains("pinned");
  var before = document.getElementById("world").getAttribute("transform");
  document.getElementById("view").dispatchEvent(new WheelEvent("wheel", {deltaY: -300, clientX: 400, clientY: 300, cancelable: true}));
  out.zoomed = before !== document.getElementById("world").getAttribute("transform");
  var find = document.getElementById("find"); find.value = "layer4.1.conv2"; find.dispatchEvent(new Event("input"));
  out.found = document.querySelectorAll(".node.found").length;
  var pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 50); });
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (a real browser); CI installs Python packages only")
def test_in_a_real_browser(resnet18_page, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(resnet18_page.read_text().replace("</body>", _PROBE))
    run = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--window-size=1200,900", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert match, run.stderr[-2000:]
    out = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert out["ready"] == "1" and out["transform"].startswith("translate(")
    data = payload_of(resnet18_page.read_text())
    box = data["nodes"][1]
    assert box["title"] in out["tip"] and f"{box['params']:,}" in out["tip"] and out["tipShown"] == "block"
    assert "receptive field" in out["tip"] and box["output"] in out["tip"]
    assert out["pinned"] and box["title"] in out["panel"]
    assert out["zoomed"] and out["found"] == 1
