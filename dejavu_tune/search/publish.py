"""What a search publishes to MLflow from the driver's side: the parent run (its setup,
its results, summary and plots, or the reason it ended without a verdict), the runs of
the CRM stage, the Optuna study, and each trial's gain over the baseline on its seed
(the trials record their own epochs: ``tracking.trial_recorder``)."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from dejavu_tune.outcome.units import unit_of
from dejavu_tune.raytune import ray_adapter
from dejavu_tune.search import crm_stage, forest_plot, pareto
from dejavu_tune.search.finished import RESULT_FILE, STUDY_FILE
from dejavu_tune.search.optuna_plots import HTML_FILE, log_optuna_plots
from dejavu_tune.search.search_figures import FIGURE_FILES, search_figures
from dejavu_tune.search.space import SearchSpace
from dejavu_tune.search.step_runner import StepRunner
from dejavu_tune.search.summary import SUMMARY_FILE, Outcome, report_markdown, result_payload
from dejavu_tune.search.trial_context import config_key
from dejavu_tune.search.warm_start import WarmStart
from dejavu_tune.tracking import mlflow_views, winner_model
from dejavu_tune.tracking import runs as tracking
from dejavu_tune.tracking.run_log import RunLog
from dejavu_tune.tracking.run_names import trial_name
from dejavu_tune.train.crm_store import PretrainSpec
from dejavu_tune.train.figures import FIGURE_FILE
from dejavu_tune.train.trainer import heldout_name

__all__ = ["FINAL_GAIN", "end_without_verdict",
           "record_pretraining", "record_study", "log_gains", "log_winner", "log_parent_setup",
           "share_view", "log_parent_results"]

FINAL_GAIN = "final_gain"  # the runs table sorts by it: the outcome at equal budget
BASELINE = "baseline"  # beside it: the value of what the gain is measured against


def end_without_verdict(drv: StepRunner, verdict: str, text: str) -> int:
    """The search ends with ``text`` in its parent run and on stderr, exit 1."""
    note = f"## {verdict.capitalize()}: {text}\n\nFix the cause and start a new search.\n"
    drv.parent_run.text(SUMMARY_FILE, note)
    drv.parent_run.note(note)
    drv.parent_run.tags({"dejavu.verdict": verdict})
    drv.parent_run.finish("failed", text[:5000])
    drv.record.finished = True  # resuming would only repeat the same failures
    drv.record.save(drv.root)
    print(f"error: {verdict}: {text}", file=sys.stderr)
    return 1


def record_pretraining(drv: StepRunner, spec: PretrainSpec, trained_now: bool) -> str:
    """The pre-training as a run of the search: its spec, metrics and figure."""
    directory = drv.plan.directory(spec)
    metrics = json.loads((directory / "metrics.json").read_text())
    # a run of the time the pre-training took; one found in the store took none
    spent_ms = int(metrics.get("train_s", 0) * 1000) if trained_now else 0
    run_id, _ = drv.ref.open_trial(f"crm-{spec.key}", f"crm pretrain {spec.describe()}",
                                   crm_stage.CRM_KIND, int(time.time() * 1000) - spent_ms)
    run = drv.run_log(run_id)
    run.params({
        "crm": json.dumps(spec.crm, sort_keys=True), "redactions": len(spec.redactions),
        "redaction_kinds": ",".join(spec.redaction_kinds), "store_key": spec.key,
        **{f"pretrain.{k}": v for k, v in spec.settings.items()}})
    run.tags({tracking.PHASE_TAG: "crm", "dejavu.crm_stored": str(directory),
              "dejavu.crm_reused": str(not trained_now).lower()})
    # a resumed search may have logged them already
    run.new_epoch(metrics, 0, key="reliance")
    run.new_figure((directory / FIGURE_FILE).read_bytes(), 0)
    run.finish("completed")
    return (f"{spec.describe()} ({'trained now' if trained_now else 'from the store'}, "
            f"{int(metrics.get('iterations', spec.settings['iterations']))} iterations, "
            f"reliance {metrics['reliance']:.2f})")


def record_study(drv: StepRunner) -> None:
    """What Optuna was told about every trial, beside the search and in the parent run."""
    if not (drv.root / "search").is_dir():
        return
    names = {r.trial_id: trial_name(r.trial_id, r.path) for step, r in drv.results
             if step == "search"}
    trials = [{"trial": names.get(t["trial_id"]), **t}
              for t in ray_adapter.optuna_trials(str(drv.root / "search"))]
    (drv.root / STUDY_FILE).write_text(json.dumps(trials, indent=2))
    drv.parent_run.json(STUDY_FILE, trials)
    states = sorted({t["state"] for t in trials})
    print("optuna study: " + ", ".join(
        f"{sum(t['state'] == st for t in trials)} {st.lower()}" for st in states), flush=True)


def log_winner(drv: StepRunner, space: SearchSpace, outcome: Outcome,
               runs: dict[str, str]) -> dict[str, Any] | None:
    """The confirmed winner's network, from its confirmation run on the lowest seed, as
    an MLflow model of that run (registered as ``search.register_model`` when set); None
    when nothing was confirmed. A failure is said, never the search's end."""
    winner = outcome.winner
    if winner is None:
        return None
    key = config_key(winner.config)
    mine = sorted((r for step, r in drv.results if step.startswith("confirm")
                   and r.error is None and r.checkpoint and runs.get(r.trial_id)
                   and config_key(r.config) == key),
                  key=lambda r: r.config.get("seed", 0))
    if not mine:
        return {"error": "no confirmation run of the winner kept a checkpoint"}
    chosen = mine[0]
    metric = space.search.metric
    heldout = chosen.last.get(heldout_name(metric))
    metrics = {f"paired_gain_{metric}": winner.paired.mean,
               f"paired_gain_{metric}_ci_low": winner.paired.ci[0],
               f"paired_gain_{metric}_ci_high": winner.paired.ci[1],
               **({heldout_name(metric): float(heldout)}
                  if isinstance(heldout, (int, float)) else {})}
    try:
        (model,) = ray_adapter.run_parallel(winner_model.log_network, [(
            drv.uri, runs[chosen.trial_id], chosen.checkpoint, dict(space.fixed),
            dict(chosen.config), metrics, space.search.register_model)],
            space.resources.one_rank())
    except Exception as exc:  # noqa: BLE001 - the verdict stands without the model
        return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    print(f"winner's network: {model['model_uri']} (run {trial_name(chosen.trial_id, chosen.path)}"
          + (f"; registered as {model['registered_name']} version "
             f"{model['registered_version']}" if model["registered_name"] else "") + ")",
          flush=True)
    return model


