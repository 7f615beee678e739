"""Expanding a spec's ``layers``: blocks, repeats, when/unless, names and substitution.

The rules are stated once, in :mod:`archstat.spec`'s docstring; this module applies them and
turns the entries into :class:`~archstat.spec.LayerRecord` objects with validated fields and
resolved input names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import expr, spec_replay
from .errors import ArchstatError, did_you_mean, short_repr
from .layers import registry
from .spec import INPUT_NAME, LayerRecord, RESERVED_NAMES, derive
from .spec_values import normalised, substitute, variables_in

ENTRY_KEYS = ("name", "inputs", "repeat", "when", "unless", "training_only", "shares", "call")
#: keys of a layer entry that are not the layer type's fields
_NOT_FIELDS = frozenset(ENTRY_KEYS) | {"type"}
BLOCK_KEYS = ("args", "let", "layers", "description")
#: refuse specs that would expand beyond this many layers (a typo such as repeat: 10000000)
MAX_LAYERS = 1_000_000
MAX_BLOCK_DEPTH = 32
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$")
_REQUIRED_ARG = "required"


def expand(label: str, blocks: Mapping[str, Any], layers: list[Any], variables: Mapping[str, Any],
           steps: expr.Budget | None = None, *, parsed: bool = False) -> list[LayerRecord]:
    """Expand the top-level ``layers`` with the spec's variables into layer records
    (``steps``: the spec's evaluation budget, shared by every expression; ``parsed``: the blocks
    are the loader's unchanging parse of a file, see :func:`archstat.spec_replay.memo_for`)."""
    for bname, block in blocks.items():
        _check_block(bname, block, label)
    steps = steps or expr.Budget()
    before = steps.steps
    try:
        return _Expander(label, blocks, variables, steps, parsed).run(layers)
    except _Stale:   # a replayed instance's inputs resolve otherwise (its probes): expand it all again
        steps.steps = before
        return _Expander(label, blocks, variables, steps, parsed, memo=False).run(layers)


class _Stale(Exception):
    """A name a replay's inputs were resolved without became a layer (see Replay.probes)."""


def _check_block(bname: Any, block: Any, label: str) -> None:
    where = f"blocks.{bname}"
    if not isinstance(bname, str) or not _NAME_RE.match(bname):
        raise ArchstatError("a block name must be an identifier", file=label, field=where)
    if not isinstance(block, Mapping):
        raise ArchstatError("expected a mapping with 'layers' (and optional 'args', 'let')", file=label,
                            field=where)
    for key in block:
        if key not in BLOCK_KEYS:
            raise ArchstatError(f"unknown key in a block (allowed: {', '.join(BLOCK_KEYS)})", file=label,
                                field=f"{where}.{key}", hint=did_you_mean(str(key), BLOCK_KEYS))
    args = block.get("args", {}) or {}
    if not isinstance(args, Mapping):
        raise ArchstatError("expected a mapping of argument name to default (or 'required')",
                            file=label, field=f"{where}.args")
    for arg in args:
        if not isinstance(arg, str) or arg in RESERVED_NAMES or arg in ENTRY_KEYS or arg == "block":
            raise ArchstatError(f"{arg!r} cannot be a block argument (reserved or not a name)",
                                file=label, field=f"{where}.args")
    if not isinstance(block.get("layers"), list) or not block["layers"]:
        raise ArchstatError("expected a non-empty list of layers", file=label, field=f"{where}.layers")


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
    training_only: bool = False       # every layer expanded here runs only in training
    _first_copy: dict[str, Any] | None = None

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
            if scope.prefix and scope.prefix + ref in full_names:
                return scope.prefix + ref   # a path into a nested instance: proj.1 is this.proj.1
            scope = scope.parent
        if ref in full_names:
            return ref
        return aliases.get(ref)

    def first_copy(self) -> dict[str, Any]:
        """The variables with ``i = 1``."""
        if self._first_copy is None:
            self._first_copy = dict(self.variables, i=1)
        return self._first_copy

    def visible(self, full_names: Mapping[str, Any], aliases: Mapping[str, str]) -> list[str]:
        names: list[str] = [INPUT_NAME]
        scope: _Scope | None = self
        while scope is not None:
            names.extend(scope.local)
            scope = scope.parent
        return names + list(full_names) + list(aliases)


class _Expander:
    def __init__(self, label: str, blocks: Mapping[str, Any], variables: Mapping[str, Any],
                 steps: expr.Budget, parsed: bool = False, memo: bool = True):
        self.label = label
        self.steps = steps
        self.blocks = blocks
        self.top_variables = dict(variables)
        self.records: list[LayerRecord] = []
        self.by_name: dict[str, LayerRecord] = {}
        self.aliases: dict[str, str] = {}            # block instance name -> its last layer
        self._size_hints: dict[str, int] = {}
        # (record, references as written in its 'inputs', their scope)
        self.pending: list[tuple[LayerRecord, list[str], _Scope]] = []
        self.sharing: list[tuple[LayerRecord, dict[str, str], _Scope]] = []   # (record, its shares as written)
        self.memo = spec_replay.memo_for(blocks, parsed=parsed) if memo else None
        self.probes: list[str] = []   # the probes of the instances replayed (full names)
        self.input_probes: list[str] = []   # instance inputs' probes, while recording (full names)
        self.alias_log: list[str] = []                    # self.aliases' keys, in order
        self.recordings: list[spec_replay.Recording] = []   # the instances being recorded, outermost first

    def error(self, message: str, layer: str | None = None, field: str | None = None,
              hint: str | None = None) -> ArchstatError:
        return ArchstatError(message, file=self.label, layer=layer, field=field, hint=hint)

    def sub(self, value: Any, variables: Mapping[str, Any], layer: str | None, field: str) -> Any:
        kind = type(value)
        if kind is int or kind is bool or (kind is str and "$" not in value):
            return value  # nothing to substitute: most fields of most layers
        return substitute(value, variables, self.label, layer, field, steps=self.steps)

    def run(self, entries: list[Any]) -> list[LayerRecord]:
        top = _Scope(prefix="", variables=self.top_variables, block_input=INPUT_NAME)
        self.by_name[INPUT_NAME] = None  # type: ignore[assignment]  # reserved
        self.expand(entries, top, previous=INPUT_NAME)
        del self.by_name[INPUT_NAME]
        if not self.records:
            raise self.error("the spec expands to no layers (every entry was dropped by when/unless or "
                             "repeat: 0)", field="layers")
        if any(probe in self.by_name for probe in self.probes):
            raise _Stale
        for record, refs, scope in self.pending:
            resolved = []
            for ref in refs:
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
        for record, ties, scope in self.sharing:
            record.shares = {}
            for tensor, ref in ties.items():
                owner = scope.resolve(ref, self.by_name, self.aliases)
                if owner is None or owner == record.name:
                    raise self.error(f"no other layer named {short_repr(ref)} to share parameters with", record.name,
                                     "shares", did_you_mean(ref, [n for n in self.by_name if n != record.name]))
                record.shares[tensor] = owner
        return self.records

    # -- one list of entries in one scope; returns the last layer's full name
    def expand(self, entries: list[Any], scope: _Scope, previous: str, block: str | None = None) -> str:
        for position, raw in enumerate(entries):
            if type(raw) is not dict and not isinstance(raw, Mapping):
                raise self.error(f"layer #{position + 1} must be a mapping like {{type: conv2d, ...}}, "
                                 f"got {short_repr(raw)}", field=f"blocks.{block}.layers" if block else "layers")
            previous = self.entry(raw, scope, previous, position)
        return previous

    def entry(self, raw: Mapping[str, Any], scope: _Scope, previous: str, position: int) -> str:
        name = raw.get("name")
        where = str(name) if isinstance(name, (str, int)) and not isinstance(name, bool) else f"#{position + 1}"
        if ("type" in raw) == ("block" in raw):
            raise self.error("each layer needs exactly one of 'type' (a layer) or 'block' (a block instance)",
                             where, "type")
        repeat = self.sub(raw.get("repeat", 1), scope.variables, where, "repeat")
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 0:
            raise self.error(f"expected an integer >= 0, got {short_repr(repeat)}", where, "repeat")
        if len(self.records) + repeat * self.size_hint(raw, scope.depth) > MAX_LAYERS:
            raise self.error(f"the spec would expand to more than {MAX_LAYERS:,} layers", where, "repeat",
                             "check the repeat counts (nested repeats multiply)")
        training_only = scope.training_only
        if "training_only" in raw:
            flag = self.sub(raw["training_only"], scope.variables, where, "training_only")
            if not isinstance(flag, bool):
                raise self.error(f"expected true or false, got {short_repr(flag)}", where, "training_only")
            training_only = training_only or flag
        for copy in range(1, repeat + 1):
            # an entry that repeats binds i to its copy; any other entry sees the enclosing i
            if "repeat" in raw:
                variables = dict(scope.variables, i=copy)
            elif "i" in scope.variables:
                variables = scope.variables
            else:   # the top level's i = 1, one dict for all its entries (variables are only read)
                variables = scope.first_copy()
            if not self.kept(raw, variables, where):   # when/unless, decided for each copy
                continue
            inputs = raw.get("inputs") if copy == 1 else None
            if "block" in raw:
                previous = self.block_instance(raw, scope, variables, previous, inputs, copy, repeat, where,
                                               training_only)
            else:
                previous = self.layer(raw, scope, variables, previous, inputs, copy, repeat, where,
                                      training_only)
        return previous

    def kept(self, raw: Mapping[str, Any], variables: Mapping[str, Any], where: str) -> bool:
        """False when the entry's ``when`` is false or its ``unless`` true."""
        for key in ("when", "unless"):
            if key in raw:
                flag = self.sub(raw[key], variables, where, key)
                if not isinstance(flag, bool):
                    raise self.error(f"expected true or false, got {short_repr(flag)}", where, key,
                                     "write a variable or a comparison, e.g. when: ${stride == 1}")
                if flag != (key == "when"):
                    return False
        return True

    def size_hint(self, raw: Mapping[str, Any], depth: int = 0) -> int:
        """A lower bound on the layers one copy of an entry expands to (literal repeats
        multiply; entries under when/unless and repeats given by expressions count once)."""
        if "block" not in raw:
            return 1
        name = raw["block"]
        if not isinstance(name, str) or name not in self.blocks or depth > MAX_BLOCK_DEPTH:
            return 1
        if not self._size_hints:
            # every block's, in the order they are defined: a function of the blocks alone, not
            # of which entries the expansion met first (a replayed instance's entries are not
            # met: the hints, truncated below MAX_BLOCK_DEPTH, would differ)
            for bname in self.blocks:
                self._block_hint(bname, 0)
        return self._size_hints[name]

    def _block_hint(self, name: str, depth: int) -> int:
        cached = self._size_hints.get(name)
        if cached is None:
            self._size_hints[name] = 1  # provisional, in case the block uses itself
            total = 0
            for entry in self.blocks[name].get("layers") or []:
                if not isinstance(entry, Mapping):
                    continue
                repeat = entry.get("repeat", 1)
                repeat = repeat if isinstance(repeat, int) and not isinstance(repeat, bool) and repeat > 0 else 1
                if "when" in entry or "unless" in entry:
                    continue
                used = entry.get("block")
                hint = 1
                if "block" in entry and isinstance(used, str) and used in self.blocks and depth + 1 <= MAX_BLOCK_DEPTH:
                    hint = self._block_hint(used, depth + 1)
                total += repeat * hint
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
        if isinstance(template, int) and not isinstance(template, bool):
            template = str(template)  # torchvision's Sequential indices: name: 0
        if not isinstance(template, str):
            raise self.error(f"a name must be text, got {short_repr(template)}", where, "name")
        local = str(self.sub(template, variables, where, "name"))
        uses_i = "i" in variables_in(template)
        if repeat > 1 and not uses_i:
            local = f"{local}_{copy}"
        if not _NAME_RE.match(local):
            raise self.error(f"invalid name {short_repr(local)}: use letters, digits, '_', '.', '-' or '/'",
                             where, "name")
        if local == INPUT_NAME:
            raise self.error("'input' is reserved for the model's (or block's) input", where, "name")
        if "name" in variables_in(template) and scope.parent is not None:
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

    def layer(self, raw, scope, variables, previous, inputs, copy, repeat, where, training_only) -> str:
        try:
            ltype = registry.get(self.sub(raw["type"], variables, where, "type"))
        except ArchstatError as exc:
            raise exc.with_context(file=self.label, layer=where)
        local, full = self.name_for(raw, scope, variables, ltype.alias, copy, repeat, where)
        self.claim(full, local, scope, where)
        fields = {k: self.sub(v, variables, full, str(k)) for k, v in raw.items() if k not in _NOT_FIELDS}
        try:
            attrs = normalised(ltype, fields)
        except ArchstatError as exc:
            if scope.block is not None:  # the typo is in the block's definition: say which
                exc.message += f" (in block {scope.block!r}, defined under 'blocks')"
            raise exc.with_context(file=self.label, layer=full)
        refs = self.input_refs(inputs, previous, variables, full, ltype)
        if len(self.records) >= MAX_LAYERS:
            raise self.error(f"the spec expands to more than {MAX_LAYERS:,} layers", full, "repeat",
                             "check the repeat counts (nested repeats multiply)")
        # the default input is already a full name; names written in 'inputs' are resolved
        # once every layer exists (they may name a later one)
        record = LayerRecord(full, ltype, attrs, tuple(refs) if inputs is None else (), len(self.records),
                             training_only)
        self.records.append(record)
        self.by_name[full] = record
        if inputs is not None:
            self.pending.append((record, refs, scope))
        if "call" in raw:
            call = self.sub(raw["call"], variables, full, "call")
            if call not in registry.TORCH_CALLS:
                raise self.error(f"expected one of {', '.join(registry.TORCH_CALLS)}, got {short_repr(call)}",
                                 full, "call", did_you_mean(str(call), registry.TORCH_CALLS)
                                 or "module: an nn.Module; function: F.relu; torch: torch.cat; method: x.mean(); "
                                    "operator: x + y")
            record.call = call
        if "shares" in raw:
            value = self.sub(raw["shares"], variables, full, "shares")
            ties = {"*": value} if not isinstance(value, Mapping) else dict(value)
            if not ties or (isinstance(value, Mapping) and "*" in value) or not all(
                    isinstance(k, str) and isinstance(v, (str, int)) and not isinstance(v, bool)
                    for k, v in ties.items()):
                raise self.error("expected the layer whose parameters this one uses, or a mapping of tensor name "
                                 f"to layer ({{bias: conv1}}), got {short_repr(value)}", full, "shares")
            self.sharing.append((record, {k: str(v) for k, v in ties.items()}, scope))
        return full

    def input_refs(self, inputs, previous, variables, full, ltype) -> list[str]:
        if inputs is None:
            if ltype.min_inputs > 1:
                raise self.error(f"a {ltype.name} layer needs 'inputs': a list of at least "
                                 f"{ltype.min_inputs} layer names", full, "inputs")
            return [previous]
        inputs = self.sub(inputs, variables, full, "inputs")
        refs = [inputs] if isinstance(inputs, (str, int)) and not isinstance(inputs, bool) else inputs
        if isinstance(refs, list):
            refs = [str(r) if isinstance(r, int) and not isinstance(r, bool) else r for r in refs]
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs) or not refs:
            raise self.error(f"expected a layer name or a list of names, got {short_repr(inputs)}", full, "inputs")
        if len(refs) < ltype.min_inputs or (ltype.max_inputs is not None and len(refs) > ltype.max_inputs):
            want = (f"exactly {ltype.min_inputs}" if ltype.max_inputs == ltype.min_inputs
                    else f"at least {ltype.min_inputs}")
            raise self.error(f"a {ltype.name} layer takes {want} input(s), got {len(refs)}", full, "inputs")
        return refs

    def block_instance(self, raw, scope, variables, previous, inputs, copy, repeat, where, training_only) -> str:
        bname = self.sub(raw["block"], variables, where, "block")
        if not isinstance(bname, str) or bname not in self.blocks:
            raise self.error(f"unknown block {short_repr(bname)}", where, "block",
                             did_you_mean(str(bname), list(self.blocks)) or
                             (f"blocks defined: {', '.join(self.blocks)}" if self.blocks else
                              "define it under the top-level 'blocks' key"))
        if scope.depth >= MAX_BLOCK_DEPTH:
            raise self.error(f"blocks nest deeper than {MAX_BLOCK_DEPTH} levels (does block "
                             f"{bname!r} use itself?)", where, "block")
        block = self.blocks[bname]
        if "call" in raw:   # how PyTorch runs a layer; a block's layers each say it themselves
            raise self.error("'call' applies to a layer, not a block instance", where, "call",
                             f"set call on the layers inside block {bname!r}")
        local, full = self.name_for(raw, scope, variables, bname, copy, repeat, where)
        self.claim(full, local, scope, where)
        declared = block.get("args", {}) or {}
        inherited = {"i": variables["i"]} if "i" in variables else {}
        # the block's variables: the spec's, then its arguments (given ones evaluated where
        # the instance is written, defaults in the block, each seeing the arguments before it)
        inner_vars = dict(self.top_variables, name=local, **inherited)
        for key, value in raw.items():
            if key in ENTRY_KEYS or key == "block":
                continue
            if key not in declared:
                raise self.error(f"block {bname!r} has no argument {key!r}"
                                 f" (its arguments: {', '.join(declared) or 'none'})", full, str(key),
                                 did_you_mean(str(key), declared))
            inner_vars[key] = self.sub(value, variables, full, str(key))
        for key, default in declared.items():
            if key not in raw:
                if default == _REQUIRED_ARG:
                    raise self.error(f"block {bname!r} needs the argument {key!r}", full, key)
                try:
                    inner_vars[key] = self.sub(default, inner_vars, full, str(key))
                except ArchstatError as exc:
                    exc.message += f" (the default of argument {key!r} of block {bname!r})"
                    raise
        memo = self.memo
        memo_key = memo.key(bname, inner_vars, self.top_variables, training_only) if memo is not None else None
        replay = memo.get(memo_key) if memo_key is not None else None
        if (replay is not None and replay.steps <= self.steps.steps and scope.depth + replay.depth < MAX_BLOCK_DEPTH
                and len(self.records) + len(replay.records) <= MAX_LAYERS and self.replayable(replay, full)):
            # the instance's input is evaluated here, not recorded: the budget must pay it and the
            # recorded steps, else (or on an error) the real expansion runs, with the budget untouched
            before = self.steps.steps
            try:
                block_input = self.instance_input(inputs, variables, scope, local, full, previous)
            except ArchstatError:
                block_input = None
            if block_input is not None and replay.steps <= self.steps.steps:
                for outer in self.recordings:
                    outer.deepest = max(outer.deepest, scope.depth + replay.depth)
                return self.replay(replay, full, block_input)
            self.steps.steps = before
        steps = self.steps.steps
        inner_vars = derive(block.get("let"), inner_vars, self.label, f"blocks.{bname}.let", full, self.steps)
        before_input = self.steps.steps
        block_input = self.instance_input(inputs, variables, scope, local, full, previous)
        steps -= before_input - self.steps.steps   # (a replay evaluates its own input: not the block's steps)
        inner = _Scope(prefix=full + ".", variables=inner_vars, block_input=block_input, parent=scope,
                       depth=scope.depth + 1, sibling_prefix=full[:len(full) - len(local)], block=bname,
                       training_only=training_only)
        for outer in self.recordings:
            outer.deepest = max(outer.deepest, scope.depth)
        rec = None
        if memo_key is not None:
            rec = spec_replay.Recording(memo_key, inner.prefix, block_input, inner, len(self.records), len(self.pending),
                                        len(self.sharing), len(self.alias_log), steps, scope.depth,
                                        len(self.probes), len(self.input_probes))
            self.recordings.append(rec)
        try:
            last = self.expand(block["layers"], inner, block_input, bname)
        finally:
            if rec is not None:
                self.recordings.pop()
        if last == block_input:
            raise self.error(f"block {bname!r} produced no layers (all dropped by when/unless or repeat 0)",
                             full, "block")
        if rec is not None:
            made = spec_replay.record(rec, last, self.records, self.pending, self.sharing, self.alias_log,
                                      self.aliases, self.by_name, self.steps.steps, self.probes,
                                      self.input_probes)
            if made is not None:
                memo.put(memo_key, made)
        self.aliases[full] = last
        self.alias_log.append(full)
        return last

    def instance_input(self, inputs, variables, scope: _Scope, local: str, full: str, previous: str) -> str:
        """A block instance's input: its ``inputs`` (one layer name) or the previous layer."""
        if inputs is None:
            return previous
        refs = self.sub(inputs, variables, full, "inputs")
        if isinstance(refs, int) and not isinstance(refs, bool):
            refs = str(refs)
        if not isinstance(refs, str):
            raise self.error("a block instance takes one input (a layer name)", full, "inputs")
        if refs in (local, full):
            raise self.error("a block instance cannot be its own input", full, "inputs")
        block_input = self.resolve_now(refs, scope, full)
        if refs != INPUT_NAME and self.recordings:   # a name, not the flow of the enclosing block
            self.input_probes.extend(spec_replay.missed(scope, refs, self.by_name))
            made = self.by_name.get(block_input)
            for outer in self.recordings:   # reaching outside a recording (b2.x may be a layer the spec
                if made is None or made.index < outer.records:   # made before b2, under b2's prefix)
                    outer.inside = False
        return block_input

    def replayable(self, replay: spec_replay.Replay, full: str) -> bool:
        """False when a name the replay makes is taken (the real expansion says where, as claim
        does), or a name its resolution relied on being free is a layer (its probes)."""
        prefix = full + "."
        by_name, aliases = self.by_name, self.aliases
        return not (any(prefix + suffix in by_name or prefix + suffix in aliases for suffix in replay.names)
                    or any(prefix + p in by_name for p in replay.input_probes)
                    or any(prefix + p in by_name for p in replay.probes))   # (else found at the end: _Stale)

    def replay(self, replay: spec_replay.Replay, full: str, block_input: str) -> str:
        """The layers of a recorded instance, renamed under ``full`` and fed by ``block_input``
        (its names checked free: :meth:`replayable`)."""
        prefix = full + "."
        records, by_name, aliases = self.records, self.by_name, self.aliases
        for suffix, ltype, attrs, training_only, inputs, call, shares in replay.records:
            name = prefix + suffix
            record = LayerRecord(name, ltype, attrs, tuple(block_input if i is None else prefix + i for i in inputs),
                                 len(records), training_only)
            record.call = call
            if shares is not None:
                record.shares = {tensor: prefix + owner for tensor, owner in shares}
            records.append(record)
            by_name[name] = record
        self.probes.extend(prefix + probe for probe in replay.probes)
        if self.recordings:
            self.input_probes.extend(prefix + probe for probe in replay.input_probes)
        for suffix, last in replay.aliases:
            aliases[prefix + suffix] = prefix + last
            self.alias_log.append(prefix + suffix)
        self.steps.steps -= replay.steps
        last = prefix + replay.last
        aliases[full] = last
        self.alias_log.append(full)
        return last

    def resolve_now(self, ref: str, scope: _Scope, where: str) -> str:
        full = scope.resolve(ref, self.by_name, self.aliases)
        if full is None:
            raise self.error(f"no layer named {ref!r} (a block's input must be defined before it)",
                             where, "inputs", did_you_mean(ref, scope.visible(self.by_name, self.aliases)))
        return full
