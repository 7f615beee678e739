"""Templates in spec values: ``${expression}`` and ``$name`` inside text (see :mod:`archstat.expr`).

A value that is exactly one ``${...}`` or ``$name`` gives the expression's value with its type
(a number, a list); inside longer text each is formatted (booleans as ``true``/``false``, as
YAML writes them); ``$$`` is a literal dollar sign, and a ``$`` not followed by a name or ``{``
stays as it is.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Mapping

from .errors import ArchstatError, did_you_mean, short_repr
from .expr import Budget, evaluate, parse
from .expr_builtins import CONSTANTS, MAX_ITEMS, ExprError, _format

def split_template(text: str) -> list[tuple[str, str]] | None:
    """Split text into ``("text", s)``, ``("expr", source)`` and ``("var", name)`` parts, or
    None when it has no ``$``. ``${expr}`` holds an expression (braces and quotes inside it
    nest), ``$name`` a variable, and ``$$`` a literal dollar sign.

    Raises ExprError for an unclosed ``${``.
    """
    if "$" not in text:
        return None
    return _split_cached(text)


@lru_cache(maxsize=8192)
def _split_cached(text: str) -> list[tuple[str, str]]:
    parts: list[tuple[str, str]] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$":
            buf.append(ch)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < n else ""
        if nxt == "$":
            buf.append("$")
            i += 2
            continue
        if nxt == "{":
            end = _closing_brace(text, i + 2)
            if buf:
                parts.append(("text", "".join(buf)))
                buf = []
            parts.append(("expr", text[i + 2:end]))
            i = end + 1
            continue
        j = i + 1
        if j < n and (text[j].isalpha() or text[j] == "_"):
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            if buf:
                parts.append(("text", "".join(buf)))
                buf = []
            parts.append(("var", text[i + 1:j]))
            i = j
            continue
        buf.append(ch)  # a lone '$' (e.g. "$5") stays text
        i += 1
    if buf:
        parts.append(("text", "".join(buf)))
    return parts


def _closing_brace(text: str, start: int) -> int:
    depth = 0
    quote = ""
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    raise ExprError(f"'${{' at column {start - 1} is never closed by '}}'",
                    hint="write ${expression}, e.g. ${c * 2}")


def render(text: str, variables: Mapping[str, Any], budget: Budget | None = None) -> Any:
    """Substitute the expressions of one string: a string that is exactly one ``${expr}`` or
    ``$name`` gives the value itself (its type kept); otherwise each is formatted into the
    text (booleans as true/false).

    A result is remembered by the text and the values of the names it reads (a network's
    blocks evaluate the same few templates with the same few values again and again); a
    remembered result spends the steps its evaluation spent, so the budget runs out exactly
    where it would have."""
    parts = split_template(text)
    if parts is None:
        return text
    if len(parts) == 1 and parts[0][0] != "text" and _plain_name(*parts[0]) is not None:
        return _value(parts[0], variables, budget)   # one variable: nothing to remember
    names = names_read(text) if budget is not None else None
    key = None
    if names is not None:
        try:
            key = (text, tuple([frozen_value(variables[n]) if n in variables else _ABSENT for n in names]))
        except Unfrozen:
            pass
        else:
            hit = _RENDERED.get(key)
            if hit is not None and budget.steps >= hit[1]:
                budget.steps -= hit[1]
                return hit[0]
    before = budget.steps if budget is not None else 0
    result = _render(parts, variables, budget)
    if key is not None and type(result) in _SCALARS:
        if len(_RENDERED) >= 65536:
            _RENDERED.clear()
        _RENDERED[key] = (result, before - budget.steps)
    return result


def _render(parts: list[tuple[str, str]], variables: Mapping[str, Any], budget: Budget | None) -> Any:
    if len(parts) == 1 and parts[0][0] != "text":
        return _value(parts[0], variables, budget)
    out = []
    for part in parts:
        out.append(part[1] if part[0] == "text" else _format(_value(part, variables, budget)))
    result = "".join(out)
    if len(result) > MAX_ITEMS:
        raise ExprError(f"the text is longer than {MAX_ITEMS:,} characters")
    return result


#: rendered values by (text, values read): a cache of a pure function of its key (only results
#: that cannot be changed in place), with the steps each spent
_RENDERED: dict[tuple[str, tuple[Any, ...]], tuple[Any, int]] = {}
_SCALARS = frozenset({int, float, bool, str, type(None)})
_ABSENT = object()


class Unfrozen(Exception):
    """A value with no exact hashable form (the template is then evaluated every time)."""


def frozen_value(value: Any, _depth: int = 0) -> Any:
    """A hashable form of a spec value that tells apart what ``==`` does not (8, 8.0 and True;
    0.0 and -0.0). Large or deeply nested values raise Unfrozen: freezing them would cost
    more than it saves."""
    kind = type(value)
    if kind is int or kind is str or kind is bool:
        return kind, value
    if kind is float:
        return (kind, value) if value else (kind, repr(value))
    if value is None:
        return None
    if _depth >= _FREEZE_DEPTH or (kind is not list and kind is not dict) or len(value) > _FREEZE_ITEMS:
        raise Unfrozen
    if kind is list:
        return kind, tuple([frozen_value(v, _depth + 1) for v in value])
    return kind, tuple([(frozen_value(k, _depth + 1), frozen_value(v, _depth + 1)) for k, v in value.items()])


_FREEZE_DEPTH = 3
_FREEZE_ITEMS = 256


@lru_cache(maxsize=8192)
def names_read(text: str) -> tuple[str, ...] | None:
    """Every name a template's parts may look up (variables, and the constants and functions a
    variable could shadow), or None when a part does not parse (evaluating it says why)."""
    import ast

    names: set[str] = set()
    try:
        for kind, source in split_template(text) or ():
            if kind == "var":
                names.add(source)
            elif kind == "expr":
                names.add(source.strip())
                names.update(n.id for n in ast.walk(parse(source)) if isinstance(n, ast.Name))
    except ExprError:
        return None
    return tuple(sorted(names))


_PLAIN_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")


@lru_cache(maxsize=8192)
def _plain_name(kind: str, source: str) -> str | None:
    """The variable a ``$name`` or ``${ name }`` part reads directly, or None for an expression
    (``${true}``, with no variable of that name, is the constant)."""
    plain = _PLAIN_NAME.fullmatch(source)
    return plain.group(1) if plain and (kind == "var" or plain.group(1) not in CONSTANTS) else None


def _value(part: tuple[str, str], variables: Mapping[str, Any], budget: Budget | None = None) -> Any:
    """The value of one ``$name`` or ``${expr}`` part; a bare name is looked up directly (so
    any argument name works, even one Python reserves, like ``$in``)."""
    kind, source = part
    name = _plain_name(kind, source)
    if name is None and kind == "expr" and source.strip() in variables:
        name = source.strip()   # a variable named like a constant (e) shadows it
    if name is not None:
        if name in variables:
            return variables[name]
        known = sorted(variables)
        raise ExprError(f"unknown variable ${name}" +
                        (f" (known here: {', '.join('$' + k for k in known)})" if known
                         else " (no variables are defined here)"),
                        hint=did_you_mean(name, known), quote=False)
    return evaluate(source, variables, budget)


def to_archstat_error(exc: ExprError, text: str, **where: Any) -> ArchstatError:
    """An ArchstatError that quotes the expression and says what is wrong with it."""
    message = f"in {short_repr(text, 120)}: {exc.message}" if exc.quote else exc.message
    return ArchstatError(message, hint=exc.hint, **where)
