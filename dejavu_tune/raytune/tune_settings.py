"""What the search hands to Tune for one experiment, as two settings objects in the
spirit of Tune's own ``TuneConfig`` (which trials, sampled and stopped how) and
``RunConfig`` (where the experiment is kept, how a failed trial is retried, who
listens): ``ray_adapter.make_tuner`` turns them into Tune's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Trials", "Run"]


@dataclass(frozen=True)
class Trials:
    """The experiment's trials: ``num_samples`` sampled by ``sampler`` plus the
    ``baselines`` first.

    ``sampler``: "tpe" (Optuna's seeded TPE over ``define_by_run``), "random" (Optuna's
    seeded random sampler), or "fixed" (exactly ``points``, in order). With tpe/random,
    ``points`` are enqueued in the Optuna study before anything is sampled: a grid is
    ``points`` = every combination with ``num_samples = len(points)``, so every trial is
    still an Optuna trial. ``early_stopping`` uses ASHA (``grace_period``,
    ``reduction_factor``) on ``stop_metric``/``stop_mode`` (default: ``metric``/``mode``,
    which Optuna optimises); without it every trial runs the full budget (FIFO), which
    ablation tables and confirmation runs need. ``baselines`` (fixed configurations) are
    the first trials of the same run, on top of ``num_samples``: no slot waits for them,
    and ASHA and Optuna never see them. ``study_storage``: where the study is kept so that
    ``optuna-dashboard`` can read it while the search runs: an Optuna journal file's
    path, or an RDB URL (``scheme://...``).
    ``objectives`` ((metric, mode), ...; the first is ``metric``): Optuna samples for all
    of them, and ASHA compares each trial only with trials that cost no more on the
    others. ``priors``: Optuna trials finished elsewhere (a warm start), added to the
    study before it samples anything. ``deadline``: the search's time budget."""

    num_samples: int
    metric: str
    mode: str
    max_epochs: int
    max_concurrent: int = 1
    sampler: str = "tpe"
    define_by_run: Callable[[Any], None] | None = None
    seed: int = 0
    points: list[dict[str, Any]] | None = None
    priors: list[Any] | None = None
    baselines: list[dict[str, Any]] | None = None
    study_storage: str | None = None
    objectives: tuple[tuple[str, str], ...] = ()
    early_stopping: bool = True
    grace_period: int = 1
    reduction_factor: int = 2
    stop_metric: str | None = None
    stop_mode: str | None = None
    brackets: int = 1
    startup_trials: int | None = None
    constraints: tuple[Any, ...] = ()
    # past it (time.time()) no new trial starts; the running ones finish
    deadline: float | None = None

    @property
    def total(self) -> int:
        """Trials of the experiment, the baselines included."""
        return self.num_samples + len(self.baselines or [])


@dataclass(frozen=True)
class Run:
    """Where the experiment ``name`` is kept (``storage_path``/``name``), how often a
    failed trial is restarted from its checkpoint, Tune's callbacks, and whether Ray's
    own console output is shown (``verbose``) beside the search's."""

    name: str
    storage_path: str
    max_failures: int = 0
    callbacks: tuple[Any, ...] = ()
    verbose: bool = False
    # ``names(number, config)``: the name and directory of Tune's ``number``-th trial
    # (a picklable callable: Tune keeps it with the experiment); None: Tune's own
    names: Any = None
