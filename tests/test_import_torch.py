"""The PyTorch importer (archstat.importers.torch_import.read_torch): small hand-written
modules for each mapping and each error, with hand-derived counts and the engine's output
against the module's (float64), shared modules, training-only branches; then every
torchvision CNN against the zoo's exact numbers, and a representative handful run on the
engine against torchvision's own output."""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import archstat  # noqa: E402
from archstat import zoo  # noqa: E402
from archstat.errors import ArchstatError  # noqa: E402
from archstat.importers.torch_import import read_torch, supported  # noqa: E402
from torchvision_meta import meta_model  # noqa: E402


def imported(module, shape, **kwargs):
    """(Imported, totals at batch 1)."""
    imp = read_torch(module, input_shape=shape, **kwargs)
    return imp, archstat.analyze(archstat.load(imp.spec)).totals


def layers(imp):
    return [(e["name"], e["type"]) for e in imp.spec["layers"]]


def same_output(module, shape, batch=2, seed=0):
    """Import a float64 copy of ``module`` in eval mode and check that the engine, with the
    imported weights, gives the module's output to 1e-10. Returns the Imported."""
    module = module.double().eval()
    torch.manual_seed(seed)
    x = torch.randn(batch, *shape, dtype=torch.float64)
    imp = read_torch(module, input_shape=shape, batch=batch)
    y = archstat.Executor(archstat.load(imp.spec), weights=imp.weights, dtype="float64").forward(x.numpy())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)    # PyTorch's thread pool on a busy 2-core machine: 0.07 s becomes 20 s
    try:
        with torch.no_grad():
            want = module(x).numpy()
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)
    return imp


