"""The profiler: structure and invariants of profiles, sweeps and operations-vs-time studies,
the roofline arithmetic, memory measurement and refusal, Ctrl-C, calibration cache, CLI.

No timing is asserted against a threshold: only structure, invariants (shares sum to 1,
medians within min-max, rates = FLOPs / time) and plausibility.
"""
from __future__ import annotations

import json
import os
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import archstat
from archstat.analysis import COLUMNS, Analysis
from archstat.errors import ArchstatError
from archstat.profiling import (PROFILE_COLUMNS, PROFILE_TOTALS, SWEEP_COLUMNS, Calibration, Profile, Roofline,
                                calibrate, linear_fit, load_calibration, machine_info, ops_vs_time, profile, sweep)
from archstat.profiling import calibration as calibration_mod

LENET = {
    "name": "LeNet-5 (test)",
    "input": [1, 32, 32],
    "layers": [
        {"name": "c1", "type": "conv2d", "out_channels": 6, "kernel_size": 5},
        {"name": "c1_tanh", "type": "tanh"},
        {"name": "s2", "type": "avg_pool2d", "kernel_size": 2, "stride": 2},
        {"name": "c3", "type": "conv2d", "out_channels": 16, "kernel_size": 5},
        {"name": "c3_relu", "type": "relu", "inplace": True},
        {"name": "s4", "type": "max_pool2d", "kernel_size": 2, "stride": 2},
        {"name": "flatten", "type": "flatten"},
        {"name": "c5", "type": "linear", "out_features": 120},
        {"name": "c5_tanh", "type": "tanh"},
        {"name": "output", "type": "linear", "out_features": 10},
    ],
}

