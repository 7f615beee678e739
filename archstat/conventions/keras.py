"""Keras ``model.count_params()``: every weight, trainable or not.

Keras keeps batch norm's moving mean and variance as (non-trainable) weights of the layer, so
its parameter count is PyTorch's parameters plus the running statistics, which PyTorch keeps
as buffers (keras/src/layers/normalization/batch_normalization.py, ``build``: gamma, beta,
moving_mean, moving_variance). archstat keeps them apart: params and buffers.
"""
from __future__ import annotations

from .base import Convention, LayerView, rule


@rule("keras/src/layers/normalization/batch_normalization.py (build)")
def weights(v: LayerView) -> int:
    """every weight the layer holds, trainable or not: its parameters and buffers (a batch norm's
    gamma, beta, moving mean and moving variance: 4 x C)"""
    return v.own_state()


CONVENTIONS = (
    Convention(
        name="keras", tool="Keras", version="2 and 3", entry="model.count_params()", unit="params",
        reason="+ batch norm's running mean and variance (2 x C per norm)",
        rules={}, default=weights, kind="params"),
)
