"""The baseline trials inside the search's own Tune run, and fixed lists of trials.

A baseline run in a Tune run of its own before the search idles every other
slot until it ends; here the baselines (one per seed) are simply the first trials
of the search. The searcher wrapper hands out each baseline configuration once and
keeps their results away from Optuna (a baseline is not a point of the DejaVu space);
the scheduler wrapper never stops it early and keeps it out of ASHA's rungs
(DejaVu trials compete with each other). Both are plain module-level classes
so that Tune can pickle them with the experiment and ``Tuner.restore`` them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.schedulers.async_hyperband import _Bracket
from ray.tune.search import Searcher

from dejavu_tune.config import is_baseline
from dejavu_tune.outcome import direction

__all__ = ["BaselineFirst", "BaselineExemptASHA", "ParetoASHA", "FixedConfigs", "STOPS_FILE",
           "StopDecision", "read_stops"]

# ASHA's decisions, one JSON line per stopped trial, in the step's experiment directory:
# written by the scheduler in the driver as it decides, so a resumed search keeps them
STOPS_FILE = "asha_stops.jsonl"


@dataclass(frozen=True)
class StopDecision:
    """Why ASHA stopped a trial: at ``rung`` (an epoch) its ``metric`` was ``value``,
    on the wrong side of ``cutoff``, the (1 - 1/reduction_factor) quantile of the
    ``peers`` trials recorded at that rung before it."""

    trial_id: str
    rung: int
    metric: str
    mode: str
    value: float
    cutoff: float
    peers: int
    reduction_factor: float

    def text(self) -> str:
        side = "below" if self.mode == "max" else "above"
        # as many digits as it takes to see the two differ (ASHA stops only the strictly
        # worse: 1.505 "above" a cut-off of 1.505 reads as a contradiction)
        digits = next((d for d in range(4, 13)
                       if f"{self.value:.{d}g}" != f"{self.cutoff:.{d}g}"), 12)
        return (f"ASHA at epoch {self.rung}: {self.metric} {self.value:.{digits}g}, {side} "
                f"the cut-off {self.cutoff:.{digits}g} (only the best "
                f"1/{self.reduction_factor:g} of the {self.peers} "
                f"trial{'s' if self.peers != 1 else ''} there before it went on)")


def read_stops(directory: str | Path) -> dict[str, StopDecision]:
    """ASHA's decisions of the step in ``directory``, by trial id ({} when none)."""
    path = Path(directory) / STOPS_FILE
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        try:
            decision = StopDecision(**json.loads(line))
        except (ValueError, TypeError):
            continue  # a line cut short by a killed driver: that decision is unknown
        out[decision.trial_id] = decision
    return out


class BaselineFirst(Searcher):
    """Suggests the ``baselines`` for the first trials, then whatever ``searcher`` suggests."""

    def __init__(self, searcher: Searcher, baselines: list[dict[str, Any]]):
        self.searcher = searcher  # the attribute name Tune's SearchGenerator walks to save state
        self.baselines = [dict(b) for b in baselines]
        self.baseline_trials: list[str] = []
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return False  # the ConcurrencyLimiter around us counts the baseline as a trial

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if len(self.baseline_trials) < len(self.baselines):
            self.baseline_trials.append(trial_id)
            return dict(self.baselines[len(self.baseline_trials) - 1])
        return self.searcher.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.baseline_trials:
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id not in self.baseline_trials:
            self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def get_state(self) -> dict[str, Any]:
        return {"baselines": self.baselines, "baseline_trials": self.baseline_trials}

    def set_state(self, state: dict[str, Any]) -> None:
        self.baselines = state["baselines"]
        self.baseline_trials = state["baseline_trials"]

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)


