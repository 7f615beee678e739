"""The branching specs (ResNet, GoogLeNet, Inception; issue 4) reproduce published numbers.

Every expected number carries its source in a comment and is written inline; the tests that
walk the reference CSVs read the copies in ``tests/data`` (see tests/reference_data.py).
Models are loaded by their zoo names (specs/zoo.yaml): ``resnet50`` is specs/resnet.yaml with
``depth: 50``, ``googlenet`` is specs/googlenet.yaml with ``aux: false`` (the pretrained model).

Conventions (DESIGN.md): ``params`` include biases and batch-norm gamma/beta (as PyTorch's
``num_params``); a MAC is one multiply-accumulate of a conv or linear layer. torchvision's
"GFLOPS" (``meta["_ops"]``) are conv+linear GMACs, so ``round(macs / 1e9, 3)`` must equal
them. Receptive fields: effective padding = (rf_size - 1) / 2 - rf_offset (Araujo, Norris &
Sim, Distill 2019), compared only where the layout is TF-Slim's (see the RF section).
"""
from __future__ import annotations

import functools

import networkx as nx
import pytest

import archstat
from reference_data import reference  # noqa: E402

MINE = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnet50_v1",
        "googlenet", "googlenet_paper", "inception_v3", "inception_v4")

#: resnet50_v1's args for the deeper v1 networks of He et al. Table 1 (the zoo's resnet50_v1 is
#: specs/resnet.yaml with depth 50 and v1 true; depth 101 has 4 and 23 blocks in conv3_x /
#: conv4_x, depth 152 has 8 and 36)
V1_DEPTH = {50: {}, 101: {"depth": 101}, 152: {"depth": 152}}


# --------------------------------------------------------------------------- helpers

@functools.lru_cache(maxsize=None)
def _model(spec: str, args: tuple) -> archstat.Model:
    return archstat.load(spec, args=dict(args))


def model(spec: str, **args) -> archstat.Model:
    """``archstat.load`` of the zoo model ``spec``, ``args`` overriding the zoo's (cached)."""
    return _model(spec, tuple(sorted(args.items())))


@functools.lru_cache(maxsize=None)
def _analysis(spec: str, args: tuple, size: int | None):
    shape = None if size is None else (3, size, size)
    return archstat.analyze(_model(spec, args), input_shape=shape)


def analysis(spec: str, size: int | None = None, **args):
    """``archstat.analyze`` at the spec's input size or at ``size`` x ``size`` (cached)."""
    return _analysis(spec, tuple(sorted(args.items())), size)


def totals(spec: str, **args) -> dict:
    return analysis(spec, **args).totals


def rows_by_name(spec: str, size: int | None = None, **args) -> dict[str, dict]:
    return {r["name"]: r for r in analysis(spec, size, **args).rows()}


def count_type(spec: str, type_name: str, **args) -> int:
    return sum(1 for layer in model(spec, **args).layers() if layer.type_name == type_name)




def effective_padding(row: dict) -> float:
    """Distill's effective padding from archstat's RF centre: (r - 1) / 2 - offset (height)."""
    return (row["rf_size"][0] - 1) / 2 - row["rf_offset"][0]


# ------------------------------------------------------------------ every spec of mine

@pytest.mark.parametrize("spec", MINE)
def test_spec_loads_cites_a_source_and_documents_departures(spec):
    m = model(spec)
    assert m.name.strip() and m.description.strip() and m.source.strip() and m.notes.strip()
    assert "arXiv" in m.source, "cite the paper"
    if m.accuracy is not None:
        assert m.accuracy.get("source", "").strip(), "an accuracy must name its source"
    t = totals(spec)
    assert t["params"] > 0 and t["macs"] > 0


@pytest.mark.parametrize("spec, merge, expected", [
    ("resnet18", "add", 8),          # 2+2+2+2 basic blocks, one residual add each
    ("resnet34", "add", 16),         # 3+4+6+3
    ("resnet50", "add", 16),         # 3+4+6+3 bottlenecks
    ("resnet101", "add", 33),        # 3+4+23+3
    ("resnet152", "add", 50),        # 3+8+36+3
    ("resnet50_v1", "add", 16),
    ("googlenet", "concat", 9),      # 3a, 3b, 4a-4e, 5a, 5b
    ("googlenet_paper", "concat", 9),
    ("inception_v3", "concat", 15),  # 3 A + 1 B + 4 C + 1 D + 2 E x (1 + 2 inner)
    ("inception_v4", "concat", 25),  # stem 3 + 4 A + red-A + 7 B + red-B + 3 C x (1 + 2 inner)
])
def test_merge_counts(spec, merge, expected):
    assert count_type(spec, merge) == expected
    other = "concat" if merge == "add" else "add"
    assert count_type(spec, other) == 0


