"""A design space ready to run: the spec (sent to workers as its text or its packaged name),
the arguments that stay fixed, and the dimensions that vary (:class:`Space`).

Workers on other machines may not share this machine's files: a :class:`Space` carries the
spec's text and its SHA-256, and a worker reads its own copy of the file when it has the same
bytes, else the text it was sent (:meth:`Space.model`). A packaged spec (a zoo name) travels by
name, since every installation of archstat has it.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .. import zoo
from ..errors import ArchstatError, short_repr
from .declare import Dimension


@dataclass(frozen=True)
class Space:
    """A spec's design space.

    ``label`` names the spec in messages; ``dims`` are the dimensions that vary, in the spec's
    order; ``base`` every other argument's value (defaults, a zoo name's arguments, and the
    caller's fixed ``args``); ``defaults`` the spec's declared defaults.
    """

    label: str
    dims: tuple[Dimension, ...]
    base: Mapping[str, Any]
    defaults: Mapping[str, Any]
    family: str = ""
    path: str | None = None          # the spec file on the machine that made the Space
    packaged: str | None = None      # its file name among the packaged specs, when it is one
    text: str | None = None          # the file's text, for workers elsewhere
    sha256: str | None = None
    mapping: Mapping[str, Any] | None = field(default=None, compare=False)   # a spec given as a dict

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dims)

    def dim(self, name: str) -> Dimension:
        return next(d for d in self.dims if d.name == name)

    @property
    def size(self) -> int | None:
        """The number of configurations of a discrete space (None when a dimension is continuous)."""
        if any(d.continuous for d in self.dims):
            return None
        return math.prod(len(d) for d in self.dims)

    def args_of(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Every argument's value for one configuration."""
        return {**self.base, **config}

    def contains(self, args: Mapping[str, Any]) -> bool:
        """True when arguments (missing ones take the defaults) are a configuration of this
        space: every dimension's value among its values, every other argument at its base value."""
        full = {**self.defaults, **args}
        if any(k not in self.defaults for k in args):
            return False
        varied = set(self.names)
        return (all(d.contains(full[d.name]) for d in self.dims)
                and all(full[k] == v for k, v in self.base.items() if k not in varied))

    def signature(self) -> dict[str, Any]:
        """What decides the rows (for checkpoints): the spec's bytes, base arguments, dimensions."""
        return {"spec": self.packaged or self.label, "sha256": self.sha256,
                "base": {k: repr(v) for k, v in self.base.items()},
                "dims": [[d.name, d.kind, repr(d.bounds)] for d in self.dims]}

    def model(self, config: Mapping[str, Any]):
        """The Model of one configuration (raises ArchstatError when it is invalid)."""
        from ..graph import Model, load
        from ..spec import load_spec

        args = self.args_of(config)
        if self.mapping is not None:
            return load(self.mapping, args)
        if self.packaged is not None:
            return load(zoo.specs_dir() / self.packaged, args)
        if self.path is not None and _file_sha(self.path) == self.sha256:
            return load(self.path, args)
        return Model(load_spec(_shipped_data(self.text, self.sha256, self.label), args, self.label))


