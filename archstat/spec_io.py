"""Reading spec files safely: YAML (PyYAML's safe loader, the C one when present) or JSON.

Specs are data: no tags, no object construction, no evaluation. Beyond the safe loader,
this refuses what would lose data or crash the parser: duplicate keys (PyYAML and json
keep the last one silently), brackets nested past :data:`MAX_VALUE_DEPTH` (the parsers
recurse per level; PyYAML's C loader segfaults past ~100,000), files over
:data:`MAX_SPEC_BYTES`, and numbers too long for Python's int conversion. Errors name
the file and, for YAML, the line.
"""
from __future__ import annotations

import json
import os
import re
from itertools import accumulate
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ArchstatError, did_you_mean, printable, short_repr

#: nesting depth and element count of one field value (guards against YAML alias bombs)
MAX_VALUE_DEPTH = 64
MAX_VALUE_ITEMS = 100_000
MAX_SPEC_BYTES = 16 * 2**20


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, mark: Any):
        super().__init__(f"duplicate key {key!r}")
        self.key = key
        self.problem_mark = mark


class _SpecLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader (the C one when present), refusing duplicate mapping keys:
    PyYAML would silently keep the last one, losing the first."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            # a key the mapping writes itself may appear once; one it also merges in with
            # `<<: *anchor` is an override, as YAML's merge key defines (the own value wins)
            own = [(k, v) for k, v in node.value if k.tag != "tag:yaml.org,2002:merge"]
            self.flatten_mapping(node)
            seen: set[Any] = set()
            for key_node, _ in own:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark, "found unhashable key",
                        key_node.start_mark) from None
                if duplicate:
                    raise _DuplicateKey(key, key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)

    # The rest is speed. A spec is mostly small flow mappings of plain scalars ({type: relu}),
    # and PyYAML's general path (a generator per collection, every node remembered until the end
    # of the document, the resolver's patterns tried on every scalar) cost ~10 us per layer. The
    # paths below build exactly what the general one builds, and leave everything else to it:
    # merge keys, '=' keys, tags, mappings nested in mappings, an anchored list met again.

    def __init__(self, stream):
        super().__init__(stream)
        self._plain_tags: dict[str, str] = {}

    def resolve(self, kind, value, implicit):
        """A node's tag. A plain scalar's depends only on its text (this loader has no path
        resolvers), so each distinct text is matched against the patterns once per document."""
        if kind is yaml.ScalarNode and implicit[0]:
            tag = self._plain_tags.get(value)
            if tag is None:
                tag = self._plain_tags[value] = super().resolve(kind, value, implicit)
            return tag
        if kind is yaml.MappingNode and not self.yaml_path_resolvers:
            return self.DEFAULT_MAPPING_TAG
        return super().resolve(kind, value, implicit)

    def construct_object(self, node, deep=False):
        kind = node.__class__
        if kind is yaml.ScalarNode:
            make = _SCALARS.get(node.tag)
            if make is not None:
                return make(self, node)
        elif kind is yaml.MappingNode and node.tag == _MAP and node not in self.constructed_objects:
            data = self._flat_mapping(node)
            if data is not None:
                self.constructed_objects[node] = data
                return data
        return super().construct_object(node, deep)

    def _flat_mapping(self, node):
        """A mapping of plain scalar keys to scalars or lists of scalars, built directly (as
        :meth:`construct_mapping` does: keys checked for duplicates first, then the values
        constructed in order); None for any other mapping."""
        scalars, constructed = _SCALARS, self.constructed_objects
        for key_node, value_node in node.value:
            if key_node.__class__ is not yaml.ScalarNode or key_node.tag not in scalars:
                return None
            kind = value_node.__class__
            if kind is yaml.ScalarNode:
                if value_node.tag not in scalars:
                    return None
            elif kind is yaml.SequenceNode and value_node.tag == _SEQ and value_node not in constructed:
                for item in value_node.value:
                    if item.__class__ is not yaml.ScalarNode or item.tag not in scalars:
                        return None
            else:
                return None
        keys = []
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = scalars[key_node.tag](self, key_node)
            if key in seen:
                raise _DuplicateKey(key, key_node.start_mark)
            seen.add(key)
            keys.append(key)
        mapping = {}
        for key, (_, value_node) in zip(keys, node.value):
            if value_node.__class__ is yaml.ScalarNode:
                mapping[key] = scalars[value_node.tag](self, value_node)
            else:   # a list, remembered as the general path does: an alias of it is the same list
                items = [scalars[item.tag](self, item) for item in value_node.value]
                constructed[value_node] = mapping[key] = items
        return mapping


# Numbers follow YAML 1.2 (and JSON), not PyYAML's YAML 1.1: 1e-5 is a number (1.1 wants
# 1.0e-5), 010 is ten (1.1: octal 8), 1:30 is text (1.1: 90, base 60), 1_000 is text; 0o17
# and 0x1f are octal and hex, .inf and .nan floats.
_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in _SpecLoader.yaml_implicit_resolvers.items()}
_SpecLoader.add_implicit_resolver(_INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
                                  list("-+0123456789"))
_SpecLoader.add_implicit_resolver(
    _FLOAT, re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                       r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))


def _yaml12_int(loader: Any, node: Any) -> int:
    text = loader.construct_scalar(node)
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


