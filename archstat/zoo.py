"""The model zoo: names for the specs archstat ships (``archstat.load("resnet50")``).

The specs live in the top-level ``specs/`` folder of the repository, which the wheel
installs as the package ``archstat.specs``. ``specs/zoo.yaml`` is the index: each named
model is a spec file plus the arguments that select it (a family spec such as
``efficientnet.yaml`` with ``{variant: b4}``), and optionally the input size its published
weights are evaluated at, the published accuracy and the publisher's own parameter and
operation counts (torchvision's ``num_params`` and ``_ops``)::

    models:
      efficientnet_b4:
        spec: efficientnet.yaml
        args: {variant: b4}
        accuracy: {top1: 83.384, top5: 96.594, source: torchvision 0.29.1 ...IMAGENET1K_V1}
        published: {params: 19341616, gmacs: 4.394, source: torchvision 0.29.1 weights meta}

A name is a model of the index, or else the file name (without ``.yaml``) of a packaged
spec, which loads that spec with its default arguments (``efficientnet``, ``vgg``).
"""
from __future__ import annotations

import copy
import functools
import os
from types import MappingProxyType
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ArchstatError, did_you_mean, short_repr

INDEX = "zoo.yaml"
SPEC_SUFFIXES = (".yaml", ".yml", ".json")
ENTRY_KEYS = ("spec", "args", "input", "accuracy", "published")
PUBLISHED_KEYS = ("params", "gmacs", "source")


@dataclass(frozen=True)
class Entry:
    """One named model of the zoo."""

    name: str
    spec: str                                  # file name inside the specs folder
    args: Mapping[str, Any] = field(default_factory=dict)
    input: tuple[int, ...] | None = None       # the weights' evaluation size, when not the spec's
    accuracy: Mapping[str, Any] | None = None
    published: Mapping[str, Any] | None = None

    @property
    def path(self) -> Path:
        return specs_dir() / self.spec


@functools.lru_cache(maxsize=1)
def specs_dir() -> Path:
    """The folder of packaged specs: ``archstat/specs`` in an installed package (the wheel
    maps the repository's ``specs/`` there), else the checkout's ``specs/`` beside the package."""
    here = Path(__file__).resolve().parent
    installed = here / "specs"
    return installed if (installed / INDEX).is_file() else here.parent / "specs"


def entries() -> dict[str, Entry]:
    """Every named model of the index, in index order (a new dict; the entries are read-only)."""
    index = specs_dir() / INDEX
    try:
        stamp = index.stat().st_mtime_ns
    except OSError:
        return {}
    return dict(_read_index(str(index), stamp))


@functools.lru_cache(maxsize=4)
def _read_index(path: str, _stamp: int) -> dict[str, Entry]:
    from .spec import parse_accuracy, parse_input_shape
    from .spec_io import read_spec_data

    data, label = read_spec_data(path)
    models = data.get("models") if isinstance(data, Mapping) else None
    if not isinstance(models, Mapping):
        raise ArchstatError("the zoo index needs a 'models' mapping", file=label, field="models")
    out: dict[str, Entry] = {}
    for name, raw in models.items():
        where = f"models.{name}"
        if not isinstance(raw, Mapping) or not isinstance(raw.get("spec"), str):
            raise ArchstatError("expected a mapping with 'spec' (a file in specs/)", file=label, field=where)
        for key in raw:
            if key not in ENTRY_KEYS:
                raise ArchstatError(f"unknown key (allowed: {', '.join(ENTRY_KEYS)})", file=label,
                                    field=f"{where}.{key}", hint=did_you_mean(str(key), ENTRY_KEYS))
        args = raw.get("args") or {}
        if not isinstance(args, Mapping):
            raise ArchstatError("expected a mapping of argument to value", file=label, field=f"{where}.args")
        published = raw.get("published")
        if published is not None and (not isinstance(published, Mapping)
                                      or any(k not in PUBLISHED_KEYS for k in published)):
            raise ArchstatError(f"expected a mapping with {', '.join(PUBLISHED_KEYS)}", file=label,
                                field=f"{where}.published")
        shape = raw.get("input")
        accuracy = parse_accuracy(raw.get("accuracy"), label, f"{where}.accuracy")
        out[str(name)] = Entry(   # read-only views: the index is read once per process and shared
            name=str(name), spec=raw["spec"], args=MappingProxyType(copy.deepcopy(dict(args))),
            input=None if shape is None else parse_input_shape(shape, label),
            accuracy=None if accuracy is None else MappingProxyType(accuracy),
            published=None if published is None else MappingProxyType(dict(published)))
    return out


