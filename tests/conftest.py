"""Shared fixtures: write a spec to a temporary folder, run the CLI in-process or for real."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # plain `pytest` on a checkout that is not pip-installed
    sys.path.insert(0, str(REPO))


@pytest.fixture
def write_spec(tmp_path):
    """``write_spec(spec, name="model.yaml") -> Path``: a dict is dumped as YAML (or JSON for
    a ``.json`` name), a str is written verbatim."""

    def write(spec, name: str = "model.yaml") -> Path:
        path = tmp_path / name
        if isinstance(spec, str):
            path.write_text(spec, encoding="utf-8")
        elif name.endswith(".json"):
            import json
            path.write_text(json.dumps(spec), encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture
def cli(capsys):
    """``cli(*args) -> (exit_code, stdout, stderr)`` through ``archstat.cli.main``."""
    from archstat.cli import main

    def run(*args) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return int(code), out, err

    return run


@pytest.fixture
def archstat_proc(tmp_path):
    """``archstat_proc(*args) -> CompletedProcess``: a real ``python -m archstat`` run in tmp_path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))

    def run(*args, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "archstat", *map(str, args)], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=timeout)

    return run
