"""Paired confirmation: no winner is named on one seed.

After the search, its best few configurations (``search.confirm_top``, ranked by their
metric after the full budget; inert ones never qualify; with several objectives, the
Pareto front's members) are trained again on seeds the search itself never used, so
the selection's luck does not carry over, and compared with the baseline seed by seed.
The seeds come in rounds (``outcome.sequential``): the first look on the baseline's
replicate seeds, then 2 more paired seeds per look, up to ``search.max_seeds``; after the
first look only the best goes on, and a candidate stops as soon as its repeated
confidence interval (95% for all candidates and looks at once) decides: a significant
gain, a significant loss, or no gain of ``search.min_effect`` or more. The winner is
the significant gain with the best mean; a search whose seeds ran out first is
inconclusive, and says how many paired seeds a decision would take.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dejavu_tune.config import ENABLED_KEY
from dejavu_tune.outcome import direction, sequential
from dejavu_tune.outcome.limits import Limit, broken
from dejavu_tune.outcome.paired import Paired, compare
from dejavu_tune.search import pareto
from dejavu_tune.search.trial_context import HELDOUT_KEY, config_key
from dejavu_tune.search.trial_records import TrialRecord

__all__ = ["Confirmation", "Confirmed", "ROUND_SEEDS", "candidates", "confirm_configs", "design_for",
           "evaluate", "baseline_finals", "seeds_for", "config_key", "baseline_points",
           "max_runs_for"]

# paired seeds added per look after the first: bench verdicts measured 1, 2 and 3
ROUND_SEEDS = 2


@dataclass(frozen=True)
class Confirmed:
    config: dict[str, Any]  # the sampled configuration (no seed)
    search_trial: str | None  # the search trial it was selected from
    search_value: float  # its metric there (the search's own seed)
    values: dict[int, float]  # its metric after the full budget, per confirmation seed
    paired: Paired

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "search_trial": self.search_trial,
                "search_value": self.search_value,
                "values": {str(k): v for k, v in sorted(self.values.items())},
                **self.paired.to_dict()}


@dataclass(frozen=True)
class Confirmation:
    """A finished confirmation: the rule's record, each candidate, the winner (None: no
    significant gain) and the baseline's value on every paired seed."""

    result: sequential.Result
    confirmed: list[Confirmed]
    winner: Confirmed | None
    baseline: dict[int, float]

    @property
    def verdict(self) -> str:
        return sequential.overall(self.result)


def candidates(records: Sequence[TrialRecord], mode: str, top: int,
               objectives: Sequence[tuple[str, str]] = (),
               limits: Sequence[Limit] = ()) -> list[TrialRecord]:
    """The ``top`` DejaVu trials of the search by their full-budget metric; trials stopped
    early (no value at the full budget), inert ones and those that break one of the
    search's ``limits`` (``search.constraints``) are not candidates. With several
    ``objectives`` only the Pareto front's members are, best metric first."""
    sign = direction.sign(mode)
    full = [r for r in records if r.phase == "search" and not r.is_baseline
            and r.final is not None and not r.inert and not broken(limits, r.last)]
    if len(objectives) > 1:
        full = [p.record for p in pareto.front(pareto.points(full, objectives),
                                               [m for _, m in objectives])]
    full.sort(key=lambda r: -sign * r.final)
    seen, out = set(), []
    for record in full:  # a configuration sampled twice is confirmed once
        if config_key(record.config) not in seen:
            seen.add(config_key(record.config))
            out.append(record)
    return out[:top]


def confirm_configs(chosen: Sequence[TrialRecord], seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Each candidate on each seed, scoring the held-out split."""
    return [{**record.sampled(), "seed": seed, HELDOUT_KEY: True}
            for record in chosen for seed in seeds]


def baseline_points(seeds: Sequence[int]) -> list[dict[str, Any]]:
    """The baseline (DejaVu off) on each seed, scoring the held-out split too."""
    return [{ENABLED_KEY: False, "seed": seed, HELDOUT_KEY: True} for seed in seeds]


def baseline_finals(records: Sequence[TrialRecord], seeds: Sequence[int],
                    phase: str = "search") -> dict[int, float]:
    """The baseline's held-out metric after the full budget on each of ``seeds`` (the
    step ``phase``'s runs)."""
    return {r.seed: r.heldout for r in records if r.phase == phase and r.is_baseline
            and r.seed in seeds and r.heldout is not None}


def design_for(s: Any, candidates: int) -> sequential.Design | None:
    """The confirmation's design for the search settings ``s`` (None: no confirmation)."""
    if not (s.baseline and s.baseline_seeds >= 2 and s.confirm_top > 0 and candidates > 0
            and s.algorithm != "grid"):
        return None
    # a Pareto front's members trade quality for cost: every one goes on, not only the
    # best quality
    return sequential.Design(candidates, sequential.looks_for(
        s.baseline_seeds, s.max_seeds, ROUND_SEEDS), s.min_effect,
        keep=None if len(s.objectives) > 1 else 1)


def max_runs_for(s: Any) -> int:
    """The most confirmation runs (DejaVu and the baseline's later seeds) of settings ``s``."""
    from dejavu_tune.outcome.power import max_runs

    design = design_for(s, s.confirm_top)
    return 0 if design is None else max_runs(design)


def seeds_for(first_seed: int, design: sequential.Design) -> list[int]:
    """The paired seeds in the order the looks use them: the baseline's replicates
    (``first_seed`` on), then the next ones."""
    return list(range(first_seed, first_seed + design.max_seeds))


def evaluate(chosen: Sequence[TrialRecord], values: dict[str, dict[int, float]],
             baseline: dict[int, float], metric: str, mode: str,
             result: sequential.Result) -> list[Confirmed]:
    """Each candidate with its values per seed, its paired differences and its last
    look's interval and decision (turned back into the metric's own direction)."""
    sign = direction.sign(mode)
    out = []
    for record in chosen:
        look = result.final.get(record.trial_id)
        raw = compare(values.get(record.trial_id, {}), baseline, metric, mode)
        bounds = None if look is None else (
            (look.low, look.high) if sign > 0 else (-look.high, -look.low))
        paired = Paired(metric, mode, raw.seeds, raw.deltas, 1 - result.design.alpha,
                        bounds, look.decision if look is not None else None)
        out.append(Confirmed(record.sampled(), record.trial_id, record.final,
                             values.get(record.trial_id, {}), paired))
    return out
