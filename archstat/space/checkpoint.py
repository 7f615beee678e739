"""Checkpoints of a long sweep: the rows done so far, so that ``--resume`` finishes a run
without computing them again.

A checkpoint is a CSV file whose first line is ``# archstat space checkpoint <JSON>``: the
run's signature (the spec's SHA-256, base arguments, dimensions, grid or sample, n, seed,
levels, batch, dtype), so that a checkpoint is never resumed by a different run. The column
names follow, then the rows in blocks, each block closed by a line ``# rows <total so far>``.

The file only grows: a save appends the new rows (:func:`archstat.outfile.append_at`, flushed to
the disk), so saving costs the new rows only, however long the run. A save is due at most every
:data:`MIN_INTERVAL` seconds and never takes more than a tenth of the run's time, and once more
when the run stops (finished, Ctrl-C, or an error). A block cut short by a crash has no closing
line: reading ignores it (those rows are computed again) and the next append overwrites it.
Version 1 checkpoints (rewritten whole at each save, no closing lines) are still read.
"""
from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any

from ..errors import ArchstatError

MAGIC = "# archstat space checkpoint "
VERSION = 2
#: the versions :func:`read` understands
READS = (1, 2)
#: seconds between two checkpoint saves, at least
MIN_INTERVAL = 10.0
_CLOSE = re.compile(r"^# rows (\d+)\n", re.MULTILINE)


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
    if isinstance(header, dict) and header.get("version") in READS:
        expected["version"] = header["version"]
    if header != expected:
        differ = sorted(k for k in set(header) | set(expected) if header.get(k) != expected.get(k))
        raise ArchstatError(f"the checkpoint was written by another run (it differs in {', '.join(differ)})",
                            file=str(path), field="--resume",
                            hint="resume with the same spec and options, or remove the checkpoint to start again")
    count = None
    if header["version"] >= 2:
        closes = list(_CLOSE.finditer(body))
        count = int(closes[-1].group(1)) if closes else 0
        body = _CLOSE.sub("", body[:closes[-1].end()] if closes else body.partition("\n")[0] + "\n")
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
    if list(frame.columns) != list(dtypes) or (count is not None and len(frame) != count):
        raise ArchstatError("the checkpoint's rows are damaged (their columns or count do not match)",
                            file=str(path), field="--checkpoint", hint="remove it to start again")
    # Ctrl-C between an append and its bookkeeping can save a block twice; a row is a function of its index
    return frame.drop_duplicates("index", keep="first", ignore_index=True)


class Writer:
    """Writes one run's checkpoint: :meth:`start` creates (or compacts) it, :meth:`append` adds rows."""

    def __init__(self, path: str | Path, signature: dict[str, Any]):
        self.path = path
        self.signature = signature
        self.count = 0
        self.offset = 0

    def start(self, frame) -> None:
        """Replace the file (atomically) with the header, ``frame``'s column names and its rows."""
        from ..outfile import write_file

        text = _header(self.signature) + frame.to_csv(index=False)
        self.count = len(frame)
        if self.count:
            text += f"# rows {self.count}\n"
        write_file(self.path, text, field="--checkpoint")
        self.offset = len(text.encode("utf-8", errors="backslashreplace"))

    def append(self, frame) -> None:
        """Add ``frame``'s rows (its columns in the order :meth:`start` wrote them)."""
        from ..outfile import append_at

        if len(frame):
            text = frame.to_csv(index=False, header=False) + f"# rows {self.count + len(frame)}\n"
            self.offset = append_at(self.path, self.offset, text, field="--checkpoint")
            self.count += len(frame)


class Throttle:
    """Says when the next checkpoint save is due: every :data:`MIN_INTERVAL` seconds at least, and
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