def randomise_norms(module):
    """Batch and layer norm statistics and affine parameters away from the identity, so that
    a wrong mapping shows in the output."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in module.modules():
            for name in ("running_mean", "bias"):
                t = getattr(m, name, None)
                if isinstance(t, torch.Tensor) and isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                    t.copy_(torch.rand(t.shape, generator=gen) - 0.5)
            for name in ("running_var", "weight"):
                t = getattr(m, name, None)
                if isinstance(t, torch.Tensor) and isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                    t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
        for name, p in module.named_parameters():
            if name.endswith("layer_scale"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
    return module


# ------------------------------------------------------------------ modules

def test_a_plain_cnn_keeps_its_module_paths_counts_and_output():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.3), nn.Linear(8 * 4 * 4, 10))
    randomise_norms(net)
    imp, t = imported(net, (3, 8, 8))
    assert layers(imp) == [("0", "conv2d"), ("1", "batch_norm2d"), ("2", "relu"), ("3", "max_pool2d"),
                           ("4", "flatten"), ("5", "dropout"), ("6", "linear")]
    conv, _, relu, pool, _, drop, fc = imp.spec["layers"]
    assert conv == {"name": "0", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1, "bias": False,
                    "inputs": ["input"]}
    assert relu["inplace"] is True and pool["kernel_size"] == 2 and drop["p"] == 0.3
    assert "in_features" not in fc      # 2-D input: inferred
    # conv 8*3*3*3 = 216, batch norm 8 + 8 (and 16 buffer values), linear 128*10 + 10 = 1290
    assert t["params"] == 216 + 16 + 1290 and t["buffers"] == 16
    # conv: 8 * 8*8 outputs * 27 = 13824; linear 128 * 10 = 1280
    assert t["macs"] == 13_824 + 1_280
    assert set(imp.weights) == {"0", "1", "6"}
    assert imp.weights["0"]["weight"].shape == (8, 3, 3, 3)
    assert set(imp.weights["1"]) == {"weight", "bias", "running_mean", "running_var"}
    assert imp.spec["input"] == [3, 8, 8] and imp.spec["name"] == "Sequential"
    same_output(net, (3, 8, 8))


def test_conv_settings_pass_through():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(4, 6, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
                        nn.Conv2d(6, 6, 3, padding="same", padding_mode="reflect", groups=6, bias=False),
                        nn.Conv2d(6, 2, 1, padding="valid"))
    imp = same_output(net, (4, 9, 11))
    first, depthwise, last = imp.spec["layers"]
    assert first["kernel_size"] == [3, 5] and first["stride"] == [2, 1] and first["dilation"] == [1, 2]
    assert first["groups"] == 2 and first["padding"] == [1, 2]
    assert depthwise["padding"] == "same" and depthwise["padding_mode"] == "reflect" and depthwise["groups"] == 6
    assert last["padding"] == "valid"
    # params: 6*2*15 + 6 = 186; 6*1*9 = 54; 2*6 + 2 = 14
    assert archstat.analyze(archstat.load(imp.spec)).totals["params"] == 186 + 54 + 14


class Activations(nn.Module):
    def __init__(self):
        super().__init__()
        self.mods = nn.ModuleList([nn.ReLU6(), nn.SiLU(), nn.Hardswish(), nn.Hardsigmoid(), nn.GELU("tanh"),
                                   nn.Tanh(), nn.Sigmoid(), nn.GELU()])

    def forward(self, x):
        for m in self.mods:
            x = m(x)
        x = F.relu6(x)
        x = F.hardtanh(x, 0.0, 6.0)
        x = F.silu(x)
        x = F.hardswish(x)
        x = F.hardsigmoid(x)
        x = F.gelu(x, approximate="tanh")
        x = torch.tanh(x)
        x = x.sigmoid()
        x = F.relu(x)
        return torch.relu_(x)


def test_activations_modules_and_functions():
    imp = same_output(Activations(), (2, 3, 3))
    assert [e["type"] for e in imp.spec["layers"]] == [
        "relu6", "silu", "hardswish", "hardsigmoid", "gelu", "tanh", "sigmoid", "gelu",
        "relu6", "relu6", "silu", "hardswish", "hardsigmoid", "gelu", "tanh", "sigmoid", "relu", "relu"]
    by_name = {e["name"]: e for e in imp.spec["layers"]}
    assert by_name["mods.4"]["approximate"] == "tanh" and "approximate" not in by_name["mods.7"]
    assert by_name["hardtanh"]["type"] == "relu6" and by_name["gelu"]["approximate"] == "tanh"
    assert by_name["relu_1"]["inplace"] is True     # torch.relu_
    assert imp.weights == {}


class Pools(nn.Module):
    def __init__(self):
        super().__init__()
        self.avg = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
        self.max = nn.MaxPool2d(2, 1, dilation=2)
        self.adaptive = nn.AdaptiveAvgPool2d((3, 2))
        self.adaptive_max = nn.AdaptiveMaxPool2d(2)
        self.lrn = nn.LocalResponseNorm(3, alpha=0.01, beta=0.5, k=2.0)
        self.gap = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = self.lrn(self.max(self.avg(x)))
        a = self.adaptive(x)
        b = self.adaptive_max(F.max_pool2d(x, 2, ceil_mode=True))
        c = F.avg_pool2d(x, 2, padding=1)
        return torch.cat([self.gap(a), F.adaptive_avg_pool2d(b, 1), F.adaptive_max_pool2d(c, (1, 1))], 1)


def test_pools_modules_and_functions():
    imp = same_output(Pools(), (4, 13, 11))
    by_name = {e["name"]: e for e in imp.spec["layers"]}
    assert by_name["avg"] == {"name": "avg", "type": "avg_pool2d", "kernel_size": 3, "stride": 2, "padding": 1,
                              "ceil_mode": True, "count_include_pad": False, "inputs": ["input"]}
    assert by_name["max"]["dilation"] == 2 and by_name["max"]["stride"] == 1
    assert by_name["adaptive"]["output_size"] == [3, 2] and by_name["adaptive_max"]["output_size"] == 2
    assert by_name["lrn"] == {"name": "lrn", "type": "lrn", "size": 3, "alpha": 0.01, "beta": 0.5, "k": 2.0,
                              "inputs": ["max"]}
    # output size 1 is global average pooling (the zoo's choice: the same counts)
    assert by_name["gap"]["type"] == by_name["adaptive_avg_pool2d"]["type"] == "global_avg_pool2d"
    assert by_name["adaptive_max_pool2d"]["type"] == "adaptive_max_pool2d"
    assert by_name["max_pool2d"]["ceil_mode"] is True and by_name["avg_pool2d"]["padding"] == 1
    assert by_name["cat"]["inputs"] == ["gap", "adaptive_avg_pool2d", "adaptive_max_pool2d"]


def test_batch_norm_settings():
    net = nn.Sequential(nn.BatchNorm2d(3, eps=1e-3, momentum=0.01), nn.BatchNorm2d(3, affine=False),
                        nn.BatchNorm2d(3, track_running_stats=False, momentum=None))
    randomise_norms(net)
    imp = same_output(net, (3, 4, 4))
    first, no_affine, no_stats = imp.spec["layers"]
    assert first["eps"] == 1e-3 and first["momentum"] == 0.01
    assert no_affine["affine"] is False and set(imp.weights["1"]) == {"running_mean", "running_var"}
    assert no_stats["track_running_stats"] is False and set(imp.weights["2"]) == {"weight", "bias"}
    assert "momentum" not in no_stats and any("momentum None" in n and "(2)" in n for n in imp.notes)
    t = archstat.analyze(archstat.load(imp.spec)).totals
    assert (t["params"], t["buffers"]) == (3 + 3 + 3 + 3, 6 + 6)


class ChannelsLast(nn.Module):
    """A ConvNeXt block written with plain torch: depthwise conv, permute, LayerNorm, two
    Linear on the last axis with GELU, permute back, a layer-scale parameter, residual add."""

    def __init__(self, dim=4):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim, 1, 1), 0.5))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.fc2(F.gelu(self.fc1(self.norm(y))))
        return x + self.gamma * y.permute(0, 3, 1, 2)


def test_channels_last_block_layer_norm_linear_on_the_last_axis_and_layer_scale():
    block = randomise_norms(ChannelsLast())
    imp = same_output(block, (4, 6, 5))
    assert layers(imp) == [("dwconv", "conv2d"), ("permute", "permute"), ("norm", "layer_norm"), ("fc1", "linear"),
                           ("gelu", "gelu"), ("fc2", "linear"), ("permute_1", "permute"), ("gamma", "layer_scale"),
                           ("add", "add")]
    by_name = {e["name"]: e for e in imp.spec["layers"]}
    assert by_name["permute"]["dims"] == [0, 2, 3, 1] and by_name["norm"]["normalized_shape"] == [4]
    assert by_name["fc1"]["in_features"] == 4 and by_name["fc2"]["in_features"] == 16   # (N, H, W, C) input
    assert imp.weights["gamma"]["weight"].shape == (4, 1, 1)
    t = archstat.analyze(archstat.load(imp.spec)).totals
    # dwconv 4*49 + 4 = 200; norm 8; fc1 4*16 + 16 = 80; fc2 16*4 + 4 = 68; gamma 4
    assert t["params"] == 200 + 8 + 80 + 68 + 4
    # dwconv 4 * 30 * 49 = 5880; fc1 30 * 4 * 16 = 1920; fc2 the same
    assert t["macs"] == 5_880 + 1_920 + 1_920


def test_torchvision_layer_norm2d_permute_and_stochastic_depth():
    pytest.importorskip("torchvision")
    from torchvision.models.convnext import LayerNorm2d
    from torchvision.ops import Permute, StochasticDepth

    net = nn.Sequential(LayerNorm2d(3, eps=1e-6), Permute([0, 2, 3, 1]), nn.LayerNorm(3), Permute([0, 3, 1, 2]),
                        StochasticDepth(0.2, "row"), nn.Identity())
    randomise_norms(net)
    imp = same_output(net, (3, 4, 5))
    assert layers(imp) == [("0", "layer_norm2d"), ("1", "permute"), ("2", "layer_norm"), ("3", "permute"),
                           ("4", "stochastic_depth")]     # Identity writes no layer
    assert imp.spec["layers"][0]["eps"] == 1e-6 and imp.spec["layers"][4] == {
        "name": "4", "type": "stochastic_depth", "p": 0.2, "inputs": ["3"]}
    assert archstat.analyze(archstat.load(imp.spec)).totals["params"] == 6 + 6


class Functional(nn.Module):
    """Functional code as torchvision writes it: F.relu, x + y, torch.cat, x.mean keepdim for an
    SE gate, x * gate, x.mean((2, 3)) before the classifier."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        y = F.relu(self.conv(x), inplace=True)
        z = x + y
        w = torch.cat([z, x], 1)
        gate = torch.sigmoid(w.mean((2, 3), keepdim=True))
        w = gate * w
        return self.fc(w.mean([2, 3]))


