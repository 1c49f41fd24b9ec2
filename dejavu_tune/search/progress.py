"""Where a running search stands, in one line: printed when a trial ends (at most once
a second, and the last state always), at least once a minute, and kept in the parent
run's ``dejavu.progress`` tag so ``mlflow ui`` shows it too.

    search: 5/8 trials done, 2 running · 31/48 trial-epochs (6 saved by ASHA) · best
    val_miou 0.8505 (t04, single seed) · 4m12s elapsed, about 3m10s left

Time left is the step's trial-epochs still to run times the mean epoch time measured so
far, over the slots; it says "unknown" until an epoch has ended. The best is the search
metric of a DejaVu trial on the search's own seed: single-seed until the confirmation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dejavu_tune.config import is_baseline
from dejavu_tune.outcome import direction
from dejavu_tune.outcome.units import unit_of
from dejavu_tune.tracking.run_names import trial_name

__all__ = ["Progress", "duration", "PROGRESS_TAG"]

PROGRESS_TAG = "dejavu.progress"


def duration(seconds: float) -> str:
    """``45s``, ``4m12s``, ``3h05m``: a time a person reads at a glance."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass(frozen=True)
class Progress:
    """One step's progress: its name, planned trials and budget, what it reports."""

    step: str
    planned: int  # trials of the step, baselines included
    max_epochs: int
    metric: str
    mode: str
    slots: int  # trials at once
    started: float  # when the search started (time.time())
    # the best DejaVu value so far; not in a confirmation, whose verdict is its own
    best: bool = True

    def line(self, states: Sequence[Any], now: float | None = None) -> str:
        """``states``: ``raytune.trial_results.TrialState`` of every trial Tune has."""
        now = time.time() if now is None else now
        done = [s for s in states if s.ended]
        running = sum(s.status == "RUNNING" for s in states)
        epochs = sum(s.epochs for s in states)
        saved = sum(self.max_epochs - s.epochs for s in done
                    if s.status == "TERMINATED" and s.epochs < self.max_epochs)
        failed = [s for s in done if s.status == "ERROR"]
        # a failed trial's unrun epochs are no longer planned either
        lost = sum(self.max_epochs - s.epochs for s in failed)
        budget = self.planned * self.max_epochs
        parts = [f"{self.step}: {len(done)}/{self.planned} trials done, {running} running"
                 + (f" ({len(failed)} failed)" if failed else ""),
                 f"{epochs}/{budget} trial-epochs"
                 + (f" ({saved} saved by ASHA)" if saved else "")]
        best = self._best(states) if self.best else None
        if best is not None:
            parts.append(best)
        left = self._left(states, budget - epochs - saved - lost)
        parts.append(f"{duration(now - self.started)} elapsed, {left}")
        return " · ".join(parts)

    def _best(self, states: Sequence[Any]) -> str | None:
        scored = [(s.last[self.metric], s) for s in states if not is_baseline(s.config)
                  and isinstance(s.last.get(self.metric), (int, float))
                  and math.isfinite(s.last[self.metric])]
        if not scored:
            return None
        sign = direction.sign(self.mode)
        value, state = max(scored, key=lambda p: sign * p[0])
        name = trial_name(state.trial_id, state.path)
        unit = unit_of(self.metric)  # the summary's unit: mIoU points for val_miou
        return (f"best {self.metric} {unit.value(value)}{' ' + unit.name if unit.name else ''}"
                f" ({name}, single seed, epoch {state.epochs})")

    def _left(self, states: Sequence[Any], epochs_left: int) -> str:
        spent = sum(float(s.last.get("time_total_s", 0.0) or 0.0) for s in states)
        ran = sum(s.epochs for s in states)
        if epochs_left <= 0:
            return "nothing left to run"
        if ran == 0 or spent <= 0:
            return "time left unknown until an epoch ends"
        return f"about {duration(epochs_left * spent / ran / max(1, self.slots))} left"
