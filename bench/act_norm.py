"""Benchmark of the hardswish, hardsigmoid, GELU, layer norm and layer scale kernels (run by
hand: ``python bench/act_norm.py``).

float32 on ConvNeXt-T's first stage (96 channels, 56 x 56) and MobileNetV3's first block
(16 channels, 112 x 112), forward and backward, each next to PyTorch's CPU kernel for the
same op when torch imports (forward: ``F.hardswish`` and friends, ``F.layer_norm`` over
channels-last, as torchvision's LayerNorm2d and ConvNeXt's block layer norm run; backward:
the ``aten.*_backward`` op autograd runs, ``aten.native_layer_norm_backward`` for the layer
norms). Also the erfc of the engine's exact GELU on the whole array at once against
cache-sized blocks (:data:`archstat.layers.special.BLOCK`), the measurement behind that
block size. Timing as bench/pool_act.py: paired rounds, medians, torch/engine ratios.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from archstat import engine  # noqa: E402
from archstat.layers import special  # noqa: E402
from pool_act import kernel_bench  # noqa: E402

CASES = [("convnext-t stage1", (96, 56)), ("mobilenetv3 block1", (16, 112))]


def ops(c, h, batch, torch):
    """(op label, {"engine": fn, "torch": fn}) for one shape."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, c, h, h), dtype=np.float32) * 3
    dy = rng.standard_normal(x.shape, dtype=np.float32)
    w, b = rng.standard_normal(c, dtype=np.float32), rng.standard_normal(c, dtype=np.float32)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    dy_nhwc = np.ascontiguousarray(dy.transpose(0, 2, 3, 1))
    scale = w.reshape(c, 1, 1)
    out = [
        ("hswish fwd", {"engine": lambda: engine.hardswish(x)}),
        ("hswish bwd", {"engine": lambda: engine.hardswish_backward(dy, x)}),
        ("hsigm fwd", {"engine": lambda: engine.hardsigmoid(x)}),
        ("hsigm bwd", {"engine": lambda: engine.hardsigmoid_backward(dy, x)}),
        ("gelu fwd", {"engine": lambda: engine.gelu(x)}),
        ("gelu bwd", {"engine": lambda: engine.gelu_backward(dy, x)}),
        ("gelu-t fwd", {"engine": lambda: engine.gelu(x, "tanh")}),
        ("gelu-t bwd", {"engine": lambda: engine.gelu_backward(dy, x, "tanh")}),
        ("ln2d fwd", {"engine": lambda: engine.layer_norm2d(x, w, b, 1e-6)}),
        ("ln2d bwd", {"engine": lambda: engine.layer_norm2d_backward(dy, x, w, 1e-6)}),
        ("ln-C fwd", {"engine": lambda: engine.layer_norm(nhwc, c, w, b, 1e-6)}),
        ("ln-C bwd", {"engine": lambda: engine.layer_norm_backward(dy_nhwc, nhwc, c, w, 1e-6)}),
        ("scale fwd", {"engine": lambda: engine.layer_scale(x, scale)}),
        ("scale bwd", {"engine": lambda: engine.layer_scale_backward(dy, x, scale)}),
        ("erfc whole", {"engine": lambda: special._erfc_flat(x.reshape(-1))}),
        ("erfc block", {"engine": lambda: special.erfc(x)}),
    ]
    if torch is not None:
        F, aten = torch.nn.functional, torch.ops.aten
        tx, tdy, tw, tb = (torch.from_numpy(a) for a in (x, dy, w, b))
        tn, tdn = torch.from_numpy(nhwc), torch.from_numpy(dy_nhwc)
        _, mean, rstd = aten.native_layer_norm(tn, [c], tw, tb, 1e-6)
        tnchw = tx.permute(0, 2, 3, 1)
        theirs = {
            "hswish fwd": lambda: F.hardswish(tx), "hswish bwd": lambda: aten.hardswish_backward(tdy, tx),
            "hsigm fwd": lambda: F.hardsigmoid(tx), "hsigm bwd": lambda: aten.hardsigmoid_backward(tdy, tx),
            "gelu fwd": lambda: F.gelu(tx), "gelu bwd": lambda: aten.gelu_backward(tdy, tx),
            "gelu-t fwd": lambda: F.gelu(tx, approximate="tanh"),
            "gelu-t bwd": lambda: aten.gelu_backward(tdy, tx, approximate="tanh"),
            # torchvision's LayerNorm2d: layer_norm on the permuted view (torch copies it)
            "ln2d fwd": lambda: F.layer_norm(tnchw, (c,), tw, tb, 1e-6).permute(0, 3, 1, 2),
            "ln-C fwd": lambda: F.layer_norm(tn, (c,), tw, tb, 1e-6),
            "ln-C bwd": lambda: aten.native_layer_norm_backward(tdn, tn, [c], mean, rstd, tw, tb,
                                                                [True, True, True]),
            "scale fwd": lambda: torch.from_numpy(scale) * tx,
        }
        for label, fns in out:
            if label in theirs:
                fns["torch"] = theirs[label]
    return out


def main(argv=None) -> int:
    def rows(batch, torch):
        for name, (c, h) in CASES:
            for label, fns in ops(c, h, batch, torch):
                yield name, label, fns

    return kernel_bench(argv, __doc__.splitlines()[0], rows, 20, 11)


if __name__ == "__main__":
    sys.exit(main())