def test_functional_ops_are_named_and_counted():
    imp = same_output(Functional(), (4, 6, 6))
    assert layers(imp) == [("conv", "conv2d"), ("relu", "relu"), ("add", "add"), ("cat", "concat"),
                           ("mean", "global_avg_pool2d"), ("sigmoid", "sigmoid"), ("mul", "mul"),
                           ("mean_1", "global_avg_pool2d"), ("mean_1.flatten", "flatten"), ("fc", "linear")]
    by_name = {e["name"]: e for e in imp.spec["layers"]}
    assert by_name["relu"]["inplace"] is True and by_name["add"]["inputs"] == ["input", "relu"]
    assert by_name["mul"]["inputs"] == ["cat", "sigmoid"]     # the full-size tensor first (archstat's mul)
    t = archstat.analyze(archstat.load(imp.spec)).totals
    # conv 4*4*9 + 4 = 148, fc 8*5 + 5 = 45; MACs conv 4 * 36 * 36 = 5184, fc 40
    assert (t["params"], t["macs"]) == (193, 5_224)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)

    def forward(self, x):
        return self.conv(x) + x


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(Block(), Block())

    def forward(self, x):
        return torch.flatten(self.layer1(x), 1)


def test_functional_layers_are_named_under_the_module_that_runs_them():
    imp = same_output(Nested(), (2, 3, 3))
    assert layers(imp) == [("layer1.0.conv", "conv2d"), ("layer1.0.add", "add"), ("layer1.1.conv", "conv2d"),
                           ("layer1.1.add", "add"), ("flatten", "flatten")]


