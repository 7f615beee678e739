"""Human-readable numbers: thousands separators and decimal SI units.

Units are decimal, as in the CS231n notes ("24M * 4 bytes ~= 96MB"): K = 10^3,
M = 10^6, G = 10^9; kB/MB/GB = 10^3/10^6/10^9 bytes.
"""
from __future__ import annotations

from typing import Sequence

_PREFIXES = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K"))


def thousands(n: int) -> str:
    """``138357544 -> '138,357,544'``."""
    return f"{n:,}"


def human(n: float, digits: int = 3) -> str:
    """Count with a decimal prefix and ``digits`` significant figures: ``3211264 -> '3.21M'``."""
    if n == 0:
        return "0"
    for scale, prefix in _PREFIXES:
        if abs(n) >= scale:
            return _sig(n / scale, digits) + prefix
    return _sig(n, digits) if isinstance(n, float) and not float(n).is_integer() else str(int(n))


def human_bytes(n: float, digits: int = 3) -> str:
    """Bytes with decimal units: ``60950432 -> '61.0 MB'``."""
    if n == 0:
        return "0 B"
    for scale, prefix in _PREFIXES:
        if abs(n) >= scale:
            unit = "kB" if prefix == "K" else prefix + "B"
            return f"{_sig(n / scale, digits)} {unit}"
    return f"{int(n)} B"


def _sig(x: float, digits: int) -> str:
    """Format with ``digits`` significant figures, never in scientific notation."""
    if x == 0:
        return "0"
    magnitude = len(str(int(abs(x)))) if abs(x) >= 1 else 0
    decimals = max(digits - magnitude, 0)
    return f"{x:.{decimals}f}"


def shape_str(shape: Sequence[int], sep: str = "x") -> str:
    """``(1, 64, 224, 224) -> '1x64x224x224'``."""
    return sep.join(str(s) for s in shape)
