"""Spec fuzzing: every mutated spec either loads and analyses, or raises ArchstatError.

A seeded generator takes four small specs in the shipped style (a chain; a branching one
with concat/add and a block with args; one with repeat and when/unless; a flat MLP) and
applies random mutations: delete a key, change a value to a random type/number/string,
rename a field, change a layer type, rewire inputs, insert garbage, swap list items,
change the input size, nest a value deeply, duplicate an entry. Nothing but ArchstatError
may escape (no KeyError, TypeError, ValueError, RecursionError, AssertionError...).

The crashes this fuzzer found (a block instance as its own input, ``type: input`` in a
spec, unbounded nesting) are fixed; their minimal reproductions stay below as
regression tests. Any crash fails the fuzz test with the seed, the mutations and the
traceback, ready to be minimised.
"""
from __future__ import annotations

import copy
import math
import random
import traceback
from typing import Any

import pytest
import yaml

import archstat
from archstat import ArchstatError
from archstat.layers import all_types
from archstat.report.table import render_report

# ------------------------------------------------------------------------ base specs

CHAIN = {
    "name": "chain",
    "input": [3, 16, 16],
    "layers": [
        {"name": "conv1", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
        {"type": "batch_norm2d"},
        {"type": "relu", "inplace": True},
        {"name": "pool1", "type": "max_pool2d", "kernel_size": 2, "stride": 2},
        {"name": "conv2", "type": "conv2d", "out_channels": 16, "kernel_size": [3, 3], "stride": 1,
         "padding": "same", "groups": 2},
        {"type": "lrn", "size": 5},
        {"type": "avg_pool2d", "kernel_size": 2, "ceil_mode": True},
        {"type": "flatten"},
        {"name": "fc", "type": "linear", "out_features": 10},
        {"type": "softmax"},
    ],
}

BRANCHING = {
    "name": "branching",
    "input": [3, 12, 12],
    "blocks": {
        "conv_bn": {
            "args": {"out": "required", "k": 3, "pad": 1, "act": True},
            "layers": [
                {"name": "${name}", "type": "conv2d", "out_channels": "$out", "kernel_size": "$k",
                 "padding": "$pad", "bias": False},
                {"name": "${name}_bn", "type": "batch_norm2d"},
                {"name": "${name}_relu", "type": "relu", "when": "$act"},
            ],
        },
        "res": {
            "args": {"c": 8},
            "layers": [
                {"name": "a", "type": "conv2d", "out_channels": "$c", "kernel_size": 3, "padding": 1},
                {"type": "relu"},
                {"name": "b", "type": "conv2d", "out_channels": "$c", "kernel_size": 3, "padding": 1},
                {"name": "sum", "type": "add", "inputs": ["b", "input"]},
            ],
        },
    },
    "layers": [
        {"block": "conv_bn", "name": "stem", "out": 8},
        {"name": "b1", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
        {"name": "b2", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1,
         "inputs": "stem_relu"},
        {"name": "b3", "type": "max_pool2d", "kernel_size": 3, "stride": 1, "padding": 1,
         "inputs": "stem_relu"},
        {"name": "cat", "type": "concat", "inputs": ["b1", "b2", "b3"]},
        {"block": "res", "name": "r1", "c": 16},
        {"name": "proj", "type": "conv2d", "out_channels": 16, "kernel_size": 1, "inputs": "stem_relu"},
        {"name": "join", "type": "add", "inputs": ["r1.sum", "proj"]},
        {"type": "global_avg_pool2d"},
        {"type": "flatten"},
        {"type": "linear", "out_features": 5},
    ],
}

REPEATED = {
    "name": "repeated",
    "input": [3, 32, 32],
    "blocks": {
        "stage": {
            "args": {"out": "required", "pool": True},
            "layers": [
                {"name": "${name}_c${i}", "type": "conv2d", "out_channels": "$out", "kernel_size": 3,
                 "padding": 1, "repeat": 2},
                {"name": "${name}_pool", "type": "max_pool2d", "kernel_size": 2, "when": "$pool"},
            ],
        },
    },
    "layers": [
        {"block": "stage", "name": "s${i}", "out": 8, "repeat": 2},
        {"block": "stage", "name": "last", "out": 16, "pool": False},
        {"type": "relu", "repeat": 3},
        {"type": "dropout", "p": 0.5, "unless": True},
        {"type": "global_avg_pool2d"},
        {"type": "flatten", "start_dim": 1, "end_dim": -1},
        {"type": "linear", "out_features": 10, "bias": False},
    ],
}

MLP = {
    "name": "mlp",
    "input": [20],
    "layers": [
        {"name": "fc1", "type": "linear", "out_features": 32},
        {"type": "sigmoid"},
        {"type": "dropout", "p": 0.1},
        {"name": "fc2", "type": "linear", "in_features": 32, "out_features": 10},
        {"type": "tanh"},
    ],
}

BASES = {"chain": CHAIN, "branching": BRANCHING, "repeated": REPEATED, "mlp": MLP}


def test_base_specs_analyse():
    """The mutations start from valid specs (numbers checked by hand for two of them)."""
    totals = {name: archstat.analyze(archstat.load(s)).totals for name, s in BASES.items()}
    # mlp: fc1 20*32+32 = 672, fc2 32*10+10 = 330; MACs 640 + 320 = 960
    assert (totals["mlp"]["params"], totals["mlp"]["macs"]) == (672 + 330, 640 + 320)
    # chain: conv1 8*27+8 = 224; bn 2*8 = 16; conv2 16*(4*9)+16 = 592; fc 10*(16*4*4)+10 = 2570
    assert totals["chain"]["params"] == 224 + 16 + 592 + 2570


# ------------------------------------------------------------------------ mutations

TYPE_NAMES = sorted(n for n in all_types() if n != "input")
FIELD_NAMES = sorted({f.name for t in all_types().values() for f in t.fields}
                     | {"name", "inputs", "repeat", "when", "unless", "block", "type", "args", "layers"})
NAN = float("nan")
VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2, 3, 5, 7, 64, 10**9, 10**40, -10**9, 0.5, 1.5, -2.5, 1e308, NAN,
    math.inf, -math.inf, "", "x", "same", "valid", "input", "$out", "$c", "${name}", "$i", "${nope}",
    "$", "${", "relu", "conv2d", "stem", "3", "1e5", "a b", "ünï", [], [1], [2, 2], [0, 0], [1, 2, 3],
    [3, 8, 8], [1, 1, 1], ["a"], [[1]], {}, {"a": 1}, {"type": "relu"}, [{"type": "relu"}],
]


def _random_value(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.6:
        return copy.deepcopy(rng.choice(VALUES))
    if roll < 0.8:
        return rng.randint(-5, 300)
    if roll < 0.9:
        return "".join(rng.choice("abcxyz_$.{}01 ") for _ in range(rng.randint(0, 8)))
    return [rng.randint(0, 40) for _ in range(rng.randint(0, 4))]


def _slots(node: Any, out: list) -> list:
    """Every (container, key-or-index) position in the spec tree."""
    if isinstance(node, dict):
        for key in list(node):
            out.append((node, key))
            _slots(node[key], out)
    elif isinstance(node, list):
        for i in range(len(node)):
            out.append((node, i))
            _slots(node[i], out)
    return out


def _dicts(node: Any, out: list) -> list:
    if isinstance(node, dict):
        out.append(node)
        for v in node.values():
            _dicts(v, out)
    elif isinstance(node, list):
        for v in node:
            _dicts(v, out)
    return out


def _entries(spec: dict) -> list[dict]:
    """Layer and block-instance entries (top level and inside blocks)."""
    return [d for d in _dicts(spec, []) if "type" in d or "block" in d]


def _names(spec: dict) -> list[str]:
    return [d["name"] for d in _entries(spec) if isinstance(d.get("name"), str)] + ["input"]


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 2:
        return word + "x"
    i = rng.randrange(len(word) - 1)
    op = rng.choice(("drop", "swap", "add", "case"))
    if op == "drop":
        return word[:i] + word[i + 1:]
    if op == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == "add":
        return word[:i] + rng.choice("aeiou_") + word[i:]
    return word.upper()


def m_delete_key(spec, rng):
    dicts = [d for d in _dicts(spec, []) if d]
    d = rng.choice(dicts)
    key = rng.choice(list(d))
    del d[key]
    return f"delete {key!r}"


def m_set_value(spec, rng):
    container, key = rng.choice(_slots(spec, []))
    value = _random_value(rng)
    container[key] = value
    return f"set [{key!r}] = {value!r}"


def m_rename_key(spec, rng):
    d = rng.choice([d for d in _dicts(spec, []) if d])
    key = rng.choice(list(d))
    new = _typo(str(key), rng) if rng.random() < 0.6 else rng.choice(FIELD_NAMES)
    d[new] = d.pop(key)
    return f"rename {key!r} -> {new!r}"


def m_change_type(spec, rng):
    entry = rng.choice(_entries(spec))
    entry.pop("block", None)
    entry["type"] = rng.choice(TYPE_NAMES)
    return f"type of {entry.get('name')!r} -> {entry['type']!r}"


def m_change_inputs(spec, rng):
    entry = rng.choice(_entries(spec))
    names = _names(spec) + ["nope", "r1", "stem", "s1", "s2", "last"]
    roll = rng.random()
    if roll < 0.4:
        entry["inputs"] = rng.choice(names)
    elif roll < 0.8:
        entry["inputs"] = rng.sample(names, k=min(len(names), rng.randint(1, 3)))
    else:
        entry["inputs"] = _random_value(rng)
    return f"inputs of {entry.get('name')!r} -> {entry['inputs']!r}"


def m_insert_garbage(spec, rng):
    if rng.random() < 0.5:
        d = rng.choice(_dicts(spec, []))
        key = rng.choice([rng.choice(FIELD_NAMES), _typo(rng.choice(FIELD_NAMES), rng), 7, "x y"])
        d[key] = _random_value(rng)
        return f"insert {key!r}: {d[key]!r}"
    lists = [c[k] for c, k in _slots(spec, []) if isinstance(c[k], list)]
    target = rng.choice(lists) if lists else spec["layers"]
    value = _random_value(rng)
    target.insert(rng.randint(0, len(target)), value)
    return f"insert item {value!r}"


def m_swap_items(spec, rng):
    lists = [c[k] for c, k in _slots(spec, []) if isinstance(c[k], list) and len(c[k]) >= 2]
    target = rng.choice(lists)
    i, j = rng.sample(range(len(target)), 2)
    target[i], target[j] = target[j], target[i]
    return f"swap items {i} and {j}"


def m_input_size(spec, rng):
    choices = [[3, 1, 1], [3, 2, 2], [1, 5, 5], [3, 7, 9], [16], [1, 1000, 3], [3, 64, 64], [0, 8, 8],
               [3, 8], [], 8, "3x8x8", [3, 8.0, 8], [True, 8, 8], [3, -8, 8], [3, 10**6, 10**6]]
    spec["input"] = copy.deepcopy(rng.choice(choices))
    return f"input -> {spec['input']!r}"


def m_deep_nest(spec, rng):
    container, key = rng.choice(_slots(spec, []))
    depth = rng.choice((2, 5, 20, 100, 400))
    value = container[key]
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {"k": value}
    container[key] = value
    return f"nest [{key!r}] {depth} deep"


def m_duplicate_entry(spec, rng):
    layers = spec["layers"]
    entry = rng.choice(layers)
    layers.insert(rng.randint(0, len(layers)), copy.deepcopy(entry))
    return f"duplicate {entry.get('name', entry.get('type'))!r}"


def m_repeat_or_flag(spec, rng):
    entry = rng.choice(_entries(spec))
    key = rng.choice(("repeat", "when", "unless"))
    entry[key] = rng.choice([0, 1, 2, 3, True, False, "$act", "$pool", "$i", -1, "2", None, 100])
    return f"{key} of {entry.get('name')!r} -> {entry[key]!r}"


def m_tweak_number(spec, rng):
    slots = [(c, k) for c, k in _slots(spec, []) if isinstance(c[k], int) and not isinstance(c[k], bool)]
    container, key = rng.choice(slots)
    container[key] = rng.choice((rng.randint(-2, 12), rng.randint(1, 4), [rng.randint(0, 5), rng.randint(0, 5)]))
    return f"tweak [{key!r}] -> {container[key]!r}"


def m_add_field(spec, rng):
    entry = rng.choice([e for e in _entries(spec) if isinstance(e.get("type"), str)])
    ltype = all_types().get(entry["type"])
    field = rng.choice(ltype.fields) if ltype and ltype.fields else None
    if field is None:
        return "add field: none to add"
    entry[field.name] = rng.choice((rng.randint(-1, 6), [rng.randint(0, 4), rng.randint(1, 4)], True,
                                    rng.choice(field.choices or ("same",)), 0.5, None))
    return f"{entry.get('name')!r}.{field.name} -> {entry[field.name]!r}"


MUTATIONS = (m_tweak_number, m_add_field, m_delete_key, m_set_value, m_rename_key, m_change_type, m_change_inputs, m_insert_garbage,
             m_swap_items, m_input_size, m_deep_nest, m_duplicate_entry, m_repeat_or_flag)


def mutate(base: dict, rng: random.Random) -> tuple[dict, list[str]]:
    spec = copy.deepcopy(base)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        mutation = rng.choice(MUTATIONS)
        try:
            done.append(mutation(spec, rng))
        except (IndexError, KeyError, TypeError, ValueError, AttributeError):
            done.append(f"{mutation.__name__}: not applicable")  # an earlier mutation broke the shape
    return spec, done


def check(spec: Any, via_yaml: bool = False, tmp_path=None) -> tuple[str, BaseException | None]:
    """Load + analyse (+ render); return ('ok'|'error'|'crash', exception)."""
    source = spec
    if via_yaml:
        try:
            text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
        except RecursionError:  # PyYAML's own dumper cannot write very deep values
            text = None
        if text is not None:
            source = tmp_path / "fuzz.yaml"
            source.write_text(text, encoding="utf-8")
    try:
        analysis = archstat.analyze(archstat.load(source))
        render_report(analysis, "table")
        render_report(analysis, "json")
        return "ok", None
    except ArchstatError as exc:
        assert exc.file == (str(source) if source is not spec else "<dict>"), f"error without its file: {exc!r}"
        assert "\n" not in str(exc) or "\n" in repr(spec)  # one line unless the spec put a newline in
        return "error", exc
    except Exception as exc:  # noqa: BLE001 - the point of the test
        return "crash", exc


# ------------------------------------------------------------------------ the fuzz test

SEEDS = range(8)
PER_SEED = 60   # 8 x 60 = 480 mutated specs


@pytest.mark.parametrize("seed", SEEDS)
def test_mutated_specs_raise_only_archstat_error(seed, tmp_path):
    rng = random.Random(seed)
    crashes, outcomes = [], {}
    for n in range(PER_SEED):
        base_name = rng.choice(sorted(BASES))
        spec, done = mutate(BASES[base_name], rng)
        via_yaml = n % 5 == 0  # every fifth goes through a YAML file and the C loader
        outcome, exc = check(spec, via_yaml, tmp_path)
        kind = outcome.split(":")[0]
        outcomes[kind] = outcomes.get(kind, 0) + 1
        if outcome == "crash":
            tb = "".join(traceback.format_exception(exc, limit=-4))
            crashes.append(f"seed {seed} #{n} base {base_name} mutations {done}:\n{tb}")
    assert not crashes, "non-ArchstatError escaped archstat:\n\n" + "\n\n".join(crashes[:5])
    # the mutations must exercise both outcomes, or the test proves little
    assert outcomes.get("error", 0) > PER_SEED // 4 and outcomes.get("ok", 0) > 0, outcomes


def test_mutated_specs_through_the_cli(tmp_path, cli):
    """Mutated specs through `archstat report`: exit 0 with a report, or 2 with one line."""
    rng = random.Random(1234)
    seen = set()
    for n in range(40):
        spec, done = mutate(BASES[rng.choice(sorted(BASES))], rng)
        outcome, _ = check(spec)
        if outcome == "crash":
            continue  # crashes are reported by the test above
        path = tmp_path / f"m{n}.yaml"
        try:
            path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        except RecursionError:  # PyYAML's own dumper cannot write very deep values
            continue
        code, out, err = cli("report", path)
        seen.add(code)
        if code == 0:
            assert out and err == "", done
        else:
            assert code == 2 and out == "", done
            assert len(err.splitlines()) == 1 and err.startswith(f"archstat: error: {path}"), (done, err)
    assert seen == {0, 2}


# ----------------------------------------------------------- hypothesis: layer fields

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_scalar = st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.floats(allow_nan=True),
                    st.sampled_from(["same", "valid", "zeros", "reflect", "circular", "x", ""]),
                    st.text(max_size=5))
_value = st.one_of(_scalar, st.lists(st.integers(-2, 20), max_size=3), st.lists(_scalar, max_size=2))


@st.composite
def _layer(draw):
    ltype = draw(st.sampled_from(TYPE_NAMES))
    fields = [f.name for f in all_types()[ltype].fields]
    layer = {"type": ltype}
    for name in draw(st.lists(st.sampled_from(fields + ["kernal_size", "input"]), max_size=4, unique=True)
                     if fields else st.just([])):
        layer[name] = draw(_value)
    if ltype in ("add", "concat"):
        layer["inputs"] = ["input", "input"]
    return layer


@settings(max_examples=250, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(layers=st.lists(_layer(), min_size=1, max_size=4),
       input_shape=st.sampled_from([[3, 9, 9], [2, 1, 1], [4, 16, 16], [12]]))
def test_random_layer_fields_raise_only_archstat_error(layers, input_shape):
    outcome, exc = check({"input": input_shape, "layers": layers})
    assert outcome != "crash", "".join(traceback.format_exception(exc, limit=-4))


# -------------------------------------- fixed crashes: minimal reproductions (regressions)

def test_bug_block_instance_is_its_own_input():
    spec = {"input": [3, 8, 8], "blocks": {"b": {"layers": [{"type": "relu"}]}},
            "layers": [{"block": "b", "name": "x", "inputs": "x"}]}
    with pytest.raises(ArchstatError, match="own input"):
        archstat.load(spec)


def test_bug_type_input_in_spec():
    with pytest.raises(ArchstatError, match="unknown layer type 'input'"):
        archstat.analyze(archstat.load({"input": [3, 8, 8], "layers": [{"type": "input"}]}))
