"""Does DejaVu act in the search's trials? ``crm_reliance`` and ``regen_grad_ratio`` per
epoch for every DejaVu trial that measured them (``train.diagnostics``), with the
thresholds below which a trial is inert.

The gradient ratio spans decades (9e-5 for a CRM trained from scratch, ~0.2 for one
pre-trained on ground truth), so its axis is logarithmic; a ratio of 0 or an infinite one
(no task gradient) has no place on it and is left out of the line.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from dejavu_tune.search.figures_common import (
    COMPLETED,
    OUTCOME_COLOURS,
    WIDTH_IN,
    FigureInputs,
    FigureTrial,
    finite,
    legend_below,
    outcome_handles,
    outcome_of,
    pyplot,
)
from dejavu_tune.train.diagnostics import INERT_GRAD_RATIO, INERT_RELIANCE

__all__ = ["PLOT_FILE", "RELIANCE", "GRAD_RATIO", "plot"]

PLOT_FILE = "crm_diagnostics.png"
RELIANCE, GRAD_RATIO = "crm_reliance", "regen_grad_ratio"
_HEIGHT_IN = 5.4
_PANELS = (
    (RELIANCE, INERT_RELIANCE, "1 − CRM error with the prediction / with a zeroed one"),
    (GRAD_RATIO, INERT_GRAD_RATIO, "regeneration-loss / task-loss gradient on the network"),
)


def _measured(inputs: FigureInputs) -> list[FigureTrial]:
    return [t for t in inputs.dejavu("search")
            if finite(t.series(RELIANCE)) or finite(t.series(GRAD_RATIO))]


def _panel(ax: Any, inputs: FigureInputs, trials: list[FigureTrial], key: str,
           threshold: float, meaning: str) -> None:
    log = key == GRAD_RATIO
    for t in sorted(trials, key=lambda t: outcome_of(t.record) == COMPLETED):
        # measured at the rungs and the last epoch only (search.diagnose_epochs): one
        # line through the epochs that have a value
        kept = [(e, v) for e, v in enumerate(t.series(key), 1)
                if math.isfinite(v) and (v > 0 or not log)]
        if not kept:
            continue
        xs, ys = zip(*kept, strict=True)
        ax.plot(xs, ys, color=OUTCOME_COLOURS[outcome_of(t.record)],
                marker="o", markersize=3, linewidth=1.2, alpha=0.8, gid=t.name)
    if log:
        ax.set_yscale("log")
    ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=1.3, gid="threshold")
    bottom = ax.get_ylim()[0]
    ax.axhspan(bottom, threshold, color="tab:red", alpha=0.07, zorder=0)
    ax.set_ylim(bottom=bottom)  # the shade reaches the axis, not a margin short of it
    ax.annotate(f"inert below {threshold:g}", (1.0, threshold), xycoords=("axes fraction",
                                                                           "data"),
                xytext=(-4, 4), textcoords="offset points", ha="right", va="bottom",
                fontsize=9, color="tab:red")
    ax.set_xlim(0.7, inputs.epochs + 0.3)
    ax.set_xticks(range(1, inputs.epochs + 1))
    ax.set_xlabel("epoch")
    ax.set_ylabel(key + (" (log scale)" if log else ""))
    ax.set_title(f"{key}: {meaning}", fontsize=10)
    ax.grid(alpha=0.25, which="both" if not log else "major")


def plot(inputs: FigureInputs) -> Any | None:
    """The figure, or None when no DejaVu trial of the search measured either."""
    trials = _measured(inputs)
    if not trials:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH_IN, _HEIGHT_IN))
    for ax, (key, threshold, meaning) in zip(axes, _PANELS, strict=True):
        _panel(ax, inputs, trials, key, threshold, meaning)
    counts = Counter(outcome_of(t.record) for t in trials)
    fig.suptitle(f"CRM diagnostics of the search's {len(trials)} DejaVu trials: does the "
                 "CRM use the network's prediction, and does its gradient reach the "
                 f"network?\nA trial below either dashed line at its last epoch is inert "
                 f"({counts.get('inert', 0)} here): its metric is not a DejaVu effect",
                 fontsize=11)
    legend_below(fig, outcome_handles(list(counts), dict(counts), marker="o"), _HEIGHT_IN)
    return fig
