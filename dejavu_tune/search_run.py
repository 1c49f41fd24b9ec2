"""Runs a validated search: MLflow parent run, the baseline trial, the Optuna/ASHA trials,
trial statuses, and the parent run's summary, best configuration and Optuna plots."""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from dejavu_tune import ray_adapter, tracking
from dejavu_tune.delivery import DeliveryQueue
from dejavu_tune.space import SearchSpace
from dejavu_tune.tune_baseline import ENABLED, is_baseline
from trainables.dejavu_trainable import (
    FIGURE_FILE,
    GPU_IDS_KEY,
    TrialContext,
    dejavu_trainable,
    upload_figure,
)

__all__ = ["run_search", "summarise", "STUDY_FILE"]

STUDY_FILE = "optuna_trials.json"
# How long the driver retries a trial's status update, and waits for them after the
# trials: the runs are settled again after that, so this only bounds the wait.
_DRIVER_RETRY_S = 600.0


def _save_meta(root: Path, meta: dict[str, Any]) -> None:
    tmp = root / "search.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(root / "search.json")  # atomic: a killed driver never leaves half a file


def _finished_status(last: dict[str, Any], epochs: int,
                     metric: str) -> tuple[str, str | None]:
    """A trial that ended without an error: failed if its metric ended NaN/inf (what
    Optuna is told too, see tune_outcomes), else completed or stopped early."""
    value = last.get(metric)
    if isinstance(value, float) and not math.isfinite(value):
        return "failed", f"{metric} ended as {value}"
    done = int(last.get("training_iteration", 0))
    return ("completed" if done >= epochs else "stopped_early"), None


def _trial_status(result: Any, epochs: int, metric: str) -> tuple[str, str | None]:
    if result.error is not None:
        return "failed", f"{type(result.error).__name__}: {result.error}".splitlines()[0][:500]
    return _finished_status(result.metrics or {}, epochs, metric)


def _fit(tuner: Any) -> list[Any]:
    grid = tuner.fit()
    return [grid[i] for i in range(len(grid))]


def run_search(space: SearchSpace, root: Path, meta: dict[str, Any], address: str | None,
               max_failures: int, resume: bool, started: float) -> int:
    """Run the search; any failure of the driver ends its parent run as failed, with a
    one-line reason, and exits 1 (an interrupted search can be continued with --resume)."""
    try:
        return _run(space, root, meta, address, max_failures, resume, started)
    except KeyboardInterrupt:
        reason = "interrupted (continue with --resume)"
    except Exception as exc:  # noqa: BLE001 - reported in one line, recorded in MLflow
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    if meta.get("parent_run_id"):
        tracking.set_trial_status(meta["tracking_uri"], meta["parent_run_id"], "failed", reason)
    print(f"error: the search stopped: {reason}", file=sys.stderr)
    return 1


