"""Budgets (``macs<=400e6``) and objectives (``params:max``) over a row's metrics, parsed
without ``eval``: a name, a comparison and a number, nothing else.

A number is a decimal literal with an optional exponent (``400e6``, ``2.5e9``, ``20000000``) or
an SI suffix (``400M``, ``2.5G``, ``20k``: 10^3, 10^6, 10^9, 10^12). Integral values are
compared as exact integers. A row whose metric is missing (an invalid configuration) meets no
budget.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping

from ..errors import ArchstatError, did_you_mean, short_repr

OPERATORS = {"<=": lambda a, b: a <= b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b,
             ">": lambda a, b: a > b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
SUFFIXES = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_BUDGET = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|<|>)\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)"
                     r"\s*([kKMGT]?)\s*$")


@dataclass(frozen=True)
class Budget:
    """``metric op value``; :meth:`met` says whether a row meets it."""

    metric: str
    op: str
    value: int | float
    text: str

    def met(self, row: Mapping[str, Any]) -> bool:
        value = row.get(self.metric)
        if value is None or (isinstance(value, float) and math.isnan(value)) or value is _NA():
            return False
        try:
            return bool(OPERATORS[self.op](value, self.value))
        except TypeError:
            return False

    def __str__(self) -> str:
        return self.text


def _NA():
    try:
        import pandas as pd
        return pd.NA
    except ImportError:  # pragma: no cover - pandas is a dependency
        return None


def _number(text: str, suffix: str, where: str, field: str) -> int | float:
    try:
        value = Decimal(text) * SUFFIXES.get(suffix, 1)
    except InvalidOperation:
        raise ArchstatError(f"{short_repr(text + suffix)} is not a number", field=field,
                            hint=f"in {short_repr(where)}: write a number such as 400e6, 4e8 or 400M") from None
    if not value.is_finite():
        raise ArchstatError(f"{short_repr(text)} is not a finite number", field=field)
    return int(value) if value == value.to_integral_value() else float(value)


def parse_budget(text: Any, metrics: Iterable[str]) -> Budget:
    """One budget such as ``macs<=400e6``; ``metrics`` are the names a budget may use."""
    names = list(metrics)
    if isinstance(text, Budget):
        return text
    if not isinstance(text, str):
        raise ArchstatError(f"expected a budget such as 'macs<=400e6', got {short_repr(text)}", field="--budget")
    m = _BUDGET.match(text)
    if m is None:
        raise ArchstatError(f"cannot read the budget {short_repr(text)}", field="--budget",
                            hint="write METRIC OP NUMBER, e.g. 'macs<=400e6' or 'peak_activation_bytes<20M' "
                                 f"(OP one of {', '.join(OPERATORS)}; metrics: {', '.join(names)})")
    metric, op, number, suffix = m.groups()
    if metric not in names:
        raise ArchstatError(f"a budget on {short_repr(metric)}, which is not a metric of the rows", field="--budget",
                            hint=did_you_mean(metric, names) or f"the metrics: {', '.join(names)}")
    return Budget(metric, op, _number(number, suffix, text, "--budget"), text.strip())


def parse_objective(text: Any, metrics: Iterable[str]) -> tuple[str, str]:
    """``metric:max`` or ``metric:min`` -> ``(metric, 'max' | 'min')`` (``metric`` alone: max)."""
    names = list(metrics)
    if not isinstance(text, str) or not text.strip():
        raise ArchstatError(f"expected an objective such as 'params:max', got {short_repr(text)}",
                            field="--objective")
    metric, _, sense = text.strip().partition(":")
    metric, sense = metric.strip(), (sense.strip() or "max")
    if sense not in ("max", "min"):
        raise ArchstatError(f"the objective {short_repr(text)} must end in :max or :min", field="--objective",
                            hint=did_you_mean(sense, ("max", "min")))
    if metric not in names:
        raise ArchstatError(f"an objective on {short_repr(metric)}, which is not a metric of the rows",
                            field="--objective", hint=did_you_mean(metric, names) or f"the metrics: {', '.join(names)}")
    return metric, sense
