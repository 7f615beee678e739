"""Benchmark of the engine's window kernels (run by hand: ``python bench/engine.py``).

For VGG-16's 13 convolutions (3x3, pad 1) and AlexNet's conv1 (11x11, stride 4, 227 input),
at batch 1 and 8, float32: the engine's conv2d forward and backward next to

* ``np.matmul`` on the same GEMM shape (M = C_out, K = C_in*kH*kW, N = H_out*W_out*batch;
  backward = the two GEMMs dW = dY @ cols^T and dcols = W^T @ dY): what im2col + GEMM could
  reach if building columns and col2im were free;
* PyTorch's conv2d and its ``aten.convolution_backward`` (when torch imports), with as
  many threads as the BLAS;

then a whole VGG-16 forward (conv + pool + fc, the zoo model ``vgg16`` through
``archstat.Executor``) against the same network in torch with the same weights, and the
memory the column buffers take. Timings are the minimum over rounds in which every
implementation runs once, in rotating order, so that a slow phase of a shared machine hits
them alike. Prints the BLAS and threads in use (threadpoolctl).

OpenBLAS: ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` pin a kernel (on the machines of
perf-anchors.md, "Haswell" at about half the AVX-512 speed). When either is set the script
re-executes itself once with both unset, for this command only, and says so.
"""
from __future__ import annotations

import os
import sys

_PINNED = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: glibc: keep freed memory in the process instead of returning it to the OS
_RETAIN = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
_retain = "--retain-memory" in sys.argv and any(os.environ.get(k) != v for k, v in _RETAIN.items())
if any(name in os.environ for name in _PINNED) or _retain:  # before NumPy loads OpenBLAS
    env = {k: v for k, v in os.environ.items() if k not in _PINNED}
    env["ARCHSTAT_BENCH_UNPINNED"] = " ".join(f"{k}={os.environ[k]}" for k in _PINNED
                                              if k in os.environ)
    if _retain:
        env.update(_RETAIN)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)

import argparse  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_info  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from archstat import engine  # noqa: E402
from archstat.layers import im2col as win  # noqa: E402
from archstat.engine import memory  # noqa: E402

# name, C_in, C_out, input H (= W), kernel, stride, padding
VGG16 = [
    ("conv1_1", 3, 64, 224), ("conv1_2", 64, 64, 224),
    ("conv2_1", 64, 128, 112), ("conv2_2", 128, 128, 112),
    ("conv3_1", 128, 256, 56), ("conv3_2", 256, 256, 56), ("conv3_3", 256, 256, 56),
    ("conv4_1", 256, 512, 28), ("conv4_2", 512, 512, 28), ("conv4_3", 512, 512, 28),
    ("conv5_1", 512, 512, 14), ("conv5_2", 512, 512, 14), ("conv5_3", 512, 512, 14),
]
LAYERS = [(n, ci, co, h, 3, 1, 1) for n, ci, co, h in VGG16] + [
    ("alexnet_conv1", 3, 96, 227, 11, 4, 0)]


def _busy_seconds() -> float | None:
    """CPU seconds all processes have spent busy (Linux /proc/stat), or None elsewhere."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def others_share(busy0: float | None, own0: float, wall: float) -> float | None:
    """Share of the machine's CPU time that other processes used since ``busy0``."""
    busy1 = _busy_seconds()
    if busy0 is None or busy1 is None:
        return None
    t = os.times()
    own = t.user + t.system - own0
    return max(0.0, (busy1 - busy0) - own) / (wall * (os.cpu_count() or 1))


def blas_line() -> str:
    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}), "
                     f"{i['num_threads']} threads" for i in infos) or "unknown BLAS"


def blas_threads() -> int:
    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return int(infos[0]["num_threads"]) if infos else os.cpu_count() or 1


#: seconds to wait before and after a torch call: after a call, OpenBLAS's and torch's
#: OpenMP worker threads keep spinning for a while, and slow the other library's next call
#: down by up to 2.5x on 2 cores (measured here); idle threads of the same library don't.
PAUSE = 0.1


