"""Regression: ${name} layers inside nested blocks live beside their own block instance."""
import archstat

NESTED = {
    "input": [3, 32, 32],
    "blocks": {
        "conv_relu": {"args": {"out": "required"}, "layers": [
            {"name": "${name}", "type": "conv2d", "out_channels": "$out", "kernel_size": 3, "padding": 1},
            {"name": "${name}_relu", "type": "relu", "inplace": True}]},
        "stage": {"args": {"n": "required", "out": "required", "s": "required"}, "layers": [
            {"block": "conv_relu", "name": "${name}_${i}", "out": "$out", "repeat": "$n"},
            {"name": "pool${s}", "type": "max_pool2d", "kernel_size": 2},
            {"name": "inner", "type": "relu"}]},
    },
    "layers": [{"block": "stage", "name": "conv1", "n": 2, "out": 8, "s": 1},
               {"block": "stage", "name": "conv2", "n": 1, "out": 16, "s": 2}],
}


def test_name_siblings_in_nested_blocks_get_flat_names():
    order = archstat.load(NESTED).order
    # conv_relu inside stage: "${name}" resolves to the conv_relu instance, which is itself a
    # ${name}-sibling of stage, so it lands at the top level (Caffe-style VGG names)
    assert order == ["input", "conv1_1", "conv1_1_relu", "conv1_2", "conv1_2_relu", "conv1.pool1",
                     "conv1.inner", "conv2_1", "conv2_1_relu", "conv2.pool2", "conv2.inner"]


def test_instance_name_stands_for_its_last_layer():
    spec = dict(NESTED, layers=NESTED["layers"] + [
        {"name": "joined", "type": "add", "inputs": ["conv2", "conv2.pool2"]}])
    model = archstat.load(spec)
    assert model.layer("joined").inputs == ("conv2.inner", "conv2.pool2")


def test_default_input_is_not_looked_up_among_the_blocks_own_names():
    # a top-level relu1 followed by a block that also has a relu1: the block's first layer
    # reads the top-level relu1 (the previous layer), not its own (found by the graph work)
    spec = {"input": [3, 8, 8], "blocks": {"blk": {"layers": [
        {"name": "conv1", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
        {"name": "relu1", "type": "relu"}]}},
        "layers": [{"name": "relu1", "type": "relu"}, {"block": "blk", "name": "b"}]}
    model = archstat.load(spec)
    assert model.layer("b.conv1").inputs == ("relu1",)
    assert model.layer("b.relu1").inputs == ("b.conv1",)


def test_name_sibling_of_a_nested_block_is_reachable_by_its_short_name():
    # found by the compact-model specs: a residual block adding the BN of a nested conv-bn
    spec = {"input": [4, 8, 8], "blocks": {
        "cb": {"layers": [{"name": "${name}", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
                          {"name": "${name}_bn", "type": "batch_norm2d"}]},
        "res": {"layers": [{"block": "cb", "name": "proj"},
                           {"name": "sum", "type": "add", "inputs": ["input", "proj_bn"]}]}},
        "layers": [{"block": "res", "name": "r1"}]}
    model = archstat.load(spec)
    assert model.layer("r1.sum").inputs == ("input", "r1.proj_bn")