@pytest.mark.parametrize("spec, convs", [
    ("resnet18", 20),      # 1 stem + 16 in blocks + 3 projections (torchvision: 20 Conv2d)
    ("resnet34", 36),      # 1 + 32 + 3
    ("resnet50", 53),      # 1 + 48 + 4 projections (layer1.0 has one too)
    ("resnet101", 104),    # 1 + 99 + 4
    ("resnet152", 155),    # 1 + 150 + 4
    ("googlenet", 57),     # 3 stem + 9 modules x 6 (the zoo's googlenet: aux false, heads dropped)
    ("inception_v3", 96),  # 94 + AuxLogits.conv0, conv1 (training_only layers are still layers)
    ("inception_v4", 149),  # stem 11 + 4x7 + 4 + 7x10 + 6 + 3x10
])
def test_conv_layer_counts(spec, convs):
    assert count_type(spec, "conv2d") == convs
    assert count_type(spec, "batch_norm2d") == convs   # every conv is followed by batch norm


@pytest.mark.parametrize("spec, eps", [("resnet50", 1e-5), ("resnet152", 1e-5), ("googlenet", 1e-3),
                                       ("inception_v3", 1e-3), ("inception_v4", 1e-3)])
def test_bias_free_convs_and_batch_norm_eps(spec, eps):
    # torchvision resnet.py conv1x1/conv3x3 bias=False, BatchNorm2d default eps 1e-5;
    # googlenet.py / inception.py BasicConv2d bias=False, BatchNorm2d(eps=0.001); timm
    # inception_v4 ConvNormAct, norm_eps=1e-3
    for layer in model(spec).layers():
        if layer.type_name == "conv2d":
            assert layer.attrs["bias"] is False, layer.name
        if layer.type_name == "batch_norm2d":
            assert layer.attrs["eps"] == eps, layer.name


def test_names_follow_torchvision_module_paths():
    # torchvision state_dict keys minus ".weight": resnet.py, googlenet.py, inception.py
    names = {
        "resnet50": ["conv1", "bn1", "layer1.0.downsample.0", "layer2.0.conv2", "layer4.2.bn3", "fc"],
        "resnet18": ["layer1.1.conv2", "layer2.0.downsample.1", "layer4.1.bn2"],
        "googlenet": ["conv1.conv", "conv3.bn", "inception3a.branch2.1.conv", "inception5b.branch4.1.bn"],
        "inception_v3": ["Conv2d_1a_3x3.conv", "Mixed_6e.branch7x7dbl_5.conv",
                         "Mixed_7c.branch3x3dbl_3b.bn", "AuxLogits.conv1.conv", "AuxLogits.fc", "fc"],
    }
    for spec, wanted in names.items():
        present = set(model(spec).order)
        assert not [n for n in wanted if n not in present], spec
    # torchvision's layer2.0.conv2 is the strided 3x3 (v1.5); resnet50_v1 strides conv1
    v15, v1 = rows_by_name("resnet50"), rows_by_name("resnet50_v1")
    assert v15["layer2.0.conv1"]["output_shape"] == (1, 128, 56, 56)
    assert v15["layer2.0.conv2"]["output_shape"] == (1, 128, 28, 28)
    assert v1["layer2.0.conv1"]["output_shape"] == (1, 128, 28, 28)


# ------------------------------------------------------------- torchvision num_params/_ops

TORCHVISION = [
    # spec, args, num_params, "GFLOPS" (GMACs): torchvision 0.29.1 *_Weights.IMAGENET1K_V1 meta,
    # pytorch/vision@1f1a920d (tests/data/torchvision_models.csv)
    ("resnet18", {}, 11_689_512, 1.814),        # torchvision/models/resnet.py:313
    ("resnet34", {}, 21_797_672, 3.664),        # torchvision/models/resnet.py:335
    ("resnet50", {}, 25_557_032, 4.089),        # torchvision/models/resnet.py:357
    ("resnet101", {}, 44_549_160, 7.801),       # torchvision/models/resnet.py:400
    ("resnet152", {}, 60_192_808, 11.514),      # torchvision/models/resnet.py:443
    ("googlenet", {}, 6_624_904, 1.498),        # torchvision/models/googlenet.py:279 (aux heads dropped)
    ("inception_v3", {}, 27_161_264, 5.713),    # torchvision/models/inception.py:411 (params with AuxLogits)
]


