"""What the driver knows of a finished trial, read once from its ``TrialResult``.

``TrialRecord`` is the unit the confirmation, the summary and the plots work with: the
trial's sampled configuration, its seed, its outcome, and its metric per epoch. Values
are compared only at equal budget: ``final`` exists only for a trial that ran the full
budget; ``at(epoch)`` gives any trial's value at a common epoch (an ASHA rung).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dejavu_tune.config import is_baseline
from dejavu_tune.raytune.trial_results import TrialResult
from dejavu_tune.search.trial_context import HELDOUT_KEY
from dejavu_tune.train.diagnostics import is_inert
from dejavu_tune.train.memory import OUT_OF_MEMORY, names_out_of_memory
from dejavu_tune.train.trainer import heldout_name

__all__ = ["HELDOUT_KEY", "FAILURES", "TrialRecord", "from_result", "failure_status",
           "finished_status", "short_params"]

# a trial that raised: out of memory (too large for where it ran) or any other error
FAILURES = ("failed", OUT_OF_MEMORY)


def failure_status(reason: str | None) -> str:
    """The status of a trial that raised, from its error's text (all Tune gives the
    driver of a trial's error)."""
    return OUT_OF_MEMORY if names_out_of_memory(reason) else "failed"


def finished_status(last: dict[str, Any], epochs: int, metric: str) -> tuple[str, str | None]:
    """A trial that ended without an error: failed if its metric ended NaN/inf (what
    Optuna is told too, see tune_outcomes), else completed or stopped early."""
    value = last.get(metric)
    if isinstance(value, float) and not math.isfinite(value):
        return "failed", f"{metric} ended as {value}"
    done = int(last.get("training_iteration", 0))
    return ("completed" if done >= epochs else "stopped_early"), None


@dataclass(frozen=True)
class TrialRecord:
    trial_id: str | None  # None: the trial never reported
    phase: str  # tuning / search / confirm
    config: dict[str, Any]  # its sampled (dotted) keys; "seed" when it sets its own
    seed: int
    status: str  # completed / stopped_early / failed / out_of_memory
    reason: str | None
    curve: tuple[float, ...]  # the search metric per epoch, epoch 1 first
    last: dict[str, Any]  # the last result it reported
    errored: bool = False  # it raised (as opposed to ending on a NaN metric)
    trial_dir: str | None = None  # Tune's directory of the trial (its name numbers it)
    # the metric on the held-out split after the full budget (runs the confirmation
    # pairs score it, ``data.heldout``); None for every other run
    heldout: float | None = None
    # ASHA's stop metric per epoch (``search.stop_metric``) when it is another metric than
    # the search's; () when it is the search metric (``curve``) or was not read
    stop_curve: tuple[float, ...] = ()

    @property
    def is_baseline(self) -> bool:
        return is_baseline(self.config) or self.phase == "tuning"

    @property
    def epochs(self) -> int:
        return len(self.curve)

    @property
    def final(self) -> float | None:
        """The metric after the full budget; None for a trial stopped early or failed."""
        return self.curve[-1] if self.status == "completed" and self.curve else None

    def at(self, epoch: int) -> float | None:
        return self.curve[epoch - 1] if 0 < epoch <= len(self.curve) else None

    @property
    def inert(self) -> bool:
        return not self.is_baseline and is_inert(self.last)

    def sampled(self) -> dict[str, Any]:
        """The configuration without its seed (and without which splits it scored): what
        a configuration is, across seeds."""
        return {k: v for k, v in self.config.items() if k not in ("seed", HELDOUT_KEY)}


def short_params(config: dict[str, Any]) -> str:
    """A sampled configuration in one line, without its seed: ``crm.kind=crm_f, loss.gamma=0.1``."""
    return ", ".join(f"{k.removeprefix('dejavu.')}={v:.3g}" if isinstance(v, float) else
                     f"{k.removeprefix('dejavu.')}={v}" for k, v in sorted(config.items())
                     if k != "seed")


def from_result(result: TrialResult, phase: str, metric: str, epochs: int,
                base_seed: int, stop_metric: str | None = None) -> TrialRecord:
    """``stop_metric``: what ASHA decided on, kept per epoch (``stop_curve``) when it is
    another metric than ``metric``."""
    last = dict(result.last)
    if result.error is not None:
        reason: str | None = result.error
        status = failure_status(reason)
    else:
        status, reason = finished_status(last, epochs, metric)
    config = dict(result.config)
    heldout = last.get(heldout_name(metric))
    return TrialRecord(trial_id=result.trial_id, phase=phase, config=config,
                       seed=int(config.get("seed", base_seed)), status=status, reason=reason,
                       curve=result.curve(metric), last=last,
                       errored=result.error is not None, trial_dir=result.path,
                       heldout=float(heldout) if status == "completed"
                       and isinstance(heldout, (int, float)) else None,
                       stop_curve=result.curve(stop_metric) if stop_metric
                       and stop_metric != metric else ())
