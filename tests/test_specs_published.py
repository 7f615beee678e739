"""The classic specs in specs/ reproduce their published numbers exactly.

Every expected number carries its source in a comment. The key figures are written
inline; the tests that compare with the reference CSVs read the copies in ``tests/data``.
Models are loaded by their zoo names (specs/zoo.yaml): the lecture's AlexNet
(specs/alexnet.yaml) is ``alexnet_lecture`` (the zoo's ``alexnet`` is torchvision's), and the
VGG configurations are specs/vgg.yaml (``vgg16`` = config D), with torchvision's module paths
as layer names (features.N, avgpool, flatten, classifier.N).

Conventions checked here (DESIGN.md): ``params`` include biases; a MAC is one
multiply-accumulate of a conv or linear layer (torchvision's "GFLOPS" are GMACs);
``forward_memory_bytes`` is the CS231n figure, the input plus every layer's output, with
in-place ReLU and view layers (flatten, dropout) adding nothing.
"""
from __future__ import annotations

import functools

import pytest

import archstat
import archstat.zoo
from reference_data import reference  # noqa: E402

#: the weight layers and pools, the rows of the CS231n and lecture tables
TABLE_TYPES = ("input", "conv2d", "max_pool2d", "linear")

#: totals proportional to the batch size, and totals that do not depend on it
BATCH_SCALED = ("macs", "flops", "activations", "activation_bytes", "forward_memory_bytes",
                "peak_activation_bytes")
BATCH_FREE = ("params", "weight_params", "bias_params", "trainable_params", "buffers",
              "param_bytes", "buffer_bytes")


# --------------------------------------------------------------------------- helpers

@functools.lru_cache(maxsize=None)
def analysis(spec: str, batch: int = 1):
    """``archstat.analyze`` of the zoo model ``spec`` at a batch size, float32 (cached)."""
    return archstat.analyze(archstat.load(spec), batch=batch, dtype="float32")


def layer(spec: str, name: str, batch: int = 1) -> dict:
    """One row of the per-layer table, as a dict."""
    rows = analysis(spec, batch).layers
    match = rows[rows["name"] == name]
    assert len(match) == 1, f"{spec}: no single layer named {name!r}"
    return match.iloc[0].to_dict()


def table_rows(spec: str) -> list[dict]:
    """The input, convolutions, max pools and linear layers, in order."""
    return [r for r in analysis(spec).rows() if r["type"] in TABLE_TYPES]


def hwc(shape: tuple[int, ...]) -> str:
    """(N, C, H, W) -> 'HxWxC'; (N, F) -> 'F' (the lecture's notation)."""
    if len(shape) == 4:
        _, c, h, w = shape
        return f"{h}x{w}x{c}"
    return str(shape[1])




def as_int(text: str) -> int:
    """An exact integer from a CSV cell ('150528', not '150528.0')."""
    return int(text)


# ------------------------------------------------------------------------ every spec

#: the packaged spec files (specs/*.yaml without the zoo index), each with its default args
ALL_SPECS = sorted(archstat.zoo.spec_files().values())


@pytest.mark.parametrize("path", ALL_SPECS, ids=[p.name for p in ALL_SPECS])
def test_every_spec_loads_and_cites_a_source(path):
    model = archstat.load(path)
    assert model.source.strip(), f"{path.name}: 'source' must cite where the architecture comes from"
    assert model.name.strip()
    totals = archstat.analyze(model).totals
    assert totals["params"] > 0 and totals["macs"] > 0


MINE = ("lenet5", "alexnet_lecture", "alexnet_2012", "vgg11", "vgg11_lrn", "vgg13", "vgg16_c", "vgg16",
        "vgg19")


@pytest.mark.parametrize("spec", MINE)
def test_classic_specs_are_documented(spec):
    model = archstat.load(spec)
    assert model.description.strip() and model.source.strip() and model.notes.strip()
    if model.accuracy is not None:
        assert model.accuracy.get("source", "").strip(), "an accuracy must name its source"


# --------------------------------------------------------------------------- LeNet-5

