"""One way to write a number: the summary, the front's tables, the report and the figures
all format through here, so a value reads the same wherever it appears.

Rounding can turn a small negative into ``-0.0000``; a reader takes that for a loss, so a
value that rounds to zero is written ``0.0000`` (``+0.0000`` with a sign)."""

from __future__ import annotations

import math

__all__ = ["interval", "num", "parse_finite", "spread", "wilson"]


def num(value: float | None, digits: int = 4, sign: bool = False, scale: float = 1.0,
        missing: str = "") -> str:
    """``value × scale`` with ``digits`` decimals (``+`` in front with ``sign``); ``missing``
    for None, NaN or an infinity, which have no digits to show."""
    if value is None or not math.isfinite(value):
        return missing
    rounded = round(value * scale, digits) + 0.0  # + 0.0: -0.0 becomes 0.0
    return f"{rounded:+.{digits}f}" if sign else f"{rounded:.{digits}f}"


def parse_finite(text: str) -> float | None:
    """``text`` as a finite float; None when it is not a number, or is NaN or infinite."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def spread(mean: float, std: float | None, digits: int = 4, scale: float = 1.0,
           sign: bool = True) -> str:
    """``+0.0120 ± 0.0034``: a mean and its sample std; the std is left out when there is
    none (one seed)."""
    text = num(mean, digits, sign, scale, missing="n/a")
    width = num(std, digits, scale=scale)
    return f"{text} ± {width}" if width else text


def interval(low: float, high: float, digits: int = 4, scale: float = 1.0) -> str | None:
    """``[-0.0021, +0.0130]``; None when an end is unbounded (too few seeds to say)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return f"[{num(low, digits, True, scale)}, {num(high, digits, True, scale)}]"


def wilson(count: int, n: int, z: float = 1.96) -> tuple[float, float, float]:
    """(share, low, high): ``count`` of ``n`` with its Wilson score interval (Wilson
    1927; 95 % at the default ``z``), which stays inside [0, 1] at shares near 0 or 1
    where the normal approximation does not. A simulated rate is itself a sample."""
    if n <= 0:
        return math.nan, math.nan, math.nan
    p = count / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)
