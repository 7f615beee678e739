"""The spec language works as the docstring of archstat/spec.py documents it.

Blocks with args and defaults, ``${name}`` sibling naming, ``instance.local`` naming,
repeat naming (``_1.._n`` and ``${i}``), default names, ``inputs`` defaulting to the
previous layer, ``input`` inside a block, a block instance name standing for its last
layer, ``when``/``unless``, JSON and dict specs, spec order, and the graph.
"""
from __future__ import annotations

import json

import networkx as nx
import pytest
import yaml

import archstat
from archstat import ArchstatError

DOC_EXAMPLE = """
name: VGG-ish
source: the example of archstat/spec.py's docstring
input: [3, 224, 224]
accuracy: {top1: 71.592, top5: 90.382, source: torchvision}
blocks:
  conv_relu:
    args: {out: required, k: 3}
    layers:
      - {name: "${name}", type: conv2d, out_channels: $out, kernel_size: $k, padding: 1}
      - {name: "${name}_relu", type: relu, inplace: true}
layers:
  - {block: conv_relu, name: "conv1_${i}", out: 64, repeat: 2}
  - {type: max_pool2d, kernel_size: 2, name: pool1}
"""


def inputs_of(model) -> dict[str, tuple[str, ...]]:
    return {layer.name: layer.inputs for layer in model.layers()}


def test_docstring_example(write_spec):
    model = archstat.load(write_spec(DOC_EXAMPLE, "vgg.yaml"))
    assert model.order == ["input", "conv1_1", "conv1_1_relu", "conv1_2", "conv1_2_relu", "pool1"]
    assert inputs_of(model) == {"input": (), "conv1_1": ("input",), "conv1_1_relu": ("conv1_1",),
                                "conv1_2": ("conv1_1_relu",), "conv1_2_relu": ("conv1_2",),
                                "pool1": ("conv1_2_relu",)}
    assert model.name == "VGG-ish" and model.accuracy == {"top1": 71.592, "top5": 90.382,
                                                          "source": "torchvision"}
    t = archstat.analyze(model).totals
    # conv1_1: 64*(3*3*3)+64 = 1,792; conv1_2: 64*(64*3*3)+64 = 36,928 (VGG-16's first two)
    assert t["params"] == 1792 + 36928
    # MACs: 64*224*224*27 + 64*224*224*576 = 86,704,128 + 1,849,688,064
    assert t["macs"] == 86_704_128 + 1_849_688_064
    assert model.graph.nodes["pool1"]["shape"] == (64, 112, 112)


def test_block_args_defaults_and_types():
    spec = {"input": [3, 10, 10],
            "blocks": {"cb": {"args": {"out": "required", "k": 3, "pad": 0, "label": "x"},
                              "layers": [{"name": "${label}_${out}", "type": "conv2d",
                                          "out_channels": "$out", "kernel_size": "$k",
                                          "padding": "$pad"}]}},
            "layers": [{"block": "cb", "name": "a", "out": 4},                # defaults k 3, pad 0
                       {"block": "cb", "name": "b", "out": 6, "k": 1, "label": "y"}]}
    model = archstat.load(spec)
    # $out keeps the int (an int field accepts it); ${out} inside text formats it
    assert model.order == ["input", "a.x_4", "b.y_6"]
    assert model.layer("a.x_4").attrs["kernel_size"] == (3, 3)
    assert model.layer("b.y_6").attrs["kernel_size"] == (1, 1)
    assert model.graph.nodes["a.x_4"]["shape"] == (4, 8, 8)    # 10 - 3 + 1 = 8
    assert model.graph.nodes["b.y_6"]["shape"] == (6, 8, 8)    # 1x1 keeps 8x8


def test_sibling_and_local_naming():
    spec = {"input": [3, 8, 8],
            "blocks": {"blk": {"layers": [{"name": "${name}_conv", "type": "conv2d", "out_channels": 2,
                                           "kernel_size": 1},
                                          {"name": "act", "type": "relu"},
                                          {"type": "relu"}]}},
            "layers": [{"block": "blk", "name": "s1"}]}
    model = archstat.load(spec)
    # ${name} makes a sibling of the instance; a plain name is local: instance.name;
    # a default name is local too, with the block's own counter
    assert model.order == ["input", "s1_conv", "s1.act", "s1.relu1"]