def _run(space: SearchSpace, root: Path, meta: dict[str, Any], address: str | None,
         max_failures: int, resume: bool, started: float) -> int:
    root.mkdir(parents=True, exist_ok=True)
    if not resume:
        shutil.copyfile(space.path, root / "space.yaml")
    uri = meta["tracking_uri"] or tracking.default_tracking_uri(root.parent)
    meta["tracking_uri"] = uri
    exp_id, parent = tracking.open_parent_run(uri, meta["experiment"], meta["name"],
                                              meta.get("parent_run_id"))
    meta.update(experiment_id=exp_id, parent_run_id=parent)
    _save_meta(root, meta)
    if not resume:
        _log_parent_setup(uri, parent, space, root)

    cfg = space.base_config()
    s = space.search
    ray_adapter.start_ray(address)
    context = TrialContext(fixed=space.fixed, tracking_uri=uri, experiment_id=exp_id,
                           parent_run_id=parent, cpus=space.resources["cpu"])
    common = dict(storage_path=str(root), metric=s.metric, mode=s.mode,
                  max_epochs=cfg.optim.epochs, max_concurrent=s.max_concurrent,
                  max_failures=max_failures)
    epochs = cfg.optim.epochs

    def on_complete(trial_id: str, last: dict[str, Any]) -> None:
        status, reason = _finished_status(last, epochs, s.metric)
        _set_status(uri, exp_id, parent, trial_id, status, reason, _ended_ms(last))
        value = last.get(s.metric, float("nan"))
        print(f"  trial {trial_id}: {status} after {last.get('training_iteration', 0)} "
              f"epoch(s), {s.metric}={value:.4f}", flush=True)

    def on_error(trial_id: str, reason: str) -> None:
        _set_status(uri, exp_id, parent, trial_id, "failed", reason, int(time.time() * 1000))
        print(f"  trial {trial_id}: failed: {reason}", flush=True)

    # Tune's event loop runs these callbacks: through the queue, a tracking server that is
    # away never stalls the search (trials wait for the loop to take their reports).
    outbox = DeliveryQueue.named("driver-status", retry_for_s=_DRIVER_RETRY_S)
    callbacks = [ray_adapter.make_status_callback(
        lambda *a: outbox.put(on_complete, *a), lambda *a: outbox.put(on_error, *a))]
    grid = s.algorithm == "grid"
    print(f"search: {'a baseline (DejaVu off) and ' if s.baseline else ''}{s.num_samples} "
          f"{'grid' if grid else 'TPE'} trials, {s.max_concurrent} at once", flush=True)
    path = str(root / "search")
    if resume and ray_adapter.can_restore(path):
        tuner = ray_adapter.restore_tuner(path, dejavu_trainable, {"context": context},
                                          space.resources)
    else:
        tuner = ray_adapter.make_tuner(dejavu_trainable, {"context": context}, space.resources,
                                       name="search", num_samples=s.num_samples,
                                       define_by_run=space.define_by_run, seed=s.seed,
                                       grace_period=s.grace_period,
                                       reduction_factor=s.reduction_factor,
                                       points=space.grid_points() if grid else None,
                                       early_stopping=not grid, callbacks=callbacks,
                                       baseline={ENABLED: False} if s.baseline else None,
                                       **common)
    results = _fit(tuner)
    if not outbox.drain(_DRIVER_RETRY_S):
        print("warning: the tracking server took no status updates for "
              f"{_DRIVER_RETRY_S:.0f} s; settling the trials' runs now", file=sys.stderr)
    _backfill(uri, exp_id, parent, results)
    for result in results:  # idempotent: also settles trials whose driver died mid-way
        status, reason = _trial_status(result, epochs, s.metric)
        last = result.metrics or {}
        if last.get("trial_id"):  # a trial that never reported has no run to settle
            _set_status(uri, exp_id, parent, last["trial_id"], status, reason,
                        _ended_ms(last) if result.error is None else None)
    _settle_orphans(uri, exp_id, parent)
    _record_study(uri, parent, root, path)
    baseline_curve = _baseline_curve(results, s.metric)
    if s.baseline and not baseline_curve:
        print("warning: the baseline trial failed; no gains can be computed", file=sys.stderr)
    _log_gains(uri, exp_id, parent, results, s.metric, baseline_curve)
    table, best = summarise(space, results, baseline_curve)
    _log_parent_results(uri, parent, space, results, table, best, baseline_curve,
                        wall=time.time() - started)
    print("\n" + table)
    if best is not None:
        print(f"\nbest: {best['trial']}  {s.metric}={best['value']:.4f}"
              + (f"  gain={best['gain']:+.4f}" if best.get("gain") is not None else ""))
        print("best configuration: " + json.dumps(best["config"], sort_keys=True))
    where = (f"browse {tracking.redact(uri)}" if uri.startswith(("http://", "https://")) else
             f"mlflow ui --backend-store-uri {uri}\nthen browse http://127.0.0.1:5000")
    print(f"\nresults: {root}\nopen them with:  {where} (experiment {meta['experiment']!r}, "
          f"parent run {meta['name']!r}; select child runs and press Compare)")
    meta["finished"] = True
    _save_meta(root, meta)
    return 0


