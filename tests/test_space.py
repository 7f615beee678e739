"""Design spaces (archstat.space): the space: section, grids and samples with exact rows,
invalid configurations, workers, checkpoints and resume, a dying worker, search under budgets,
the zoo inside its family's space, plots, --measure and the command line."""
from __future__ import annotations

import os
import socket

import pandas as pd
import pytest

import archstat
from archstat import ArchstatError, zoo
from archstat.space import budget as budget_mod
from archstat.space import grid, sample, search
from archstat.space.load import load_space

# A conv stack on a 3x8x8 input: conv 3x3, padding 1, `depth` times, `width` channels each.
# Hand counts: the first conv has width * (3 * 3 * 3 + 1) = 28 w parameters and
# 8 * 8 * w * 27 = 1728 w MACs; each further conv w * (9 w + 1) parameters and 8 * 8 * w * 9 w
# = 576 w^2 MACs.
STACK = {
    "args": {"width": 16, "depth": 2},
    "space": {"width": {"choice": [8, 16, 32]}, "depth": {"int": [1, 3]}},
    "input": [3, 8, 8],
    "layers": [{"type": "conv2d", "out_channels": "${width}", "kernel_size": 3, "padding": 1,
                "repeat": "${depth}"}],
}


def stack_params(w: int, d: int) -> int:
    return 28 * w + (d - 1) * w * (9 * w + 1)


def stack_macs(w: int, d: int) -> int:
    return 1728 * w + (d - 1) * 576 * w * w


# pools halves 8 -> 4 -> 2 -> 1 -> 0: four pools leave no pixel, an invalid configuration
POOLS = {
    "args": {"width": 4, "pools": 1},
    "space": {"width": {"choice": [4, 8]}, "pools": {"int": [0, 4]}},
    "input": [1, 8, 8],
    "layers": [{"type": "conv2d", "out_channels": "${width}", "kernel_size": 1},
               {"type": "max_pool2d", "kernel_size": 2, "repeat": "${pools}"}],
}


@pytest.fixture
def stack(write_spec):
    return write_spec(STACK, "stack.yaml")


def test_grid_rows_are_every_configuration_with_hand_counts(stack):
    rows = grid(stack)
    assert len(rows) == 9
    assert list(rows["index"]) == list(range(9))
    # itertools.product order: the last dimension varies fastest
    assert list(zip(rows["width"], rows["depth"])) == [(w, d) for w in (8, 16, 32) for d in (1, 2, 3)]
    for _, r in rows.iterrows():
        assert r["params"] == stack_params(r["width"], r["depth"])
        assert r["macs"] == stack_macs(r["width"], r["depth"])
        assert r["layers"] == r["depth"]
        assert r["rf_h"] == r["rf_w"] == 1 + 2 * r["depth"]      # each 3x3 conv adds 2
        assert r["error"] == ""
    assert str(rows["params"].dtype) == "Int64"
    assert rows.attrs["errors"] == 0
    # the metrics are the analysis' own totals
    one = archstat.analyze(archstat.load(stack, {"width": 32, "depth": 3})).totals
    last = rows.iloc[-1]
    for key in ("params", "macs", "flops", "peak_activation_bytes", "forward_memory_bytes"):
        assert last[key] == one[key]


def test_invalid_configurations_are_rows_with_their_error(write_spec):
    rows = grid(write_spec(POOLS, "pools.yaml"))
    assert len(rows) == 10
    bad = rows[rows["error"] != ""]
    assert list(bad["pools"]) == [4, 4] and rows.attrs["errors"] == 2
    assert bad["params"].isna().all()
    assert all("pools.yaml" in e and "\n" not in e for e in bad["error"])
    good = rows[rows["error"] == ""]
    assert good["params"].notna().all()


def test_same_seed_same_rows_whatever_the_workers_and_chunks(stack):
    one = sample(stack, n=40, seed=7, workers=1)
    two = sample(stack, n=40, seed=7, workers=2, chunk=3)
    pd.testing.assert_frame_equal(one, two)
    assert not one.equals(sample(stack, n=40, seed=8))
    # row i depends on (seed, i) only: the first rows of a longer sample are the same rows
    pd.testing.assert_frame_equal(sample(stack, n=10, seed=7), one.head(10))


