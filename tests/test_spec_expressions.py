"""The spec language's arithmetic (archstat.expr) and what it adds to specs: derived values,
top-level arguments in blocks, comparisons in when/unless, digit names, YAML merge keys,
training-only branches. Expressions are data: every escape route is refused with a clear
message, and no expression can hang or exhaust memory."""
from __future__ import annotations

import time

import pytest

import archstat
from archstat import expr, expr_template
from archstat.errors import ArchstatError


def ev(text, **variables):
    return expr.evaluate(text, variables)


# ------------------------------------------------------------------ the evaluator

@pytest.mark.parametrize("text, expected", [
    ("1 + 2 * 3", 7), ("7 // 2", 3), ("-7 // 2", -4), ("7 / 2", 3.5), ("7 % 3", 1), ("-7 % 3", 2),
    ("2 ** 10", 1024), ("2 ** -1", 0.5), ("(1 + 2) * 3", 9), ("-(3)", -3), ("+4", 4),
    ("1 < 2 < 3", True), ("3 > 2 > 2", False), ("1 == 1.0", True), ("2 != 3", True),
    ("'b' in ['a', 'b']", True), ("3 not in [1, 2]", True),
    ("true and false", False), ("false or 5", 5), ("not 0", True), ("True", True), ("null", None),
    ("1 if 2 > 1 else 0", 1), ("'x' if false else 'y'", "y"),
    ("[1, 2, 3][1]", 2), ("[1, 2, 3][-1]", 3), ("[1, 2, 3][1:]", [2, 3]), ("[1, 2, 3, 4][::2]", [1, 3]),
    ("{'a': 1, 'b': 2}['b']", 2), ("{18: [2, 2], 34: [3, 4]}[34][1]", 4),
    ("[j * j for j in range(4)]", [0, 1, 4, 9]), ("[j for j in range(10) if j % 3 == 0]", [0, 3, 6, 9]),
    ("[a + b for a, b in zip([1, 2], [10, 20])]", [11, 22]),
    ("[[i, w] for i, w in enumerate(['x', 'y'])]", [[0, "x"], [1, "y"]]),
    ("[a * b for a in [1, 2] for b in [10, 100]]", [10, 100, 20, 200]),
    ("sum(d for d in [1, 2, 3])", 6), ("sum([0.5, 0.25])", 0.75), ("len([4, 5, 6])", 3),
    ("min(3, 1, 2)", 1), ("max([3, 1, 2])", 3), ("abs(-2.5)", 2.5),
    ("round(2.5)", 2), ("round(3.5)", 4), ("round(2.675, 2)", 2.67),   # Python's round, as torchvision's code
    ("int(3.9)", 3), ("int(-3.9)", -3), ("float(2)", 2.0), ("ceil(2.1)", 3), ("floor(-2.1)", -3),
    ("ceil(3 * 1.4)", 5), ("sqrt(16)", 4.0), ("log(e)", 1.0), ("log(8, 2)", 3.0), ("log2(8)", 3.0),
    ("exp(0)", 1.0), ("count([1, 2, 2, 3], 2)", 2), ("sorted([3, 1, 2])", [1, 2, 3]),
    ("reversed([1, 2])", [2, 1]), ("any([0, 1])", True), ("all([1, 0])", False), ("str(3) + 'x'", "3x"),
    ("bool(0)", False), ("list(range(3))", [0, 1, 2]),
])
def test_expressions_follow_python_semantics(text, expected):
    assert ev(text) == expected
    assert type(ev(text)) is type(expected)


def test_variables_and_multiline_expressions():
    assert ev("c * width", c=32, width=1.5) == 48.0
    assert ev("widths[i - 1]", widths=[64, 128, 256], i=2) == 128
    assert ev("(a\n  + b)", a=1, b=2) == 3
    assert ev("a\n + b", a=1, b=2) == 3          # folded YAML text: continuation lines