def test_lenet5_params():
    # 61,706 = 156 + 2,416 + 48,120 + 10,164 + 850: LeNet-5 with full C3 connectivity
    # (LeCun et al. 1998 Sec. II.B; its own network has 60,000 trainable parameters, C3 1,516)
    assert analysis("lenet5").totals["params"] == 61_706
    expected = {
        "c1": 156,        # LeCun et al. 1998, Sec. II.B: C1 has 156 trainable parameters
        "c3": 2_416,      # 16 * (6*25 + 1), full connectivity (the paper's sparse C3: 1,516)
        "c5": 48_120,     # LeCun et al. 1998, Sec. II.B: C5 has 48,120 trainable connections
        "f6": 10_164,     # LeCun et al. 1998, Sec. II.B: F6 has 10,164 trainable parameters
        "output": 850,    # 84 * 10 + 10 (a linear layer instead of the paper's fixed RBF units)
    }
    for name, params in expected.items():
        assert layer("lenet5", name)["params"] == params, name
    assert layer("lenet5", "s4")["output_shape"] == (1, 16, 5, 5)   # S4: 16 maps of 5x5 (Fig. 2)


# --------------------------------------------------------------------------- AlexNet

# (layer, output volume, one-tower params, two-GPU params): tests/data/alexnet.csv, i.e.
# the seed lecture line 1308 (= CS231n 2017 Lecture 9) layer list; params computed there.
ALEXNET = [
    ("input", "227x227x3", 0, 0),
    ("conv1", "55x55x96", 34_944, 34_944),          # 11*11*3*96 + 96
    ("pool1", "27x27x96", 0, 0),
    ("norm1", "27x27x96", 0, 0),
    ("conv2", "27x27x256", 614_656, 307_456),       # 5*5*96*256 + 256; groups 2: 5*5*48*256 + 256
    ("pool2", "13x13x256", 0, 0),
    ("norm2", "13x13x256", 0, 0),
    ("conv3", "13x13x384", 885_120, 885_120),       # 3*3*256*384 + 384
    ("conv4", "13x13x384", 1_327_488, 663_936),     # 3*3*384*384 + 384; groups 2: 3*3*192*384 + 384
    ("conv5", "13x13x256", 884_992, 442_624),       # 3*3*384*256 + 256; groups 2: 3*3*192*256 + 256
    ("pool5", "6x6x256", 0, 0),
    ("fc6", "4096", 37_752_832, 37_752_832),        # 6*6*256*4096 + 4096
    ("fc7", "4096", 16_781_312, 16_781_312),        # 4096*4096 + 4096
    ("fc8", "1000", 4_097_000, 4_097_000),          # 4096*1000 + 1000
]
#: alexnet_2012 normalises before pooling (Krizhevsky et al. 2012, Sec. 3.5), so its LRN
#: outputs are the conv outputs' size, not the lecture's pooled size
ALEXNET_2012_NORM = {"norm1": "55x55x96", "norm2": "27x27x256"}


def test_alexnet_params():
    # 62,378,344: alexnet.csv TOTAL params_single_tower (lecture / CS231n layer list, one tower)
    totals = analysis("alexnet_lecture").totals
    assert totals["params"] == 62_378_344
    # 62,367,776 weights + 10,568 biases: alexnet.csv comment "weights only"
    assert totals["weight_params"] == 62_367_776
    assert totals["bias_params"] == 10_568
    assert analysis("alexnet_lecture").model.accuracy is None   # no published accuracy of its own


def test_alexnet_layers_match_the_lecture():
    rows = table_rows("alexnet_lecture") + [r for r in analysis("alexnet_lecture").rows() if r["type"] == "lrn"]
    got = {r["name"]: (hwc(r["output_shape"]), r["params"]) for r in rows}
    assert got == {name: (volume, params) for name, volume, params, _ in ALEXNET}
    order = [n for n in analysis("alexnet_lecture").model.order if n in got]
    assert order == [name for name, *_ in ALEXNET]   # the lecture's order, pool before norm


def test_alexnet_2012_params():
    # 60,965,224: alexnet.csv TOTAL params_two_gpu (Krizhevsky et al. 2012, groups 2 on
    # conv2, conv4, conv5; the paper rounds it to "60 million")
    totals = analysis("alexnet_2012").totals
    assert totals["params"] == 60_965_224
    assert totals["weight_params"] == 60_954_656   # alexnet.csv comment "weights only", two-GPU
    rows = table_rows("alexnet_2012") + [r for r in analysis("alexnet_2012").rows() if r["type"] == "lrn"]
    got = {r["name"]: (hwc(r["output_shape"]), r["params"]) for r in rows}
    assert got == {name: (ALEXNET_2012_NORM.get(name, volume), params)
                   for name, volume, _, params in ALEXNET}
    for name in ("conv2", "conv4", "conv5"):
        assert analysis("alexnet_2012").model.layer(name).attrs["groups"] == 2