def log_gains(drv: StepRunner, outcome: Outcome, runs: dict[str, str]) -> None:
    """Each run's gain over the baseline on the same seed, per epoch, as its ``gain``
    metric (a baseline's is 0; the search's trials: over ``Outcome.gain_reference``,
    which carries no selection), and ``final_gain`` for the search's DejaVu trials that
    trained the full budget only: sorting by it ranks at equal budget, and trials ASHA
    stopped, baselines and confirmation replicates (one seed of a paired comparison) come
    after them. Beside them, what the runs table shows: display copies in the unit a
    person reads, rounded (``final_gain_pts``, ``gain_pts``, ``val_miou_pts`` for
    segmentation: ``outcome.units``), and ``baseline_pts``, the value the gain is measured
    against, at the run's last epoch. The baselines train beside
    the trials, so gains are known only now; steps a run already has are skipped, so a
    resumed driver logs nothing twice."""
    by_seed = {r.seed: r.curve for r in outcome.records if r.is_baseline
               and r.status == "completed"
               and (r.phase == "search" or r.phase.startswith("confirm"))}
    reference = outcome.gain_reference()
    if reference is not None:
        by_seed.setdefault(drv.seed, reference[1])
    unit, metric = outcome.unit, outcome.metric
    for record in outcome.records:
        run_id = runs.get(record.trial_id)
        if run_id is None or not record.curve:
            continue
        last = record.epochs
        shown = {unit.display(metric): {last: unit.rounded(record.curve[-1])}}
        base = by_seed.get(record.seed) if record.phase != "tuning" else None
        gains = ({e: v - base[e - 1] for e, v in enumerate(record.curve, start=1)
                  if e <= len(base)} if base is not None else {})
        if last in gains:
            shown[unit.display("gain")] = {last: unit.rounded(gains[last])}
            if not record.is_baseline:  # a baseline's would be its own value
                shown[unit.display(BASELINE)] = {last: unit.rounded(base[last - 1])}
        if (record.final is not None and record.phase == "search" and not record.is_baseline
                and drv.epochs in gains):
            shown[FINAL_GAIN] = {drv.epochs: gains[drv.epochs]}
            shown[unit.display(FINAL_GAIN)] = {drv.epochs: unit.rounded(gains[drv.epochs])}
        shown = {k: {e: v for e, v in points.items() if math.isfinite(v)}
                 for k, points in shown.items()}
        # the display copies ride on the gain's history read; a run without gains (a
        # tuning run) on its own display copy's
        if gains:
            drv.run_log(run_id).series("gain", gains, shown)
        elif shown.get(unit.display(metric)):  # not when its last value was NaN
            key = unit.display(metric)
            drv.run_log(run_id).series(key, shown.pop(key), shown)