@pytest.mark.parametrize("spec, args, num_params, gmacs", TORCHVISION, ids=[t[0] for t in TORCHVISION])
def test_torchvision_num_params_and_gmacs(spec, args, num_params, gmacs):
    t = totals(spec, **args)
    assert t["params"] == num_params
    assert round(t["macs"] / 1e9, 3) == gmacs
    if spec == "inception_v3":
        # torchvision's _ops leaves out the auxiliary head (Inception3.forward runs AuxLogits
        # only in training mode). The head is training_only: its params count (27,161,264 is
        # with it), its MACs are not in the inference total (5.713, the same as with aux false)
        # but in training_only_macs; both together are 5.719 GMACs, the old "with aux" figure
        assert round(totals(spec, aux=False)["macs"] / 1e9, 3) == gmacs
        assert round((t["macs"] + t["training_only_macs"]) / 1e9, 3) == 5.719
    else:
        assert t["training_only_macs"] == 0


def test_torchvision_values_match_the_reference_csv():
    csv_rows = {r["model"]: r for r in reference("torchvision_models.csv")}
    for spec, _, num_params, gmacs in TORCHVISION:
        row = csv_rows[spec]
        assert int(row["num_params"]) == num_params, spec
        assert float(row["gflops"]) == gmacs, spec


def test_inception_v3_with_and_without_aux_head():
    with_aux, without = totals("inception_v3"), totals("inception_v3", aux=False)
    assert with_aux["params"] == 27_161_264     # torchvision Inception_V3_Weights meta num_params
    # 23,834,568: osmr/imgclsmob pytorch/README.md, InceptionV3 row (no auxiliary head)
    assert without["params"] == 23_834_568
    # AuxLogits: conv0 768*128 + BN 2*128, conv1 128*768*25 + BN 2*768, fc 768*1000 + 1000
    assert with_aux["params"] - without["params"] == 98_304 + 256 + 2_457_600 + 1_536 + 769_000
    # its MACs at 5x5 -> 1x1: conv0 25*768*128, conv1 128*768*25, fc 768*1000; the head runs
    # only in training, so they are training_only_macs, not inference MACs (torchvision's
    # _ops 5.713 is the same with and without the head)
    assert with_aux["training_only_macs"] == 2_457_600 + 2_457_600 + 768_000 == 5_683_200
    assert without["training_only_macs"] == 0
    assert with_aux["macs"] == without["macs"] == 5_713_216_096
    # the head sits right after Mixed_6e, where torchvision runs it, so its output comes first
    assert model("inception_v3").outputs == ["AuxLogits.fc", "fc"]
    assert model("inception_v3").inference_outputs == ["fc"]
    assert model("inception_v3", aux=False).outputs == ["fc"]
    assert all(model("inception_v3").layer(n).training_only == n.startswith("AuxLogits.")
               for n in model("inception_v3").order)
    out = rows_by_name("inception_v3")
    assert out["Mixed_6e.cat"]["output_shape"] == (1, 768, 17, 17)      # torchvision comment
    assert out["AuxLogits.avg_pool"]["output_shape"] == (1, 768, 5, 5)  # "N x 768 x 5 x 5"
    assert out["Mixed_7c.cat"]["output_shape"] == (1, 2048, 8, 8)       # "N x 2048 x 8 x 8"


# ------------------------------------------------------------------- ResNet Table 1

#: He et al. arXiv:1512.03385 Table 1 "FLOPs" row (multiply-adds, x1e9); exact MACs from
#: tests/data/resnet_table1.csv (macs_v1_computed, macs_v15_computed)
RESNET_TABLE1 = [
    # depth, blocks per stage, paper, v1 MACs (paper layout), v1.5 MACs (torchvision)
    (18, (2, 2, 2, 2), 1.8, 1_814_073_344, 1_814_073_344),
    (34, (3, 4, 6, 3), 3.6, 3_663_761_408, 3_663_761_408),
    (50, (3, 4, 6, 3), 3.8, 3_857_973_248, 4_089_184_256),
    (101, (3, 4, 23, 3), 7.6, 7_570_194_432, 7_801_405_440),
    (152, (3, 8, 36, 3), 11.3, 11_282_415_616, 11_513_626_624),
]


@pytest.mark.parametrize("depth, stages, paper_gmacs, macs_v1, macs_v15", RESNET_TABLE1,
                         ids=[str(r[0]) for r in RESNET_TABLE1])