class Shapes(nn.Module):
    def __init__(self):
        super().__init__()
        self.shuffle = nn.ChannelShuffle(2)
        self.drop = nn.Dropout(0.1, inplace=True)

    def forward(self, x):                        # (N, 8, 4, 4)
        a, b = x.chunk(2, dim=1)
        c, d, e = torch.split(x, [2, 2, 4], 1)
        s = torch.cat((b, a, c, d, e), dim=1)    # 16 channels
        n, ch, h, w = s.size()
        s = s.view(n, 4, ch // 4, h, w).transpose(1, 2).contiguous().view(n, -1, h, w)
        s = F.dropout(self.shuffle(s), 0.2, training=self.training)
        t = torch.transpose(self.drop(s), 2, 3).contiguous()
        return F.softmax(t.reshape(t.size(0), -1), dim=1) + torch.flatten(t, 1).view(n, -1)


def test_shape_operations_split_shuffle_permute_flatten():
    imp = same_output(Shapes(), (8, 4, 4))
    by_name = {e["name"]: e for e in imp.spec["layers"]}
    assert by_name["chunk.0"] == {"name": "chunk.0", "type": "split", "chunks": 2, "index": 0, "inputs": ["input"]}
    # torch.split is a torch.* function where a split is usually a method (x.chunk): the spec says so
    assert by_name["split.2"] == {"name": "split.2", "type": "split", "sizes": [2, 2, 4], "index": 2,
                                  "inputs": ["input"], "call": "torch"}
    assert by_name["cat"]["inputs"] == ["chunk.1", "chunk.0", "split.0", "split.1", "split.2"]
    # view / transpose / contiguous / view is one channel shuffle; nn.ChannelShuffle another
    assert by_name["channel_shuffle"] == {"name": "channel_shuffle", "type": "channel_shuffle", "groups": 4,
                                          "inputs": ["cat"], "call": "method"}
    assert by_name["shuffle"]["type"] == "channel_shuffle" and by_name["shuffle"]["groups"] == 2
    assert by_name["shuffle"]["call"] == "module"
    assert by_name["dropout"]["p"] == 0.2 and by_name["drop"]["inplace"] is True
    assert by_name["dropout"]["call"] == "function" and "call" not in by_name["drop"]   # F.dropout; nn.Dropout
    assert by_name["transpose"] == {"name": "transpose", "type": "permute", "dims": [0, 1, 3, 2], "inputs": ["drop"],
                                    "call": "torch"}
    assert by_name["flatten"]["type"] == by_name["flatten_1"]["type"] == "flatten"   # reshape(N, -1), flatten
    assert by_name["softmax"]["type"] == "softmax"
    assert "view" not in by_name       # .view(n, -1) of a flat tensor: nothing to do
    assert not any(e["type"] == "opaque" for e in imp.spec["layers"])


# ------------------------------------------------------------------ shared modules, training-only branches

class SharedConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(self.relu(self.conv(x))))


def test_a_module_called_twice_is_two_layers_holding_one_set_of_weights():
    # torchinfo#322 and ptflops#106: a module used twice is one set of parameters, two layers' work
    imp = same_output(SharedConv(), (3, 5, 5))
    assert layers(imp) == [("conv", "conv2d"), ("relu", "relu"), ("conv_1", "conv2d"), ("relu_1", "relu")]
    conv_1 = next(e for e in imp.spec["layers"] if e["name"] == "conv_1")
    assert conv_1["shares"] == "conv" and "conv_1" not in imp.weights   # the second use runs the first's
    t = archstat.analyze(archstat.load(imp.spec)).totals
    # 3*3*3*3 + 3 = 84 parameters, once; 3*25*27 MACs per use
    assert t["params"] == 84 and t["macs"] == 2 * (3 * 25 * 27)
    shared = [n for n in imp.notes if "shares:" in n]
    assert len(shared) == 1 and "conv_1 -> conv" in shared[0]
    assert not any("relu" in n for n in shared)      # a parameter-free module shares nothing


