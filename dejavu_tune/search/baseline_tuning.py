"""The baseline is tuned as hard as DejaVu.

Any extra loss term that speeds up early training looks like a DejaVu gain against a
baseline left at an untuned learning rate (measured: the baseline's learning rate alone
moved it by more than any DejaVu setting did). So the settings both share (``shared:
true`` in the space, at least ``optim.lr``) are tuned for the baseline first, on
``search.baseline_trials`` evenly spread points (a scrambled Sobol sequence: with a few
trials, TPE would only sample at random), each to the full budget; DejaVu is then
searched, and compared, at the baseline's best values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from dejavu_tune.outcome import direction
from dejavu_tune.outcome.units import unit_of
from dejavu_tune.search.trial_records import TrialRecord

__all__ = ["sobol_points", "best", "describe"]


def _value(param: Any, u: float) -> Any:
    """The parameter's value at ``u`` in [0, 1) of its range (log ranges in log space)."""
    if param.type == "categorical":
        return param.choices[min(int(u * len(param.choices)), len(param.choices) - 1)]
    low, high = float(param.low), float(param.high)
    x = math.exp(math.log(low) + u * (math.log(high) - math.log(low))) if param.log else (
        low + u * (high - low))
    if param.step:
        x = low + round((x - low) / param.step) * param.step
    if param.type == "int":
        return int(round(x))
    return float(f"{x:.6g}")  # a value a person can read and retype


def sobol_points(params: Sequence[Any], count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` configurations of ``params`` spread evenly over their ranges."""
    from scipy.stats import qmc

    sampler = qmc.Sobol(d=len(params), scramble=True, seed=seed)
    # Sobol's balance holds for powers of two; draw the next one and keep the first points.
    draws = sampler.random(2 ** max(1, math.ceil(math.log2(max(count, 1)))))[:count]
    return [{p.name: _value(p, float(u)) for p, u in zip(params, row, strict=True)}
            for row in draws]


def best(records: Sequence[TrialRecord], mode: str) -> TrialRecord | None:
    sign = direction.sign(mode)
    done = [r for r in records if r.final is not None]
    return max(done, key=lambda r: sign * r.final) if done else None


def describe(records: Sequence[TrialRecord], chosen: TrialRecord, metric: str,
             share: float) -> str:
    unit = unit_of(metric)  # the summary's unit: mIoU points for val_miou
    tried = ", ".join(f"{_short(r.config)} → {unit.value(r.final)}" if r.final is not None
                      else f"{_short(r.config)} → {r.status}" for r in records)
    return (f"{', '.join(chosen.config)} tuned on {len(records)} baseline trials (DejaVu off, "
            f"seed {chosen.seed}, full budget; {share:.0%} of the search's trial-epochs): "
            f"{tried}; DejaVu searched and compared at {_short(chosen.config)} "
            f"({metric} {unit.value(chosen.final)}{' ' + unit.name if unit.name else ''}).")


def _short(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in config.items())
