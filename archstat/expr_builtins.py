"""The values, operations and functions spec expressions may use (:mod:`archstat.expr`), and
the bounds on every value they build: integers to :data:`MAX_INT_BITS` bits, lists and strings to
:data:`MAX_ITEMS` elements, so that no expression fills the memory.

``round`` is Python's (halves to even), as torchvision's Python code uses it, and
``make_divisible(v, divisor, min_value=None)`` is torchvision's ``_make_divisible``
(torchvision/models/_utils.py): round to the nearest multiple of ``divisor``, at least
``min_value``, and never more than 10% below ``v``.
"""
from __future__ import annotations

import math
import operator
from typing import Any, Callable

from .errors import short_repr

#: largest integer an expression may produce, in bits (2**4096 has 1,234 digits)
MAX_INT_BITS = 4096
#: most elements of a list, tuple, mapping or string an expression may build
MAX_ITEMS = 100_000
#: the largest ndigits round() takes (round(5, -10**8) would compute 10**(10**8))
MAX_ROUND_DIGITS = 100


class ExprError(Exception):
    """What went wrong in an expression (the caller adds the file, layer and field)."""

    def __init__(self, message: str, hint: str | None = None, quote: bool = True):
        super().__init__(message)
        self.message = message
        self.hint = hint
        #: the message is clear without quoting the expression (a plain unknown variable)
        self.quote = quote


def make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """torchvision's ``_make_divisible``: the multiple of ``divisor`` nearest to ``v`` (halves
    up), at least ``min_value`` (default ``divisor``), plus one more ``divisor`` if that
    rounding went more than 10% below ``v``. MobileNet, MNASNet, EfficientNet and RegNet
    round their channel counts with it."""
    _number(v, "make_divisible's v")
    if _bad_int(divisor) or divisor < 1:
        raise ExprError(f"make_divisible's divisor must be a positive integer, got {short_repr(divisor)}")
    if min_value is None:
        min_value = divisor
    _number(min_value, "make_divisible's min_value")
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _require(condition: Any, message: Any = "a requirement of the spec is not met") -> bool:
    """``require(cond, message)``: true when ``cond`` holds, else an error that says ``message``
    (a spec checks its arguments with it, e.g. ``require(wm > 1, 'wm must be greater than 1')``)."""
    if not condition:
        raise ExprError(str(message), quote=False)
    return True


def _count(items: Any, value: Any) -> int:
    """How many elements of ``items`` equal ``value`` (Python's ``list.count``)."""
    return sum(1 for item in _iterable(items, "count") if item == value)


def _round(x: Any, ndigits: Any = None) -> Any:
    _number(x, "round's argument")
    if ndigits is None:
        if isinstance(x, float) and not math.isfinite(x):
            raise ExprError(f"cannot round {x} to an integer")
        return round(x)
    if _bad_int(ndigits) or not -MAX_ROUND_DIGITS <= ndigits <= MAX_ROUND_DIGITS:
        raise ExprError(f"round's ndigits must be an integer from {-MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}, "
                        f"got {short_repr(ndigits)}")
    return round(x, ndigits)


def _int(x: Any) -> int:
    if isinstance(x, float) and not math.isfinite(x):
        raise ExprError(f"cannot convert {x} to an integer")
    if isinstance(x, str):
        try:
            return int(x.strip())
        except ValueError:
            raise ExprError(f"cannot convert {short_repr(x)} to an integer") from None
    _number(x, "int's argument")
    return int(x)


def _float(x: Any) -> float:
    if isinstance(x, str):
        try:
            return float(x.strip())
        except ValueError:
            raise ExprError(f"cannot convert {short_repr(x)} to a number") from None
    _number(x, "float's argument")
    return float(x)


def _range(*args: Any) -> list[int]:
    if not 1 <= len(args) <= 3 or any(_bad_int(a) for a in args):
        raise ExprError(f"range takes 1 to 3 integers, got {short_repr(list(args))}")
    if len(args) == 3 and args[2] == 0:
        raise ExprError("range's step must not be zero")
    r = range(*args)
    if len(r) > MAX_ITEMS:
        raise ExprError(f"range of {len(r):,} numbers: more than {MAX_ITEMS:,}")
    return list(r)


def _log(x: Any, base: Any = None) -> float:
    _number(x, "log's argument")
    if x <= 0:
        raise ExprError(f"log of {x}: the argument must be positive")
    if base is None:
        return math.log(x)
    _number(base, "log's base")
    if base <= 0 or base == 1:
        raise ExprError(f"log base {base}: must be positive and not 1")
    return math.log(x) / math.log(base)


def _positive_math(fn: Callable[[float], float], name: str, strict: bool = True) -> Callable[[Any], float]:
    def call(x: Any) -> float:
        _number(x, f"{name}'s argument")
        if x < 0 or (strict and x == 0):
            raise ExprError(f"{name} of {x}: the argument must be {'positive' if strict else '>= 0'}")
        return fn(x)
    return call


def _ceil_floor(fn: Callable[[float], int], name: str) -> Callable[[Any], int]:
    def call(x: Any) -> int:
        _number(x, f"{name}'s argument")
        if isinstance(x, float) and not math.isfinite(x):
            raise ExprError(f"cannot take the {name} of {x}")
        return fn(x)
    return call


def _exp(x: Any) -> float:
    _number(x, "exp's argument")
    try:
        return math.exp(x)
    except OverflowError:
        raise ExprError(f"exp({x}) overflows") from None