def test_resnet_table1(depth, stages, paper_gmacs, macs_v1, macs_v15):
    tv = f"resnet{depth}"
    assert totals(tv)["macs"] == macs_v15
    for stage, blocks in enumerate(stages, start=1):          # Table 1's "x n" per stage
        adds = [n for n in model(tv).order if n.startswith(f"layer{stage}.") and n.endswith(".add")]
        assert len(adds) == blocks, (tv, stage)
    if depth in V1_DEPTH:        # bottleneck nets: the paper's layout is resnet50_v1.yaml + args
        v1 = totals("resnet50_v1", **V1_DEPTH[depth])
        assert v1["macs"] == macs_v1
        assert v1["params"] == totals(tv)["params"]          # the stride moves, no weight does
        macs_paper_layout = v1["macs"]
    else:                        # basic blocks stride on their first 3x3 in both layouts
        macs_paper_layout = macs_v15
    # the paper prints one decimal: 1.814->1.8, 3.664->3.6, 3.858->3.8 (truncated?) but
    # 7.570->7.6, 11.282->11.3 (rounded); the README allows ~0.1e9
    assert abs(macs_paper_layout / 1e9 - paper_gmacs) <= 0.1
    if macs_v15 != macs_v1:      # torchvision's v1.5 is visibly off the paper's figure
        assert abs(macs_v15 / 1e9 - paper_gmacs) > 0.2


def test_resnet50_v1_against_v15():
    v1, v15 = totals("resnet50_v1"), totals("resnet50")
    assert v1["macs"] == 3_857_973_248        # resnet_table1.csv macs_v1_computed (paper 3.8e9)
    assert v15["macs"] == 4_089_184_256       # resnet_table1.csv macs_v15_computed = torchvision 4.089
    # the whole difference is the first 1x1 of layer2.0 / layer3.0 / layer4.0 running before
    # the stride: each costs 4x its v1 count, and each v1 count is 256*128*28*28 =
    # 512*256*14*14 = 1024*512*7*7 = 25,690,112, so 3 * 3 * 25,690,112 more
    assert v15["macs"] - v1["macs"] == 3 * 3 * 25_690_112 == 231_211_008
    a, b = rows_by_name("resnet50_v1"), rows_by_name("resnet50")
    for stage in (2, 3, 4):
        assert b[f"layer{stage}.0.conv1"]["macs"] == 4 * a[f"layer{stage}.0.conv1"]["macs"] == 4 * 25_690_112
        assert b[f"layer{stage}.0.conv2"]["macs"] == a[f"layer{stage}.0.conv2"]["macs"]


def test_resnet_table1_reference_csv():
    for row in reference("resnet_table1.csv"):
        depth = int(row["layers"])
        assert totals(f"resnet{depth}")["macs"] == int(row["macs_v15_computed"])
        assert totals(f"resnet{depth}")["params"] == int(row["params_computed"])
        assert round(totals(f"resnet{depth}")["macs"] / 1e9, 3) == float(row["tv_gflops"])
        if depth in V1_DEPTH:
            assert totals("resnet50_v1", **V1_DEPTH[depth])["macs"] == int(row["macs_v1_computed"])
        else:
            assert int(row["macs_v1_computed"]) == int(row["macs_v15_computed"])


# ---------------------------------------------------------------- GoogLeNet Table 1

#: Table 1 rows (tests/data/googlenet_table1.csv, in order) -> the paper spec's layers:
#: (layers whose weights/MACs make up the row, layer giving the row's output size)
GOOGLENET_ROWS = [
    (["conv1/7x7_s2"], "conv1/relu_7x7"),
    ([], "pool1/3x3_s2"),
    (["conv2/3x3_reduce", "conv2/3x3"], "conv2/relu_3x3"),
    ([], "pool2/3x3_s2"),
    ("inception_3a/", "inception_3a/output"),
    ("inception_3b/", "inception_3b/output"),
    ([], "pool3/3x3_s2"),
    ("inception_4a/", "inception_4a/output"),
    ("inception_4b/", "inception_4b/output"),
    ("inception_4c/", "inception_4c/output"),
    ("inception_4d/", "inception_4d/output"),
    ("inception_4e/", "inception_4e/output"),
    ([], "pool4/3x3_s2"),
    ("inception_5a/", "inception_5a/output"),
    ("inception_5b/", "inception_5b/output"),
    ([], "pool5/7x7_s1"),
    ([], "pool5/drop_7x7_s1"),
    (["loss3/classifier"], "loss3/classifier"),
    ([], "prob"),
]

