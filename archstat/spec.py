"""Architecture specs: safe YAML/JSON loading, block and repeat expansion, field validation.

A spec is data (``yaml.safe_load`` semantics: no tags, no object construction)::

    name: VGG-16
    source: Simonyan & Zisserman 2014, Table 1 column D
    input: [3, 224, 224]            # C, H, W (or [F] for flat features)
    accuracy: {top1: 71.592, top5: 90.382, source: torchvision}
    blocks:
      conv_relu:                    # a reusable, parameterised block
        args: {out: required, k: 3}
        layers:
          - {name: "${name}", type: conv2d, out_channels: $out, kernel_size: $k, padding: 1}
          - {name: "${name}_relu", type: relu, inplace: true}
    layers:
      - {block: conv_relu, name: "conv1_${i}", out: 64, repeat: 2}
      - {type: max_pool2d, kernel_size: 2, name: pool1}

Rules
-----
* Every entry of ``layers`` is a layer (``type:`` and its fields) or a block instance
  (``block:`` and its arguments). Both accept ``name``, ``inputs``, ``repeat``, ``when``
  and ``unless``.
* ``inputs`` (a name or a list) defaults to the previous layer; the first layer reads
  ``input``. Inside a block, ``input`` is the block's input and names refer first to the
  block's own layers. A block instance's name stands for its last layer.
* Layer names default to a short alias and a counter (``conv1``, ``relu2``). Inside a
  block instance called ``b``, a layer ``x`` is called ``b.x``, unless its name uses
  ``${name}``, which makes it a sibling of the instance (``conv1_1``, ``conv1_1_relu``).
  When a layer and a block instance share a name (the instance ``conv1_1`` and its conv
  named ``${name}``), the name means the layer; name the instance's last layer to mean
  its output.
* ``repeat: n`` stacks n copies, each reading the previous one; ``${i}`` is the copy's
  number (1..n); a repeated name without ``${i}`` gets ``_1`` .. ``_n``.
* ``$var`` as a whole value keeps the argument's type; ``${var}`` inside a string
  formats it. ``when: $flag`` / ``unless: $flag`` keep or drop an entry.
* Top-level ``args`` (name: default) are variables for the whole spec, overridable with
  ``archstat.load(path, args={...})`` or ``--arg name=value`` (e.g. an optional aux head).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


from .errors import ArchstatError, did_you_mean, short_repr
from .layers import registry
from .layers.registry import MAX_INT
from .spec_io import MAX_VALUE_DEPTH, MAX_VALUE_ITEMS, read_spec_data

TOP_LEVEL_KEYS = ("name", "description", "source", "notes", "input", "accuracy", "args", "blocks", "layers")
ENTRY_KEYS = ("name", "inputs", "repeat", "when", "unless")
BLOCK_KEYS = ("args", "layers", "description")
ACCURACY_KEYS = ("top1", "top5", "source", "approximate")
INPUT_NAME = "input"
#: refuse specs that would expand beyond this many layers (a typo such as repeat: 10000000)
MAX_LAYERS = 1_000_000
MAX_BLOCK_DEPTH = 32
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_REQUIRED_ARG = "required"


@dataclass
class LayerRecord:
    """One expanded layer: its unique name, registered type, validated attrs and inputs."""

    name: str
    type: registry.LayerType
    attrs: dict[str, Any]
    inputs: tuple[str, ...]
    index: int


@dataclass
class Spec:
    """A loaded, expanded and validated spec (before the graph is built)."""

    file: str
    name: str
    description: str
    source: str
    notes: str
    input_shape: tuple[int, ...]
    accuracy: dict[str, Any] | None
    args: dict[str, Any] = field(default_factory=dict)
    layers: list[LayerRecord] = field(default_factory=list)


# --------------------------------------------------------------------- top level

def load_spec(source: str | os.PathLike | Mapping[str, Any], args: Mapping[str, Any] | None = None) -> Spec:
    """Read, expand and validate a spec from a path (YAML or JSON) or a mapping.

    ``args`` override the spec's top-level ``args`` (model-wide variables with defaults,
    e.g. ``{aux: false}`` to drop an auxiliary head); unknown names are an error.

    Raises
    ------
    ArchstatError
        For anything wrong in the spec, naming the file, layer and field.
    """
    data, label = read_spec_data(source)
    if data is None:
        raise ArchstatError("the spec is empty", file=label,
                            hint="a spec is a mapping with 'input' and a 'layers' list (see specs/lenet5.yaml)")
    if not isinstance(data, Mapping):
        raise ArchstatError(f"a spec must be a mapping with a 'layers' list, got {type(data).__name__}",
                            file=label)
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise ArchstatError(f"unknown top-level key (allowed: {', '.join(TOP_LEVEL_KEYS)})",
                                file=label, field=str(key), hint=did_you_mean(str(key), TOP_LEVEL_KEYS))
    texts = {}
    for key in ("name", "description", "source", "notes"):
        value = data.get(key, "")
        if value is None:
            value = ""
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ArchstatError("expected text", file=label, field=key)
        texts[key] = str(value)
    if not texts["name"]:
        texts["name"] = Path(label).stem if label != "<dict>" else "model"
    input_shape = parse_input_shape(data.get("input"), label)
    accuracy = _parse_accuracy(data.get("accuracy"), label)
    blocks = data.get("blocks") or {}
    if not isinstance(blocks, Mapping):
        raise ArchstatError("expected a mapping of block name to block", file=label, field="blocks")
    for bname, block in blocks.items():
        _check_block(bname, block, label)
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ArchstatError("expected a non-empty list of layers", file=label, field="layers")
    variables = _top_level_args(data.get("args"), args, label)
    spec = Spec(file=label, input_shape=input_shape, accuracy=accuracy, args=variables, **texts)
    spec.layers = _Expander(label, blocks).run(layers, variables)
    return spec


def _top_level_args(declared: Any, given: Mapping[str, Any] | None, label: str) -> dict[str, Any]:
    """The spec's ``args`` defaults, overridden by ``given``; every arg needs a default."""
    declared = declared or {}
    if not isinstance(declared, Mapping):
        raise ArchstatError("expected a mapping of argument name to default value", file=label, field="args")
    for name, default in declared.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name in ("i", "name"):
            raise ArchstatError(f"{name!r} cannot be an argument name (reserved or not an identifier)",
                                file=label, field="args")
        if default == _REQUIRED_ARG or default is None:
            raise ArchstatError(f"top-level argument {name!r} needs a default value", file=label,
                                field=f"args.{name}")
    values = dict(declared)
    for name, value in (given or {}).items():
        if name not in declared:
            raise ArchstatError(f"the spec has no argument {name!r}"
                                + (f" (its arguments: {', '.join(declared)})" if declared else " (it takes none)"),
                                file=label, field="args", hint=did_you_mean(str(name), declared))
        if type(value) is not type(declared[name]) and not (
                isinstance(value, (int, float)) and not isinstance(value, bool)
                and isinstance(declared[name], (int, float)) and not isinstance(declared[name], bool)):
            raise ArchstatError(f"argument {name!r} expects a value of type {type(declared[name]).__name__}, like its default "
                                f"{declared[name]!r}, got {value!r}", file=label, field=f"args.{name}")
        values[name] = value
    return values


