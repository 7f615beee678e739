"""Large models: exact counts at tens of thousands of layers, and the garbage collector left as
it was found (bench/analysis.py times loading and analysing up to a million layers)."""
from __future__ import annotations

import gc

import pytest

import archstat
from archstat.errors import ArchstatError

N = 20_000


def chain(n: int, **relu) -> dict:
    return {"name": "chain", "input": [3, 8, 8], "layers": [{"type": "relu", **relu}] * n}


def test_a_long_chain_from_a_yaml_file_counts_exactly(write_spec):
    text = "name: chain\ninput: [3, 8, 8]\nlayers:\n" + "- {type: relu}\n" * N
    a = archstat.analyze(archstat.load(write_spec(text, "chain.yaml")))
    t, per = a.totals, 3 * 8 * 8
    assert t["layers"] == N and t["params"] == t["macs"] == t["backward_flops"] == 0
    assert t["flops"] == N * per                                   # one per output element
    assert t["activations"] == (N + 1) * per                       # the input counts too
    assert t["forward_memory_bytes"] == (N + 1) * per * 4
    assert t["peak_activation_bytes"] == 2 * per * 4               # each output frees its input
    assert a.column("name")[-1] == f"relu{N}" and a.column("inputs")[-1] == (f"relu{N - 1}",)
    assert set(a.column("rf_size")) == {(1, 1)} and set(a.column("live_bytes")[1:]) == {2 * per * 4}


def test_json_and_yaml_files_give_the_same_analysis(write_spec):
    spec = chain(2_000)
    ya = archstat.analyze(archstat.load(write_spec(spec, "c.yaml")))
    js = archstat.analyze(archstat.load(write_spec(spec, "c.json")))
    assert ya.totals == js.totals and ya.rows() == js.rows()


