"""What samples and what stops the trials of one experiment: the Optuna sampler, the
Tune searcher around it and the ASHA scheduler, built from ``tune_settings.Trials``.

One construction for two users: ``ray_adapter.make_tuner`` hands them to Tune, and the
replay benchmark (``dejavu_tune.bench.replay``) drives the very same objects with recorded
learning curves instead of training, so what it measures is what a search runs.

Strategies (docs/search_spaces.md, "Which strategy"): ``sampler`` tpe (Optuna's TPE),
random, gp (Optuna's Gaussian-process sampler) or fixed points; ``startup_trials``: the
random trials TPE and GP draw before their model acts (Optuna's default, 10, when None);
``brackets``: ASHA's brackets (1: plain ASHA; more: asynchronous Hyperband, Li et al.
2020, each bracket with its own first rung); with ``sampler: tpe`` and brackets > 1
this is BOHB's recipe (a model over the configurations, Hyperband's budgets; Falkner et
al. 2018), with TPE reading every rung's outcome as Optuna records it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dejavu_tune.raytune.tune_settings import Trials

__all__ = ["make_sampler", "make_searcher", "make_scheduler", "decisions", "study_storage",
           "STUDY_NAME"]

STUDY_NAME = "search"  # the Optuna study of a search's DejaVu trials, in its study storage


def study_storage(where: str) -> Any:
    """Optuna's storage for ``where``: an RDB URL (``scheme://...``), else a journal file's
    path (what ``optuna-dashboard <path>`` reads)."""
    import optuna

    if "://" in where:
        return optuna.storages.RDBStorage(where)
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(where))


def make_sampler(trials: Trials) -> Any:
    """The Optuna sampler ``trials`` asks for, seeded; its constraints read the limits'
    metrics from each finished trial's user attributes (``tune_outcomes``)."""
    import optuna

    from dejavu_tune.outcome.limits import OptunaConstraints

    limits = OptunaConstraints(trials.constraints) if trials.constraints else None
    startup = {} if trials.startup_trials is None else {"n_startup_trials": trials.startup_trials}
    if trials.sampler == "random":
        return optuna.samplers.RandomSampler(seed=trials.seed)
    if trials.sampler == "gp":
        # the conditional parameters fall back to independent sampling: said once
        # in docs/search_spaces.md, not in every trial's log
        return optuna.samplers.GPSampler(seed=trials.seed, constraints_func=limits,
                                         warn_independent_sampling=False, **startup)
    return optuna.samplers.TPESampler(seed=trials.seed, constraints_func=limits, **startup)


def make_searcher(trials: Trials) -> Any:
    """Tune's searcher for ``trials``: the fixed points, or OptunaSearch over the
    define-by-run space (its points enqueued first, its warm-start trials added), told
    the truth about stopped and failed trials, then the time budget and the baselines
    first. Not yet limited to ``max_concurrent`` (Tune's ConcurrencyLimiter does it)."""
    from ray.tune.search.optuna import OptunaSearch

    from dejavu_tune.raytune.time_budget import Deadline
    from dejavu_tune.raytune.tune_baseline import BaselineFirst, FixedConfigs
    from dejavu_tune.raytune.tune_outcomes import TruthfulOutcomes, optuna_internals

    metric, mode, objectives = trials.metric, trials.mode, trials.objectives
    if trials.sampler == "fixed":
        searcher: Any = FixedConfigs(trials.points or [], metric=metric, mode=mode)
    else:

        storage = study_storage(trials.study_storage) if trials.study_storage else None
        several = len(objectives) > 1
        optuna_search = OptunaSearch(
            space=trials.define_by_run, sampler=make_sampler(trials),
            points_to_evaluate=trials.points,
            metric=[m for m, _ in objectives] if several else metric,
            mode=[d for _, d in objectives] if several else mode,
            study_name=STUDY_NAME, storage=storage)
        if trials.priors:  # OptunaSearch creates its study at once for a define-by-run space
            optuna_internals(optuna_search)[0].add_trials(trials.priors)
        searcher = TruthfulOutcomes(optuna_search, trials.max_epochs,
                                    tuple(c.metric for c in trials.constraints))
    if trials.deadline is not None:  # inside BaselineFirst: the baselines always run
        searcher = Deadline(searcher, trials.deadline)
    if trials.baselines:
        searcher = BaselineFirst(searcher, trials.baselines)
    return searcher


def make_scheduler(trials: Trials, stops_dir: str | Path | None) -> Any:
    """ASHA for ``trials`` (None without early stopping), its decisions written to
    ``stops_dir``/``tune_baseline.STOPS_FILE`` (None: not written); with cost objectives
    each trial is compared only with trials that cost no more."""
    from dejavu_tune.raytune.tune_baseline import STOPS_FILE, BaselineExemptASHA, ParetoASHA

    if not trials.early_stopping:
        return None
    max_t = trials.max_epochs
    asha = dict(time_attr="training_iteration", max_t=max_t,
                grace_period=min(trials.grace_period, max_t),
                reduction_factor=trials.reduction_factor, brackets=trials.brackets,
                metric=trials.stop_metric or trials.metric,
                mode=trials.stop_mode or trials.mode,
                stops_file=str(Path(stops_dir) / STOPS_FILE) if stops_dir else None)
    costs = tuple(o for o in trials.objectives[1:] if o[0] != asha["metric"])
    return ParetoASHA(costs, **asha) if costs else BaselineExemptASHA(**asha)


def decisions() -> tuple[str, str]:
    """(continue, stop): what a Tune scheduler answers a trial's result with."""
    from ray.tune.schedulers import TrialScheduler

    return TrialScheduler.CONTINUE, TrialScheduler.STOP
