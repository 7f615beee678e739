"""Workspace caps: how many bytes each convolution of an inference pass may allocate beyond its output.

Some kernels need work buffers (``LayerType.workspace_bytes``): im2col's columns, Winograd's
transformed tiles, a padded copy. Left to their default blocks (8 MiB aims, cache sized and
fast) they can set a pass's peak: on VGG-16 at batch 1 Winograd's buffers for conv2_2 (33 MB)
sit on 12 MB of live activations, where the activations alone peak at 24.5 MB. The executor
knows, from the liveness plan, what is live at every step and where the activations peak, so
it can tell each kernel how much room is left (:attr:`archstat.layers.registry.RunContext.workspace`),
as cuDNN's algorithm search is given a workspace limit. The convolution takes the largest
blocks that fit (:func:`archstat.layers.conv._blocking_for`), and ``auto`` measures its
algorithms under that cap.

Settings (``Executor(workspace=...)``):

- ``'auto'`` (the default): a step may use what keeps it under the activations' peak, and at
  least :data:`SHARE` of that peak. Where the convolutions' buffers set the peak, the pass
  then peaks within ``(1 + SHARE)`` times its activations' (the analysis'
  ``peak_activation_bytes`` with the caller's input), unless a convolution's smallest blocks
  (one output row, one row of Winograd tiles) are larger than its cap. Kernels with fixed,
  cache-sized blocks (the pools, batch norm, the direct depthwise convolution, the
  activations' blocks) are not capped: their workspace is counted, not shrunk. The
  prediction (``Executor.predict_memory``) counts every kernel's workspace at its cap, so it
  stays exact either way. Where a cap binds the kernel runs smaller blocks, which can cost
  time (``bench/models.py --ab workspace`` measures it).
- ``None``: no caps; every kernel runs its default blocks.
- a number of bytes (0 included: the smallest blocks): the same cap for every convolution.

Caps apply at inference; a training pass runs the default blocks.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Mapping

import numpy as np

from ..errors import ArchstatError

#: under ``'auto'``, every step may use at least this share of the activations' peak as
#: workspace: where capped kernels set the pass's peak, it stays within (1 + SHARE) of the
#: activations' peak
SHARE = 0.10


def check_setting(value: Any, field: str = "workspace") -> str | int | None:
    """``'auto'``, None (also ``'none'``), or a whole number of bytes >= 0 (0: every kernel on
    its smallest blocks); ArchstatError naming ``field`` otherwise."""
    if isinstance(value, str) and value.strip().lower() in ("auto", "none", "unlimited"):
        return "auto" if value.strip().lower() == "auto" else None
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value < 0 or value != int(value):
        raise ArchstatError(f"{field} must be 'auto', None or a whole number of bytes >= 0, got {value!r}",
                            field=field, hint="use 'auto' (the default), None for no cap, or e.g. 4_000_000")
    return int(value)


def caps(setting: str | int | None, live: Mapping[str, int]) -> dict[str, int]:
    """``{step: cap in bytes}`` for the steps of a pass, given the bytes ``live`` at each step
    besides its workspace (empty for no caps, ``setting`` None)."""
    if setting is None or not live:
        return {}
    if setting != "auto":
        return dict.fromkeys(live, setting)
    peak = max(live.values())
    floor = math.ceil(SHARE * peak)
    return {name: max(peak - held, floor) for name, held in live.items()}
