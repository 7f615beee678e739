"""The published figures in ``shared/reference`` (beside the repository in CI and here).

Tests that compare against them skip cleanly when the folder is absent; the key numbers
are also written inline in the tests, so they are asserted either way.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def reference(csv_name: str) -> list[dict[str, str]]:
    """Rows of ``shared/reference/<csv_name>`` (``#`` lines are comments); skip if absent."""
    path = REFERENCE / csv_name
    if not path.is_file():
        pytest.skip(f"reference data not found: {path} (shared/ is not beside the repository)")
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))
