"""Benchmark of the engine's pooling and ReLU kernels (run by hand: ``python bench/pool_act.py``).

float32, batch 1 and 8, on VGG-16 and ResNet shapes: max and average pooling forward and
backward, ReLU forward (in place) and backward, each next to PyTorch's CPU kernel for the
same op when torch imports: ``F.max_pool2d`` / ``F.avg_pool2d`` / ``torch.relu_`` forward;
backward ``aten.max_pool2d_with_indices_backward`` (given the argmax indices that torch's
forward keeps, while the engine finds the first maximum again from x and y),
``aten.avg_pool2d_backward`` and ``aten.threshold_backward`` (what autograd runs).

The engine's kernels are single-threaded NumPy; torch runs with as many threads as the
BLAS. Each measurement is rounds of one engine call then one torch call (see
:func:`paired`); a time is the median over rounds, and torch/engine the median of the
per-round ratios, so that a slow phase of a shared machine hits both alike. Freed memory
is kept in the process (:func:`archstat.engine.memory.keep_freed_memory`), as
``archstat profile`` does.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archstat import engine  # noqa: E402
from archstat.engine import memory  # noqa: E402

# name, (C, H = W), pool (kernel, stride, padding; max and average) or None for ReLU
CASES = [
    ("vgg16 pool1", (64, 224), (2, 2, 0)),
    ("vgg16 pool3", (256, 56), (2, 2, 0)),
    ("resnet 3x3/2 p1", (64, 112), (3, 2, 1)),
    ("vgg16 relu1_1", (64, 224), None),
    ("resnet relu l1", (256, 56), None),
]
#: seconds to wait after a torch call, so that its OpenMP threads stop spinning before the
#: next NumPy call (they slow it down: bench/engine.py)
PAUSE = 0.02


def paired(fns: dict, rounds: int) -> dict:
    """Per-round wall times of ``engine`` and, when present, ``torch`` (one warm-up each).

    Torch's call is timed right after an untimed one: after a pause its threads sleep, and
    waking them costs up to a few ms (measured here: 0.09 ms for a back-to-back relu_ of
    (1, 256, 56, 56), 5-8 ms after a 50-100 ms pause), which would swamp the small ops."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            if k == "torch":
                f()
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
            if k == "torch":
                time.sleep(PAUSE)
    return {k: np.array(v) for k, v in times.items()}


def ops(c, h, pool, batch, torch):
    """(op label, {"engine": fn, "torch": fn}) for one case."""
    rng = np.random.default_rng(0)
    # ReLU'd input, as pools see it in these networks: many ties at 0
    x = np.maximum(rng.standard_normal((batch, c, h, h), dtype=np.float32), 0)
    if pool is None:
        xr = rng.standard_normal(x.shape, dtype=np.float32)
        dy = rng.standard_normal(x.shape, dtype=np.float32)
        out = [("relu fwd", {"engine": lambda: engine.relu(xr, out=xr)}),
               ("relu bwd", {"engine": lambda: engine.relu_backward(dy, x)})]
        if torch is not None:
            tx, ty, tdy = torch.from_numpy(xr.copy()), torch.from_numpy(x), torch.from_numpy(dy)
            out[0][1]["torch"] = lambda: torch.relu_(tx)
            out[1][1]["torch"] = lambda: torch.ops.aten.threshold_backward(tdy, ty, 0)
        return out
    k, s, p = pool
    y = engine.max_pool2d(x, k, s, p)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    out = [("max fwd", {"engine": lambda: engine.max_pool2d(x, k, s, p)}),
           ("max bwd", {"engine": lambda: engine.max_pool2d_backward(dy, x, k, s, p, y=y)}),
           ("avg fwd", {"engine": lambda: engine.avg_pool2d(x, k, s, p)}),
           ("avg bwd", {"engine": lambda: engine.avg_pool2d_backward(dy, x.shape, k, s, p)})]
    if torch is not None:
        F, aten = torch.nn.functional, torch.ops.aten
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
        _, idx = F.max_pool2d(tx, k, s, p, return_indices=True)
        out[0][1]["torch"] = lambda: F.max_pool2d(tx, k, s, p)
        out[1][1]["torch"] = lambda: aten.max_pool2d_with_indices_backward(
            tdy, tx, [k, k], [s, s], [p, p], [1, 1], False, idx)
        out[2][1]["torch"] = lambda: F.avg_pool2d(tx, k, s, p)
        out[3][1]["torch"] = lambda: aten.avg_pool2d_backward(tdy, tx, [k, k], [s, s], [p, p],
                                                              False, True, None)
    return out


def kernel_bench(argv, description: str, rows, name_width: int, op_width: int,
                 keep_freed_memory: bool = False) -> int:
    """The command line every kernel bench shares: ``--batches``, ``--rounds``, ``--no-torch``;
    torch (when it imports) runs on as many threads as the BLAS; one line per (case, batch,
    op) with the engine's and torch's median ms and the median of per-round torch/engine
    ratios. ``rows(batch, torch)`` yields ``(case name, op label, {"engine": fn, "torch": fn})``.
    ``keep_freed_memory``: apply (and report) :func:`archstat.engine.memory.keep_freed_memory`."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per op (batch 1: +4)")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    torch = None
    if not args.no_torch:
        try:
            import torch
            from threadpoolctl import threadpool_info
            blas = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
            torch.set_num_threads(blas[0] if blas else 1)
        except ImportError:
            torch = None
    print(f"NumPy {np.__version__}" + (f", PyTorch {torch.__version__} "
                                       f"({torch.get_num_threads()} threads)" if torch else
                                       ", no PyTorch"))
    if keep_freed_memory:
        print(f"glibc keeps freed memory: {'yes' if memory.keep_freed_memory() else 'no'}")
    head = (f"{'case':<{name_width}}{'batch':>6}  {'op':<{op_width}}{'engine ms':>10}{'torch ms':>10}"
            f"{'torch/eng':>10}{'eng/torch min':>14}")
    print("\nfloat32; times: median over rounds; torch/eng: median of per-round ratios "
          "(> 1: the engine is faster); eng/torch min: the fastest engine round over the fastest "
          "torch round (< 1: the engine is faster), steadier when another process takes the "
          "cores now and then")
    print(head)
    print("-" * len(head))
    for batch in args.batches:
        for name, label, fns in rows(batch, torch):
            t = paired(fns, args.rounds + (4 if batch == 1 else 0))
            eng = np.median(t["engine"]) * 1e3
            cells = f"{name:<{name_width}}{batch:>6}  {label:<{op_width}}{eng:10.2f}"
            if "torch" in t:
                cells += (f"{np.median(t['torch']) * 1e3:10.2f}"
                          f"{np.median(t['torch'] / t['engine']):10.2f}"
                          f"{t['engine'].min() / t['torch'].min():14.2f}")
            print(cells, flush=True)
    print(f"\nbench time {time.perf_counter() - start:.0f} s")
    return 0


def main(argv=None) -> int:
    def rows(batch, torch):
        for name, (c, h), pool in CASES:
            for label, fns in ops(c, h, pool, batch, torch):
                yield name, label, fns

    return kernel_bench(argv, __doc__.splitlines()[0], rows, 16, 9, keep_freed_memory=True)


if __name__ == "__main__":
    sys.exit(main())