@pytest.mark.parametrize("args, expected", [
    # torchvision's _make_divisible(v, 8): EfficientNet-B3 (width 1.2) stem 32 -> 40 and stage-1
    # 16 -> 24 (19.2 rounds to 16, more than 10% below 19.2, so one more divisor); MobileNetV3's
    # SE width 72 // 4 -> 24; min_value defaults to the divisor; 3 with min_value 2 rounds to 0,
    # is raised to 2, still more than 10% below 3, so it becomes 2 + 8 = 10; 36 -> 32 is 11% low: 48
    ((32 * 1.2, 8), 40), ((16 * 1.2, 8), 24), ((72 // 4, 8), 24), ((3, 8), 8), ((3, 8, 2), 10),
    ((12, 8, 2), 16), ((36.0, 16), 48), ((100, 8), 104), ((96, 8), 96),
])
def test_make_divisible_is_torchvisions_rule(args, expected):
    assert expr.make_divisible(*args) == expected
    assert ev("make_divisible(" + ", ".join(map(repr, args)) + ")") == expected


def test_regnet_widths_from_the_expression_language():
    # torchvision's BlockParams.from_init_params(depth=22, w_0=24, w_a=24.48, w_m=2.54,
    # group_width=16) (regnet_x_400mf) gives stage widths [32, 64, 160, 400], depths [1, 2, 7, 12]:
    # quantised block widths [24, 64, 64, 152 x 7, 392 x 12], then each stage width made divisible
    # by its group width min(16, w)
    v = dict(depth=22, w0=24, wa=24.48, wm=2.54, gw=16)
    v["bw"] = ev("[int(round(w0 * wm ** round(log((j * wa + w0) / w0) / log(wm)) / 8) * 8) for j in range(depth)]",
                 **v)
    v["sw"] = ev("[w for j, w in enumerate(bw) if j == 0 or w != bw[j - 1]]", **v)
    assert v["sw"] == [24, 64, 152, 392]
    assert ev("[count(bw, w) for w in sw]", **v) == [1, 2, 7, 12]
    assert ev("[make_divisible(w, min(gw, w)) for w in sw]", **v) == [32, 64, 160, 400]


def test_comprehension_variables_do_not_leak_and_shadow_outer_ones():
    assert ev("[j for j in range(3)] + [j]", j=9) == [0, 1, 2, 9]
    with pytest.raises(expr.ExprError, match="unknown variable 'k'"):
        ev("[k for j in range(2)]")


@pytest.mark.parametrize("text, says", [
    ("x.__class__", "attribute access"),
    ("().__class__.__bases__", "attribute access"),
    ("__import__('os')", "unknown function __import__()"),
    ("[__builtins__]", "names beginning with '_'"),
    ("_x", "names beginning with '_'"),
    ("open('/etc/passwd')", "unknown function open()"),
    ("eval('1')", "unknown function eval()"),
    ("lambda: 1", "lambda"),
    ("(y := 3)", "':='"),
    ("{1, 2}", "sets"),
    ("{k: 1 for k in [1]}", "dict comprehensions"),
    ("f'{1}'", "f-strings"),
    ("1 & 2", "'&'"),
    ("1 is 1", "'is'"),
    ("max(*[1, 2])", "unpacking"),
    ("b'x'", "bytes constants"),
    ("1 +", "invalid expression"),
    ("", "empty expression"),
    ("lenn([1])", "unknown function lenn(); did you mean"),
])
def test_forbidden_constructs_are_refused_with_a_reason(text, says):
    with pytest.raises(expr.ExprError) as info:
        ev(text, x=1)
    message = info.value.message + ("; " + info.value.hint if info.value.hint else "")
    assert says in message


@pytest.mark.parametrize("text, says", [
    ("10 ** 10 ** 10", "larger than 4096 bits"),
    ("9 ** 99999", "larger than 4096 bits"),
    ("2 ** 4000 * 2 ** 4000", "larger than 4096 bits"),
    ("range(10 ** 9)", "more than 100,000"),
    ("'ab' * 10 ** 9", "more than 100,000"),
    ("[0] * 10 ** 6", "more than 100,000"),
    ("[[x for x in range(99999)] for y in range(99999)]", "steps"),
    ("sum([1 for j in range(99999) for k in range(99) if false])", "steps"),
    ("1 / 0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("exp(1000)", "overflows"),
    ("log(0)", "must be positive"),
    ("sqrt(-1)", ">= 0"),
    ("(-8) ** 0.5", "not a real number"),
    ("[1, 2][5]", "out of range"),
    ("{'a': 1}['b']", "no entry 'b'"),
    ("'a' < 1", "cannot compare"),
    ("[1] + 1", "cannot compute"),
    ("round(1e400)", "cannot round"),
    ("range(0, 5, 0)", "must not be zero"),
    ("make_divisible(10, 0)", "positive integer"),
])
def test_no_expression_can_hang_or_blow_up(text, says):
    start = time.perf_counter()
    with pytest.raises(expr.ExprError, match=None) as info:
        ev(text)
    assert says in info.value.message
    assert time.perf_counter() - start < 30  # a guard against a hang, not a speed target


def test_a_spec_cannot_add_many_expressions_up_to_a_hang():
    # each copy's expression takes ~200,000 steps (under the per-expression limit): 20 copies
    # exceed the spec's 2,000,000-step budget
    s = {"input": [3, 8, 8], "layers": [
        {"type": "relu", "name": "r${i}", "repeat": 20,
         "inplace": "${len([1 for j in range(1000) for k in range(66) if false]) > 0}"}]}
    start = time.perf_counter()
    with pytest.raises(ArchstatError, match="more than 2,000,000 steps to evaluate in all"):
        archstat.load(s)
    assert time.perf_counter() - start < 60  # a guard against a hang, not a speed target


def test_templates_substitute_with_types_kept_and_dollar_escaped():
    v = {"c": 64, "flag": True, "xs": [1, 2]}
    assert expr_template.render("${c * 2}", v) == 128
    assert expr_template.render("$xs", v) == [1, 2]
    assert expr_template.render("conv${c // 32}_${flag}", v) == "conv2_true"
    assert expr_template.render("cost $$5 and ${'}'}", v) == "cost $5 and }"
    assert expr_template.render("$5 stays", v) == "$5 stays"
    assert expr_template.render("${ {'a': c}['a'] }", v) == 64
    with pytest.raises(expr.ExprError, match="never closed"):
        expr_template.render("${c * 2", v)
    with pytest.raises(expr.ExprError, match=r"unknown variable \$d"):
        expr_template.render("$d", v)


# ------------------------------------------------------------------ in specs

def spec(layers, **top):
    return {"input": [3, 8, 8], "layers": layers, **top}


def test_top_level_args_and_let_are_visible_in_blocks():
    s = spec([{"block": "b", "name": "b1"}],
             args={"width": 1.5}, let={"base": 16, "c": "${make_divisible(base * width, 8)}"},
             blocks={"b": {"layers": [{"type": "conv2d", "name": "conv", "out_channels": "$c",
                                       "kernel_size": 3}]}})
    model = archstat.load(s)
    assert model.graph.nodes["b1.conv"]["shape"] == (24, 6, 6)     # make_divisible(24.0, 8) = 24
    assert archstat.load(s, {"width": 2.0}).graph.nodes["b1.conv"]["shape"] == (32, 6, 6)


def test_block_arguments_default_to_expressions_and_blocks_have_let():
    s = spec([{"block": "b", "name": "x", "k": 5}, {"block": "b", "name": "y"}],
             blocks={"b": {"args": {"k": 3, "pad": "${k // 2}"}, "let": {"out": "${k * 4}"},
                           "layers": [{"type": "conv2d", "name": "c", "out_channels": "$out",
                                       "kernel_size": "$k", "padding": "$pad"}]}})
    nodes = archstat.load(s).graph.nodes
    assert nodes["x.c"]["shape"] == (20, 8, 8) and nodes["y.c"]["shape"] == (12, 8, 8)


def test_when_takes_comparisons_and_names_take_digits_and_offsets():
    s = spec([{"type": "conv2d", "name": "features.${i - 1}", "out_channels": 4, "kernel_size": 1,
               "repeat": 3},
              {"type": "relu", "name": 0, "when": "${depth >= 50}"},
              {"type": "relu", "name": "1.act", "unless": "${depth >= 50 and 2 > 1}"}],
             args={"depth": 18})
    names = archstat.load(s).order
    assert names == ["input", "features.0", "features.1", "features.2", "1.act"]
    assert archstat.load(s, {"depth": 50}).order[-1] == "0"


def test_repeat_binds_i_and_zero_repeats_drop_the_entry():
    s = spec([{"type": "relu", "name": "a${i}", "repeat": "${n}"}, {"type": "relu", "name": "z"}],
             args={"n": 0})
    assert archstat.load(s).order == ["input", "z"]
    assert archstat.load(s, {"n": 2}).order == ["input", "a1", "a2", "z"]
    with pytest.raises(ArchstatError, match="expands to no layers"):
        archstat.load(spec([{"type": "relu", "repeat": 0}]))


def test_old_style_variables_keep_working(write_spec):
    # $name lookups are plain lookups: any argument name works, even a Python keyword
    s = spec([{"block": "b", "in": 6}],
             blocks={"b": {"args": {"in": "required"},
                           "layers": [{"type": "conv2d", "out_channels": "$in", "kernel_size": "${in}"}]}})
    assert archstat.load(s).graph.nodes["b1.conv1"]["shape"] == (6, 3, 3)


def test_yaml_merge_keys_and_anchor_keys(write_spec):
    path = write_spec("""
input: [3, 8, 8]
x-conv: &conv {type: conv2d, out_channels: 4, kernel_size: 3, padding: 1}
layers:
  - {<<: *conv, name: a}
  - {<<: *conv, name: b, out_channels: 8}    # an override of a merged key
""")
    nodes = archstat.load(path).graph.nodes
    assert nodes["a"]["shape"] == (4, 8, 8) and nodes["b"]["shape"] == (8, 8, 8)
    dup = write_spec("input: [3, 8, 8]\nlayers:\n  - {type: relu, name: a, name: b}\n", "dup.yaml")
    with pytest.raises(ArchstatError, match="appears twice"):
        archstat.load(dup)


def test_input_and_name_use_variables():
    s = spec([{"type": "relu"}], args={"res": 32}, name="Net at ${res}", family="${'big' if res > 100 else 'small'}")
    s["input"] = [3, "${res}", "${res}"]
    model = archstat.load(s, {"res": 160})
    assert (model.name, model.family, model.input_shape) == ("Net at 160", "big", (3, 160, 160))


@pytest.mark.parametrize("top, layer, field, says", [
    ({"let": {"a": "${b + 1}", "b": 1}}, None, "let.a", "unknown variable 'b'"),
    ({"args": {"a": 1}, "let": {"a": 2}}, None, "let.a", "both an argument and a derived value"),
    ({"args": {"w": "${1 + 1}"}}, None, "args.w", "must be a plain value"),
    ({"let": {"i": 1}}, None, "let", "cannot be a variable name"),
    ({"args": {"n": 2}, "layers": [{"type": "relu", "repeat": "${n * 'x'}"}]}, "#1", "repeat",
     "expected an integer >= 0"),
    ({"layers": [{"type": "conv2d", "name": "c", "out_channels": "${3 / 2}", "kernel_size": 1}]}, "c",
     "out_channels", "expected an integer >= 1, got 1.5"),
    ({"layers": [{"type": "relu", "name": "r", "when": "${1 + 1}"}]}, "r", "when", "expected true or false"),
    ({"layers": [{"type": "conv2d", "name": "c", "out_channels": "${c.real}", "kernel_size": 1}]}, "c",
     "out_channels", "in '${c.real}': attribute access"),
])
def test_expression_errors_name_file_layer_field_and_expression(top, layer, field, says):
    s = spec(top.pop("layers", [{"type": "relu"}]), **top)
    with pytest.raises(ArchstatError) as info:
        archstat.load(s)
    exc = info.value
    assert (exc.file, exc.layer, exc.field) == ("<dict>", layer, field)
    assert says in str(exc)


def test_zoo_arguments_are_checked_with_a_did_you_mean():
    with pytest.raises(ArchstatError, match="no argument 'depht'.*did you mean 'depth'") as info:
        archstat.load("resnet", {"depht": 18})
    assert info.value.file == "resnet (resnet.yaml)"
    with pytest.raises(ArchstatError, match="depth must be 18, 34, 50, 101 or 152") as info:
        archstat.load("resnet", {"depth": 19})
    assert info.value.field == "let.valid"   # the spec's own check: require(...)
    with pytest.raises(ArchstatError, match="argument 'depth' expects an integer, like its default 50, got 50.0"):
        archstat.load("resnet", {"depth": 50.0})


# ------------------------------------------------------------------ training-only branches

def aux_spec(aux=True):
    return spec([{"type": "conv2d", "name": "c1", "out_channels": 4, "kernel_size": 3},
                 {"block": "head", "name": "aux", "training_only": True, "when": "$aux"},
                 {"type": "conv2d", "name": "c2", "out_channels": 4, "kernel_size": 3, "inputs": "c1"},
                 {"type": "flatten", "name": "flat"}, {"type": "linear", "name": "fc", "out_features": 10}],
                args={"aux": aux},
                blocks={"head": {"layers": [{"type": "global_avg_pool2d", "name": "pool"},
                                            {"type": "flatten", "name": "flat"},
                                            {"type": "linear", "name": "fc", "out_features": 3}]}})


def test_training_only_layers_count_params_but_not_inference_work():
    with_aux, without = archstat.analyze(aux_spec(True)), archstat.analyze(aux_spec(False))
    t, t0 = with_aux.totals, without.totals
    # aux.fc: a linear 4 -> 3 with bias, 15 parameters and 4 * 3 = 12 MACs, in training only
    assert t["params"] - t0["params"] == 15
    assert (t["macs"], t["flops"], t["activation_bytes"]) == (t0["macs"], t0["flops"], t0["activation_bytes"])
    assert t["peak_activation_bytes"] == t0["peak_activation_bytes"]
    assert t["training_only_macs"] == 12 and t0["training_only_macs"] == 0
    rows = {r["name"]: r for r in with_aux.rows()}
    assert rows["aux.fc"]["training_only"] and rows["aux.fc"]["macs"] == 12 and rows["aux.fc"]["live_bytes"] == 0
    assert not rows["fc"]["training_only"]
    # the kept activations of a training step include the aux head's outputs
    assert t["training_memory_bytes"] > t0["training_memory_bytes"] + 15 * 4 * 2


def test_training_only_branches_run_in_training_only():
    import numpy as np

    model = archstat.load(aux_spec(True))
    assert model.outputs == ["aux.fc", "fc"] and model.inference_outputs == ["fc"]
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = archstat.run(model, x)
    assert y.shape == (2, 10)
    out = archstat.run(model, x, train=True)
    assert set(out) == {"aux.fc", "fc"} and out["aux.fc"].shape == (2, 3)
    res = archstat.backward(model, x, dy={"fc": np.ones((2, 10), np.float32)})
    assert np.all(res.grads["aux.fc"]["weight"] == 0)   # no gradient reaches the aux head from fc


def test_an_inference_layer_cannot_read_a_training_only_one():
    s = aux_spec(True)
    s["layers"].append({"type": "relu", "name": "bad", "inputs": "aux.fc"})
    with pytest.raises(ArchstatError, match="runs at inference but reads 'aux.fc'") as info:
        archstat.load(s)
    assert (info.value.layer, info.value.field) == ("bad", "inputs")


def test_a_block_reads_a_nested_instance_s_layer_by_its_path():
    # torchvision-style paths: inside block instance 'b', 'proj.0' names b.proj.0, the first
    # layer of the nested instance 'proj' (the instance's own name stands for its last layer)
    s = spec([{"block": "outer", "name": "b"}],
             blocks={"inner": {"layers": [{"type": "conv2d", "name": "0", "out_channels": 4, "kernel_size": 1},
                                          {"type": "relu", "name": "1"}]},
                     "outer": {"layers": [{"block": "inner", "name": "proj"},
                                          {"type": "add", "name": "sum", "inputs": ["proj.0", "proj"]}]}})
    assert archstat.load(s).layer("b.sum").inputs == ("b.proj.0", "b.proj.1")


def test_field_values_of_equal_value_but_other_type_are_not_confused():
    # attrs are shared between layers with the same fields: 8 and 8.0, true and 1 compare
    # equal in Python but only the int is a channel count and only true a flag
    good = spec([{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "bias": True}])
    assert archstat.load(good).graph.nodes["conv1"]["shape"] == (8, 6, 6)
    with pytest.raises(ArchstatError, match="got 8.0"):
        archstat.load(spec([{"type": "conv2d", "out_channels": 8.0, "kernel_size": 3, "bias": True}]))
    with pytest.raises(ArchstatError, match="expected true or false, got 1"):
        archstat.load(spec([{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "bias": 1}]))


def test_labels_train_the_main_output_of_a_model_with_an_aux_head():
    import numpy as np

    model = archstat.load(aux_spec(True))
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    res = archstat.backward(model, x, labels=np.array([1, 2]))
    assert set(res.output) == {"aux.fc", "fc"} and res.loss > 0
    assert np.all(res.grads["aux.fc"]["weight"] == 0) and np.any(res.grads["fc"]["weight"] != 0)


def test_a_spec_of_training_only_layers_alone_is_refused():
    s = spec([{"type": "relu", "name": "r", "training_only": True}])
    with pytest.raises(ArchstatError, match="every layer is training_only"):
        archstat.load(s)


@pytest.mark.parametrize("text, value", [
    # YAML 1.2 numbers, as JSON: 1e-5 and 2e1 are floats, 010 is ten, 0o17 and 0x1f octal and hex;
    # PyYAML's YAML 1.1 would read 010 as 8, 1:30 as 90 and 2e1 as text
    ("2e1", 20.0), ("1e-5", 1e-05), ("010", 10), ("0o17", 15), ("0x1f", 31), ("1:30", "1:30"),
    ("1_000", "1_000"), (".5", 0.5), ("b4", "b4"), ("true", True), ("[1, 2]", [1, 2]), ("", "")])
def test_values_follow_yaml_1_2(text, value, write_spec):
    from archstat.spec_io import parse_value
    assert parse_value(text) == value and type(parse_value(text)) is type(value)
    if text and not text.startswith("["):
        path = write_spec(f"input: [3, 8, 8]\nargs: {{v: {text}}}\nlayers:\n  - {{type: relu}}\n")
        assert archstat.load(path).args["v"] == value


@pytest.mark.parametrize("text, says", [
    ("+".join(["1"] * 500), "nests deeper than 100 levels"),
    ("'%0099999999d' % 1", "'%' on text is string formatting"),
    ("{1: 2}[[1]]", "a mapping key is a name or a number"),
    ("'x' * 90000 + 'y' * 90000", "more than 100,000"),
    ("[0] * 90000 + [1] * 90000", "more than 100,000"),
    ("sum([[0] * 10] * 10, [])", "sum's start must be a number"),
    ("sum([[0] * 1000] * 4000, [])", "steps"),
    ("round(5, -100000000)", "ndigits must be an integer from -100 to 100"),
    ("str([[0] * 100000] * 100000)", "steps"),
    ("len(str([[0] * 1000] * 200))", "more than 100,000 items"),
    ("sum([len(sorted(r)) for r in [[[0] * 90000] * 30][0:30]])", "steps"),
    ("[[0] * 100000] * 100000 == [[0] * 100000] * 100000", "steps"),
])
def test_builtins_pay_for_the_work_they_do(text, says):
    # functions and comparisons that walk lists spend a step per item they walk, nested items
    # included, so neither time nor memory can run away
    start = time.perf_counter()
    with pytest.raises(expr.ExprError) as info:
        ev(text)
    assert says in info.value.message
    assert time.perf_counter() - start < 30  # a guard against a hang, not a speed target
