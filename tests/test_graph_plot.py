"""Graph pictures: DOT text, collapse of pointwise layers, layered layout, PNG/SVG files."""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET

import networkx as nx
import pytest

import archstat
from archstat.errors import ArchstatError
from archstat.report import graph_dot
from archstat.report.graph_collapse import graph_nodes
from archstat.report.graph_dot import to_dot
from archstat.report.graph_draw import DPI, draw_graph
from archstat.report.graph_layout import MAX_INCHES, generations, layout_graph
from archstat.report.graph_style import NO_VALUE_FILL, PALETTE

# A ResNet-like network: a stem, then basic blocks; the block's `project` argument adds a
# 1x1 projection shortcut (with `when:`) where the stride or width changes.
RESNET = {
    "name": "ResNet-like",
    "input": [3, 32, 32],
    "blocks": {"basic": {
        "args": {"out": "required", "stride": 1, "project": False},
        "layers": [
            {"name": "conv1", "type": "conv2d", "out_channels": "$out", "kernel_size": 3,
             "stride": "$stride", "padding": 1, "bias": False},
            {"name": "bn1", "type": "batch_norm2d"},
            {"name": "relu1", "type": "relu", "inplace": True},
            {"name": "conv2", "type": "conv2d", "out_channels": "$out", "kernel_size": 3, "padding": 1,
             "bias": False},
            {"name": "bn2", "type": "batch_norm2d"},
            {"name": "proj", "type": "conv2d", "inputs": "input", "out_channels": "$out",
             "kernel_size": 1, "stride": "$stride", "bias": False, "when": "$project"},
            {"name": "proj_bn", "type": "batch_norm2d", "when": "$project"},
            {"name": "add", "type": "add", "inputs": ["bn2", "proj_bn"], "when": "$project"},
            {"name": "add", "type": "add", "inputs": ["bn2", "input"], "unless": "$project"},
            {"name": "relu", "type": "relu", "inplace": True}]}},
    "layers": [
        {"name": "stem", "type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1, "bias": False},
        {"name": "stem_bn", "type": "batch_norm2d"},
        {"name": "stem_relu", "type": "relu", "inplace": True},
        {"block": "basic", "name": "res1a", "out": 16},
        {"block": "basic", "name": "res2a", "out": 32, "stride": 2, "project": True},
        {"block": "basic", "name": "res2b", "out": 32},
        {"block": "basic", "name": "res3a", "out": 64, "stride": 2, "project": True},
        {"name": "gap", "type": "global_avg_pool2d"},
        {"name": "flatten", "type": "flatten"},
        {"name": "fc", "type": "linear", "out_features": 10}],
}

# An Inception-like network: modules of four parallel branches joined by concat.
INCEPTION = {
    "name": "Inception-like",
    "input": [3, 32, 32],
    "blocks": {"inception": {
        "args": {"b1": "required", "b3": "required", "b5": "required", "pp": "required"},
        "layers": [
            {"name": "b1", "type": "conv2d", "inputs": "input", "out_channels": "$b1", "kernel_size": 1},
            {"name": "b1_relu", "type": "relu", "inplace": True},
            {"name": "b3_reduce", "type": "conv2d", "inputs": "input", "out_channels": 8, "kernel_size": 1},
            {"name": "b3_reduce_relu", "type": "relu", "inplace": True},
            {"name": "b3", "type": "conv2d", "out_channels": "$b3", "kernel_size": 3, "padding": 1},
            {"name": "b3_relu", "type": "relu", "inplace": True},
            {"name": "b5_reduce", "type": "conv2d", "inputs": "input", "out_channels": 4, "kernel_size": 1},
            {"name": "b5_reduce_relu", "type": "relu", "inplace": True},
            {"name": "b5", "type": "conv2d", "out_channels": "$b5", "kernel_size": 5, "padding": 2},
            {"name": "b5_relu", "type": "relu", "inplace": True},
            {"name": "pool", "type": "max_pool2d", "inputs": "input", "kernel_size": 3, "stride": 1,
             "padding": 1},
            {"name": "pool_proj", "type": "conv2d", "out_channels": "$pp", "kernel_size": 1},
            {"name": "pool_proj_relu", "type": "relu", "inplace": True},
            {"name": "out", "type": "concat", "inputs": ["b1_relu", "b3_relu", "b5_relu", "pool_proj_relu"]}]}},
    "layers": [
        {"name": "conv1", "type": "conv2d", "out_channels": 16, "kernel_size": 3, "padding": 1},
        {"name": "conv1_relu", "type": "relu", "inplace": True},
        {"name": "pool1", "type": "max_pool2d", "kernel_size": 2},
        {"block": "inception", "name": "inc1", "b1": 8, "b3": 16, "b5": 4, "pp": 4},
        {"block": "inception", "name": "inc2", "b1": 16, "b3": 24, "b5": 8, "pp": 8},
        {"block": "inception", "name": "inc3", "b1": 16, "b3": 32, "b5": 8, "pp": 8},
        {"name": "gap", "type": "global_avg_pool2d"},
        {"name": "flatten", "type": "flatten"},
        {"name": "dropout", "type": "dropout", "p": 0.4},
        {"name": "fc", "type": "linear", "out_features": 10}],
}

_DOT_ID = r'"(?:[^"\\]|\\.)*"'
_NODE_LINE = re.compile(rf"^  ({_DOT_ID}) \[(.*)\];$")
_EDGE_LINE = re.compile(rf"^  ({_DOT_ID}) -> ({_DOT_ID});$")


@pytest.fixture(scope="module")
def resnet():
    return archstat.load(RESNET)


@pytest.fixture(scope="module")
def inception():
    return archstat.load(INCEPTION)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def parse_dot(text: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Node attribute strings by name, and edges in order; fails on any other statement."""
    lines = text.splitlines()
    assert re.fullmatch(rf"digraph {_DOT_ID} {{", lines[0]) and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if line.startswith(("  graph [", "  node [", "  edge [")):
            continue
        if m := _EDGE_LINE.match(line):
            edges.append((_unquote(m[1]), _unquote(m[2])))
        elif m := _NODE_LINE.match(line):
            nodes[_unquote(m[1])] = m[2]
        else:
            raise AssertionError(f"not a DOT statement: {line!r}")
    return nodes, edges


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


# ------------------------------------------------------------------------- collapse

def test_collapse_merges_pointwise_chains_into_their_producer(resnet, inception):
    nodes = graph_nodes(resnet)
    assert nodes["stem"].members == ("stem", "stem_bn", "stem_relu")
    assert nodes["stem"].title == "stem +bn+relu"
    assert nodes["res1a.conv1"].members == ("res1a.conv1", "res1a.bn1", "res1a.relu1")
    assert nodes["res2a.proj"].members == ("res2a.proj", "res2a.proj_bn")
    assert nodes["res2a.add"].title == "res2a.add +relu"     # the merge itself stays visible
    assert nodes["res2a.add"].inputs == ("res2a.conv2", "res2a.proj")
    inc = graph_nodes(inception)
    assert inc["inc1.out"].inputs == ("inc1.b1", "inc1.b3", "inc1.b5", "inc1.pool_proj")
    assert inc["flatten"].title == "flatten +drop"
    # a 3x3 stride-1 pool keeps the shape and has no MACs, but it is a window, not pointwise
    assert inc["inc1.pool"].members == ("inc1.pool",)
    assert graph_nodes(resnet, collapse=False).keys() == set(resnet.order)


@pytest.mark.parametrize("which", ["resnet", "inception"])
def test_collapse_never_crosses_a_branch_or_merge_and_keeps_every_edge(which, request):
    model = request.getfixturevalue(which)
    g = model.graph
    nodes = graph_nodes(model)
    group = {m: name for name, node in nodes.items() for m in node.members}
    assert sorted(group) == sorted(model.order)                  # every layer in one box
    for name, node in nodes.items():
        for prev, member in zip(node.members, node.members[1:]):
            assert list(g.predecessors(member)) == [prev]       # its only input ...
            assert list(g.successors(prev)) == [member]         # ... which feeds nothing else
            assert g.nodes[member]["shape"] == g.nodes[name]["shape"]
    kept = {(group[u], group[v]) for u, v in g.edges if group[u] != group[v]}
    shown = {(src, name) for name, node in nodes.items() for src in node.inputs}
    assert shown == kept
    assert all(len(node.inputs) == g.in_degree(name) for name, node in nodes.items())


def test_a_producer_with_two_consumers_keeps_its_pointwise_layers_apart():
    spec = {"input": [3, 8, 8], "layers": [
        {"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
        {"name": "r", "type": "relu"},
        {"name": "bn", "type": "batch_norm2d", "inputs": "c"},
        {"name": "sum", "type": "add", "inputs": ["r", "bn"]},
        {"name": "r2", "type": "relu"}]}
    nodes = graph_nodes(archstat.load(spec))
    assert list(nodes) == ["input", "c", "r", "bn", "sum"]
    assert nodes["sum"].members == ("sum", "r2")


# ------------------------------------------------------------------------------ DOT

def test_dot_has_every_node_and_edge_in_input_order(inception):
    a = archstat.analyze(inception)
    nodes, edges = parse_dot(to_dot(inception, a, collapse=False))
    assert set(nodes) == set(inception.order)
    assert sorted(edges) == sorted(inception.graph.edges)
    into = [src for src, dst in edges if dst == "inc2.out"]
    assert into == list(inception.layer("inc2.out").inputs)
    assert "rankdir=TB" in to_dot(inception)
    label = nodes["inc1.b3"]
    assert "inc1.b3\\nconv2d\\n16x16x16\\n" in label and "params" in label and "MACs" in label


def test_dot_collapsed_keeps_the_edges_between_survivors(resnet):
    nodes, edges = parse_dot(to_dot(resnet))
    shown = graph_nodes(resnet)
    assert set(nodes) == set(shown)
    assert edges == [(src, name) for name, node in shown.items() for src in node.inputs]
    assert 'label="res1a.conv1 +bn+relu\\nconv2d\\n16x32x32"' in nodes["res1a.conv1"]


def test_dot_escapes_names_and_is_accepted_by_graphviz():
    spec = {"name": 'My "net" \\ v2', "input": [1, 8, 8], "layers": [
        {"name": "block/conv.1", "type": "conv2d", "out_channels": 2, "kernel_size": 3},
        {"name": "head-1", "type": "flatten"}]}
    text = to_dot(archstat.load(spec))
    assert text.startswith('digraph "My \\"net\\" \\\\ v2" {')
    nodes, edges = parse_dot(text)
    assert edges == [("input", "block/conv.1"), ("block/conv.1", "head-1")]
    if shutil.which("dot"):
        out = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert "block/conv.1" in out.stdout


def test_dot_colour_by_macs_runs_light_to_dark_and_grey_for_none(resnet):
    nodes, _ = parse_dot(to_dot(resnet, color_by="macs"))
    macs = {r["name"]: r["macs"] for r in archstat.analyze(resnet).rows()}

    def fill(name):
        return re.search(r'fillcolor="(#[0-9a-f]{6})"', nodes[name])[1]
    assert fill("res2a.add") == NO_VALUE_FILL                     # no MACs
    biggest = max(graph_nodes(resnet), key=lambda n: macs[n])
    assert fill(biggest) == PALETTE[-1]
    assert 'fontcolor="white"' in nodes[biggest]                  # dark fill, light text
    assert "fill: MACs per node" in to_dot(resnet, color_by="macs")


def test_bad_colour_by_is_one_clear_error(resnet):
    with pytest.raises(ArchstatError) as err:
        to_dot(resnet, color_by="mac")
    assert err.value.field == "--color-by" and "did you mean 'macs'" in str(err.value)


# --------------------------------------------------------------------------- layout

def test_generations_are_networkx_topological_generations(inception):
    nodes = graph_nodes(inception)
    g = nx.DiGraph([(src, n) for n, node in nodes.items() for src in node.inputs])
    expected = {n: i for i, gen in enumerate(nx.topological_generations(g)) for n in gen}
    assert generations(nodes) == expected


@pytest.mark.parametrize("which", ["resnet", "inception"])
def test_layout_boxes_never_overlap_and_branches_sit_side_by_side(which, request):
    nodes = graph_nodes(request.getfixturevalue(which))
    widths = {name: 0.3 + 0.07 * len(node.title) for name, node in nodes.items()}
    h = 0.5
    for wrap in (False, True):
        layout = layout_graph(nodes, widths, h, wrap=wrap, target_aspect=1.3)
        boxes = list(layout.boxes.values())
        for i, (x1, y1, w1) in enumerate(boxes):
            for x2, y2, w2 in boxes[i + 1:]:
                if abs(y1 - y2) < h:
                    assert abs(x1 - x2) >= (w1 + w2) / 2 + 0.1
                else:
                    assert abs(y1 - y2) >= h + 0.2
        for src, dst, points in layout.edges:
            assert points[0][1] < points[-1][1]                   # edges run downwards
    if which == "inception":
        b = [layout_graph(nodes, widths, h, wrap=False).boxes[f"inc1.{k}"]
             for k in ("b1", "b3_reduce", "b5_reduce", "pool")]
        assert len({y for _, y, _ in b}) == 1 and [x for x, _, _ in b] == sorted(x for x, _, _ in b)


def test_deep_graphs_wrap_into_columns_at_waists(resnet):
    nodes = graph_nodes(resnet)
    layout = layout_graph(nodes, {n: 1.6 for n in nodes}, 0.6, target_aspect=1.3)
    gen = generations(nodes)
    assert len(layout.columns) > 1
    for s, (start, _) in enumerate(layout.columns[1:], 1):
        waist = [n for n in nodes if gen[n] == start - 1]
        assert len(waist) == 1 and ("ghost", s, waist[0]) in layout.boxes


# --------------------------------------------------------------------------- files

def test_png_and_svg_are_written_within_the_cap(resnet, inception, tmp_path):
    png = draw_graph(resnet, tmp_path / "resnet.png", analysis=archstat.analyze(resnet))
    w, h = png_size(png)
    assert 600 < w <= MAX_INCHES * DPI and 400 < h <= MAX_INCHES * DPI
    assert 0.4 < w / h < 3.5                                      # slide-like, not a strip
    assert png.stat().st_size > 30_000
    svg = draw_graph(inception, tmp_path / "inception.svg", color_by="memory", title="Toy Inception")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    text = svg.read_text()
    assert "Toy Inception" in text and "inc2.out" in text and "output memory per node" in text


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_drawing_twice_gives_the_same_bytes(inception, tmp_path, suffix):
    # no date, software version or random clip ids: a regenerated picture only changes
    # when the model does
    a = draw_graph(inception, tmp_path / f"a{suffix}", color_by="macs").read_bytes()
    b = draw_graph(inception, tmp_path / f"b{suffix}", color_by="macs").read_bytes()
    assert a == b
    assert b"dc:date" not in a and b"Matplotlib v" not in a   # nor matplotlib's version


def test_a_very_wide_graph_is_shrunk_to_the_cap(tmp_path):
    branches = [{"name": f"branch_{i}_with_a_long_name", "type": "conv2d", "inputs": "input",
                 "out_channels": 2, "kernel_size": 1} for i in range(36)]
    spec = {"input": [3, 8, 8], "layers": branches + [
        {"name": "cat", "type": "concat", "inputs": [b["name"] for b in branches]}]}
    w, h = png_size(draw_graph(spec, tmp_path / "wide.png", color_by="macs"))
    assert max(w, h) <= MAX_INCHES * DPI and w > h


def test_dot_suffix_writes_dot_and_bad_suffix_says_which_work(resnet, tmp_path):
    path = draw_graph(resnet, tmp_path / "r.dot")
    assert path.read_text() == to_dot(resnet)
    with pytest.raises(ArchstatError) as err:
        draw_graph(resnet, tmp_path / "r.jpg")
    assert err.value.field == "--output"
    assert all(s in err.value.hint for s in ("png", "svg", "dot"))
    assert draw_graph(resnet, tmp_path / "missing" / "r.dot").read_text() == to_dot(resnet)


def test_an_analysis_of_another_model_is_refused(resnet, inception):
    with pytest.raises(ArchstatError, match="another model"):
        to_dot(resnet, archstat.analyze(inception))


def test_matplotlib_is_only_imported_when_drawing():
    code = ("import sys, archstat; from archstat.report import graph_dot as g, graph_draw; "
            "g.to_dot(archstat.load(" + repr(RESNET) + ")); print('matplotlib' in sys.modules)")
    import sys
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=str(graph_dot.__file__).rsplit("/archstat/", 1)[0])
    assert out.stdout.strip() == "False", out.stderr
