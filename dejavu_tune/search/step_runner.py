"""What a search keeps across its Tune experiments: where it records, the CRM plan its
trials start from, and every step's Tune results; and how one step's trials run as a
Tune experiment (or, on ``--resume``, are restored from it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dejavu_tune.config import is_baseline
from dejavu_tune.outcome.units import unit_of
from dejavu_tune.raytune import ray_adapter, trial_results
from dejavu_tune.raytune.trial_results import TrialResult
from dejavu_tune.raytune.tune_settings import Run, Trials
from dejavu_tune.search import settle
from dejavu_tune.search.progress import PROGRESS_TAG, Progress
from dejavu_tune.search.record import SearchRecord
from dejavu_tune.search.space import SearchSpace
from dejavu_tune.search.trial_context import TrialContext, config_key
from dejavu_tune.search.trial_records import (
    TrialRecord,
    failure_status,
    finished_status,
    from_result,
)
from dejavu_tune.tracking import runs as tracking
from dejavu_tune.tracking import system_metrics
from dejavu_tune.tracking.delivery import DeliveryQueue
from dejavu_tune.tracking.run_log import RunLog
from dejavu_tune.tracking.run_names import trial_name, tune_dirname
from dejavu_tune.train.crm_store import CRMPlan

__all__ = ["StepRunner", "TrialNames", "step_label"]


@dataclass(frozen=True)
class TrialNames:
    """Tune's name and directory of a step's trials (``run_names.tune_dirname``): what the
    terminal, MLflow and the summary read back as the trial's name. Tune keeps it with the
    experiment, so it holds plain values only."""

    confirming: bool = False
    # a confirmation look's configurations (config_key) -> the search trial each re-trains
    confirms: dict[tuple, str] = field(default_factory=dict)

    def __call__(self, number: int, config: dict[str, Any]) -> str:
        return tune_dirname(number, self.confirming, self.confirms.get(config_key(config)),
                            config.get("seed"))


def _label(step: str, trial_id: str, path: str | None, config: dict[str, Any]) -> str:
    """A trial in the terminal, as MLflow names it: ``t04``; the search's baselines with
    their seed (``t01 baseline seed 1``), as their runs are named."""
    name = trial_name(trial_id, path)
    if step == "search" and is_baseline(config):
        return f"{name} baseline seed {config.get('seed')}"
    return name


def step_label(step: str) -> str:
    """What a person calls a step's Tune experiment (``confirm-2``: the second look)."""
    if step.startswith("confirm"):
        return f"confirmation look {step.partition('-')[2] or 1}"
    return {"tuning": "baseline tuning"}.get(step, step)


