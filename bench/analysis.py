"""How fast is symbolic analysis? (run by hand: python bench/analysis.py)

1. ResNet-152 (515 layers, the zoo model resnet152): archstat.analyze time (median of many
   calls) and the whole `archstat report resnet152` process, against what the peer tools need
   (they run the model: 0.1-0.3 s for ResNet-152 on this machine, perf-anchors.md).
2. Every zoo model (specs/zoo.yaml): archstat.load by name (cold: the first in the process;
   warm: again) and archstat.analyze, against the target of under 10 ms for any zoo model.
3. Generated residual graphs of 1,000 to 100,000 layers: load and analyze times, and the
   time per layer, which stays flat when the growth is linear.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import archstat
import archstat.zoo

ROOT = Path(__file__).resolve().parents[1]
#: the target for loading and analysing any one zoo model by name
ZOO_TARGET_MS = 10.0


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
    print(f"{'layers':>8}  {'load ms':>9}  {'analyze ms':>10}  {'analyze us/layer':>16}")
    for blocks in (100, 1_000, 10_000):
        spec = residual_spec(blocks)
        t0 = time.perf_counter()
        m = archstat.load(spec)
        t_load = time.perf_counter() - t0
        t = timed(lambda: archstat.analyze(m), 3 if blocks < 10_000 else 1)
        print(f"{len(m):>8,}  {t_load * 1e3:9.0f}  {t * 1e3:10.1f}  {t / len(m) * 1e6:16.2f}")


if __name__ == "__main__":
    main()