def _curve(result: Any, metric: str) -> list[float]:
    """The metric per epoch (epoch 1 first) of a trial that reported at least once."""
    frame = result.metrics_dataframe
    if frame is None or metric not in frame:
        return []
    return [float(v) for v in frame.sort_values("training_iteration")[metric]]


def _baseline_curve(results: list[Any], metric: str) -> tuple[float, ...]:
    for result in results:
        if is_baseline(result.config) and result.error is None:
            return tuple(_curve(result, metric))
    return ()


def _gains(result: Any, metric: str, baseline: tuple[float, ...]) -> dict[int, float]:
    """The trial's metric minus the baseline's, per epoch both have (epoch 1 first)."""
    if is_baseline(result.config):
        return {}
    return {epoch: value - baseline[epoch - 1]
            for epoch, value in enumerate(_curve(result, metric)[:len(baseline)], start=1)}


def _log_gains(uri: str, exp_id: str, parent: str, results: list[Any], metric: str,
               baseline: tuple[float, ...]) -> None:
    """Each trial's gain over the baseline per epoch, as the child run's ``gain`` metric.

    The baseline trains beside the others, so gains are known only once it has finished;
    steps a run already has are skipped, so a resumed driver logs nothing twice."""
    if not baseline:
        return
    runs = _runs_by_trial(uri, exp_id, parent)
    for result in results:
        run_id = runs.get((result.metrics or {}).get("trial_id"))
        if run_id is not None:
            tracking.log_series(uri, run_id, "gain", _gains(result, metric, baseline))


def _settle_orphans(uri: str, exp_id: str, parent: str) -> None:
    """Tune has ended every trial, so a child run still RUNNING lost its process before
    it reported anything (a killed worker or driver): it failed."""
    for run in tracking.child_runs(uri, exp_id, parent):
        if run.info.status == "RUNNING":
            tracking.set_trial_status(uri, run.info.run_id, "failed",
                                      "the trial's process ended before it reported a result")


def _record_study(uri: str, parent: str, root: Path, experiment_path: str) -> None:
    """What Optuna was told about every trial, beside the search and in the parent run."""
    trials = ray_adapter.optuna_trials(experiment_path)
    (root / STUDY_FILE).write_text(json.dumps(trials, indent=2))
    tracking.log_json(uri, parent, STUDY_FILE, trials)
    states = sorted({t["state"] for t in trials})
    print("optuna study: " + ", ".join(
        f"{sum(t['state'] == st for t in trials)} {st.lower()}" for st in states), flush=True)


def _runs_by_trial(uri: str, exp_id: str, parent: str) -> dict[str, str]:
    return {r.data.tags.get(tracking.TRIAL_TAG): r.info.run_id
            for r in tracking.child_runs(uri, exp_id, parent)}


def _ended_ms(last: dict[str, Any]) -> int | None:
    """When a trial reported its last result (Tune stamps each result, in seconds)."""
    stamp = last.get("timestamp")
    return int(stamp * 1000) if isinstance(stamp, (int, float)) else None