def test_alexnet_2012_accuracy():
    # Krizhevsky et al. 2012, Table 2, "1 CNN": top-1 error 40.7%, top-5 18.2% (ILSVRC-2012 val)
    acc = analysis("alexnet_2012").model.accuracy
    assert acc["top1"] == pytest.approx(100 - 40.7)
    assert acc["top5"] == pytest.approx(100 - 18.2)
    assert acc["approximate"] is False


@pytest.mark.parametrize("spec, column", [("alexnet_lecture", "params_single_tower"),
                                          ("alexnet_2012", "params_two_gpu")])
def test_alexnet_layers_match_reference_csv(spec, column):
    ref = reference("alexnet.csv")
    by_name = {r["name"]: r for r in analysis(spec).rows()}
    for row in ref:
        if row["layer"] == "TOTAL":
            assert analysis(spec).totals["params"] == as_int(row[column])
            continue
        got = by_name[row["layer"]]
        assert got["params"] == as_int(row[column]), row["layer"]
        if spec == "alexnet_2012" and row["layer"] in ALEXNET_2012_NORM:
            continue   # LRN before pooling in the paper's order (see ALEXNET_2012_NORM)
        assert hwc(got["output_shape"]) == row["output"], row["layer"]
        assert got["activations"] == as_int(row["output_elements"]), row["layer"]


# ------------------------------------------------------------------------------- VGG

# config, spec, params (weights + biases), weights only, MACs at 224x224, Table 2 (M),
# torchvision builder: tests/data/vgg_table2.csv (params_exact_computed,
# weights_only_computed, macs_computed, params_M_paper = Simonyan & Zisserman 2014 Table 2)
VGG = [
    ("A", "vgg11", 132_863_336, 132_851_392, 7_609_090_048, 133, "vgg11"),
    ("A-LRN", "vgg11_lrn", 132_863_336, 132_851_392, 7_609_090_048, 133, None),
    ("B", "vgg13", 133_047_848, 133_035_712, 11_308_466_176, 133, "vgg13"),
    ("C", "vgg16_c", 133_638_952, 133_625_536, 11_770_888_192, 134, None),
    ("D", "vgg16", 138_357_544, 138_344_128, 15_470_264_320, 138, "vgg16"),
    ("E", "vgg19", 143_667_240, 143_652_544, 19_632_062_464, 144, "vgg19"),
]
VGG_IDS = [row[1] for row in VGG]

# torchvision 0.29.1 meta (torchvision_models.csv): num_params, "GFLOPS" (= GMACs), acc@1, acc@5
TORCHVISION = {
    "vgg11": (132_863_336, 7.609, 69.02, 88.628),     # VGG11_Weights.IMAGENET1K_V1, vgg.py:118
    "vgg13": (133_047_848, 11.308, 69.928, 89.246),   # VGG13_Weights.IMAGENET1K_V1, vgg.py:158
    "vgg16": (138_357_544, 15.47, 71.592, 90.382),    # VGG16_Weights.IMAGENET1K_V1, vgg.py:198
    "vgg19": (143_667_240, 19.632, 72.376, 90.876),   # VGG19_Weights.IMAGENET1K_V1, vgg.py:267
}
# Simonyan & Zisserman 2014, Table 3, single scale S=Q=256 (top-1, top-5 error %), via the
# public transcriptions cited in vgg_table2.csv
TABLE3_S256 = {"vgg11_lrn": (29.7, 10.5), "vgg16_c": (28.1, 9.4)}

#: Table 1's columns in torchvision's make_layers notation (torchvision/models/vgg.py cfgs "A",
#: "B", "D", "E"; an int is a 3x3 convolution's width, "M" a 2x2/2 max pool); A-LRN adds the
#: LRN after the first convolution, C's "conv1-N" are its 1x1 convolutions
VGG_CFGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, "conv1-256", "M", 512, 512, "conv1-512", "M",
          512, 512, "conv1-512", "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


