"""The one home for writing an output file (every command's ``-o``, ``--plot``, reports, caches).

What happens to the target, by what it is:

- a **regular file**, or a name that does not exist yet: the data goes to a uniquely named
  temporary file in the same folder (``.NAME.XXXXXXXX.tmp``), which then replaces the target in
  one ``os.replace``. Readers see the old file or the new one, never half of one; concurrent
  writers each succeed and the last complete file wins. An existing file keeps its permission
  bits (and, where allowed, its owner); a new one gets the usual ``0o666`` less the umask.
- a **symbolic link** is followed (through every link) and its final target written as above;
  the link stays a link.
- a **device, FIFO or socket**, and ``-`` (standard output), is written in place: nothing is
  created, moved or deleted beside it.
- a **folder**, a **read-only file** (no write bit, whoever runs), or a folder where the
  temporary file cannot be created: :class:`ArchstatError` naming the path and ``field``,
  before anything changes. Missing parent folders are created.

Nothing else is ever created, moved or deleted: the temporary file is removed when writing fails.

A file that grows (a sweep's checkpoint) is extended with :func:`append_at`: it cuts the file
back to the end of the last complete append and writes there, so an append torn by a crash or
Ctrl-C is overwritten by the next one.
"""
from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import ArchstatError

__all__ = ["write_file", "write_with", "append_at", "STDOUT"]

#: the path that means standard output
STDOUT = "-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_file(path: str | os.PathLike, data: str | bytes, *, field: str = "--output") -> Path:
    """Write ``data`` (text is UTF-8) to ``path`` as the module docstring says; returns the path."""
    payload = _bytes(data)
    return write_with(path, lambda f: f.write(payload), field=field)


def _bytes(data: str | bytes) -> bytes:
    return data.encode("utf-8", errors="backslashreplace") if isinstance(data, str) else bytes(data)


def append_at(path: str | os.PathLike, offset: int, data: str | bytes, *, field: str = "--output") -> int:
    """Write ``data`` (text is UTF-8) into the existing file ``path`` at byte ``offset``, cutting off
    whatever followed it, and flush it to the disk; returns the new end offset. Pass the offset
    this function returned last time: bytes of an append that did not finish are replaced."""
    payload = _bytes(data)
    try:
        with open(path, "r+b") as f:
            f.seek(offset)
            f.truncate()
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise _error(Path(path), field, exc) from None
    return offset + len(payload)


def write_with(path: str | os.PathLike, writer: Callable[[BinaryIO], object], *,
               field: str = "--output") -> Path:
    """Call ``writer(binary_file)`` to fill ``path`` (e.g. ``lambda f: fig.savefig(f, format="png")``),
    replacing or writing the target as the module docstring says; returns the path given."""
    given = Path(path)
    if str(path) == STDOUT:
        sys.stdout.flush()  # what was printed before comes first
        try:
            writer(sys.stdout.buffer)
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise ArchstatError(f"cannot write to standard output ({exc.strerror or exc})",
                                field=field) from None
        return given
    try:
        target = _resolve(given, field)
        st = target.stat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _error(given, field, exc) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise ArchstatError("is a folder, not a file", file=str(given), field=field,
                            hint="give a file name inside it")
    if st is not None and not stat.S_ISREG(st.st_mode):
        _write_in_place(given, target, writer, field)
    else:
        _replace(given, target, st, writer, field)
    return given


def _resolve(given: Path, field: str) -> Path:
    """The file a path finally names: symbolic links followed, missing folders created."""
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    for parent in reversed(target.parents):
        if parent.exists() and not parent.is_dir():
            raise ArchstatError(f"{parent} is a file, not a folder", file=str(given), field=field,
                                hint="choose another path")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchstatError(f"cannot create the folder {target.parent} ({exc.strerror or exc})",
                            file=str(given), field=field, hint="choose a folder you can write in") from None
    return target


def _write_in_place(given: Path, target: Path, writer, field: str) -> None:
    try:
        with open(target, "wb") as f:
            writer(f)
    except OSError as exc:
        raise _error(given, field, exc) from None


def _replace(given: Path, target: Path, st: os.stat_result | None, writer, field: str) -> None:
    if st is not None and not st.st_mode & 0o222:
        raise ArchstatError("the file is read-only", file=str(given), field=field,
                            hint="make it writable (chmod u+w) or choose another name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise ArchstatError(f"cannot write in the folder {target.parent} ({exc.strerror or exc})",
                            file=str(given), field=field, hint="choose a folder you can write in") from None
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
        if st is None:
            os.chmod(tmp, 0o666 & ~_umask())
        else:
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            if hasattr(os, "chown") and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                try:
                    os.chown(tmp, st.st_uid, st.st_gid)
                except OSError:
                    pass  # not allowed to give it away: the new file is the writer's
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _error(given, field, exc) from None
        raise


def _error(given: Path, field: str, exc: OSError) -> ArchstatError:
    return ArchstatError(f"cannot write the file ({exc.strerror or exc})", file=str(given), field=field,
                         hint="check the path and that the disk has room")
