"""Did ASHA's early decisions hold? The check a finished search runs on its own trials.

ASHA stops a trial at a rung (its first: ``search.grace_period`` epochs) on
``search.stop_metric`` (e.g. the training loss), while the search optimises
``search.metric`` (e.g. val_miou) at the full budget. Two questions, on the search
phase's DejaVu trials only:

1. Did the rung rank trials as the end did? Among the trials that reached the full
   budget, Spearman's rank correlation between the stop metric at the rung and the final
   search metric, sign-adjusted so that +1 means "the rung's ranking agrees with the final
   one" whichever way each metric is better (a loss minimised against an mIoU maximised:
   lower loss ranks better). Its 95% interval is Fisher's z with the Fieller, Hartley &
   Pearson (1957) standard error for Spearman's rho, sqrt(1.06 / (n - 3)); it needs
   n >= 4. The trials ASHA stopped at the rung have no final value, so this is the
   rung's ranking among the trials it let through (a restricted range, which if anything
   lowers the correlation).
2. Did it stop a trial as good as the winner? For each trial ASHA stopped at epoch e,
   its search metric at e against the winner's at the same epoch e: within δ (the
   confirmation's smallest effect that matters) when not worse than the winner − δ.

Pure: no Ray, MLflow, Optuna or PyTorch; the summary hands it plain values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from dejavu_tune.outcome import direction
from dejavu_tune.outcome.paired import spearman

__all__ = ["CONFIDENCE", "METHOD", "MIN_TRIALS", "Check", "Near", "Trial", "check",
           "fisher_interval"]

CONFIDENCE = 0.95
MIN_TRIALS = 4  # Fisher's z with the 1.06 / (n - 3) variance needs n - 3 >= 1
METHOD = ("Spearman's rank correlation, sign-adjusted (+1: the rung ranked the full-budget "
          "trials as their final value did); 95% CI by Fisher's z with the Fieller, Hartley "
          "& Pearson (1957) standard error sqrt(1.06 / (n - 3))")


@dataclass(frozen=True)
class Trial:
    """One DejaVu trial of the search, as the check needs it."""

    trial_id: str | None
    curve: tuple[float, ...]  # the search metric per epoch, epoch 1 first
    stop_value: float | None  # the stop metric at the decision rung; None: not reported
    full: bool  # it ran the full budget (its last ``curve`` value is final)
    stopped_early: bool  # ASHA stopped it, at epoch ``len(curve)``

    @property
    def final(self) -> float | None:
        return self.curve[-1] if self.full and self.curve else None


@dataclass(frozen=True)
class Near:
    """A trial ASHA stopped at ``epoch`` whose search metric there was within δ of the
    winner's at the same epoch (or better)."""

    trial_id: str | None
    epoch: int
    value: float
    winner_value: float


def fisher_interval(r: float, n: int, confidence: float = CONFIDENCE
                    ) -> tuple[float, float] | None:
    """The interval of a Spearman correlation ``r`` over ``n`` pairs: Fisher's
    z = atanh(r) ± z_(1+c)/2 · sqrt(1.06 / (n − 3)), back through tanh (Fieller, E. C.,
    Hartley, H. O. & Pearson, E. S. (1957), "Tests for rank correlation coefficients. I",
    Biometrika 44, 470–481). None below ``MIN_TRIALS`` pairs, for a NaN ``r``, and at
    |r| = 1, where Fisher's z is infinite and gives no interval."""
    if n < MIN_TRIALS or not math.isfinite(r) or abs(r) >= 1:
        return None
    half = NormalDist().inv_cdf(0.5 + confidence / 2) * math.sqrt(1.06 / (n - 3))
    z = math.atanh(r)
    return math.tanh(z - half), math.tanh(z + half)


