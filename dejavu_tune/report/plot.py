"""``python -m dejavu_tune.report --plot``: an ablation grid whose rows form a trend, drawn.

Table B.1 reads as curves (each row's mIoU against the noise level, its columns) and Table
B.3 as one (mIoU against the CRM's stages, a row param). Which param is the x axis is
decided from the grid: the ``--columns`` key, else the one row param whose values are
numbers; either needs at least three distinct ones, since two points show no trend.
A grid that has none is refused, before anything is drawn, with the params it has.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dejavu_tune.outcome.numbers import parse_finite
from dejavu_tune.outcome.units import unit_of
from dejavu_tune.report.formats import Ablation, Cell, Row

__all__ = ["Trend", "trend", "plot"]

_MIN_POINTS = 3  # two points make a line whatever the data: no trend to read


@dataclass(frozen=True)
class Trend:
    key: str  # the param across: the columns key or a row param
    series: list[tuple[str, list[tuple[float, Cell]]]]  # label -> (x, cell) by x
    levels: list[tuple[str, Cell]]  # rows without the key (B.3's baseline): a level each


def _why_not(key: str, values: list[str]) -> str | None:
    """Why ``values`` of ``key`` cannot be an x axis; None when they can."""
    distinct = sorted(set(values), key=lambda v: (parse_finite(v) is None, parse_finite(v) or 0.0, v))
    shown = ", ".join(distinct)
    if any(parse_finite(v) is None for v in distinct):
        return f"{key} has non-numeric values ({shown})"
    if len({parse_finite(v) for v in distinct}) < _MIN_POINTS:
        plural = "s" if len(distinct) != 1 else ""
        return f"{key} has {len(distinct)} distinct value{plural} ({shown})"
    return None


def _label(t: Ablation, row: Row, leave_out: str | None = None) -> str:
    return ", ".join([row.method] + [f"{k}={v}" for k, v in t.label(row)
                                     if leave_out is None or k != t.short[leave_out]])


def trend(t: Ablation) -> Trend:
    """The curves ``t`` draws; ValueError (one line: which params, which values) when its
    rows form none."""
    need = f"a trend needs a numeric param with at least {_MIN_POINTS} distinct values"
    if t.columns is not None:
        why = _why_not(t.columns, list(t.values))
        if why:
            raise ValueError(f"--plot: the columns key {why}: {need}")
        return Trend(t.columns, [
            (_label(t, row), [(float(v), c) for v, c in zip(t.values, row.cells, strict=True)
                              if c.values]) for row in t.rows], [])
    if not t.varying:
        raise ValueError(f"--plot: the rows differ in no param but the method: {need}")
    reasons = {k: _why_not(k, [r.params[k] for r in t.rows if k in r.params])
               for k in t.varying}
    fit = [k for k, why in reasons.items() if why is None]
    if not fit:
        raise ValueError(f"--plot: {'; '.join(filter(None, reasons.values()))}: {need}")
    if len(fit) > 1:
        raise ValueError(f"--plot: {', '.join(fit)} could each be the x axis: pass "
                         "--columns with the one to draw across")
    key = fit[0]
    series: dict[str, list[tuple[float, Cell]]] = defaultdict(list)
    levels = []
    for row in t.rows:
        if key not in row.params:
            levels.append((_label(t, row), row.cells[0]))
        elif row.cells[0].values:
            series[_label(t, row, key)].append((float(row.params[key]), row.cells[0]))
    return Trend(key, [(label, sorted(points, key=lambda p: p[0]))
                       for label, points in series.items()], levels)


def _shown(values: tuple[float, ...], metric: str) -> tuple[float, float]:
    unit = unit_of(metric)
    shown = [unit.shown(v) for v in values]
    return statistics.fmean(shown), statistics.stdev(shown) if len(shown) > 1 else 0.0


def plot(t: Ablation, path: str | Path, drawn: Trend | None = None) -> Any:
    """Draw ``drawn`` (default: ``trend(t)``) to ``path``: the metric in its unit against
    the key, ± the sample std over seeds as error bars; returns the (closed) figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = drawn or trend(t)
    unit = unit_of(t.metric)
    # constrained layout keeps the legend outside the axes without changing the size
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    xs = sorted({x for _, points in drawn.series for x, _ in points})
    # Error bars of several rows at one x would hide each other: each series is drawn a
    # little (1% of the axis each) beside the next, centred on the true x.
    step = 0.01 * (xs[-1] - xs[0]) if len(drawn.series) > 1 else 0.0
    for i, (label, points) in enumerate(drawn.series):
        means, stds = zip(*(_shown(c.values, t.metric) for _, c in points), strict=True)
        shift = (i - (len(drawn.series) - 1) / 2) * step
        ax.errorbar([x + shift for x, _ in points], means, yerr=stds, marker="o", capsize=4,
                    label=label)
    for i, (label, cell) in enumerate(drawn.levels):
        mean, std = _shown(cell.values, t.metric)
        colour = f"C{len(drawn.series) + i}"
        ax.axhline(mean, color=colour, linestyle="--",
                   label=f"{label} (no {t.short[drawn.key]}), ± std band")
        if std:
            ax.axhspan(mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
    ax.set_xticks(xs)
    ax.set_xlabel(drawn.key)
    ax.set_ylabel(f"{t.metric}{unit.suffix}")
    ax.grid(alpha=0.3)
    runs = t.counts()
    n = f"{runs[0]}" if runs[0] == runs[-1] else f"{runs[0]}–{runs[-1]}"
    ax.set_title(f"{t.title or f'{t.metric} against {drawn.key}'}\n"
                 f"mean ± sample std over {n} {'seed' if t.seeded else 'run'}"
                 f"{'s' if runs[-1] > 1 else ''} per point", fontsize=10)
    fig.legend(loc="outside right upper", fontsize=8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return fig
