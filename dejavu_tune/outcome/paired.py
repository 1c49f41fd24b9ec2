"""How sure a comparison is: paired differences over seeds, their confidence interval, and
a verdict a person can act on.

DejaVu and the baseline are trained on the same seeds (weight init, data order, redaction
draws), so the seed-to-seed variation that both share cancels in the per-seed difference.
The interval is Student's t on those differences (n - 1 degrees of freedom): with three
seeds it is wide, which is the truth about three seeds. A comparison whose interval
contains 0 is "within noise", whatever its mean.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dejavu_tune.outcome.numbers import interval, spread

__all__ = ["GAIN", "LOSS", "WITHIN_NOISE", "Paired", "compare", "noise_floor", "spearman"]

GAIN = "significant gain"
LOSS = "significant loss"
WITHIN_NOISE = "within noise"


def _t_quantile(confidence: float, dof: int) -> float:
    from scipy.stats import t  # deferred: only a finished search needs it

    return float(t.ppf(0.5 + confidence / 2, dof))


@dataclass(frozen=True)
class Paired:
    """DejaVu minus the baseline on each shared seed, in the metric's own units."""

    metric: str
    mode: str  # "max" or "min": which direction of the metric is better
    seeds: tuple[int, ...]
    deltas: tuple[float, ...]
    confidence: float = 0.95
    # a sequential confirmation's interval and decision (outcome.sequential), in the
    # metric's units; None: Student's t at ``confidence`` and its verdict
    bounds: tuple[float, float] | None = None
    decision: str | None = None

    @property
    def n(self) -> int:
        return len(self.deltas)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.deltas) if self.deltas else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof=1) of the differences; NaN below two seeds."""
        return statistics.stdev(self.deltas) if self.n >= 2 else math.nan

    @property
    def ci(self) -> tuple[float, float]:
        if self.bounds is not None:
            return self.bounds
        if self.n < 2:
            return -math.inf, math.inf  # one seed says nothing about the spread
        half = _t_quantile(self.confidence, self.n - 1) * self.std / math.sqrt(self.n)
        return self.mean - half, self.mean + half

    @property
    def verdict(self) -> str:
        if self.decision is not None:
            return self.decision
        low, high = self.ci
        if low > 0 or high < 0:
            better = (low > 0) == (self.mode == "max")
            return GAIN if better else LOSS
        return WITHIN_NOISE

    def cell(self, scale: float = 1.0, digits: int = 4) -> str:
        """``+1.20 ± 0.80``: the per-seed differences' mean and sample std."""
        return spread(self.mean, self.std, digits, scale)

    def interval_text(self, scale: float = 1.0, digits: int = 4) -> str:
        """``[-0.79, +3.19]``, or why there is no interval."""
        return interval(*self.ci, digits, scale) or "no CI from one seed"

    def text(self, scale: float = 1.0, digits: int = 4, unit: str = "") -> str:
        """``Δ +1.20 ± 0.80 mIoU points (95% CI [-0.79, +3.19], 3 seeds): within noise``
        (``unit``: what the scaled numbers count, if anything)"""
        kind = "family-wise sequential CI" if self.bounds is not None else "CI"
        bounds = interval(*self.ci, digits, scale)
        ci = (f"{self.confidence * 100:.4g}% {kind} {bounds}" if bounds
              else "no CI from one seed")
        return (f"Δ {self.cell(scale, digits)}{' ' + unit if unit else ''} ({ci}, {self.n} seed"
                f"{'s' if self.n != 1 else ''}): {self.verdict}")

    def to_dict(self) -> dict[str, object]:
        low, high = self.ci
        return {"metric": self.metric, "mode": self.mode, "seeds": list(self.seeds),
                "deltas": list(self.deltas), "mean": self.mean, "std": self.std,
                "ci_low": low, "ci_high": high, "confidence": self.confidence,
                "sequential": self.bounds is not None, "verdict": self.verdict}


def compare(dejavu: Mapping[int, float], baseline: Mapping[int, float], metric: str,
            mode: str, confidence: float = 0.95) -> Paired:
    """Pair the two by seed; seeds only one side has are left out."""
    seeds = tuple(sorted(set(dejavu) & set(baseline)))
    deltas = tuple(dejavu[s] - baseline[s] for s in seeds)
    return Paired(metric, mode, seeds, deltas, confidence)


def noise_floor(values: Sequence[float]) -> float:
    """The seed-to-seed standard deviation (ddof=1) of the baseline; NaN below two."""
    finite = [v for v in values if math.isfinite(v)]
    return statistics.stdev(finite) if len(finite) >= 2 else math.nan


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Rank correlation of two equally long samples (ties get their mean rank)."""
    from scipy.stats import spearmanr

    if len(x) != len(y) or len(x) < 3:
        return math.nan
    return float(spearmanr(x, y).statistic)
