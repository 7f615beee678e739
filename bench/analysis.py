"""How fast is symbolic analysis? (run by hand: python bench/analysis.py)

1. ResNet-152 (515 layers, the zoo model resnet152): archstat.analyze time (median of many
   calls) and the whole `archstat report resnet152` process, against what the peer tools need
   (they run the model: 0.1-0.3 s for ResNet-152 on this machine, perf-anchors.md).
2. Every zoo model (specs/zoo.yaml): archstat.load by name (cold: the first in the process;
   warm: again) and archstat.analyze, against the target of under 10 ms for any zoo model.
3. Scale, each in a fresh process (`archstat report big.yaml`'s path): a chain of ReLUs written
   to a YAML file (1,000 to 1,000,000 layers; the target is under 30 s for a million), the same
   as JSON, and a residual graph (a spec file of bottleneck blocks, 1,000 to 100,000 layers):
   file size, read + expand + build the graph (archstat.load), archstat.analyze, and each per
   layer, which stays flat when the growth is linear. Medians of several runs below 1,000,000;
   each process first loads a one-layer file of the same format, so that what the first load
   imports and reads is not counted.

Run `python bench/analysis.py scale` for the third part alone.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import archstat
import archstat.zoo

ROOT = Path(__file__).resolve().parents[1]
#: the target for loading and analysing any one zoo model by name
ZOO_TARGET_MS = 10.0
#: the target for reading, loading and analysing a million-layer spec file
SCALE_TARGET_S = 30.0


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def residual_spec(blocks: int) -> dict:
    """A ResNet-like chain: stem, `blocks` bottlenecks (10 layers each), head."""
    conv = lambda name, c, k, **kw: {"name": name, "type": "conv2d", "out_channels": c, "kernel_size": k,
                                     "padding": k // 2, "bias": False, **kw}
    block = {"layers": [conv("c1", 64, 1), {"name": "b1", "type": "batch_norm2d"},
                        {"name": "r1", "type": "relu", "inplace": True},
                        conv("c2", 64, 3), {"name": "b2", "type": "batch_norm2d"},
                        {"name": "r2", "type": "relu", "inplace": True},
                        conv("c3", 256, 1), {"name": "b3", "type": "batch_norm2d"},
                        {"name": "add", "type": "add", "inputs": ["b3", "input"]},
                        {"name": "r", "type": "relu", "inplace": True}]}
    return {"name": f"residual-{blocks}", "input": [3, 56, 56], "blocks": {"bottleneck": block},
            "layers": [conv("stem", 256, 3), {"block": "bottleneck", "repeat": blocks},
                       {"type": "global_avg_pool2d"}, {"type": "flatten"},
                       {"type": "linear", "out_features": 1000}]}


def zoo_times(repeat: int = 9) -> list[tuple[float, float, float, str, int]]:
    """Per zoo model: (cold load, warm load, analyze) in seconds, name, layers. Cold: the first
    load in a process (its spec file parsed and expanded); warm: loading it again (the expanded
    spec is memoised per file, modification time and arguments, so only the graph is built)."""
    from archstat import spec, spec_io

    out = []
    for name in archstat.zoo.entries():
        spec._EXPANDED.clear()
        spec_io._PARSED.clear()
        t = time.perf_counter()
        model = archstat.load(name)
        cold = time.perf_counter() - t
        warm = timed(lambda: archstat.load(name), repeat)
        analysis = timed(lambda: archstat.analyze(model), repeat)
        out.append((cold, warm, analysis, name, len(model)))
    return out


def main() -> None:
    model = archstat.load("resnet152")
    t_an = timed(lambda: archstat.analyze(model), 50)
    t_load = timed(lambda: archstat.load("resnet152"), 10)
    cmd = [sys.executable, "-m", "archstat", "report", "resnet152"]
    t_proc = timed(lambda: subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL), 5)
    print(f"ResNet-152 ({len(model)} layers)")
    print(f"  archstat.analyze            {t_an * 1e3:8.2f} ms   (target < 5 ms)")
    print(f"  archstat.load (parse+build) {t_load * 1e3:8.2f} ms")
    print(f"  `archstat report` process   {t_proc * 1e3:8.0f} ms   (target < 1 s; peers need 100-300 ms "
          f"just to run the model)")
    print()
    times = zoo_times()
    print(f"Every zoo model ({len(times)}): median of 9 calls (cold: the first load in the process); "
          f"target < {ZOO_TARGET_MS:.0f} ms")
    for k, what in ((1, "archstat.load (warm)"), (2, "archstat.analyze"), (0, "archstat.load (cold)")):
        ranked = sorted(times, key=lambda r: r[k], reverse=True)
        over = sum(r[k] * 1e3 >= ZOO_TARGET_MS for r in times)
        print(f"  {what:<22} median {statistics.median(r[k] for r in times) * 1e3:6.2f} ms, slowest "
              + ", ".join(f"{r[3]} ({r[4]:,} layers) {r[k] * 1e3:.1f} ms" for r in ranked[:3])
              + f"; {over} of {len(times)} at or over the target")
    print()
    scale()


def chain_text(layers: int, fmt: str) -> str:
    """A chain of ReLUs as a spec file's text, one line per layer."""
    if fmt == "json":   # compact: a million layers stay under spec_io.MAX_SPEC_BYTES (16 MiB)
        return '{"name":"chain","input":[3,8,8],"layers":[' + ",".join(['{"type":"relu"}'] * layers) + "]}\n"
    return "name: chain\ninput: [3, 8, 8]\nlayers:\n" + "- {type: relu}\n" * layers


