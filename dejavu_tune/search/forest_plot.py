"""The verdict as a picture: one row per confirmed candidate, its per-seed paired Δ on
the held-out split (dots), their mean with its sequential interval (bar), the 0 line and
the ±δ band; the title names the verdict and the noise floor."""

from __future__ import annotations

import math
import textwrap
from typing import Any

from dejavu_tune.outcome.sequential import DROPPED, OUTRUN
from dejavu_tune.outcome.units import unit_of
from dejavu_tune.search.confirm import Confirmation
from dejavu_tune.search.trial_records import short_params

__all__ = ["PLOT_FILE", "plot"]

PLOT_FILE = "forest_plot.png"
_LABEL_CHARS = 44  # per line; up to 3 lines
STOPPED_EARLY = (DROPPED, OUTRUN)  # their intervals decided nothing


def _label(config: dict[str, Any]) -> str:
    lines = textwrap.wrap(short_params(config).replace(", ", " "), _LABEL_CHARS)
    return "\n".join(lines[:3]) + (" …" if len(lines) > 3 else "")


def _span(c: Confirmation) -> tuple[float, float]:
    """The x range: every paired seed, the decided candidates' intervals and ±2δ (in the
    metric's own scale)."""
    delta = c.result.design.min_effect
    values = [-2 * delta, 2 * delta]
    for row in c.confirmed:
        values += list(row.paired.deltas)
        low, high = row.paired.ci
        if row.paired.verdict not in STOPPED_EARLY and math.isfinite(low) and math.isfinite(high):
            values += [low, high]
    pad = 0.08 * (max(values) - min(values))
    return min(values) - pad, max(values) + pad


def plot(c: Confirmation, metric: str, noise_floor: float) -> Any:
    """A matplotlib figure of the confirmation ``c`` (Δ in the unit a person reads the
    metric in, mIoU points for val_miou; better to the right for a metric to maximise)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = c.confirmed
    design = c.result.design
    unit = unit_of(metric)
    k = unit.scale  # every x below is drawn as shown, not as logged
    lo, hi = (k * v for v in _span(c))
    height = 2.1 + 0.8 * len(rows)
    fig, ax = plt.subplots(figsize=(8, height))
    delta = design.min_effect
    ax.axvspan(-k * delta, k * delta, color="0.9",
               label=f"±δ (min_effect {unit.value(delta)})", zorder=0)
    ax.axvline(0, color="0.3", linewidth=1, zorder=1)
    for y, row in enumerate(reversed(rows)):
        p = row.paired
        ax.scatter([k * d for d in p.deltas], [y] * len(p.deltas), s=18, color="0.45", zorder=2,
                   label="one paired seed" if y == 0 else None)
        low, high = (k * v for v in p.ci)
        winner = c.winner is not None and row.search_trial == c.winner.search_trial
        colour = "C2" if winner else "0.65" if p.verdict in STOPPED_EARLY else "C0"
        if math.isfinite(low) and math.isfinite(high):
            # an interval of a candidate dropped after 3 seeds can be 100x wider than
            # the rest: drawn to the edge, with an arrow where it goes on
            ax.plot([max(low, lo), min(high, hi)], [y, y], color=colour, linewidth=3,
                    zorder=3)
            for end, edge, marker in ((low, lo, "<"), (high, hi, ">")):
                if (end < edge) if marker == "<" else (end > edge):
                    ax.scatter([edge], [y], marker=marker, s=50, color=colour, zorder=3)
        if math.isfinite(p.mean):
            ax.scatter([k * p.mean], [y], s=60, marker="D", color=colour, zorder=4,
                       label="mean and its 95% interval" if y == 0 else None)
        ax.annotate(f"{p.verdict}, {p.n} seeds", (1.0, y), xycoords=("axes fraction", "data"),
                    xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [_label(r.config) for r in reversed(rows)], fontsize=7)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlim(lo, hi)
    better = "right" if rows and rows[0].paired.mode == "max" else "left"
    ax.set_xlabel(f"held-out {metric}{unit.suffix}: DejaVu − baseline on the same seed "
                  f"({better} is better)")
    floor = unit.value(noise_floor, missing="n/a")
    ax.set_title(f"{c.verdict} (intervals: 95% for every candidate and look at once)\n"
                 f"the baseline's seed-to-seed std: {floor}", fontsize=9)
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=7,
               frameon=False)
    fig.tight_layout(rect=(0, 0.3 / height, 1, 1))  # room for the legend below
    return fig
