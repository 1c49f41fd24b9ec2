"""Optuna's analysis of a search, computed only from values at equal budget.

ASHA stops most trials early, so a trial's last value is not comparable with another's:
a trial stopped after one epoch would rank by its first-epoch metric. Every plot here
uses one common budget: the full budget when at least ``MIN_FULL`` trials reached it,
else ASHA's first rung, which every trial that did not fail reached. A trial's number in
the plots is its name everywhere else (``t07`` is trial 7: the order the search sampled
it in); numbers that are not a DejaVu trial at that budget (baselines, trials stopped
before it, failures) are placeholders the plots leave out. The parent run
gets each plot as a PNG (optimisation history, parameter importances, parallel
coordinates, slices), and all of them together as one interactive HTML page.

The study's values are the metric as a person reads it (``unit_of``: val_miou in mIoU
points), so every plot, static and interactive, shows one scale and names it on its axis;
the values as logged stay in the trial records.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

from dejavu_tune.outcome.units import unit_of
from dejavu_tune.search import optuna_layout
from dejavu_tune.search.trial_records import FAILURES
from dejavu_tune.tracking.run_log import RunLog
from dejavu_tune.tracking.run_names import trial_name

__all__ = ["MIN_FULL", "ROUGH", "log_optuna_plots", "analysis_study", "analysed", "importance_caveat"]

MIN_FULL = 8  # full-budget trials needed before importances rest on them alone
ROUGH = 20  # fewer trials: importances move with a trial or two more, the plot says so
SLICES = 4  # slice panels: a row of more is unreadable at the size MLflow shows it
HTML_FILE = "optuna_analysis.html"
NUMBER_AXIS = "trial (7 is t07, as MLflow and the terminal name it)"


def _budget(space: Any, outcome: Any) -> int:
    trials = [r for r in outcome.records if r.phase == "search" and not r.is_baseline]
    full = sum(r.final is not None for r in trials)
    if full >= MIN_FULL or space.search.algorithm == "grid":
        return outcome.epochs
    return min(space.search.grace_period, outcome.epochs)


def analysis_study(space: Any, outcome: Any) -> tuple[Any, int]:
    """(an Optuna study of the search's DejaVu trials at one common budget, that epoch);
    trial ``tNN`` is the study's trial NN, its value the metric at that epoch in the unit
    it is read in (``unit_of(metric).shown``)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    epoch = _budget(space, outcome)
    unit = unit_of(space.search.metric)
    study = optuna.create_study(direction="maximize" if space.search.mode == "max"
                                else "minimize")
    dists = {p.name: p.distribution() for p in space.params}
    trials = [r for r in outcome.records if r.phase == "search" and not r.is_baseline
              and r.at(epoch) is not None and r.status not in FAILURES]
    numbered: dict[int, Any] = {}
    unnumbered = []  # a search recorded before trials were named tNN: after the rest
    for record in trials:
        number = _number(record)
        if number is None:
            unnumbered.append(record)
        else:
            numbered[number] = record
    numbered.update(enumerate(unnumbered, max(numbered, default=0) + 1))
    for number in range(max(numbered, default=-1) + 1):
        record = numbered.get(number)
        if record is None:
            study.add_trial(optuna.trial.create_trial(
                state=optuna.trial.TrialState.FAIL,
                user_attrs={"placeholder": f"no DejaVu trial t{number:02d} at epoch {epoch}"}))
            continue
        config = {k: v for k, v in record.config.items() if k in dists}
        study.add_trial(optuna.trial.create_trial(
            params=config, distributions={k: dists[k] for k in config},
            value=unit.shown(record.at(epoch)), user_attrs={"tune_trial": record.trial_id,
                                                "trial": trial_name(record.trial_id,
                                                                    record.trial_dir)}))
    return study, epoch


def _number(record: Any) -> int | None:
    name = trial_name(record.trial_id, record.trial_dir)
    return int(name[1:]) if name[:1] == "t" and name[1:].isdigit() else None


def _params(study: Any) -> list[str]:
    return sorted({p for t in study.trials for p in t.params})


def analysed(study: Any) -> int:
    """The study's trials that are trials (not placeholders)."""
    import optuna

    return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


# what _importances_once computes, as its plot states it
EVALUATOR = ("PED-ANOVA, Optuna's default: how differently each parameter is spread among "
             "the best 10% of the trials than among all of them")


def _importances_once() -> Any:
    """Optuna's default importance evaluator, computed once per study: the ranking that
    picks the panels and the importances plot (static and interactive) are one result,
    not three computations over every trial."""
    import optuna

    class Once(optuna.importance.BaseImportanceEvaluator):
        def __init__(self) -> None:
            self.inner = optuna.importance.PedAnovaImportanceEvaluator()
            self.memo: dict[Any, dict[str, float]] = {}

        def evaluate(self, study: Any, params: list[str] | None = None, *,
                     target: Any = None) -> dict[str, float]:
            key = (id(study), tuple(params or ()), target)
            if key not in self.memo:
                self.memo[key] = self.inner.evaluate(study, params, target=target)
            return self.memo[key]

    return Once()


def _most_important(study: Any, evaluator: Any, count: int = 6) -> list[str] | None:
    import optuna

    try:
        return list(optuna.importance.get_param_importances(study, evaluator=evaluator))[:count]
    except (ValueError, RuntimeError, ZeroDivisionError):
        return None


def importance_caveat(n: int, budget: str) -> str:
    """What the importances rest on, printed under them."""
    rough = (f"With fewer than {ROUGH} trials they are rough: a point estimate without an "
             "interval, which a trial or two more can reorder; read the ranking of the top "
             "few, not the numbers." if n < ROUGH else
             "A point estimate without an interval.")
    return f"Importances by {EVALUATOR}; from {budget}, one seed each. {rough}"


def log_optuna_plots(parent: RunLog, space: Any, outcome: Any) -> list[str]:
    """Log the plots into the parent run; returns the PNGs drawn."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna import visualization as ov
    from optuna.visualization import matplotlib as ovm

    study, epoch = analysis_study(space, outcome)
    n = analysed(study)
    budget = (f"{n} trials at the full budget ({epoch} epochs)" if epoch == outcome.epochs
              else f"{n} trials at epoch {epoch} (ASHA's first rung; fewer than {MIN_FULL} "
              "ran the full budget)")
    # Optuna's "Objective Value", in the unit the study's values are in (analysis_study)
    target = f"{space.search.metric} at epoch {epoch}{unit_of(space.search.metric).suffix}"
    plots: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
        "optimization_history": (partial(ovm.plot_optimization_history, target_name=target),
                                 partial(ov.plot_optimization_history, target_name=target))}
    if n >= 2:
        # One panel per parameter does not fit on a page: the slices and the parallel
        # coordinates show the most important ones (all of them when importances fail).
        once = _importances_once()
        with warnings.catch_warnings():  # PED-ANOVA's "regimes with < 2 trials": the
            warnings.simplefilter("ignore")  # plot's caveat says how few trials there are
            top = _most_important(study, once)
        named = {"target_name": target}
        plots.update(param_importances=(
                         partial(ovm.plot_param_importances, evaluator=once, **named),
                         partial(ov.plot_param_importances, evaluator=once, **named)),
                     parallel_coordinate=(
                         partial(ovm.plot_parallel_coordinate, params=top, **named),
                         partial(ov.plot_parallel_coordinate, params=top, **named)),
                     slice=(partial(ovm.plot_slice, params=top and top[:SLICES], **named),
                            partial(ov.plot_slice, params=top and top[:SLICES], **named)))
    html: list[str] = []
    drawn: list[str] = []
    with warnings.catch_warnings():
        # Optuna flags its matplotlib plots as experimental and warns about sparse regimes
        # of conditional parameters; neither is actionable for the user of a finished search.
        warnings.simplefilter("ignore")
        for name, (static, interactive) in plots.items():
            try:
                axes = static(study)
                figure = interactive(study)
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                parent.text(f"{name}.txt", f"not drawn: {exc}\n")
                continue
            first = axes if hasattr(axes, "figure") else axes.flatten()[0]
            title = f"{name.replace('_', ' ')}: {budget}"
            if name == "optimization_history":
                first.set_xlabel(NUMBER_AXIS)
                figure.update_xaxes(title_text=NUMBER_AXIS)
                optuna_layout.history(first, title)
            elif name == "param_importances":
                optuna_layout.importances(first, title, importance_caveat(n, budget),
                                          f"{space.search.metric} at epoch {epoch}")
            elif name == "parallel_coordinate":
                optuna_layout.parallel(first, title, target, top or _params(study))
            else:
                optuna_layout.slices(axes, title)
            figure_png = first.figure
            try:
                parent.plot(f"{name}.png", figure_png)
            finally:
                matplotlib.pyplot.close(figure_png)
            drawn.append(f"{name}.png")
            figure.update_layout(title=f"{name.replace('_', ' ')}: {budget}")
            html.append(figure.to_html(full_html=False,
                                       include_plotlyjs=not html))
        if html:
            parent.text(HTML_FILE, "<html><head><meta charset='utf-8'><title>Optuna analysis"
                        "</title></head><body>" + "\n".join(html) + "</body></html>")
    return drawn
