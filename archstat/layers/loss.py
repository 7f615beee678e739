"""Loss kernels for training through the engine (not layer types: a spec has no loss).

:func:`softmax_cross_entropy` is torch.nn.functional.cross_entropy with the default
``reduction='mean'``, fused with its gradient.
"""
from __future__ import annotations

import numpy as np

from ..errors import ArchstatError
from .registry import kernel



@kernel
def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy over the batch, and its gradient with respect to the logits.

    ``loss = -1/N sum_n log softmax(logits_n)[labels_n]``, computed with log-sum-exp on the
    max-shifted logits so it neither overflows nor takes log(0). The gradient is
    ``(softmax(logits) - onehot(labels)) / N``.

    Parameters
    ----------
    logits : (N, C) float32 or float64 array of class scores (no softmax applied).
    labels : (N,) integer class indices in [0, C).

    Returns
    -------
    (loss, dlogits) : a Python float, and an array of the logits' shape and dtype.

    Raises
    ------
    ArchstatError
        When the shapes do not match or a label is out of range.
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2:
        raise ArchstatError(f"cross-entropy expects logits of shape (N, C), got {logits.shape}",
                            field="logits", hint="flatten the output first")
    n, classes = logits.shape
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ArchstatError(f"expected {n} integer labels (shape ({n},)), got {labels.dtype} "
                            f"labels of shape {labels.shape}", field="labels")
    if n and (labels.min() < 0 or labels.max() >= classes):
        raise ArchstatError(f"labels must lie in [0, {classes}), got values from {labels.min()} "
                            f"to {labels.max()}", field="labels")
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, labels]))
    dlogits = exp / total
    dlogits[rows, labels] -= 1
    dlogits /= n
    return loss, dlogits