def residual(blocks: int) -> dict:
    conv = lambda name, c, k: {"name": name, "type": "conv2d", "out_channels": c, "kernel_size": k,
                               "padding": k // 2, "bias": False}
    block = {"layers": [conv("c1", 16, 1), {"name": "b1", "type": "batch_norm2d"},
                        {"name": "r1", "type": "relu", "inplace": True}, conv("c2", 16, 3),
                        {"name": "b2", "type": "batch_norm2d"}, {"name": "r2", "type": "relu", "inplace": True},
                        conv("c3", 32, 1), {"name": "b3", "type": "batch_norm2d"},
                        {"name": "add", "type": "add", "inputs": ["b3", "input"]},
                        {"name": "r", "type": "relu", "inplace": True}]}
    return {"name": f"residual-{blocks}", "input": [3, 8, 8], "blocks": {"bottleneck": block},
            "layers": [conv("stem", 32, 3), {"block": "bottleneck", "repeat": blocks},
                       {"type": "global_avg_pool2d"}, {"type": "flatten"}, {"type": "linear", "out_features": 10}]}


def test_a_deep_residual_graph_grows_by_exactly_one_block_per_block():
    """Every block adds the same counts (its layers are identical): the totals of 2,000 blocks
    follow from those of 1 and 2, and the receptive field grows by 2 pixels per 3x3 conv."""
    one, two, many = (archstat.analyze(residual(k), batch=2, optimizer="adam") for k in (1, 2, 2_000))
    assert many.totals["layers"] == 10 * 2_000 + 4
    for key in ("params", "buffers", "macs", "flops", "activations", "activation_bytes", "backward_flops",
                "training_step_flops", "training_memory_bytes"):
        step = two.totals[key] - one.totals[key]
        assert many.totals[key] == one.totals[key] + 1_999 * step, key
    assert many.totals["peak_activation_bytes"] == two.totals["peak_activation_bytes"]
    last_add = [rf for name, rf in zip(many.column("name"), many.column("rf_size")) if name.endswith(".add")][-1]
    assert last_add == (3 + 2 * 2_000, 3 + 2 * 2_000)


def test_a_long_chain_of_in_place_layers_loads():
    """Each in-place layer is checked against the earlier holders of its storage: one pass, not
    one per layer (20,000 in-place ReLUs sharing one storage)."""
    spec = {"name": "inplace", "input": [3, 8, 8],
            "layers": [{"type": "conv2d", "out_channels": 4, "kernel_size": 1}]
            + [{"type": "relu", "inplace": True}] * N}
    model = archstat.load(spec)
    assert set(model.storage.values()) == {"input", "conv1"}
    assert archstat.analyze(model).totals["peak_activation_bytes"] == (3 + 4) * 64 * 4


def test_an_in_place_layer_that_overwrites_a_later_read_is_still_found_far_down_a_chain():
    layers = [{"type": "conv2d", "out_channels": 4, "kernel_size": 1, "name": "c"}, {"type": "relu", "name": "x"}]
    layers += [{"type": "relu", "inplace": True}] * 5_000         # relu1 .. relu5000, all in x's storage
    layers += [{"type": "add", "inputs": ["relu2500", "c"]}]
    with pytest.raises(ArchstatError, match=r"layer 'relu2501', field 'inplace': inplace: true would overwrite "
                                            r"'relu2500', which 'add1' reads later"):
        archstat.load({"name": "bad", "input": [3, 8, 8], "layers": layers})


# -- the garbage collector -------------------------------------------------------------------

@pytest.fixture
def gc_as_found():
    enabled = gc.isenabled()
    yield
    gc.enable() if enabled else gc.disable()


@pytest.mark.parametrize("enabled", [True, False])
def test_load_and_analyze_leave_the_collector_as_they_found_it(gc_as_found, enabled):
    gc.enable() if enabled else gc.disable()
    model = archstat.load(chain(N))          # large: what it built moves to the oldest generation
    assert gc.isenabled() is enabled
    archstat.analyze(model)
    assert gc.isenabled() is enabled
    archstat.analyze(archstat.load("resnet18"))
    assert gc.isenabled() is enabled


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_restored_when_loading_or_analysing_fails(gc_as_found, enabled):
    gc.enable() if enabled else gc.disable()
    bad = chain(N)
    bad["layers"] = bad["layers"] + [{"type": "linear"}]     # no out_features, after 20,000 layers
    with pytest.raises(ArchstatError):
        archstat.load(bad)
    assert gc.isenabled() is enabled
    with pytest.raises(ArchstatError):
        archstat.analyze(archstat.load(chain(N)), dtype="float7")
    assert gc.isenabled() is enabled
    with pytest.raises(ArchstatError):
        archstat.analyze(archstat.load(chain(10)), input_shape=(3, 0, 8))
    assert gc.isenabled() is enabled


def test_a_programs_frozen_objects_stay_frozen(gc_as_found):
    """Moving a large model into the oldest generation (freeze, then unfreeze) would also release
    what the program froze itself: then the loader leaves the generations alone."""
    gc.enable()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        archstat.analyze(archstat.load(chain(N)))
        assert gc.get_freeze_count() == frozen and gc.isenabled()
    finally:
        gc.unfreeze()


def test_nothing_stays_frozen_after_a_large_load(gc_as_found):
    gc.enable()
    assert gc.get_freeze_count() == 0
    archstat.analyze(archstat.load(chain(N)))
    assert gc.get_freeze_count() == 0
    cycle = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1       # the collector still runs and frees cycles


def test_the_graph_is_the_one_networkx_builds_node_by_node():
    """Model fills a DiGraph's dicts directly (a million add_node calls cost seconds): the graph
    must be the one add_node and add_edge make, in the same order, and stay a working DiGraph."""
    import networkx as nx

    spec = {"name": "g", "input": [3, 8, 8], "layers": [
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "name": "c"},
        {"type": "add", "inputs": ["c", "c"], "name": "twice"},          # one input read twice: one edge
        {"type": "relu", "inputs": "later", "name": "early"},            # listed before the layer it reads
        {"type": "relu", "inputs": "twice", "name": "later"},
        {"type": "concat", "inputs": ["early", "c", "twice"], "name": "cat"}]}
    for s in (spec, residual(3)):
        model = archstat.load(s)
        ref = nx.DiGraph(name=model.graph.graph["name"])
        for name in model.graph:
            ref.add_node(name, **model.graph.nodes[name])
        for name in model.graph:                                     # the spec's order
            for src in model.layer(name).inputs:
                ref.add_edge(src, name)
        assert list(model.graph.nodes(data=True)) == list(ref.nodes(data=True))
        assert list(model.graph.edges(data=True)) == list(ref.edges(data=True))
        predecessors = {n: list(model.graph.predecessors(n)) for n in model.graph}
        assert predecessors == {n: list(ref.predecessors(n)) for n in ref}
        assert nx.utils.graphs_equal(model.graph, ref) and nx.is_directed_acyclic_graph(model.graph)
        assert list(nx.topological_sort(model.graph))[0] == "input"
    model.graph.add_edge("input", "extra")
    assert model.graph.has_edge("input", "extra") and "extra" in model.graph.succ["input"]