def spec_files() -> dict[str, Path]:
    """Packaged spec files by name (file name without the suffix), the index excluded."""
    folder = specs_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.suffix in SPEC_SUFFIXES and p.name != INDEX and p.is_file()}


def names() -> list[str]:
    """Every name ``load`` accepts: the index's models, then the spec files' names."""
    models = list(entries())
    return models + [n for n in spec_files() if n not in models]


def looks_like_name(source: str) -> bool:
    """A bare word (no folder, no spec suffix) that is not an existing file: a zoo name (a
    folder of that name in the current directory does not hide the model)."""
    return (bool(source) and os.sep not in source and "/" not in source
            and Path(source).suffix.lower() not in SPEC_SUFFIXES and not os.path.isfile(source))


def resolve(name: str) -> tuple[Path, dict[str, Any], Entry | None]:
    """``(spec path, args, entry)`` for a zoo name; ArchstatError with did-you-mean otherwise."""
    table = entries()
    if name in table:
        entry = table[name]
        if not entry.path.is_file():
            raise ArchstatError(f"the zoo names {entry.spec!r}, which is not among the packaged specs",
                                file=str(specs_dir() / INDEX), field=f"models.{name}.spec")
        return entry.path, dict(entry.args), entry
    files = spec_files()
    if name in files:
        return files[name], {}, None
    raise ArchstatError(f"no such spec file or zoo model {short_repr(name)}",
                        hint=did_you_mean(name, names()) or "'archstat zoo' lists the models; a spec file "
                                                            "path ends in .yaml or .json")


@functools.lru_cache(maxsize=256)
def _realpath(path: str) -> str:
    return os.path.realpath(path)


def match(path: str | os.PathLike, args: Mapping[str, Any], defaults: Mapping[str, Any],
          input_shape: tuple[int, ...]) -> Entry | None:
    """The index entry that is exactly this configuration of a packaged spec (same file, same
    effective arguments, and the entry's input size if it sets one), else None."""
    try:
        resolved = _realpath(os.fspath(path))
    except (OSError, RuntimeError, TypeError):
        return None
    index = specs_dir() / INDEX
    try:
        stamp = index.stat().st_mtime_ns
    except OSError:
        return None
    args = dict(args)
    for entry in _entries_by_file(str(index), stamp).get(resolved, ()):
        if any(k not in defaults for k in entry.args):
            continue
        if {**defaults, **entry.args} != args:
            continue
        if entry.input is not None and entry.input != tuple(input_shape):
            continue
        return entry
    return None


@functools.lru_cache(maxsize=4)
def _entries_by_file(path: str, stamp: int) -> dict[str, tuple[Entry, ...]]:
    """The index's entries grouped by the real path of their spec file, in index order."""
    out: dict[str, list[Entry]] = {}
    for entry in _read_index(path, stamp).values():
        out.setdefault(os.path.realpath(entry.path), []).append(entry)
    return {k: tuple(v) for k, v in out.items()}


def reproduces(params: int, macs: int, published: dict[str, Any] | None) -> bool | None:
    """True when the counts equal the published ones: parameters exactly, and the GMACs
    rounded to as many decimals as the publisher printed (torchvision: 4.089, 0.04); None
    when nothing is published."""
    if not published:
        return None
    ok = True
    if published.get("params") is not None:
        ok &= params == int(published["params"])
    if published.get("gmacs") is not None:
        text = repr(float(published["gmacs"]))
        digits = len(text.split(".")[1]) if "." in text and "e" not in text else 3
        ok &= round(macs / 1e9, digits) == round(float(published["gmacs"]), digits)
    return ok
