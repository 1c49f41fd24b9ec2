"""The baseline trial inside the search's own Tune run.

A baseline run in a Tune run of its own before the search idles every other
slot until it ends; here it is simply the first trial of the search. The
searcher wrapper hands out the baseline configuration once and keeps its
results away from Optuna (the baseline is not a point of the DejaVu space);
the scheduler wrapper never stops it early and keeps it out of ASHA's rungs
(DejaVu trials compete with each other). Both are plain module-level classes
so that Tune can pickle them with the experiment and ``Tuner.restore`` them.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import Searcher

__all__ = ["BaselineFirst", "BaselineExemptASHA", "is_baseline"]

ENABLED = "dejavu.enabled"


def is_baseline(config: dict[str, Any]) -> bool:
    return config.get(ENABLED) is False


class BaselineFirst(Searcher):
    """Suggests ``baseline`` for the first trial, then whatever ``searcher`` suggests."""

    def __init__(self, searcher: Searcher, baseline: dict[str, Any]):
        self.searcher = searcher  # the attribute name Tune's SearchGenerator walks to save state
        self.baseline = dict(baseline)
        self.baseline_trial: str | None = None
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return False  # the ConcurrencyLimiter around us counts the baseline as a trial

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.baseline_trial is None:
            self.baseline_trial = trial_id
            return dict(self.baseline)
        return self.searcher.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id != self.baseline_trial:
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id != self.baseline_trial:
            self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def get_state(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "baseline_trial": self.baseline_trial}

    def set_state(self, state: dict[str, Any]) -> None:
        self.baseline = state["baseline"]
        self.baseline_trial = state["baseline_trial"]

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)


class BaselineExemptASHA(ASHAScheduler):
    """ASHA for the DejaVu trials; the baseline always runs its full budget."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if is_baseline(trial.config):
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if is_baseline(trial.config):
            self._trial_info.pop(trial.trial_id, None)
            return
        super().on_trial_complete(tune_controller, trial, result)
