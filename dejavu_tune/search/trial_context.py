"""What the driver hands every trial of one search step: the contract between the search
service and a trainable (``trainables/``). The trainable imports it; the driver never
imports the trainable, which the entry point names (``TRAINABLE``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dejavu_tune.tracking.runs import SearchRef
from dejavu_tune.train.crm_store import CRMPlan

__all__ = ["TrialContext", "TRAINABLE", "HELDOUT_KEY", "config_key"]

HELDOUT_KEY = "data.heldout"  # a point's key: the run also scores the held-out split

# The trainable a search runs, by name: resolved when the search starts, so the library
# and the sibling ``trainables`` package do not import each other.
TRAINABLE = "dejavu_tune.trainables.dejavu_trainable:dejavu_trainable"


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one search step shares; shipped to workers through Ray, so a
    worker on another node never reads the tracking URI from its own environment."""

    fixed: dict[str, Any]
    ref: SearchRef  # the search's tracking URI, experiment and parent run
    cpus: float = 1.0
    figure_images: int = 4
    delivery_retry_s: float = 3600.0  # how long a trial keeps retrying one tracking call
    crm_plan: CRMPlan | None = None  # the stored CRM weights DejaVu trials start from
    trainer: str | None = None  # 'module:function' building the trainer; None: Trainer
    phase: str = "search"  # which step of the search the trial belongs to (a run tag)
    # seconds between MLflow's system-metrics samples in the trial's run; None: none logged
    system_metrics_s: float | None = None
    # the shared settings fixed at the baseline's best (``SearchSpace.with_shared``):
    # logged as params of every trial, so their columns show what each trial used
    shared: tuple[str, ...] = ()
    # a data-parallel trial (search.space.Resources.ranks): its ranks, each holding
    # ``cpus`` and ``rank_gpu``, with Ray Train's own files under ``ranks_storage``
    ranks: int = 1
    rank_gpu: float = 0.0
    ranks_storage: str | None = None
    # a confirmation look's configurations (``config_key``) -> the search trial each
    # re-trains (its tNN), which its runs are named after
    confirms: dict[tuple, str] = field(default_factory=dict)
    # the step-cost probe (extra steps outside the trial's compute) runs only where a
    # cost is an objective, a limit or what ASHA compares (SearchSettings.measures_cost)
    measure_cost: bool = True
    # the epochs whose CRM diagnostics are measured (ASHA's rungs, the first and the last
    # epoch: every value the summary, the inert check and the figures read); (): every one
    diagnose_epochs: tuple[int, ...] = ()

    def diagnoses(self, epoch: int) -> bool:
        return not self.diagnose_epochs or epoch in self.diagnose_epochs

    def confirmed_trial(self, config: dict[str, Any]) -> str | None:
        """The search trial a confirmation run re-trains; None for any other run."""
        return self.confirms.get(config_key(config))


def config_key(config: dict[str, Any]) -> tuple:
    """A configuration across seeds: its sampled values without the seed."""
    return tuple(sorted((k, repr(v)) for k, v in config.items()
                        if k not in ("seed", HELDOUT_KEY)))