def log_parent_setup(parent: RunLog, space: SearchSpace, root: Path,
                     warm: WarmStart | None) -> None:
    """Every search setting (each field of ``SearchSettings``, so a new one is logged
    without anyone listing it), the resources per trial and the budget."""
    settings = {f.name: getattr(space.search, f.name) for f in dataclasses.fields(space.search)}
    settings["objectives"] = ", ".join(f"{m} ({d})" for m, d in space.search.objectives)
    settings["constraints"] = ", ".join(limit.text() for limit in space.search.limits)
    # what ASHA decides on, resolved: null reads "the search metric" only in the space file
    settings["stop_metric"] = space.search.stop_metric or space.search.metric
    settings["stop_mode"] = space.search.stop_mode or space.search.mode
    r = space.resources
    parent.params({
        "space_file": Path(space.path).name,
        **{k: v for k, v in settings.items() if v is not None and v != ""},
        "cpus_per_trial": r.cpu, "gpus_per_trial": r.gpu, "workers_per_trial": r.ranks,
        "epochs": space.base_config().optim.epochs,
        **({"warm_start": warm.source} if warm else {})})
    if warm is not None:
        parent.tags({"dejavu.warm_start": warm.describe()[:5000]})
    parent.file(root / "space.yaml")


def share_view(uri: str, exp_id: str, parent: str, space: SearchSpace) -> str:
    """The runs-table view this search prints: its trials ranked at equal budget (the
    display copies in the unit a person reads, beside the baseline they are measured
    against), how each ended and why ASHA stopped it, the metric ASHA decided on, the
    diagnostics, the parameters the space samples."""
    s = space.search
    unit = unit_of(s.metric)
    decided = s.stop_metric if s.stop_metric and s.stop_metric != s.metric else None
    metrics = [unit.display(FINAL_GAIN), unit.display(s.metric), unit.display(BASELINE),
               unit.display("gain"), *([decided] if decided else []),
               *(m for m, _ in s.costs), "crm_reliance", "regen_grad_ratio"]
    return mlflow_views.share_runs_view(
        uri, exp_id, parent, unit.display(FINAL_GAIN), ascending=s.mode == "min",
        metrics=metrics, params=[p.name for p in space.params],
        tags=[tracking.STATUS_TAG, tracking.INERT_TAG, tracking.STOP_TAG],
        later_tags=[tracking.PHASE_TAG, tracking.CRM_TAG])


def _parent_note(drv: StepRunner, outcome: Outcome, plots: list[str]) -> str:
    """The parent run's description: the summary (verdict and its forest plot first),
    then the plots."""
    def image(name: str) -> str:
        return mlflow_views.artifact_image(drv.parent, name, name.removesuffix(".png"))

    forest = image(forest_plot.PLOT_FILE) if forest_plot.PLOT_FILE in plots else None

    front = (f"{image(pareto.PLOT_FILE)}\n\nInteractive, each trial's configuration on "
             f"hover: the run's `{pareto.PLOT_HTML}`." if pareto.PLOT_FILE in plots else None)
    pictures = [image(name) for name in plots if name in FIGURE_FILES]
    images = [image(name) for name in plots
              if name not in (pareto.PLOT_FILE, forest_plot.PLOT_FILE, *FIGURE_FILES)]
    plots_md = (["", "## The search in pictures", "", *pictures] if pictures else [])
    plots_md += (["", "## Optuna analysis", "", *images, "",
                  f"Interactive: the run's `{HTML_FILE}`."] if images else [])
    return (report_markdown(outcome, front_image=front, forest_image=forest)
            + "\n".join(plots_md) + "\n")