def parse_input_shape(value: Any, label: str) -> tuple[int, ...]:
    """``input: [C, H, W]`` (or ``[F]``): positive integers."""
    if value is None:
        raise ArchstatError("missing the input size", file=label, field="input",
                            hint="add e.g. 'input: [3, 224, 224]' (channels, height, width)")
    if (not isinstance(value, (list, tuple)) or len(value) not in (1, 3)
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_INT for v in value)):
        raise ArchstatError(f"expected [C, H, W] (or [F]) of positive integers up to {MAX_INT:,}, got "
                            f"{short_repr(value)}", file=label, field="input")
    return tuple(int(v) for v in value)


def _parse_accuracy(value: Any, label: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ArchstatError("expected a mapping like {top1: 71.6, top5: 90.4, source: ...}",
                            file=label, field="accuracy")
    out = {}
    for key, v in value.items():
        if key not in ACCURACY_KEYS:
            raise ArchstatError(f"unknown accuracy key (allowed: {', '.join(ACCURACY_KEYS)})",
                                file=label, field=f"accuracy.{key}", hint=did_you_mean(str(key), ACCURACY_KEYS))
        if key in ("top1", "top5"):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 100:
                raise ArchstatError(f"expected a percentage between 0 and 100, got {v!r}",
                                    file=label, field=f"accuracy.{key}")
            v = float(v)
        elif key == "approximate":
            if not isinstance(v, bool):
                raise ArchstatError("expected true or false", file=label, field=f"accuracy.{key}")
        else:
            v = str(v)
        out[key] = v
    return out


def _check_block(bname: Any, block: Any, label: str) -> None:
    where = f"blocks.{bname}"
    if not isinstance(bname, str) or not _NAME_RE.match(bname):
        raise ArchstatError("a block name must be an identifier", file=label, field=where)
    if not isinstance(block, Mapping):
        raise ArchstatError("expected a mapping with 'layers' (and optional 'args')", file=label, field=where)
    for key in block:
        if key not in BLOCK_KEYS:
            raise ArchstatError(f"unknown key in a block (allowed: {', '.join(BLOCK_KEYS)})", file=label,
                                field=f"{where}.{key}", hint=did_you_mean(str(key), BLOCK_KEYS))
    args = block.get("args", {}) or {}
    if not isinstance(args, Mapping):
        raise ArchstatError("expected a mapping of argument name to default (or 'required')",
                            file=label, field=f"{where}.args")
    for arg in args:
        if not isinstance(arg, str) or arg in ("name", "i") or arg in ENTRY_KEYS:
            raise ArchstatError(f"{arg!r} cannot be a block argument (reserved or not a name)",
                                file=label, field=f"{where}.args")
    if not isinstance(block.get("layers"), list) or not block["layers"]:
        raise ArchstatError("expected a non-empty list of layers", file=label, field=f"{where}.layers")


# --------------------------------------------------------------------- expansion

@dataclass
class _Scope:
    """Names visible while expanding one block instance (or the top level)."""

    prefix: str                       # "" at top level, else "instance."
    variables: dict[str, Any]
    block_input: str                  # what 'input' means here
    parent: "_Scope | None" = None
    sibling_prefix: str = ""          # where the instance itself lives: ${name} layers go there
    local: dict[str, str] = field(default_factory=dict)    # local name -> full name
    counters: dict[str, int] = field(default_factory=dict)
    depth: int = 0
    block: str | None = None          # the block definition being expanded (None at top level)

    def resolve(self, ref: str, full_names: Mapping[str, Any], aliases: Mapping[str, str]) -> str | None:
        scope: _Scope | None = self
        while scope is not None:
            if ref in scope.local:
                full = scope.local[ref]
                if full in full_names:      # a layer wins over a block instance of the same name
                    return full
                return aliases.get(full)    # a block instance stands for its last layer (once built)
            if ref == INPUT_NAME:
                return scope.block_input
            scope = scope.parent
        if ref in full_names:
            return ref
        return aliases.get(ref)

    def visible(self, full_names: Mapping[str, Any], aliases: Mapping[str, str]) -> list[str]:
        names: list[str] = [INPUT_NAME]
        scope: _Scope | None = self
        while scope is not None:
            names.extend(scope.local)
            scope = scope.parent
        return names + list(full_names) + list(aliases)


class _Expander:
    def __init__(self, label: str, blocks: Mapping[str, Any]):
        self.label = label
        self.blocks = blocks
        self.records: list[LayerRecord] = []
        self.by_name: dict[str, LayerRecord] = {}
        self.aliases: dict[str, str] = {}            # block instance name -> its last layer
        self._size_hints: dict[str, int] = {}
        # (record, references as written, their scope); None as the scope marks the default
        # input, which is already a full name and must not be looked up among local names
        self.pending: list[tuple[LayerRecord, list[str], _Scope | None]] = []

    def error(self, message: str, layer: str | None = None, field: str | None = None,
              hint: str | None = None) -> ArchstatError:
        return ArchstatError(message, file=self.label, layer=layer, field=field, hint=hint)

    def run(self, entries: list[Any], variables: Mapping[str, Any] | None = None) -> list[LayerRecord]:
        top = _Scope(prefix="", variables=dict(variables or {}), block_input=INPUT_NAME)
        self.by_name[INPUT_NAME] = None  # type: ignore[assignment]  # reserved
        self.expand(entries, top, previous=INPUT_NAME)
        del self.by_name[INPUT_NAME]
        for record, refs, scope in self.pending:
            resolved = []
            for ref in refs:
                if scope is None:
                    resolved.append(ref)
                    continue
                full = scope.resolve(ref, self.by_name, self.aliases)
                if full is None and ref == INPUT_NAME:
                    full = INPUT_NAME
                if full is None:
                    candidates = [n for n in scope.visible(self.by_name, self.aliases) if n != record.name]
                    raise self.error(f"no layer named {short_repr(ref)}", record.name, "inputs",
                                     did_you_mean(ref, candidates))
                if full == record.name:
                    raise self.error("a layer cannot be its own input", record.name, "inputs")
                resolved.append(full)
            record.inputs = tuple(resolved)
        return self.records

    # -- one list of entries in one scope; returns the last layer's full name
    def expand(self, entries: list[Any], scope: _Scope, previous: str, block: str | None = None) -> str:
        for position, raw in enumerate(entries):
            if not isinstance(raw, Mapping):
                raise self.error(f"layer #{position + 1} must be a mapping like {{type: conv2d, ...}}, "
                                 f"got {short_repr(raw)}", field=f"blocks.{block}.layers" if block else "layers")
            previous = self.entry(raw, scope, previous, position)
        return previous

    def entry(self, raw: Mapping[str, Any], scope: _Scope, previous: str, position: int) -> str:
        where = raw.get("name") if isinstance(raw.get("name"), str) else f"#{position + 1}"
        if ("type" in raw) == ("block" in raw):
            raise self.error("each layer needs exactly one of 'type' (a layer) or 'block' (a block instance)",
                             where, "type")
        repeat = substitute(raw.get("repeat", 1), scope.variables, self, where, "repeat")
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise self.error(f"expected a positive integer, got {repeat!r}", where, "repeat")
        if len(self.records) + repeat * self.size_hint(raw, scope.depth) > MAX_LAYERS:
            raise self.error(f"the spec would expand to more than {MAX_LAYERS:,} layers", where, "repeat",
                             "check the repeat counts (nested repeats multiply)")
        for key in ("when", "unless"):
            if key in raw:
                flag = substitute(raw[key], scope.variables, self, where, key)
                if not isinstance(flag, bool):
                    raise self.error(f"expected true or false, got {flag!r}", where, key)
                if flag != (key == "when"):
                    return previous
        for copy in range(1, repeat + 1):
            variables = dict(scope.variables, i=copy) if repeat > 1 or "i" not in scope.variables else scope.variables
            inputs = raw.get("inputs") if copy == 1 else None
            if "block" in raw:
                previous = self.block_instance(raw, scope, variables, previous, inputs, copy, repeat, where)
            else:
                previous = self.layer(raw, scope, variables, previous, inputs, copy, repeat, where)
        return previous

    def size_hint(self, raw: Mapping[str, Any], depth: int = 0) -> int:
        """A lower bound on the layers one copy of an entry expands to (literal repeats
        multiply; entries under when/unless and repeats given by variables count once)."""
        if "block" not in raw:
            return 1
        name = raw["block"]
        if not isinstance(name, str) or name not in self.blocks or depth > MAX_BLOCK_DEPTH:
            return 1
        cached = self._size_hints.get(name)
        if cached is None:
            self._size_hints[name] = 1  # provisional, in case the block uses itself
            total = 0
            for entry in self.blocks[name].get("layers") or []:
                if not isinstance(entry, Mapping):
                    continue
                repeat = entry.get("repeat", 1)
                repeat = repeat if isinstance(repeat, int) and not isinstance(repeat, bool) and repeat > 0 else 1
                total += (0 if ("when" in entry or "unless" in entry) else repeat * self.size_hint(entry, depth + 1))
            cached = self._size_hints[name] = max(total, 1)
        return cached

    def name_for(self, raw: Mapping[str, Any], scope: _Scope, variables: dict[str, Any], alias: str,
                 copy: int, repeat: int, where: str) -> tuple[str, str]:
        """Return ``(local, full)`` names for an entry."""
        template = raw.get("name")
        if template is None:
            count = scope.counters.get(alias, 0) + 1
            scope.counters[alias] = count
            local = f"{alias}{count}"
            return local, scope.prefix + local
        if not isinstance(template, str):
            raise self.error(f"a name must be text, got {template!r}", where, "name")
        local = substitute(template, variables, self, where, "name")
        local = str(local)
        if repeat > 1 and "${i}" not in template and "$i" not in template:
            local = f"{local}_{copy}"
        if not _NAME_RE.match(local):
            raise self.error(f"invalid name {local!r}: use letters, digits, '_', '.', '-' or '/', "
                             "starting with a letter or '_'", where, "name")
        if local == INPUT_NAME:
            raise self.error("'input' is reserved for the model's (or block's) input", where, "name")
        if "name" in _variables_in(template) and scope.parent is not None:
            # a name built from ${name} lives beside the block instance, not inside it
            return local, scope.sibling_prefix + local
        return local, scope.prefix + local

    def claim(self, full: str, local: str, scope: _Scope, where: str) -> None:
        if full in self.by_name or full in self.aliases or full == INPUT_NAME:
            raise self.error(f"the name {short_repr(full)} is used twice", where, "name",
                             "give each layer (or block instance) a unique name")
        scope.local[local] = full
        if scope.parent is not None and full == scope.sibling_prefix + local:
            # a ${name} sibling can be named by its short name where it lives, too
            scope.parent.local.setdefault(local, full)

    def layer(self, raw, scope, variables, previous, inputs, copy, repeat, where) -> str:
        try:
            ltype = registry.get(substitute(raw["type"], variables, self, where, "type"))
        except ArchstatError as exc:
            raise exc.with_context(file=self.label, layer=where)
        local, full = self.name_for(raw, scope, variables, ltype.alias, copy, repeat, where)
        self.claim(full, local, scope, where)
        fields = {k: substitute(v, variables, self, full, str(k))
                  for k, v in raw.items() if k not in ENTRY_KEYS and k != "type"}
        try:
            attrs = ltype.normalise(fields)
        except ArchstatError as exc:
            if scope.block is not None:  # the typo is in the block's definition: say which
                exc.message += f" (in block {scope.block!r}, defined under 'blocks')"
            raise exc.with_context(file=self.label, layer=full)
        refs = self.input_refs(inputs, previous, variables, full, ltype)
        ref_scope = scope if inputs is not None else None
        if len(self.records) >= MAX_LAYERS:
            raise self.error(f"the spec expands to more than {MAX_LAYERS:,} layers", full, "repeat",
                             "check the repeat counts (nested repeats multiply)")
        record = LayerRecord(full, ltype, attrs, (), len(self.records))
        self.records.append(record)
        self.by_name[full] = record
        self.pending.append((record, refs, ref_scope))
        return full

    def input_refs(self, inputs, previous, variables, full, ltype) -> list[str]:
        if inputs is None:
            if ltype.min_inputs > 1:
                raise self.error(f"a {ltype.name} layer needs 'inputs': a list of at least "
                                 f"{ltype.min_inputs} layer names", full, "inputs")
            return [previous]
        inputs = substitute(inputs, variables, self, full, "inputs")
        refs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs) or not refs:
            raise self.error(f"expected a layer name or a list of names, got {inputs!r}", full, "inputs")
        if len(refs) < ltype.min_inputs or (ltype.max_inputs is not None and len(refs) > ltype.max_inputs):
            want = (f"exactly {ltype.min_inputs}" if ltype.max_inputs == ltype.min_inputs
                    else f"at least {ltype.min_inputs}")
            raise self.error(f"a {ltype.name} layer takes {want} input(s), got {len(refs)}", full, "inputs")
        return refs

    def block_instance(self, raw, scope, variables, previous, inputs, copy, repeat, where) -> str:
        bname = substitute(raw["block"], variables, self, where, "block")
        if not isinstance(bname, str) or bname not in self.blocks:
            raise self.error(f"unknown block {bname!r}", where, "block",
                             did_you_mean(str(bname), list(self.blocks)) or
                             (f"blocks defined: {', '.join(self.blocks)}" if self.blocks else
                              "define it under the top-level 'blocks' key"))
        if scope.depth >= MAX_BLOCK_DEPTH:
            raise self.error(f"blocks nest deeper than {MAX_BLOCK_DEPTH} levels (does block "
                             f"{bname!r} use itself?)", where, "block")
        block = self.blocks[bname]
        local, full = self.name_for(raw, scope, variables, bname, copy, repeat, where)
        self.claim(full, local, scope, where)
        declared = block.get("args", {}) or {}
        args = {}
        for key, value in raw.items():
            if key in ENTRY_KEYS or key == "block":
                continue
            if key not in declared:
                raise self.error(f"block {bname!r} has no argument {key!r}"
                                 f" (its arguments: {', '.join(declared) or 'none'})", full, str(key),
                                 did_you_mean(str(key), declared))
            args[key] = substitute(value, variables, self, full, str(key))
        for key, default in declared.items():
            if key not in args:
                if default == _REQUIRED_ARG:
                    raise self.error(f"block {bname!r} needs the argument {key!r}", full, key)
                args[key] = default
        if inputs is not None:
            refs = substitute(inputs, variables, self, full, "inputs")
            if not isinstance(refs, str):
                raise self.error("a block instance takes one input (a layer name)", full, "inputs")
            if refs in (local, full):
                raise self.error("a block instance cannot be its own input", full, "inputs")
            block_input = self.resolve_now(refs, scope, full)
        else:
            block_input = previous
        inherited = {"i": variables["i"]} if "i" in variables else {}
        inner = _Scope(prefix=full + ".", variables=dict(args, name=local, **inherited),
                       block_input=block_input, parent=scope, depth=scope.depth + 1,
                       sibling_prefix=full[:len(full) - len(local)], block=bname)
        last = self.expand(block["layers"], inner, block_input, bname)
        if last == block_input:
            raise self.error(f"block {bname!r} produced no layers (all dropped by when/unless)", full, "block")
        self.aliases[full] = last
        return last

    def resolve_now(self, ref: str, scope: _Scope, where: str) -> str:
        full = scope.resolve(ref, self.by_name, self.aliases)
        if full is None:
            raise self.error(f"no layer named {ref!r} (a block's input must be defined before it)",
                             where, "inputs", did_you_mean(ref, scope.visible(self.by_name, self.aliases)))
        return full


