"""Numbers for people and for JSON: the one place that formats a value, a percent or an interval.

Used by the report, the CLI and the fit results; pure Python (no NumPy needed, NumPy scalars accepted).
"""

from __future__ import annotations

import math


def finite(v) -> float | None:
    """A float, or None for a missing, non-numeric, NaN or infinite value (JSON has no NaN)."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def jsonable(o):
    """A copy of nested dicts/lists with NaN/inf as None and NumPy scalars as Python numbers."""
    if isinstance(o, dict):
        return {k: jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, bool) or o is None or isinstance(o, str):
        return o
    if hasattr(o, "dtype") and getattr(o, "ndim", 1) == 0:  # a NumPy scalar
        o = o.item()
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    return o


def num(v, digits: int = 3) -> str:
    """`digits` significant digits, "n/a" for a missing or non-finite value."""
    v = finite(v)
    return "n/a" if v is None else f"{v:.{digits}g}"


def interval(ci, spec: str = ".2f") -> str:
    """ "[lo, hi]" in format `spec`; "" when the interval is missing or open."""
    if not ci or len(ci) != 2 or finite(ci[0]) is None or finite(ci[1]) is None:
        return ""
    return f"[{float(ci[0]):{spec}}, {float(ci[1]):{spec}}]"


def human(n: float) -> str:
    """1234 -> '1.2k', 23050 -> '23k', 2e6 -> '2M'."""
    n = float(n)
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.1f}{suf}".replace(".0" + suf, suf) if v < 10 else f"{v:.0f}{suf}"
    return f"{n:.0f}" if n == int(n) else f"{n:.3g}"


def pct(v: float) -> str:
    """A fraction as a percent with the digits that matter: 0.1234 -> '12%', 0.0123 -> '1.2%'."""
    p = 100 * v
    if p == 0:
        return "0%"
    if p < 0.01:
        return "≈0%"
    return f"{p:.0f}%" if p >= 10 else (f"{p:.1f}%" if p >= 1 else f"{p:.2g}%")


def count(n) -> str:
    return f"{int(n):,}"


class ErrorFormat:
    """An error as the reader wants it: a rate as a percentage (one decimal), anything else to 4 digits."""

    def __init__(self, pct: bool):
        self.pct = pct

    def err(self, v) -> str:
        v = finite(v)
        if v is None:
            return "n/a"
        if not self.pct:
            return f"{v:.4g}"
        p = 100 * v
        if p == 0:
            return "0%"
        if abs(p) < 0.01:  # a floor fitted at ~1e-25 reads as zero, not as "6e-23%"
            return "≈0%"
        return f"{p:.1f}%" if p >= 1 else f"{p:.2g}%"

    def err_ci(self, ci) -> str:
        if not ci or None in ci:
            return ""
        if self.pct:
            return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
        return f"[{ci[0]:.4g}, {ci[1]:.4g}]"