def test_nested_blocks_name_and_resolve():
    spec = {"input": [3, 8, 8],
            "blocks": {"b": {"layers": [{"type": "relu"}]},
                       "outer": {"layers": [{"block": "b", "name": "inner"},
                                            {"type": "relu", "inputs": "inner"}]}},
            "layers": [{"block": "outer", "name": "o"}, {"type": "relu", "inputs": "o"}]}
    model = archstat.load(spec)
    assert inputs_of(model) == {"input": (), "o.inner.relu1": ("input",),
                                "o.relu1": ("o.inner.relu1",), "relu1": ("o.relu1",)}


def test_repeat_naming():
    spec = {"input": [3, 8, 8], "layers": [
        {"type": "relu", "name": "r", "repeat": 3},             # no ${i}: r_1 .. r_3
        {"type": "relu", "name": "t${i}x", "repeat": 2},       # ${i} inside the name: t1x, t2x
        {"type": "relu", "repeat": 2},                          # default names keep counting
        {"type": "relu", "name": "single"},                     # repeat 1 adds no suffix
    ]}
    model = archstat.load(spec)
    assert model.order == ["input", "r_1", "r_2", "r_3", "t1x", "t2x", "relu1", "relu2", "single"]
    # each copy reads the previous one
    assert inputs_of(model)["r_2"] == ("r_1",) and inputs_of(model)["t1x"] == ("r_3",)


def test_repeated_block_with_i():
    spec = {"input": [3, 16, 16],
            "blocks": {"down": {"args": {"out": 4},
                                "layers": [{"name": "${name}", "type": "conv2d", "out_channels": "$out",
                                            "kernel_size": 3, "stride": 2, "padding": 1}]}},
            "layers": [{"block": "down", "name": "d${i}", "repeat": 3, "out": 8}]}
    model = archstat.load(spec)
    assert model.order == ["input", "d1", "d2", "d3"]
    # (H + 2 - 3) // 2 + 1: 16 -> 8 -> 4 -> 2
    assert [model.graph.nodes[n]["shape"] for n in model.order[1:]] == [(8, 8, 8), (8, 4, 4), (8, 2, 2)]


def test_default_names_count_per_alias():
    spec = {"input": [3, 8, 8], "layers": [
        {"type": "conv2d", "out_channels": 4, "kernel_size": 1}, {"type": "relu"},
        {"type": "conv2d", "out_channels": 4, "kernel_size": 1}, {"type": "relu"},
        {"type": "max_pool2d", "kernel_size": 2}, {"type": "batch_norm2d"}, {"type": "flatten"},
        {"type": "linear", "out_features": 3}, {"type": "dropout"}, {"type": "softmax"}]}
    assert archstat.load(spec).order == ["input", "conv1", "relu1", "conv2", "relu2", "pool1", "bn1",
                                         "flatten1", "fc1", "drop1", "softmax1"]


def test_inputs_default_to_previous_and_first_reads_input():
    spec = {"input": [3, 8, 8], "layers": [
        {"name": "a", "type": "relu"}, {"name": "b", "type": "relu"},
        {"name": "c", "type": "relu", "inputs": "a"}, {"name": "d", "type": "relu"}]}
    assert inputs_of(archstat.load(spec)) == {"input": (), "a": ("input",), "b": ("a",), "c": ("a",),
                                              "d": ("c",)}


