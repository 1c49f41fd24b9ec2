"""What a confirmation design can see, before it runs and after: the smallest gain it
detects with 80% power at a noise floor, and how many runs it takes.

The noise floor is the baseline's seed-to-seed std. A paired difference of two runs
on the same seed has std ``√2 · floor`` when the seed's luck is not shared at all; that
is assumed here (pairing can only narrow it), so the statement is conservative. Power
is simulated through ``sequential.confirm`` itself (one candidate at the design's
per-candidate level, common random numbers across the effects tried, so the answer is
repeatable), not taken from a fixed-design formula.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from dejavu_tune.outcome import sequential as seq
from dejavu_tune.outcome.units import AS_LOGGED, Unit

__all__ = ["Plan", "plan", "pair_sd", "pooled_sd", "max_runs", "POWER"]

POWER = 0.8
# 1,000 simulated confirmations: the power at 80% has a std of 1.3 points, the detectable
# gain a few percent of itself
_REPS = 1000


def pair_sd(noise_floor: float) -> float:
    """The paired difference's std at a noise floor, sharing nothing of the seed's luck."""
    return math.sqrt(2) * noise_floor


def pooled_sd(samples: list[tuple[float, ...]]) -> float:
    """The pooled sample std of several samples (each weighted by n - 1); NaN without
    one of two or more."""
    dof = sum(len(x) - 1 for x in samples if len(x) >= 2)
    if not dof:
        return math.nan
    return math.sqrt(sum((len(x) - 1) * seq.mean_sd(x)[1] ** 2
                         for x in samples if len(x) >= 2) / dof)


@dataclass(frozen=True)
class Plan:
    design: seq.Design
    noise_floor: float  # the baseline's seed-to-seed std, or the paired spread (``paired``)
    detectable: float | None  # smallest gain found with POWER; None: not within 100 δ
    expected_runs_null: float  # mean confirmation runs when nothing differs
    max_runs: int

    paired: bool = False  # noise_floor is the paired differences' own spread

    def text(self, where: str, unit: Unit = AS_LOGGED) -> str:
        """The statement, its numbers in ``unit`` (mIoU points for val_miou)."""
        d = self.design
        gain = (unit.value(self.detectable) if self.detectable is not None
                else f"more than {unit.value(100 * d.min_effect)}")
        spread = ("a paired spread (std of DejaVu minus the baseline per seed)" if self.paired
                  else "a noise floor")
        return (f"confirmation: {d.candidates} candidate(s), paired seeds at looks "
                f"{', '.join(map(str, d.looks))}, δ = {unit.value(d.min_effect)}; at {spread} of "
                f"{unit.value(self.noise_floor)} ({where}) it detects a gain of {gain} with "
                f"{POWER:.0%} power; {self.expected_runs_null:.1f} runs expected with no "
                f"effect, at most {self.max_runs}" + (f" (values in {unit.name})" if unit.name else ""))


def max_runs(design: seq.Design) -> int:
    later = design.max_seeds - design.looks[0]
    kept = design.candidates if design.keep is None else min(design.keep, design.candidates)
    return design.candidates * design.looks[0] + kept * later + later


def _normals(design: seq.Design, reps: int, seed: int):
    import numpy as np

    return np.random.default_rng(seed).standard_normal((reps, design.max_seeds))


def _detected(design: seq.Design, draws, effect: float, sd: float) -> float:
    """Share of simulated single-candidate confirmations that end in a significant gain."""
    one = seq.Design(1, design.looks, design.min_effect, design.level)
    hits = 0
    for row in draws:
        values = effect + sd * row

        def measure(k: int, names: list[str], seeds: list[int],
                    values=values) -> dict[str, dict[int, float]]:
            return {"x": {s: float(values[s]) for s in seeds}}

        result = seq.confirm(one, ["x"], range(design.max_seeds), measure)
        hits += result.final["x"].decision == seq.GAIN
    return hits / len(draws)


def _expected_null(design: seq.Design, sd: float, reps: int, seed: int) -> float:
    import numpy as np

    rng = np.random.default_rng(seed)
    names = [str(i) for i in range(design.candidates)]
    total = 0
    for _ in range(reps):
        shared = rng.standard_normal(design.max_seeds) * sd / math.sqrt(2)

        def measure(k: int, going: list[str], seeds: list[int],
                    shared=shared) -> dict[str, dict[int, float]]:
            # the baseline's own noise is common to every candidate on a seed
            return {n: {s: float(rng.standard_normal() * sd / math.sqrt(2) - shared[s])
                        for s in seeds} for n in going}

        total += seq.confirm(design, names, range(design.max_seeds), measure).runs
    return total / reps


@functools.lru_cache(maxsize=64)  # a dry-run, a summary and the tests ask the same ones
def plan(design: seq.Design, noise_floor: float, reps: int = _REPS, seed: int = 0,
         paired: bool = False) -> Plan:
    """The design's power statement at ``noise_floor`` (the baseline's seed-to-seed std;
    ``paired``: the paired differences' std itself, as a confirmation measured it)."""
    sd = noise_floor if paired else pair_sd(noise_floor)
    draws = _normals(design, reps, seed)
    low, high = 0.0, design.min_effect
    while _detected(design, draws, high, sd) < POWER:
        low, high = high, high * 2
        if high > 100 * design.min_effect:
            return Plan(design, noise_floor, None, _expected_null(design, sd, reps // 4, seed),
                        max_runs(design), paired)
    for _ in range(10):  # bisection to a 1/1024 of the bracket
        mid = (low + high) / 2
        low, high = (mid, high) if _detected(design, draws, mid, sd) < POWER else (low, mid)
    return Plan(design, noise_floor, high, _expected_null(design, sd, reps // 4, seed),
                max_runs(design), paired)
