"""Published figures the tests compare against: the CSVs in ``tests/data`` (copied, with their
``# source:`` lines, from the team's reference folder so that a clone runs every test)."""
from __future__ import annotations

import csv
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def reference(csv_name: str) -> list[dict[str, str]]:
    """Rows of ``tests/data/<csv_name>`` (``#`` lines are comments)."""
    with (DATA / csv_name).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))