def _backfill(uri: str, exp_id: str, parent: str, results: list[Any]) -> None:
    """Record everything Tune has from a trial that its MLflow run lacks: epochs, params,
    placement tags and the newest figure. The trial's queue died with it (Tune stops a
    trial inside its report, so a queue still catching up after an outage loses what it
    holds), or gave up while the server was away. A trial that reported but whose run was
    never opened gets its run here, starting when the trial started."""
    runs = _runs_by_trial(uri, exp_id, parent)
    for result in results:
        last = result.metrics or {}
        trial_id = last.get("trial_id")
        if trial_id is None:  # never reported: nothing to log
            continue
        run_id = runs.get(trial_id)
        if run_id is None:
            kind = "baseline" if is_baseline(result.config) else "trial"
            ended = _ended_ms(last)
            started = (ended - int(last.get("time_total_s", 0) * 1000)
                       if ended is not None else None)
            run_id = tracking.open_trial_run(uri, exp_id, parent, trial_id,
                                             f"{kind}-{trial_id}", kind, started)
        tracking.log_params(uri, run_id, result.config)  # logs only the missing ones
        have = tracking.logged_steps(uri, run_id, "compute_s")
        for epoch, metrics in sorted(ray_adapter.reported_epochs(result).items()):
            if epoch not in have:
                print(f"  trial {trial_id}: epoch {epoch} logged from Tune's results",
                      flush=True)
                tracking.log_epoch(uri, run_id, metrics, step=epoch)
        _backfill_records(uri, run_id, trial_id, result)


def _backfill_records(uri: str, run_id: str, trial_id: str, result: Any) -> None:
    last = result.metrics or {}
    tags = tracking.run_tags(uri, run_id)
    placement = {tracking.NODE_TAG: last.get("node_ip"), tracking.GPU_TAG: last.get(GPU_IDS_KEY)}
    missing = {k: v for k, v in placement.items() if k not in tags and v is not None}
    if missing:
        tracking.set_tags(uri, run_id, missing)
    figure = ray_adapter.checkpoint_file(result, FIGURE_FILE)
    if figure is not None and not tracking.has_artifact(uri, run_id, FIGURE_FILE):
        print(f"  trial {trial_id}: {FIGURE_FILE} logged from its last checkpoint", flush=True)
        upload_figure(uri, run_id, figure.read_bytes())


def _set_status(uri: str, exp_id: str, parent: str, trial_id: str, status: str,
                reason: str | None = None, end_ms: int | None = None) -> None:
    runs = tracking.child_runs(uri, exp_id, parent)
    for run in runs:
        if run.data.tags.get(tracking.TRIAL_TAG) != trial_id:
            continue
        if run.data.tags.get(tracking.STATUS_TAG) == "failed" and status == "failed":
            return  # the trial's own, more precise reason stays
        tracking.set_trial_status(uri, run.info.run_id, status, reason, end_ms)


def summarise(space: SearchSpace, results: list[Any],
              baseline: tuple[float, ...]) -> tuple[str, dict[str, Any] | None]:
    """A Markdown table of trials in the order Tune created them, and the best one by the
    search metric; of tied trials the earliest wins, so a seeded search always names the
    same one (trial ids are random)."""
    s = space.search
    epochs = space.base_config().optim.epochs
    rows, best = [], None
    sign = 1 if s.mode == "max" else -1
    for result in results:
        if is_baseline(result.config):
            if not baseline:
                _, reason = _trial_status(result, epochs, s.metric)
                rows.insert(0, f"| baseline | failed | | | | {reason} |")
            continue
        metrics = result.metrics or {}
        status, reason = _trial_status(result, epochs, s.metric)
        value = metrics.get(s.metric)
        gain = _gains(result, s.metric, baseline).get(
            int(metrics.get("training_iteration", 0)))
        params = ", ".join(f"{_short(k)}={v:.3g}" if isinstance(v, float) else f"{_short(k)}={v}"
                           for k, v in sorted(result.config.items()))
        rows.append(f"| {metrics.get('trial_id', '?')} | {status} | "
                    f"{metrics.get('training_iteration', 0)} | "
                    f"{'' if value is None else f'{value:.4f}'} | "
                    f"{'' if gain is None else f'{gain:+.4f}'} | {reason or params} |")
        if value is not None and math.isfinite(value) and status != "failed" and (
                best is None or sign * value > sign * best["value"]):
            best = {"trial": metrics.get("trial_id"), "value": value, "gain": gain,
                    "config": dict(result.config)}
    header = [f"| trial | status | epochs | {s.metric} | gain | parameters |",
              "|---|---|---|---|---|---|"]
    if baseline:
        header.append(f"| baseline | completed | {len(baseline)} | {baseline[-1]:.4f} | "
                      "+0.0000 | DejaVu off |")
    return "\n".join(header + rows), best