def timed_rounds(fns: dict, rounds: int) -> dict:
    """Wall times of each callable per round: one warm-up each, then ``rounds`` rounds in
    which every callable runs once (the NumPy ones back to back in rotating order, so that a
    slow phase of the machine hits them alike; torch after a pause)."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    keys = [k for k in fns if k != "torch"]
    for r in range(rounds):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
        if "torch" in fns:
            time.sleep(PAUSE)
            t = time.perf_counter()
            fns["torch"]()
            times["torch"].append(time.perf_counter() - t)
            time.sleep(PAUSE)
    return {k: np.array(v) for k, v in times.items()}


def ratio(times: dict, ref: str, of: str = "engine") -> float:
    """time(ref) / time(of): the median over rounds of the ratio within each round.

    On a shared machine whose speed changes by 2-3x from one second to the next, pairs
    measured back to back compare like with like; minima taken apart may not."""
    return float(np.median(times[ref] / times[of]))


def summed(rows: list[dict], d: str, ref: str, of: str = "engine") -> float:
    """Ratio of summed times, from each layer's robust ratio: sum(t_ref) / sum(t_ref / ratio),
    i.e. the time of ``of`` (the engine) per layer estimated as t_ref / ratio (t_ref its
    minimum)."""
    ref_t = [r[d][ref].min() for r in rows]
    return sum(ref_t) / sum(t / ratio(r[d], ref, of) for t, r in zip(ref_t, rows))


def column_bytes(n, c_in, h, k, s, p) -> int:
    """Bytes of the column buffer the conv allocates (its largest block; zero padding is
    never materialised)."""
    geom = win.geometry((h, h), k, s, p)
    col = c_in * k * k * 4
    plan = list(win.blocks(n, geom, col))
    return max((n1 - n0) * (r1 - r0) for n0, n1, r0, r1 in plan) * geom.out_hw[1] * col


def bench_layers(batch: int, rounds: int, torch) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for name, c_in, c_out, h, k, s, p in LAYERS:
        x = rng.standard_normal((batch, c_in, h, h), dtype=np.float32)
        w = (rng.standard_normal((c_out, c_in, k, k), dtype=np.float32) * 0.05)
        b = rng.standard_normal(c_out, dtype=np.float32)
        ho = win.geometry((h, h), k, s, p).out_hw[0]
        m, kk, n = c_out, c_in * k * k, ho * ho * batch
        dy = rng.standard_normal((batch, c_out, ho, ho), dtype=np.float32)
        # same-shape GEMM operands (constant data: no denormals from uninitialised memory)
        a = w.reshape(m, kk)
        cols = np.full((kk, n), 0.5, np.float32)
        out = np.empty((m, n), np.float32)
        dyl = dy.transpose(1, 0, 2, 3).reshape(m, n)
        dcols = np.empty((kk, n), np.float32)
        fwd = {"engine": lambda: engine.conv2d(x, w, b, s, p),
               "gemm": lambda: np.matmul(a, cols, out=out)}
        bwd = {"engine": lambda: engine.conv2d_backward(dy, x, w, s, p),
               "gemm": lambda: (np.matmul(dyl, cols.T), np.matmul(a.T, dyl, out=dcols))}
        if torch is not None:
            tx, tw, tb, tdy = (torch.from_numpy(v) for v in (x, w, b, dy))

            def torch_fwd():
                with torch.no_grad():
                    torch.nn.functional.conv2d(tx, tw, tb, s, p)

            def torch_bwd():
                torch.ops.aten.convolution_backward(tdy, tx, tw, [c_out], [s, s], [p, p], [1, 1],
                                                    False, [0, 0], 1, [True, True, True])
            fwd["torch"], bwd["torch"] = torch_fwd, torch_bwd
        tf = timed_rounds(fwd, rounds)
        tb_ = timed_rounds(bwd, rounds)
        del cols, dcols, out
        rows.append(dict(name=name, flop=2 * m * kk * n, fwd=tf, bwd=tb_,
                         cols=column_bytes(batch, c_in, h, k, s, p), full=kk * n * 4))
    return rows


def _gf(flop, t):
    return f"{flop / t / 1e9:6.0f}"


def print_layers(rows: list[dict], batch: int, has_torch: bool) -> dict:
    print(f"\n## conv layers, batch {batch}, float32: GFLOP/s from each one's fastest round; "
          f"ratio = reference time / engine time (median of back-to-back pairs; > 1: the "
          f"engine is faster)")
    head = (f"{'layer':<14}{'fwd eng':>8}{'gemm':>7}{'torch':>7}{'gemm/eng':>9}{'torch/eng':>10}"
            f"{'bwd eng':>9}{'2gemm':>7}{'torch':>7}{'gemm/eng':>9}{'torch/eng':>10}"
            f"{'cols MB':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        cells = [f"{r['name']:<14}"]
        for d, mult in (("fwd", 1), ("bwd", 2)):
            t = r[d]
            cells += [_gf(r["flop"] * mult, t["engine"].min()) + "  ",
                      _gf(r["flop"] * mult, t["gemm"].min()),
                      _gf(r["flop"] * mult, t["torch"].min()) if has_torch else "     -",
                      f"{ratio(t, 'gemm'):9.2f}",
                      f"{ratio(t, 'torch'):10.2f}" if has_torch else f"{'-':>10}"]
        cells.append(f"{r['cols'] / 2**20:8.0f}")
        print("".join(cells))
    vgg = [r for r in rows if r["name"].startswith("conv")]
    for label, group in (("VGG-16 sum", vgg), ("all sum", rows)):
        cells = [f"{label:<14}"]
        for d in ("fwd", "bwd"):
            cells += [f"{sum(r[d]['engine'].min() for r in group) * 1e3:7.0f}ms",
                      f"{sum(r[d]['gemm'].min() for r in group) * 1e3:5.0f}ms",
                      (f"{sum(r[d]['torch'].min() for r in group) * 1e3:5.0f}ms" if has_torch
                       else "     -"),
                      f"{summed(group, d, 'gemm'):9.2f}",
                      f"{summed(group, d, 'torch'):10.2f}" if has_torch else f"{'-':>10}"]
        print("".join(cells))
    out = dict(fwd=summed(vgg, "fwd", "gemm"), bwd=summed(vgg, "bwd", "gemm"),
               worst_fwd=min(ratio(r["fwd"], "gemm") for r in vgg),
               worst_bwd=min(ratio(r["bwd"], "gemm") for r in vgg))
    if has_torch:
        out["torch_vs_gemm"] = summed(vgg, "fwd", "gemm", of="torch")
    return out


def torch_vgg16(ex, torch):
    """The same VGG-16 in torch (torchvision's layout, no torchvision needed), same weights."""
    nn = torch.nn
    mods = []
    for layer in list(ex.model.layers())[1:]:
        t, a = layer.type.name, layer.attrs
        if t == "conv2d":
            m = nn.Conv2d(a["in_channels"] or ex.params[layer.name]["weight"].shape[1],
                          a["out_channels"], a["kernel_size"], a["stride"], a["padding"])
        elif t == "linear":
            wt = ex.params[layer.name]["weight"]
            m = nn.Linear(wt.shape[1], wt.shape[0])
        elif t == "relu":
            m = nn.ReLU(inplace=True)
        elif t == "max_pool2d":
            m = nn.MaxPool2d(a["kernel_size"], a["stride"])
        elif t == "adaptive_avg_pool2d":       # torchvision's VGG.avgpool, 7x7
            m = nn.AdaptiveAvgPool2d(a["output_size"])
        elif t == "flatten":
            m = nn.Flatten()
        elif t == "dropout":
            m = nn.Dropout(a["p"])
        else:
            raise SystemExit(f"bench: no torch twin for layer type {t}")
        if layer.name in ex.params:
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(ex.params[layer.name]["weight"]))
                m.bias.copy_(torch.from_numpy(ex.params[layer.name]["bias"]))
        mods.append(m)
    return nn.Sequential(*mods).eval()


