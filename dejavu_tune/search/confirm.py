"""Paired confirmation: no winner is named on one seed.

After the search, its best few configurations (``search.confirm_top``, ranked by their
metric after the full budget; inert ones never qualify; with several objectives, the
Pareto front's members) are trained again on the
baseline's replicate seeds, which the search itself never used, so the selection's luck
does not carry over. Each is then compared with the baseline seed by seed
(``dejavu_tune.search.paired``). Confirming k configurations is k chances of a lucky
interval, so each interval is at 1 - 0.05/k (Bonferroni): 95% for all of them at once.
The winner is the configuration with the largest mean gain among those whose gain is
significant; when none is, the search found no gain, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dejavu_tune.search import pareto
from dejavu_tune.search.paired import GAIN, Paired, compare
from dejavu_tune.search.trial_records import TrialRecord

__all__ = ["Confirmed", "candidates", "confirm_configs", "evaluate", "winner",
           "baseline_finals"]


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


def _key(config: dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in config.items() if k != "seed"))


def candidates(records: Sequence[TrialRecord], mode: str, top: int,
               objectives: Sequence[tuple[str, str]] = ()) -> list[TrialRecord]:
    """The ``top`` DejaVu trials of the search by their full-budget metric; trials stopped
    early (no value at the full budget) and inert ones are not candidates. With several
    ``objectives`` only the Pareto front's members are, best metric first."""
    sign = 1 if mode == "max" else -1
    full = [r for r in records if r.phase == "search" and not r.is_baseline
            and r.final is not None and not r.inert]
    if len(objectives) > 1:
        full = [p.record for p in pareto.front(pareto.points(full, objectives),
                                               [m for _, m in objectives])]
    full.sort(key=lambda r: -sign * r.final)
    seen, out = set(), []
    for record in full:  # a configuration sampled twice is confirmed once
        if _key(record.config) not in seen:
            seen.add(_key(record.config))
            out.append(record)
    return out[:top]


def confirm_configs(chosen: Sequence[TrialRecord], seeds: Sequence[int]) -> list[dict[str, Any]]:
    return [{**record.sampled(), "seed": seed} for record in chosen for seed in seeds]


def baseline_finals(records: Sequence[TrialRecord], seeds: Sequence[int]) -> dict[int, float]:
    """The baseline's full-budget metric on each replicate seed (search-phase baselines)."""
    return {r.seed: r.final for r in records if r.phase == "search" and r.is_baseline
            and r.seed in seeds and r.final is not None}


FAMILY_CONFIDENCE = 0.95


def evaluate(chosen: Sequence[TrialRecord], confirm_records: Sequence[TrialRecord],
             baseline: dict[int, float], metric: str, mode: str) -> list[Confirmed]:
    confidence = 1 - (1 - FAMILY_CONFIDENCE) / max(1, len(chosen))
    out = []
    for record in chosen:
        values = {r.seed: r.final for r in confirm_records
                  if _key(r.config) == _key(record.config) and r.final is not None}
        out.append(Confirmed(record.sampled(), record.trial_id, record.final, values,
                             compare(values, baseline, metric, mode, confidence)))
    return out


def winner(confirmed: Sequence[Confirmed]) -> Confirmed | None:
    """The significant gain with the largest mean, or None: no gain was found."""
    gains = [c for c in confirmed if c.paired.verdict == GAIN]
    if not gains:
        return None
    better = 1 if gains[0].paired.mode == "max" else -1
    return max(gains, key=lambda c: better * c.paired.mean)
