"""The ``space:`` section of a spec: which arguments vary, and over what.

A spec declares its design space beside its ``args``; every key is one of the spec's top-level
arguments, and the spec still loads with its defaults::

    args: {width: 16, depth: 2, act: relu}
    space:
      width: {choice: [8, 16, 32, 64]}     # these values
      depth: {int: [1, 4]}                 # the integers 1, 2, 3, 4 (both ends included)
      wa:    {range: [8, 64, 8]}           # lo, lo + step, ... up to hi (included when on a step)
      wm:    {uniform: [1.5, 3.0]}         # a real number, uniformly
      lr:    {loguniform: [1e-4, 1e-1]}    # a real number, uniformly in log space

``choice``, ``int`` and ``range`` are discrete (a grid enumerates them); ``uniform`` and
``loguniform`` are continuous: a grid takes ``levels`` evenly spaced points of them (log-spaced
for ``loguniform``, both ends included), a sample draws them. Continuous draws are rounded to
:data:`DIGITS` significant digits (a configuration is then short to read and to write back into
a spec, and exactly reproducible). An argument keeps its default's kind: an integer argument
takes integer values (``uniform``/``loguniform`` over an integer argument round to the nearest
integer), text and true/false arguments take ``choice`` only.

This module is part of the spec language (it imports only :mod:`archstat.errors`):
:func:`archstat.spec.load_spec` validates a spec's ``space`` with :func:`parse_space`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ArchstatError, did_you_mean, short_repr

KINDS = ("choice", "int", "range", "uniform", "loguniform")
DISCRETE = ("choice", "int", "range")
#: significant digits kept of a continuous draw
DIGITS = 6
#: a discrete dimension may list at most this many values (a typo such as range: [0, 1e9, 1])
MAX_VALUES = 10_000_000


def _round(x: float) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, DIGITS - 1 - int(math.floor(math.log10(abs(x)))))


@dataclass(frozen=True)
class Dimension:
    """One argument of a design space: its ``name``, ``kind`` (:data:`KINDS`), the ``bounds``
    as written, the ``values`` of a discrete dimension (None for a continuous one) and whether
    the argument is an integer."""

    name: str
    kind: str
    bounds: tuple[Any, ...]
    values: tuple[Any, ...] | None
    integer: bool = False

    @property
    def continuous(self) -> bool:
        return self.values is None

    def __len__(self) -> int:
        if self.values is None:
            raise TypeError(f"dimension {self.name!r} is continuous ({self.kind})")
        return len(self.values)

    def describe(self) -> str:
        if self.kind == "choice":
            return "{" + ", ".join(map(str, self.values)) + "}"
        if self.kind == "int":
            return f"integers {self.bounds[0]}..{self.bounds[1]}"
        if self.kind == "range":
            return f"{self.bounds[0]}..{self.bounds[1]} step {self.bounds[2]} ({len(self.values)} values)"
        return f"{self.kind} [{self.bounds[0]}, {self.bounds[1]}]"

    def _fit(self, x: float) -> Any:
        if self.integer:
            lo, hi = self.bounds
            return int(min(max(round(x), math.ceil(lo)), math.floor(hi)))
        return _round(float(x))

    def draw(self, rng) -> Any:
        """One value, from a ``numpy.random.Generator``."""
        if self.values is not None:
            return self.values[int(rng.integers(len(self.values)))]
        lo, hi = self.bounds
        if self.kind == "uniform":
            return self._fit(rng.uniform(lo, hi))
        return self._fit(math.exp(rng.uniform(math.log(lo), math.log(hi))))

    def levels(self, n: int | None) -> tuple[Any, ...]:
        """The grid's values: all of a discrete dimension, ``n`` points of a continuous one."""
        if self.values is not None:
            return self.values
        if n is None:
            raise ArchstatError(f"dimension {self.name!r} is continuous ({self.describe()}): a grid needs a "
                                "number of levels for it", field=f"space.{self.name}",
                                hint="give --levels N (Python: levels=N), or sample the space instead")
        lo, hi = self.bounds
        if n == 1:
            points = [lo]
        elif self.kind == "uniform":
            points = [lo + (hi - lo) * k / (n - 1) for k in range(n)]
        else:
            points = [math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * k / (n - 1)) for k in range(n)]
        return tuple(dict.fromkeys(self._fit(p) for p in points))

    def contains(self, value: Any) -> bool:
        """True when ``value`` is one this dimension can take."""
        if self.values is not None:
            try:
                return any(_same(value, v) for v in self.values)
            except TypeError:
                return False
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and value != int(value):
            return False
        lo, hi = self.bounds
        return lo <= value <= hi

    def mutate(self, value: Any, rng) -> Any:
        """Another value than ``value`` where there is one (a discrete dimension picks among
        the others uniformly; a continuous one draws again)."""
        if self.values is not None:
            others = [v for v in self.values if not _same(v, value)]
            return others[int(rng.integers(len(others)))] if others else value
        for _ in range(8):
            new = self.draw(rng)
            if new != value:
                return new
        return new


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b if isinstance(a, (bool, str)) or isinstance(b, (bool, str)) else a == b


