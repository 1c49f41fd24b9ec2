"""Which way a metric is better, in one place: ``mode`` is ``"max"`` (mIoU: higher is
better) or ``"min"`` (abs rel: lower is better), as in Ray Tune and the search space."""

from __future__ import annotations

__all__ = ["MODES", "sign", "worst"]

MODES = ("max", "min")


def sign(mode: str) -> int:
    """+1 where higher is better, -1 where lower is: ``sign(mode) * value`` is larger for
    the better value either way."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not allowed: expected one of {MODES}")
    return 1 if mode == "max" else -1


def worst(values: list[float], mode: str) -> float:
    """The least good of ``values``."""
    return min(values, key=lambda v: sign(mode) * v)