class TiedBias(nn.Module):
    """Two convs of different kernels with one bias tensor (a parameter tied between modules)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 3, 3, padding=1)
        self.b = nn.Conv2d(3, 3, 1)
        self.b.bias = self.a.bias

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_a_parameter_tied_between_modules_counts_once():
    imp = same_output(TiedBias(), (3, 5, 5))
    b = next(e for e in imp.spec["layers"] if e["name"] == "b")
    assert b["shares"] == {"bias": "a"} and set(imp.weights["b"]) == {"weight"}
    # a: 3*3*9 + 3 = 84; b: 3*3 weights, its bias is a's
    assert archstat.analyze(archstat.load(imp.spec)).totals["params"] == 84 + 9
    assert any("b.bias -> a" in n and "count once" in n for n in imp.notes)
    assert not any("too many" in n for n in imp.notes)


class WithAux(nn.Module):
    """An auxiliary head that runs only in training, as GoogLeNet's and Inception-v3's."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.aux = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x):
        x = self.stem(x)
        if self.training:
            return self.head(x), self.aux(x)
        return self.head(x)


def test_training_only_branches_count_parameters_not_macs():
    module = WithAux().train()
    module.head[0].eval()
    imp = same_output(module, (3, 5, 5))
    assert module.training is False    # same_output put it in eval; read_torch leaves modes as they were
    module.train()
    module.head[0].eval()
    read_torch(module, input_shape=(3, 5, 5))
    assert module.training and module.stem.training and not module.head[0].training
    assert layers(imp) == [("stem", "conv2d"), ("aux.0", "global_avg_pool2d"), ("aux.1", "flatten"),
                           ("aux.2", "linear"), ("head.0", "relu"), ("head.1", "global_avg_pool2d"),
                           ("head.2", "flatten"), ("head.3", "linear")]
    assert [e["name"] for e in imp.spec["layers"] if e.get("training_only")] == ["aux.0", "aux.1", "aux.2"]
    t = archstat.analyze(archstat.load(imp.spec)).totals
    # stem 4*3*9 + 4 = 112, aux 4*2 + 2 = 10, head 4*3 + 3 = 15; MACs stem 4*25*27, head 12
    assert t["params"] == 112 + 10 + 15
    assert t["macs"] == 2_700 + 12 and t["training_only_macs"] == 8
    assert any("run only in training" in n for n in imp.notes)


class DeadInEval(nn.Module):
    """A branch computed in eval mode but used only in training."""

    def __init__(self):
        super().__init__()
        self.stem, self.side, self.aux = nn.Conv2d(3, 2, 1), nn.Conv2d(2, 2, 1), nn.Conv2d(2, 1, 1)

    def forward(self, x):
        x = self.stem(x)
        side = self.side(x)
        y = x + x
        return (y, self.aux(side)) if self.training else y


def test_a_branch_unused_at_inference_is_training_only():
    imp = same_output(DeadInEval(), (3, 2, 2))
    assert layers(imp) == [("stem", "conv2d"), ("side", "conv2d"), ("aux", "conv2d"), ("add", "add")]
    assert [e["name"] for e in imp.spec["layers"] if e.get("training_only")] == ["side", "aux"]
    assert imp.spec["layers"][3]["inputs"] == ["stem", "stem"]
    assert not any("read by no traced call" in n for n in imp.notes)
    assert archstat.analyze(archstat.load(imp.spec)).totals["params"] == 8 + 6 + 3


def test_a_module_archstat_maps_whole_stays_one_layer():
    imp = same_output(nn.Conv2d(3, 2, 3, bias=False), (3, 5, 5))
    assert imp.spec["layers"] == [{"name": "conv2d", "type": "conv2d", "out_channels": 2, "kernel_size": 3,
                                   "bias": False, "inputs": ["input"]}]
    assert imp.spec["name"] == "Conv2d"


class UnknownAux(WithAux):
    def __init__(self):
        super().__init__()
        self.aux = nn.Sequential(nn.PixelShuffle(2))


def test_an_unknown_operation_in_a_training_only_branch_says_so():
    with pytest.raises(ArchstatError, match=_escape("layer 'aux.0': module torch.nn.PixelShuffle (fx node 'aux_0', "
                                                    "in the training-only branch, inputs (2, 4, 6, 6))")):
        read_torch(UnknownAux(), input_shape=(3, 6, 6))


def drop_path(x, p, training):
    """Stochastic depth written in Python (as timm's drop_path): the identity at inference."""
    if not training or p == 0.0:
        return x
    keep = (torch.rand_like(x[:, :1, :1, :1]) > p).to(x.dtype)
    return x * keep / (1 - p)