def _kind_of(default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    return type(default).__name__


def _number(x: Any, integer: bool) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return False
    return isinstance(x, int) if integer else True


def parse_dimension(name: str, raw: Any, default: Any, label: str) -> Dimension:
    """One ``space`` entry, checked against its argument's default (its kind)."""
    where = f"space.{name}"
    example = "{choice: [8, 16]}, {int: [1, 4]}, {range: [8, 64, 8]}, {uniform: [1.5, 3.0]} or {loguniform: [1e-4, 1e-1]}"
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise ArchstatError(f"expected one of {', '.join(KINDS)}, such as {example}", file=label, field=where)
    (kind, spec), = raw.items()
    if kind not in KINDS:
        raise ArchstatError(f"unknown kind of dimension {short_repr(kind)} (allowed: {', '.join(KINDS)})",
                            file=label, field=where, hint=did_you_mean(str(kind), KINDS))
    arg_kind = _kind_of(default)
    integer = arg_kind == "int"
    if arg_kind not in ("int", "float") and kind != "choice":
        raise ArchstatError(f"argument {name!r} is {arg_kind} (its default {short_repr(default)}): it varies over "
                            f"a choice only, not {kind}", file=label, field=where,
                            hint=f"write {name}: {{choice: [...]}}")
    if kind == "choice":
        if not isinstance(spec, list) or not spec:
            raise ArchstatError("choice needs a non-empty list of values", file=label, field=where)
        values = []
        for v in spec:
            ok = (_number(v, integer) if arg_kind in ("int", "float") else type(v) is type(default))
            if not ok:
                raise ArchstatError(f"the choice {short_repr(v)} is not of argument {name!r}'s kind ({arg_kind}, "
                                    f"like its default {short_repr(default)})", file=label, field=where)
            v = float(v) if arg_kind == "float" else v
            if any(_same(v, w) for w in values):
                raise ArchstatError(f"the choice {short_repr(v)} is listed twice", file=label, field=where)
            values.append(v)
        return Dimension(name, kind, tuple(values), tuple(values), integer)
    arity = 3 if kind == "range" else 2
    shape = {"int": "[lo, hi]", "range": "[lo, hi, step]", "uniform": "[lo, hi]", "loguniform": "[lo, hi]"}[kind]
    if not isinstance(spec, list) or len(spec) != arity or not all(_number(x, kind in ("int",) or (
            integer and kind == "range")) for x in spec):
        what = "integers" if kind == "int" or (integer and kind == "range") else "numbers"
        raise ArchstatError(f"{kind} needs {shape}, {what}, got {short_repr(spec)}", file=label, field=where)
    lo, hi = spec[0], spec[1]
    if kind == "int":
        if not integer:
            raise ArchstatError(f"argument {name!r} is a real number (its default {default!r}): int draws integers",
                                file=label, field=where, hint="use range [lo, hi, step] or uniform [lo, hi]")
        if lo > hi:
            raise ArchstatError(f"the range is empty: int [{lo}, {hi}] has lo > hi", file=label, field=where)
        count = hi - lo + 1
        if count > MAX_VALUES:
            raise ArchstatError(f"int [{lo}, {hi}] has {count:,} values (at most {MAX_VALUES:,})", file=label,
                                field=where, hint="sample it with uniform [lo, hi] instead")
        return Dimension(name, kind, (lo, hi), tuple(range(lo, hi + 1)), True)
    if kind == "range":
        step = spec[2]
        if step <= 0:
            raise ArchstatError(f"range needs a positive step, got {step}", file=label, field=where)
        if lo > hi:
            raise ArchstatError(f"the range is empty: [{lo}, {hi}, {step}] has lo > hi", file=label, field=where)
        count = int(math.floor((hi - lo) / step + 1e-9)) + 1
        if count > MAX_VALUES:
            raise ArchstatError(f"range {spec} has {count:,} values (at most {MAX_VALUES:,})", file=label,
                                field=where, hint="use a larger step, or uniform [lo, hi]")
        if integer:
            values = tuple(lo + k * step for k in range(count))
        else:
            values = tuple(_round(lo + k * step) for k in range(count))
        return Dimension(name, kind, (lo, hi, step), values, integer)
    if lo >= hi:
        raise ArchstatError(f"the range is empty: {kind} [{lo}, {hi}] needs lo < hi", file=label, field=where)
    if kind == "loguniform" and lo <= 0:
        raise ArchstatError(f"loguniform needs 0 < lo < hi, got [{lo}, {hi}]", file=label, field=where,
                            hint="use uniform for a range that reaches zero")
    if integer and math.floor(hi) < math.ceil(lo):
        raise ArchstatError(f"no integer lies in [{lo}, {hi}]", file=label, field=where)
    return Dimension(name, kind, (lo, hi), None, integer)


def parse_space(raw: Any, defaults: Mapping[str, Any], label: str) -> dict[str, Dimension]:
    """A spec's ``space`` section as ``{argument: Dimension}`` (empty when there is none).

    Raises
    ------
    ArchstatError
        A key that is not a top-level argument (with did-you-mean), an unknown kind, an empty
        range, or values of another kind than the argument's default.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ArchstatError("expected a mapping of argument name to its values, such as "
                            "{width: {choice: [8, 16, 32]}, depth: {int: [1, 4]}}", file=label, field="space")
    dims: dict[str, Dimension] = {}
    for name, entry in raw.items():
        if name not in defaults:
            raise ArchstatError(
                f"the space varies {short_repr(name)}, which is not one of the spec's args"
                + (f" ({', '.join(defaults)})" if defaults else " (it declares none)"),
                file=label, field=f"space.{name}",
                hint=did_you_mean(str(name), defaults) or "declare it under 'args' with a default value")
        dims[name] = parse_dimension(name, entry, defaults[name], label)
    return dims