TINY = {"name": "tiny", "input": [3, 16, 16],
        "layers": [{"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}, {"type": "relu"},
                   {"type": "flatten"}, {"type": "linear", "out_features": 4}]}


def fake_calibration(peak: float = 100.0, bandwidth: float = 10.0) -> Calibration:
    """Fixed roofs, so the roofline arithmetic is checked on known numbers (no measuring)."""
    return Calibration(machine=machine_info(), gemm_gflops={"float32": peak, "float64": peak / 2},
                       bandwidth_gbs=bandwidth, gemm_size=0, copy_bytes=0, measured_at="test")


@pytest.fixture(scope="module")
def lenet_train() -> Profile:
    return profile(LENET, batch=2, repeat=2, warmup=1, backward=True, calibration=fake_calibration())


@pytest.fixture(scope="module")
def lenet_infer() -> Profile:
    return profile(LENET, batch=2, repeat=2, warmup=0, calibration=fake_calibration())


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """An empty calibration cache, and tiny calibration settings (milliseconds, not seconds)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tiny = {"gemm_size": 64, "copy_bytes": 2**20, "repeats": 2, "min_seconds": 0.0}
    monkeypatch.setattr(calibration_mod, "FULL", tiny)
    monkeypatch.setattr(calibration_mod, "QUICK", tiny)
    # an idle machine, whatever else runs (the tests below set other loads on purpose)
    monkeypatch.setattr(calibration_mod.CpuWatch, "share", lambda self: 0.0)
    return tmp_path / "cache" / "archstat"


# ------------------------------------------------------------------ structure

@pytest.mark.parametrize("which", ["lenet_train", "lenet_infer"])
def test_profile_is_an_analysis_with_measured_columns(which, request):
    p = request.getfixturevalue(which)
    a = archstat.analyze(LENET, batch=2)
    assert isinstance(p, Analysis) and isinstance(p.layers, pd.DataFrame)
    assert list(p.layers.columns) == [*COLUMNS, *PROFILE_COLUMNS]
    assert list(p.layers["name"]) == list(a.layers["name"])
    # the analysis' numbers are carried over unchanged
    for key in ("params", "macs", "flops", "activation_bytes", "live_bytes"):
        assert list(p.layers[key]) == list(a.layers[key])
    assert set(a.totals) <= set(p.totals) and set(PROFILE_TOTALS) <= set(p.totals)
    assert p.totals["repeats_done"] == 2 and not p.interrupted and p.totals["interrupted_at"] is None
    assert p.totals["mode"] == ("training" if which == "lenet_train" else "inference")
    json.loads(json.dumps(p.to_dict()))  # NaN-free, JSON-ready
    assert p.to_dict()["machine"]["numpy"] == np.__version__


def test_times_shares_and_medians_are_consistent(lenet_train):
    layers = lenet_train.layers.iloc[1:]  # the input row is not a layer
    assert (layers["forward_ms"] > 0).all() and (layers["backward_ms"] > 0).all()
    for kind in ("forward", "backward"):
        assert (layers[f"{kind}_min_ms"] <= layers[f"{kind}_ms"]).all()
        assert (layers[f"{kind}_ms"] <= layers[f"{kind}_max_ms"]).all()
    assert np.allclose(layers["time_ms"], layers["forward_ms"] + layers["backward_ms"])
    assert lenet_train.layers["share"].sum() == pytest.approx(1.0)
    t = lenet_train.totals
    assert t["layer_ms"] == pytest.approx(layers["time_ms"].sum())
    assert t["step_min_ms"] <= t["step_ms"] <= t["step_max_ms"]
    assert t["ms_per_image"] == pytest.approx(t["step_ms"] / 2)
    assert t["images_per_s"] == pytest.approx(1000 * 2 / t["step_ms"])
    # plausible: the layers run inside the end-to-end passes (medians of different samples,
    # so compare loosely), and the executor's bookkeeping outside them is small
    assert 0.5 * t["step_ms"] < t["layer_ms"] < 1.5 * t["step_ms"]


def test_headline_numbers_add_up_and_so_does_their_text(lenet_train, lenet_infer):
    """forward + backward = step, and layers + executor = step, in the numbers and as printed."""
    import re
    from archstat.report.profile_table import adding, profile_summary
    for p in (lenet_train, lenet_infer):
        t = p.totals
        backward = t["backward_ms"] if p is lenet_train else 0.0
        assert t["forward_ms"] + backward == pytest.approx(t["step_ms"], rel=1e-12)
        assert t["pass_layers_ms"] + t["pass_between_ms"] == pytest.approx(t["step_ms"], rel=1e-12)
        assert 0 < t["pass_layers_ms"] <= t["step_ms"] and t["pass_between_ms"] >= 0
        lines = dict(profile_summary(p))
        numbers = [float(x.replace(",", "")) for x in
                   re.findall(r"([\d,.]+) ms", lines["Where it went"])[:3]]
        assert numbers[0] + numbers[1] == pytest.approx(numbers[2], abs=1e-9)
    f, b, step = re.findall(r"([\d,.]+) ms", dict(profile_summary(lenet_train))["Time"])[:3]
    assert float(f.replace(",", "")) + float(b.replace(",", "")) == pytest.approx(float(step.replace(",", "")))


def test_printed_parts_add_up_by_hand():
    from archstat.report.profile_table import adding
    assert adding(1180.4, 1696.4) == ["1,180", "1,696", "2,876"]  # not 1,180 + 1,696 = 2,877
    assert adding(1047.6, 0.4) == ["1,047.6", "0.4", "1,048.0"]  # a part is never printed as 0
    assert adding(3.14159, 0.5) == ["3.14", "0.50", "3.64"]
    assert adding(math.nan, 1.0) == ["-", "-", "-"]


def test_inference_profile_has_no_backward(lenet_infer):
    layers = lenet_infer.layers.iloc[1:]
    assert layers["backward_ms"].isna().all() and math.isnan(lenet_infer.totals["backward_ms"])
    assert np.allclose(layers["time_ms"], layers["forward_ms"])
    assert lenet_infer.layers["share"].sum() == pytest.approx(1.0)


def test_achieved_rate_is_flops_over_time(lenet_train):
    layers = lenet_train.layers.iloc[1:]
    expected = layers["flops"] / (layers["forward_ms"] * 1e6)  # FLOP / (ms * 1e6) = GFLOP/s
    assert np.allclose(layers["gflops"], expected)
    assert np.allclose(layers["peak_pct"], 100 * expected / 100.0)  # the fake peak is 100 GFLOP/s
    # the backward rate is over the FLOPs the engine does: the registry's backward FLOPs (conv
    # and linear: 4 per MAC + the bias gradient), and for the first conv, whose input is the
    # image, the input gradient too, which the engine computes though training needs none
    done = layers["backward_flops"].copy()
    done.iloc[0] += 2 * layers["macs"].iloc[0]
    assert layers["backward_flops"].iloc[0] == 2 * layers["macs"].iloc[0] + layers["activations"].iloc[0]
    assert np.allclose(layers["backward_gflops"], done / (layers["backward_ms"] * 1e6))
    t = lenet_train.totals
    assert t["gflops"] == pytest.approx(t["flops"] / (t["forward_ms"] * 1e6))


def test_roofline_bound_and_label(lenet_train):
    peak, bandwidth = 100.0, 10.0
    for _, r in lenet_train.layers.iloc[1:].iterrows():
        assert r["roofline_gflops"] == pytest.approx(min(peak, r["intensity"] * bandwidth))
        assert r["bound"] == ("compute" if r["intensity"] * bandwidth >= peak else "memory")
        assert r["intensity"] == pytest.approx(r["flops"] / r["traffic_bytes"])
    assert lenet_train.totals["ridge_intensity"] == pytest.approx(peak / bandwidth)
    busy = lenet_train.totals["other_cpu_share"]
    assert busy is None or 0 <= busy <= 1
    assert Roofline(peak, bandwidth).bound(10.0) == "compute"  # exactly at the ridge
    assert Roofline(peak, bandwidth).bound(9.999) == "memory"


def test_intensity_of_one_conv_by_hand(lenet_train):
    c1 = lenet_train.layers.set_index("name").loc["c1"]
    # c1: conv 1->6, 5x5, on a 2x1x32x32 batch -> 2x6x28x28
    macs = 2 * 6 * 28 * 28 * (1 * 5 * 5)            # 235,200
    flops = 2 * macs + 2 * 6 * 28 * 28                # + one bias add per output: 479,808
    elements = 2 * 1 * 32 * 32 + (6 * 25 + 6) + 2 * 6 * 28 * 28   # input 2,048 + params 156 + output 9,408
    assert (c1["macs"], c1["flops"], c1["traffic_bytes"]) == (macs, flops, 4 * elements)
    assert (flops, c1["traffic_bytes"]) == (479_808, 46_448)
    assert c1["intensity"] == pytest.approx(flops / 46_448)  # 10.33 FLOP/byte: just compute-bound
    assert c1["bound"] == "compute"
    # an in-place ReLU still reads and writes its tensor: 1 FLOP per 8 bytes in float32
    relu = lenet_train.layers.set_index("name").loc["c3_relu"]
    assert relu["activation_bytes"] == 0 and relu["intensity"] == pytest.approx(1 / 8)


# ------------------------------------------------------------------ memory

def test_measured_memory_is_plausible(lenet_infer, lenet_train):
    for p in (lenet_infer, lenet_train):
        t = p.totals
        assert t["measured_peak_bytes"] > 0 and t["predicted_peak_bytes"] > 0
        assert t["unpredicted_bytes"] == t["measured_peak_bytes"] - t["predicted_peak_bytes"]
    # inference: the prediction counts the kernels' workspace too (the pools' a bound, a few kB
    # over on tiny arrays), so only NumPy's small temporaries are left over either way
    # (-7 kB of 455 kB here)
    t = lenet_infer.totals
    assert abs(t["unpredicted_bytes"]) <= 0.03 * t["predicted_peak_bytes"]
    # training: the estimate has no backward workspace, within reason
    t = lenet_train.totals
    assert 0.5 * t["predicted_peak_bytes"] <= t["measured_peak_bytes"] <= 20 * t["predicted_peak_bytes"]
    rows = lenet_infer.layers.iloc[1:]
    assert (rows["measured_live_bytes"] > 0).all()
    assert not tracemalloc.is_tracing()  # the profiler stops what it started


def test_memory_limit_refused_before_allocating():
    big = {"input": [16, 256, 256], "layers": [{"type": "conv2d", "out_channels": 64, "kernel_size": 3,
                                                 "padding": 1}]}
    a = archstat.analyze(big, batch=4)
    need = a.totals["param_bytes"] + a.totals["peak_activation_bytes"]   # ~88 MB
    calls = []
    tracemalloc.start()
    try:
        with pytest.raises(ArchstatError, match="memory_limit") as err:
            profile(big, batch=4, memory_limit=need // 2, calibration=fake_calibration(),
                    progress=lambda *a: calls.append(a))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "smaller batch" in str(err.value)
    assert calls == [] and peak < need // 10  # nothing ran, the input was never allocated


def test_sweep_refuses_every_batch_before_running_any():
    calls = []
    with pytest.raises(ArchstatError, match="batch 64"):
        sweep(TINY, batches=[1, 64], memory_limit=400_000, calibration=fake_calibration(),
              progress=lambda *a: calls.append(a))
    assert calls == []


# ------------------------------------------------------------------ Ctrl-C

@pytest.mark.parametrize("stop_after", [3, 12, 40])
def test_interrupted_run_returns_what_was_measured(stop_after):
    calls = []

    def ctrl_c(done, total, label):  # called from the executor's hooks, mid-pass
        calls.append(label)
        if len(calls) == stop_after:
            raise KeyboardInterrupt

    p = profile(LENET, batch=1, repeat=3, warmup=1, backward=True, calibration=fake_calibration(), progress=ctrl_c)
    assert p.interrupted and p.totals["interrupted"] and p.totals["interrupted_at"] == calls[-1]
    assert p.totals["repeats_done"] < 3
    assert not tracemalloc.is_tracing()
    assert list(p.layers.columns) == [*COLUMNS, *PROFILE_COLUMNS]   # same shape as a full run
    measured = p.layers["forward_ms"].iloc[1:].notna()
    if calls[-1].startswith("repeat"):
        assert measured.iloc[0]  # the first layers of the interrupted pass were kept
    if stop_after == 3:         # in the memory pass: nothing timed yet
        assert not measured.any() and p.totals["measured_peak_bytes"] is None
    if p.layers["share"].notna().any():
        assert p.layers["share"].sum() == pytest.approx(1.0)


def test_backward_hook_visits_every_layer_in_reverse():
    from archstat.engine.executor import Executor

    ex = Executor(LENET, seed=0)
    out = ex.forward(np.ones((2, 1, 32, 32), np.float32), train=True)
    seen = []
    ex.backward(np.ones_like(out), hook=lambda name, dy, pending: seen.append((name, dy.shape, dict(pending))))
    assert [s[0] for s in seen] == list(reversed(ex.model.order[1:]))
    shapes = archstat.analyze(LENET, batch=2).layers.set_index("name")["output_shape"]
    assert all(shape == shapes[name] for name, shape, _ in seen)
    assert "c1" in seen[-2][2] and "input" in seen[-1][2]   # gradients waiting for their layer


# ------------------------------------------------------------------ studies

def test_sweep_rows_and_memory_growth():
    s = sweep(TINY, batches=[4, 1, 2], repeat=2, warmup=0, calibration=fake_calibration())
    df = s.batches
    assert list(df.columns) == list(SWEEP_COLUMNS) and list(df["batch"]) == [1, 2, 4]
    assert (df["step_min_ms"] <= df["step_ms"]).all() and (df["step_ms"] <= df["step_max_ms"]).all()
    assert np.allclose(df["ms_per_image"], df["step_ms"] / df["batch"])
    assert df["predicted_peak_bytes"].is_monotonic_increasing
    assert df["measured_peak_bytes"].iloc[-1] > df["measured_peak_bytes"].iloc[0]
    assert set(s.profiles) == {1, 2, 4} and not s.interrupted
    json.loads(json.dumps(s.to_dict()))


def test_linear_fit():
    f = linear_fit([1, 2, 3, 4], [3, 5, 7, 9])
    assert (f.slope, f.intercept, f.r2, f.n) == (pytest.approx(2), pytest.approx(1), pytest.approx(1), 4)
    assert 0 <= linear_fit([1, 2, 3, 4], [1, 3, 2, 4]).r2 < 1
    assert math.isnan(linear_fit([1], [1]).slope)


def test_ops_vs_time_across_models(tmp_path):
    o = ops_vs_time([LENET, TINY], batch=1, repeat=2, warmup=0, calibration=fake_calibration())
    assert list(o.models["model"]) == ["LeNet-5 (test)", "tiny"]
    assert len(o.layers) == 4 + 2 and (o.layers["macs"] > 0).all() and (o.layers["forward_ms"] > 0).all()
    assert o.fits["layers"].n == 6 and o.fits["models"].n == 2
    assert o.fits["models"].r2 == pytest.approx(1.0)  # two points: an exact line
    from archstat.report import profile_plots
    assert profile_plots.ops_vs_time(o, tmp_path / "ops.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ calibration

def test_calibration_cache_round_trip(cache_home):
    assert load_calibration() is None
    cal = calibrate(("float32",))
    assert cal.gemm_gflops["float32"] > 0 and cal.bandwidth_gbs > 0 and cal.source == "measured"
    assert cal.other_cpu_share is None or 0 <= cal.other_cpu_share <= 1
    path = cache_home / f"calibration-{cal.key}.json"
    assert cal.path == str(path) and path.is_file()
    back = load_calibration()
    assert back.source == "cache" and back.gemm_gflops == cal.gemm_gflops
    assert back.bandwidth_gbs == cal.bandwidth_gbs and back.machine == cal.machine
    # a float64 calibration later keeps the float32 peak
    calibrate(("float64",))
    assert set(load_calibration().gemm_gflops) == {"float32", "float64"}
    path.write_text("{not json", encoding="utf-8")
    assert load_calibration() is None  # a damaged cache is ignored, not fatal


def test_profile_uses_the_cache_or_calibrates_quickly(cache_home):
    p = profile(TINY, repeat=1, warmup=0, memory=False)
    assert p.calibration.source == "measured" and p.totals["measured_peak_bytes"] is None
    p = profile(TINY, repeat=1, warmup=0, memory=False)
    assert p.calibration.source == "cache"


def test_a_disturbed_calibration_is_used_but_never_cached(cache_home, monkeypatch, cli):
    monkeypatch.setattr(calibration_mod.CpuWatch, "share", lambda self: 0.6)
    cal = calibrate(("float32",))
    assert cal.disturbed and cal.path is None and load_calibration() is None
    assert "60% of the CPUs" in cal.cache_note and "--force" in cal.cache_note
    code, out, err = cli("calibrate", "--dtype", "float32", "--quiet")
    assert code == 0 and "not cached: other processes used 60%" in out and load_calibration() is None
    code, out, err = cli("calibrate", "--dtype", "float32", "--quiet", "--force")
    assert code == 0 and load_calibration() is not None
    p = profile(TINY, repeat=1, warmup=0, memory=False)
    assert any("during calibration" in w for w in p.totals["warnings"])


def test_a_layer_above_the_cached_roofs_discards_them(cache_home):
    low = calibrate(("float32",))
    low.gemm_gflops = {"float32": 1e-6}  # a roof no layer can stay under
    calibration_mod.save_calibration(low)
    cached = load_calibration()
    assert cached.gemm_gflops == {"float32": 1e-6}
    p = profile(TINY, repeat=1, warmup=0, memory=False)
    assert p.calibration.source == "measured" and p.calibration.gemm_gflops["float32"] > 1e-3
    assert any("discarded" in w and cached.measured_at in w for w in p.totals["warnings"])
    assert load_calibration().gemm_gflops["float32"] > 1e-3  # the fresh roofs replaced the cache
    # a calibration given by the caller is never discarded; the layers above it are marked
    p = profile(TINY, repeat=1, warmup=0, memory=False, calibration=fake_calibration(peak=1e-6))
    assert any("marked !" in w for w in p.totals["warnings"])
    from archstat.report.profile_table import render_profile
    assert "%!" in render_profile(p)


def test_lazy_export():
    import archstat.profiling
    assert archstat.profile is archstat.profiling.profile
    assert callable(archstat.profile)  # the package name does not shadow the function
    with pytest.raises(ArchstatError, match="repeat"):
        archstat.profile(TINY, repeat=0)


# ------------------------------------------------------------------ CLI

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def lenet_file(write_spec):
    return write_spec(LENET, "lenet.yaml")


def test_cli_calibrate(cli, cache_home):
    code, out, err = cli("calibrate", "--dtype", "float32", "-q")
    assert code == 0 and "GEMM peak" in out and "np.copyto" in out and "Cache" in out
    code, out, err = cli("calibrate", "--show", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["gemm_gflops"]["float32"] > 0 and data["machine"]["blas"]


def test_cli_calibrate_show_without_cache(cli, cache_home):
    code, out, err = cli("calibrate", "--show")
    assert code == 2 and out == "" and err.count("\n") == 1 and "archstat calibrate" in err


@pytest.mark.parametrize("fmt", ["table", "md", "csv", "json", "html"])
def test_cli_profile_formats(cli, cache_home, lenet_file, fmt):
    code, out, err = cli("profile", lenet_file, "--repeat", "2", "--warmup", "0", "--format", fmt, "-q")
    assert code == 0, err
    if fmt == "json":
        data = json.loads(out)
        assert data["machine"]["cpu"] and len(data["layers"]) == len(LENET["layers"]) + 1
        assert data["totals"]["repeats_done"] == 2
    elif fmt == "csv":
        import io
        df = pd.read_csv(io.StringIO(out), comment="#")
        assert list(df.columns) == [*COLUMNS, *PROFILE_COLUMNS] and len(df) == len(LENET["layers"]) + 1
        assert "# Machine:" in out
    else:
        assert "Machine" in out and "c3_relu" in out and "GFLOP/s" in out


def test_cli_profile_backward_with_plots(cli, cache_home, lenet_file, tmp_path):
    code, out, err = cli("profile", lenet_file, "--batch", "2", "--repeat", "2", "--backward",
                         "--plot", tmp_path / "lenet.png", "-o", tmp_path / "lenet.md")
    assert code == 0, err
    for name in ("lenet.png", "lenet_roofline.png", "lenet_ops.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    text = (tmp_path / "lenet.md").read_text()
    assert "Bwd ms" in text and "training step" in text
    code, out, err = cli("profile", lenet_file, "--repeat", "1", "--plot", tmp_path / "lenet.svg", "-q")
    assert code == 0 and (tmp_path / "lenet_roofline.svg").read_text().lstrip().startswith("<?xml")


def test_cli_profile_several_models(cli, cache_home, lenet_file, write_spec, tmp_path):
    tiny = write_spec(TINY, "tiny.yaml")
    code, out, err = cli("profile", lenet_file, tiny, "--repeat", "1", "--plot", tmp_path / "ops.png", "-q")
    assert code == 0, err
    assert "Fit over layers" in out and "R^2" in out and (tmp_path / "ops.png").read_bytes()[:8] == PNG


def test_cli_sweep(cli, cache_home, write_spec, tmp_path):
    spec = write_spec(TINY, "tiny.yaml")
    code, out, err = cli("sweep", spec, "--batch", "1", "2", "4", "--repeat", "1", "--plot", tmp_path / "s.png",
                         "-q")
    assert code == 0, err
    assert "ms/image" in out and "Measured peak" in out and (tmp_path / "s.png").read_bytes()[:8] == PNG
    for fmt in ("csv", "json", "md", "html"):
        code, out, err = cli("sweep", spec, "--batch", "1", "2", "--repeat", "1", "--format", fmt, "-q")
        assert code == 0, err
    assert json.loads(cli("sweep", spec, "-b", "1", "-r", "1", "-f", "json", "-q")[1])["batches"][0]["batch"] == 1


@pytest.mark.parametrize("command", ["profile", "sweep"])
@pytest.mark.parametrize("name", ["figure.jpg", "figure.tiff", "figure"])
def test_cli_refuses_a_plot_format_before_measuring(cli, cache_home, lenet_file, tmp_path, command, name,
                                                    monkeypatch):
    import archstat.profiling as profiling
    monkeypatch.setattr(profiling, "profile", lambda *a, **k: pytest.fail("measured before checking --plot"))
    monkeypatch.setattr(profiling, "sweep", lambda *a, **k: pytest.fail("measured before checking --plot"))
    code, out, err = cli(command, lenet_file, "--plot", tmp_path / name)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "--plot" in err and "png, svg, pdf" in err and "Traceback" not in err


def test_cli_memory_limit_refusal(cli, cache_home, lenet_file, capsys):
    code, out, err = cli("profile", lenet_file, "--batch", "64", "--memory-limit", "300kB")
    assert code == 2 and out == "" and err.count("\n") == 1 and "memory_limit" in err
    from archstat.cli import main
    with pytest.raises(SystemExit) as exc:  # a usage error, as argparse reports them
        main(["profile", str(lenet_file), "--memory-limit", "lots"])
    assert exc.value.code == 2 and "expected a size" in capsys.readouterr().err


def test_cli_ctrl_c_prints_partial_results_and_exits_130(cli, cache_home, lenet_file, monkeypatch):
    from archstat.cli import common as cli_mod

    calls = []

    def ctrl_c(self, done, total, label):
        calls.append(label)
        if len(calls) == 30:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli_mod.ProgressBar, "__call__", ctrl_c)
    code, out, err = cli("profile", lenet_file, "--repeat", "5", "--warmup", "0")
    assert code == 130 and "INTERRUPTED" in out and "c1" in out and "interrupted" in err


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc/stat (Linux)")
def test_a_short_measurement_still_sees_another_process_load():
    # a small model is timed in far less than the counters' 10 ms ticks can resolve: the
    # watch tops the window up by idling, so a busy neighbour is still seen (it was None)
    import subprocess
    import sys
    import time
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        watch = calibration_mod.CpuWatch()
        time.sleep(0.01)                       # "the measurement"
        share = watch.share()
    finally:
        busy.kill()
        busy.wait()
    assert share is not None and share >= 0.5 / (os.cpu_count() or 1)


# ------------------------------------------------------------------ figures for slides

def deep_chain(blocks: int = 51) -> dict:
    """A MobileNetV2-deep chain (3 x 51 + 2 = 155 layers after the input) that profiles in well
    under a second: 4-channel 3x3 convolutions on a 6x6 map."""
    layers = []
    for i in range(blocks):
        layers += [{"name": f"b{i}.conv", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
                   {"name": f"b{i}.bn", "type": "batch_norm2d"}, {"name": f"b{i}.relu", "type": "relu"}]
    layers += [{"name": "flatten", "type": "flatten"}, {"name": "fc", "type": "linear", "out_features": 10}]
    return {"name": "deep chain", "input": [2, 6, 6], "layers": layers}


@pytest.fixture(scope="module")
def deep_infer() -> Profile:
    return profile(deep_chain(), batch=1, repeat=1, warmup=0, calibration=fake_calibration())


@pytest.fixture
def drawn(monkeypatch):
    """The figures profile_plots saves, in order (they are still written)."""
    from archstat.report import profile_plots
    figures = []
    real = profile_plots.save

    def keep(fig, path):
        figures.append(fig)
        return real(fig, path)

    monkeypatch.setattr(profile_plots, "save", keep)
    return figures


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG's IHDR chunk."""
    head = Path(path).read_bytes()[:24]
    assert head[:8] == PNG and head[12:16] == b"IHDR"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def bars(ax) -> list:
    return [patch for container in ax.containers if hasattr(container, "patches") for patch in container.patches]


def test_deep_profile_time_figure_stays_slide_shaped(deep_infer, drawn, tmp_path):
    from archstat.report import profile_plots
    rows = [r for r in deep_infer.rows() if r["inputs"]]
    assert len(rows) == 155
    width, height = png_size(profile_plots.layer_times(deep_infer, tmp_path / "deep.png"))
    # was 1638 x ~6100 px (one 0.25-inch row per layer); now at most MAX_BARS rows
    assert width <= 1800 and height <= 1600 and height < 1.0 * width
    ax = drawn[-1].axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(bars(ax)) == len(labels) == profile_plots.MAX_BARS
    assert labels[-1] == f"other {155 - profile_plots.MAX_BARS + 1} layers"
    assert f"the {profile_plots.MAX_BARS - 1} slowest of 155 layers, in execution order" in ax.get_title(loc="left")


def test_deep_profile_time_figure_shows_the_slowest_in_order_and_a_truthful_rest(deep_infer, drawn, tmp_path):
    from archstat.report import profile_plots
    from archstat.report.profile_table import ms
    rows = [r for r in deep_infer.rows() if r["inputs"]]
    profile_plots.layer_times(deep_infer, tmp_path / "deep.png")
    ax = drawn[-1].axes[0]
    names = [t.get_text() for t in ax.get_yticklabels()][:-1]
    order = [r["name"] for r in rows]
    assert names == sorted(names, key=order.index)          # execution order
    shown = [r for r in rows if r["name"] in names]
    rest = [r for r in rows if r["name"] not in names]
    assert min(r["time_ms"] for r in shown) >= max(r["time_ms"] for r in rest)   # the slowest ones
    widths = [b.get_width() for b in bars(ax)]
    assert widths[:-1] == pytest.approx([r["forward_ms"] for r in shown])
    other = sum(r["forward_ms"] for r in rest)
    # the summed bar is drawn in full or cut at the axis, and then its label says so; either way
    # its label gives the true sum and share, so the bars add up to the layers' total
    share = f"{100 * sum(r['share'] for r in rest):.0f}%"
    label = next(t.get_text() for t in ax.texts if t.get_position()[1] == len(names))
    assert label.startswith(f"{ms(other)} ms  {share}")
    assert widths[-1] == pytest.approx(other) or (widths[-1] < other and "bar cut" in label)
    assert sum(widths[:-1]) + other == pytest.approx(deep_infer.totals["layer_ms"])


def test_small_profile_time_figure_has_a_bar_per_layer(lenet_train, drawn, tmp_path):
    from archstat.report import profile_plots
    rows = [r for r in lenet_train.rows() if r["inputs"]]
    width, height = png_size(profile_plots.layer_times(lenet_train, tmp_path / "lenet.png"))
    ax = drawn[-1].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [r["name"] for r in rows]
    assert len(bars(ax)) == 2 * len(rows)                   # forward and backward stacked
    assert "slowest" not in ax.get_title(loc="left") and not any("other" in t.get_text() for t in ax.texts)
    assert height == pytest.approx((0.25 * len(rows) + 2.4) * 150, rel=0.15)


def test_bar_layers_keeps_the_slowest_in_execution_order():
    from archstat.report.profile_plots import _bar_layers
    rows = [{"name": str(i), "time_ms": t} for i, t in enumerate([5, 1, math.nan, 7, 3, 3, 2])]
    assert _bar_layers(rows, 7) == (rows, [])
    shown, rest = _bar_layers(rows, 4)
    assert [r["name"] for r in shown] == ["0", "3", "4"]    # ties go to the earlier layer
    assert [r["name"] for r in rest] == ["1", "2", "5", "6"]


@pytest.mark.parametrize("macs, unit", [(0, (1.0, "")), (840, (1.0, "")), (241_600, (1e3, "K")),
                                        (20e6, (1e6, "M")), (448e6, (1e6, "M")), (1.8e9, (1e9, "G"))])
def test_mac_unit_reads_zero_to_a_thousand(macs, unit):
    from archstat.report.profile_plots import mac_unit
    assert mac_unit(macs) == unit


def test_fit_caption_slope_is_in_the_axis_unit():
    from archstat.profiling.studies import Fit
    from archstat.report.profile_plots import _fit_caption
    lenet = Fit(slope=1.05e-6, intercept=0.016, r2=0.7, n=5)    # ms per MAC: 1.05e+03 ms/GMAC before
    assert _fit_caption(lenet, 1e3, "K").startswith("fit: time = 1.05 \u00b5s/KMAC x MACs + 0.016 ms")
    assert _fit_caption(lenet, 1e6, "M").startswith("fit: time = 1.05 ms/MMAC x MACs")
    assert _fit_caption(Fit(slope=3.37e-8, intercept=1.6, r2=1, n=3), 1e9, "G").startswith(
        "fit: time = 33.7 ms/GMAC x MACs + 1.6 ms")


def test_ops_figure_counts_macs_in_the_unit_of_the_data(lenet_infer, drawn, tmp_path):
    from archstat.report import profile_plots
    big = {"name": "wide", "input": [16, 32, 32],                                     # 4.7 and 2.4 M MACs
           "layers": [{"type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1},
                      {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "padding": 1}]}
    wide = profile(big, batch=1, repeat=1, warmup=0, calibration=fake_calibration())
    for p, prefix in ((lenet_infer, "K"), (wide, "M")):
        profile_plots.ops_vs_time(p, tmp_path / "ops.png")
        ax = drawn[-1].axes[0]
        assert f"({prefix} MACs, from the analysis; log scale)" in ax.get_xlabel() and ax.get_xscale() == "log"
        assert f"/{prefix}MAC x MACs" in ax.get_title(loc="left")
        assert 1 <= ax.get_xlim()[1] < 1500                 # ticks 0-999, not 0.00005
    labels = [t for t in drawn[0].axes[0].texts if t.get_text() in {"c1", "c3", "c5", "f6", "output"}]
    assert labels and not overlapping(labels)


def overlapping(texts, others=()) -> list:
    """Pairs of drawn artists among ``texts`` (with each other, and with ``others``) whose boxes overlap."""
    renderer = texts[0].figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    extra = [o.get_window_extent(renderer) for o in others]
    return [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes[i + 1:] + extra) if a.overlaps(b)]


def test_roofline_labels_clear_each_other_and_the_legend(deep_infer, drawn, tmp_path):
    from archstat.report import profile_plots
    profile_plots.roofline(deep_infer, tmp_path / "roof.png")
    fig = drawn[-1]
    ax = fig.axes[0]
    names = {r["name"] for r in deep_infer.rows()}
    labels = [t for t in ax.texts if t.get_text() and set(t.get_text().split("\n")) <= names]
    assert labels and not overlapping(labels, [ax.get_legend()])
    frame = ax.get_window_extent()
    assert all(frame.contains(*t.get_window_extent().p0) and frame.contains(*t.get_window_extent().p1)
               for t in labels)
    named = sum(len(t.get_text().split("\n")) for t in labels)
    title = ax.get_title(loc="left")
    assert ("the 8 slowest layers named" in title) if named == 8 else (f"{named} of the 8 slowest" in title)
    # the title stays on the figure (it ran past the right edge)
    assert ax.title.get_window_extent().x1 <= fig.bbox.x1


def test_roofline_subtitle_grammar_and_width(drawn, tmp_path):
    from archstat.report import profile_plots
    long = dict(TINY, name="A deliberately long model name, to see that the title is wrapped to fit")
    p = profile(long, batch=1, repeat=1, warmup=0, calibration=fake_calibration())
    profile_plots.roofline(p, tmp_path / "roof.svg", label_top=1)
    fig = drawn[-1]
    title = fig.axes[0].get_title(loc="left")
    assert "1 layer without FLOPs or time not shown" in title and "1 layers" not in title   # the flatten
    assert "the slowest layer named" in title
    assert fig.axes[0].title.get_window_extent().x1 <= fig.bbox.x1
    assert (tmp_path / "roof.svg").read_text().lstrip().startswith("<?xml")


def test_ops_across_models_labels_do_not_collide(drawn, tmp_path):
    from archstat.report import profile_plots
    o = ops_vs_time([LENET, TINY, dict(TINY, name="tiny too")], batch=1, repeat=1, warmup=0,
                    calibration=fake_calibration())
    path = profile_plots.ops_vs_time(o, tmp_path / "ops.png")
    ax_layers, ax_models = drawn[-1].axes
    labels = [t for t in ax_models.texts if t.get_text() in {"LeNet-5 (test)", "tiny", "tiny too"}]
    assert labels and not overlapping(labels)
    assert "(K MACs, log scale)" in ax_models.get_xlabel() and "(K MACs, from the analysis; log scale)" in ax_layers.get_xlabel()
    assert png_size(path)[0] <= 2200


def test_cli_threads_option_limits_the_blas_for_the_run_only(cli, cache_home, lenet_file):
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    before = blas_threads()
    code, out, err = cli("profile", lenet_file, "--threads", "1", "--repeat", "1", "-f", "json", "-q")
    assert code == 0, err
    data = json.loads(out)
    assert data["machine"]["blas"]["num_threads"] == 1
    if before != [1]:                                    # a calibration of its own thread count
        assert data["calibration"]["key"] != calibration_mod.machine_key(calibration_mod.machine_info())
    assert blas_threads() == before                      # restored afterwards


def test_fit_confidence_intervals_and_verdict():
    # the slope's 95% interval: slope +- t(0.975, n - 2) x its standard error; for
    # x = 0..4, y = (0, 1, 2, 3, 5) by hand: slope 1.2, SS_res 0.4, Sxx 10, t(3) = 3.182
    f = linear_fit([0, 1, 2, 3, 4], [0, 1, 2, 3, 5])
    half = 3.182 * math.sqrt(0.4 / 3 / 10)
    assert f.slope == pytest.approx(1.2) and f.slope_ci == pytest.approx((1.2 - half, 1.2 + half))
    # R^2's from Fisher's z of r: tanh(atanh(r) -+ 1.96 / sqrt(n - 3)), squared
    r = math.sqrt(f.r2)
    lo, hi = (math.tanh(math.atanh(r) + k * 1.959964 / math.sqrt(2)) for k in (-1, 1))
    assert f.r2_ci == pytest.approx((lo * lo, hi * hi))
    # five points are too few for a verdict, whatever R^2 says; three give no R^2 interval
    assert "cannot carry a verdict" in f.verdict("a line")
    assert math.isnan(linear_fit([1, 2, 3], [1, 2, 3.5]).r2_ci[0])
    line = linear_fit(range(20), [2 * v + (-1) ** v * 0.5 for v in range(20)])
    assert line.verdict("a line").startswith("the 20 points support a line")
    flat = linear_fit(range(20), [(-1) ** v for v in range(20)])
    assert flat.verdict("a line").startswith("the 20 points do not support a line")


def test_fit_slope_interval_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    x = np.arange(40.0)
    y = 3 * x + rng.normal(0, 4, 40)
    ref = stats.linregress(x, y)
    t = stats.t.ppf(0.975, 38)
    assert linear_fit(x, y).slope_ci == pytest.approx((ref.slope - t * ref.stderr, ref.slope + t * ref.stderr),
                                                      rel=1e-4)
