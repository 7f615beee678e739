"""The fields of layer types: what a spec may write for each, checked and normalised.

A :class:`Field` names one spec field (PyTorch's name), says what it accepts and its default,
and turns a spec's value into canonical form (``kernel_size: 3`` becomes ``(3, 3)``), or raises
an :class:`~archstat.errors.ArchstatError` naming the field. :class:`Attrs` holds a layer's
validated fields, read-only.
"""
from __future__ import annotations

import numbers

import math
from dataclasses import dataclass
from typing import Any

from ..errors import ArchstatError, did_you_mean, one_of, short_repr
from .window import is_per_side

#: the largest size or count a spec may give (PyTorch's int32 index range for dimensions)
MAX_INT = 2**31 - 1

#: the longest text a ``text`` field takes
MAX_TEXT = 200
#: marks a field that the spec must give
REQUIRED = object()
#: marks a field whose value archstat infers from the graph when the spec omits it
INFERRED = object()


@dataclass(frozen=True)
class Field:
    """One spec field of a layer type.

    ``kind`` is one of ``int``, ``pair`` (int or two ints, normalised to ``(h, w)``),
    ``padding`` (int, pair, per side ``[[top, bottom], [left, right]]``, ``'same'`` or
    ``'valid'``), ``pads`` (the same without the words: pooling), ``bool``, ``float``, ``choice``,
    ``ints`` (a non-empty list of ints, normalised to a tuple: permute's ``dims``),
    ``size`` (an int or a pair whose entries may be null, normalised to ``(h, w)`` with None
    for "the input's size": adaptive pooling's ``output_size``) or ``shape`` (an int or a
    non-empty list of ints, normalised to a tuple: layer norm's ``normalized_shape``) or
    ``text`` (a short string: the foreign op of an ``opaque`` layer).
    ``minimum`` bounds ints, pairs and the entries of ``ints``, ``size`` and ``shape``; ``choices``
    lists the values of a ``choice``;
    ``none_ok`` admits ``null`` (e.g. pooling ``stride``, which then defaults to the kernel).
    """

    name: str
    kind: str
    default: Any = REQUIRED
    doc: str = ""
    minimum: int | float | None = None
    maximum: int | float | None = None
    choices: tuple[str, ...] = ()
    none_ok: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        """Human description of what the field accepts (for messages and `archstat layers`)."""
        if self.kind == "int":
            what = "an integer"
            if self.minimum is not None:
                what += f" >= {self.minimum}"
        elif self.kind == "pair":
            what = "an integer or a pair [h, w]"
            if self.minimum is not None:
                what += f" of integers >= {self.minimum}"
        elif self.kind == "padding":
            what = "an integer >= 0, a pair [h, w], per side [[top, bottom], [left, right]], 'same' or 'valid'"
        elif self.kind == "pads":
            what = "an integer >= 0, a pair [h, w] or per side [[top, bottom], [left, right]]"
        elif self.kind == "bool":
            what = "true or false"
        elif self.kind == "float":
            what = "a number"
            if self.minimum is not None and self.maximum is not None:
                what += f" in [{self.minimum}, {self.maximum}]"
            elif self.minimum is not None:
                what += f" >= {self.minimum}"
        elif self.kind == "choice":
            what = "one of " + one_of(self.choices)
        elif self.kind == "ints":
            what = "a list of integers"
            if self.minimum is not None:
                what += f" >= {self.minimum}"
        elif self.kind == "size":
            what = "an integer or a pair [h, w]"
            if self.minimum is not None:
                what += f" of integers >= {self.minimum}"
            what += " or null"  # each entry; the field's doc says what null means
        elif self.kind == "shape":
            what = "an integer or a list of integers"
            if self.minimum is not None:
                what += f" >= {self.minimum}"
        elif self.kind == "text":
            what = f"text of at most {MAX_TEXT} characters"
        else:  # pragma: no cover - a registry bug, caught by the registry test
            raise AssertionError(self.kind)
        if self.none_ok:
            what += " (or null)"
        return what

    def normalise(self, value: Any) -> Any:
        """Return the value in canonical form, or raise ArchstatError (no location yet)."""
        if value is None and (self.none_ok or self.default is None):
            return None
        kind = self.kind
        if kind == "int":
            if (_is_int(value) and (self.minimum is None or value >= self.minimum)
                    and -MAX_INT <= value <= MAX_INT):
                return int(value)
        elif kind == "pair":
            pair = as_pair(value)
            if (pair is not None and (self.minimum is None or min(pair) >= self.minimum)
                    and max(pair) <= MAX_INT):
                return pair
        elif kind in ("padding", "pads"):
            if isinstance(value, str) and kind == "padding":
                if value in ("same", "valid"):
                    return value
                raise ArchstatError(f"expected {self.describe()}, got {short_repr(value)}", field=self.name,
                                    hint=did_you_mean(value, ("same", "valid")))
            pair = as_pair(value)
            if pair is not None and min(pair) >= 0 and max(pair) <= MAX_INT:
                return pair
            sides = _sides(value)
            if sides is not None:
                return sides
        elif kind == "bool":
            if isinstance(value, bool):
                return value
        elif kind == "float":
            if (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
                    and (self.minimum is None or value >= self.minimum)
                    and (self.maximum is None or value <= self.maximum)):
                return float(value)
        elif kind == "choice":
            if isinstance(value, str) and value in self.choices:
                return value
            raise ArchstatError(f"expected {self.describe()}, got {short_repr(value)}", field=self.name,
                                hint=did_you_mean(str(value)[:100], self.choices))
        elif kind == "ints":
            if (isinstance(value, (list, tuple)) and value and all(_is_int(v) for v in value)
                    and all(self._int_ok(v) for v in value)):
                return tuple(int(v) for v in value)
        elif kind == "size":
            entries = [value, value] if _is_int(value) else value
            if (isinstance(entries, (list, tuple)) and len(entries) == 2
                    and all(v is None or (_is_int(v) and self._int_ok(v)) for v in entries)):
                return tuple(None if v is None else int(v) for v in entries)
        elif kind == "shape":
            entries = [value] if _is_int(value) else value
            if (isinstance(entries, (list, tuple)) and entries
                    and all(_is_int(v) and self._int_ok(v) for v in entries)):
                return tuple(int(v) for v in entries)
        elif kind == "text":
            if isinstance(value, str) and len(value) <= MAX_TEXT:
                return value
        else:  # pragma: no cover - a registry bug, caught by the registry test
            raise AssertionError(kind)
        raise ArchstatError(f"expected {self.describe()}, got {short_repr(value)}", field=self.name)

    def _int_ok(self, value: int) -> bool:
        """An int entry within the field's minimum and archstat's size range."""
        return (self.minimum is None or value >= self.minimum) and -MAX_INT <= value <= MAX_INT


