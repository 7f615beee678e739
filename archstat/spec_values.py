"""Values in specs: substitution of ``${...}`` and ``$name`` through nested values, the variables
a template reads, and the validated fields of layers (shared between layers that write the same).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Mapping

from . import expr, expr_template
from .errors import ArchstatError, short_repr
from .layers import registry
from .spec_io import MAX_VALUE_DEPTH, MAX_VALUE_ITEMS


def normalised(ltype: registry.LayerType, fields: dict[str, Any]) -> dict[str, Any]:
    """``ltype.normalise(fields)``, shared between layers with the same fields (a network repeats
    a few dozen field sets hundreds of times). The attrs are read-only for every user."""
    try:
        # the type is part of the key: 8.0 == 8 and True == 1, but only 8 is a channel count; and a
        # float by its repr: -0.0 == 0.0, but a field keeps the sign it was given
        key = (ltype.name, tuple((k, type(v), tuple((type(x), _exact(x)) for x in v) if type(v) is list else _exact(v))
                                 for k, v in fields.items()))
        cached = _NORMALISED.get(key)
    except TypeError:  # an unhashable value (a nested list): normalise will say what is wrong
        return ltype.normalise(fields)
    if cached is None:
        cached = ltype.normalise(fields)
        if len(_NORMALISED) >= 4096:
            _NORMALISED.clear()
        _NORMALISED[key] = cached
    return cached


def _exact(value: Any) -> Any:
    """A float as its repr (which tells -0.0 from 0.0), anything else as it is."""
    return repr(value) if isinstance(value, float) else value


#: normalised attrs by (type, fields): a cache of a pure function of its key
_NORMALISED: dict[tuple[str, tuple[Any, ...]], dict[str, Any]] = {}


@functools.lru_cache(maxsize=4096)
def variables_in(text: str) -> frozenset[str]:
    """Variables a template reads (``$x``, ``${x}``, ``${f(x) + y}``); empty on a bad template
    (the substitution itself reports that)."""
    try:
        names: set[str] = set()
        for kind, source in expr_template.split_template(text) or ():
            if kind == "var":
                names.add(source)
            elif kind == "expr":
                names |= expr.free_names(source)
        return frozenset(names)
    except expr.ExprError:
        return frozenset()


def substitute(value: Any, variables: Mapping[str, Any], label: str, layer: str | None, field: str,
               _depth: int = 0, _budget: list[int] | None = None, *, steps: expr.Budget | None = None) -> Any:
    """Replace ``${expression}`` and ``$var`` in a value, recursively through lists and mappings
    (:func:`archstat.expr_template.render`; a whole-value expression keeps its type).

    Refuses values nested deeper than :data:`MAX_VALUE_DEPTH` or with more than
    :data:`MAX_VALUE_ITEMS` elements (a YAML alias bomb expands exponentially otherwise).
    """
    budget = [MAX_VALUE_ITEMS] if _budget is None else _budget
    budget[0] -= 1
    if budget[0] < 0 or _depth > MAX_VALUE_DEPTH:
        raise ArchstatError(f"the value is too large or too deeply nested (more than {MAX_VALUE_ITEMS:,} "
                            f"elements or {MAX_VALUE_DEPTH} levels)", file=label, layer=layer, field=field,
                            hint="field values are numbers, names, or short lists of them")
    kind = type(value)
    if kind is int or kind is bool:
        return value
    if kind is str or isinstance(value, str):
        if "$" not in value:
            return value
        try:
            result = expr_template.render(value, variables, steps)
        except expr.ExprError as exc:
            raise expr_template.to_archstat_error(exc, value, file=label, layer=layer, field=field) from None
        if isinstance(result, float) and not math.isfinite(result):
            raise ArchstatError(f"{short_repr(value)} gives {result}, not a finite number", file=label,
                                layer=layer, field=field)
        return result
    if kind is list or isinstance(value, list):
        return [substitute(v, variables, label, layer, field, _depth + 1, budget, steps=steps) for v in value]
    if kind is dict or isinstance(value, Mapping):
        return {k: substitute(v, variables, label, layer, field, _depth + 1, budget, steps=steps)
                for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        raise ArchstatError(f"expected a finite number, got {value!r}", file=label, layer=layer, field=field)
    return value