def _aggregate(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if not args:
            raise ExprError(f"{name} needs at least one argument")
        items = list(_iterable(args[0], name)) if len(args) == 1 else list(args)
        if not items:
            raise ExprError(f"{name} of an empty list")
        return fn(items)
    return call


def _sum(items: Any, start: Any = 0) -> Any:
    """The sum of numbers (lists are joined with ``+``, not summed: that is quadratic)."""
    total = _number(start, "sum's start")
    for item in _iterable(items, "sum"):
        total = _arith(operator.add, "+", total, _number(item, "each item of sum"))
    return total


def _iterable(value: Any, name: str):
    if isinstance(value, (list, tuple, str)):
        return value
    if isinstance(value, dict):
        return list(value)
    raise ExprError(f"{name} needs a list, got {short_repr(value)}")


#: every function an expression may call, by name
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": _aggregate(min, "min"),
    "max": _aggregate(max, "max"),
    "abs": lambda x: abs(_number(x, "abs's argument")),
    "round": _round,
    "int": _int,
    "float": _float,
    "bool": bool,
    "str": lambda x: _format(x),
    "len": lambda x: len(_iterable(x, "len")),
    "sum": _sum,
    "range": _range,
    "enumerate": lambda xs, start=0: [[i, x] for i, x in enumerate(_iterable(xs, "enumerate"), start)],
    "zip": lambda *xs: [list(t) for t in zip(*(_iterable(x, "zip") for x in xs))],
    "sorted": lambda xs: sorted(_iterable(xs, "sorted")),
    "reversed": lambda xs: list(reversed(_iterable(xs, "reversed"))),
    "list": lambda xs=(): list(_iterable(xs, "list")),
    "any": lambda xs: any(_iterable(xs, "any")),
    "all": lambda xs: all(_iterable(xs, "all")),
    "count": _count,
    "ceil": _ceil_floor(math.ceil, "ceil"),
    "floor": _ceil_floor(math.floor, "floor"),
    "sqrt": _positive_math(math.sqrt, "sqrt", strict=False),
    "exp": _exp,
    "log": _log,
    "log2": _positive_math(math.log2, "log2"),
    "log10": _positive_math(math.log10, "log10"),
    "make_divisible": make_divisible,
    "require": _require,
    "type": lambda x: _TYPE_NAMES.get(type(x), type(x).__name__),
}

#: what ``type(x)`` says of each kind of value (the names YAML users know)
_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict",
               type(None): "null"}

#: names every expression knows (variables of the same name take precedence)
CONSTANTS: dict[str, Any] = {"pi": math.pi, "e": math.e, "true": True, "false": False, "null": None,
                             "True": True, "False": False, "None": None}


def _bad_int(value: Any) -> bool:
    return not isinstance(value, int) or isinstance(value, bool)


def _number(value: Any, what: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExprError(f"{what} must be a number, got {short_repr(value)}")
    return value


def _format(value: Any) -> str:
    """How a value reads inside text: YAML's true/false/null, numbers as Python writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    weight(value)  # a list's text is as long as all it holds: refuse a huge one before writing it
    return str(value)


def weight(value: Any, cap: int = MAX_ITEMS) -> int:
    """How many values a (nested) value holds, counting into lists and mappings; an error past
    ``cap``. Lists may share their items (``[[0] * 1000] * 1000`` is small in memory), so work
    that walks every item, such as writing or comparing, is charged by this count."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        count += 1
        if count > cap:
            raise ExprError(f"the value holds more than {cap:,} items (counting into nested lists)")
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, str):
            count += len(item) // 64
    return count


def _arith(fn: Callable[[Any, Any], Any], symbol: str, a: Any, b: Any) -> Any:
    if symbol == "%" and isinstance(a, str):
        raise ExprError("'%' on text is string formatting, which specs do not have",
                        hint="write the text around the expression: conv${i}_relu")
    if symbol == "**" and isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
        if b > 0 and abs(a) > 1 and b * math.log2(abs(a)) > MAX_INT_BITS:
            raise ExprError(f"{a} ** {b} is larger than {MAX_INT_BITS} bits")
    if symbol == "*" and ((isinstance(a, (list, str)) and isinstance(b, int))
                          or (isinstance(b, (list, str)) and isinstance(a, int))):
        seq, n = (a, b) if isinstance(a, (list, str)) else (b, a)
        if len(seq) * max(n, 0) > MAX_ITEMS:
            raise ExprError(f"repeating a sequence of {len(seq)} {n} times gives more than {MAX_ITEMS:,} elements")
    try:
        result = fn(a, b)
    except ZeroDivisionError:
        raise ExprError(f"division by zero in {short_repr(a)} {symbol} {short_repr(b)}") from None
    except OverflowError:
        raise ExprError(f"{short_repr(a)} {symbol} {short_repr(b)} overflows") from None
    except TypeError:
        raise ExprError(f"cannot compute {short_repr(a)} {symbol} {short_repr(b)}") from None
    if isinstance(result, complex):
        raise ExprError(f"{short_repr(a)} {symbol} {short_repr(b)} is not a real number")
    if isinstance(result, (list, str)):
        _sized(result)
    return _checked(result)


def _checked(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise ExprError(f"an integer larger than {MAX_INT_BITS} bits")
    if isinstance(value, float) and math.isnan(value):
        raise ExprError("the result is not a number (NaN)")
    return value


def _sized(value: Any) -> Any:
    if len(value) > MAX_ITEMS:
        raise ExprError(f"more than {MAX_ITEMS:,} elements")
    return value
