"""The notes of an ONNX import: what the import did that a reader of the numbers should know,
one sentence each (``Imported.notes``, joined into the spec's ``notes``)."""
from __future__ import annotations

from collections import Counter

import numpy as np

from .onnx_walk import Walk

#: how the TorchScript exporter names the tensors it computes while folding (batch norm
#: folded into a convolution gives a new weight called like this)
_FOLDED_PREFIX = "onnx::Conv"


def compose_notes(walk: Walk) -> list[str]:
    """Every note, in a fixed order."""
    notes = [_batch_norm_folded(walk), _shared(walk), _folded(walk), _dropped(walk), _affine(walk),
             _dead(walk), _uncounted(walk), *walk.remarks]
    if walk.counters["scaled"]:
        notes.append("Gemm's alpha is multiplied into the linear layers' weights.")
    return [n for n in notes if n]


def counted(counter: Counter) -> str:
    """``Identity x16, Cast``: ops and how many, most frequent first."""
    return ", ".join(f"{op} x{n}" if n > 1 else op for op, n in counter.most_common())


def _batch_norm_folded(walk: Walk) -> str:
    types = Counter(layer["type"] for layer in walk.layers)
    convs = [layer for layer in walk.layers if layer["type"] == "conv2d"]
    computed = [layer["name"] for layer in convs if layer.get("bias", True)
                and walk.origins.get(layer["name"], {}).get("weight", "").startswith(_FOLDED_PREFIX)]
    if computed:
        return (f"The exporter folded batch norm into {len(computed)} of the {len(convs)} convolutions (an "
                f"eval-mode export: their weights are tensors it computed, named like "
                f"'{walk.origins[computed[0]]['weight']}', each with a bias), so params count the folded weights "
                "and biases, not batch norm's own parameters and running statistics.")
    normalised = types["batch_norm2d"] or types["layer_norm"] or types["layer_norm2d"]
    if not convs or normalised or not all(layer.get("bias", True) for layer in convs):
        return ""
    return ("No batch norm in the file and every convolution has a bias: if the model had batch norm, the "
            "exporter folded it into the convolutions' weights and biases (an eval-mode export), so params "
            "count the folded tensors.")


def _shared(walk: Walk) -> str:
    notes = []
    if walk.tied:
        uses = [user for users in walk.tied.values() for user in users]
        root, users = max(walk.tied.items(), key=lambda kv: len(kv[1]))
        saved = sum(int(np.size(walk.consts.get(r, ()))) * len(users) for r, users in walk.tied.items())
        notes.append(f"{len(walk.tied)} tensors of the file are read by more than one layer and count once, at "
                     f"their first reader; {len(uses)} later reads share them (e.g. '{root}' by "
                     f"{', '.join(users[:2])}{', ...' if len(users) > 2 else ''}), {saved:,} values that a count "
                     "per layer would add. Exporters store equal tensors once (the zero biases of untrained "
                     "weights, say), and a module called twice reads its weights twice.")
    shared = {root: users for root, users in walk.uses.items() if len(users) > 1}
    if shared:
        extra = sum((len(users) - 1) * int(np.size(walk.consts.get(root, ()))) for root, users in shared.items())
        root, users = max(shared.items(), key=lambda kv: len(kv[1]))
        notes.append(f"{len(shared)} tensors of the file are read by more than one layer in different layouts (e.g. "
                     f"'{root}' by {', '.join(users[:3])}{', ...' if len(users) > 3 else ''}): params count each "
                     f"use, {extra:,} more values than the file stores.")
    return " ".join(notes)


def _folded(walk: Walk) -> str:
    folded = walk.counters["folded"]
    if not folded:
        return ""
    return (f"Folded {sum(folded.values())} constant nodes ({counted(folded)}) into constants; the layers' "
            "parameters count what they produce.")


def _dropped(walk: Walk) -> str:
    dropped = walk.counters["dropped"]
    if not dropped:
        return ""
    return f"Dropped {sum(dropped.values())} nodes that change nothing ({counted(dropped)})."


def _affine(walk: Walk) -> str:
    affine = walk.counters["affine"]
    if not affine:
        return ""
    return (f"{len(affine)} chains of Mul/Add by per-channel constants (batch norm folded to a scale and a "
            "shift) are batch_norm2d layers with running_mean 0, running_var 1 and eps 0: the scale and shift "
            "are their weight and bias; their running statistics (2 C buffers each) are not in the file.")


def _dead(walk: Walk) -> str:
    dead = walk.g.dead_ops()
    if not dead:
        return ""
    return f"Left out {sum(dead.values())} nodes that no output depends on ({counted(dead)})."


def _uncounted(walk: Walk) -> str:
    if not walk.uncounted:
        return ""
    listed = ", ".join(f"{u['name']} ({u['op']})" for u in walk.uncounted[:5])
    more = ", ..." if len(walk.uncounted) > 5 else ""
    return (f"{len(walk.uncounted)} {'layer is' if len(walk.uncounted) == 1 else 'layers are'} not counted: archstat has no type for their ONNX ops and "
            f"passes them through as opaque layers with ONNX's inferred shapes: {listed}{more}.")