class DropPathNet(nn.Module):
    def __init__(self, aux=False):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.aux = nn.Conv2d(2, 1, 1) if aux else None

    def forward(self, x):
        y = x + drop_path(self.conv(x), 0.2, self.training)
        if self.training and self.aux is not None:
            return y, self.aux(x)
        return y


def test_a_main_path_that_differs_in_training_is_imported_as_at_inference():
    imp = same_output(DropPathNet(), (2, 3, 3))
    assert layers(imp) == [("conv", "conv2d"), ("add", "add")]
    assert any("In training mode the module computes more than its inference graph" in n and "rand_like" in n
               for n in imp.notes)
    # with the main output itself different in training, no side branch can be told apart: the
    # auxiliary conv is left out, and said to be
    imp = same_output(DropPathNet(aux=True), (2, 3, 3))
    assert layers(imp) == [("conv", "conv2d"), ("add", "add")]
    assert any("read by no traced call" in n and "aux.weight" in n for n in imp.notes)


class Constant(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))

    def forward(self, x):
        return self.body(x) * torch.full((1, 3, 1, 1), 0.5)    # a tensor made in forward: an fx constant


def test_the_import_leaves_the_module_alone():
    net = Constant().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    attributes = set(vars(net))
    imp = read_torch(net, input_shape=(3, 4, 4), batch=4, allow_unknown=True)    # traced in training mode too
    assert net.training and all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert set(vars(net)) == attributes     # fx's _tensor_constant0 lives in its GraphModule only
    # the constant is the same in both traces: training computes nothing else
    assert layers(imp) == [("body.0", "conv2d"), ("body.1", "batch_norm2d"), ("mul", "opaque")]
    assert not any("In training mode" in n for n in imp.notes)


# ------------------------------------------------------------------ names, notes, meta

class Odd(nn.Module):
    def __init__(self):
        super().__init__()
        self.input = nn.Conv2d(3, 3, 1)
        self.d = nn.ModuleDict({"a b": nn.ReLU()})
        self.unused = nn.Linear(2, 2)

    def forward(self, x, scale=None):
        x = self.d["a b"](self.input(x))
        return x if scale is None else x * scale


def test_names_that_cannot_be_layer_names_are_renamed_and_unread_parameters_noted():
    imp, t = imported(Odd(), (3, 4, 4))
    assert layers(imp) == [("input_1", "conv2d"), ("d.a_b", "relu")]
    assert any("'input' is input_1" in n and "'d.a b' is d.a_b" in n for n in imp.notes)
    assert any(n.startswith("6 parameter and buffer values are read by no traced call") and "unused.weight" in n
               for n in imp.notes)
    assert t["params"] == 12      # forward's scale=None default is bound; the unused Linear is not counted


def test_a_module_on_the_meta_device_imports_without_weights():
    with torch.device("meta"):
        net = nn.Sequential(nn.Conv2d(3, 64, 3), nn.ReLU())
    imp, t = imported(net, (3, 32, 32))
    assert imp.weights == {} and any("meta device" in n for n in imp.notes)
    assert t["params"] == 64 * 27 + 64


def test_weights_are_copies_and_the_spec_says_where_it_came_from():
    net = nn.Sequential(nn.Conv2d(3, 2, 1))
    imp = read_torch(net, input_shape=(3, 2, 2))
    with torch.no_grad():
        net[0].weight.zero_()
    assert np.abs(imp.weights["0"]["weight"]).sum() > 0
    assert "torch.nn.modules.container.Sequential" in imp.spec["source"] and "torch.fx" in imp.spec["source"]
    assert imp.spec["notes"] == " ".join(imp.notes)


def test_a_linear_model_on_flat_features():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 2), nn.Softmax(dim=1))
    imp = same_output(net, (3, 2, 2))
    # nn.Flatten is a module where a flatten is usually torch.flatten: the spec says so
    assert imp.spec["layers"][0] == {"name": "0", "type": "flatten", "inputs": ["input"], "call": "module"}
    assert imp.spec["layers"][-1]["type"] == "softmax"


# ------------------------------------------------------------------ what archstat cannot map

class Unknown(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 1)
        self.body = nn.Sequential(nn.PixelShuffle(2))
        self.act = nn.PReLU()
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        return self.pool(self.act(self.body(self.conv(x))))


def test_an_unknown_module_is_an_error_naming_path_class_shapes_and_what_is_supported():
    with pytest.raises(ArchstatError) as info:
        read_torch(Unknown(), input_shape=(3, 4, 4))
    text = str(info.value)
    assert text.startswith("Unknown: layer 'body.0': module torch.nn.PixelShuffle (fx node 'body_0', "
                           "inputs (1, 12, 4, 4)): archstat has no layer type for it")
    assert "archstat maps 25 module classes (Conv2d, Linear, BatchNorm2d" in text and "allow_unknown=True" in text
    assert "\n" not in text


