"""Share of whole-network time per layer type in the engine (run by hand:
``python bench/layer_share.py resnet50 mobilenet_v2 vgg16 --batch 8``).

One inference forward and one training step (forward with caches + backward) per zoo model,
float32, timed layer by layer with the executor's hooks (the time between consecutive hook
calls is the layer's kernel and the executor's own work around it); summed per layer type and
printed as milliseconds and percent of the pass. The median over ``--rounds`` passes (after
one warm-up). It says which kernels are worth speeding up for whole networks.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import archstat  # noqa: E402
from archstat.engine import Executor, memory  # noqa: E402


def _kind(layer):
    """The layer's type name; a grouped conv (depthwise in MobileNetV2) as ``conv2d groups>1``,
    which runs other kernels."""
    name = layer.type.name
    groups = layer.attrs.get("groups", 1) if name == "conv2d" else 1
    if groups > 1:
        return name + " groups>1"
    return name


def timed_pass(ex, x, train):
    """{type name: seconds} for one forward (and, in training, its backward)."""
    spent = defaultdict(float)
    types = {name: _kind(ex.model.layer(name)) for name in ex.model.order[1:]}
    last = [time.perf_counter()]

    def tick(direction):
        def hook(name, *_):
            now = time.perf_counter()
            if name in types:
                spent[(direction, types[name])] += now - last[0]
            last[0] = now
        return hook

    out = ex.forward(x, train=train, hook=tick("fwd"))
    if train:
        last[0] = time.perf_counter()
        dy = np.ones_like(out) / out.size
        ex.backward(dy, hook=tick("bwd"))
    return spent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    memory.keep_freed_memory()
    for name in args.models:
        model = archstat.load(name)
        ex = Executor(model)
        shape = (args.batch,) + tuple(model.input_shape)
        x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        for train in (False, True):
            timed_pass(ex, x, train)
            runs = [timed_pass(ex, x, train) for _ in range(args.rounds)]
            keys = sorted({k for r in runs for k in r})
            med = {k: float(np.median([r.get(k, 0.0) for r in runs])) for k in keys}
            total = sum(med.values())
            print(f"\n{name}, batch {args.batch}, {'training step' if train else 'inference forward'}: "
                  f"{total * 1e3:.0f} ms")
            for k in sorted(med, key=med.get, reverse=True):
                if med[k] / total >= 0.005:
                    print(f"  {k[0]} {k[1]:<22}{med[k] * 1e3:9.1f} ms {100 * med[k] / total:6.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
