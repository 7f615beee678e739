"""Benchmark of batch norm and depthwise 3x3 conv kernels (run by hand:
``python bench/norm_dw.py``).

float32, batch 1 and 8 (``--batches``), each next to PyTorch's CPU kernel for the same op when
torch imports. Batch norm on ResNet-50 shapes: inference forward (running statistics,
``F.batch_norm(training=False)``), training forward (batch statistics, running statistics
updated) and backward in training (``aten.native_batch_norm_backward``, what autograd runs,
given torch's saved mean and 1/std; the engine recomputes them from x). Depthwise 3x3 conv,
pad 1, on MobileNetV2 shapes at stride 1 and 2: forward (``F.conv2d(groups=C)``) and
backward (``aten.convolution_backward``, dx and dW). Timing as bench/pool_act.py: paired
rounds, medians, torch/engine ratios (> 1: the engine is faster). ``--only bn`` or
``--only dw`` runs one half.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from archstat import engine  # noqa: E402
from pool_act import kernel_bench  # noqa: E402

#: ResNet-50 batch norms: channels, H = W
BN_CASES = [("resnet50 bn 256x56", (256, 56)), ("resnet50 bn 512x28", (512, 28))]
#: MobileNetV2 depthwise 3x3 convs: channels, input H = W, stride
DW_CASES = [("mbv2 dw 32x112 s1", (32, 112, 1)), ("mbv2 dw 144x112 s2", (144, 112, 2)),
            ("mbv2 dw 144x56 s1", (144, 56, 1)), ("mbv2 dw 192x28 s1", (192, 28, 1)),
            ("mbv2 dw 192x56 s2", (192, 56, 2)), ("mbv2 dw 576x14 s1", (576, 14, 1)),
            ("mbv2 dw 576x28 s2", (576, 28, 2))]


def bn_ops(c, h, batch, torch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, c, h, h), dtype=np.float32)
    dy = rng.standard_normal(x.shape, dtype=np.float32)
    w, b = rng.standard_normal(c, dtype=np.float32), rng.standard_normal(c, dtype=np.float32)
    rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
    out = [("eval fwd", {"engine": lambda: engine.batch_norm2d(x, w, b, rm, rv, False)}),
           ("train fwd", {"engine": lambda: engine.batch_norm2d(x, w, b, rm, rv, True)}),
           ("train bwd", {"engine": lambda: engine.batch_norm2d_backward(dy, x, w, rm, rv, True)})]
    if torch is not None:
        F, aten = torch.nn.functional, torch.ops.aten
        tx, tdy, tw, tb = (torch.from_numpy(a) for a in (x, dy, w, b))
        trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
        _, smean, sinv = aten.native_batch_norm(tx, tw, tb, trm, trv, True, 0.1, 1e-5)
        out[0][1]["torch"] = lambda: F.batch_norm(tx, trm, trv, tw, tb, False)
        out[1][1]["torch"] = lambda: F.batch_norm(tx, trm, trv, tw, tb, True)
        out[2][1]["torch"] = lambda: aten.native_batch_norm_backward(
            tdy, tx, tw, trm, trv, smean, sinv, True, 1e-5, [True, True, True])
    return out


def dw_ops(c, h, s, batch, torch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, c, h, h), dtype=np.float32)
    w = rng.standard_normal((c, 1, 3, 3), dtype=np.float32)
    y = engine.conv2d(x, w, None, s, 1, 1, c)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    out = [("fwd", {"engine": lambda: engine.conv2d(x, w, None, s, 1, 1, c)}),
           ("bwd", {"engine": lambda: engine.conv2d_backward(dy, x, w, s, 1, 1, c)})]
    if torch is not None:
        F, aten = torch.nn.functional, torch.ops.aten
        tx, tw, tdy = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(dy)
        out[0][1]["torch"] = lambda: F.conv2d(tx, tw, None, s, 1, 1, c)
        out[1][1]["torch"] = lambda: aten.convolution_backward(
            tdy, tx, tw, None, [s, s], [1, 1], [1, 1], False, [0, 0], c, [True, True, False])
    return out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    only = None
    if "--only" in argv:
        i = argv.index("--only")
        only = argv[i + 1]
        del argv[i:i + 2]

    def rows(batch, torch):
        if only in (None, "bn"):
            for name, (c, h) in BN_CASES:
                for label, fns in bn_ops(c, h, batch, torch):
                    yield name, label, fns
        if only in (None, "dw"):
            for name, (c, h, s) in DW_CASES:
                for label, fns in dw_ops(c, h, s, batch, torch):
                    yield name, label, fns

    return kernel_bench(argv, __doc__.splitlines()[0], rows, 20, 10, keep_freed_memory=True)


if __name__ == "__main__":
    sys.exit(main())