@dataclass
class StepRunner:
    """One search's state across its steps, and the Tune experiment of each step."""

    space: SearchSpace
    root: Path
    record: SearchRecord
    ref: tracking.SearchRef
    trainable: Callable[..., None]  # the function every trial runs (``TRAINABLE``)
    max_failures: int
    resume: bool
    outbox: DeliveryQueue
    plan: CRMPlan | None = None
    results: list[tuple[str, TrialResult]] = field(default_factory=list)  # (step, trial)
    # a confirmation look's configurations (config_key) -> the search trial each re-trains
    confirms: dict[str, dict[tuple, str]] = field(default_factory=dict)  # by step
    started: float = field(default_factory=time.time)  # when the search started
    verbose: bool = False  # Ray's own output too

    @property
    def uri(self) -> str:
        return self.ref.uri

    @property
    def exp_id(self) -> str:
        return self.ref.experiment_id

    @property
    def parent(self) -> str:
        return self.ref.parent_run_id

    @property
    def metric(self) -> str:
        return self.space.search.metric

    @property
    def epochs(self) -> int:
        return self.space.base_config().optim.epochs

    @property
    def seed(self) -> int:
        return self.space.base_config().seed

    @property
    def deadline(self) -> float | None:
        """When the time budget ends (``search.time_budget`` from the search's start)."""
        budget = self.space.search.time_budget_s
        return None if budget is None else self.started + budget

    def cut(self, step: str, planned: int) -> str | None:
        """What the time budget cut from ``step`` (its DejaVu trials; the tuning's
        baselines), said so, or None."""
        ran = sum(1 for r in self.records(step) if step == "tuning" or not r.is_baseline)
        if self.deadline is None or ran >= planned:
            return None
        return (f"search.time_budget {self.space.search.time_budget} ran out in the "
                f"{step_label(step)}: {ran} of its {planned} planned trials started, "
                f"{planned - ran} never did")

    @property
    def parent_run(self) -> RunLog:
        return RunLog(self.uri, self.parent)

    def run_log(self, run_id: str) -> RunLog:
        return RunLog(self.uri, run_id)

    def records(self, step: str | None = None) -> list[TrialRecord]:
        return [from_result(r, s, self.metric, self.epochs, self.seed,
                            stop_metric=self.space.search.stop_metric)
                for s, r in self.results if step is None or s == step]

    def context(self, space: SearchSpace, step: str) -> TrialContext:
        cpu, gpu = space.resources.per_rank
        return TrialContext(fixed=space.fixed, ref=self.ref, cpus=cpu, crm_plan=self.plan,
                            phase=step, trainer=space.search.trainer,
                            system_metrics_s=system_metrics.interval(
                                space.search.system_metrics,
                                space.search.system_metrics_interval),
                            shared=space.fixed_shared,
                            ranks=space.resources.ranks, rank_gpu=gpu,
                            ranks_storage=str(self.root / step / "ranks"),
                            confirms=self.confirms.get(step, {}),
                            measure_cost=space.search.measures_cost,
                            diagnose_epochs=space.search.rungs(self.epochs))

    def confirmed_trial(self, step: str, config: dict[str, Any]) -> str | None:
        """The search trial a run of ``step`` re-trains (a confirmation's), else None."""
        return self.confirms.get(step, {}).get(config_key(config))


    def callbacks(self, step: str, progress: Progress) -> list[Any]:
        # Tune pickles its callbacks with the experiment and restores them on --resume: they
        # hold only plain values and the (process-wide, named) queue, never the driver.
        # Tune's event loop runs them: what goes to MLflow goes through the queue, so a
        # tracking server that is away never stalls the search (trials wait for the loop
        # to take their reports).
        ref, outbox = self.ref, self.outbox
        epochs, metric = self.epochs, self.metric
        unit = unit_of(metric)  # the summary's unit: mIoU points for val_miou

        def on_complete(trial_id: str, last: dict[str, Any], path: str | None,
                        config: dict[str, Any]) -> None:
            status, reason = finished_status(last, epochs, metric)
            outbox.put(settle.set_status, ref, trial_id, status, reason, settle.ended_ms(last))
            value = last.get(metric, float("nan"))
            print(f"  {_label(step, trial_id, path, config)}: {status} after "
                  f"{last.get('training_iteration', 0)} epoch(s), {metric} "
                  f"{unit.value(value, missing=str(value))}", flush=True)

        def on_error(trial_id: str, reason: str, path: str | None,
                     config: dict[str, Any]) -> None:
            status = failure_status(reason)
            outbox.put(settle.set_status, ref, trial_id, status, reason, int(time.time() * 1000))
            print(f"  {_label(step, trial_id, path, config)}: {status.replace('_', ' ')}: {reason}",
                  flush=True)

        def on_progress(states: list[Any], ended: bool) -> None:
            line = progress.line(states)
            print(f"  {line}", flush=True)
            outbox.put(tracking.set_tags, ref.uri, ref.parent_run_id, {PROGRESS_TAG: line})

        return [ray_adapter.make_status_callback(on_complete, on_error),
                ray_adapter.make_progress_callback(on_progress)]

    def trials(self, space: SearchSpace, **sampling: Any) -> Trials:
        """Trials sampled as ``sampling`` says, on the search's metric, budget and
        concurrency."""
        s = space.search
        return Trials(metric=s.metric, mode=s.mode, max_epochs=self.epochs,
                      max_concurrent=s.max_concurrent, **sampling)

    def tune(self, step: str, space: SearchSpace, trials: Trials,
             confirms: dict[tuple, str] | None = None) -> list[TrialResult]:
        """Run (or, on --resume, restore) the Tune experiment of ``step``; ``confirms``:
        a confirmation look's configurations and the search trial each re-trains."""
        if confirms:
            self.confirms[step] = dict(confirms)
        path = self.root / step
        constants = {"context": self.context(space, step)}
        if self.resume and ray_adapter.can_restore(str(path)):
            tuner = ray_adapter.restore_tuner(str(path), self.trainable, constants,
                                              space.resources, trials.total)
        else:
            progress = Progress(step_label(step), trials.total, self.epochs, trials.metric,
                                trials.mode, trials.max_concurrent, self.started,
                                best=not step.startswith("confirm"))
            tuner = ray_adapter.make_tuner(
                self.trainable, constants, space.resources, trials,
                Run(step, str(self.root), self.max_failures,
                    tuple(self.callbacks(step, progress)), verbose=self.verbose,
                    names=TrialNames(step.startswith("confirm"),
                                     self.confirms.get(step, {}))))
        results = trial_results.from_grid(tuner.fit())
        self.results += [(step, r) for r in results]
        return results