def test_allow_unknown_passes_them_through_uncounted():
    imp, t = imported(Unknown(), (3, 4, 4), allow_unknown=True)
    assert layers(imp) == [("conv", "conv2d"), ("body.0", "opaque"), ("act", "opaque"), ("pool", "max_pool2d")]
    assert imp.uncounted == [
        {"name": "body.0", "op": "PixelShuffle", "inputs": ["conv"], "output_shape": [3, 8, 8]},
        {"name": "act", "op": "PReLU", "inputs": ["body.0"], "output_shape": [3, 8, 8]}]
    assert "Layer act, PReLU, has no archstat layer type and passes through uncounted: its 1 parameter values and " \
           "operations are missing from the totals." in imp.notes
    assert t["params"] == 3 * 12 + 12 and t["not_counted"] == ["body.0", "act"]
    with pytest.raises(ArchstatError, match="no kernel for the foreign operator 'PixelShuffle'"):
        archstat.Executor(archstat.load(imp.spec), weights=imp.weights).forward(np.zeros((1, 3, 4, 4)))


class Slicing(nn.Module):
    def forward(self, x):
        return x[:, :2] * 2


@pytest.mark.parametrize("module, says", [
    (Slicing(), "layer 'getitem': operator.getitem (fx node 'getitem', inputs (1, 3, 4, 4)): indexes a tensor "
                "(x[...]): archstat has no slicing layer"),
    (nn.Sequential(nn.AvgPool2d(2, divisor_override=3)), "layer '0': module torch.nn.AvgPool2d (fx node '_0', "
                                                         "inputs (1, 3, 4, 4)): AvgPool2d with divisor_override"),
    (nn.AvgPool2d(2, divisor_override=3), "AvgPool2d: layer 'avgpool2d': module torch.nn.AvgPool2d"),
    (nn.Sequential(nn.MaxPool2d(2, return_indices=True)), "MaxPool2d with return_indices=True returns two tensors"),
    (nn.Sequential(nn.Upsample(scale_factor=2)), "layer '0': module torch.nn.Upsample"),
    (nn.Upsample(scale_factor=2), "layer 'interpolate': torch.nn.functional.interpolate"),
])
def test_unmappable_uses_name_the_node(module, says):
    with pytest.raises(ArchstatError, match=_escape(says)):
        read_torch(module, input_shape=(3, 4, 4))