@dataclass(frozen=True)
class Check:
    """What the check found (values in the metrics' own, logged units)."""

    rung: int
    stop_metric: str
    stop_mode: str
    metric: str
    mode: str
    n: int  # full-budget trials with both values
    rho: float  # sign-adjusted rank correlation; NaN below 3 trials or on tied values
    ci: tuple[float, float] | None  # None: too few trials, no ranking, or |rho| = 1
    winner: str | None  # the trial measured against; None: no full-budget trial
    min_effect: float | None  # δ; None: unknown (then only trials at least as good count)
    near: tuple[Near, ...] = ()  # stopped early within δ of the winner
    stopped: int = 0  # trials ASHA stopped (with a value where it stopped)

    @property
    def enough(self) -> bool:
        """Enough full-budget trials for an interval (``MIN_TRIALS``)."""
        return self.n >= MIN_TRIALS

    @property
    def exact_p(self) -> float | None:
        """At |rho| = 1 (no Fisher interval): the two-sided chance of a ranking that
        agrees (or disagrees) this perfectly with no relation at all, 2 / n!."""
        if not self.enough or not math.isfinite(self.rho) or abs(self.rho) < 1:
            return None
        return min(1.0, 2 / math.factorial(self.n))

    @property
    def chance(self) -> bool:
        """The rung's decisions were no better than chance: the estimate is ≤ 0 (or the
        values tie), or its 95% interval includes 0 (at |rho| = 1: the exact chance of
        perfect agreement is 5% or more). False with too few trials to say."""
        if not self.enough:
            return False
        if not math.isfinite(self.rho) or self.rho <= 0:
            return True
        if self.ci is not None:
            return self.ci[0] <= 0
        p = self.exact_p
        return p is not None and p >= 1 - CONFIDENCE

    def to_dict(self) -> dict[str, Any]:
        def finite(v: float | None) -> float | None:
            return v if v is not None and math.isfinite(v) else None

        return {"rung": self.rung, "stop_metric": self.stop_metric, "stop_mode": self.stop_mode,
                "metric": self.metric, "mode": self.mode, "full_budget_trials": self.n,
                "rank_correlation": finite(self.rho),
                "ci_low": self.ci[0] if self.ci else None,
                "ci_high": self.ci[1] if self.ci else None,
                "exact_p": self.exact_p, "method": METHOD,
                "enough_trials": self.enough, "no_better_than_chance": self.chance,
                "winner": self.winner, "min_effect": self.min_effect,
                "stopped_early": self.stopped,
                "stopped_within_min_effect": [
                    {"trial": n.trial_id, "epoch": n.epoch, "value": n.value,
                     "winner_value": n.winner_value} for n in self.near]}


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def check(trials: Sequence[Trial], rung: int, stop_metric: str, stop_mode: str, metric: str,
          mode: str, min_effect: float | None, winner: str | None) -> Check | None:
    """The check of a search whose ASHA decided first at epoch ``rung``; None without
    early stopping (``rung`` 0). ``trials``: the search's DejaVu trials (no baselines);
    ``winner``: the confirmed winner's search trial, else the best full-budget trial."""
    if rung <= 0:
        return None
    sign = direction.sign(mode)
    agree = direction.sign(stop_mode) * sign  # -1: better is lower for one, higher for the other
    pairs = [(t.stop_value, t.final) for t in trials
             if t.full and _finite(t.stop_value) and _finite(t.final)]
    n = len(pairs)
    rho = (agree * spearman([p[0] for p in pairs], [p[1] for p in pairs])  # type: ignore[misc]
           if n >= 3 and len({p[0] for p in pairs}) > 1 and len({p[1] for p in pairs}) > 1
           else math.nan)
    if math.isfinite(rho) and abs(abs(rho) - 1) < 1e-9:
        rho = math.copysign(1.0, rho)  # scipy's 0.9999999999999999 is a perfect ranking
    rho = rho + 0.0  # -0.0 reads as 0
    best = next((t for t in trials if winner is not None and t.trial_id == winner), None)
    stopped = [t for t in trials if t.stopped_early and t.curve and _finite(t.curve[-1])]
    delta = min_effect or 0.0
    near = []
    if best is not None:
        for t in stopped:
            epoch = len(t.curve)
            ref = best.curve[epoch - 1] if epoch <= len(best.curve) else None
            # not worse than the winner − δ (1e-12: a value exactly there, as rounding has it)
            if _finite(ref) and sign * (t.curve[-1] - ref) + delta >= -1e-12:  # type: ignore[operator]
                near.append(Near(t.trial_id, epoch, t.curve[-1], ref))  # type: ignore[arg-type]
    near.sort(key=lambda x: -sign * (x.value - x.winner_value))
    return Check(rung, stop_metric, stop_mode, metric, mode, n, rho, fisher_interval(rho, n),
                 winner if best is not None else None, min_effect, tuple(near), len(stopped))
