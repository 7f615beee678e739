"""Writing output files (archstat.outfile): what happens to each kind of target, and that every
command writes through it. The cases are the issue's: /dev/full, FIFOs, symlinks, read-only
files, a user's own ``NAME.tmp``, 16 concurrent writers, a failed write."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from archstat.errors import ArchstatError
from archstat.outfile import write_file, write_with

SPEC = "input: [3, 8, 8]\nlayers:\n  - {type: conv2d, out_channels: 4, kernel_size: 3}\n"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_new_file_gets_the_umask_mode_and_no_temporary_file_stays(tmp_path):
    old = os.umask(0o027)
    try:
        path = write_file(tmp_path / "sub" / "dir" / "a.md", "héllo\n")
    finally:
        os.umask(old)
    assert path.read_bytes() == "héllo\n".encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert leftovers(path.parent) == []


def test_existing_file_is_replaced_and_keeps_its_permissions(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old")
    path.chmod(0o604)
    inode = path.stat().st_ino
    write_file(path, b"new")
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o604
    assert path.stat().st_ino != inode  # replaced by rename: a reader never sees half a file


def test_users_own_tmp_file_is_left_alone(tmp_path):
    mine = tmp_path / "out.md.tmp"
    mine.write_text("the user's")
    write_file(tmp_path / "out.md", "report")
    assert mine.read_text() == "the user's" and (tmp_path / "out.md").read_text() == "report"
    assert leftovers(tmp_path) == ["out.md.tmp"]


def test_symlink_is_followed_and_kept(tmp_path):
    target = tmp_path / "real" / "r.md"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.md"
    link.symlink_to(target)
    chain = tmp_path / "chain.md"
    chain.symlink_to(link)
    write_file(chain, "new")
    assert chain.is_symlink() and link.is_symlink() and target.read_text() == "new"
    dangling = tmp_path / "dangling.md"
    dangling.symlink_to(tmp_path / "made.md")
    write_file(dangling, "made")
    assert dangling.is_symlink() and (tmp_path / "made.md").read_text() == "made"


def test_fifo_is_written_in_place(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(Path(fifo).read_bytes()))
    reader.start()
    write_file(fifo, "through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(fifo.stat().st_mode)
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_dev_full_is_a_clear_error_and_stays_a_device():
    with pytest.raises(ArchstatError, match="No space left") as err:
        write_file("/dev/full", "x" * 100_000)
    assert err.value.file == "/dev/full" and err.value.field == "--output"
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


@pytest.mark.skipif(not (os.path.exists("/dev/null") and stat.S_ISCHR(os.stat("/dev/null").st_mode)),
                    reason="/dev/null is not a device here")
def test_dev_null_is_written_in_place():
    write_file("/dev/null", "gone")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_read_only_file_is_an_error_whoever_runs(tmp_path):
    path = tmp_path / "ro.md"
    path.write_text("keep")
    path.chmod(0o444)
    with pytest.raises(ArchstatError, match="read-only") as err:
        write_file(path, "new", field="-o")
    assert err.value.field == "-o" and "chmod" in err.value.hint
    assert path.read_text() == "keep" and leftovers(tmp_path) == []


def test_folder_and_file_as_folder_are_errors(tmp_path):
    with pytest.raises(ArchstatError, match="is a folder, not a file"):
        write_file(tmp_path, "x")
    (tmp_path / "f").write_text("a file")
    with pytest.raises(ArchstatError, match="is a file, not a folder"):
        write_file(tmp_path / "f" / "x.md", "x")
    assert (tmp_path / "f").read_text() == "a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in any folder")
def test_unwritable_folder_is_an_error(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    (folder / "r.md").write_text("keep")
    folder.chmod(0o555)
    try:
        with pytest.raises(ArchstatError, match="cannot write in the folder"):
            write_file(folder / "r.md", "new")
    finally:
        folder.chmod(0o755)
    assert (folder / "r.md").read_text() == "keep"


def test_a_failed_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "plot.png"
    path.write_bytes(b"old picture")

    def broken(f):
        f.write(b"half")
        raise ValueError("drawing failed")

    with pytest.raises(ValueError):
        write_with(path, broken)
    assert path.read_bytes() == b"old picture" and leftovers(tmp_path) == []


def test_sixteen_concurrent_writers_all_succeed_and_one_complete_file_wins(tmp_path):
    target = tmp_path / "out.json"
    code = ("import sys; from archstat.outfile import write_file; "
            "write_file(sys.argv[1], sys.argv[2] * 200_000)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(target), chr(ord("a") + i)],
                              stderr=subprocess.PIPE) for i in range(16)]
    errors = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 16, errors
    text = target.read_text()
    assert len(text) == 200_000 and len(set(text)) == 1
    assert leftovers(tmp_path) == []


def test_dash_is_standard_output(write_spec, cli):
    code, out, err = cli("report", write_spec(SPEC), "--format", "json", "-o", "-")
    assert code == 0 and out.startswith("{") and "wrote" not in err


@pytest.mark.parametrize("argv", [
    ["report", "{spec}", "-o", "{out}.md"],
    ["compare", "{spec}", "{spec}", "-o", "{out}.csv"],
    ["graph", "{spec}", "-o", "{out}.svg"],
    ["import", "{spec}", "-o", "{out}.yaml"],
])
def test_every_command_follows_a_symlink_and_refuses_a_read_only_file(argv, write_spec, cli, tmp_path):
    spec = write_spec(SPEC)
    real = tmp_path / ("real" + Path(argv[-1]).suffix)
    real.write_text("old")
    link = tmp_path / ("link" + Path(argv[-1]).suffix)
    link.symlink_to(real)
    args = [a.format(spec=spec, out=tmp_path / "link") for a in argv]
    code, out, err = cli(*args)
    assert code == 0, err
    assert link.is_symlink() and real.read_text() != "old"
    real.chmod(0o444)
    before = real.read_text()
    code, out, err = cli(*args)
    assert code == 2 and "read-only" in err and err.count("\n") == 1
    assert real.read_text() == before and leftovers(tmp_path) == []


def test_graph_pdf_is_a_pdf_and_byte_stable(write_spec, cli, tmp_path):
    spec = write_spec(SPEC)
    for name in ("a.pdf", "b.pdf"):
        code, out, err = cli("graph", spec, "-o", tmp_path / name)
        assert code == 0, err
    a, b = (tmp_path / "a.pdf").read_bytes(), (tmp_path / "b.pdf").read_bytes()
    assert a.startswith(b"%PDF") and a == b
    assert b"CreationDate" not in a and b"Matplotlib" not in a
