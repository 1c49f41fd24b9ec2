"""What Optuna is told about each finished trial.

Ray's OptunaSearch tells Optuna COMPLETE with the last reported value whenever a
trial ends with a result, and an exception as a warning when that value is NaN (the
Optuna trial then stays RUNNING for ever). This wrapper tells the truth instead:

- the trial raised, or its last value (any objective's) is NaN or infinite: FAIL;
- ASHA stopped it before the full budget: PRUNED, after the result it was stopped on
  is reported as its last intermediate value (Tune hands a stopping result to the
  searcher only as a completion, so Optuna's last value would be the epoch before:
  TPE and optuna-dashboard would learn from the wrong number); TPE ranks pruned trials
  below complete ones;
- it ran the full budget: COMPLETE with its final value.

With the study in an RDB (``optuna-dashboard`` reads it live), the database can be ahead
of the searcher state Tune restores on ``--resume``: a trial asked or told after the
last snapshot. On restore, trials the database still has RUNNING that the restored
searcher does not know are marked FAIL (no trial will ever report to them), and a
report to a trial the database has already finished is ignored.
"""

from __future__ import annotations

import math
from typing import Any

from ray.tune.search import Searcher

__all__ = ["TruthfulOutcomes"]


class TruthfulOutcomes(Searcher):
    def __init__(self, searcher: Searcher, max_epochs: int, limited: tuple[str, ...] = ()):
        self.searcher = searcher  # the attribute name Tune's SearchGenerator walks to save state
        self.max_epochs = max_epochs
        self.limited = limited  # the metrics of search.constraints: the sampler reads them
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        return self.searcher.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            self.searcher.on_trial_result(trial_id, result)
        except UpdateFinishedTrialError:
            pass  # told before the driver was killed, resumed since: the study has it

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        metrics = self.searcher.metric  # a list with several objectives
        values = [(result or {}).get(m) for m in
                  (metrics if isinstance(metrics, list) else [metrics])]
        finite = all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
        if self.limited and result:
            self._attach(trial_id, result)
        if error or (result and not finite):
            self.searcher.on_trial_complete(trial_id, result=None, error=True)
        elif not result or int(result.get("training_iteration", 0)) < self.max_epochs:
            if result and "training_iteration" in result:
                self.on_trial_result(trial_id, result)  # the value it was stopped on
            self.searcher.on_trial_complete(trial_id, result=None, error=False)
        else:
            self.searcher.on_trial_complete(trial_id, result=result)

    def _attach(self, trial_id: str, result: dict) -> None:
        """The limits' metrics as the Optuna trial's user attributes, before it is told:
        the sampler's ``constraints_func`` reads them then (``outcome.limits``)."""
        trial = optuna_internals(self.searcher)[1].get(trial_id)
        if trial is None:
            return
        for metric in self.limited:
            value = result.get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                trial.set_user_attr(metric, float(value))

    def get_state(self) -> dict[str, Any]:
        return {"max_epochs": self.max_epochs, "limited": list(self.limited)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.max_epochs = state["max_epochs"]
        self.limited = tuple(state.get("limited", ()))

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)
        _fail_orphans(self.searcher)


def optuna_internals(searcher: Any) -> tuple[Any, dict[str, Any]]:
    """(the Optuna study, {Tune trial id: Optuna trial}) of Ray's ``OptunaSearch``. They
    are private attributes, so a Ray release that renames them stops the search here,
    naming them, rather than silently leaving orphaned trials RUNNING."""
    try:
        return searcher._ot_study, searcher._ot_trials
    except AttributeError:
        import ray

        raise RuntimeError(
            f"ray {ray.__version__}: OptunaSearch has no _ot_study / _ot_trials, which "
            "dejavu-tune reads (the study's record, warm-start priors, trials left RUNNING "
            "by a killed driver): expected the ray version pyproject.toml pins") from None


def _fail_orphans(searcher: Any) -> None:
    """FAIL the study's RUNNING trials that the restored searcher does not hold."""
    from optuna.trial import TrialState

    study, trials = optuna_internals(searcher)
    held = {trial.number for trial in trials.values()}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.number not in held:
            study.tell(trial.number, state=TrialState.FAIL)