def test_resume_after_an_interrupted_run_equals_an_uninterrupted_one(stack, tmp_path):
    whole = sample(stack, n=30, seed=1, chunk=4)
    ckpt = tmp_path / "run.checkpoint.csv"

    def stop(done, total, label):
        if done >= 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sample(stack, n=30, seed=1, chunk=4, checkpoint=ckpt, progress=stop)
    assert ckpt.exists()
    with pytest.raises(ArchstatError, match="--resume"):   # never overwritten silently
        sample(stack, n=30, seed=1, chunk=4, checkpoint=ckpt)
    with pytest.raises(ArchstatError, match="another run.*seed"):
        sample(stack, n=30, seed=2, chunk=4, checkpoint=ckpt, resume=True)
    resumed = sample(stack, n=30, seed=1, chunk=4, checkpoint=ckpt, resume=True)
    assert resumed.attrs["resumed"] == 12
    pd.testing.assert_frame_equal(resumed, whole)
    assert not ckpt.exists()   # complete: the rows are the result


def _saves_often(monkeypatch):
    from archstat.space import checkpoint
    monkeypatch.setattr(checkpoint.Throttle, "due", lambda self: True)   # a save after every chunk


def _interrupted(stack, ckpt, after=12):
    def stop(done, total, label):
        if done >= after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sample(stack, n=30, seed=1, chunk=4, checkpoint=ckpt, progress=stop)


def test_a_save_appends_only_the_new_rows(stack, tmp_path, monkeypatch):
    from archstat import outfile
    _saves_often(monkeypatch)
    appended = []
    real = outfile.append_at

    def spy(path, offset, data, **kw):
        appended.append(data)
        return real(path, offset, data, **kw)

    monkeypatch.setattr(outfile, "append_at", spy)
    ckpt = tmp_path / "run.checkpoint.csv"
    _interrupted(stack, ckpt)
    # 12 rows in chunks of 4, each save carries its own rows and the running total
    assert [d.count("\n") for d in appended] == [5, 5, 5]
    assert [d.splitlines()[-1] for d in appended] == ["# rows 4", "# rows 8", "# rows 12"]
    lines = ckpt.read_text().splitlines()
    assert lines[0].startswith("# archstat space checkpoint ") and lines[1].startswith("index,width,depth,")
    assert len(lines) == 2 + 15


@pytest.mark.parametrize("cut", [1, 2, 17, -1])   # bytes cut from the end: inside the last block
def test_resume_after_a_torn_last_block(stack, tmp_path, monkeypatch, cut):
    _saves_often(monkeypatch)
    whole = sample(stack, n=30, seed=1, chunk=4)
    ckpt = tmp_path / "run.checkpoint.csv"
    _interrupted(stack, ckpt)
    data = ckpt.read_bytes()
    last_block = data.rindex(b"# rows 8\n") + len(b"# rows 8\n")
    ckpt.write_bytes(data[:last_block + 1 if cut == -1 else len(data) - cut])
    resumed = sample(stack, n=30, seed=1, chunk=4, checkpoint=ckpt, resume=True)
    assert resumed.attrs["resumed"] == 8     # the torn block's rows are computed again
    pd.testing.assert_frame_equal(resumed, whole)