#: Table 1 (Szegedy et al. arXiv:1409.4842, via tests/data/googlenet_table1.csv): the
#: printed params (K) and ops (M), and the exact weights (no biases: the table counts none)
#: and MACs that the table's own widths and output sizes give (params_weights_computed,
#: macs_computed); the layers of googlenet_paper.yaml that make up each row
GOOGLENET_TABLE1 = {
    # row: (layers, params printed, ops printed, weights computed, MACs computed)
    "conv 7x7/2": (["conv1/7x7_s2"], "2.7K", "34M", 9_408, 118_013_952),
    "conv 3x3/1": (["conv2/3x3_reduce", "conv2/3x3"], "112K", "360M", 114_688, 359_661_568),
    "inception (3a)": ("inception_3a/", "159K", "128M", 163_328, 128_049_152),
    "inception (3b)": ("inception_3b/", "380K", "304M", 388_096, 304_267_264),
    "inception (4a)": ("inception_4a/", "364K", "73M", 375_552, 73_608_192),
    "inception (4b)": ("inception_4b/", "437K", "88M", 448_512, 87_908_352),
    "inception (4c)": ("inception_4c/", "463K", "100M", 509_440, 99_850_240),
    "inception (4d)": ("inception_4d/", "580K", "119M", 604_672, 118_515_712),
    "inception (4e)": ("inception_4e/", "840K", "170M", 867_328, 169_996_288),
    "inception (5a)": ("inception_5a/", "1072K", "54M", 1_042_432, 51_079_168),
    "inception (5b)": ("inception_5b/", "1388K", "71M", 1_442_816, 70_697_984),
    "linear": (["loss3/classifier"], "1000K", "1M", 1_024_000, 1_024_000),
}
#: rows whose printed value no count of the row's own widths gives (reference README
#: caveats; both public transcriptions agree, so these are errors in the paper itself):
#: params conv 7x7 (2.7K vs 9,408 weights), 4a (364K vs 375,552), 4c (463K vs 509,440),
#: 4d (580K vs 604,672), 5a (1072K vs 1,042,432), 5b (1388K vs 1,442,816); ops conv 7x7 (34M
#: vs 9,408 * 112 * 112 = 118.0M) and 5a (54M vs 1,042,432 * 7 * 7 = 51.1M)
PAPER_PARAMS_WRONG = {"conv 7x7/2", "inception (4a)", "inception (4c)", "inception (4d)",
                      "inception (5a)", "inception (5b)"}
PAPER_OPS_WRONG = {"conv 7x7/2", "inception (5a)"}


def googlenet_group(members) -> list[dict]:
    """The paper spec's rows for a Table 1 row: a list of names, or a name prefix."""
    rows = rows_by_name("googlenet_paper")
    if isinstance(members, str):
        return [r for n, r in rows.items() if n.startswith(members)]
    return [rows[n] for n in members]


def printed_close(printed: str, computed: int, unit: int) -> bool:
    """Within the paper's rounding: 1% of the printed value, or half its last unit. Params
    are in K = 1024 weights (3a: 163,328 / 1024 = 159.5 -> "159K"; 4e: 867,328 / 1024 = 847
    -> "840K" is the loosest, 0.8%), ops in M = 10^6 MACs (4a: 73.6M -> "73M")."""
    value = float(printed[:-1])
    return abs(computed / unit - value) <= max(0.01 * value, 0.5)


@pytest.mark.parametrize("key", list(GOOGLENET_TABLE1))
def test_googlenet_table1_params_and_ops(key):
    members, params_printed, ops_printed, weights, macs = GOOGLENET_TABLE1[key]
    layers = googlenet_group(members)
    assert sum(r["weight_params"] for r in layers) == weights
    assert sum(r["macs"] for r in layers) == macs
    if key not in PAPER_PARAMS_WRONG:      # else the paper's printed params are wrong (above)
        assert printed_close(params_printed, weights, 1024), (key, params_printed, weights)
    if key in PAPER_OPS_WRONG:             # the paper's printed ops are wrong (above)
        assert not printed_close(ops_printed, macs, 10**6)
    else:
        assert printed_close(ops_printed, macs, 10**6), (key, ops_printed, macs)