def _variables_in(text: str) -> set[str]:
    return {a or b for a, b in _VAR_RE.findall(text)}


def substitute(value: Any, variables: Mapping[str, Any], expander: _Expander, layer: str, field: str,
               _depth: int = 0, _budget: list[int] | None = None) -> Any:
    """Replace ``$var`` (whole value, type kept) and ``${var}`` (inside text) recursively.

    Refuses values nested deeper than :data:`MAX_VALUE_DEPTH` or with more than
    :data:`MAX_VALUE_ITEMS` elements (a YAML alias bomb expands exponentially otherwise).
    """
    budget = [MAX_VALUE_ITEMS] if _budget is None else _budget
    budget[0] -= 1
    if budget[0] < 0 or _depth > MAX_VALUE_DEPTH:
        raise expander.error(f"the value is too large or too deeply nested (more than {MAX_VALUE_ITEMS:,} "
                             f"elements or {MAX_VALUE_DEPTH} levels)", layer, field,
                             "field values are numbers, names, or short lists of them")
    if isinstance(value, str):
        whole = _VAR_RE.fullmatch(value)
        if whole:
            return _lookup(whole.group(1) or whole.group(2), variables, expander, layer, field)
        if "$" not in value:
            return value
        return _VAR_RE.sub(lambda m: _format(_lookup(m.group(1) or m.group(2), variables, expander,
                                                     layer, field)), value)
    if isinstance(value, list):
        return [substitute(v, variables, expander, layer, field, _depth + 1, budget) for v in value]
    if isinstance(value, Mapping):
        return {k: substitute(v, variables, expander, layer, field, _depth + 1, budget) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        raise expander.error(f"expected a finite number, got {value!r}", layer, field)
    return value


def _lookup(var: str, variables: Mapping[str, Any], expander: _Expander, layer: str, field: str) -> Any:
    if var not in variables:
        known = sorted(variables)
        raise expander.error(f"unknown variable ${var}" + (f" (known here: {', '.join('$' + k for k in known)})"
                                                           if known else " (no variables are defined here)"),
                             layer, field, did_you_mean(var, known))
    return variables[var]


def _format(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
