"""Every trial of the search step in one picture: the search metric per epoch, and beside
it the metric ASHA compared at its rungs when that is another one (``search.stop_metric``).

A line's colour says how the trial ended (``figures_common.OUTCOME_COLOURS``); a failed
trial ends in a cross. The baseline's replicate seeds are a grey band (lowest to highest
per epoch, their mean as a line): a trial inside it is within the seed's noise. Dotted
verticals are ASHA's rungs, where it compared trials and stopped the worst.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from dejavu_tune.outcome.units import unit_of
from dejavu_tune.search.figures_common import (
    COMPLETED,
    FAILED,
    INERT,
    OUTCOME_COLOURS,
    STOPPED,
    WIDTH_IN,
    FigureInputs,
    FigureTrial,
    finite,
    legend_below,
    outcome_handles,
    outcome_of,
    pyplot,
)

__all__ = ["PLOT_FILE", "plot", "replicate_band"]

PLOT_FILE = "learning_curves.png"
_HEIGHT_IN = 5.6
# drawn first to last: the trials that ran the full budget on top of the rest
_ORDER = {STOPPED: 0, FAILED: 1, INERT: 2, COMPLETED: 3}
_STYLE = {COMPLETED: {"linewidth": 1.8, "alpha": 0.95},
          STOPPED: {"linewidth": 1.1, "alpha": 0.65},
          INERT: {"linewidth": 1.3, "alpha": 0.85, "linestyle": "--"},
          FAILED: {"linewidth": 1.1, "alpha": 0.8}}


def replicate_band(replicates: list[FigureTrial], key: str
                   ) -> tuple[list[int], list[float], list[float], list[float]]:
    """(epochs, lowest, highest, mean) of ``key`` over the replicates, at every epoch
    where at least one has a finite value."""
    series = [r.series(key) for r in replicates]
    epochs, low, high, mean = [], [], [], []
    for e in range(1, max((len(s) for s in series), default=0) + 1):
        values = finite([s[e - 1] for s in series if e <= len(s)])
        if values:
            epochs.append(e)
            low.append(min(values))
            high.append(max(values))
            mean.append(sum(values) / len(values))
    return epochs, low, high, mean


def _panel(ax: Any, inputs: FigureInputs, key: str, trials: list[FigureTrial],
           replicates: list[FigureTrial], own: list[FigureTrial]) -> None:
    unit = unit_of(key)
    epochs, low, high, mean = replicate_band(replicates, key)
    if epochs:
        ax.fill_between(epochs, [unit.shown(v) for v in low], [unit.shown(v) for v in high],
                        color="0.55", alpha=0.3, linewidth=0, zorder=1)
        ax.plot(epochs, [unit.shown(v) for v in mean], color="0.35", linewidth=1.5,
                zorder=2, gid="baseline replicates")
    for t in own:
        ys = [unit.shown(v) for v in t.series(key)]
        ax.plot(range(1, len(ys) + 1), ys, color="k", linewidth=1.4, linestyle=(0, (5, 2)),
                zorder=2, gid=f"baseline {t.name}")
    for t in sorted(trials, key=lambda t: _ORDER[outcome_of(t.record)]):
        ending = outcome_of(t.record)
        ys = [unit.shown(v) for v in t.series(key)]
        ax.plot(range(1, len(ys) + 1), ys, color=OUTCOME_COLOURS[ending], zorder=3,
                gid=t.name, **_STYLE[ending])
        last = [(e, y) for e, y in enumerate(ys, start=1) if y == y]  # y == y: not NaN
        if ending in (FAILED, STOPPED) and last:
            # a trial stopped at the first rung is one point: no line without its marker
            ax.plot([last[-1][0]], [last[-1][1]], marker="x" if ending == FAILED else "o",
                    markersize=8 if ending == FAILED else 4, linestyle="",
                    color=OUTCOME_COLOURS[ending], zorder=4)
    for rung in inputs.rungs:
        ax.axvline(rung, color="0.4", linestyle=":", linewidth=1.2, zorder=0)
    ax.set_xlim(0.7, inputs.epochs + 0.3)
    ax.set_xticks(range(1, inputs.epochs + 1))
    ax.set_xlabel("epoch")
    mode = inputs.mode if key == inputs.metric else inputs.stop_mode or inputs.mode
    better = {"max": ", higher is better", "min": ", lower is better"}.get(mode or "", "")
    ax.set_ylabel(f"{key}{unit.suffix}")
    role = ("the search metric" if key == inputs.metric else
            "what ASHA compared at its rungs")
    ax.set_title(f"{key}: {role}{better}", fontsize=10)
    ax.grid(alpha=0.25)


def _handles(inputs: FigureInputs, trials: list[FigureTrial], replicates: list[FigureTrial],
             own: list[FigureTrial]) -> list[Any]:
    import matplotlib.lines
    import matplotlib.patches

    counts = Counter(outcome_of(t.record) for t in trials)
    handles = outcome_handles(list(counts), dict(counts))
    if replicates:
        seeds = ", ".join(str(t.record.seed) for t in replicates)
        handles.append(matplotlib.patches.Patch(
            color="0.55", alpha=0.45,
            label=f"baseline on {len(replicates)} replicate seeds ({seeds}): band min–max"))
        handles.append(matplotlib.lines.Line2D([], [], color="0.35", linewidth=1.5,
                                               label="baseline replicates: mean"))
    if own:
        handles.append(matplotlib.lines.Line2D(
            [], [], color="k", linestyle=(0, (5, 2)),
            label=f"baseline on the search's seed ({own[0].record.seed})"))
    if inputs.rungs:
        handles.append(matplotlib.lines.Line2D(
            [], [], color="0.4", linestyle=":",
            label="ASHA's rungs (epochs " + ", ".join(map(str, inputs.rungs)) + ")"))
    return handles


def plot(inputs: FigureInputs) -> Any | None:
    """The figure, or None when the search step has no trial with a value to draw."""
    search = inputs.step("search")
    trials = [t for t in search if not t.record.is_baseline]
    baselines = [t for t in search if t.record.is_baseline and t.rows]
    replicates = [t for t in baselines if t.record.seed in inputs.replicate_seeds]
    own = [t for t in baselines if t.record.seed not in inputs.replicate_seeds]
    keys = [inputs.metric] + ([inputs.asha_metric] if inputs.asha_metric != inputs.metric
                              else [])
    drawn = trials + baselines
    if not any(finite(t.series(k)) for t in drawn for k in keys):
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(WIDTH_IN, _HEIGHT_IN), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        _panel(ax, inputs, key, trials, replicates, own)
    counts = Counter(outcome_of(t.record) for t in trials)
    told = ", ".join(f"{counts[o]} {word}" for o, word in (
        (COMPLETED, "ran the full budget"), (STOPPED, "stopped early by ASHA"),
        (INERT, "inert"), (FAILED, "failed")) if counts[o])
    fig.suptitle(f"Learning curves of the search's {len(trials)} DejaVu trials "
                 f"({inputs.epochs}-epoch budget, one seed each): {told or 'none ran'}",
                 fontsize=11)
    legend_below(fig, _handles(inputs, trials, replicates, own), _HEIGHT_IN, ncol=3)
    return fig
