"""Where a search's time went: one row per slot (trials that ran at once), one bar per
trial from its start to its last report, coloured by the step it belongs to; beside it
each step's trial time; in the title the trial-epochs ASHA saved.

A trial's times are Tune's own keys in its rows: ``timestamp`` (when the row was
reported, whole seconds) and ``time_total_s`` (the trial's time up to that row), so its
start is the last row's ``timestamp - time_total_s``. Tune does not say which slot ran
a trial: the rows are the fewest that hold the bars without overlap. What ran before the
first trial (the CRM stage, Ray's start) has no Tune rows and is one grey span.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dejavu_tune.search.figures_common import (
    FAILED,
    STOPPED,
    WIDTH_IN,
    FigureInputs,
    FigureTrial,
    legend_below,
    number,
    outcome_of,
    pyplot,
)
from dejavu_tune.search.step_runner import step_label

__all__ = ["PLOT_FILE", "Span", "span_of", "lanes", "asha_saved", "step_seconds", "plot"]

PLOT_FILE = "budget.png"
_HEIGHT_IN = 5.4
_SLACK_S = 1.0  # Tune's timestamps are whole seconds: a bar may seem to start 1 s early
_STEP_COLOURS = {"tuning": "#8c6d31", "search": "#3182bd", "confirm": "#31a354"}
_BEFORE = "0.8"


@dataclass(frozen=True)
class Span:
    trial: FigureTrial
    start: float  # time.time() seconds
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def _number(value: Any) -> float | None:
    v = number(value)
    return v if v is not None and math.isfinite(v) else None


def span_of(trial: FigureTrial) -> Span | None:
    """When the trial ran, from its rows; None when no row has Tune's times."""
    starts, ends = [], []
    for row in trial.rows:
        stamp = _number(row.get("timestamp"))
        if stamp is None:
            continue
        took = _number(row.get("time_total_s"))
        took = took if took is not None else _number(row.get("time_this_iter_s"))
        ends.append(stamp)
        starts.append(stamp - (took or 0.0))
    if not ends:
        return None
    return Span(trial, min(starts), max(ends))


def lanes(spans: Sequence[Span]) -> list[int]:
    """Each span's row (0 first), in ``spans``' order: the first row free at its start."""
    ends: list[float] = []
    out = [0] * len(spans)
    for i in sorted(range(len(spans)), key=lambda i: (spans[i].start, spans[i].end)):
        free = next((k for k, end in enumerate(ends) if end <= spans[i].start + _SLACK_S),
                    None)
        if free is None:
            ends.append(spans[i].end)
            free = len(ends) - 1
        ends[free] = spans[i].end
        out[i] = free
    return out


def asha_saved(inputs: FigureInputs) -> tuple[int, int]:
    """(trial-epochs ASHA's stops saved in the search step, the step's trial-epochs had
    every trial run the full budget): a failed trial's lost epochs are not a saving."""
    search = inputs.step("search")
    saved = sum(max(0, inputs.epochs - len(t.rows)) for t in search
                if t.record.status == "stopped_early")
    return saved, len(search) * inputs.epochs


def step_seconds(spans: Sequence[Span]) -> dict[str, float]:
    """Trial time per step (trial-seconds: two trials at once count twice), in order."""
    out: dict[str, float] = {}
    for s in sorted(spans, key=lambda s: s.start):
        out[s.trial.step] = out.get(s.trial.step, 0.0) + s.seconds
    return out


def _colour(step: str) -> str:
    return _STEP_COLOURS.get(step.partition("-")[0], "0.5")


def _unit(seconds: float) -> tuple[float, str]:
    return (3600.0, "h") if seconds >= 2 * 3600 else (60.0, "min")