def log_parent_results(drv: StepRunner, space: SearchSpace, outcome: Outcome,
                        wall: float) -> None:
    parent, m = drv.parent_run, outcome.metric
    forest = _log_figure(drv, forest_plot.PLOT_FILE, forest_plot.plot(
        outcome.confirmation, m, outcome.noise)) if outcome.confirmed else []
    # summary.md sits beside the plot among the parent run's artifacts
    text = report_markdown(outcome, forest_image=f"![forest plot]({forest_plot.PLOT_FILE})"
                           if forest else None)
    parent.text(SUMMARY_FILE, text)
    payload = result_payload(outcome, space.trial_config)
    (drv.root / RESULT_FILE).write_text(json.dumps(payload, indent=2, sort_keys=True))
    parent.json(RESULT_FILE, payload)
    metrics: dict[str, float] = {
        "wall_time_s": round(wall, 1),
        "trials": float(sum(1 for r in outcome.records if r.phase == "search"
                            and not r.is_baseline))}
    if outcome.baselines():
        metrics[f"baseline_{m}"] = outcome.baseline_mean
        metrics["noise_floor"] = outcome.noise
    single = outcome.best_single()
    if single is not None:
        metrics[f"best_single_seed_{m}"] = single.final
    if outcome.winner is not None:
        p = outcome.winner.paired
        metrics.update(confirmed_delta=p.mean, confirmed_ci_low=p.ci[0],
                       confirmed_ci_high=p.ci[1])
    if outcome.confirmation is not None:
        metrics["confirmation_runs"] = float(outcome.confirmation.result.runs)
        plan = outcome.power()
        if plan is not None and plan.detectable is not None:
            metrics["detectable_gain"] = plan.detectable  # with 80% power, at this floor
    parent.epoch(metrics, 0)
    parent.tags({"dejavu.verdict": outcome.verdict})
    pictures = [name for name, figure in search_figures(drv.results, outcome, space,
                                                         drv.started)
                for name in _log_figure(drv, name, figure)]
    plots = (forest + _log_front(drv, outcome) + pictures
             + log_optuna_plots(parent, space, outcome))
    parent.note(_parent_note(drv, outcome, plots))
    mlflow_views.describe_experiment(drv.uri, drv.exp_id, (
        f"[{drv.record.name}]({mlflow_views.run_link(drv.exp_id, drv.parent)}): "
        f"{outcome.verdict}"))
    parent.finish("completed")


def _log_front(drv: StepRunner, outcome: Outcome) -> list[str]:
    """The Pareto plot of a search with several objectives (PNG and interactive HTML)."""
    if len(outcome.objectives) < 2:
        return []
    candidates = pareto.points(outcome.records, outcome.objectives)
    members = outcome.front()
    title = (f"Pareto front: {len(members)} of {len(candidates)} full-budget DejaVu trials\n"
             f"({outcome.epochs} epochs, one seed each; the confirmation is in the summary)")
    _log_figure(drv, pareto.PLOT_FILE, pareto.plot_png(
        candidates, members, outcome.objectives, outcome.baseline_mean, title))
    drv.parent_run.text(pareto.PLOT_HTML, pareto.plot_html(
        candidates, members, outcome.objectives, outcome.baseline_mean, title,
        lambda p: trial_name(p.record.trial_id, p.record.trial_dir)))
    return [pareto.PLOT_FILE]


def _log_figure(drv: StepRunner, name: str, figure: Any) -> list[str]:
    """A matplotlib figure as the parent run's PNG artifact ``name``; returns [name]."""
    import matplotlib.pyplot as plt

    try:
        drv.parent_run.plot(name, figure)
    finally:
        plt.close(figure)
    return [name]


