"""archstat.engine.memory: glibc told once to keep freed memory (no page faults per call)."""
import subprocess
import sys
import textwrap

import numpy as np

from archstat import engine
from archstat.engine import memory


def _run(code: str, **env) -> str:
    import os
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_idempotent_and_results_unchanged():
    first = memory.keep_freed_memory()
    assert memory.keep_freed_memory() is first
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y1 = engine.conv2d(x, w, None, 1, 1)
    big = [np.ones(2**22, np.float32) for _ in range(3)]   # 16 MiB each, freed below
    del big
    y2 = engine.conv2d(x, w, None, 1, 1)
    np.testing.assert_array_equal(y1, y2)


def test_the_library_never_applies_it_on_its_own_and_the_opt_out():
    code = """
        import numpy as np
        import archstat
        from archstat import engine
        from archstat.engine import memory
        engine.conv2d(np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32))
        archstat.run({"input": [1, 4, 4], "layers": [{"type": "relu"}]}, np.ones((1, 1, 4, 4)))
        print(memory.active)              # the kernels and the executor leave malloc alone
        print(memory.keep_freed_memory()) # an explicit opt-in
    """
    untouched, opted = _run(code).splitlines()
    assert untouched == "None"
    if sys.platform.startswith("linux"):
        assert opted in ("True", "False")
    assert _run(code, ARCHSTAT_KEEP_MEMORY="0").splitlines() == ["None", "False"]
