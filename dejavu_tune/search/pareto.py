"""Quality against cost: the Pareto front of a search with several objectives.

A trial's objective values are its search metric after the full budget and its costs
(``step_time_ratio``, ``mem_ratio``: its step next to the baseline's, measured in the
trial). Only DejaVu trials that ran the full budget and were not inert count: a value
at an earlier epoch is not comparable, and an inert trial's quality is not DejaVu's.
The baseline is the reference point: quality its mean over the replicate seeds, cost
1.0 by definition. A front member whose single-seed quality is not above the
baseline's is dominated by the baseline, and the table says so. The front's members
are what the paired confirmation re-runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dejavu_tune.outcome import direction
from dejavu_tune.outcome.numbers import num, spread
from dejavu_tune.search.trial_records import TrialRecord, short_params

__all__ = ["Point", "points", "dominates", "front", "front_rows", "front_markdown",
           "plot_png", "plot_html", "PLOT_FILE", "PLOT_HTML"]

PLOT_FILE = "pareto_front.png"
PLOT_HTML = "pareto_front.html"


@dataclass(frozen=True)
class Point:
    record: TrialRecord
    values: tuple[float, ...]  # one per objective, in the objectives' order


def points(records: Sequence[TrialRecord], objectives: Sequence[tuple[str, str]]) -> list[Point]:
    """Every DejaVu search trial that can be on the front, with its objective values."""
    out = []
    for r in records:
        if r.phase != "search" or r.is_baseline or r.final is None or r.inert:
            continue
        values = (r.final, *(r.last.get(m) for m, _ in objectives[1:]))
        if all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            out.append(Point(r, tuple(float(v) for v in values)))
    return out


def dominates(a: Sequence[float], b: Sequence[float], modes: Sequence[str]) -> bool:
    """``a`` is no worse than ``b`` on every objective and better on one."""
    signs = [direction.sign(m) for m in modes]
    no_worse = all(s * x >= s * y for s, x, y in zip(signs, a, b, strict=True))
    return no_worse and any(s * x > s * y for s, x, y in zip(signs, a, b, strict=True))


def front(candidates: Sequence[Point], modes: Sequence[str]) -> list[Point]:
    """The points no other point dominates, best quality first."""
    kept = [p for p in candidates
            if not any(dominates(q.values, p.values, modes) for q in candidates)]
    sign = direction.sign(modes[0])
    return sorted(kept, key=lambda p: -sign * p.values[0])


def _baseline_point(baseline_quality: float, objectives: Sequence[tuple[str, str]]
                    ) -> tuple[float, ...]:
    return (baseline_quality, *(1.0 for _ in objectives[1:]))


def front_rows(members: Sequence[Point], objectives: Sequence[tuple[str, str]],
               baseline_quality: float, confirmed: dict[str, Any]) -> list[dict[str, Any]]:
    """The front as plain rows (the summary's table and ``best_config.json``):
    ``confirmed`` maps a search trial id to its paired comparison (``Paired``)."""
    modes = [m for _, m in objectives]
    base = _baseline_point(baseline_quality, objectives)
    rows = []
    for p in members:
        paired = confirmed.get(p.record.trial_id)
        rows.append({
            "trial_id": p.record.trial_id, "config": p.record.sampled(),
            **{m: v for (m, _), v in zip(objectives, p.values, strict=True)},
            "dominated_by_baseline": (math.isfinite(baseline_quality)
                                      and dominates(base, p.values, modes)),
            "confirmed": paired.to_dict() if paired is not None else None})
    return rows


def front_markdown(rows: Sequence[dict[str, Any]], objectives: Sequence[tuple[str, str]],
                   baseline_quality: float, counted: int, describe: Any) -> list[str]:
    """The summary's section: the front's table with its costs and confirmations."""
    names = [m for m, _ in objectives]
    lines = [f"## Pareto front: {' vs '.join(names)}", "",
             f"{len(rows)} of {counted} full-budget, non-inert DejaVu trials are on the front "
             f"({names[0]} after the full budget, on the search's seed; costs are the step's "
             "time and memory over the baseline step's, measured in each trial). The "
             f"baseline is the reference: {names[0]} {num(baseline_quality)} (mean over its "
             "seeds), cost 1.0. Early stopping compared each trial only with trials that "
             "cost no more, so a trial it stopped was dominated where it stopped.", "",
             "| trial | configuration | " + " | ".join(names) + " | confirmed Δ (paired) |",
             "|---|---|" + "---|" * len(names) + "---|"]
    for row in rows:
        c = row["confirmed"]
        verdict = (f"{spread(c['mean'], c['std'])}, {c['verdict']}" if c else
                   "not confirmed (beyond search.confirm_top)")
        if row["dominated_by_baseline"]:
            verdict += "; the baseline dominates it (better seed mean, lower cost)"
        lines.append(f"| {describe(row)} | {short_params(row['config'])} | "
                     + " | ".join(num(row[n]) for n in names) + f" | {verdict} |")
    return lines + [""]


def _series(all_points: Sequence[Point], members: Sequence[Point]
            ) -> tuple[list[Point], list[Point]]:
    ids = {id(p) for p in members}
    return [p for p in all_points if id(p) not in ids], list(members)


def plot_png(all_points: Sequence[Point], members: Sequence[Point],
             objectives: Sequence[tuple[str, str]], baseline_quality: float,
             title: str) -> Any:
    """A matplotlib figure: the first cost across, quality up; the front joined by a
    step line; a third objective as the points' colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.lines
    import matplotlib.pyplot as plt

    names = [m for m, _ in objectives]
    rest, front_pts = _series(all_points, members)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    third = len(names) > 2  # the third objective as the points' colour
    norm = (matplotlib.colors.Normalize(min(p.values[2] for p in all_points),
                                        max(p.values[2] for p in all_points))
            if third and all_points else None)

    def colours(pts: Sequence[Point], plain: str) -> dict[str, Any]:
        if not third:
            return {"c": plain}
        return {"c": [p.values[2] for p in pts], "cmap": "viridis", "norm": norm}

    if rest:
        ax.scatter([p.values[1] for p in rest], [p.values[0] for p in rest], s=25,
                   alpha=0.6, **colours(rest, "0.6"))
    if front_pts:
        ordered = sorted(front_pts, key=lambda p: p.values[1])
        if not third:  # with a third objective the 2-D projection is no staircase
            ax.step([p.values[1] for p in ordered], [p.values[0] for p in ordered],
                    where="post", color="C3", linewidth=1)
        scatter = ax.scatter([p.values[1] for p in ordered], [p.values[0] for p in ordered],
                             s=70, edgecolors="k", linewidths=1.5, zorder=3,
                             **colours(ordered, "C3"))
        if third:
            fig.colorbar(scatter, ax=ax, label=names[2])
    # legend entries drawn plainly: with a colour scale the markers' own colours vary
    handles = [matplotlib.lines.Line2D([], [], marker="o", linestyle="", color="0.6",
                                       label="other trials"),
               matplotlib.lines.Line2D([], [], marker="o", linestyle="", markersize=9,
                                       markerfacecolor="w" if third else "C3",
                                       markeredgecolor="k", label="Pareto front")]
    if math.isfinite(baseline_quality):
        ax.scatter([1.0], [baseline_quality], marker="*", s=200, color="C0", zorder=4)
        handles.append(matplotlib.lines.Line2D([], [], marker="*", linestyle="", markersize=13,
                                               color="C0", label="baseline (seed mean)"))
    ax.set_xlabel(f"{names[1]} (baseline = 1.0, lower is cheaper)")
    ax.set_ylabel(f"{names[0]} after the full budget")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_html(all_points: Sequence[Point], members: Sequence[Point],
              objectives: Sequence[tuple[str, str]], baseline_quality: float,
              title: str, label: Any) -> str:
    """The same plot in plotly, each point's configuration on hover."""
    import plotly.graph_objects as go

    names = [m for m, _ in objectives]
    rest, front_pts = _series(all_points, members)
    fig = go.Figure()
    for name, pts, size in (("other trials", rest, 8), ("Pareto front", front_pts, 13)):
        if not pts:
            continue
        pts = sorted(pts, key=lambda p: p.values[1])
        fig.add_trace(go.Scatter(
            x=[p.values[1] for p in pts], y=[p.values[0] for p in pts], name=name,
            mode="markers+lines" if name == "Pareto front" else "markers",
            line={"shape": "hv"}, marker={"size": size},
            text=[label(p) + "<br>" + short_params(p.record.sampled()) + "".join(
                f"<br>{n} {num(v)}" for n, v in zip(names, p.values, strict=True)) for p in pts],
            hoverinfo="text"))
    if math.isfinite(baseline_quality):
        fig.add_trace(go.Scatter(x=[1.0], y=[baseline_quality], name="baseline (seed mean)",
                                 mode="markers", marker={"symbol": "star", "size": 16}))
    fig.update_layout(title=title.replace("\n", "<br>"), xaxis_title=f"{names[1]} (baseline = 1.0)",
                      yaxis_title=f"{names[0]} after the full budget")
    return fig.to_html(include_plotlyjs=True, full_html=True)
