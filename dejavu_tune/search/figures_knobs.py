"""Each knob's effect: one small panel per parameter the search sampled, every DejaVu trial
as a point at its value, the gain over the baseline up.

A trial's gain is its search metric minus the baseline's at the same epoch (the epoch it
ended: the full budget, or where ASHA stopped it) against ``Outcome.gain_reference``,
shown in the metric's reading unit (``outcome.units``). A categorical knob gets, per
value, the mean of its trials with a 95% Student-t interval when two or more share it;
a continuous one is a scatter, on a log axis where the space samples it so. These are
single-seed values on the search split: the confirmation decides, not this picture.
An inert trial is drawn but left out of the means: its gain is not DejaVu's.
"""

from __future__ import annotations

import math
import statistics
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dejavu_tune.outcome.units import unit_of
from dejavu_tune.search.figures_common import (
    FAILED,
    INERT,
    OUTCOME_COLOURS,
    WIDTH_IN,
    FigureInputs,
    FigureTrial,
    legend_below,
    outcome_handles,
    outcome_of,
    pyplot,
)
from dejavu_tune.search.space import Param

__all__ = ["PLOT_FILE", "Gain", "gains", "t_interval", "plot"]

PLOT_FILE = "knob_effects.png"
_COLUMNS = 3
_PANEL_HEIGHT_IN = 3.4
# points of one value spread sideways, so equal gains stay visible, within half a slot
_JITTER, _JITTER_WIDTH = 0.08, 0.4
_NOTE_CHARS = 190


@dataclass(frozen=True)
class Gain:
    trial: FigureTrial
    epoch: int  # where it was measured: the trial's last epoch with a value
    value: float  # in the metric's logged units

    @property
    def counted(self) -> bool:
        return outcome_of(self.trial.record) != INERT


