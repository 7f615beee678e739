"""Before/after benchmark of the kernels the slow-kernels work changed, next to PyTorch, all
in one process (run by hand: ``python bench/before_after.py --base fa37a1b``).

The "before" kernels are the modules of ``--base`` (a git commit) loaded from git history
beside the current ones: batch norm (``norm_kernels``), max pooling (``pool_kernels``); the
depthwise conv's before is the im2col + GEMM forward and the row-by-row backward
(``conv_depthwise._backward_by_rows``, the base's ``depthwise_backward``). Each round runs
before and after (taking turns at going first) then torch (an untimed call first, as
bench/pool_act.py does), so that a slow phase of a shared machine hits all three alike.
Printed per op: the fastest round of each (ms) and the ratios engine/torch before and after,
and before/after, from those minima; and the median per-round before/after ratio. float32, torch on as many threads as the BLAS.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from archstat import engine  # noqa: E402
from archstat.engine import memory  # noqa: E402
from archstat.layers import conv, conv_depthwise, im2col as win, registry  # noqa: E402

PAUSE = 0.02


def load_base(path: str, rev: str):
    """The module at ``path`` as of commit ``rev``, loaded inside archstat.layers (its
    relative imports resolve to today's modules) without registering its kernels again."""
    src = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{path}"], capture_output=True,
                         text=True, check=True).stdout
    name = "archstat.layers._base_" + Path(path).stem
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))
    mod.__package__ = "archstat.layers"
    registry.kernels()                      # every family registered first, as usual
    register = registry.kernel
    registry.kernel = lambda fn: fn
    try:
        exec(compile(src, f"{rev}:{path}", "exec"), mod.__dict__)
    finally:
        registry.kernel = register
    return mod


def im2col_conv(x, w, s, c):
    """conv2d with the depthwise direct forward switched off (the base's forward)."""
    real = conv.is_depthwise
    conv.is_depthwise = lambda w_, g: False
    try:
        return conv.conv2d(x, w, None, s, 1, 1, c)
    finally:
        conv.is_depthwise = real


