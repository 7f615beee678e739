"""Algorithm choice per layer (archstat.engine.algorithms): the names come from the registry,
a forced algorithm runs where it applies, 'auto' measures once per layer shape and reads the
machine's cache afterwards, every algorithm gives the reference's outputs and gradients, and
the profiler says which algorithm each layer ran."""
from __future__ import annotations

import json

import numpy as np
import pytest

import archstat
from archstat.engine import Executor, algorithms
from archstat.errors import ArchstatError
from archstat.layers import all_types
from archstat.profiling import profile

from test_profile import fake_calibration

#: 3x3 stride-1 convs (Winograd applies), a stride-2 one and a 1x1 (it does not)
NET = {"name": "algo", "input": [3, 12, 12],
       "layers": [{"name": "c1", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
                  {"name": "r1", "type": "relu"},
                  {"name": "c2", "type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1},
                  {"name": "down", "type": "conv2d", "out_channels": 16, "kernel_size": 3, "stride": 2,
                   "padding": 1},
                  {"name": "point", "type": "conv2d", "out_channels": 4, "kernel_size": 1},
                  {"name": "c3", "type": "conv2d", "out_channels": 4, "kernel_size": 3}]}
WINOGRAD_LAYERS = {"c1", "c2", "c3"}
ALL = ("im2col", "winograd2", "winograd4")


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "archstat"


def test_the_names_are_the_registrys():
    expected = []
    for ltype in all_types().values():
        expected += [n for n in ltype.algorithm_names if n not in expected]
    assert algorithms.names() == tuple(expected)
    assert {"im2col", "winograd2", "winograd4"} <= set(expected)
    assert all_types()["conv2d"].algorithm_names[0] == "im2col"   # the reference first


def test_an_unknown_choice_is_one_clear_line_with_the_choices():
    with pytest.raises(ArchstatError) as info:
        Executor(NET, algorithm="winograd")
    text = str(info.value)
    assert "unknown algorithm 'winograd'" in text and "auto, reference, im2col, winograd2, winograd4" in text
    assert "\n" not in text


@pytest.mark.parametrize("choice, expected", [("reference", "im2col"), ("im2col", "im2col"),
                                              ("winograd2", "winograd2"), ("winograd4", "winograd4")])
def test_a_forced_algorithm_runs_where_it_applies(choice, expected):
    chosen = Executor(NET, algorithm=choice).algorithms(batch=2)
    assert chosen == dict.fromkeys(sorted(WINOGRAD_LAYERS), expected)


@pytest.mark.parametrize("choice", ["winograd2", "winograd4"])
def test_every_algorithm_gives_the_references_outputs_and_gradients(choice):
    x = np.random.default_rng(0).standard_normal((2, 3, 12, 12)).astype(np.float32)
    runs = {}
    for name in ("reference", choice):
        ex = Executor(NET, algorithm=name, seed=3)
        y = ex.forward(x, train=True)
        grads = ex.backward(np.ones_like(y))
        runs[name] = (y, grads, ex.input_grad)
    (y0, g0, dx0), (y1, g1, dx1) = runs["reference"], runs[choice]
    scale = float(np.abs(y0).max())
    np.testing.assert_allclose(y1, y0, atol=1e-4 * scale)
    np.testing.assert_allclose(dx1, dx0, atol=1e-4 * float(np.abs(dx0).max()))
    for layer in WINOGRAD_LAYERS:
        np.testing.assert_allclose(g1[layer]["weight"], g0[layer]["weight"],
                                   atol=1e-4 * float(np.abs(g0[layer]["weight"]).max()))


def test_auto_measures_once_then_reads_the_machines_cache(cache_home, monkeypatch):
    ex = Executor(NET, algorithm="auto")
    chosen = ex.algorithms(batch=1)
    caps = ex.workspace_caps(1)
    assert set(chosen) == WINOGRAD_LAYERS and set(chosen.values()) <= {"im2col", "winograd2", "winograd4"}
    (path,) = cache_home.glob("algorithms-*.json")
    data = json.loads(path.read_text())
    assert data["version"] == algorithms.CACHE_VERSION and len(data["choices"]) == 3   # c1, c2, c3 differ
    net = archstat.load(NET)
    shapes = net.shapes(1)
    for name in sorted(WINOGRAD_LAYERS):
        layer = net.layer(name)
        ins = [shapes[layer.inputs[0]]]
        # measured under the executor's workspace cap where it binds: c1's and c2's, whose
        # default buffers (17-66 kB) dwarf their caps (4.6 and 0.9 kB); c3's 2.9-4.7 kB fit its 8.4
        cap = algorithms.binding_cap(layer.type, ins, layer.attrs, ALL, "float32", caps[name])
        assert cap == (caps[name] if name in ("c1", "c2") else None)
        entry = data["choices"][algorithms.Tuner.case(layer.type, ins, layer.attrs, "float32", False, cap)]
        assert set(entry["ms"]) == set(ALL)
        ms = entry["ms"]
        tied = [k for k in ms if ms[k] <= min(ms.values()) * (1 + algorithms.TIE)]
        work = {k: layer.type.workspace_bytes(ins, layer.attrs, 4, k, cap) for k in tied}
        assert entry["best"] in tied and work[entry["best"]] == min(work.values())

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again")
    monkeypatch.setattr(algorithms, "measure", no_measuring)
    assert Executor(NET, algorithm="auto").algorithms(batch=1) == chosen
    # another batch size is another shape: measured
    with pytest.raises(AssertionError, match="measured again"):
        Executor(NET, algorithm="auto").algorithms(batch=3)


def test_auto_breaks_near_ties_by_workspace_at_inference():
    conv = all_types()["conv2d"]
    attrs = conv.normalise({"out_channels": 64, "kernel_size": 3, "padding": 1})
    shape = [(1, 64, 224, 224)]     # VGG-16's conv1_2: Winograd's buffers are several times im2col's
    options = ("im2col", "winograd2", "winograd4")
    work = {k: conv.workspace_bytes(shape, attrs, 4, k) for k in options}
    assert work["im2col"] < work["winograd4"]
    ms = {"im2col": 10.4, "winograd2": 15.0, "winograd4": 10.0}          # 4 % apart: a tie
    assert algorithms.pick(conv, shape, attrs, ms, options, "float32", False) == "im2col"
    assert algorithms.pick(conv, shape, attrs, ms, options, "float32", True) == "winograd4"   # training: time
    ms["im2col"] = 10.6                                                    # 6 % apart: the faster
    assert algorithms.pick(conv, shape, attrs, ms, options, "float32", False) == "winograd4"


def test_auto_without_a_writable_cache_still_chooses(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    tuner = algorithms.Tuner()
    ex = Executor(NET, algorithm="auto")
    assert set(ex.algorithms(batch=1)) == WINOGRAD_LAYERS
    tuner.best(all_types()["conv2d"], [(1, 3, 12, 12)], archstat.load(NET).layer("c1").attrs,
               ("im2col", "winograd2"), "float32", False)
    assert tuner.note and "not cached" in tuner.note


def test_the_profile_says_which_algorithm_ran():
    p = profile(NET, batch=1, repeat=1, warmup=0, memory=False, calibration=fake_calibration(),
                algorithm="winograd4")
    ran = dict(zip(p.layers["name"], p.layers["algorithm"]))
    assert {k for k, v in ran.items() if v} == WINOGRAD_LAYERS and ran["c1"] == "winograd4"
    assert ran["down"] == ran["point"] == ran["r1"] == "" and p.totals["algorithm"] == "winograd4"
    from archstat.report.profile_table import render_profile
    text = render_profile(p, "table", width=200)
    assert "Algorithm" in text and "winograd4" in text


def test_the_cli_takes_the_algorithm_and_refuses_an_unknown_one(cli, write_spec):
    path = write_spec(NET)
    code, out, err = cli("profile", str(path), "--conv-algorithm", "winograd2", "--repeat", "1", "--quiet")
    assert code == 0, err
    assert "winograd2" in out
    code, out, err = cli("profile", str(path), "--algorithm", "fast", "--quiet")
    assert code == 2 and "unknown algorithm 'fast'" in err and len(err.strip().splitlines()) == 1


def test_the_kernel_runs_the_chosen_algorithm(monkeypatch):
    from archstat.layers import conv

    calls = []
    for name in ("winograd_conv2d", "winograd_conv2d_backward"):
        real = getattr(conv, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append((_name, args[-1] if not kwargs else kwargs))
            return _real(*args, **kwargs)
        monkeypatch.setattr(conv, name, spy)
    ex = Executor(NET, algorithm="winograd2")
    y = ex.forward(np.ones((1, 3, 12, 12), np.float32), train=True)
    ex.backward(np.ones_like(y))
    assert [c[0] for c in calls] == ["winograd_conv2d"] * 3 + ["winograd_conv2d_backward"] * 3
    calls.clear()
    Executor(NET).forward(np.ones((1, 3, 12, 12), np.float32))
    assert calls == []   # the reference: im2col everywhere


def test_winograds_fewer_multiplies_are_not_a_rate_above_the_roofs():
    from archstat.layers.conv_winograd import multiply_fraction
    from archstat.report.profile_table import _peak_cell

    assert multiply_fraction("winograd2") == 16 / 36 and multiply_fraction("winograd4") == 36 / 144
    p = profile(NET, batch=1, repeat=1, warmup=0, memory=False, calibration=fake_calibration(),
                algorithm="winograd4")
    work = dict(zip(p.layers["name"], p.layers["work_fraction"]))
    assert work["c1"] == 0.25 and work["down"] == work["r1"] == 1.0
    # 150% of the GEMM peak in direct FLOPs: a quarter of them multiplied is below the roof
    assert _peak_cell(150.0, 0.25) == "150%" and _peak_cell(150.0) == "150%!"
