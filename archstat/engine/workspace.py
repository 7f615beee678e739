"""Workspace caps: how many bytes each kernel of an inference pass may allocate beyond its output.

Some kernels need work buffers (``LayerType.workspace_bytes``): im2col's columns, Winograd's
transformed tiles, a padded copy. Left to their default blocks (8 MiB aims, cache sized and
fast) they can set a pass's peak: on VGG-16 at batch 1 Winograd's buffers for conv2_2 (33 MB)
sit on 12 MB of live activations, where the activations alone peak at 24.5 MB. The executor
knows, from the liveness plan, what is live at every step and where the activations peak, so
it can tell each kernel how much room is left (:attr:`archstat.layers.registry.RunContext.workspace`),
as cuDNN's algorithm search is given a workspace limit; blocked kernels then take the largest
blocks that fit (:func:`archstat.layers.im2col.fit_block`).

Settings (``Executor(workspace=...)``):

- ``'auto'`` (the default): a step may use what keeps it under the activations' peak, and at
  least :data:`SHARE` of that peak. The pass then peaks at most ``(1 + SHARE)`` times its
  activations' peak (the analysis' ``peak_activation_bytes`` with the caller's input), unless
  a kernel's smallest block (one output row, one tile row) is larger than its cap; the
  prediction (``Executor.predict_memory``) counts each kernel's workspace at its cap, so it
  stays exact either way. Where a cap binds the kernel runs smaller blocks, which can cost
  time (bench/models.py measures it).
- ``None``: no caps; every kernel runs its default blocks.
- a number of bytes: the same cap for every kernel.

Caps apply at inference; a training pass runs the default blocks.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from ..errors import ArchstatError

#: under ``'auto'``, every step may use at least this share of the activations' peak as
#: workspace: the pass's peak stays within (1 + SHARE) of the activations' peak
SHARE = 0.10

SETTINGS = ("auto", None, "a number of bytes")


def check_setting(value: Any) -> str | int | None:
    """``'auto'``, None, or a positive int of bytes; ArchstatError naming the field otherwise."""
    if value is None or value == "auto":
        return value
    if isinstance(value, str) and value.strip().lower() in ("none", "unlimited"):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0 or value != int(value):
        raise ArchstatError(f"workspace must be 'auto', None or a whole number of bytes >= 0, got {value!r}",
                            field="workspace", hint="use 'auto' (the default), None for no cap, or e.g. 4_000_000")
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
