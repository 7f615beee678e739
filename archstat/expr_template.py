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
from .expr import Budget, evaluate
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
    text (booleans as true/false)."""
    parts = split_template(text)
    if parts is None:
        return text
    if len(parts) == 1 and parts[0][0] != "text":
        return _value(parts[0], variables, budget)
    out = []
    for part in parts:
        out.append(part[1] if part[0] == "text" else _format(_value(part, variables, budget)))
    result = "".join(out)
    if len(result) > MAX_ITEMS:
        raise ExprError(f"the text is longer than {MAX_ITEMS:,} characters")
    return result


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