def test_googlenet_table1_rows_against_reference_csv():
    table = reference("googlenet_table1.csv")
    assert len(table) == len(GOOGLENET_ROWS)
    rows = rows_by_name("googlenet_paper")
    graph = model("googlenet_paper").graph
    for row, (members, out_name) in zip(table, GOOGLENET_ROWS):
        layers = googlenet_group(members)
        where = f"{row['type']} {row['patch_size_stride']}"
        # output size, e.g. 28x28x256 (flat outputs as 1x1xF)
        shape = rows[out_name]["output_shape"][1:]
        c, h, w = shape if len(shape) == 3 else (shape[0], 1, 1)
        assert f"{h}x{w}x{c}" == row["output_size"], where
        if row["patch_size_stride"]:      # e.g. 7x7/2: the row's (last) conv or its pool
            patch, stride = row["patch_size_stride"].split("/")
            attrs = model("googlenet_paper").layer(members[-1] if members else out_name).attrs
            assert attrs["kernel_size"] == tuple(int(v) for v in patch.split("x")), where
            assert attrs["stride"] == (int(stride),) * 2, where
        if row["params_weights_computed"]:
            assert sum(r["weight_params"] for r in layers) == int(row["params_weights_computed"]), where
            assert sum(r["macs"] for r in layers) == int(row["macs_computed"]), where
        else:
            assert not layers
        # depth: the most of the row's weight layers on one path through the graph
        names = {r["name"] for r in layers if r["type"] in ("conv2d", "linear")}
        on_path: dict[str, int] = {}
        for node in nx.topological_sort(graph):
            on_path[node] = max((on_path[p] for p in graph.predecessors(node)), default=0) + (node in names)
        assert max(on_path.values()) == int(row["depth"]), where
        # module widths: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
        if row["type"].startswith("inception"):
            prefix = out_name.split("/")[0]
            for column, suffix in (("n1x1", "1x1"), ("n3x3_reduce", "3x3_reduce"), ("n3x3", "3x3"),
                                   ("n5x5_reduce", "5x5_reduce"), ("n5x5", "5x5"), ("pool_proj", "pool_proj")):
                assert rows[f"{prefix}/{suffix}"]["output_shape"][1] == int(row[column]), (where, column)
    # the whole inference network is the sum of the rows: 1,582,671,872 MACs
    assert sum(int(r["macs_computed"] or 0) for r in table) == totals("googlenet_paper", aux=False)["macs"]


def test_googlenet_paper_aux_heads():
    with_aux, without = totals("googlenet_paper"), totals("googlenet_paper", aux=False)
    assert model("googlenet_paper").outputs == ["prob", "loss1/prob", "loss2/prob"]
    assert model("googlenet_paper", aux=False).outputs == ["prob"]
    # inference network: 6,990,272 weights (the sum of Table 1's rows) + 8,280 biases
    assert without["weight_params"] == 6_990_272
    assert without["params"] == 6_998_552
    assert without["macs"] == 1_582_671_872
    # Section 5, per head: conv 1x1x128 on 4x4, FC 2048->1024, classifier 1024->1000, biases:
    # loss1 on 512 channels: 65,664 + 2,098,176 + 1,025,000; loss2 on 528: 67,712 + ...
    assert with_aux["params"] - without["params"] == (65_664 + 2_098_176 + 1_025_000) + (
        67_712 + 2_098_176 + 1_025_000)
    assert with_aux["params"] == 13_378_280
    # MACs: 4x4 positions * C*128 + 2048*1024 + 1024*1000 for each head, in training only (the
    # paper discards the heads at inference): the inference MACs stay the paper's budget
    assert with_aux["training_only_macs"] == (16 * 512 * 128 + 3_121_152) + (16 * 528 * 128 + 3_121_152)
    assert with_aux["macs"] == without["macs"]
    out = rows_by_name("googlenet_paper")
    assert out["loss1/ave_pool"]["output_shape"] == (1, 512, 4, 4)   # "4x4x512 output for the (4a)"
    assert out["loss2/ave_pool"]["output_shape"] == (1, 528, 4, 4)   # "4x4x528 for the (4d) stage"