def _sides(value: Any) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Per-side padding ``[[top, bottom], [left, right]]`` as ``((top, bottom), (left, right))``
    (a pair of equal sides stays a pair: ``[[1, 1], [2, 2]]`` is ``(1, 2)``); None otherwise."""
    if not is_per_side(value):
        return None
    sides = [as_pair(v) for v in value]
    if any(s is None or min(s) < 0 or max(s) > MAX_INT for s in sides):
        return None
    (t, b), (l, r) = sides
    return (t, l) if (t == b and l == r) else ((t, b), (l, r))


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)  # NumPy's ints too


def as_pair(value: Any) -> tuple[int, int] | None:
    """An int or two ints as an ``(h, w)`` pair; None if the value is neither (the one parser
    of pairs: spec fields and the functional kernels' arguments)."""
    if _is_int(value):
        return (int(value), int(value))
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_int(v) for v in value):
        return (int(value[0]), int(value[1]))
    return None


class Attrs(dict):
    """A layer's validated fields: a dict that cannot be changed (the loader shares one between
    the layers, and the loads, with the same fields). Copy it to vary it: ``dict(attrs, k=v)``."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a layer's attrs are read-only: copy them with dict(attrs) to change them")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]
    __ior__ = _refuse  # type: ignore[assignment]

    def __reduce__(self):
        return (Attrs, (dict(self),))

    def __copy__(self) -> "Attrs":
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> "Attrs":
        return self
