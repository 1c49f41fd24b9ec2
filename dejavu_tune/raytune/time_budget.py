"""A search's time budget inside Tune: past its deadline the searcher hands out no more
trials, so the experiment ends once the trials already running have (they finish; none
is cut mid-epoch). A plain module-level class, so Tune pickles it with the experiment
and ``Tuner.restore`` keeps the deadline."""

from __future__ import annotations

import time
from typing import Any

from ray.tune.search import Searcher

__all__ = ["Deadline"]


class Deadline(Searcher):
    """Whatever ``searcher`` suggests until ``deadline`` (``time.time()``), then none."""

    def __init__(self, searcher: Searcher, deadline: float):
        self.searcher = searcher  # the attribute name Tune's SearchGenerator walks to save state
        self.deadline = deadline
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return False  # the ConcurrencyLimiter around us limits the trials

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if time.time() >= self.deadline:
            return Searcher.FINISHED
        return self.searcher.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def get_state(self) -> dict[str, Any]:
        return {"deadline": self.deadline}

    def set_state(self, state: dict[str, Any]) -> None:
        self.deadline = state["deadline"]

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)