def test_googlenet_aux_heads_are_training_only():
    # specs/googlenet.yaml builds the heads by default, as torchvision's googlenet(aux_logits=True);
    # the zoo's googlenet (the pretrained model, torchvision's 6,624,904 params) has aux false
    with_aux, without = totals("googlenet", aux=True), totals("googlenet")
    assert without["params"] == 6_624_904       # GoogLeNet_Weights.IMAGENET1K_V1 meta num_params
    # per head (InceptionAux): 1x1 BasicConv2d C*128 + BN 2*128, fc1 2048*1024 + 1024,
    # fc2 1024*1000 + 1000; aux1 reads inception4a (C = 512), aux2 inception4d (C = 528)
    aux1 = 512 * 128 + 256 + 2_098_176 + 1_025_000
    aux2 = 528 * 128 + 256 + 2_098_176 + 1_025_000
    assert with_aux["params"] - without["params"] == aux1 + aux2 == 6_379_984
    assert with_aux["params"] == 13_004_888
    # the heads run only in training: inference MACs are 1,498,376,192 (torchvision's 1.498)
    # either way; theirs, at 4x4 after the adaptive pool: 16*C*128 + 2048*1024 + 1024*1000
    assert with_aux["macs"] == without["macs"] == 1_498_376_192
    assert with_aux["training_only_macs"] == (16 * 512 * 128 + 3_121_152) + (16 * 528 * 128 + 3_121_152)
    assert with_aux["training_only_macs"] == 8_372_224
    assert model("googlenet", aux=True).outputs == ["aux1.fc2", "aux2.fc2", "fc"]
    assert model("googlenet", aux=True).inference_outputs == ["fc"]
    assert model("googlenet").outputs == ["fc"]


def test_googlenet_torchvision_vs_paper():
    tv, paper = rows_by_name("googlenet"), rows_by_name("googlenet_paper")
    # the "5x5" branch: a 3x3 in torchvision (issue 906), a real 5x5 in the paper
    assert tv["inception3a.branch3.1.conv"]["weight_params"] == 16 * 32 * 3 * 3
    assert paper["inception_3a/5x5"]["weight_params"] == 16 * 32 * 5 * 5
    # both pools before 5a give 7x7 (torchvision 2x2/2 ceil, paper 3x3/2 ceil)
    assert tv["maxpool4"]["output_shape"] == paper["pool4/3x3_s2"]["output_shape"] == (1, 832, 7, 7)


# ------------------------------------------------------------------ Inception-v4

def test_inception_v4_params_and_shapes():
    t = totals("inception_v4")
    # timm inception_v4 / Cadene pretrainedmodels inceptionv4 with 1000 classes: 42,679,816
    # (osmr/imgclsmob pytorch/README.md InceptionV4 row; pytorchcv inceptionv4.py test
    # "weight_count == 42679816")
    assert t["params"] == 42_679_816
    assert t["macs"] == 12_253_974_624          # computed here; no published exact figure
    out = rows_by_name("inception_v4")
    # Figure 9: stem 35x35x384, Reduction-A 17x17x1024, Reduction-B 8x8x1536
    assert out["Mixed_5a"]["output_shape"] == (1, 384, 35, 35)
    assert out["inception_a_4.cat"]["output_shape"] == (1, 384, 35, 35)
    assert out["reduction_a.cat"]["output_shape"] == (1, 1024, 17, 17)
    assert out["inception_b_7.cat"]["output_shape"] == (1, 1024, 17, 17)
    assert out["reduction_b.cat"]["output_shape"] == (1, 1536, 8, 8)
    assert out["last_linear"]["params"] == 1536 * 1000 + 1000


# ------------------------------------------------------------------ receptive fields
#
# receptive_fields.csv comes from TF-Slim models. Comparable here:
# * inception_v3 (torchvision's Inception3 is a port of TF-Slim's, VALID stride-2 ops, SAME
#   odd kernels at stride 1, so the effective padding does not depend on the input size) and
#   inception_v4 (the timm/Cadene ports of TF-Slim's): every end point at 224 and 321.
# * ResNet: TF-Slim's resnet_v1 strides on the 3x3 of the LAST unit of each block, so its
#   block1-3 end points sit on the other side of a stride from any torchvision/paper stage
#   end. At block4 (the network's final features) the field is the same as the paper layout's
#   (a stride on the first 1x1 of the next block adds the same as one on the previous 3x3),
#   but not as torchvision's v1.5 (427 instead of 483 for ResNet-50).
# * GoogLeNet: no inception_v1 in the table.

V3_END_POINTS = {"Conv2d_1a_3x3": "Conv2d_1a_3x3.relu", "Conv2d_2a_3x3": "Conv2d_2a_3x3.relu",
                 "Conv2d_2b_3x3": "Conv2d_2b_3x3.relu", "MaxPool_3a_3x3": "maxpool1",
                 "Conv2d_3b_1x1": "Conv2d_3b_1x1.relu", "Conv2d_4a_3x3": "Conv2d_4a_3x3.relu",
                 "MaxPool_5a_3x3": "maxpool2",
                 **{f"Mixed_{m}": f"Mixed_{m}.cat" for m in ("5b", "5c", "5d", "6a", "6b", "6c", "6d",
                                                            "6e", "7a", "7b", "7c")}}