def cases(base_norm, base_pool, torch, batch):
    rng = np.random.default_rng(0)
    F, aten = torch.nn.functional, torch.ops.aten
    for c, h in [(256, 56), (512, 28)]:
        x = rng.standard_normal((batch, c, h, h), dtype=np.float32)
        dy = rng.standard_normal(x.shape, dtype=np.float32)
        w, b = rng.standard_normal(c, dtype=np.float32), rng.standard_normal(c, dtype=np.float32)
        rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
        tx, tdy, tw, tb = (torch.from_numpy(a) for a in (x, dy, w, b))
        trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
        _, sm, si = aten.native_batch_norm(tx, tw, tb, trm, trv, True, 0.1, 1e-5)
        name = f"bn {c}x{h}"
        yield (name, "eval fwd", lambda: base_norm.batch_norm2d(x, w, b, rm, rv, False),
               lambda: engine.batch_norm2d(x, w, b, rm, rv, False),
               lambda: F.batch_norm(tx, trm, trv, tw, tb, False))
        yield (name, "train fwd", lambda: base_norm.batch_norm2d(x, w, b, rm, rv, True),
               lambda: engine.batch_norm2d(x, w, b, rm, rv, True),
               lambda: F.batch_norm(tx, trm, trv, tw, tb, True))
        yield (name, "train bwd", lambda: base_norm.batch_norm2d_backward(dy, x, w, rm, rv, True),
               lambda: engine.batch_norm2d_backward(dy, x, w, rm, rv, True),
               lambda: aten.native_batch_norm_backward(tdy, tx, tw, trm, trv, sm, si, True, 1e-5,
                                                       [True, True, True]))
    for c, h, s in [(32, 112, 1), (144, 112, 2), (144, 56, 1), (192, 28, 1), (192, 56, 2),
                    (576, 14, 1), (576, 28, 2)]:
        x = rng.standard_normal((batch, c, h, h), dtype=np.float32)
        w = rng.standard_normal((c, 1, 3, 3), dtype=np.float32)
        geom = win.geometry((h, h), (3, 3), s, 1, 1)
        dy = rng.standard_normal((batch, c) + geom.out_hw, dtype=np.float32)
        tx, tw, tdy = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(dy)
        name = f"dw {c}x{h} s{s}"
        yield (name, "fwd", lambda: im2col_conv(x, w, s, c), lambda: engine.conv2d(x, w, None, s, 1, 1, c),
               lambda: F.conv2d(tx, tw, None, s, 1, 1, c))
        yield (name, "bwd", lambda: conv_depthwise._backward_by_rows(dy, x, w, geom, "zeros"),
               lambda: engine.conv2d_backward(dy, x, w, s, 1, 1, c),
               lambda: aten.convolution_backward(tdy, tx, tw, None, [s, s], [1, 1], [1, 1], False,
                                                 [0, 0], c, [True, True, False]))
    for c, h in [(64, 224), (256, 56)]:        # kernels unchanged: before is after
        x = rng.standard_normal((batch, c, h, h), dtype=np.float32)
        y = np.maximum(x, 0)
        dy = rng.standard_normal(x.shape, dtype=np.float32)
        tx, ty, tdy = torch.from_numpy(x.copy()), torch.from_numpy(y), torch.from_numpy(dy)
        yield (f"relu {c}x{h} (same)", "fwd", lambda: engine.relu(x, out=x),
               lambda: engine.relu(x, out=x), lambda: torch.relu_(tx))
        yield (f"relu {c}x{h} (same)", "bwd", lambda: engine.relu_backward(dy, y),
               lambda: engine.relu_backward(dy, y), lambda: aten.threshold_backward(tdy, ty, 0))
    for c, h, k, s, p in [(64, 224, 2, 2, 0), (128, 112, 2, 2, 0), (256, 56, 2, 2, 0), (64, 112, 3, 2, 1)]:
        x = np.maximum(rng.standard_normal((batch, c, h, h), dtype=np.float32), 0)
        y = engine.max_pool2d(x, k, s, p)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
        _, idx = F.max_pool2d(tx, k, s, p, return_indices=True)
        yield (f"maxpool {c}x{h} {k}/{s}/{p}", "bwd",
               lambda: base_pool.max_pool2d_backward(dy, x, k, s, p, y=y),
               lambda: engine.max_pool2d_backward(dy, x, k, s, p, y=y),
               lambda: aten.max_pool2d_with_indices_backward(tdy, tx, [k, k], [s, s], [p, p], [1, 1],
                                                             False, idx))


def rounds(before, after, theirs, n):
    for f in (before, after, theirs):
        f()
    t = np.empty((n, 3))
    for i in range(n):
        # the first call after torch's pause runs on cold caches: before and after take turns
        for j in ((0, 1) if i % 2 == 0 else (1, 0)):
            f = (before, after)[j]
            s = time.perf_counter()
            f()
            t[i, j] = time.perf_counter() - s
        theirs()
        s = time.perf_counter()
        theirs()
        t[i, 2] = time.perf_counter() - s
        time.sleep(PAUSE)
    return t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the git commit of the 'before' kernels")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--only", default="", help="run only cases whose name contains this")
    args = ap.parse_args(argv)
    import torch
    from threadpoolctl import threadpool_info
    blas = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    torch.set_num_threads(blas[0] if blas else 1)
    memory.keep_freed_memory()
    base_norm = load_base("archstat/layers/norm_kernels.py", args.base)
    base_pool = load_base("archstat/layers/pool_kernels.py", args.base)
    print(f"NumPy {np.__version__}, PyTorch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"before = {args.base}; float32; fastest round of {args.rounds} (ms)")
    head = (f"{'case':<24}{'batch':>6}  {'op':<10}{'before':>9}{'after':>9}{'torch':>9}"
            f"{'before/torch':>13}{'after/torch':>12}{'speedup':>9}{'(median)':>9}")
    print(head)
    print("-" * len(head))
    for batch in args.batches:
        for name, op, before, after, theirs in cases(base_norm, base_pool, torch, batch):
            if args.only not in name:
                continue
            t = rounds(before, after, theirs, args.rounds + (4 if batch == 1 else 0))
            b, a, th = t.min(axis=0) * 1e3
            med = np.median(t[:, 0] / t[:, 1])
            print(f"{name:<24}{batch:>6}  {op:<10}{b:9.2f}{a:9.2f}{th:9.2f}{b / th:13.2f}{a / th:12.2f}"
                  f"{b / a:9.2f}{med:9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
