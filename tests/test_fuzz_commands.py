"""Command fuzzing: every subcommand x every option x every kind of bad value, bad path and
bad spec file. Each run ends in exit 0 or exit 2 with exactly one line on stderr that starts
with ``archstat``; never a traceback, never another exit code, never a harmed file.

The subcommands and their options are read from the parser itself (a new option is fuzzed
without touching this file). Values that are valid but would run for hours (``--repeat
10**20``) are left out on purpose; everything else is tried.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from archstat.cli import build_parser

TINY = "input: [1, 8, 8]\nlayers:\n  - {type: conv2d, out_channels: 2, kernel_size: 3}\n  - {type: relu}\n"

#: numbers a user can mistype, for every option that takes one
BAD_NUMBERS = ["0", "-1", "1.5", "abc", "", "nan", "inf", "-inf", "1e999", "0x10", "99999999999999999999999"]
#: options whose huge values are valid requests for very long runs, not errors
LONG_RUNNING = {"--repeat", "--warmup", "-r", "-w"}
#: the commands that measure: cheap settings so that a valid run stays short
CHEAP = {"profile": ["--repeat", "1", "--warmup", "0", "--quiet"],
         "sweep": ["--repeat", "1", "--warmup", "0", "--quiet", "--batch", "1"],
         "calibrate": ["--quick", "--quiet"],
         "reproduce": ["--no-figures", "--no-timing"]}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def spec_positionals(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if not a.option_strings and a.dest not in ("help",)]


def base_argv(name: str, p: argparse.ArgumentParser, spec: Path) -> list[str]:
    argv = [name]
    for a in spec_positionals(p):
        if a.choices:
            argv.append(sorted(a.choices)[0])
        elif a.nargs in ("+", "*") or a.nargs is None or a.nargs == "?":
            argv.append(str(spec))
    return argv + CHEAP.get(name, [])


def numeric_options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if a.option_strings and a.type not in (None, str) and not a.choices
            and callable(a.type) and a.nargs != 0]


def path_options(p: argparse.ArgumentParser) -> list[str]:
    names = {"--output", "--plot", "--out"}
    return [a.option_strings[-1] for a in p._actions if set(a.option_strings) & names]


def check(result: tuple[int, str, str], what: str) -> None:
    code, out, err = result
    assert "Traceback" not in err and "Traceback" not in out, what
    assert code in (0, 2), (what, code, err)
    if code == 2:
        lines = err.strip("\n").split("\n")
        assert len(lines) == 1 and lines[0].startswith("archstat"), (what, err)


@pytest.fixture
def cli(capsys):
    """``cli(*args) -> (exit_code, stdout, stderr)``; argparse's own exits count as exit codes."""
    from archstat.cli import main

    def run(*args) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return int(code), out, err
    return run


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A tiny spec, an empty calibration cache with millisecond settings, and tmp_path as cwd."""
    from archstat.profiling import calibration
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tiny = {"gemm_size": 64, "copy_bytes": 2**20, "repeats": 2, "min_seconds": 0.0}
    monkeypatch.setattr(calibration, "FULL", tiny)
    monkeypatch.setattr(calibration, "QUICK", tiny)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    return spec


COMMANDS = sorted(subcommands())


def test_every_command_is_fuzzed():
    assert {"report", "compare", "graph", "import", "profile", "sweep", "calibrate", "reproduce",
            "conventions", "zoo", "layers"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_bad_numbers_in_every_option(name, setup, cli):
    p = subcommands()[name]
    base = base_argv(name, p, setup)
    tried = 0
    for action in numeric_options(p):
        flag = action.option_strings[-1]
        for value in BAD_NUMBERS:
            if flag in LONG_RUNNING and value in ("99999999999999999999999", "1e999", "inf"):
                continue
            argv = [*base, flag, value] if action.nargs in (None, "?") else [*base, flag, value, value]
            check(cli(*argv), " ".join(argv))
            tried += 1
    if name in ("profile", "sweep", "report", "compare", "graph"):
        assert tried >= 20, name  # the options were found


BAD_SPECS = {
    "missing": None,
    "folder": "DIR",
    "empty": "",
    "binary": b"\x00\xff\xfe\x89PNG\r\n\x1a\n" * 50,
    "not utf-8": b"input: [1, 8, 8]\nname: \xff\xfe\n",
    "a list": "- 1\n- 2\n",
    "deep": "a: " + "[" * 5000 + "]" * 5000 + "\n",
    "huge number": "input: [1, 8, 8]\nlayers:\n  - {type: conv2d, out_channels: 1e400, kernel_size: 3}\n",
    "yaml tag": "!!python/object/apply:os.system ['echo hacked']\n",
    "anchor bomb": "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                   "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
    "garbage onnx": ("model.onnx", b"not a protobuf at all"),
    "empty onnx": ("model.onnx", b""),
    "long name": ("x" * 300 + ".yaml", None),
}


def takes_a_spec(p: argparse.ArgumentParser) -> bool:
    """A model is named by a positional without fixed choices (a spec, a zoo name)."""
    return any(not a.choices for a in spec_positionals(p))


@pytest.mark.parametrize("kind", sorted(BAD_SPECS))
@pytest.mark.parametrize("name", [c for c in COMMANDS if takes_a_spec(subcommands()[c])])
def test_bad_spec_files_for_every_command(name, kind, setup, cli, tmp_path):
    value = BAD_SPECS[kind]
    filename = "bad.yaml"
    if isinstance(value, tuple):
        filename, value = value
    path = tmp_path / "specs" / filename
    path.parent.mkdir(exist_ok=True)
    if value == "DIR":
        path.mkdir()
    elif isinstance(value, bytes):
        path.write_bytes(value)
    elif isinstance(value, str):
        path.write_text(value)
    argv = [str(path) if a == str(setup) else a for a in base_argv(name, subcommands()[name], setup)]
    assert str(path) in argv, argv
    result = cli(*argv)
    check(result, f"{name} with a {kind} spec")
    assert result[0] == 2, (name, kind, result)
    assert not (tmp_path / "hacked").exists()


@pytest.mark.parametrize("name", [c for c in COMMANDS if path_options(subcommands()[c])])
def test_bad_output_paths_for_every_command(name, setup, cli, tmp_path):
    p = subcommands()[name]
    base = base_argv(name, p, setup)
    folder = tmp_path / "a_folder"
    folder.mkdir()
    plain = tmp_path / "plain_file"
    plain.write_text("keep me")
    readonly = tmp_path / "ro.md"
    readonly.write_text("keep me too")
    readonly.chmod(0o444)
    for flag in path_options(p):
        for target in (folder, plain / "x.png", readonly, "/proc/no/such/place.png", "x" * 300 + ".png",
                       tmp_path / "ro.png"):
            if target == tmp_path / "ro.png":
                Path(target).write_bytes(b"old")
                Path(target).chmod(0o444)
            result = cli(*base, flag, str(target))
            check(result, f"{name} {flag} {target}")
    assert plain.read_text() == "keep me" and readonly.read_text() == "keep me too"
    assert (tmp_path / "ro.png").read_bytes() == b"old"
    assert not [q for q in tmp_path.rglob("*.tmp")]


def _proc(*args, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-m", "archstat", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def test_a_reader_that_leaves_early_is_not_an_error():
    """`archstat zoo | head -1`: the pipe closes; exit 0 and nothing on stderr."""
    proc = _proc("zoo")
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 0 and first and err == ""


@pytest.mark.parametrize("when", [0.05, 0.3, 1.0])
def test_ctrl_c_at_any_moment_exits_130_without_a_traceback(when, tmp_path):
    """Ctrl-C while the package imports, while the model loads, while it runs: exit 130 and one
    line. (In the first milliseconds the interpreter itself may still be starting, in its own
    `site` module: then it dies of the signal or prints its own traceback, with no archstat
    code on it; nothing a program can change.)"""
    import re
    import time
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    # a job started in the background of a script inherits SIGINT ignored, and Python then
    # keeps ignoring it: the child gets the default disposition, as from a terminal
    proc = _proc("profile", str(spec), "--repeat", "100000", "--quiet", cwd=tmp_path,
                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(when)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    err = err.decode()
    assert not re.search(r'File "[^"]*archstat[/\\]', err), err  # no traceback through archstat
    if "Traceback" not in err and proc.returncode != -signal.SIGINT:
        assert (proc.returncode, err) == (130, "archstat: interrupted\n")
