"""The memo of block instances (archstat.spec_replay): a replayed instance is exactly what
expanding it again gives, in every zoo model and in the cases where a block reaches outside
itself, and errors (the step budget, the nesting depth, a float where an integer belongs)
never depend on what the process expanded before."""
import pytest

import archstat
import archstat.zoo
from archstat import spec as spec_module
from archstat import spec_replay
from archstat.errors import ArchstatError
from archstat.spec_expand import MAX_BLOCK_DEPTH


def _layers(model):
    return [(layer.name, layer.type.name, layer.attrs, layer.inputs, layer.training_only, layer.shares, layer.call)
            for layer in model.layers()]


@pytest.fixture
def fresh():
    """Empties the memo and the loader's caches before and after the test."""
    for cache in (spec_replay._MEMOS, spec_replay._PARSED, spec_module._EXPANDED):
        cache.clear()
    yield
    for cache in (spec_replay._MEMOS, spec_replay._PARSED, spec_module._EXPANDED):
        cache.clear()


def _without_memo(monkeypatch, source, args=None):
    with monkeypatch.context() as m:
        m.setattr(spec_replay, "memo_for", lambda blocks, **kw: None)
        spec_module._EXPANDED.clear()
        return _layers(archstat.load(source, args))


def _with_memo(source, args=None):
    spec_module._EXPANDED.clear()
    return _layers(archstat.load(source, args))


@pytest.mark.parametrize("name", list(archstat.zoo.entries()))
def test_every_zoo_model_expands_alike_cold_and_warm(monkeypatch, fresh, name):
    expected = _without_memo(monkeypatch, name)
    assert _with_memo(name) == expected    # recording
    assert _with_memo(name) == expected    # replaying


def test_regnet_blocks_are_replayed(fresh):
    archstat.load("regnet_y_400mf")
    (memo,) = spec_replay._MEMOS.values()
    # one entry per distinct bottleneck (first and later blocks of each of 4 stages), fewer than 16 blocks
    assert memo.replayed.get("res_bottleneck", 0) > 0 and memo.replayed.get("conv_norm_act", 0) > 0
    assert {key[0] for key in memo.entries} >= {"conv_norm_act", "squeeze_excitation", "res_bottleneck"}


def test_a_sweep_gives_the_same_rows_with_and_without_the_memo(monkeypatch, fresh):
    from archstat.space import sample
    from archstat.space.load import load_space

    space = load_space("regnet")
    warm = sample(space, n=40, seed=3)
    with monkeypatch.context() as m:
        m.setattr(spec_replay, "memo_for", lambda blocks, **kw: None)
        cold = sample(space, n=40, seed=3)
    assert warm.equals(cold)
    assert warm["error"].eq("").sum() > 20


# a block with no arguments: every instance has the same memo key
def _block(*layers):
    return {"layers": list(layers)}


def test_a_block_naming_an_outside_layer_keeps_naming_it(monkeypatch, fresh):
    # 'first' is the first instance's input by the flow and by name: a replay must not point
    # the second instance's 'first' at its own input
    spec = {"input": [4, 8, 8],
            "blocks": {"b": _block({"name": "a", "type": "relu"},
                                   {"name": "s", "type": "add", "inputs": ["a", "first"]})},
            "layers": [{"name": "first", "type": "relu"}, {"block": "b", "name": "b1"},
                       {"name": "mid", "type": "relu"}, {"block": "b", "name": "b2"}]}
    expected = _without_memo(monkeypatch, spec)
    assert _with_memo(spec) == expected == _with_memo(spec)
    model = archstat.load(spec)
    assert model.layer("b2.s").inputs == ("b2.a", "first")
    assert model.layer("b2.a").inputs == ("mid",)


def test_a_nested_instance_fed_by_name_from_outside_is_not_replayed_with_another_input(monkeypatch, fresh):
    spec = {"input": [4, 8, 8],
            "blocks": {"inner": _block({"name": "r", "type": "relu"}),
                       "outer": _block({"block": "inner", "name": "n", "inputs": "first"},
                                       {"name": "s", "type": "add", "inputs": ["n", "input"]})},
            "layers": [{"name": "first", "type": "relu"}, {"block": "outer", "name": "o1"},
                       {"name": "mid", "type": "relu"}, {"block": "outer", "name": "o2"}]}
    expected = _without_memo(monkeypatch, spec)
    assert _with_memo(spec) == expected == _with_memo(spec)
    model = archstat.load(spec)
    assert model.layer("o2.n.r").inputs == ("first",)
    assert model.layer("o2.s").inputs == ("o2.n.r", "mid")