def test_input_inside_a_block_is_the_block_input():
    spec = {"input": [3, 8, 8],
            "blocks": {"res": {"layers": [{"name": "c", "type": "conv2d", "out_channels": 4,
                                           "kernel_size": 3, "padding": 1},
                                          {"name": "sum", "type": "add", "inputs": ["c", "input"]}]}},
            "layers": [{"name": "stem", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
                       {"block": "res", "name": "r1"}, {"block": "res", "name": "r2"}]}
    ins = inputs_of(archstat.load(spec))
    assert ins["r1.sum"] == ("r1.c", "stem")       # r1's input is the layer before it
    assert ins["r2.c"] == ("r1.sum",)              # the next block reads r1's last layer
    assert ins["r2.sum"] == ("r2.c", "r1.sum")


def test_block_instance_name_stands_for_its_last_layer():
    spec = {"input": [3, 8, 8],
            "blocks": {"two": {"layers": [{"type": "relu"}, {"name": "out", "type": "relu"}]}},
            "layers": [{"block": "two", "name": "b"}, {"name": "x", "type": "relu", "inputs": "input"},
                       {"name": "join", "type": "add", "inputs": ["b", "x"]},
                       {"block": "two", "name": "c", "inputs": "b"}]}
    ins = inputs_of(archstat.load(spec))
    assert ins["join"] == ("b.out", "x")
    assert ins["c.relu1"] == ("b.out",)


def test_when_and_unless():
    spec = {"input": [3, 8, 8],
            "blocks": {"cb": {"args": {"act": True, "bn": False},
                              "layers": [{"name": "c", "type": "conv2d", "out_channels": 2, "kernel_size": 1},
                                         {"name": "bn", "type": "batch_norm2d", "when": "$bn"},
                                         {"name": "act", "type": "relu", "unless": "$act"},
                                         {"name": "act2", "type": "tanh", "when": "$act"}]}},
            "layers": [{"block": "cb", "name": "x"}, {"block": "cb", "name": "y", "act": False, "bn": True},
                       {"name": "skipped", "type": "relu", "when": False},
                       {"name": "kept", "type": "relu", "unless": False}]}
    model = archstat.load(spec)
    assert model.order == ["input", "x.c", "x.act2", "y.c", "y.bn", "y.act", "kept"]
    assert inputs_of(model)["kept"] == ("y.act",)  # a dropped entry is skipped in the chain


def test_json_spec_is_accepted(write_spec):
    spec = {"name": "tiny", "input": [3, 10, 10],
            "layers": [{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}]}
    model = archstat.load(write_spec(spec, "tiny.json"))
    assert (model.name, model.order, model.file.endswith("tiny.json")) == ("tiny", ["input", "conv1"], True)
    # conv 3->8, 3x3, pad 1 on 3x10x10: params 8*(3*3*3)+8 = 224; MACs 8*10*10*27 = 21600
    t = archstat.analyze(model).totals
    assert (t["params"], t["macs"]) == (224, 21600)


def test_dict_spec_equals_yaml_spec(write_spec):
    data = yaml.safe_load(DOC_EXAMPLE)
    from_dict = archstat.analyze(archstat.load(data))
    from_file = archstat.analyze(archstat.load(write_spec(DOC_EXAMPLE)))
    assert from_dict.model.file == "<dict>"
    assert from_dict.rows() == from_file.rows()
    assert json.dumps(data) and data == yaml.safe_load(DOC_EXAMPLE)  # the dict is not modified


def test_spec_order_is_kept_where_dependencies_allow():
    # 'late' is written before 'early2' although both only need the input: spec order wins
    spec = {"input": [3, 8, 8], "layers": [
        {"name": "late", "type": "relu", "inputs": "input"}, {"name": "zz", "type": "tanh", "inputs": "input"},
        {"name": "aa", "type": "sigmoid", "inputs": "input"},
        {"name": "cat", "type": "concat", "inputs": ["aa", "late", "zz"]}]}
    model = archstat.load(spec)
    assert model.order == ["input", "late", "zz", "aa", "cat"]
    assert model.graph.nodes["cat"]["shape"] == (9, 8, 8)
    assert model.layer("cat").inputs == ("aa", "late", "zz")  # concat order is the inputs order
    assert model.outputs == ["cat"]


def test_graph_is_a_digraph_matching_inputs():
    spec = {"input": [3, 12, 12], "layers": [
        {"name": "a", "type": "conv2d", "out_channels": 4, "kernel_size": 3},                   # 4x10x10
        {"name": "b", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "inputs": "input"},
        {"name": "s", "type": "add", "inputs": ["a", "b"]},
        {"name": "p", "type": "max_pool2d", "kernel_size": 2},                                   # 4x5x5
        {"name": "f", "type": "flatten"},                                                        # 100
        {"name": "fc", "type": "linear", "out_features": 7}]}
    model = archstat.load(spec)
    g = model.graph
    assert isinstance(g, nx.DiGraph) and nx.is_directed_acyclic_graph(g)
    assert set(g.nodes) == set(model.order)
    assert set(g.edges) == {(src, layer.name) for layer in model.layers() for src in layer.inputs}
    assert {n: g.nodes[n]["type"] for n in g} == {"input": "input", "a": "conv2d", "b": "conv2d",
                                                  "s": "add", "p": "max_pool2d", "f": "flatten",
                                                  "fc": "linear"}
    # shape is per sample (no batch axis), at the spec's input size
    assert {n: g.nodes[n]["shape"] for n in g} == {"input": (3, 12, 12), "a": (4, 10, 10), "b": (4, 10, 10),
                                                   "s": (4, 10, 10), "p": (4, 5, 5), "f": (100,),
                                                   "fc": (7,)}
    assert g.nodes["fc"]["layer"].attrs["out_features"] == 7
    # the analysis adds the batch axis
    a = archstat.analyze(model, batch=3)
    assert a.layers.set_index("name").loc["fc", "output_shape"] == (3, 7)


def test_flat_input():
    model = archstat.load({"input": [20], "layers": [{"type": "linear", "out_features": 5}]})
    assert model.graph.nodes["fc1"]["shape"] == (5,)
    # 20*5 + 5 = 105 params, 100 MACs
    t = archstat.analyze(model).totals
    assert (t["params"], t["macs"]) == (105, 100)


def test_load_is_idempotent_on_a_model():
    model = archstat.load(yaml.safe_load(DOC_EXAMPLE))
    assert archstat.load(model) is model


def test_reserved_names_are_refused():
    with pytest.raises(ArchstatError, match="'input' is reserved"):
        archstat.load({"input": [3, 8, 8], "layers": [{"name": "input", "type": "relu"}]})


def test_call_says_how_pytorch_runs_a_layer():
    model = archstat.load({"input": [3, 8, 8], "layers": [
        {"name": "r1", "type": "relu"},
        {"name": "r2", "type": "relu", "call": "function"},
        {"name": "sum", "type": "add", "inputs": ["r1", "r2"]},
        {"name": "cat", "type": "concat", "inputs": ["r1", "sum"], "call": "${'method'}"}]})
    assert [model.layer(n).torch_call for n in ("r1", "r2", "sum", "cat")] == \
        ["module", "function", "operator", "method"]
    # it changes no count of archstat's own
    plain = archstat.load({"input": [3, 8, 8], "layers": [
        {"name": "r1", "type": "relu"}, {"name": "r2", "type": "relu"},
        {"name": "sum", "type": "add", "inputs": ["r1", "r2"]},
        {"name": "cat", "type": "concat", "inputs": ["r1", "sum"]}]})
    assert archstat.analyze(model).totals["flops"] == archstat.analyze(plain).totals["flops"]


def test_call_must_be_a_known_way():
    with pytest.raises(ArchstatError, match=r"layer 'r', field 'call': expected one of module, function, "
                                            r"torch, method, operator, got 'funtion'.*did you mean 'function'"):
        archstat.load({"input": [3, 8, 8], "layers": [{"name": "r", "type": "relu", "call": "funtion"}]})


def test_call_belongs_to_layers_not_block_instances():
    with pytest.raises(ArchstatError, match="'call' applies to a layer, not a block instance"):
        archstat.load({"input": [3, 8, 8], "blocks": {"b": {"layers": [{"type": "relu"}]}},
                       "layers": [{"name": "x", "block": "b", "call": "function"}]})