def bench_vgg16(batch: int, rounds: int, torch, algorithms=("reference",)) -> None:
    from archstat.engine.executor import Executor
    x = np.random.default_rng(1).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    fns = {}
    choices = []
    for choice in ("reference", *[a for a in algorithms if a != "reference"]):   # the same weights (seed 0)
        other = Executor("vgg16", seed=0, dtype="float32", algorithm=choice)
        chosen = other.algorithms(batch)   # 'auto' measures its choices here, untimed
        if choice == "reference":
            ex = other
        else:
            choices.append(f"algorithm {choice}: " + ", ".join(f"{k} {v}" for k, v in chosen.items()))
        fns["engine" if choice == "reference" else f"engine {choice}"] = (lambda e: lambda: e.forward(x))(other)
    if torch is not None:
        net = torch_vgg16(ex, torch)
        tx = torch.from_numpy(x)

        def run_torch():
            with torch.no_grad():
                return net(tx)
        with torch.no_grad():
            diff = np.abs(ex.forward(x) - net(tx).numpy()).max()
        fns["torch"] = run_torch
    t = timed_rounds(fns, rounds)
    tracemalloc.start()
    ex.forward(x)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"\n## whole VGG-16 forward (conv + pool + fc, the zoo model vgg16), batch {batch}")
    for line in choices:
        print(line)
    line = f"engine {t['engine'].min() / batch * 1e3:.0f} ms/image"
    for name in t:
        if name.startswith("engine "):
            line += f", {name} {t[name].min() / batch * 1e3:.0f} ms/image"
            if "torch" in t:
                line += f" (torch/{name} {ratio(t, 'torch', name):.2f})"
    if "torch" in t:
        line += (f", torch {t['torch'].min() / batch * 1e3:.0f} ms/image (fastest rounds), "
                 f"torch/engine {ratio(t, 'torch'):.2f} (median of pairs; max |difference| of "
                 f"the outputs {diff:.1e})")
    print(line)
    print(f"peak memory traced during one engine forward (activations, columns, not the "
          f"{sum(v.nbytes for p in ex.params.values() for v in p.values()) / 2**20:.0f} MB of "
          f"weights): {peak / 2**20:.0f} MB")
    return t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rounds", type=int, default=4, help="timed rounds per measurement")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-vgg", action="store_true", help="skip the whole-network forward")
    ap.add_argument("--no-layers", action="store_true", help="skip the per-layer tables")
    ap.add_argument("--algorithms", nargs="+", default=["reference"], metavar="CHOICE",
                    help="the whole VGG-16 forward also with these algorithm choices (auto, winograd4, ...)")
    ap.add_argument("--retain-memory", action="store_true",
                    help="re-run with glibc told to keep freed memory (MALLOC_MMAP_THRESHOLD_, "
                         "MALLOC_TRIM_THRESHOLD_): on a VM that hands freed pages back to the "
                         "host, every fresh large array pays page faults (both libraries)")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    busy0, t0 = _busy_seconds(), os.times()
    own0 = t0.user + t0.system
    if os.environ.get("ARCHSTAT_BENCH_UNPINNED"):
        print(f"note: re-executed with {os.environ['ARCHSTAT_BENCH_UNPINNED']} unset "
              f"(they pin OpenBLAS's kernel)")
    if args.retain_memory:
        print("note: glibc keeps freed memory (" + ", ".join(f"{k}={v}" for k, v in _RETAIN.items())
              + ")")
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(blas_threads())
        except ImportError:
            torch = None
    print(f"BLAS: {blas_line()}")
    print(f"NumPy {np.__version__}" + (f", PyTorch {torch.__version__} "
                                       f"({torch.get_num_threads()} threads)" if torch else
                                       ", PyTorch skipped" if args.no_torch else
                                       ", PyTorch not importable"))
    print(f"im2col blocks: BLOCK_BYTES {win.BLOCK_BYTES >> 20} MiB, MIN_BLOCK_COLS "
          f"{win.MIN_BLOCK_COLS}, COL_BUDGET_BYTES {win.COL_BUDGET_BYTES >> 20} MiB")
    print(f"glibc keeps freed memory (archstat.engine.memory, ARCHSTAT_KEEP_MEMORY=0 to turn "
          f"off): {'yes' if memory.keep_freed_memory() else 'no'}")
    verdicts = []
    for batch in [] if args.no_layers else args.batches:
        # batch 1 is cheap: more rounds make its medians steadier
        rows = bench_layers(batch, args.rounds + (4 if batch == 1 else 0), torch)
        s = print_layers(rows, batch, torch is not None)
        big = max(rows, key=lambda r: r["full"])
        print(f"column memory: largest block {max(r['cols'] for r in rows) / 2**20:.0f} MB "
              f"(unblocked, {big['name']} would need {big['full'] / 2**20:.0f} MB)")
        verdicts.append((batch, s))
    vgg = {}
    if not args.no_vgg:
        for batch in args.batches:
            vgg[batch] = bench_vgg16(batch, max(2, args.rounds - 1), torch, args.algorithms)
    print("\n## targets")
    for batch, s in verdicts:
        # three decimals: 0.797 is not met, and must not print as 0.80
        print(f"batch {batch}: forward {s['fwd']:.3f} of GEMM time summed (target >= 0.80): "
              f"{'met' if s['fwd'] >= 0.8 else 'NOT met'}; worst layer {s['worst_fwd']:.3f} "
              f"(target >= 0.50): {'met' if s['worst_fwd'] >= 0.5 else 'NOT met'}; backward "
              f"{s['bwd']:.3f} (target >= 0.70): {'met' if s['bwd'] >= 0.7 else 'NOT met'}")
    for batch, s in verdicts:
        if "torch_vs_gemm" in s:
            print(f"batch {batch}: same-shape GEMM time / PyTorch conv time, summed over the 13 convs: "
                  f"{s['torch_vs_gemm']:.2f} (> 1: torch's convs beat the bare GEMMs); im2col + GEMM "
                  f"spends about its GEMMs' time plus the columns', so over these convs it can be no "
                  f"slower than torch only if this is clearly < 1")
    for batch, t in vgg.items():
        if "torch" in t:
            for name in [k for k in t if k.startswith("engine")]:
                ok = ratio(t, "torch", name) >= 1
                print(f"batch {batch}: whole VGG-16 forward, torch/{name} {ratio(t, 'torch', name):.3f} "
                      f"(target >= 1, no slower than torch): {'met' if ok else 'NOT met'}")
    wall = time.perf_counter() - start
    share = others_share(busy0, own0, wall)
    print(f"\nbench time {wall:.0f} s" + ("" if share is None else
          f"; other processes used {share:.0%} of the CPUs meanwhile"
          + (" (a disturbed run: rerun on a quiet machine)" if share > 0.05 else "")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
