"""Optuna's matplotlib figures, laid out to be read at the width MLflow shows them.

Optuna draws every plot at matplotlib's default 6.4 inches. At the 1000-1600 px the
parent run's description shows them, neighbouring axes' labels collide in the parallel
coordinates, log axes label their minor ticks (``2×10⁻¹`` beside ``3×10⁻¹``), the slice
plot's colour bar is drawn over its right-most panel and each slice panel scales its
colours on its own. These functions fix a drawn figure in place and lay it out; what is
plotted stays Optuna's.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["WIDTH_IN", "history", "importances", "parallel", "slices", "short_names"]

WIDTH_IN = 12.8  # saved NOTE_IMAGE_PX wide: the layout is made at this size, then scaled
_HEIGHT_IN = 5.6
_PREFIX = "dejavu."  # the key of nearly every searched parameter starts so


def short_names(params: list[str]) -> dict[str, str]:
    """``dejavu.loss.gamma`` → ``loss.gamma``, unless two parameters would read alike."""
    short = {p: p.removeprefix(_PREFIX) for p in params}
    return short if len(set(short.values())) == len(short) else {p: p for p in params}


def history(ax: Any, suptitle: str) -> None:
    """The legend above the axes: on their right it took a quarter of the width."""
    fig = ax.figure
    fig.set_size_inches(WIDTH_IN, _HEIGHT_IN)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, frameon=False)
    _tighten(fig, suptitle)


def importances(ax: Any, suptitle: str, caveat: str, objective: str) -> None:
    """The caveat under the bars: importances are read off the figure alone, in MLflow."""
    fig = ax.figure
    fig.set_size_inches(WIDTH_IN, max(_HEIGHT_IN, 2.4 + 0.3 * len(ax.get_yticks())))
    if ax.get_legend() is not None:  # one objective, named in the caveat
        ax.get_legend().remove()
    ax.set_xlabel(f"importance for {objective} (shares summing to 1)")
    note = fig.text(0.01, 0.01, caveat, ha="left", va="bottom", fontsize=10, wrap=True)
    fig.draw_without_rendering()  # lays out the text, as a draw would, without pixels
    height = note.get_window_extent().height / fig.bbox.height
    _tighten(fig, suptitle, bottom=height + 0.02)


def parallel(ax: Any, suptitle: str, objective: str, params: list[str]) -> None:
    """Short parameter names under the axes, log axes ticked in plain numbers, and the
    tick labels of each axis thinned until none touches another."""
    fig = ax.figure
    fig.set_size_inches(WIDTH_IN, _HEIGHT_IN + 0.8)
    short = short_names(params)
    shown = [t.get_text() for t in ax.get_xticklabels()]
    # Optuna orders the parameter axes by name and shortens long names to 17 characters
    # and "...": each label is checked against the name it stands for before it is replaced.
    if len(shown) == len(params) + 1 and all(
            s == p or (s.endswith("...") and p.startswith(s[:-3]))
            for s, p in zip(shown[1:], sorted(params), strict=True)):
        ax.set_xticks(ax.get_xticks(), [_wrapped(objective)]
                      + [_wrapped(short[p]) for p in sorted(params)], rotation=0, ha="center")
    if any(short[p] != p for p in params):
        example = next(p for p in sorted(params) if short[p] != p)
        fig.text(0.01, 0.01, f"Axes name the parameters without '{_PREFIX}': "
                 f"{short[example]} is {example}.", fontsize=9)
    twins = [a for a in fig.axes if a is not ax and a.get_shared_x_axes().joined(a, ax)]
    for twin in twins:
        twin.grid(False)  # one axis's grid crosses every other axis's lines and labels
        if twin.get_yscale() == "log":
            _plain_log(twin.yaxis)
    _tighten(fig, suptitle, bottom=0.05)
    for axis in [ax.yaxis] + [t.yaxis for t in twins]:
        _thin(axis)
    if _overlaps(ax.get_xticklabels()):
        ax.tick_params(axis="x", labelrotation=20)
        _tighten(fig, suptitle, bottom=0.05)
    for twin in twins:  # the trials' lines run under the labels
        for label in twin.get_yticklabels():
            label.set_bbox({"facecolor": "white", "alpha": 0.75, "edgecolor": "none",
                            "pad": 1.0})


def slices(axes: Any, suptitle: str) -> None:
    """One colour scale (the trial number, ``tNN``) for every panel, its bar in an axes
    of its own right of the panels, and log axes in plain numbers."""
    panels = list(getattr(axes, "flat", [axes]))
    fig = panels[0].figure
    fig.set_size_inches(WIDTH_IN, _HEIGHT_IN)
    import matplotlib.colors

    dots = [c for ax in panels for c in ax.collections if c.get_array() is not None]
    for dot in dots:
        if dot.colorbar is not None:
            dot.colorbar.remove()
    numbers = [v for d in dots for v in d.get_array()]
    if numbers:  # Optuna scales each panel's colours by its own trials; the bar showed the last
        shared = matplotlib.colors.Normalize(min(numbers), max(numbers))
        for dot in dots:
            dot.set_norm(shared)
    for ax in panels:
        if ax.get_xscale() == "log":
            _plain_log(ax.xaxis)
        _unquote(ax)
    right = 0.9
    _tighten(fig, suptitle, right=right)
    for ax in panels:
        if _overlaps(ax.get_xticklabels()):  # categories' names side by side
            for label in ax.get_xticklabels():
                label.set(rotation=30, ha="right", rotation_mode="anchor")
    _tighten(fig, suptitle, right=right)
    if numbers:
        box = panels[-1].get_position()
        cax = fig.add_axes((right + 0.015, box.y0, 0.012, box.height))
        fig.colorbar(dots[-1], cax=cax).set_label("trial (7 is t07)")


def _tighten(fig: Any, suptitle: str, bottom: float = 0.0, right: float = 1.0) -> None:
    fig.suptitle(suptitle, fontsize=11)
    for ax in fig.axes:  # Optuna's own title ("Slice Plot") repeats the suptitle's name
        ax.set_title("")
        ax.set_title("", loc="left")
    fig.tight_layout(rect=(0.0, bottom, right, 1.0))


def _wrapped(name: str) -> str:
    """A long dotted name on two lines at its last dot, so neighbouring labels fit."""
    head, dot, tail = name.rpartition(".")
    return f"{head}.\n{tail}" if dot and len(name) > 12 else name.replace(" at ", "\nat ", 1)


def _plain_log(axis: Any) -> None:
    """Log ticks at 1, 2 and 5 per decade over a narrow range, at decades over a wide one,
    written as plain numbers; minor ticks stay unlabelled."""
    from matplotlib import ticker

    low, high = sorted(axis.get_view_interval())
    decades = math.log10(high / low) if low > 0 else math.inf
    axis.set_major_locator(ticker.LogLocator(10, subs=(1.0, 2.0, 5.0) if decades < 2.5
                                             else (1.0,), numticks=8))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _unquote(ax: Any) -> None:
    """Categories as Optuna's slice plot writes them, ``'crm_f'``, without the quotes."""
    ax.figure.draw_without_rendering()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    if labels and all(len(s) > 1 and s[0] == s[-1] == "'" for s in labels):
        ax.set_xticks(ax.get_xticks(), [s[1:-1] for s in labels])


def _thin(axis: Any) -> None:
    """Keep, bottom to top, each tick whose label clears the last one kept."""
    axis.figure.draw_without_rendering()
    low, high = sorted(axis.get_view_interval())
    ticks = sorted((t.get_loc(), t.label1.get_text(), t.label1.get_window_extent())
                   for t in axis.get_major_ticks()
                   if low <= t.get_loc() <= high and t.label1.get_visible()
                   and t.label1.get_text())
    kept: list[tuple[float, str, Any]] = []
    for tick in ticks:
        if not kept or not tick[2].overlaps(kept[-1][2]):
            kept.append(tick)
    if len(kept) < len(ticks):
        axis.set_ticks([t[0] for t in kept], [t[1] for t in kept])


def _overlaps(labels: list[Any]) -> bool:
    if not labels:
        return False
    labels[0].figure.draw_without_rendering()
    boxes = [t.get_window_extent() for t in labels if t.get_visible() and t.get_text()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
