"""Elementwise passes shared out over threads (archstat.layers.threads): the same bits as one
thread, errors raised, parts that cover the range exactly."""
from __future__ import annotations

import numpy as np
import pytest

from archstat.layers import registry, threads
from archstat.layers.activation_kernels import relu, relu_backward
from archstat.layers.norm_kernels import batch_norm2d, batch_norm2d_backward


@pytest.fixture
def split_everything(monkeypatch):
    monkeypatch.setattr(threads, "MIN_BYTES", 0)
    yield
    threads.set_cores(None)


@pytest.mark.parametrize("total,cores", [(1, 2), (2, 2), (7, 2), (10, 3), (5, 8)])
def test_parts_cover_the_range_once(total, cores, split_everything):
    threads.set_cores(cores)
    parts = threads.parts(total, 1)
    assert len(parts) == min(total, cores)
    assert [i for p in parts for i in range(total)[p]] == list(range(total))


def test_an_error_in_any_part_is_raised_after_all_parts_finish(split_everything):
    threads.set_cores(2)
    done = []

    def fn(part):
        done.append(part.start)
        if part.start > 0:
            raise ValueError("second part")

    with pytest.raises(ValueError, match="second part"):
        threads.each(fn, 4, 1)
    assert sorted(done) == [0, 2]


@pytest.mark.parametrize("shape", [(1, 6, 5, 5), (4, 6, 5, 5), (3, 7)])
def test_threaded_kernels_give_the_same_bits_as_one_thread(shape, split_everything):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    c = shape[1]
    w, b = rng.standard_normal(c), rng.standard_normal(c)
    mean, var = rng.standard_normal(c), rng.random(c) + 0.5

    def run():
        return [relu(x), relu_backward(dy, x), batch_norm2d(x, w, b, mean, var, False),
                batch_norm2d(x, w, b, None, None, True), *batch_norm2d_backward(dy, x, w, None, None, True),
                *batch_norm2d_backward(dy, x, w, mean, var, False)]

    threads.set_cores(1)
    one = run()
    threads.set_cores(2)
    two = run()
    for a, b_ in zip(one, two):
        np.testing.assert_array_equal(a, b_)
    y = x.copy()
    assert relu(y, out=y) is y and (y == one[0]).all()      # in place, in parts
    strided = x.transpose(1, 0, *range(2, x.ndim))            # not contiguous: parts along axis 0
    np.testing.assert_array_equal(relu(strided), np.maximum(strided, 0))


@pytest.mark.parametrize("case", ["pairs", "planes", "taps", "nan"])
def test_threaded_max_pool_gives_the_same_bits_as_one_thread(case, split_everything, monkeypatch):
    from archstat.layers import pool_kernels as pk
    monkeypatch.setattr(pk, "BLOCK_BYTES", 8192)       # many blocks, to share out
    rng = np.random.default_rng(3)
    dtype = np.float64 if case == "taps" else np.float32
    x = rng.standard_normal((2, 5, 56, 56)).astype(dtype)
    x[:, :, ::7, ::5] = 0.5                              # ties inside windows
    if case == "nan":
        x[0, 1, 3, 4] = np.nan
    k, s, p = (3, 2, 1) if case == "planes" else (2, 2, 0)
    y = pk.max_pool2d(x, k, s, p)
    dy = rng.standard_normal(y.shape).astype(dtype)

    def run():
        return pk.max_pool2d(x, k, s, p), pk.max_pool2d_backward(dy, x, k, s, p), pk.avg_pool2d(x, k, s, p)

    threads.set_cores(1)
    one = run()
    threads.set_cores(2)
    for a, b in zip(one, run()):
        np.testing.assert_array_equal(a, b)


def test_one_core_unless_archstat_threads_says_otherwise(monkeypatch):
    monkeypatch.delenv("ARCHSTAT_THREADS", raising=False)
    threads.set_cores(None)
    assert threads.cores() == 1 and threads.parts(10, 1 << 30) == [slice(0, 10)]
    for given, want in [("2", min(2, threads.available())), ("0", 1), ("two", 1), ("999", threads.available())]:
        monkeypatch.setenv("ARCHSTAT_THREADS", given)
        threads.set_cores(None)
        assert threads.cores() == want, given
    monkeypatch.delenv("ARCHSTAT_THREADS")
    threads.set_cores(None)     # the default again for the tests that follow


@pytest.mark.parametrize("stride", [1, 2])
def test_threaded_depthwise_conv_gives_the_same_bits_as_one_thread(stride, monkeypatch, split_everything):
    from archstat.layers import conv_depthwise as dw
    from archstat.layers import im2col as win
    monkeypatch.setattr(dw, "PLANE_BLOCK_BYTES", 4096)      # many blocks, to share out
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 12, 17, 17)).astype(np.float32)
    w = rng.standard_normal((24, 1, 3, 3)).astype(np.float32)      # channel multiplier 2
    b = rng.standard_normal(24).astype(np.float32)
    geom = win.geometry(x.shape[2:], (3, 3), stride, 1, 1)
    threads.set_cores(1)
    one = dw.depthwise_forward(x, w, b, geom, "zeros")
    threads.set_cores(2)
    assert len(threads.parts(8, 1, compute=True)) == 2
    np.testing.assert_array_equal(dw.depthwise_forward(x, w, b, geom, "zeros"), one)


def test_compute_bound_kernels_use_every_core_by_default(monkeypatch):
    monkeypatch.delenv("ARCHSTAT_THREADS", raising=False)
    threads.set_cores(None)
    assert threads.cores() == 1 and threads.compute_cores() == threads.available()
    threads.set_cores(1)           # a caller's choice covers both
    assert threads.compute_cores() == 1
    threads.set_cores(None)


def test_each_part_gets_its_first_scratch_before_any_part_starts(split_everything):
    """The parts' first buffers are all made up front in the calling thread, so the peak
    (threads.scratch_bytes) does not depend on which thread starts first; a part makes new
    ones only for a smaller last block, after dropping its old ones."""
    import threading
    threads.set_cores(2)
    x = np.zeros((1, 10, 4, 4), np.float32)
    layout = registry.CacheBlocks.of(x.shape, 4, 256)                      # 4, 4 and 2 channels
    blocks = list(registry.cache_blocks(x.shape, 4, 256))
    assert blocks == [(slice(0, 1), slice(c, min(10, c + 4))) for c in range(0, 10, 4)]
    events = []
    lock = threading.Lock()

    def scratch(n, c):
        with lock:
            events.append(("scratch", c, threading.get_ident()))
        return np.empty((n, c))

    def step(block, bufs):
        with lock:
            events.append(("step", bufs.shape[1], threading.get_ident()))

    threads.each_block(step, x, blocks, 1, scratch)
    caller = threading.get_ident()
    assert events[:2] == [("scratch", 4, caller), ("scratch", 4, caller)]   # parts [0:1] and [1:3]
    later = [e[:2] for e in events[2:]]
    assert sorted(later) == [("scratch", 2), ("step", 2), ("step", 4), ("step", 4)]
    assert threads.scratch_bytes(x.shape, 4, layout, 1, lambda n, c: 100 * c) == 800