def measure_file(path: Path, repeat: int) -> tuple[int, float, float]:
    """(layers, load s, analyze s): medians over `repeat` fresh processes, each loading the file
    (read, expand, build the graph) and analysing it once."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, __file__, "--worker", str(path)], check=True, env=env,
                             capture_output=True, text=True).stdout
        runs.append(json.loads(out))
    return (runs[0]["layers"], statistics.median(r["load"] for r in runs),
            statistics.median(r["analyze"] for r in runs))


def worker(path: str) -> None:
    """One measurement in this fresh process, after a one-layer spec file of the same format has
    been loaded and analysed (what the first use imports and reads, such as the zoo's index, is a
    fixed cost of the process, not of the layers); prints JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / f"warm-up{Path(path).suffix}"
        warm.write_text(chain_text(1, "json" if warm.suffix == ".json" else "yaml"), encoding="utf-8")
        archstat.analyze(archstat.load(warm))
    t0 = time.perf_counter()
    model = archstat.load(path)
    t1 = time.perf_counter()
    archstat.analyze(model)
    t2 = time.perf_counter()
    print(json.dumps({"layers": len(model), "load": t1 - t0, "analyze": t2 - t1}))


def scale() -> None:
    import yaml

    print(f"Scale: a spec file read, expanded, built into a graph (load) and analysed, each in a fresh "
          f"process; target < {SCALE_TARGET_S:.0f} s for 1,000,000 layers")
    print(f"  {'spec':<15} {'layers':>9} {'file MB':>8} {'load s':>8} {'analyze s':>9} {'total s':>8}"
          f"   us/layer: {'load':>6} {'analyze':>7} {'total':>6}")
    cases = [("relu chain yaml", n, "yaml") for n in (1_000, 10_000, 100_000, 1_000_000)]
    cases += [("relu chain json", n, "json") for n in (100_000, 1_000_000)]
    cases += [("residual yaml", blocks, "residual") for blocks in (100, 1_000, 10_000)]
    with tempfile.TemporaryDirectory() as tmp:
        for label, n, fmt in cases:
            path = Path(tmp) / f"{fmt}-{n}.{'json' if fmt == 'json' else 'yaml'}"
            if fmt == "residual":
                path.write_text(yaml.safe_dump(residual_spec(n), sort_keys=False), encoding="utf-8")
            else:
                path.write_text(chain_text(n, fmt), encoding="utf-8")
            layers, t_load, t_an = measure_file(path, 1 if n >= 1_000_000 else 3 if n >= 10_000 else 5)
            total = t_load + t_an
            print(f"  {label:<15} {layers:>9,} {path.stat().st_size / 1e6:>8.2f} {t_load:>8.2f} {t_an:>9.2f} "
                  f"{total:>8.2f}   {'':>9} {t_load / layers * 1e6:>6.1f} {t_an / layers * 1e6:>7.1f} "
                  f"{total / layers * 1e6:>6.1f}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2])
    elif sys.argv[1:2] == ["scale"]:
        scale()
    else:
        main()