def make_layers_names(config: str) -> dict[str, list[str]]:
    """torchvision's module paths of make_layers(cfg, batch_norm=False): features.N counts the
    nn.Sequential's modules (a convolution and its ReLU are two, a pool or an LRN one)."""
    names: dict[str, list[str]] = {"conv": [], "conv1x1": [], "pool": [], "lrn": []}
    index = 0
    for v in VGG_CFGS[config]:
        kind = {"M": "pool", "LRN": "lrn"}.get(v, "conv")
        names[kind].append(f"features.{index}")
        if isinstance(v, str) and v.startswith("conv1-"):
            names["conv1x1"].append(f"features.{index}")
        index += 2 if kind == "conv" else 1
    return names


@pytest.mark.parametrize("config, spec, params, weights, macs, table2_m, tv", VGG, ids=VGG_IDS)
def test_vgg_counts(config, spec, params, weights, macs, table2_m, tv):
    totals = analysis(spec).totals
    assert totals["params"] == params
    assert totals["weight_params"] == weights
    assert totals["macs"] == macs
    assert round(totals["params"] / 1e6) == table2_m        # Table 2, in millions
    if tv is not None:
        tv_params, tv_gmacs, _, _ = TORCHVISION[tv]
        assert totals["params"] == tv_params
        assert round(totals["macs"] / 1e9, 3) == tv_gmacs   # torchvision "GFLOPS" are GMACs


@pytest.mark.parametrize("config, spec, params, weights, macs, table2_m, tv", VGG, ids=VGG_IDS)
def test_vgg_accuracy(config, spec, params, weights, macs, table2_m, tv):
    acc = analysis(spec).model.accuracy
    if tv is not None:
        _, _, top1, top5 = TORCHVISION[tv]
    else:
        top1, top5 = (100 - err for err in TABLE3_S256[spec])
    assert acc["top1"] == pytest.approx(top1)
    assert acc["top5"] == pytest.approx(top5)
    # exact figures: the zoo's torchvision accuracies carry no 'approximate' key (read as false)
    assert acc.get("approximate", False) is False


@pytest.mark.parametrize("config, spec, params, weights, macs, table2_m, tv", VGG, ids=VGG_IDS)
def test_vgg_layout(config, spec, params, weights, macs, table2_m, tv):
    # Table 1: every conv is 3x3 pad 1 (1x1 pad 0 in C), stride 1; pools 2x2/2; FC 4096-4096-1000
    model = analysis(spec).model
    expected = make_layers_names(config)
    convs = [l for l in model.layers() if l.type_name == "conv2d"]
    assert len(convs) + 3 == {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}[config]
    assert [c.name for c in convs] == expected["conv"]
    for conv in convs:
        k = conv.attrs["kernel_size"]
        assert conv.attrs["stride"] == (1, 1)
        assert conv.attrs["padding"] == ((1, 1) if k == (3, 3) else (0, 0))
        # C: the third convolution of stages 3, 4, 5 is Table 1's conv1-256 / conv1-512
        assert k == ((1, 1) if conv.name in expected["conv1x1"] else (3, 3)), conv.name
    assert len(expected["conv1x1"]) == (3 if config == "C" else 0)
    pools = [l for l in model.layers() if l.type_name == "max_pool2d"]
    assert [p.name for p in pools] == expected["pool"] and len(pools) == 5
    assert all(p.attrs["kernel_size"] == (2, 2) and p.attrs["stride"] == (2, 2) for p in pools)
    fcs = [l for l in model.layers() if l.type_name == "linear"]
    assert [(f.name, f.attrs["out_features"]) for f in fcs] == [("classifier.0", 4096), ("classifier.3", 4096),
                                                                 ("classifier.6", 1000)]
    # torchvision's nn.AdaptiveAvgPool2d((7, 7)): the identity on pool5's 7x7 at 224x224
    assert layer(spec, "avgpool")["output_shape"] == layer(spec, expected["pool"][-1])["output_shape"]
    assert layer(spec, "flatten")["output_shape"] == (1, 7 * 7 * 512)
    # torchvision's classifier: Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear
    head = [l.type_name for l in model.layers()][-7:]
    assert head == ["linear", "relu", "dropout", "linear", "relu", "dropout", "linear"]
    assert all(l.attrs["inplace"] for l in model.layers() if l.type_name == "relu")


