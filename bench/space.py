"""Benchmark of design-space sweeps (run by hand: ``python bench/space.py [N]``).

On the RegNet space (specs/regnet.yaml's ``space:``, seven dimensions), a seeded sample of N
configurations (default 600) analysed:

1. in this process (one core): configurations analysed per second per core, and the time a
   million would take on this machine's cores at that rate;
2. by 2 local worker processes (``workers=2``): the speed-up over one (target >= 1.7x);
3. by a Dask cluster of a scheduler and 2 worker processes on this machine (``LocalCluster``,
   one thread each), through the scheduler's address as ``--scheduler`` uses it: the same rows
   as the local run (skipped when dask.distributed is not installed).

The three runs must give identical rows (same seed, same rows, same order). Each timing includes
starting the workers. The load average before and after says whether other work shared the cores.

``--long M`` then runs M configurations (seed 1) with 2 local workers, as a long sweep runs: the
workers' memo of block instances (archstat.spec_replay) warm, the time a million takes at that
rate. ``python bench/space.py 600 --long 100000`` takes about five minutes.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from archstat.space import sample  # noqa: E402
from archstat.space.load import load_space  # noqa: E402


def timed(**kw):
    start = time.perf_counter()
    cpu = time.process_time()
    rows = sample(SPACE, n=N, seed=0, **kw)
    rows.attrs["cpu_seconds"] = time.process_time() - cpu
    return rows, time.perf_counter() - start


if __name__ == "__main__":
    LONG = int(sys.argv[sys.argv.index("--long") + 1]) if "--long" in sys.argv else 0
    if LONG:
        i = sys.argv.index("--long")
        del sys.argv[i:i + 2]
    N = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    SPACE = load_space("regnet")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"RegNet space ({', '.join(SPACE.names)}), {N} sampled configurations, {cores} cores")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    sample(SPACE, n=20, seed=1)   # imports and caches warm, outside the timings
    one, t1 = timed(workers=1)
    rate = N / t1
    print(f"1 process:          {t1:6.1f} s  {rate:6.1f} configurations/s per core "
          f"({one.attrs['errors']} invalid)")
    print(f"  {N / one.attrs['cpu_seconds']:.1f} configurations per CPU-second (what other work on the machine "
          "does not change)")
    print(f"  a million at this rate on {cores} cores: {1e6 / (rate * cores) / 3600:.2f} h")
    two, t2 = timed(workers=2)
    print(f"2 local processes:  {t2:6.1f} s  {N / t2:6.1f} configurations/s   speed-up {t1 / t2:.2f}x "
          f"(target >= 1.7x)")
    pd.testing.assert_frame_equal(one, two)
    print("  rows identical to the 1-process run")
    try:
        import distributed
    except ImportError:
        print("Dask: skipped (pip install 'archstat[dask]')")
    else:
        # the cluster's worker processes import archstat from this checkout
        os.environ["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                    os.environ.get("PYTHONPATH", "")])
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster:
            address = cluster.scheduler_address
            sample(SPACE, n=20, seed=1, scheduler=address)   # the workers import archstat first, untimed
            start = time.perf_counter()
            remote = sample(SPACE, n=N, seed=0, scheduler=address)
            t3 = time.perf_counter() - start
        pd.testing.assert_frame_equal(one, remote)
        print(f"Dask, 2 workers:    {t3:6.1f} s  {N / t3:6.1f} configurations/s   ({address})")
        print("  rows identical to the local run")
    if LONG:
        start = time.perf_counter()
        rows = sample(SPACE, n=LONG, seed=1, workers=2)
        t4 = time.perf_counter() - start
        print(f"long sweep, 2 local processes: {LONG:,} configurations in {t4:.1f} s, {LONG / t4:.1f}/s "
              f"({rows.attrs['errors']} invalid): a million in {1e6 / (LONG / t4) / 60:.1f} min")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