def _timeline(ax: Any, inputs: FigureInputs, spans: list[Span], rows: list[int],
              origin: float, scale: float, unit: str) -> None:
    first = min(s.start for s in spans)
    if first - origin > _SLACK_S:
        ax.axvspan(0, (first - origin) / scale, color=_BEFORE, zorder=0)
    for span, row in zip(spans, rows, strict=True):
        ending = outcome_of(span.trial.record)
        ax.barh(row, span.seconds / scale, left=(span.start - origin) / scale, height=0.7,
                color=_colour(span.trial.step), alpha=0.5 if ending == STOPPED else 0.95,
                hatch="xx" if ending == FAILED else None, edgecolor="white", linewidth=0.6,
                gid=span.trial.name)
    slots = max(rows) + 1
    ax.set_yticks(range(slots), [f"slot {k + 1}" for k in range(slots)])
    ax.set_ylim(slots - 0.5, -0.5)  # slot 1 on top
    ax.set_xlim(0, max(s.end - origin for s in spans) / scale * 1.01)
    ax.set_xlabel(f"time since the search started ({unit})" if origin == inputs.started_at
                  else f"time since the first trial started ({unit})")
    ax.set_title("each trial from its start to its last report, on the slot it ran in",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.25)


def _per_step(ax: Any, spans: list[Span], before: float, scale: float, unit: str) -> None:
    totals = step_seconds(spans)
    names = [step_label(s) for s in totals] + (["before the first trial"] if before else [])
    values = [v / scale for v in totals.values()] + ([before / scale] if before else [])
    colours = [_colour(s) for s in totals] + ([_BEFORE] if before else [])
    counts = [sum(s.trial.step == step for s in spans) for step in totals] + [0]
    ax.barh(range(len(names)), values, color=colours)
    for y, (v, n) in enumerate(zip(values, counts, strict=False)):
        ax.annotate(f"{v:.3g} {unit}" + (f", {n} trials" if n else ""), (v, y),
                    xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=9)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlim(0, max(values) * 1.6)  # room for the numbers
    ax.set_xlabel(f"trial time ({unit}; trials at once add up)")
    ax.set_title("trial time per step", fontsize=10)


def _handles(spans: list[Span], before: float) -> list[Any]:
    import matplotlib.patches

    steps = list(dict.fromkeys(s.trial.step.partition("-")[0] for s in spans))
    names = {"tuning": "baseline tuning", "search": "search",
             "confirm": "confirmation (every look)"}
    handles = [matplotlib.patches.Patch(color=_colour(s), label=names.get(s, s))
               for s in steps]
    endings = {outcome_of(s.trial.record) for s in spans}
    if STOPPED in endings:
        handles.append(matplotlib.patches.Patch(color="0.3", alpha=0.5,
                                                label="pale: stopped early by ASHA"))
    if FAILED in endings:
        handles.append(matplotlib.patches.Patch(facecolor="0.6", hatch="xx",
                                                edgecolor="white", label="hatched: failed"))
    if before:
        handles.append(matplotlib.patches.Patch(
            color=_BEFORE, label="before the first trial (CRM stage, Ray's start)"))
    return handles


def plot(inputs: FigureInputs) -> Any | None:
    """The figure, or None when no trial reported Tune's times."""
    spans = [s for t in inputs.trials if (s := span_of(t)) is not None]
    if not spans:
        return None
    origin = inputs.started_at if inputs.started_at is not None else min(
        s.start for s in spans)
    origin = min(origin, min(s.start for s in spans))
    before = max(0.0, min(s.start for s in spans) - origin)
    if before <= _SLACK_S:
        before = 0.0
    wall = max(s.end for s in spans) - origin
    scale, unit = _unit(wall)
    rows = lanes(spans)
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDTH_IN, _HEIGHT_IN),
                                      gridspec_kw={"width_ratios": [3, 1]})
    _timeline(left, inputs, spans, rows, origin, scale, unit)
    _per_step(right, spans, before, scale, unit)
    saved, total = asha_saved(inputs)
    trial_time = sum(s.seconds for s in spans)
    asha = (f"ASHA saved {saved} of the search step's {total} trial-epochs "
            f"({100 * saved / total:.0f}%: epochs its stopped trials did not train, against "
            f"every trial running all {inputs.epochs})" if saved and total else
            "ASHA stopped no trial early" if inputs.rungs else "no early stopping")
    fig.suptitle(f"Where the budget went: {wall / scale:.3g} {unit} from start to the last "
                 f"trial's end, {trial_time / scale:.3g} {unit} of trial time on "
                 f"{max(rows) + 1} slot(s)\n{asha}", fontsize=11)
    legend_below(fig, _handles(spans, before), _HEIGHT_IN, ncol=4)
    return fig