V4_END_POINTS = {"Conv2d_1a_3x3": "Conv2d_1a_3x3.relu", "Conv2d_2a_3x3": "Conv2d_2a_3x3.relu",
                 "Conv2d_2b_3x3": "Conv2d_2b_3x3.relu", "Mixed_3a": "Mixed_3a", "Mixed_4a": "Mixed_4a",
                 "Mixed_5a": "Mixed_5a", "Mixed_6a": "reduction_a.cat", "Mixed_7a": "reduction_b.cat",
                 **{f"Mixed_5{c}": f"inception_a_{i}.cat" for i, c in enumerate("bcde", 1)},
                 **{f"Mixed_6{c}": f"inception_b_{i}.cat" for i, c in enumerate("bcdefgh", 1)},
                 **{f"Mixed_7{c}": f"inception_c_{i}.cat" for i, c in enumerate("bcd", 1)}}


def test_inception_readme_summary_receptive_fields():
    # Araujo et al., Distill 2019 / google-research/receptive_field README summary (224):
    # inception_v3 Mixed_7c 1311 / 32 / 618, inception_v4 Mixed_7d 2071 / 32 / 998
    v3 = rows_by_name("inception_v3", 224, aux=False)["Mixed_7c.cat"]
    v4 = rows_by_name("inception_v4", 224)["inception_c_3.cat"]
    assert (v3["rf_size"], v3["rf_stride"], effective_padding(v3)) == ((1311, 1311), (32, 32), 618)
    assert (v4["rf_size"], v4["rf_stride"], effective_padding(v4)) == ((2071, 2071), (32, 32), 998)


@pytest.mark.parametrize("cnn, spec, end_points", [("inception_v3", "inception_v3", V3_END_POINTS),
                                                  ("inception_v4", "inception_v4", V4_END_POINTS)])
def test_inception_receptive_fields_every_end_point(cnn, spec, end_points):
    table = [r for r in reference("receptive_fields.csv")
             if r["cnn"] == cnn and r["resolution"] in ("224", "321")]
    assert len(table) == 2 * len(end_points) + 1      # + the README summary row
    args = {"aux": False} if spec == "inception_v3" else {}   # AuxLogits' 5x5 conv needs 299x299
    for r in table:
        row = rows_by_name(spec, int(r["resolution"]), **args)[end_points[r["end_point"]]]
        where = (r["table"], r["resolution"], r["end_point"])
        assert row["rf_size"] == (int(r["receptive_field"]),) * 2, where
        assert row["rf_stride"] == (int(r["effective_stride"]),) * 2, where
        assert effective_padding(row) == float(r["effective_padding"]), where
        assert row["rf_aligned"], where


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_resnet_v1_block4_receptive_field(depth):
    # receptive_fields.csv, resnet_v1_<depth>/block4 (TF-Slim): 224 and 321 rows
    expected = {50: (483, 32, 239, 241), 101: (1027, 32, 511, 513), 152: (1507, 32, 751, 753)}[depth]
    size, stride, pad224, pad321 = expected
    for res, pad in ((224, pad224), (321, pad321)):
        row = rows_by_name("resnet50_v1", res, **V1_DEPTH[depth])["layer4.2.relu3"]
        assert row["rf_size"] == (size, size) and row["rf_stride"] == (stride, stride)
        if res == 321:
            assert effective_padding(row) == pad
        else:
            # TF-Slim's SAME 3x3/2 max pool on conv1's 112x112 output pads 0 before and 1 after
            # (PyTorch padding=1 pads 1 on both sides), which shifts the field by one conv1
            # stride of 2 pixels; at 321 (161x161) SAME pads 1 and 1, as here
            assert effective_padding(row) == pad + 2
    if depth == 50:
        for r in reference("receptive_fields.csv"):
            if r["cnn"] == "resnet_v1_50" and r["end_point"].endswith("block4") and r["resolution"] != "None":
                assert (int(r["receptive_field"]), int(r["effective_stride"])) == (size, stride)
        # torchvision's v1.5 is not TF-Slim's layout: the strided 3x3 sits later in the stage
        tv = rows_by_name("resnet50", 224)["layer4.2.relu3"]
        assert tv["rf_size"] == (427, 427) and tv["rf_stride"] == (32, 32)
