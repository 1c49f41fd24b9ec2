"""The search's four figures for a person, as (file name, matplotlib figure) pairs for
the parent run: learning curves, where the budget went, each knob's effect, and the
CRM diagnostics. A figure with nothing to show is left out; none raises on a missing
key, a NaN, one trial or none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dejavu_tune.raytune.trial_results import TrialResult
from dejavu_tune.search import figures_budget, figures_crm, figures_curves, figures_knobs
from dejavu_tune.search.figures_common import FigureInputs

__all__ = ["FIGURES", "FIGURE_FILES", "FigureInputs", "search_figures", "figures_of"]

# file name -> the function that draws it (None: nothing to show), in reading order
FIGURES: dict[str, Callable[[FigureInputs], Any]] = {
    figures_curves.PLOT_FILE: figures_curves.plot,
    figures_budget.PLOT_FILE: figures_budget.plot,
    figures_knobs.PLOT_FILE: figures_knobs.plot,
    figures_crm.PLOT_FILE: figures_crm.plot,
}
FIGURE_FILES = tuple(FIGURES)


def figures_of(inputs: FigureInputs) -> list[tuple[str, Any]]:
    """Every figure that has something to show; the caller closes them."""
    out = []
    for name, draw in FIGURES.items():
        figure = draw(inputs)
        if figure is not None:
            out.append((name, figure))
    return out


def search_figures(results: Sequence[tuple[str, TrialResult]], outcome: Any, space: Any,
                   started_at: float | None = None) -> list[tuple[str, Any]]:
    """The figures of a finished search: ``results`` is ``StepRunner.results`` (step,
    trial), ``outcome`` the search's ``Outcome``, ``space`` the ``SearchSpace`` its search
    step sampled (the driver's ``dv_space``), ``started_at`` ``StepRunner.started``."""
    return figures_of(FigureInputs.of(results, outcome, space, started_at))