def test_forward_references_shares_and_name_siblings_replay_exactly(monkeypatch, fresh):
    spec = {"input": [4, 8, 8],
            "blocks": {
                "cb": _block({"name": "${name}", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
                             {"name": "${name}_bn", "type": "batch_norm2d"}),
                "tied": _block({"name": "c1", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
                               {"name": "c2", "type": "conv2d", "out_channels": 4, "kernel_size": 1,
                                "shares": "c1"},
                               {"name": "s", "type": "add", "inputs": ["c2", "input"]}),
                "res": _block({"block": "cb", "name": "proj"}, {"block": "tied", "name": "t"},
                              {"name": "sum", "type": "add", "inputs": ["input", "proj_bn"]})},
            "layers": [{"block": "res", "name": "r1"}, {"block": "res", "name": "r2"},
                       {"block": "res", "name": "r3"}]}
    expected = _without_memo(monkeypatch, spec)
    assert _with_memo(spec) == expected == _with_memo(spec)
    model = archstat.load(spec)
    assert model.layer("r3.t.c2").shares == {"*": "r3.t.c1"}
    assert model.layer("r3.sum").inputs == ("r2.sum", "r3.proj_bn")


def test_types_are_part_of_the_key(fresh):
    spec = {"input": [4, 8, 8],
            "blocks": {"c": {"args": {"k": "required"},
                             "layers": [{"type": "conv2d", "out_channels": 4, "kernel_size": "$k"}]}},
            "layers": [{"block": "c", "k": 1}, {"block": "c", "k": 1.0}]}
    with pytest.raises(ArchstatError, match="kernel_size"):
        archstat.load(spec)


def test_the_step_budget_fails_alike_cold_and_warm(fresh):
    # each instance spends 180,005 steps on its let: the 12th runs out of the spec's 2,000,000
    # whether the instances before it were expanded or replayed
    spec = {"input": [4, 8, 8],
            "blocks": {"heavy": {"let": {"t": "${sum([j % 7 for j in range(30000)])}"},
                                 "layers": [{"type": "relu"}]}},
            "layers": [{"block": "heavy", "repeat": 12}]}
    for _ in range(2):
        with pytest.raises(ArchstatError, match="steps"):
            archstat.load(spec)
    assert archstat.load(dict(spec, layers=[{"block": "heavy", "repeat": 10}])).order[-1] == "heavy10.relu1"


def test_nesting_depth_fails_alike_after_a_shallow_replay(fresh):
    blocks = {"c0": _block({"type": "relu"})}
    for k in range(1, MAX_BLOCK_DEPTH + 1):
        blocks[f"c{k}"] = _block({"block": f"c{k - 1}"})
    deep = {"input": [4, 8, 8], "blocks": blocks, "layers": [{"block": f"c{MAX_BLOCK_DEPTH - 1}"}]}
    assert len(archstat.load(deep).order) == 2   # c0 written at depth 31: allowed
    # c5 recorded at the top level, then met 27 levels down inside c32: too deep
    too_deep = dict(deep, layers=[{"block": "c5"}, {"block": f"c{MAX_BLOCK_DEPTH}"}])
    for _ in range(2):
        with pytest.raises(ArchstatError, match="nest deeper"):
            archstat.load(too_deep)


def test_a_full_memo_and_a_block_given_up_change_nothing(monkeypatch, fresh):
    from archstat.space import sample
    from archstat.space.load import load_space

    space = load_space("regnet")
    with monkeypatch.context() as m:
        m.setattr(spec_replay, "memo_for", lambda blocks, **kw: None)
        cold = sample(space, n=30, seed=4)
    monkeypatch.setattr(spec_replay, "MAX_ENTRIES", 8)
    monkeypatch.setattr(spec_replay, "GIVE_UP_AFTER", 4)
    spec_module._EXPANDED.clear()   # (the loader's cache of expanded specs would answer otherwise)
    warm = sample(space, n=30, seed=4)
    (memo,) = spec_replay._MEMOS.values()
    assert len(memo.entries) <= 8 and memo.skipped   # evicted, and some block no longer recorded
    assert warm.equals(cold)