def test_vgg_lrn_placement():
    # Table 1, A-LRN: LRN right after the first conv3-64; constants of Krizhevsky et al. 2012.
    # In make_layers' numbering: features.0 conv, features.1 its ReLU, features.2 the LRN,
    # features.3 the first max pool
    model = analysis("vgg11_lrn").model
    order = [n for n in model.order if model.layer(n).type_name != "relu"]
    assert order[:4] == ["input", "features.0", "features.2", "features.3"]
    assert [model.layer(n).type_name for n in order[1:4]] == ["conv2d", "lrn", "max_pool2d"]
    attrs = model.layer("features.2").attrs
    assert (attrs["size"], attrs["alpha"], attrs["beta"], attrs["k"]) == (5, 1e-4, 0.75, 2.0)


@pytest.mark.parametrize("config, spec, params, weights, macs, table2_m, tv", VGG, ids=VGG_IDS)
def test_vgg_matches_reference_csvs(config, spec, params, weights, macs, table2_m, tv):
    table2 = {r["config"]: r for r in reference("vgg_table2.csv")}[config]
    totals = analysis(spec).totals
    assert totals["params"] == as_int(table2["params_exact_computed"])
    assert totals["weight_params"] == as_int(table2["weights_only_computed"])
    assert totals["macs"] == as_int(table2["macs_computed"])
    assert round(totals["params"] / 1e6) == as_int(table2["params_M_paper"])
    assert (table2["torchvision_equiv"] or None) == tv
    acc = analysis(spec).model.accuracy
    if tv is None:
        assert acc["top1"] == pytest.approx(100 - float(table2["t3_S256_top1_err"]))
        assert acc["top5"] == pytest.approx(100 - float(table2["t3_S256_top5_err"]))
    else:
        meta = {r["model"]: r for r in reference("torchvision_models.csv")}[tv]
        assert totals["params"] == as_int(meta["num_params"])
        assert round(totals["macs"] / 1e9, 3) == float(meta["gflops"])
        assert acc["top1"] == pytest.approx(float(meta["acc1"]))
        assert acc["top5"] == pytest.approx(float(meta["acc5"]))


# --------------------------------------------------------------------- VGG-16 in detail

# CS231n "VGGNet in detail" (cs231n.github.io convolutional-networks.md; CS231n 2017
# Lecture 9; seed lecture lines 1326-1351), exact values as in cs231n_vgg16.csv: output
# volume and weights (the slide's params column, biases not counted)
CS231N_VGG16 = [
    ("INPUT", "224x224x3", 0),
    ("CONV3-64", "224x224x64", 1_728),
    ("CONV3-64", "224x224x64", 36_864),
    ("POOL2", "112x112x64", 0),
    ("CONV3-128", "112x112x128", 73_728),
    ("CONV3-128", "112x112x128", 147_456),
    ("POOL2", "56x56x128", 0),
    ("CONV3-256", "56x56x256", 294_912),
    ("CONV3-256", "56x56x256", 589_824),
    ("CONV3-256", "56x56x256", 589_824),
    ("POOL2", "28x28x256", 0),
    ("CONV3-512", "28x28x512", 1_179_648),
    ("CONV3-512", "28x28x512", 2_359_296),
    ("CONV3-512", "28x28x512", 2_359_296),
    ("POOL2", "14x14x512", 0),
    ("CONV3-512", "14x14x512", 2_359_296),
    ("CONV3-512", "14x14x512", 2_359_296),
    ("CONV3-512", "14x14x512", 2_359_296),
    ("POOL2", "7x7x512", 0),
    ("FC", "4096", 102_760_448),
    ("FC", "4096", 16_777_216),
    ("FC", "1000", 4_096_000),
]


#: torchvision's VGG has an nn.AdaptiveAvgPool2d((7, 7)) between pool5 and the classifier
#: (vgg.py VGG.avgpool), which CS231n's table does not have: at 224x224 it maps pool5's
#: 7x7x512 to a new 7x7x512 tensor (PyTorch allocates its output, not a view), so the forward
#: memory is CS231n's sum plus 7 * 7 * 512 = 25,088 elements
VGG_AVGPOOL_ELEMENTS = 7 * 7 * 512


