"""One helper for the PyTorch cross-checks of single kernels (as tinygrad's test_ops has one):
run an op both ways on the same inputs, forward and backward. Imported by the test_torch_*
modules after their ``pytest.importorskip("torch")``."""
from __future__ import annotations

import numpy as np
import torch


def to_torch(a, grad: bool = False):
    return torch.tensor(np.asarray(a), requires_grad=grad)


def check(np_forward, np_backward, torch_forward, inputs, seed, rtol=1e-10, atol=1e-12, dy=None):
    """Run one op both ways on ``inputs`` (arrays, or None for absent ones).

    ``np_backward(dy, y)`` returns the gradients of the inputs in order, compared with
    autograd's where the input exists, for the same upstream gradient: ``dy``, or seeded random
    numbers in ``y``'s dtype. Returns ``(y, torch_y, grads, torch_grads)`` for more checks.
    """
    y = np_forward(*inputs)
    ts = [None if a is None else to_torch(a, grad=True) for a in inputs]
    ty = torch_forward(*ts)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=rtol, atol=atol)
    if dy is None:
        dy = np.random.default_rng([seed, 99]).standard_normal(y.shape).astype(y.dtype)
    ty.backward(to_torch(dy))
    grads = np_backward(dy, y)
    for i, (g, t) in enumerate(zip(grads, ts)):
        if t is not None:
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"input {i}")
    return y, ty.detach().numpy(), grads, [None if t is None else t.grad.numpy() for t in ts]
