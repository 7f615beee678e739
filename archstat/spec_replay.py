"""Replaying a block instance's expansion: a memo of :mod:`archstat.spec_expand`'s work, exact.

The layers a block instance expands to are a function of the block's definition (and of the
blocks it uses), of the values of the variables its templates read, and of whether it runs only
in training; its instance name only prefixes their names, and its input only feeds the layers
that read ``input``. A RegNet repeats a few argument sets over its ~20 bottlenecks, and a
design-space sweep repeats them across configurations, so each distinct instance is expanded
once (per process) and later ones are *replayed*: the recorded layer records renamed under the
new prefix, their inputs pointed at the new input.

Which variables a block reads is found statically: every name in every template of its
definition (its layers, ``let`` and argument defaults), and for the blocks it uses, theirs
(read in the spec's top-level variables, which is all a nested instance inherits besides its
arguments, its ``name`` and ``i``). Every name a template's expressions mention counts
(:func:`template_names`: a variable ``e`` hides the constant e, and ``${[x for x in x]}`` reads
x). The memo key holds those variables' values with their types (8 and 8.0 and True differ) and
a float's exact bits (-0.0 is written ``-0.0``). A block that names the block it uses through a
template is never memoised.

An expansion is recorded only when it stayed inside its instance: every layer named under the
instance's prefix (a ``${name}`` sibling is not), every input and every shared-parameter owner
resolved, when the block ends, to a layer or block instance made by this expansion or to the
instance's input through the name ``input`` (or by default: the flow of the block); a name
under the prefix that the spec made outside the instance (a layer ``b2.q`` before ``b2``, maybe
its input by the flow) is outside too. A block
reaching outside (a later layer, a layer of the enclosing model by name) is expanded each time.
A name found in an enclosing scope of the instance relied on ``prefix + name`` not being a layer
in the scopes below (a *probe*): the spec may name such a layer from outside (``b2.n.q``); when
a replayed instance's probe is a layer once the spec is expanded, the whole spec is expanded
again without the memo.

A replay charges the spec's evaluation budget the steps the recorded expansion took (its ``let``
and layers; the instance's ``inputs`` is evaluated by the replay itself), and is not used when
the budget cannot pay them, so that results (and the budget's error) never depend on what this
process expanded before. Only successful expansions are recorded, and a replay whose names are
taken, or whose input fails, is not used: every error comes from a real expansion.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, Mapping

from .spec import INPUT_NAME, LayerRecord
from .spec_io import MAX_VALUE_DEPTH
from . import expr, expr_template

if TYPE_CHECKING:   # pragma: no cover
    from .spec_expand import _Scope

class _Missing:
    """A variable that is not defined (a key part distinct from every value)."""

    __slots__ = ()


_MISSING = _Missing()
#: recorded instances kept per spec (about 3 kB each, 5 to 25 layers, with their key; the older
#: half is forgotten when full), and specs kept
MAX_ENTRIES = 20_000
MAX_SPECS = 8
#: the most values a memoised spec's blocks may hold (a larger one is expanded every time)
MAX_DEFINITION = 100_000
#: a block recorded this many times but replayed less than a quarter as often is no longer recorded
GIVE_UP_AFTER = 64


def freeze(value: Any) -> Any:
    """A hashable stand-in for a value, equal only for values of the same types and contents."""
    kind = type(value)
    if kind in _SCALARS:
        return kind, _exact(value)
    if kind is list or kind is tuple:
        return kind, tuple(freeze(v) for v in value)
    if kind is dict or isinstance(value, Mapping):
        return dict, tuple((freeze(k), freeze(v)) for k, v in value.items())
    return kind, _exact(value)


_SCALARS = frozenset({int, float, str, bool, type(None), _Missing})


def _exact(value: Any) -> Any:
    """A value, or a float's (a complex's) exact text: -0.0 == 0.0, but ``l${x}`` names them
    l-0.0 and l0.0 (a NumPy float too)."""
    return repr(value) if isinstance(value, (float, complex)) else value


def _definition(blocks: Mapping[str, Any]) -> Any:
    """The frozen blocks (:func:`freeze`), walking at most :data:`MAX_DEFINITION` values (a
    YAML alias bomb is not memoised: its expansion fails)."""
    return _walk(blocks, 0, [MAX_DEFINITION])


def _walk(value: Any, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_VALUE_DEPTH:
        raise _TooBig
    kind = type(value)
    if kind in _SCALARS:
        return kind, _exact(value)
    if kind is list or kind is tuple:
        return kind, tuple(_walk(v, depth + 1, budget) for v in value)
    if kind is dict or isinstance(value, Mapping):
        return dict, tuple((_walk(k, depth + 1, budget), _walk(v, depth + 1, budget)) for k, v in value.items())
    return kind, _exact(value)


@lru_cache(maxsize=4096)
def template_names(text: str) -> frozenset[str]:
    """Every name a template's expressions mention: a superset of what it reads. Not
    :func:`~archstat.spec_values.variables_in`, which leaves out the names of constants and of
    comprehension variables, though a variable ``e`` (an expansion ratio) hides the constant e
    and ``${[x for x in x]}`` reads the variable x."""
    try:
        parts = expr_template.split_template(text) or ()
    except expr.ExprError:
        return frozenset()   # (rendering it fails)
    names: set[str] = set()
    for kind, source in parts:
        if kind == "var":
            names.add(source)
        elif kind == "expr":
            try:
                tree = expr.parse(source)
            except expr.ExprError:
                continue
            names.update(node.id for node in ast.walk(tree) if isinstance(node, ast.Name))
    return frozenset(names)


def _names(value: Any, out: set[str]) -> None:
    """Every variable name the templates in a (nested) value read, added to ``out`` (a value
    :func:`_definition` walked: bounded)."""
    if isinstance(value, str):
        if "$" in value:
            out |= template_names(value)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _names(k, out)
            _names(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _names(v, out)


class _TooBig(Exception):
    pass


def _interned(value: Any) -> Any:
    """One copy of each relative name and input tuple among all recordings (they repeat)."""
    return _INTERNED.setdefault(value, value) if len(_INTERNED) < 100_000 else value


_INTERNED: dict[Any, Any] = {}


@dataclass(frozen=True)
class _Reads:
    own: tuple[str, ...]        # read in the instance's own variables
    top: tuple[str, ...]        # read by the blocks it uses, in the spec's top-level variables
    memoisable: bool


def _reads(blocks: Mapping[str, Any]) -> dict[str, _Reads]:
    own: dict[str, set[str]] = {}
    uses: dict[str, set[str] | None] = {}
    for bname, block in blocks.items():
        names: set[str] = set()
        _names(block, names)
        own[bname] = names
        nested: set[str] | None = set()
        for entry in block.get("layers") or []:
            if isinstance(entry, Mapping) and "block" in entry:
                used = entry["block"]
                if not isinstance(used, str) or "$" in used or used not in blocks:
                    nested = None   # chosen by a template (or unknown: the expansion says so)
                    break
                nested.add(used)
        uses[bname] = nested
    out = {}
    for bname in blocks:
        seen: set[str] = set()
        stack = list(uses[bname] or ())
        top: set[str] = set()
        memoisable = uses[bname] is not None
        while stack and memoisable:
            used = stack.pop()
            if used in seen:
                continue
            seen.add(used)
            if uses[used] is None:
                memoisable = False
            top |= own[used]
            stack.extend(uses[used] or ())
        mine = own[bname]
        if "i" in top:   # a nested instance that does not repeat inherits this block's i
            mine = mine | {"i"}
        out[bname] = _Reads(tuple(sorted(mine)), tuple(sorted(top - {"i", "name"})), memoisable)
    return out


@dataclass(frozen=True)
class Replay:
    """A recorded expansion, names relative to the instance (``None``: the instance's input)."""

    records: tuple[tuple[Any, ...], ...]   # (suffix, type, attrs, training_only, inputs, call, shares)
    aliases: tuple[tuple[str, str], ...]   # nested instance -> its last layer
    last: str
    steps: int    # evaluation steps the expansion took (its let and layers, not its input)
    depth: int    # how much deeper than the instance its nested instances are written
    probes: tuple[str, ...] = ()   # names whose absence the resolution of its inputs relied on
    #: names whose absence its nested instances' inputs relied on, when they were resolved
    input_probes: tuple[str, ...] = ()

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Every name the replay claims: its nested instances and its layers."""
        return tuple(a for a, _ in self.aliases) + tuple(r[0] for r in self.records)


class Memo:
    """The recorded instances of one spec's blocks (see the module docstring)."""

    def __init__(self, blocks: Mapping[str, Any]):
        self.reads = _reads(blocks)
        self.entries: dict[Any, Replay] = {}
        self.recorded: dict[str, int] = {}     # recordings made, by block
        self.replayed: dict[str, int] = {}     # replays, by block
        self.skipped: set[str] = set()         # blocks no longer recorded

    def key(self, bname: str, variables: Mapping[str, Any], top: Mapping[str, Any],
            training_only: bool) -> Any:
        """The memo key of an instance of ``bname`` with these variables (before its ``let``),
        or None when it cannot be memoised."""
        reads = self.reads.get(bname)
        if reads is None or not reads.memoisable or bname in self.skipped:
            return None
        # flat: each value, then its type (a container frozen whole)
        parts: list[Any] = [bname, training_only]
        for scope, names in ((variables, reads.own), (top, reads.top)):
            for n in names:
                value = scope.get(n, _MISSING)
                kind = type(value)
                parts.append(_exact(value) if kind in _SCALARS else freeze(value))
                parts.append(kind)
        key = tuple(parts)
        try:
            hash(key)
        except TypeError:
            return None
        return key

    def get(self, key: Any) -> Replay | None:
        replay = self.entries.get(key)
        if replay is not None:
            self.replayed[key[0]] = self.replayed.get(key[0], 0) + 1
        return replay

    def put(self, key: Any, replay: Replay) -> None:
        bname = key[0]
        made = self.recorded[bname] = self.recorded.get(bname, 0) + 1
        if made >= GIVE_UP_AFTER and self.replayed.get(bname, 0) * 4 < made:
            self.skipped.add(bname)   # its instances seldom repeat: recording them costs more than it saves
        if len(self.entries) >= MAX_ENTRIES:   # forget the older half
            for old in list(self.entries)[:MAX_ENTRIES // 2]:
                self.entries.pop(old, None)   # (another thread of a Dask worker may be at it too)
        self.entries[key] = replay




def memo_for(blocks: Mapping[str, Any], *, parsed: bool = False) -> Memo | None:
    """The memo of a spec's blocks (by their contents), or None for a spec without blocks.

    ``parsed``: the blocks are the loader's parse of a file, which nothing changes (spec_io's
    cache), so that the same object has the same contents: found by identity, not walked again.
    """
    if not blocks:
        return None
    if parsed:
        known = _PARSED.get(id(blocks))
        if known is not None and known[0] is blocks:
            return known[1]
    try:
        signature = _definition(blocks)
        memo = _MEMOS.get(signature)
    except (TypeError, _TooBig, RecursionError):
        return None
    if memo is None:
        if len(_MEMOS) >= MAX_SPECS:
            _MEMOS.pop(next(iter(_MEMOS)))
        memo = _MEMOS[signature] = Memo(blocks)
    if parsed:
        if len(_PARSED) >= MAX_SPECS:
            _PARSED.pop(next(iter(_PARSED)))
        _PARSED[id(blocks)] = (blocks, memo)   # the object is kept: its id is not reused
    return memo


_MEMOS: dict[Any, Memo] = {}
#: memos of parsed files' blocks by the blocks' id (with the blocks, alive)
_PARSED: dict[int, tuple[Any, Memo]] = {}


@dataclass
class Recording:
    """An expansion being recorded: where it started in the expander's lists."""

    key: Any
    prefix: str
    block_input: str
    scope: "_Scope"
    records: int
    pending: int
    sharing: int
    aliases: int
    steps: int
    depth: int             # the depth of the scope the instance is written in
    probes: int = 0        # where its probes start in the expander's list of replayed probes
    input_probes: int = 0  # where its probes start in the expander's list of instance input probes
    inside: bool = True    # False once the expansion reads a layer outside the instance
    deepest: int = -1      # the deepest scope a nested instance is written in

    def __post_init__(self) -> None:
        self.deepest = max(self.deepest, self.depth)


def missed(scope: "_Scope", ref: str, full_names: Mapping[str, Any]) -> list[str]:
    """The names ``scope.resolve(ref)`` found no layer at, in the scopes it passed before the one
    that has ``ref`` (a nested instance's input, resolved when it is written: if one of them is a
    layer when the instance is replayed, the expansion finds that one)."""
    out: list[str] = []
    current: _Scope | None = scope
    while current is not None:
        if ref in current.local or ref == INPUT_NAME or (current.prefix and current.prefix + ref in full_names):
            return out
        if current.prefix:
            out.append(current.prefix + ref)
        current = current.parent
    return out


def resolve_within(scope: "_Scope", stop: "_Scope", ref: str, full_names: Mapping[str, Any],
                   aliases: Mapping[str, str], probes: list[str]) -> str | None:
    """``scope.resolve`` restricted to the scopes from ``scope`` up to ``stop`` (inclusive).

    A name found above the scope it is written in relied on ``prefix + ref`` not being a layer
    in each scope below: added to ``probes`` (a layer the spec names so later, from outside the
    instance, ``b2.n.q``, wins when the spec's inputs are resolved at its end)."""
    current: _Scope | None = scope
    missed: list[str] = []
    while current is not None:
        if ref in current.local:
            full = current.local[ref]
            probes.extend(missed)
            return full if full in full_names else aliases.get(full)
        if ref == INPUT_NAME:
            return _Input(current.block_input)
        if current.prefix and current.prefix + ref in full_names:
            probes.extend(missed)
            return current.prefix + ref
        if current is stop:
            return None
        missed.append(current.prefix + ref)
        current = current.parent
    return None


class _Input(str):
    """A name reached as ``input`` (a scope's input), not as a layer's name: only such a name
    (or the flow of the block) may mean the instance's input (b2.q, made outside before b2 and
    b2's input by the flow, is a name reached by ``q`` from inside b2: it does not follow b2's
    input when replayed)."""

    __slots__ = ()


def record(rec: Recording, last: str, records: list[LayerRecord], pending: list[Any], sharing: list[Any],
           alias_log: list[str], aliases: Mapping[str, str], by_name: Mapping[str, Any],
           steps_left: int, replayed_probes: list[str], input_probes: list[str]) -> Replay | None:
    """The Replay of a finished expansion, or None when it reached outside its instance."""
    if not rec.inside:
        return None
    prefix, n = rec.prefix, len(rec.prefix)
    made = records[rec.records:]
    nested = alias_log[rec.aliases:]
    internal = {r.name for r in made}
    if not all(name.startswith(prefix) for name in internal) or not all(a.startswith(prefix) for a in nested):
        return None
    internal.update(nested)
    if last not in internal:
        return None

    def relative(full: str | None, named: bool) -> str | None | bool:
        # resolved within the instance's scopes, a name reaches its input only as 'input' or by
        # the flow (an instance fed by name from outside stopped the recording: Recording.inside)
        if full in internal:
            return full[n:]
        if full == rec.block_input and not named:
            return None
        return False

    probes: list[str] = list(replayed_probes[rec.probes:])   # (those of the nested instances replayed)
    written = {id(r): (refs, scope) for r, refs, scope in pending[rec.pending:]}
    shared = {id(r): (ties, scope) for r, ties, scope in sharing[rec.sharing:]}
    out = []
    for r in made:
        if id(r) in written:
            refs, scope = written[id(r)]
            targets = [resolve_within(scope, rec.scope, ref, by_name, aliases, probes) for ref in refs]
            named = [not isinstance(full, _Input) for full in targets]
            targets = [str(full) if isinstance(full, _Input) else full for full in targets]
        else:
            targets = list(r.inputs)   # the flow of the block
            named = [False] * len(targets)
        inputs = tuple(relative(full, by) for full, by in zip(targets, named))
        if any(i is False for i in inputs) or r.name in targets:
            return None
        shares = r.shares
        if id(r) in shared:
            ties, scope = shared[id(r)]
            shares = {t: resolve_within(scope, rec.scope, ref, by_name, aliases, probes) for t, ref in ties.items()}
        if shares is not None:
            if not all(owner in internal and owner != r.name for owner in shares.values()):
                return None
            shares = tuple((t, owner[n:]) for t, owner in shares.items())
        out.append((_interned(r.name[n:]), r.type, r.attrs, r.training_only, _interned(inputs), r.call, shares))
    if not all(aliases.get(a) in internal for a in nested):
        return None
    now = input_probes[rec.input_probes:]
    if not all(p.startswith(prefix) for p in probes) or not all(p.startswith(prefix) for p in now):
        return None
    return Replay(tuple(out), tuple((a[n:], aliases[a][n:]) for a in nested), last[n:], rec.steps - steps_left,
                  rec.deepest - rec.depth, tuple(sorted({_interned(p[n:]) for p in probes})),
                  tuple(sorted({_interned(p[n:]) for p in now})))