def test_vgg16_totals():
    totals = analysis("vgg16").totals
    assert totals["params"] == 138_357_544          # torchvision vgg16 num_params; vgg_table2.csv D
    assert totals["macs"] == 15_470_264_320         # vgg_table2.csv D macs_computed (= 15.470 GMACs)
    assert totals["weight_params"] == 138_344_128   # CS231n "TOTAL params: 138M" (weights only)
    assert totals["bias_params"] == 13_416          # cs231n_vgg16.csv: the biases the slide omits
    # CS231n rows summed (input + every conv/pool/fc output) = 15,237,608 elements, float32
    # (cs231n_vgg16.csv "TOTAL memory"; the slide's "24M" is not the sum of its own rows), plus
    # torchvision's avgpool output: 15,237,608 + 25,088 = 15,262,696 elements
    assert totals["forward_memory_bytes"] == (15_237_608 + VGG_AVGPOOL_ELEMENTS) * 4 == 61_050_784
    assert layer("vgg16", "avgpool")["activations"] == VGG_AVGPOOL_ELEMENTS


def test_vgg16_layers_match_cs231n():
    rows = table_rows("vgg16")
    assert len(rows) == len(CS231N_VGG16)
    for got, (label, volume, weights) in zip(rows, CS231N_VGG16):
        assert hwc(got["output_shape"]) == volume, (got["name"], label)
        assert got["weight_params"] == weights, (got["name"], label)
    assert sum(r["activations"] for r in rows) == 15_237_608
    assert sum(w for *_, w in CS231N_VGG16) == 138_344_128
    # torchvision's module paths for CS231n's rows: conv1_1 .. conv5_3 and pool1 .. pool5 are
    # make_layers' features.N (each conv followed by its ReLU), fc6 .. fc8 classifier.0/3/6
    names = [r["name"] for r in rows]
    assert names == ["input", "features.0", "features.2", "features.4", "features.5", "features.7",
                     "features.9", "features.10", "features.12", "features.14", "features.16",
                     "features.17", "features.19", "features.21", "features.23", "features.24",
                     "features.26", "features.28", "features.30", "classifier.0", "classifier.3",
                     "classifier.6"]


def test_vgg16_matches_cs231n_csv():
    ref = reference("cs231n_vgg16.csv")
    table = [r for r in ref if not r["layer"].startswith("TOTAL")]
    rows = table_rows("vgg16")
    assert len(rows) == len(table)
    for got, row in zip(rows, table):
        where = (got["name"], row["layer"])
        assert hwc(got["output_shape"]).replace("4096", "1x1x4096").replace("1000", "1x1x1000") \
            == row["output_hwc"], where
        assert got["activations"] == as_int(row["memory_elements_exact"]), where
        assert got["weight_params"] == as_int(row["params_weights_exact"]), where
        assert got["params"] == as_int(row["params_with_bias_exact"]), where
    total = {r["layer"]: r for r in ref}
    totals = analysis("vgg16").totals
    # plus torchvision's avgpool output, which CS231n's table does not have (see above)
    assert totals["forward_memory_bytes"] == 4 * (as_int(total["TOTAL memory"]["memory_elements_exact"])
                                                  + VGG_AVGPOOL_ELEMENTS)
    assert totals["weight_params"] == as_int(total["TOTAL params"]["params_weights_exact"])
    assert totals["params"] == as_int(total["TOTAL params"]["params_with_bias_exact"])


# -------------------------------------------------------------------- batch scaling

@pytest.mark.parametrize("spec", MINE)
def test_batch_scaling(spec):
    one, eight = analysis(spec, 1), analysis(spec, 8)
    for key in BATCH_SCALED:
        assert eight.totals[key] == 8 * one.totals[key], key
    for key in BATCH_FREE:
        assert eight.totals[key] == one.totals[key], key
    assert eight.totals["params"] > 0 and eight.totals["macs"] > 0
    for a, b in zip(one.rows(), eight.rows()):
        assert b["output_shape"] == (8, *a["output_shape"][1:])
        for key in ("macs", "flops", "activations", "activation_bytes", "live_bytes"):
            assert b[key] == 8 * a[key], (a["name"], key)
        for key in ("params", "weight_params", "bias_params", "param_bytes"):
            assert b[key] == a[key], (a["name"], key)
