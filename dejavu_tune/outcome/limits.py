"""Hard limits on what a trial may cost (``search.constraints``): ``"step_time_ratio <=
1.10"`` reads "never more than 10 % slower per step than the baseline".

A limit acts twice. While sampling, Optuna's ``constraints_func`` (TPE, GP) receives
each finished trial's values from its user attributes (``tune_outcomes`` copies them
from the trial's last result) and ranks feasible trials above infeasible ones, so the
sampler proposes violators less often. After the trials, a configuration that breaks a
limit is never a candidate: the confirmation skips it and the summary says why.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dejavu_tune.outcome.numbers import parse_finite

__all__ = ["Limit", "parse", "broken", "OptunaConstraints", "FORM"]

FORM = "'METRIC <= NUMBER' or 'METRIC >= NUMBER', e.g. 'step_time_ratio <= 1.10'"
_PATTERN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_./-]*)\s*(<=|>=)\s*([-+0-9.eE]+)\s*")


@dataclass(frozen=True)
class Limit:
    metric: str
    op: str  # "<=" or ">="
    bound: float

    def excess(self, value: float | None) -> float:
        """Optuna's convention: <= 0 where the limit holds, else by how much it is broken;
        a trial that never reported the metric breaks it (+inf)."""
        if value is None or not isinstance(value, (int, float)) or math.isnan(value):
            return math.inf
        return value - self.bound if self.op == "<=" else self.bound - value

    def holds(self, value: float | None) -> bool:
        return self.excess(value) <= 0

    def text(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def parse(raw: Any) -> tuple[Limit, ...]:
    """``search.constraints``, a list of ``FORM`` strings; ValueError naming the entry
    that is not one."""
    if raw is None:
        return ()
    if isinstance(raw, str) or not isinstance(raw, (list, tuple)):
        raise ValueError(f"{raw!r} is not allowed: expected a list of {FORM}")
    limits = []
    for i, entry in enumerate(raw):
        found = _PATTERN.fullmatch(entry) if isinstance(entry, str) else None
        bound = parse_finite(found.group(3)) if found else None
        if bound is None:
            raise ValueError(f"[{i}] {entry!r} is not allowed: expected {FORM}")
        limits.append(Limit(found.group(1), found.group(2), bound))
    return tuple(limits)


def broken(limits: Iterable[Limit], metrics: Mapping[str, Any]) -> list[str]:
    """The limits ``metrics`` (a trial's last result) break, each with its value."""
    out = []
    for limit in limits:
        value = metrics.get(limit.metric)
        if not limit.holds(value):
            shown = "not reported" if value is None else f"{value:g}"
            out.append(f"{limit.text()} ({shown})")
    return out


@dataclass(frozen=True)
class OptunaConstraints:
    """Optuna's ``constraints_func`` for ``limits``: one value per limit, <= 0 feasible,
    read from the finished trial's user attributes. A picklable object, not a closure:
    Tune saves the sampler with the searcher's state."""

    limits: tuple[Limit, ...]

    def __call__(self, trial: Any) -> Sequence[float]:
        # a trial that failed before reporting has no value: infeasible, but finite
        # (Optuna compares the sums of violations)
        return [min(limit.excess(trial.user_attrs.get(limit.metric)), 1e12)
                for limit in self.limits]
