"""The Pareto front of a finished search's settings, for ``python -m dejavu_tune.report``.

Each setting (a configuration over its seeds) is a point: its mean quality and mean
costs (``step_time_ratio``, ``mem_ratio``: the step next to the baseline's). The
baseline is the reference, cost 1.0; each setting's Δ is paired with it by seed
(``search.paired``). A search run with ``search.objectives`` names them in its parent
run; any search can be laid out this way with ``--objectives``.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dejavu_tune.outcome import direction
from dejavu_tune.outcome.numbers import num
from dejavu_tune.outcome.paired import compare
from dejavu_tune.search.pareto import dominates, front

__all__ = ["parse_objectives", "front_table"]

SEED = "seed"


@dataclass(frozen=True)
class _Setting:
    params: tuple[tuple[str, str], ...]
    values: tuple[float, ...]  # mean per objective
    by_seed: dict[int, float]  # the quality per seed, for the paired Δ


def parse_objectives(text: str) -> list[tuple[str, str]]:
    """``"val_miou (max), step_time_ratio (min)"`` (the parent run's param),
    ``"val_abs_rel:min step_time_ratio"``, or ``"val_miou step_time_ratio"`` (a mode not
    given: max for the first, the quality, and min for the costs)."""
    out = []
    for part in text.replace(",", " ").split():
        if part.startswith("("):
            out[-1] = (out[-1][0], part.strip("()"))
            continue
        name, _, mode = part.partition(":")
        mode = mode or ("max" if not out else "min")
        if mode not in direction.MODES:
            raise ValueError(f"objective {part!r}: expected METRIC, METRIC:max or METRIC:min")
        out.append((name, mode))
    return out


def _seed(params: dict[str, str]) -> int:
    try:
        return int(params.get(SEED, "0"))
    except ValueError:
        return 0


def front_table(trials: Sequence[Any], objectives: Sequence[tuple[str, str]],
                digits: int = 4) -> str:
    """Markdown: every setting's mean objectives, its paired Δ vs the baseline and whether
    it is on the front; ``trials`` are ``report.Trial`` (params, metrics, is_baseline)."""
    names = [m for m, _ in objectives]
    missing = sorted({m for t in trials for m in names if m not in t.metrics
                      and not t.is_baseline})
    if missing:
        raise ValueError(f"the trials lack {', '.join(missing)}: expected metrics the search "
                         "logged (the cost ratios step_time_ratio and mem_ratio are measured "
                         "only in searches that name them in search.objectives or "
                         "search.constraints)")
    quality, mode = objectives[0]
    baseline = {_seed(t.params): t.metrics[quality] for t in trials if t.is_baseline
                and quality in t.metrics}
    groups: dict[tuple, list[Any]] = defaultdict(list)
    for t in trials:
        if not t.is_baseline:
            groups[tuple(sorted((k, v) for k, v in t.params.items() if k != SEED))].append(t)
    settings = [_Setting(key, tuple(statistics.fmean(t.metrics[m] for t in group)
                                    for m in names),
                         {_seed(t.params): t.metrics[quality] for t in group})
                for key, group in groups.items()]
    modes = [d for _, d in objectives]
    members = {id(s) for s in front(settings, modes)}
    base_point = ((statistics.fmean(baseline.values()), *([1.0] * (len(names) - 1)))
                  if baseline else None)
    sign = direction.sign(mode)
    settings.sort(key=lambda s: (id(s) not in members, -sign * s.values[0]))
    lines = [f"## Pareto front: {' vs '.join(names)}", "",
             f"{len(members)} of {len(settings)} settings on the front (means over seeds; "
             "costs over the baseline step's, 1.0 = the baseline)"
             + (f"; baseline {quality} {num(base_point[0], digits)}" if base_point else "")
             + ".", "",
             "| setting | seeds | " + " | ".join(names) + f" | {quality} Δ vs baseline "
             "(paired) | front |", "|---|---|" + "---|" * len(names) + "---|---|"]
    for s in settings:
        paired = compare(s.by_seed, baseline, quality, mode) if baseline else None
        if paired is not None and paired.n:
            delta = paired.text(digits=digits)
        elif baseline:  # the search's trials and its baseline replicates share no seed
            gap = (statistics.fmean(s.by_seed.values())
                          - statistics.fmean(baseline.values()))
            delta = f"{num(gap, digits, sign=True)} (difference of means: no common seed)"
        else:
            delta = "no baseline"
        on = "yes" if id(s) in members else "no"
        if base_point is not None and dominates(base_point, s.values, modes):
            on += " (the baseline dominates it)"
        label = ", ".join(f"{k.removeprefix('dejavu.')}={v}" for k, v in s.params) or "—"
        lines.append(f"| {label} | {len(s.by_seed)} | "
                     + " | ".join(num(v, digits) for v in s.values)
                     + f" | {delta} | {on} |")
    return "\n".join(lines) + "\n"

