"""The kernel contract, for every registered layer type: through the executor, forward and
backward keep the dtype (float32 and float64) and give the shapes the analysis predicts; a
kernel that breaks the contract is a clear error naming the layer, never an assert."""
from __future__ import annotations

import numpy as np
import pytest

import archstat
from archstat.engine.executor import Executor
from archstat.errors import ArchstatError
from archstat.layers import all_types
from archstat.layers.registry import REQUIRED

#: a value for each required field, by field name (small, valid on a 4x6x6 input)
FIELD_VALUES = {"out_channels": 3, "kernel_size": 3, "out_features": 5, "size": 3, "output_size": 2,
                "dims": [0, 2, 3, 1], "index": 1, "groups": 2, "p": 0.25}
#: what a type needs beyond that
EXTRA = {"split": {"chunks": 2}, "conv2d": {"padding": 1}, "linear": {"in_features": 6}}
#: the types that need two inputs
TWO_INPUTS = {"add", "mul", "concat"}
#: types without an engine kernel, and why
NOT_RUN = {"opaque": "an operation archstat counts but cannot run (imported, with a declared output shape)"}

TYPES = sorted(n for n, t in all_types().items() if t.min_inputs > 0 and n not in NOT_RUN)


def one_layer_spec(type_name: str) -> dict:
    t = all_types()[type_name]
    layer = {"type": type_name, "name": "under_test"}
    layer.update({f.name: FIELD_VALUES[f.name] for f in t.fields if f.default is REQUIRED})
    layer.update(EXTRA.get(type_name, {}))
    layers = [layer]
    if type_name in TWO_INPUTS:
        layers = [{"type": "relu", "name": "a"}, {"type": "sigmoid", "name": "b", "inputs": ["input"]},
                  {**layer, "inputs": ["a", "b"]}]
    return {"name": type_name, "input": [4, 6, 6], "layers": layers}


def test_every_type_is_covered():
    assert len(TYPES) >= 30 and all(f.name in FIELD_VALUES for n in TYPES for f in all_types()[n].fields
                                    if f.default is REQUIRED)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("type_name", TYPES)
def test_forward_and_backward_keep_dtype_and_shapes(type_name, dtype):
    model = archstat.load(one_layer_spec(type_name))
    shapes = model.shapes(2)
    ex = Executor(model, seed=0, dtype=dtype)
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 6)).astype(dtype)
    y = ex.forward(x, train=True)
    out = model.outputs[0]
    assert y.dtype == np.dtype(dtype) and y.shape == shapes[out]
    grads = ex.backward(np.ones_like(y))
    assert ex.input_grad.dtype == np.dtype(dtype) and ex.input_grad.shape == x.shape
    for layer, tensors in grads.items():
        for name, g in tensors.items():
            assert g.dtype == np.dtype(dtype) and g.shape == ex.params[layer][name].shape, (layer, name)


def test_a_kernel_returning_the_wrong_dtype_is_a_clear_error(monkeypatch):
    model = archstat.load(one_layer_spec("relu"))
    t = model.layer("under_test").type
    real = type(t).forward

    def float64_forward(self, xs, params, attrs, ctx):
        y, cache = real(self, xs, params, attrs, ctx)
        return y.astype(np.float64), cache

    monkeypatch.setattr(type(t), "forward", float64_forward)
    with pytest.raises(ArchstatError) as err:
        archstat.run(model, np.ones((1, 4, 6, 6), np.float32))
    text = str(err.value)
    assert "layer 'under_test'" in text and "forward kernel of relu returned shape (1, 4, 6, 6) float64" in text
    assert "expected shape (1, 4, 6, 6) float32" in text and "bug" in err.value.hint


def test_a_backward_kernel_returning_the_wrong_shape_is_a_clear_error(monkeypatch):
    model = archstat.load(one_layer_spec("relu"))
    t = model.layer("under_test").type
    real = type(t).backward

    def wrong_backward(self, dy, cache):
        dxs, dparams = real(self, dy, cache)
        return [dxs[0][:, :2]], dparams

    monkeypatch.setattr(type(t), "backward", wrong_backward)
    with pytest.raises(ArchstatError, match=r"backward kernel of relu returned shape \(1, 2, 6, 6\) float32 "
                                            r"as its gradient of input 'input'"):
        archstat.backward(model, np.ones((1, 4, 6, 6), np.float32), dy=np.ones((1, 4, 6, 6), np.float32))