def _short(key: str) -> str:
    return key.removeprefix("dejavu.")


def _log_parent_setup(uri: str, parent: str, space: SearchSpace, root: Path) -> None:
    s = space.search
    tracking.log_params(uri, parent, {
        "space_file": Path(space.path).name, "num_samples": s.num_samples, "metric": s.metric,
        "mode": s.mode, "seed": s.seed, "max_concurrent": s.max_concurrent,
        "grace_period": s.grace_period, "reduction_factor": s.reduction_factor,
        "cpus_per_trial": space.resources["cpu"], "gpus_per_trial": space.resources["gpu"],
        "epochs": space.base_config().optim.epochs})
    tracking.log_artifact_file(uri, parent, root / "space.yaml")


def _log_parent_results(uri: str, parent: str, space: SearchSpace, results: list[Any],
                        table: str, best: dict[str, Any] | None,
                        baseline: tuple[float, ...], wall: float) -> None:
    s = space.search
    tracking.log_artifact_text(uri, parent, "summary.md", table + "\n")
    metrics: dict[str, float] = {"wall_time_s": wall,
                                 "trials": float(sum(not is_baseline(r.config) for r in results))}
    if baseline:
        metrics[f"baseline_{s.metric}"] = baseline[-1]
    if best is not None:
        metrics[f"best_{s.metric}"] = best["value"]
        if best.get("gain") is not None:
            metrics["best_gain"] = best["gain"]
        tracking.log_json(uri, parent, "best_config.json",
                          {"trial": best["trial"], s.metric: best["value"],
                           "config": space.trial_config(best["config"]).to_dict()})
    tracking.log_epoch(uri, parent, metrics, step=0)
    _log_optuna_plots(uri, parent, space, results)
    tracking.set_trial_status(uri, parent, "completed")


def _log_optuna_plots(uri: str, parent: str, space: SearchSpace, results: list[Any]) -> None:
    """Optuna's optimisation-history and parameter-importance plots of this search's trials."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    from optuna.visualization import matplotlib as ovm

    s = space.search
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if s.mode == "max" else "minimize")
    dists = {p.name: p.distribution() for p in space.params}
    for result in sorted(results, key=lambda r: (r.metrics or {}).get("trial_id", "")):
        value = (result.metrics or {}).get(s.metric)
        if (result.error is not None or value is None or not math.isfinite(value)
                or is_baseline(result.config)):
            continue
        config = {k: v for k, v in result.config.items() if k in dists}
        study.add_trial(optuna.trial.create_trial(
            params=config, distributions={k: dists[k] for k in config}, value=value))
    plots = {"optimization_history.png": ovm.plot_optimization_history}
    if len(study.trials) >= 2:
        plots["param_importances.png"] = ovm.plot_param_importances
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # Optuna flags its matplotlib plots as experimental and warns about sparse regimes
        # of conditional parameters; neither is actionable for the user of a finished search.
        warnings.simplefilter("ignore")
        for name, plot in plots.items():
            try:
                axes = plot(study)
            except (ValueError, RuntimeError) as exc:  # e.g. too few trials for importances
                tracking.log_artifact_text(uri, parent, name.replace(".png", ".txt"),
                                           f"not drawn: {exc}\n")
                continue
            figure = axes.figure if hasattr(axes, "figure") else axes[0].figure
            figure.tight_layout()
            figure.savefig(Path(tmp) / name, dpi=100)
            tracking.log_artifact_file(uri, parent, Path(tmp) / name)
