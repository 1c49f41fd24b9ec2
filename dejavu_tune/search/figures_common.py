"""What the search's figures read, and how they look alike.

``FigureInputs`` is all the figures need of a finished search: every trial of every
Tune step (its ``TrialRecord`` and the rows it reported), the search metric and the one
ASHA decided on, ASHA's rungs, the space's params and the baseline the gains are measured
against. ``FigureInputs.of`` builds it from what the driver holds when it publishes
(``StepRunner.results``, the ``Outcome``, the space); a test builds it by hand, without
Ray or MLflow.

Every figure colours a trial by how it ended, in the same four colours, and puts its
legend below the panels, where it covers no line.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dejavu_tune.raytune.trial_results import TrialResult
from dejavu_tune.search.space import Param
from dejavu_tune.search.trial_records import FAILURES, TrialRecord, from_result
from dejavu_tune.tracking.run_names import trial_name

__all__ = ["COMPLETED", "STOPPED", "FAILED", "INERT", "OUTCOME_COLOURS", "OUTCOME_LABELS",
           "FigureTrial", "FigureInputs", "asha_rungs", "outcome_of", "number", "finite",
           "pyplot", "outcome_handles", "legend_below", "WIDTH_IN"]

COMPLETED, STOPPED, FAILED, INERT = "completed", "stopped", "failed", "inert"
OUTCOME_COLOURS = {COMPLETED: "tab:blue", STOPPED: "tab:orange", FAILED: "tab:red",
                   INERT: "tab:purple"}
OUTCOME_LABELS = {COMPLETED: "ran the full budget", STOPPED: "stopped early by ASHA",
                  FAILED: "failed", INERT: "inert (CRM ignored or no gradient)"}
# MLflow shows a description's image at about 1000-1600 px; publish saves at dpi 100
WIDTH_IN = 14.0  # saved NOTE_IMAGE_PX wide: the layout is made at this size, then scaled


@dataclass(frozen=True)
class FigureTrial:
    """One trial of one Tune step (``tuning``, ``search``, ``confirm-2``)."""

    step: str
    record: TrialRecord
    rows: tuple[dict[str, Any], ...] = ()  # every row it reported, epoch 1 first

    @property
    def name(self) -> str:
        r = self.record
        return trial_name(r.trial_id, r.trial_dir) if r.trial_id or r.trial_dir else "?"

    def series(self, key: str) -> tuple[float, ...]:
        """``key`` per epoch as floats, NaN where a row lacks it or holds no number."""
        return tuple(v if v is not None else math.nan
                     for v in (number(row.get(key)) for row in self.rows))


@dataclass(frozen=True)
class FigureInputs:
    metric: str
    mode: str  # "max" or "min" for ``metric``
    epochs: int  # the budget
    trials: tuple[FigureTrial, ...]
    stop_metric: str | None = None  # what ASHA compared at its rungs; None: ``metric``
    stop_mode: str | None = None  # its direction; None: ``mode``
    rungs: tuple[int, ...] = ()  # ASHA's rungs below the budget; () without early stopping
    params: tuple[Param, ...] = ()  # what the search step sampled
    replicate_seeds: tuple[int, ...] = ()  # the baseline replicates' seeds
    # (what it is, its value per epoch): what a trial's gain is measured against
    reference: tuple[str, tuple[float, ...]] | None = None
    started_at: float | None = None  # when the search started (time.time())

    @property
    def asha_metric(self) -> str:
        return self.stop_metric or self.metric

    def step(self, step: str) -> list[FigureTrial]:
        return [t for t in self.trials if t.step == step]

    def dejavu(self, step: str = "search") -> list[FigureTrial]:
        return [t for t in self.step(step) if not t.record.is_baseline]

    @classmethod
    def of(cls, results: Sequence[tuple[str, TrialResult]], outcome: Any, space: Any,
           started_at: float | None = None) -> FigureInputs:
        """From the driver's ``StepRunner.results``, its ``Outcome`` and the space the
        search step sampled (``SearchSpace``); ``started_at``: ``StepRunner.started``."""
        s = space.search
        seed = space.base_config().seed
        trials = tuple(FigureTrial(step, from_result(r, step, outcome.metric, outcome.epochs,
                                                     seed), tuple(r.rows))
                       for step, r in results)
        early = s.algorithm != "grid"  # a grid runs every point to the full budget
        return cls(metric=outcome.metric, mode=outcome.mode, epochs=outcome.epochs,
                   trials=trials, stop_metric=s.stop_metric, stop_mode=s.stop_mode,
                   rungs=asha_rungs(s.grace_period, s.reduction_factor, outcome.epochs)
                   if early else (),
                   params=tuple(space.params), replicate_seeds=tuple(outcome.replicate_seeds),
                   reference=outcome.gain_reference(), started_at=started_at)


def asha_rungs(grace_period: int, reduction_factor: int, epochs: int) -> tuple[int, ...]:
    """The epochs where ASHA compares trials: grace × factor^k below the budget (a rung at
    the budget stops nothing: the trial is done there anyway)."""
    if grace_period < 1 or reduction_factor < 2:
        return ()
    out, rung = [], min(grace_period, epochs)
    while rung < epochs:
        out.append(rung)
        rung *= reduction_factor
    return tuple(out)


def outcome_of(record: TrialRecord) -> str:
    """How a trial ended, as the figures colour it: an inert trial is inert whether ASHA
    stopped it or not, since its metric says nothing of DejaVu either way."""
    if record.status in FAILURES:
        return FAILED
    if record.inert:
        return INERT
    return COMPLETED if record.status == "completed" else STOPPED


def number(value: Any) -> float | None:
    """``value`` as a float when it is a number (numpy's too, as a data frame's rows hold
    them), else None; NaN and infinities stay."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    return float(value) if ok else None


def finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display where a search runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def outcome_handles(outcomes: Sequence[str], counts: dict[str, int] | None = None,
                    marker: str | None = None) -> list[Any]:
    """Legend entries for the outcomes present (with their count), drawn apart from the
    data: the lines' own styles vary with the trial."""
    import matplotlib.lines

    handles = []
    for o in (COMPLETED, STOPPED, INERT, FAILED):
        if o not in outcomes:
            continue
        n = f" ({counts[o]})" if counts and o in counts else ""
        handles.append(matplotlib.lines.Line2D(
            [], [], color=OUTCOME_COLOURS[o], marker=marker, linestyle="" if marker else "-",
            label=OUTCOME_LABELS[o] + n))
    return handles


def legend_below(fig: Any, handles: Sequence[Any], height_in: float, ncol: int = 4,
                 top_in: float = 0.0) -> None:
    """The legend under every panel, then the panels laid out above it (``top_in``:
    inches kept free above them, for a note under the title)."""
    rows = math.ceil(len(handles) / ncol) if handles else 0
    room = (0.15 + 0.25 * rows) / height_in
    if handles:
        fig.legend(handles=list(handles), loc="lower center", ncol=ncol, fontsize=9,
                   frameon=False)
    fig.tight_layout(rect=(0, room, 1, 1 - top_in / height_in))