def gains(inputs: FigureInputs) -> list[Gain]:
    """Every DejaVu search trial's gain at the last epoch both it and the reference have."""
    if inputs.reference is None:
        return []
    ref = inputs.reference[1]
    out = []
    for t in inputs.dejavu("search"):
        if outcome_of(t.record) == FAILED:
            continue
        curve = t.record.curve
        epoch = next((e for e in range(min(len(curve), len(ref)), 0, -1)
                      if math.isfinite(curve[e - 1]) and math.isfinite(ref[e - 1])), None)
        if epoch is not None:
            out.append(Gain(t, epoch, curve[epoch - 1] - ref[epoch - 1]))
    return out


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of the mean; NaN ends below two values."""
    if not values:
        return math.nan, math.nan, math.nan
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    from scipy.stats import t  # deferred: only a finished search draws this

    half = float(t.ppf(0.5 + confidence / 2, len(values) - 1)) * statistics.stdev(
        values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def _points(ax: Any, xs: Sequence[float], shown: Sequence[tuple[Gain, float]]) -> None:
    for x, (g, y) in zip(xs, shown, strict=True):
        colour = OUTCOME_COLOURS[outcome_of(g.trial.record)]
        ax.plot([x], [y], marker="o", markersize=6, linestyle="", color=colour, alpha=0.8,
                zorder=3, gid=g.trial.name)


def _categorical(ax: Any, param: Param, mine: list[tuple[Gain, Any]], unit: Any) -> None:
    choices = list(param.choices) or sorted({v for _, v in mine}, key=str)
    position = {str(c): i for i, c in enumerate(choices)}
    for i, choice in enumerate(choices):
        those = [g for g, v in mine if str(v) == str(choice)]
        step = min(_JITTER, _JITTER_WIDTH / max(1, len(those) - 1))
        offsets = [(k - (len(those) - 1) / 2) * step for k in range(len(those))]
        _points(ax, [position[str(choice)] - 0.15 + o for o in offsets],
                [(g, unit.shown(g.value)) for g in those])
        counted = [unit.shown(g.value) for g in those if g.counted]
        mean, low, high = t_interval(counted)
        if not counted:
            continue
        ax.plot([i + 0.15], [mean], marker="D", markersize=7, color="k", linestyle="",
                zorder=4, gid=f"mean {choice}")
        if len(counted) >= 2:
            ax.plot([i + 0.15, i + 0.15], [low, high], color="k", linewidth=2, zorder=4,
                    gid=f"interval {choice}")
        else:
            ax.annotate("single trial", (i + 0.15, mean), xytext=(6, 0),
                        textcoords="offset points", va="center", fontsize=7, color="0.3")
    ax.set_xticks(range(len(choices)), [f"{c}\n(n={sum(str(v) == str(c) for _, v in mine)})"
                                        for c in choices], fontsize=8)
    ax.set_xlim(-0.6, len(choices) - 0.4)


def _continuous(ax: Any, param: Param, mine: list[tuple[Gain, Any]], unit: Any) -> None:
    xs = [float(v) for _, v in mine]
    _points(ax, xs, [(g, unit.shown(g.value)) for g, _ in mine])
    if param.log and all(x > 0 for x in xs):
        ax.set_xscale("log")
    if param.low is not None and param.high is not None:
        pad = ((param.high / param.low) ** 0.04 if ax.get_xscale() == "log"
               else (param.high - param.low) * 0.04)
        ax.set_xlim(*((param.low / pad, param.high * pad) if ax.get_xscale() == "log"
                      else (param.low - pad, param.high + pad)))


def _value(config: dict[str, Any], name: str) -> Any:
    value = config.get(name)
    return None if isinstance(value, float) and not math.isfinite(value) else value


def plot(inputs: FigureInputs) -> Any | None:
    """The figure, or None without a reference, knobs or trials with a gain."""
    all_gains = gains(inputs)
    knobs = [p for p in inputs.params if any(_value(g.trial.record.config, p.name) is not None
                                             for g in all_gains)]
    if not knobs:
        return None
    unit = unit_of(inputs.metric)
    columns = min(_COLUMNS, len(knobs))
    rows = math.ceil(len(knobs) / columns)
    height = 1.9 + _PANEL_HEIGHT_IN * rows
    plt = pyplot()
    fig, axes = plt.subplots(rows, columns, figsize=(WIDTH_IN, height), squeeze=False,
                             sharey=True)
    better = "higher" if inputs.mode == "max" else "lower"
    for k, ax in enumerate(axes.flat):
        if k >= len(knobs):
            ax.set_visible(False)
            continue
        param = knobs[k]
        mine = [(g, v) for g in all_gains
                if (v := _value(g.trial.record.config, param.name)) is not None]
        ax.axhline(0, color="0.3", linewidth=1, zorder=1)
        if param.type == "categorical":
            _categorical(ax, param, mine, unit)
        else:
            _continuous(ax, param, mine, unit)
        scale = ", log scale" if ax.get_xscale() == "log" else ""
        ax.set_title(f"{param.name.removeprefix('dejavu.')} ({len(mine)} of "
                     f"{len(all_gains)} trials{scale})", fontsize=10)
        ax.grid(alpha=0.25)
        if k % columns == 0:
            ax.set_ylabel(f"gain over the baseline{unit.suffix}\n({better} is better)")
    import matplotlib.lines

    outcomes = {outcome_of(g.trial.record) for g in all_gains}
    handles = outcome_handles(sorted(outcomes), marker="o") + [
        matplotlib.lines.Line2D([], [], marker="D", color="k", linewidth=2,
                                label="mean, 95% t-interval (non-inert trials of a value)")]
    reference = inputs.reference[0] if inputs.reference else ""
    note = textwrap.fill(
        f"Single-seed search values on the search split, not the confirmation. Gain: a "
        f"trial's {inputs.metric} minus {reference}, at the epoch the trial ended (the full "
        f"{inputs.epochs} epochs, or where ASHA stopped it). 0 is the baseline.", _NOTE_CHARS)
    fig.suptitle(f"Each knob's effect on {inputs.metric}: gain over the baseline per "
                 f"trial\n", fontsize=11)
    fig.text(0.5, 1 - 0.45 / height, note, ha="center", va="top", fontsize=8.5, color="0.25")
    legend_below(fig, handles, height, ncol=4, top_in=0.5)
    return fig