class BaselineExemptASHA(ASHAScheduler):
    """ASHA for the DejaVu trials; the baseline always runs its full budget. Each stop
    is written to ``stops_file`` with the cut-off it was decided by (``StopDecision``)."""

    def __init__(self, stops_file: str | None = None, **asha: Any):
        super().__init__(**asha)
        self.stops_file = stops_file

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if is_baseline(trial.config):
            return TrialScheduler.CONTINUE
        action = super().on_trial_result(tune_controller, trial, result)
        # getattr: a scheduler restored from a search recorded before it wrote stops
        if (action == TrialScheduler.STOP and getattr(self, "stops_file", None)
                and result.get(self._time_attr, 0) < self._max_t):  # not the budget's end
            self._record_stop(trial, result)
        return action

    def _record_stop(self, trial: Any, result: dict) -> None:
        """The rung the trial was just recorded at and the cut-off the trials recorded
        there before it set (what Ray's bracket compared it with)."""
        bracket = self._trial_info.get(trial.trial_id)
        reached = result[self._time_attr]
        for milestone, recorded in getattr(bracket, "_rungs", ()):
            if reached >= milestone and trial.trial_id in recorded:
                others = {t: v for t, v in recorded.items() if t != trial.trial_id}
                cutoff = bracket.cutoff(others)
                if cutoff is None or not math.isfinite(float(cutoff)):
                    return
                decision = StopDecision(
                    trial.trial_id, int(milestone), self._metric, self._mode,
                    float(result[self._metric]), float(self._metric_op * cutoff),
                    len(others), float(self._reduction_factor))
                with open(self.stops_file, "a") as out:
                    out.write(json.dumps(decision.__dict__) + "\n")
                return

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if is_baseline(trial.config):
            self._trial_info.pop(trial.trial_id, None)
            return
        super().on_trial_complete(tune_controller, trial, result)


class ParetoASHA(BaselineExemptASHA):
    """ASHA for a search with cost objectives: at a rung a trial is compared only with the
    trials recorded there that cost no more on every cost metric (``costs``: (metric, mode);
    measured once, so known from the first result). ASHA's cutoff over those: a
    trial stopped has at least 1 - 1/reduction_factor of its no-dearer peers ahead of it,
    so it was dominated at the rung; the cheapest trial is never stopped, and the cheap
    end of the front survives for the search to report."""

    def __init__(self, costs: tuple[tuple[str, str], ...], **asha: Any):
        super().__init__(**asha)
        self.costs = tuple(costs)  # (metric, mode)
        self.trial_costs: dict[str, tuple[float, ...]] = {}
        # Ray builds its brackets in __init__; re-classing keeps their rungs as built
        for bracket in self._brackets:
            bracket.__class__ = _ParetoBracket
            bracket.owner = self

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if all(m in result for m, _ in self.costs):
            self.trial_costs[trial.trial_id] = tuple(
                -direction.sign(mode) * float(result[m]) for m, mode in self.costs)
        return super().on_trial_result(tune_controller, trial, result)


class _ParetoBracket(_Bracket):
    owner: ParetoASHA
    current: str | None = None

    def on_result(self, trial: Any, cur_iter: int, cur_rew: float | None) -> str:
        self.current = trial.trial_id
        return super().on_result(trial, cur_iter, cur_rew)

    def cutoff(self, recorded: dict[str, float]) -> float | None:
        mine = self.owner.trial_costs.get(self.current)
        if mine is not None:
            costs = self.owner.trial_costs
            recorded = {t: v for t, v in recorded.items()
                        if t in costs and all(a <= b for a, b in zip(costs[t], mine, strict=True))}
        return super().cutoff(recorded)


class FixedConfigs(Searcher):
    """Suggests exactly ``configs``, in order, then nothing more (the confirmation runs)."""

    def __init__(self, configs: list[dict[str, Any]], metric: str, mode: str):
        self.configs = [dict(c) for c in configs]
        self.given = 0
        super().__init__(metric=metric, mode=mode)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.given >= len(self.configs):
            return Searcher.FINISHED
        self.given += 1
        return dict(self.configs[self.given - 1])

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        pass

    def get_state(self) -> dict[str, Any]:
        return {"configs": self.configs, "given": self.given}

    def set_state(self, state: dict[str, Any]) -> None:
        self.configs, self.given = state["configs"], state["given"]

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as f:
            json.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as f:
            self.set_state(json.load(f))
