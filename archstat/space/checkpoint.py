"""Checkpoints of a long sweep: the rows done so far, so that ``--resume`` finishes a run
without computing them again.

A checkpoint is a CSV file whose first line is ``# archstat space checkpoint <JSON>``: the
run's signature (the spec's SHA-256, base arguments, dimensions, grid or sample, n, seed,
levels, batch, dtype), so that a checkpoint is never resumed by a different run. It is written
through :func:`archstat.outfile.write_file` (replaced atomically: a crash leaves the previous
complete checkpoint), at most every :data:`MIN_INTERVAL` seconds and never taking more than a
tenth of the run's time, and once more when the run stops (finished, Ctrl-C, or an error).
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

from ..errors import ArchstatError

MAGIC = "# archstat space checkpoint "
VERSION = 1
#: seconds between two checkpoint writes, at least
MIN_INTERVAL = 10.0


def _header(signature: dict[str, Any]) -> str:
    return MAGIC + json.dumps({"version": VERSION, **signature}, sort_keys=True) + "\n"


def read(path: str | Path, signature: dict[str, Any], dtypes: dict[str, Any]):
    """The rows of a checkpoint written by the same run (a DataFrame), None when there is no
    file; ArchstatError when it belongs to another run or is not a checkpoint."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchstatError(f"cannot read the checkpoint ({exc})", file=str(path), field="--checkpoint") from None
    first, _, body = text.partition("\n")
    if not first.startswith(MAGIC):
        raise ArchstatError("this file is not an archstat space checkpoint", file=str(path), field="--checkpoint",
                            hint="name another --checkpoint file")
    try:
        header = json.loads(first[len(MAGIC):])
    except ValueError:
        raise ArchstatError("the checkpoint's header is damaged", file=str(path), field="--checkpoint") from None
    expected = json.loads(json.dumps({"version": VERSION, **signature}, sort_keys=True))
    if header != expected:
        differ = sorted(k for k in set(header) | set(expected) if header.get(k) != expected.get(k))
        raise ArchstatError(f"the checkpoint was written by another run (it differs in {', '.join(differ)})",
                            file=str(path), field="--resume",
                            hint="resume with the same spec and options, or remove the checkpoint to start again")
    if not body.strip():
        return pd.DataFrame({k: pd.Series(dtype=v) for k, v in dtypes.items()})
    try:
        frame = pd.read_csv(io.StringIO(body), dtype={k: v for k, v in dtypes.items() if v in ("str", object)},
                            keep_default_na=False, na_values={k: [""] for k, v in dtypes.items()
                                                              if v not in ("str", object)})
        for key, kind in dtypes.items():
            if key in frame and kind not in ("str", object):
                frame[key] = frame[key].astype(kind)
    except (ValueError, TypeError, pd.errors.ParserError) as exc:
        raise ArchstatError(f"the checkpoint's rows are damaged ({exc})", file=str(path), field="--checkpoint",
                            hint="remove it to start again") from None
    return frame


def write(path: str | Path, signature: dict[str, Any], frame) -> Path:
    """Replace the checkpoint with ``frame``'s rows (:func:`archstat.outfile.write_file`)."""
    from ..outfile import write_file
    return write_file(path, _header(signature) + frame.to_csv(index=False), field="--checkpoint")


class Throttle:
    """Says when the next checkpoint is due: every :data:`MIN_INTERVAL` seconds at least, and
    not more often than ten times the last write's duration (so writing costs under a tenth)."""

    def __init__(self, interval: float = MIN_INTERVAL):
        self.interval = interval
        self.last = time.monotonic()
        self.cost = 0.0

    def due(self) -> bool:
        return time.monotonic() - self.last >= max(self.interval, 10 * self.cost)

    def wrote(self, started: float) -> None:
        now = time.monotonic()
        self.cost = now - started
        self.last = now