def test_ctrl_c_in_the_middle_of_an_append_loses_nothing(stack, tmp_path, monkeypatch):
    from archstat import outfile
    _saves_often(monkeypatch)
    whole = sample(stack, n=30, seed=1, chunk=4)
    ckpt = tmp_path / "run.checkpoint.csv"
    real = outfile.append_at
    calls = []

    def torn(path, offset, data, **kw):
        calls.append(len(data))
        if len(calls) == 2:      # half of the second block reaches the disk, then Ctrl-C
            with open(path, "r+b") as f:
                f.seek(offset)
                f.write(data.encode()[:len(data) // 2])
            raise KeyboardInterrupt
        return real(path, offset, data, **kw)

    monkeypatch.setattr(outfile, "append_at", torn)
    with pytest.raises(KeyboardInterrupt):
        sample(stack, n=30, seed=1, chunk=4, checkpoint=ckpt)
    # the run's own final save wrote the block again over the torn half
    assert len(calls) == 3 and calls[2] == calls[1]
    assert ckpt.read_text().count("# rows ") == 2
    resumed = sample(stack, n=30, seed=1, chunk=4, checkpoint=ckpt, resume=True)
    assert resumed.attrs["resumed"] == 8
    pd.testing.assert_frame_equal(resumed, whole)


def test_a_block_saved_twice_and_a_version_1_checkpoint_resume_exactly(stack, tmp_path, monkeypatch):
    _saves_often(monkeypatch)
    whole = sample(stack, n=30, seed=1, chunk=4)
    ckpt = tmp_path / "run.checkpoint.csv"
    _interrupted(stack, ckpt)
    text = ckpt.read_text()
    head, rows = text.split("\n", 2)[:2], text.split("\n", 2)[2]
    last = rows[rows.rindex("# rows 8\n") + len("# rows 8\n"):]
    ckpt.write_text(text + last.replace("# rows 12", "# rows 16"))  # Ctrl-C between append and bookkeeping
    resumed = sample(stack, n=30, seed=1, chunk=4, checkpoint=ckpt, resume=True)
    assert resumed.attrs["resumed"] == 12
    pd.testing.assert_frame_equal(resumed, whole)
    # version 1 (last stop's format): the whole file rewritten at each save, no closing lines
    _interrupted(stack, ckpt)
    v2 = ckpt.read_text()
    v1 = v2.replace('"version": 2', '"version": 1')
    v1 = "".join(line for line in v1.splitlines(True) if not line.startswith("# rows "))
    ckpt.write_text(v1)
    resumed = sample(stack, n=30, seed=1, chunk=4, checkpoint=ckpt, resume=True)
    assert resumed.attrs["resumed"] == 12
    pd.testing.assert_frame_equal(resumed, whole)


def test_a_damaged_checkpoint_is_one_clear_error(stack, tmp_path, monkeypatch):
    _saves_often(monkeypatch)
    ckpt = tmp_path / "run.checkpoint.csv"
    _interrupted(stack, ckpt)
    ckpt.write_text(ckpt.read_text().replace("# rows 12", "# rows 13"))
    with pytest.raises(ArchstatError, match="run.checkpoint.csv.*damaged"):
        sample(stack, n=30, seed=1, chunk=4, checkpoint=ckpt, resume=True)
    assert "# rows 13" in ckpt.read_text()    # left as it was


def test_a_dead_worker_loses_no_configuration(stack, tmp_path, monkeypatch):
    from archstat.space import runner

    marker = tmp_path / "died"
    real = runner.evaluate

    def dies_once(space, config, *, index, **kw):
        if index == 5 and not marker.exists():
            marker.write_text("x")
            os._exit(1)
        if index == 7:
            os._exit(1)      # this configuration always kills its worker
        return real(space, config, index=index, **kw)

    monkeypatch.setattr(runner, "evaluate", dies_once)   # forked workers inherit the patch
    rows = sample(stack, n=12, seed=3, workers=2, chunk=2)
    monkeypatch.setattr(runner, "evaluate", real)
    expected = sample(stack, n=12, seed=3)
    assert marker.exists() and list(rows["index"]) == list(range(12))
    assert rows.loc[7, "error"].startswith("the worker process died")
    assert (rows.drop(index=7)["error"] == "").all()      # its neighbours were only run again
    pd.testing.assert_frame_equal(rows.drop(index=7), expected.drop(index=7))


def test_search_returns_only_configurations_within_budget_and_the_exhaustive_optimum(stack):
    rows = grid(stack)
    ok = rows[(rows["macs"] <= 200_000) & (rows["error"] == "")]
    optimum = ok.sort_values("params", ascending=False).iloc[0]
    found = search(stack, budgets=["macs<=200e3"], objective="params:max")
    assert found.strategy == "exhaustive" and found.evaluations == 9
    assert (found.best["macs"] <= 200_000).all()
    assert found.best_config == {"width": optimum["width"], "depth": optimum["depth"]}
    # evolution finds it too, reproducibly, and never returns a configuration over budget
    evo = search(stack, budgets=["macs<=200e3"], objective="params:max", strategy="evolution", population=4,
                 generations=6, seed=0)
    assert evo.best_config == found.best_config
    assert (evo.best["macs"] <= 200_000).all() and evo.best["feasible"].all()
    again = search(stack, budgets=["macs<=200e3"], objective="params:max", strategy="evolution", population=4,
                   generations=6, seed=0, workers=2)
    pd.testing.assert_frame_equal(evo.history, again.history)


def test_search_with_a_user_fitness_and_the_regnet_budget():
    seen = []

    def fitness(row):
        seen.append(row)
        return -abs(row["macs"] - 300e6)     # as close to 300 MMACs as the budgets allow

    found = search("regnet", budgets=["macs<=1.6e9", "peak_activation_bytes<=20e6"], fitness=fitness,
                   population=16, generations=2, seed=0)
    assert found.strategy == "evolution" and not found.best.empty
    assert (found.best["macs"] <= 1.6e9).all() and (found.best["peak_activation_bytes"] <= 20e6).all()
    assert all(r["macs"] <= 1.6e9 and r["error"] == "" for r in seen)   # only feasible ones are scored
    assert list(found.best["fitness"]) == sorted(found.best["fitness"], reverse=True)


def test_the_regnet_zoo_lies_in_the_regnet_space_with_the_zoo_counts():
    space = load_space("regnet")
    assert space.names == ("depth", "w0", "wa", "wm", "group_width", "bottleneck_multiplier", "se_ratio")
    from archstat.space.rows import evaluate
    for entry in zoo.entries().values():
        if entry.spec != "regnet.yaml":
            continue
        assert space.contains(dict(entry.args)), entry.name
        if entry.input is not None:      # regnet_y_128gf: weights evaluated at 384 px
            continue
        config = {n: {**space.defaults, **entry.args}[n] for n in space.names}
        row = evaluate(space, config)
        assert row["params"] == entry.published["params"], entry.name
        assert row["zoo"] == entry.name


def test_efficientnet_space_scales_b0_to_the_zoo_variants():
    space = load_space("efficientnet")
    assert space.names == ("width_mult", "depth_mult", "resolution")
    from archstat.space.rows import evaluate
    # B4 is B0 scaled by width 1.4, depth 1.8 at 380 px (its dropout and batch norm eps differ: no count)
    row = evaluate(space, {"width_mult": 1.4, "depth_mult": 1.8, "resolution": 380})
    b4 = archstat.analyze("efficientnet_b4").totals
    assert (row["params"], row["macs"]) == (b4["params"], b4["macs"]) == (19341616, row["macs"])
    assert archstat.load("efficientnet").name == "EfficientNet-B0"   # defaults unchanged


@pytest.mark.parametrize("space, message", [
    ({"widht": {"choice": [8]}}, "not one of the spec's args.*did you mean 'width'"),
    ({"depth": {"int": [3, 1]}}, "range is empty"),
    ({"depth": {"range": [1, 5, 0]}}, "positive step"),
    ({"width": {"choice": []}}, "non-empty list"),
    ({"width": {"choices": [8]}}, "did you mean 'choice'"),
    ({"width": {"choice": [8, 1.5]}}, "not of argument 'width'"),
    ({"width": {"loguniform": [0, 8]}}, "0 < lo < hi"),
    ({"width": {"uniform": [8, 8]}}, "range is empty"),
    ({"width": [8, 16]}, "expected one of"),
])
def test_space_section_errors(write_spec, space, message):
    with pytest.raises(ArchstatError, match=message) as info:
        archstat.load(write_spec({**STACK, "space": space}, "bad.yaml"))
    assert "bad.yaml: field 'space." in str(info.value)


def test_dimensions_draw_and_enumerate_what_they_declare(write_spec):
    spec = {**STACK, "args": {"width": 16, "depth": 2, "lr": 0.1, "act": "relu"},
            "space": {"width": {"range": [8, 32, 8]}, "depth": {"loguniform": [1, 16]},
                      "lr": {"loguniform": [1e-4, 1e-1]}, "act": {"choice": ["relu", "gelu"]}}}
    space = load_space(write_spec(spec))
    assert space.dim("width").values == (8, 16, 24, 32)
    assert space.dim("depth").levels(5) == (1, 2, 4, 8, 16)          # log-spaced, integers
    assert space.dim("lr").levels(4) == (0.0001, 0.001, 0.01, 0.1)
    rows = sample(space, n=1, seed=0)   # the layers ignore lr and act: still a valid model
    import numpy as np
    rng = np.random.default_rng([0, 0])
    assert rows.loc[0, "width"] == space.dims[0].draw(rng)
    for _ in range(200):
        config = {d.name: d.draw(rng) for d in space.dims}
        assert space.contains(config) and isinstance(config["depth"], int)
        assert 1e-4 <= config["lr"] <= 1e-1 and config["act"] in ("relu", "gelu")
    with pytest.raises(ArchstatError, match="--levels"):
        grid(space)
    assert len(grid(space, levels=2, args={"act": "relu"})) == 4 * 2 * 2


def test_budgets_parse_safely():
    metrics = ["params", "macs", "peak_activation_bytes"]
    b = budget_mod.parse_budget("macs<=400e6", metrics)
    assert (b.metric, b.op, b.value) == ("macs", "<=", 400_000_000) and isinstance(b.value, int)
    assert budget_mod.parse_budget(" peak_activation_bytes < 2.5M ", metrics).value == 2_500_000
    assert b.met({"macs": 400_000_000}) and not b.met({"macs": 400_000_001}) and not b.met({"macs": None})
    assert budget_mod.parse_objective("macs:min", metrics) == ("macs", "min")
    for text, message in [("mac<=1", "did you mean 'macs'"), ("macs<=__import__('os')", "cannot read"),
                          ("macs=<1", "cannot read"), ("macs<=1.2.3", "not a number")]:
        with pytest.raises(ArchstatError, match=message):
            budget_mod.parse_budget(text, metrics)
    with pytest.raises(ArchstatError, match=":max or :min"):
        budget_mod.parse_objective("macs:most", metrics)


def test_measure_times_configurations_on_the_workers(stack):
    rows = sample(stack, n=6, seed=0, measure=3, workers=2)
    timed = rows[rows["measured_ms"].notna()]
    assert list(timed["index"]) == [0, 1, 2]
    assert (timed["measured_ms"] > 0).all() and (timed["measured_min_ms"] <= timed["measured_ms"]).all()
    assert set(timed["host"]) == {socket.gethostname()} and (timed["cpu"] != "").all()


def test_space_plot_marks_the_zoo(tmp_path):
    from archstat.space.output import zoo_points
    from archstat.space.plots import measured_figure, space_figure

    space = load_space("regnet")
    rows = sample(space, n=30, seed=0)
    points = zoo_points(space)
    assert {p["name"] for p in points} >= {"regnet_x_400mf", "regnet_y_400mf"}
    assert all(p["inside"] for p in points if p["name"] != "regnet_y_128gf")
    path = space_figure(rows, tmp_path / "space.png", title="RegNet", points=points[:3] + points[-1:])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows["measured_ms"] = rows["macs"].astype("float64") / 1e6
    rows["host"], rows["cpu"] = "h", "c"
    assert measured_figure(rows, tmp_path / "m.svg").read_text().startswith("<?xml")


def test_dask_gives_the_rows_of_the_local_run(stack):
    distributed = pytest.importorskip("distributed")
    local = sample(stack, n=25, seed=4)
    with distributed.LocalCluster(n_workers=2, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = sample(stack, n=25, seed=4, scheduler=client)
        by_address = sample(stack, n=25, seed=4, scheduler=cluster.scheduler_address, chunk=4)
    pd.testing.assert_frame_equal(local, remote)
    pd.testing.assert_frame_equal(local, by_address)


def _die_once_at_index_5(marker):
    """Run on every Dask worker: the worker that first evaluates configuration 5 dies (os._exit)."""
    from archstat.space import runner

    real = runner.evaluate

    def dies_once(space, config, *, index, **kw):
        if index == 5 and not os.path.exists(marker):
            with open(marker, "w") as fh:
                fh.write("x")
            os._exit(1)
        return real(space, config, index=index, **kw)

    runner.evaluate = dies_once


def test_a_dask_worker_that_dies_loses_no_configuration(stack, tmp_path):
    distributed = pytest.importorskip("distributed")
    local = sample(stack, n=12, seed=5)
    marker = tmp_path / "died"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        client.run(_die_once_at_index_5, str(marker))
        remote = sample(stack, n=12, seed=5, scheduler=client, chunk=2)
    assert marker.exists()   # a worker died evaluating it
    pd.testing.assert_frame_equal(local, remote)


# ------------------------------------------------------------------------------ the command line

def test_cli_grid_sample_and_parquet_fallback(cli, stack, tmp_path, monkeypatch):
    out = tmp_path / "grid.csv"
    code, text, err = cli("space", stack, "--grid", "-o", out)
    assert code == 0 and "grid of 9 configurations" in text and f"wrote {out}" in err
    rows = pd.read_csv(out)
    assert list(rows["params"]) == [stack_params(w, d) for w in (8, 16, 32) for d in (1, 2, 3)]
    from archstat.space import output
    monkeypatch.setattr(output, "parquet_available", lambda: False)
    code, text, err = cli("space", stack, "--samples", 20, "--seed", 0, "-o", tmp_path / "s.parquet")
    assert code == 0 and "pyarrow is not installed" in err and (tmp_path / "s.csv").exists()
    assert len(pd.read_csv(tmp_path / "s.csv")) == 20


def test_cli_search_and_plot(cli, stack, tmp_path):
    code, text, err = cli("search", stack, "--budget", "macs<=200e3", "--objective", "params:max", "--top", 2)
    assert code == 0 and "exhaustive search" in text
    code, text, err = cli("space", stack, "--samples", 10, "--plot", tmp_path / "p.png", "-q")
    assert code == 0 and (tmp_path / "p.png").stat().st_size > 10_000


@pytest.mark.parametrize("args, message", [
    (("space", "{bad}", "--grid"), "field 'space.detph': the space varies 'detph', which is not one of the spec's args"),
    (("space", "{empty}", "--grid"), "the range is empty"),
    (("search", "{stack}", "--budget", "mac<=1e6", "--objective", "params:max"), "did you mean 'macs'?"),
    (("search", "{stack}", "--budget", "macs<<1e6", "--objective", "params:max"), "cannot read the budget"),
    (("search", "{stack}", "--budget", "macs<=1", "--objective", "params:max"), "none of the 9 configurations"),
    (("space", "{stack}", "--samples", "5", "--scheduler", "tcp://127.0.0.1:9"), "cannot reach the Dask scheduler"),
    (("space", "{stack}", "--samples", "5", "-o", "rows.xlsx"), "cannot tell a format"),
    (("space", "resnet50", "--samples", "5"), "declares no design space"),
    (("space", "{stack}", "--samples", "5", "--resume"), "--resume needs"),
])
def test_cli_bad_input_is_one_line_and_exit_2(cli, write_spec, monkeypatch, args, message):
    pytest.importorskip("distributed") if "--scheduler" in args else None
    from archstat.space import runner
    monkeypatch.setattr(runner, "SCHEDULER_TIMEOUT", 1.0)
    paths = {"stack": write_spec(STACK, "stack.yaml"),
             "bad": write_spec({**STACK, "space": {"detph": {"int": [1, 2]}}}, "bad.yaml"),
             "empty": write_spec({**STACK, "space": {"depth": {"int": [2, 1]}}}, "empty.yaml")}
    code, out, err = cli(*[str(a).format(**paths) for a in args])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("archstat: error: ") and message in err, err


def test_the_spec_loader_loads_only_the_space_declarations():
    # archstat.space.declare is part of the spec language (floor 3): loading a spec must not pull in
    # the runner, pandas or anything above it
    import subprocess
    import sys
    code = ("import sys, archstat.spec\n"
            "print(sorted(m for m in sys.modules if m.startswith('archstat.space')), 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stdout
    assert out.strip() == "['archstat.space', 'archstat.space.declare'] False"
    import archstat.space.declare as declare
    imported = {line.split()[1] for line in open(declare.__file__) if line.startswith(("from ..", "import "))}
    assert imported <= {"..errors", "math", "__future__"}, imported


def test_rows_files_round_trip(stack, tmp_path):
    from archstat.space.output import write_rows
    rows = grid(stack)
    path, note = write_rows(rows, tmp_path / "rows.jsonl")
    assert note is None
    back = pd.read_json(path, lines=True)
    assert list(back["macs"]) == list(rows["macs"]) and list(back.columns) == list(rows.columns)
    import json
    path, _ = write_rows(rows, tmp_path / "rows.json")   # a document: schema first, then the rows
    doc = json.loads(path.read_text())
    assert list(doc)[:2] == ["schema", "archstat_version"] and doc["schema"] == "archstat.space_rows/1"
    assert [r["macs"] for r in doc["rows"]] == list(rows["macs"])
    with pytest.raises(ArchstatError, match="--workers sets local processes"):
        sample(stack, n=3, workers=2, scheduler="tcp://127.0.0.1:9")


def test_parquet_rows_with_pyarrow(cli, stack, tmp_path):
    pytest.importorskip("pyarrow")
    code, _, err = cli("space", stack, "--grid", "-o", tmp_path / "g.parquet")
    assert code == 0 and "not installed" not in err
    back = pd.read_parquet(tmp_path / "g.parquet")
    pd.testing.assert_frame_equal(back, grid(stack), check_dtype=False)
