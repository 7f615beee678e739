"""Benchmark of Winograd convolution (run by hand: ``python bench/winograd.py``).

For VGG-16's 13 convolutions (3x3, stride 1, pad 1; the list of ``bench/engine.py``) at
batch 1 and 8, float32: the time of ``conv2d`` with ``algorithm`` im2col, winograd2 and
winograd4, and of ``np.matmul`` on the same-shape GEMM ((C_out, C_in*9) @ (C_in*9, N*H*W)),
each reported as effective GFLOP/s = direct-conv FLOPs (2*N*K*C*9*H*W) / median time. The
issue's goal: Winograd's effective throughput above the same-shape GEMM's. ``--backward``
times ``conv2d_backward`` instead (FLOPs: twice the forward's, the dX and dW GEMMs).

Timings are medians over rounds in which every implementation runs once, in rotating order
(``timed_rounds`` of bench/engine.py), so a slow phase of a shared machine hits them alike.
Other processes' share of the CPU over the run is printed: on a 2-core machine shared with
other work, numbers may be disturbed. ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` are unset
for this command only (the script re-executes itself, as bench/engine.py does).
"""
from __future__ import annotations

import os
import sys

_PINNED = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
if any(name in os.environ for name in _PINNED):  # before NumPy loads OpenBLAS
    env = {k: v for k, v in os.environ.items() if k not in _PINNED}
    env["ARCHSTAT_BENCH_UNPINNED"] = " ".join(f"{k}={os.environ[k]}" for k in _PINNED
                                              if k in os.environ)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from archstat import engine  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_engine", REPO / "bench" / "engine.py")
bench_engine = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_engine)

ALGORITHMS = ("im2col", "winograd2", "winograd4")


def layer_fns(n, c, k, h, backward, rng):
    x = rng.standard_normal((n, c, h, h), dtype=np.float32)
    w = (rng.standard_normal((k, c, 3, 3), dtype=np.float32) * np.sqrt(2 / (9 * c))).astype(np.float32)
    b = np.zeros(k, np.float32)
    a = w.reshape(k, -1)
    cols = rng.standard_normal((c * 9, n * h * h), dtype=np.float32)
    if backward:
        dy = rng.standard_normal((n, k, h, h), dtype=np.float32)
        fns = {alg: (lambda alg=alg: engine.conv2d_backward(dy, x, w, padding=1, algorithm=alg))
               for alg in ALGORITHMS}
        dyt = dy.transpose(1, 0, 2, 3).reshape(k, -1)
        fns["gemm"] = lambda: (dyt @ cols.T, a.T @ dyt)     # dW and dcols
    else:
        fns = {alg: (lambda alg=alg: engine.conv2d(x, w, b, padding=1, algorithm=alg))
               for alg in ALGORITHMS}
        fns["gemm"] = lambda: a @ cols
    return fns


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    p.add_argument("--layers", nargs="+", help="names of VGG-16 convs (default: all 13)")
    p.add_argument("--backward", action="store_true", help="time conv2d_backward instead")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    unpinned = os.environ.get("ARCHSTAT_BENCH_UNPINNED")
    print(f"# {bench_engine.blas_line()}" + (f" (unset for this run: {unpinned})" if unpinned else ""))
    print(f"# {'backward' if args.backward else 'forward'}, float32, median of {args.rounds} "
          f"rotating rounds; effective GFLOP/s = direct-conv FLOPs / time")
    cols = ("im2col", "winograd2", "winograd4", "gemm")
    print(f"{'layer':8} {'N':>2} " + " ".join(f"{c:>9}" for c in cols) + "   best wino / gemm")
    busy0, t0 = bench_engine._busy_seconds(), os.times()
    wall0 = time.perf_counter()
    for n in args.batch:
        total_flops, total = 0, dict.fromkeys(cols + ("best",), 0.0)
        for name, c, k, h in bench_engine.VGG16:
            if args.layers and name not in args.layers:
                continue
            flops = 2 * n * k * c * 9 * h * h * (2 if args.backward else 1)
            times = bench_engine.timed_rounds(layer_fns(n, c, k, h, args.backward, rng), args.rounds)
            med = {key: float(np.median(t)) for key, t in times.items()}
            best = max(bench_engine.ratio(times, "gemm", w) for w in ("winograd2", "winograd4"))
            print(f"{name:8} {n:>2} " + " ".join(f"{flops / med[c] / 1e9:9.1f}" for c in cols)
                  + f"   {best:5.2f}", flush=True)
            total_flops += flops
            for c in cols:
                total[c] += med[c]
            total["best"] += min(med[a] for a in ALGORITHMS)
        print(f"{'all':8} {n:>2} " + " ".join(f"{total_flops / total[c] / 1e9:9.1f}" for c in cols)
              + f"   (summed times; the fastest algorithm per layer: "
              f"{total_flops / total['best'] / 1e9:.1f})", flush=True)
    share = bench_engine.others_share(busy0, t0.user + t0.system, time.perf_counter() - wall0)
    if share is not None:
        print(f"# other processes used {share:.0%} of the machine's CPU during the run "
              f"(2 cores shared: numbers may be disturbed)")


if __name__ == "__main__":
    main()