def _file_sha(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _sha_cached(os.path.realpath(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _sha_cached(path: str, _mtime: int, _size: int) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


@functools.lru_cache(maxsize=4)
def _shipped_data(text: str, sha: str, label: str) -> Mapping[str, Any]:
    """A spec's data parsed from the text a worker was sent (its own files differ)."""
    import tempfile

    from ..spec_io import read_spec_data

    suffix = ".json" if label.lower().endswith(".json") else ".yaml"
    with tempfile.TemporaryDirectory(prefix="archstat-space-") as folder:
        tmp = Path(folder) / f"spec{suffix}"
        tmp.write_text(text, encoding="utf-8")
        data, _ = read_spec_data(tmp, label)
    return data


def load_space(spec: Any, args: Mapping[str, Any] | None = None, *, space: Mapping[str, Any] | None = None) -> Space:
    """The design space of a spec: a zoo name (its family spec, with the name's arguments as the
    base), a spec path, a mapping, or a :class:`Space` (returned as it is).

    ``args`` fix arguments: one that the space varies is then fixed at that value (the space
    loses that dimension). ``space`` replaces the spec's own ``space:`` section (same format).

    Raises
    ------
    ArchstatError
        The spec does not load with its defaults, declares no space, or the space is malformed.
    """
    from ..spec import load_spec
    from .declare import parse_space

    if isinstance(spec, Space):
        if space:
            raise ArchstatError("a space section applies when a spec is loaded, not to a Space", field="space")
        if not args:
            return spec
        other = [k for k in args if k not in spec.names]
        if other:
            raise ArchstatError(f"a Space fixes only the arguments it varies ({', '.join(spec.names)}), not "
                                f"{', '.join(map(str, other))}", file=spec.label, field="args",
                                hint="load the spec again with those args")
        dims = tuple(d for d in spec.dims if d.name not in args)
        if not dims:
            raise ArchstatError("every argument of the space is fixed by the given args: nothing varies",
                                file=spec.label, field="args")
        return dataclasses.replace(spec, dims=dims, base={**spec.base, **args})
    entry_args: dict[str, Any] = {}
    label = None
    mapping = None
    if isinstance(spec, Mapping):
        mapping = spec
        source: Any = spec
    elif isinstance(spec, (str, os.PathLike)):
        source = str(spec)
        if zoo.looks_like_name(source):
            path, entry_args, _ = zoo.resolve(source)
            label = f"{source} ({path.name})"
            source = str(path)
    else:
        raise ArchstatError(f"expected a spec path, zoo name or mapping, got {type(spec).__name__}")
    given = {**entry_args, **(args or {})}
    loaded = load_spec(source, given, label)   # the spec loads at the base arguments: errors now, once
    label = loaded.file
    dims = loaded.space if space is None else parse_space(space, loaded.defaults, label)
    if not dims:
        raise ArchstatError("the spec declares no design space", file=label, field="space",
                            hint="add a 'space:' section beside 'args', e.g. space: {width: {choice: [8, 16, 32]}}")
    fixed = set(args or ())
    varied = tuple(d for name, d in dims.items() if name not in fixed)
    if not varied:
        raise ArchstatError("every argument of the space is fixed by the given args: nothing varies",
                            file=label, field="args")
    base = {k: v for k, v in loaded.args.items() if k not in {d.name for d in varied}}
    path = packaged = text = sha = None
    if mapping is None:
        path = os.path.realpath(source)
        raw = Path(path).read_bytes()
        sha = hashlib.sha256(raw).hexdigest()
        text = raw.decode("utf-8", errors="replace")
        folder = zoo.specs_dir().resolve()
        if Path(path).parent == folder:
            packaged = Path(path).name
    return Space(label=label, dims=varied, base=base, defaults=dict(loaded.defaults), family=loaded.family,
                 path=path, packaged=packaged, text=text, sha256=sha, mapping=mapping)


def check_config(space: Space, config: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration given by a caller: every dimension present, each value in its range."""
    missing = [n for n in space.names if n not in config]
    extra = [k for k in config if k not in space.names]
    if missing or extra:
        raise ArchstatError(f"a configuration gives exactly the space's arguments ({', '.join(space.names)})"
                            + (f"; missing {', '.join(missing)}" if missing else "")
                            + (f"; not in the space: {', '.join(map(str, extra))}" if extra else ""),
                            file=space.label, field="config")
    for d in space.dims:
        if not d.contains(config[d.name]):
            raise ArchstatError(f"{short_repr(config[d.name])} is not in the space ({d.describe()})",
                                file=space.label, field=f"space.{d.name}")
    return {n: config[n] for n in space.names}