_SpecLoader.add_constructor(_INT, _yaml12_int)
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
#: scalar tags and their constructors (each returns a new immutable value and builds nothing else)
_SCALARS = {tag: _SpecLoader.yaml_constructors[tag] for tag in (
    _INT, _FLOAT, "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null")}
_SCALARS["tag:yaml.org,2002:str"] = lambda loader, node: node.value   # construct_yaml_str of a ScalarNode


def parse_value(text: str) -> Any:
    """One value written as in a spec (``--arg width=1.5``, ``--arg variant=b4``): YAML 1.2
    scalars and flow collections, safely; text that does not parse stays text."""
    if not text.strip():
        return ""
    try:
        return yaml.load(text, Loader=_SpecLoader)
    except yaml.YAMLError:
        return text


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ArchstatError(f"duplicate key {short_repr(key)} in a JSON object",
                                hint="each key may appear once; the first value would be lost")
        out[key] = value
    return out


def read_spec_data(source: str | os.PathLike | Mapping[str, Any], label: str | None = None) -> tuple[Any, str]:
    """Return ``(data, file_label)`` for a path or a mapping (``label``: how messages name
    the file, default its path). Never evaluates anything."""
    if isinstance(source, Mapping):
        return source, label or "<dict>"
    path = Path(source)
    label = label or str(source)
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:  # a name too long, a loop of links, no permission on a folder
        raise ArchstatError(f"cannot read the spec ({exc.strerror or exc})", file=label,
                            hint="check the path") from None
    if path.exists() and not path.is_file() and not path.is_dir():
        raise ArchstatError("not a regular file", file=label, hint="give the path of a .yaml or .json spec")
    if not path.is_file():
        hint = None
        folder = path.parent if str(path.parent) else Path(".")
        if folder.is_dir():
            names = sorted(p.name for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
            hint = did_you_mean(path.name, names)
            if hint is None and names:
                hint = f"specs there: {', '.join(names[:12])}{' ...' if len(names) > 12 else ''}"
        if path.is_dir():
            raise ArchstatError("is a directory, not a spec file", file=label,
                                hint="give the path of a .yaml or .json file inside it")
        raise ArchstatError("no such spec file", file=label, hint=hint)
    try:
        stat = path.stat()
        if stat.st_size > MAX_SPEC_BYTES:
            raise ArchstatError(f"the file is larger than {MAX_SPEC_BYTES // 2**20} MiB; specs are small text files",
                                file=label)
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if key in _PARSED:
            return _PARSED[key], label
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchstatError(f"cannot read the file ({exc.__class__.__name__}: {exc})", file=label)
    depth = _flow_depth(text)
    if depth > MAX_VALUE_DEPTH:
        # the parsers recurse per level: PyYAML's C loader crashes the process past ~100,000
        raise ArchstatError(f"brackets nest {depth} levels deep (at most {MAX_VALUE_DEPTH})", file=label,
                            hint="field values are numbers, names, or short lists of them")
    try:
        data = _parse(text, path, label)
    except (RecursionError, ValueError) as exc:
        if isinstance(exc, ArchstatError):
            raise
        raise ArchstatError(f"cannot read the spec: {printable(exc)}", file=label,
                            hint="numbers must be at most 4300 digits and values nested at most "
                                 f"{MAX_VALUE_DEPTH} levels") from None
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.pop(next(iter(_PARSED)))
    _PARSED[key] = data
    return data, label


#: parsed files by (path, modification time, size): loading a zoo model parses its spec once per
#: process (the data is only ever read, never changed, by the loader)
_PARSED: dict[tuple[str, int, int], Any] = {}
_PARSED_MAX = 64


def _flow_depth(text: str) -> int:
    """Deepest nesting of [ and { in the text (an upper bound: brackets in strings count too)."""
    brackets = _NOT_BRACKET.sub("", text)
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets), initial=0))


_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def _parse(text: str, path: Path, label: str) -> Any:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text, object_pairs_hook=_json_object)
        except ArchstatError as exc:
            raise exc.with_context(file=label)
        except json.JSONDecodeError as exc:
            raise ArchstatError(f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                                file=label)
    try:
        return yaml.load(text, Loader=_SpecLoader)
    except _DuplicateKey as exc:
        raise ArchstatError(f"the key {short_repr(exc.key)} appears twice in one mapping at line "
                            f"{exc.problem_mark.line + 1}", file=label,
                            hint="each key may appear once; the first value would be lost")
    except yaml.constructor.ConstructorError as exc:
        problem = (getattr(exc, "problem", "") or str(exc)).strip()
        line = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        if "unhashable" in problem:
            raise ArchstatError(f"a mapping key must be a plain name or number, not a list or "
                                f"mapping{line}", file=label)
        raise ArchstatError(f"YAML tags are not allowed in specs{line} ({printable(problem)})", file=label,
                            hint="specs are plain data: write the value itself, without '!!' tags")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        hint = "check the indentation and the brackets on that line"
        if mark is not None and _char_at(text, mark) == "\t":
            problem, hint = "a tab character", "YAML indents with spaces only: replace the tabs by spaces"
        raise ArchstatError(f"malformed YAML{where}: {problem}", file=label, hint=hint)


def _char_at(text: str, mark: Any) -> str:
    """The character a YAML error mark points at ('' past the end)."""
    lines = text.split("\n")
    if mark.line < len(lines) and mark.column < len(lines[mark.line]):
        return lines[mark.line][mark.column]
    return ""
