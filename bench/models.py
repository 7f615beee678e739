"""Whole networks, engine against PyTorch with the same weights, side by side in one process
(run by hand, in a venv with torch and torchvision:
``python bench/models.py vgg16 resnet50 mobilenet_v2 densenet121 efficientnet_b0``).

Each torchvision model (random weights, eval mode) is imported with ``archstat.from_torch``,
so the engine runs the very same weights; the engine's ``Executor`` (``--algorithm``, default
``auto``: its per-layer choices are measured first, untimed) is timed against the torch module
under ``torch.no_grad()``, float32, batch 1 and 8 (``--batches``). Each round runs both
back to back, taking turns at going first, with a pause around torch (its OpenMP threads spin
after a call); printed are the fastest round of each in ms per image and the median over rounds
of the per-round ratio engine/torch (below 1: the engine is faster). ``--train MODEL...``
times a training step the same way (forward with batch statistics, backward of a fixed output
gradient; no optimizer), and ``--memory`` the peak memory of one forward of each: the peak
resident set of a fresh process (``VmHWM`` after a reset, every library's allocations and
workspace; glibc told to map every array over 64 kB and hand it back when freed, so that the
resident set follows what is live) and, for the engine, the executor's prediction
(``Executor.predict_memory`` less the weights: the input, the live activations and each
kernel's workspace) and tracemalloc's peak (plus the caller's input, which is not traced).

OpenBLAS: ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` are unset for this command (the
script re-executes itself once and says so), as in bench/engine.py.
"""
from __future__ import annotations

import os
import sys

_PINNED = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
if any(name in os.environ for name in _PINNED):   # before NumPy loads OpenBLAS
    env = {k: v for k, v in os.environ.items() if k not in _PINNED}
    env["ARCHSTAT_BENCH_UNPINNED"] = " ".join(f"{k}={os.environ[k]}" for k in _PINNED if k in os.environ)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import archstat  # noqa: E402
from archstat.engine import memory  # noqa: E402
from engine import PAUSE, _busy_seconds, blas_line, others_share  # noqa: E402

SIZE = {"inception_v3": 299}


def torch_model(name: str):
    import torch
    import torchvision

    torch.manual_seed(0)
    kwargs = {"aux_logits": False, "init_weights": False} if name in ("inception_v3", "googlenet") else {}
    net = torchvision.models.get_model(name, weights=None, **kwargs).eval()
    if name.startswith(("densenet", "efficientnet", "mobilenet", "resnet", "regnet")):
        with torch.no_grad():   # running statistics away from (0, 1), so batch norm does work
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
    return net


def paired(fns: dict, rounds: int) -> dict:
    """Wall times per round: the calls in the given order, then reversed, round by round (so each
    takes turns at going first), with a pause before each (torch's OpenMP threads spin after a
    call). Unlike bench/engine.py's ``timed_rounds`` (torch always last) and bench/pool_act.py's
    ``paired`` (small kernels, torch woken by an untimed call), a whole network is long enough
    that waking threads does not matter, and order does."""
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    keys = list(fns)
    for r in range(rounds):
        for k in (keys if r % 2 == 0 else keys[::-1]):
            time.sleep(PAUSE)
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
    return {k: np.array(v) for k, v in times.items()}


def bench_forward(name: str, batch: int, rounds: int, algorithm: str, ab: list[str]) -> dict:
    import torch

    net = torch_model(name)
    size = SIZE.get(name, 224)
    model = archstat.from_torch(net, (3, size, size))
    ex = archstat.Executor(model, algorithm=algorithm)
    chosen = ex.algorithms(batch)   # auto measures what the machine's cache does not know yet
    x = np.random.default_rng(1).standard_normal((batch, 3, size, size), dtype=np.float32)
    tx = torch.from_numpy(x)

    def run_torch():
        with torch.no_grad():
            return net(tx)

    diff = float(np.abs(ex.forward(x) - run_torch().numpy()).max())
    fns = {"engine": lambda: ex.forward(x), "torch": run_torch}
    if "threads" in ab:      # the same engine with every elementwise pass in one thread
        fns["engine, 1 thread"] = _one_thread(lambda: ex.forward(x))
    if "placement" in ab and ex.plan.placement:   # the same engine, concatenations copying
        plain = archstat.Executor(model, algorithm=algorithm, place=False)
        plain.algorithms(batch)
        fns["engine, concat copies"] = lambda: plain.forward(x)
    if "workspace" in ab:    # the same engine, every kernel on its default blocks
        free = archstat.Executor(model, algorithm=algorithm, workspace=None)
        free.algorithms(batch)
        fns["engine, workspace uncapped"] = lambda: free.forward(x)
    if "fold" in ab and ex.fold_pairs:   # the same engine, every batch norm on its own
        unfolded = archstat.Executor(model, algorithm=algorithm, fold=False)
        unfolded.algorithms(batch)
        fns["engine, batch norms unfolded"] = lambda: unfolded.forward(x)
    t = paired(fns, rounds)
    extra = {k: float(np.median(t[k] / t["engine"])) for k in t if k.startswith("engine,")}
    return {"model": name, "batch": batch, "engine_ms": t["engine"].min() / batch * 1e3,
            "torch_ms": t["torch"].min() / batch * 1e3,
            "ratio": float(np.median(t["engine"] / t["torch"])), "diff": diff,
            "algorithms": _tally(chosen), "ab": extra, "chosen": chosen}


