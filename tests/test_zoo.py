"""The model zoo: every torchvision CNN by name, exact.

Published figures come from tests/data/torchvision_classification.csv (torchvision 0.29.1's
weights meta: num_params, _ops in GMACs, acc@1/acc@5, eval crop; see its source lines). For
all 68 convolutional models archstat's parameter count equals num_params exactly and its MACs
round to _ops at the digits torchvision prints, at the model's eval crop. Where torchvision is
installed, each model is also built (on PyTorch's meta device: shapes only, no memory) and
compared layer by layer: every conv and linear layer's name, parameter count and output shape,
in execution order.
"""
from __future__ import annotations

import functools
import json

import pytest

import archstat
from archstat import zoo
from archstat.errors import ArchstatError
from archstat.report.zoo_table import reproduces
from reference_data import reference

TORCHVISION = {r["model"]: r for r in reference("torchvision_classification.csv") if r["kind"] == "cnn"}


@functools.lru_cache(maxsize=None)
def analysed(name: str):
    return archstat.analyze(archstat.load(name))


def printed_digits(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def test_the_zoo_names_all_68_torchvision_cnns():
    assert len(TORCHVISION) == 68
    assert set(TORCHVISION) <= set(zoo.entries())


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_model_is_exact(name):
    ref = TORCHVISION[name]
    model = archstat.load(name)
    t = analysed(name).totals
    crop = int(ref["crop"])
    assert model.input_shape == (3, crop, crop), "analysed at the weights' eval crop"
    assert t["params"] == int(ref["num_params"])
    assert round(t["macs"] / 1e9, printed_digits(ref["gmacs"])) == float(ref["gmacs"])
    # the zoo's own copy of the published figures and accuracy agrees with the reference
    assert model.published["params"] == int(ref["num_params"])
    assert model.published["gmacs"] == float(ref["gmacs"])
    assert (model.accuracy["top1"], model.accuracy["top5"]) == (float(ref["acc1"]), float(ref["acc5"]))
    assert ref["weights"] in model.accuracy["source"]
    assert model.family == ref["family"]
    assert reproduces(t["params"], t["macs"], model.published) is True


def test_every_zoo_name_loads_and_configurations_are_unique():
    seen = {}
    for name, entry in zoo.entries().items():
        model = archstat.load(name)
        assert model.zoo_name == name and model.source.strip() and model.family
        key = (entry.spec, tuple(sorted(model.args.items())), model.input_shape)
        assert key not in seen, f"{name} and {seen.get(key)} are the same configuration"
        seen[key] = name


def test_a_family_spec_by_its_file_name_is_its_default_model():
    # loading the spec by its own name, or by path with the same arguments, finds the zoo entry
    model = archstat.load("efficientnet")
    assert model.zoo_name == "efficientnet_b0" and model.accuracy["top1"] == 77.692
    by_path = archstat.load(zoo.specs_dir() / "efficientnet.yaml", {"variant": "b4"})
    assert by_path.zoo_name == "efficientnet_b4" and by_path.input_shape == (3, 380, 380)
    # other arguments make another model: no accuracy or published counts are attached to it
    changed = archstat.load("resnet50", {"num_classes": 10})
    assert changed.zoo_name is None and changed.accuracy is None and changed.published is None


def test_alexnet_is_torchvisions_and_the_lecture_network_keeps_its_path():
    # torchvision's AlexNet is the "one weird trick" variant: 61,100,840 params at 224
    assert analysed("alexnet").totals["params"] == 61_100_840
    # the lecture's one-tower AlexNet (CS231n): 62,378,344 params at 227, by name and by path
    assert analysed("alexnet_lecture").totals["params"] == 62_378_344
    assert archstat.analyze(zoo.specs_dir() / "alexnet.yaml").totals["params"] == 62_378_344


@pytest.mark.parametrize("name, params", [
    ("lenet5", 61_706), ("alexnet_2012", 60_965_224), ("vgg11_lrn", 132_863_336), ("vgg16_c", 133_638_952),
    ("resnet50_v1", 25_557_032), ("googlenet_paper", None), ("inception_v4", None), ("nin", None),
    ("bn_nin", None), ("bn_alexnet", None)])
def test_the_classic_specs_have_names(name, params):
    model = archstat.load(name)
    if params is not None:
        assert analysed(name).totals["params"] == params
    assert model.zoo_name == name


def test_vgg_keeps_its_parameters_at_448_through_the_adaptive_pool():
    # torchvision's VGG ends in AdaptiveAvgPool2d(7): at 448x448 the classifier still sees
    # 7x7x512, so PyTorch's 138,357,544 parameters stay (a fixed 7x7 window would not)
    t = archstat.analyze("vgg16", input_shape=(3, 448, 448)).totals
    assert t["params"] == 138_357_544
    assert t["macs"] == 4 * 15_346_630_656 + 123_633_664  # 4x the conv MACs, the same FC MACs


def test_inception_v3_aux_head_counts_params_but_not_inference_macs():
    # torchvision: 27,161,264 params (aux head included), 5.713 GMACs (aux head excluded)
    t = analysed("inception_v3").totals
    assert t["params"] == 27_161_264 and round(t["macs"] / 1e9, 3) == 5.713
    assert t["training_only_macs"] > 0
    rows = [r for r in analysed("inception_v3").rows() if r["training_only"]]
    assert rows and all(r["name"].startswith("AuxLogits") for r in rows)
    no_aux = archstat.analyze(archstat.load("inception_v3", {"aux": False})).totals
    assert no_aux["macs"] == t["macs"] and no_aux["params"] < t["params"]


def test_googlenet_with_its_aux_heads_is_torchvisions_builder_default():
    # googlenet(weights=None) builds both auxiliary heads: 13,004,888 params; the published
    # weights drop them: 6,624,904
    t = archstat.analyze(archstat.load("googlenet", {"aux": True})).totals
    assert t["params"] == 13_004_888
    assert t["macs"] == analysed("googlenet").totals["macs"]


def test_unknown_names_get_a_did_you_mean():
    with pytest.raises(ArchstatError, match="no such spec file or zoo model 'resnet51'; did you mean 'resnet50'"):
        archstat.load("resnet51")
    with pytest.raises(ArchstatError, match="is a zoo model: name it without a path"):
        archstat.load("specs_that_do_not_exist/vgg16.yaml")


# ------------------------------------------------------------------ the zoo command

def test_zoo_command_lists_every_model_and_checks_the_published_counts(cli):
    code, out, err = cli("zoo")
    assert code == 0 and err == ""
    for name in TORCHVISION:
        assert f"\n{name} " in out
    assert f"{len(TORCHVISION)} of {len(TORCHVISION)} models" in out
    assert "DIFF" not in out


def test_zoo_command_formats_and_family_filter(cli):
    code, out, _ = cli("zoo", "--family", "efficientnet", "--format", "json")
    data = json.loads(out)
    assert [m["model"] for m in data["models"]] == [f"efficientnet_b{k}" for k in range(8)]
    b4 = data["models"][4]
    assert (b4["params"], b4["published_params"], b4["reproduces_published"]) == (19_341_616, 19_341_616, True)
    code, out, _ = cli("zoo", "--family", "regnet_y", "--format", "csv")
    assert out.splitlines()[0].startswith("model,family,title") and len(out.splitlines()) == 1 + 8
    code, _, err = cli("zoo", "--family", "efficentnet")
    assert code == 2 and "did you mean 'efficientnet'" in err


# ------------------------------------------------------------------ against torchvision itself

def _torchvision_layers(name: str, crop: int):
    """torchvision's conv and linear layers of one model: (name, params, output shape) in
    execution order (train mode, batch 2, on the meta device: shapes without memory)."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    from torchvision.models import regnet

    real = regnet.BlockParams.from_init_params.__func__

    def on_cpu(cls, *args, **kwargs):  # RegNet computes its widths with real tensors
        with torch.device("cpu"):
            return real(cls, *args, **kwargs)

    regnet.BlockParams.from_init_params = classmethod(on_cpu)
    try:
        with torch.device("meta"):
            model = torchvision.models.get_model(name)
    finally:
        regnet.BlockParams.from_init_params = classmethod(real)
    model.train()
    seen = []
    for qualified, module in model.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            params = sum(p.numel() for p in module.parameters(recurse=False))
            module.register_forward_hook(
                lambda m, i, o, q=qualified, n=params: seen.append((q, n, tuple(o.shape))))
    with torch.no_grad():
        model(torch.empty(2, 3, crop, crop, device="meta"))
    return seen


@pytest.mark.torchvision
@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_layer_by_layer_against_torchvision(name):
    import warnings

    crop = int(TORCHVISION[name]["crop"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # GoogLeNet's and Inception's init notices
        theirs = _torchvision_layers(name, crop)
    args = {"aux": True} if name == "googlenet" else {}  # the builder's default has the aux heads
    model = archstat.load(name, args)
    rows = archstat.analyze(model, batch=2).rows()
    ours = [(r["name"], r["params"], r["output_shape"]) for r in rows if r["type"] in ("conv2d", "linear")]
    assert [n for n, _, _ in ours] == [n for n, _, _ in theirs], "the same conv/linear layers, in order"
    for (n, p, shape), (_, tp, tshape) in zip(ours, theirs):
        assert (p, shape) == (tp, tshape), n


def test_zoo_checks_per_image_at_any_batch_and_takes_a_spec_name_as_family(cli):
    # torchvision's _ops are per image: at batch 8 every check still holds
    code, out, _ = cli("zoo", "--family", "regnet", "--batch", "8", "--format", "json")
    models = json.loads(out)["models"]
    assert {m["family"] for m in models} == {"regnet_x", "regnet_y"} and len(models) == 15
    assert all(m["reproduces_published"] for m in models)


def test_a_report_shows_the_published_accuracy_and_counts(cli):
    code, out, _ = cli("report", "efficientnet_b4")
    assert "\nAccuracy          top-1 83.384%, top-5 96.594%: torchvision 0.29.1" in out
    flat = " ".join(out.split())   # the summary lines wrap at 100 columns
    assert "torchvision 0.29.1 EfficientNet_B4_Weights" in flat
    assert "19,341,616 params and 4.394 GMACs per image" in flat and "archstat's counts reproduce them" in flat
    code, out, _ = cli("report", "efficientnet_b4", "--input", "3", "224", "224")
    assert "archstat's counts differ" in " ".join(out.split())


@pytest.mark.parametrize("args, says", [
    ({"width_mult": 0.0}, "width_mult > 0"), ({"variant": "medium"}, "variant must be large or small")])
def test_family_specs_check_their_arguments(args, says):
    with pytest.raises(ArchstatError, match=says):
        archstat.load("mobilenet_v3", args)


def test_regnet_refuses_what_torchvision_refuses():
    # torchvision: "Invalid RegNet settings" for wa < 0, w0 <= 0, wm <= 1 or w0 % 8 != 0
    for bad in ({"wm": 1.0}, {"w0": 20}, {"wa": -1.0}, {"depth": 0}):
        with pytest.raises(ArchstatError, match="RegNet needs"):
            archstat.load("regnet", bad)


def test_changing_a_loaded_model_leaves_the_next_load_alone():
    # the loader memoises specs and shares attrs between layers with the same fields: a user's
    # change must stay in that Model (or be refused), never reach the next load
    vgg16 = archstat.load("vgg16")
    with pytest.raises(TypeError, match="read-only"):
        vgg16.layer("features.2").attrs["padding"] = (0, 0)
    assert archstat.analyze("vgg13").totals["macs"] == 11_308_466_176
    resnet50 = archstat.load("resnet50")
    resnet50.args["depth"] = 18
    resnet50.accuracy["top1"] = 1.0
    again = archstat.load("resnet50")
    assert (again.args["depth"], again.zoo_name, again.accuracy["top1"]) == (50, "resnet50", 80.858)
    with pytest.raises(TypeError):
        zoo.entries()["resnet101"].args["depth"] = 18
    assert archstat.load("resnet101").name == "ResNet-101"