class Broadcasts(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.bias = nn.Parameter(torch.zeros(3, 1, 1))
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        if self.kind == "bias":
            return x + self.bias
        if self.kind == "constant":
            return x * 2
        if self.kind == "unflatten":
            return x * self.fc(x.mean((2, 3))).view(-1, 3, 1, 1)
        return x.mean(1)


@pytest.mark.parametrize("kind, says", [
    ("bias", "adds tensors of shapes (1, 3, 4, 4) and (3, 1, 1): archstat's add takes equal shapes"),
    ("constant", "multiplies the constant 2: archstat's merge layers combine tensors"),
    ("unflatten", "reshapes (1, 3) to (1, 3, 1, 1): archstat maps a reshape that merges neighbouring axes"),
    ("mean", "mean over 1 of a tensor of shape (1, 3, 4, 4)"),
])
def test_functional_uses_without_an_archstat_type(kind, says):
    with pytest.raises(ArchstatError, match=_escape(says)):
        read_torch(Broadcasts(kind), input_shape=(3, 4, 4))


def test_allow_unknown_refuses_what_cannot_pass_as_one_tensor():
    with pytest.raises(ArchstatError, match=_escape("returns 2 values: (1, 3, 2, 2), (1, 3, 2, 2): only "
                                                    "an operation that returns one tensor")):
        read_torch(nn.Sequential(nn.MaxPool2d(2, return_indices=True)), input_shape=(3, 4, 4), allow_unknown=True)


class DataDependent(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


class TwoInputs(nn.Module):
    def forward(self, x, y):
        return x + y


@pytest.mark.parametrize("module, kwargs, says", [
    (DataDependent(), {}, "DataDependent: torch.fx could not trace the module in eval mode: TraceError"),
    (TwoInputs(), {}, "field 'forward': forward() takes inputs besides the image: y"),
    (nn.Conv2d(4, 4, 1), {}, "Conv2d: field 'input_shape': the module does not run on an input of shape "
                             "(1, 3, 4, 4): RuntimeError"),
    ("conv", {}, "field 'module': expected a torch.nn.Module, got 'conv'"),
    (nn.ReLU(), {"batch": 0}, "batch must be a positive integer, got 0"),
    (nn.ReLU(), {"batch": True}, "batch must be a positive integer, got True"),
    (nn.ReLU(), {"input_shape": "3x4x4"}, "expected input_shape (C, H, W), got '3x4x4'"),
    (nn.Identity(), {}, "the module returns no tensor computed from its input"),
])
def test_bad_modules_and_arguments(module, kwargs, says):
    kwargs = {"input_shape": (3, 4, 4), **kwargs}
    with pytest.raises(ArchstatError, match=_escape(says)) as info:
        read_torch(module, **kwargs)
    assert "\n" not in str(info.value)


def test_without_torch_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ArchstatError, match=r"reading PyTorch modules needs torch; pip install torch"):
        read_torch(object(), input_shape=(3, 4, 4))


def test_supported_lists_the_mapped_modules_and_operations():
    names = supported()
    assert {"Conv2d", "Linear", "BatchNorm2d", "LayerNorm2d", "StochasticDepth", "Identity"} <= set(names["modules"])
    assert {"torch.cat", "operator.add", "Tensor.view", "torch.nn.functional.relu"} <= set(names["operations"])


def _escape(text):
    import re
    return re.escape(text)


# ------------------------------------------------------------------ torchvision

TORCHVISION_CNNS = sorted(name for name, entry in zoo.entries().items() if entry.published)
ENGINE_CHECKED = ["resnet18", "mobilenet_v3_small", "convnext_tiny", "shufflenet_v2_x0_5", "efficientnet_b0",
                  "googlenet"]


def _meta_model(name):
    """torchvision's model on the meta device (structure without memory)."""
    pytest.importorskip("torchvision")
    return meta_model(name)


def test_the_torchvision_list_is_the_zoos_68():
    assert len(TORCHVISION_CNNS) == 68


@pytest.mark.torchvision
@pytest.mark.parametrize("name", TORCHVISION_CNNS)
def test_every_torchvision_cnn_imports_with_the_zoos_numbers(name):
    module = _meta_model(name)
    # get_model builds GoogLeNet with its auxiliary heads (the zoo's googlenet is the published
    # model without them) and Inception-v3 with AuxLogits (the zoo's default too)
    zoo_model = archstat.load(name, {"aux": True} if name == "googlenet" else None)
    imp, ours = imported(module, zoo_model.input_shape)
    theirs = archstat.analyze(zoo_model).totals
    assert (ours["params"], ours["macs"], ours["flops"]) == (theirs["params"], theirs["macs"], theirs["flops"])
    assert ours["params"] == sum(p.numel() for p in module.parameters())
    assert not any(e["type"] == "opaque" for e in imp.spec["layers"]) and imp.uncounted == []
    if name in ("googlenet", "inception_v3"):
        assert ours["training_only_macs"] == theirs["training_only_macs"] > 0


@pytest.mark.torchvision
@pytest.mark.parametrize("name", ENGINE_CHECKED)
def test_the_engine_reproduces_torchvision_with_the_imported_weights(name):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = randomise_norms(torchvision.models.get_model(name))
    imp = same_output(module, (3, 64, 64), batch=2)
    names = {e["name"] for e in imp.spec["layers"]}
    assert {n for n, m in module.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))} <= names


@pytest.mark.torchvision
def test_googlenet_with_its_input_transform_needs_allow_unknown_and_keeps_its_counts():
    # the pretrained weights turn on transform_input: x[:, 0] * a + b per channel, then torch.cat;
    # archstat has no slicing or constant-scaling layer, so those pass through uncounted (they
    # hold no parameters and no MACs: the counts stay the zoo's published model's)
    torchvision = pytest.importorskip("torchvision")
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore", FutureWarning)
        module = torchvision.models.googlenet(transform_input=True, aux_logits=False, init_weights=False)
    with pytest.raises(ArchstatError, match="layer 'getitem': operator.getitem .* indexes a tensor"):
        read_torch(module, input_shape=(3, 224, 224))
    imp, t = imported(module, (3, 224, 224), allow_unknown=True)
    assert {u["op"] for u in imp.uncounted} == {"operator.getitem", "torch.unsqueeze", "operator.mul", "operator.add"}
    zoo_model = archstat.analyze(archstat.load("googlenet")).totals
    assert (t["params"], t["macs"]) == (zoo_model["params"], zoo_model["macs"]) == (6_624_904, 1_498_376_192)