def bench_train(name: str, batch: int, rounds: int, algorithm: str, ab: list[str]) -> dict:
    import torch

    net = torch_model(name)
    model = archstat.from_torch(net, (3, 224, 224))
    ex = archstat.Executor(model, algorithm=algorithm)
    ex.algorithms(batch, train=True)
    x = np.random.default_rng(1).standard_normal((batch, 3, 224, 224), dtype=np.float32)
    dy = np.random.default_rng(2).standard_normal((batch, 1000), dtype=np.float32)
    tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
    net.train()
    params = list(net.parameters())

    def run_engine():
        ex.forward(x, train=True)
        ex.backward(dy)

    def run_torch():
        for p in params:
            p.grad = None
        net(tx).backward(tdy)

    fns = {"engine": run_engine, "torch": run_torch}
    if "threads" in ab:
        fns["engine, 1 thread"] = _one_thread(run_engine)
    t = paired(fns, rounds)
    extra = {k: float(np.median(t[k] / t["engine"])) for k in t if k.startswith("engine,")}
    return {"model": name + " train", "batch": batch, "engine_ms": t["engine"].min() / batch * 1e3,
            "torch_ms": t["torch"].min() / batch * 1e3,
            "ratio": float(np.median(t["engine"] / t["torch"])), "diff": float("nan"), "algorithms": "",
            "ab": extra}


def _one_thread(fn):
    """``fn`` with every elementwise pass in the calling thread (:mod:`archstat.layers.threads`)."""
    from archstat.layers import threads

    def run():
        before = threads.cores()
        threads.set_cores(1)
        try:
            fn()
        finally:
            threads.set_cores(before)
    return run


def _tally(chosen: dict) -> str:
    counts: dict[str, int] = {}
    for v in chosen.values():
        counts[v] = counts.get(v, 0) + 1
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))


def _rss(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def peak_of(which: str, name: str, batch: int, algorithm: str) -> dict:
    """In this (fresh) process: the peak resident set of one forward above the set before it."""
    import torch

    net = torch_model(name)
    size = SIZE.get(name, 224)
    x = np.random.default_rng(1).standard_normal((batch, 3, size, size), dtype=np.float32)
    out = {}
    if which == "engine":
        model = archstat.from_torch(net, (3, size, size))
        ex = archstat.Executor(model, algorithm=algorithm)
        ex.algorithms(batch)
        del net
        totals = archstat.analyze(model, batch=batch).totals
        # the executor's prediction: input, activations and kernel workspace (weights apart)
        out["predicted"] = ex.predict_memory(batch) - totals["param_bytes"] - totals["buffer_bytes"]
        run = lambda: ex.forward(x)   # noqa: E731
    else:
        tx = torch.from_numpy(x)

        def run():
            with torch.no_grad():
                return net(tx)
    run()   # the first pass builds what later passes reuse (torch's primitives, the engine's caches)
    import gc
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")      # reset VmHWM to the current resident set
    before = _rss("VmRSS")
    run()
    out["peak_rss"] = _rss("VmHWM") - before
    if which == "engine":
        import tracemalloc
        tracemalloc.start()
        run()
        out["traced"] = tracemalloc.get_traced_memory()[1] + x.nbytes   # the input counts in the prediction
        tracemalloc.stop()
    return out


def bench_memory(name: str, batch: int, algorithm: str) -> dict:
    row = {"model": name, "batch": batch}
    for which in ("engine", "torch"):
        # every array over 64 kB mmapped and handed back when freed: the resident set follows
        # what is live (glibc would otherwise keep freed blocks, and the next pass reuse them unseen)
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
        res = subprocess.run([sys.executable, __file__, "--peak-of", which, name, str(batch), algorithm],
                             capture_output=True, text=True, check=True, env=env)
        for k, v in json.loads(res.stdout.strip().splitlines()[-1]).items():
            row[f"{which}_{k}"] = v
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=["vgg16", "resnet50", "mobilenet_v2", "densenet121",
                                                  "efficientnet_b0"])
    ap.add_argument("--batches", type=int, nargs="*", default=[1, 8], help="(none: only --train)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--algorithm", default="auto")
    ap.add_argument("--train", nargs="*", default=[], metavar="MODEL", help="also a training step at batch 8")
    ap.add_argument("--memory", action="store_true", help="also the peak memory of one forward (fresh processes)")
    ap.add_argument("--memory-only", action="store_true", help="only the peak memory (no timing)")
    ap.add_argument("--ab", nargs="*", default=[], choices=["threads", "placement", "workspace", "fold"],
                    help="also time the engine without one change, in the same rounds: elementwise passes "
                         "in one thread, concatenations copying their inputs, kernels' workspace uncapped, "
                         "or batch norms run on their own (not folded into the convolution before them)")
    ap.add_argument("--choices", action="store_true", help="print the algorithm of every layer that has a choice")
    ap.add_argument("--peak-of", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.peak_of:
        which, name, batch, algorithm = args.peak_of
        print(json.dumps(peak_of(which, name, int(batch), algorithm)))
        return 0
    import torch

    memory.keep_freed_memory()
    if os.environ.get("ARCHSTAT_BENCH_UNPINNED"):
        print(f"note: re-executed with {os.environ['ARCHSTAT_BENCH_UNPINNED']} unset (they pin OpenBLAS's kernel)")
    print(f"numpy {np.__version__}: {blas_line()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"engine algorithm {args.algorithm}")
    busy0, t0, start = _busy_seconds(), os.times(), time.perf_counter()
    own0 = t0.user + t0.system
    print("\n| model | batch | engine ms/image | torch ms/image | engine / torch | max abs diff | algorithms |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models if not args.memory_only else []:
        for batch in args.batches:
            r = bench_forward(name, batch, args.rounds, args.algorithm, args.ab)
            ab = "".join(f"; {k} {v:.2f}x the time" for k, v in r["ab"].items())
            print(f"| {r['model']} | {batch} | {r['engine_ms']:.1f} | {r['torch_ms']:.1f} | {r['ratio']:.2f} | "
                  f"{r['diff']:.1e} | {r['algorithms']}{ab} |", flush=True)
            if args.choices:
                print(f"|   | {name} batch {batch}: " + ", ".join(f"{k} {v}" for k, v in r["chosen"].items()) + " |")
    for name in args.train:
        r = bench_train(name, 8, args.rounds, args.algorithm, args.ab)
        ab = "".join(f"; {k} {v:.2f}x the time" for k, v in r["ab"].items())
        print(f"| {r['model']} | 8 | {r['engine_ms']:.1f} | {r['torch_ms']:.1f} | {r['ratio']:.2f} | | {ab[2:]} |",
              flush=True)
    if args.memory or args.memory_only:
        print("\n| model | batch | engine peak RSS MB | torch peak RSS MB | engine / torch | predicted MB | "
              "engine traced MB | traced / predicted |")
        print("|---|---|---|---|---|---|---|---|")
        for name in args.models:
            for batch in args.batches:
                r = bench_memory(name, batch, args.algorithm)
                mb = 2 ** 20
                print(f"| {name} | {batch} | {r['engine_peak_rss'] / mb:.1f} | {r['torch_peak_rss'] / mb:.1f} | "
                      f"{r['engine_peak_rss'] / r['torch_peak_rss']:.2f} | {r['engine_predicted'] / mb:.1f} | "
                      f"{r['engine_traced'] / mb:.1f} | {r['engine_traced'] / r['engine_predicted']:.2f} |",
                      flush=True)
    t1 = os.times()   # the --memory processes are this run's own work
    share = others_share(busy0, own0 - (t1.children_user + t1.children_system - t0.children_user
                                        - t0.children_system), time.perf_counter() - start)
    if share is not None:
        print(f"\nother processes used {share:.0%} of the machine's CPU during the run"
              + (" (disturbed: compare ratios only)" if share > 0.05 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
