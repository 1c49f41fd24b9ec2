"""Runs a validated search, step by step, each step's trials in MLflow:

1. **CRM stage** (``crm_stage``): stored weights for every CRM the trials can start from.
2. **Baseline tuning** (``baseline_tuning``): the settings the baseline shares with DejaVu
   (``shared: true``), tuned with DejaVu off on the search's own seed.
3. **The search**: the baseline on its replicate seeds (the noise floor) beside the
   DejaVu trials that Optuna samples and ASHA stops early, at the baseline's best
   shared settings.
4. **Confirmation** (``confirm``): the best configurations again, on the replicate
   seeds, paired with the baseline seed by seed.

Then every trial's MLflow run is settled (backfilled from Tune's results where its own
records were lost), and the parent run gets the verdict, the summary, the result file
and the Optuna plots. Each step's trials form a Tune experiment of their own under the
search's directory, so ``--resume`` restores an interrupted step and reads the
finished ones back.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dejavu_tune.config import ENABLED_KEY
from dejavu_tune.outcome import direction, sequential
from dejavu_tune.raytune import ray_adapter
from dejavu_tune.raytune.tune_settings import Run, Trials
from dejavu_tune.search import baseline_tuning, confirm, crm_stage, forest_plot, pareto, settle
from dejavu_tune.search.optuna_plots import HTML_FILE, log_optuna_plots
from dejavu_tune.search.record import SearchRecord
from dejavu_tune.search.run_plan import RunPlan, plan
from dejavu_tune.search.space import SearchSpace
from dejavu_tune.search.summary import (
    SUMMARY_FILE,
    Outcome,
    headline,
    report_markdown,
    result_payload,
)
from dejavu_tune.search.trial_context import TrialContext
from dejavu_tune.search.trial_records import (
    FAILURES,
    TrialRecord,
    failure_status,
    finished_status,
    from_result,
)
from dejavu_tune.search.warm_start import WarmStart
from dejavu_tune.tracking import mlflow_views
from dejavu_tune.tracking import runs as tracking
from dejavu_tune.tracking.delivery import DeliveryQueue
from dejavu_tune.tracking.run_names import trial_number
from dejavu_tune.train import crm_store, memory
from dejavu_tune.train.crm_store import CRMPlan, PretrainSpec
from dejavu_tune.train.figures import FIGURE_FILE
from dejavu_tune.train.memory import OUT_OF_MEMORY

__all__ = ["Driver", "run_search", "STUDY_FILE", "STUDY_DB", "RESULT_FILE"]

STUDY_FILE = "optuna_trials.json"
RESULT_FILE = "best_config.json"
# The Optuna study of the search step, live: `optuna-dashboard sqlite:///<root>/optuna.db`
STUDY_DB = "optuna.db"
# Ranked trials printed at the end; the summary in the parent run has them all.
TERMINAL_ROWS = 20
FINAL_GAIN = "final_gain"  # the runs table sorts by it: the outcome at equal budget
# How long the driver retries a trial's status update, and waits for them after the
# trials: the runs are settled again after that, so this only bounds the wait.
_DRIVER_RETRY_S = 600.0


@dataclass
class Driver:
    """One search's driver: where it records, and what every step shares."""

    space: SearchSpace
    root: Path
    record: SearchRecord
    ref: tracking.SearchRef
    trainable: Callable[..., None]  # the function every trial runs (``TRAINABLE``)
    max_failures: int
    resume: bool
    outbox: DeliveryQueue
    plan: CRMPlan | None = None
    results: list[tuple[str, Any]] = field(default_factory=list)  # (step, Tune result)

    @property
    def uri(self) -> str:
        return self.ref.uri

    @property
    def exp_id(self) -> str:
        return self.ref.experiment_id

    @property
    def parent(self) -> str:
        return self.ref.parent_run_id

    @property
    def metric(self) -> str:
        return self.space.search.metric

    @property
    def epochs(self) -> int:
        return self.space.base_config().optim.epochs

    @property
    def seed(self) -> int:
        return self.space.base_config().seed

    def records(self, step: str | None = None) -> list[TrialRecord]:
        return [from_result(r, s, self.metric, self.epochs, self.seed)
                for s, r in self.results if step is None or s == step]

    def context(self, space: SearchSpace, step: str) -> TrialContext:
        cpu, gpu = space.resources.per_rank
        return TrialContext(fixed=space.fixed, ref=self.ref, cpus=cpu, crm_plan=self.plan,
                            phase=step, trainer=space.search.trainer,
                            ranks=space.resources.ranks, rank_gpu=gpu,
                            ranks_storage=str(self.root / step / "ranks"))

    def callbacks(self) -> list[Any]:
        # Tune pickles its callbacks with the experiment and restores them on --resume: they
        # hold only plain values and the (process-wide, named) queue, never the driver.
        ref, outbox = self.ref, self.outbox
        epochs, metric = self.epochs, self.metric

        def on_complete(trial_id: str, last: dict[str, Any]) -> None:
            status, reason = finished_status(last, epochs, metric)
            settle.set_status(ref, trial_id, status, reason, settle.ended_ms(last))
            value = last.get(metric, float("nan"))
            print(f"  trial {trial_id}: {status} after {last.get('training_iteration', 0)} "
                  f"epoch(s), {metric}={value:.4f}", flush=True)

        def on_error(trial_id: str, reason: str) -> None:
            status = failure_status(reason)
            settle.set_status(ref, trial_id, status, reason, int(time.time() * 1000))
            print(f"  trial {trial_id}: {status.replace('_', ' ')}: {reason}", flush=True)

        # Tune's event loop runs these: through the queue, a tracking server that is away
        # never stalls the search (trials wait for the loop to take their reports).
        return [ray_adapter.make_status_callback(
            lambda *a: outbox.put(on_complete, *a), lambda *a: outbox.put(on_error, *a))]

    def trials(self, space: SearchSpace, **sampling: Any) -> Trials:
        """Trials sampled as ``sampling`` says, on the search's metric, budget and
        concurrency."""
        s = space.search
        return Trials(metric=s.metric, mode=s.mode, max_epochs=self.epochs,
                      max_concurrent=s.max_concurrent, **sampling)

    def tune(self, step: str, space: SearchSpace, trials: Trials) -> list[Any]:
        """Run (or, on --resume, restore) the Tune experiment of ``step``."""
        path = self.root / step
        constants = {"context": self.context(space, step)}
        if self.resume and ray_adapter.can_restore(str(path)):
            tuner = ray_adapter.restore_tuner(str(path), self.trainable, constants,
                                              space.resources, trials.total)
        else:
            tuner = ray_adapter.make_tuner(
                self.trainable, constants, space.resources, trials,
                Run(step, str(self.root), self.max_failures, tuple(self.callbacks())))
        grid = tuner.fit()
        results = [grid[i] for i in range(len(grid))]
        self.results += [(step, r) for r in results]
        return results


def run_search(space: SearchSpace, root: Path, record: SearchRecord,
               trainable: Callable[..., None], *, address: str | None = None,
               max_failures: int = 0, resume: bool = False,
               started: float | None = None, warm: WarmStart | None = None) -> int:
    """Run the search with ``trainable`` as every trial's function; any failure of the
    driver ends its parent run as failed, with a one-line reason, and exits 1 (an
    interrupted search can be continued with --resume). Ray is joined, and a node that can
    hold a trial found, before anything is written: a wrong address or too large a trial
    is a ``DejavuError`` (exit 2) that leaves no directory and no run behind."""
    tracking.bound_http_waits()
    ray_adapter.start_ray(address)
    if address:
        # a node for a CRM pre-training, or for one rank of a data-parallel trial
        ray_adapter.wait_for_resources(*space.resources.per_rank)
    try:
        return _run(space, root, record, trainable, address, max_failures, resume,
                    time.time() if started is None else started, warm)
    except KeyboardInterrupt:
        reason = "interrupted (continue with --resume)"
    except Exception as exc:  # noqa: BLE001 - reported in one line, recorded in MLflow
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    if record.parent_run_id:
        tracking.set_trial_status(record.tracking_uri, record.parent_run_id, "failed", reason)
    print(f"error: the search stopped: {reason}", file=sys.stderr)
    return 1


def _run(space: SearchSpace, root: Path, record: SearchRecord, trainable: Callable[..., None],
         address: str | None, max_failures: int, resume: bool, started: float,
         warm: WarmStart | None) -> int:
    root.mkdir(parents=True, exist_ok=True)
    if not resume:
        shutil.copyfile(space.path, root / "space.yaml")
    uri = record.tracking_uri or tracking.default_tracking_uri(root.parent)
    exp_id, parent = tracking.open_parent_run(uri, record.experiment, record.name,
                                              record.parent_run_id)
    record.tracking_uri, record.experiment_id, record.parent_run_id = uri, exp_id, parent
    record.save(root)
    if not resume:
        _log_parent_setup(uri, parent, space, root, warm)
    if warm is not None:
        print(warm.describe(), flush=True)
    view = _share_view(uri, exp_id, parent, space)
    print(f"watch it in MLflow: {mlflow_views.runs_url(uri, exp_id, view)}\n"
          f"and its Optuna study: optuna-dashboard sqlite:///{(root / STUDY_DB).resolve()}",
          flush=True)
    drv = Driver(space, root, record, tracking.SearchRef(uri, exp_id, parent), trainable,
                  max_failures, resume,
                  DeliveryQueue.named("driver-status", retry_for_s=_DRIVER_RETRY_S))
    s = space.search
    grid = s.algorithm == "grid"
    try:
        crm_lines = _crm_stage(drv, record.crm_store or str(root.parent / "crm_store"))
    except CRMShortfall as exc:
        return _end_without_verdict(drv, "CRM short of reliance", str(exc))
    runs = plan(space)
    tuning, reference = None, None
    dv_space = space  # without a baseline, shared params are searched like any other
    if runs.paired:  # shared params: tuned for the baseline, else its fixed values
        shared, tuning, reference = _tune_baseline(drv, runs) if runs.tuning else ({}, None,
                                                                                   None)
        dv_space = space.with_shared(shared)
    replicate_seeds = list(runs.replicate_seeds)
    # the replicates score the held-out split too: the confirmation's first look pairs
    # with them (no selection reads it)
    baselines = confirm.baseline_points(replicate_seeds)
    if runs.search_baseline:
        baselines.insert(0, {ENABLED_KEY: False})  # on the search's own seed: per-epoch gains
    print(f"search: {len(baselines)} baseline run(s) (DejaVu off) and {s.num_samples} "
          f"{s.algorithm} trials, {s.max_concurrent} at once", flush=True)
    drv.tune("search", dv_space, drv.trials(
        dv_space, num_samples=s.num_samples, define_by_run=dv_space.define_by_run,
        seed=s.seed, sampler="random" if s.algorithm == "random" else "tpe",
        grace_period=s.grace_period, reduction_factor=s.reduction_factor,
        stop_metric=s.stop_metric, stop_mode=s.stop_mode,
        points=dv_space.grid_points() if grid else (warm.points if warm else None),
        priors=warm.optuna_trials(dv_space.params) if warm else None,
        early_stopping=not grid, baselines=baselines,
        study_storage=f"sqlite:///{(root / STUDY_DB).resolve()}", objectives=s.objectives))
    failed = _nothing_trained(drv)
    if failed:
        return failed
    if reference is None:
        reference = next((r for r in drv.records("search") if r.is_baseline
                          and r.seed == drv.seed and r.status == "completed"), None)
    confirmation = _confirm(drv, dv_space, replicate_seeds)
    runs = settle.settle(drv, _DRIVER_RETRY_S)
    _record_study(drv)
    outcome = Outcome(metric=s.metric, mode=s.mode, epochs=drv.epochs, records=drv.records(),
                      replicate_seeds=replicate_seeds, confirmation=confirmation,
                      tuning=tuning, crm=crm_lines, reference=reference,
                      rung=0 if grid else min(s.grace_period, drv.epochs),
                      objectives=s.objectives, warm=warm.describe() if warm else None)
    _log_gains(drv, outcome, runs)
    _log_parent_results(drv, dv_space, outcome, wall=time.time() - started)
    print("\n" + report_markdown(outcome, top=TERMINAL_ROWS))
    print("\n".join(headline(outcome)))
    command = mlflow_views.ui_command(uri)
    print(f"\nresults: {root}\nopen them in MLflow"
          + (f" (start its UI first: {command})" if command else "") + ":\n"
          f"  the trials, ranked:  {mlflow_views.runs_url(uri, exp_id, view)}\n"
          f"  the outcome:         {mlflow_views.run_url(uri, exp_id, parent)}")
    record.finished = True
    record.save(root)
    return 0


def _nothing_trained(drv: Driver) -> int:
    """A search whose DejaVu trials all failed has nothing to compare: it ends with their
    error (the most common one first), exit 1, instead of a verdict of "no gain"."""
    trials = [r for r in drv.records("search") if not r.is_baseline]
    if not trials or any(r.status not in FAILURES for r in trials):
        return 0
    reasons = collections.Counter(r.reason or "no reason recorded" for r in trials)
    reason, count = reasons.most_common(1)[0]
    text = (f"every DejaVu trial failed ({len(trials)} of {len(trials)}); "
            + (f"all with: {reason}" if count == len(trials) else
               f"{count} with: {reason}; {len(reasons) - 1} other reason(s) in the trials' runs"))
    short = sum(r.status == OUT_OF_MEMORY for r in trials)
    if short:
        text += f"; {short} ran out of memory (status {OUT_OF_MEMORY}): {memory.ADVICE}"
    settle.settle(drv, _DRIVER_RETRY_S)
    return _end_without_verdict(drv, "nothing trained", text)


class CRMShortfall(Exception):
    """A stored CRM that does not rely on the prediction: no DejaVu trial starts."""


def _end_without_verdict(drv: Driver, verdict: str, text: str) -> int:
    """The search ends with ``text`` in its parent run and on stderr, exit 1."""
    note = f"## {verdict.capitalize()}: {text}\n\nFix the cause and start a new search.\n"
    tracking.log_artifact_text(drv.uri, drv.parent, SUMMARY_FILE, note)
    mlflow_views.set_run_note(drv.uri, drv.parent, note)
    tracking.set_tags(drv.uri, drv.parent, {"dejavu.verdict": verdict})
    tracking.set_trial_status(drv.uri, drv.parent, "failed", text[:5000])
    drv.record.finished = True  # resuming would only repeat the same failures
    drv.record.save(drv.root)
    print(f"error: {verdict}: {text}", file=sys.stderr)
    return 1


# -- the steps ---------------------------------------------------------------------------
def _crm_stage(drv: Driver, store: str) -> list[str]:
    """Stored CRM weights for every architecture the trials sample; one line per CRM."""
    space = drv.space
    plan = crm_stage.plan_for(space, store, device=space.base_config().device)
    todo = crm_stage.specs(space, plan)
    if not todo:
        return []
    drv.plan = plan
    drv.record.crm_store = plan.store
    drv.record.save(drv.root)
    lines: list[str] = []

    def record(spec: PretrainSpec, trained_now: bool) -> None:
        lines.append(_record_pretraining(drv, spec, trained_now))

    crm_stage.prepare(plan, todo, ray_adapter.run_parallel, record,
                      space.resources.one_rank())
    short = [line for spec in todo if (line := crm_store.shortfall(
        spec.describe(), json.loads((plan.directory(spec) / crm_store.METRICS_FILE)
                                    .read_text()), plan.settings.min_reliance))]
    if short:
        raise CRMShortfall(short[0] + (f" ({len(short) - 1} other CRM(s) short too)"
                                       if len(short) > 1 else ""))
    return lines


def _record_pretraining(drv: Driver, spec: PretrainSpec, trained_now: bool) -> str:
    """The pre-training as a run of the search: its spec, metrics and figure."""
    directory = drv.plan.directory(spec)
    metrics = json.loads((directory / "metrics.json").read_text())
    # a run of the time the pre-training took; one found in the store took none
    spent_ms = int(metrics.get("train_s", 0) * 1000) if trained_now else 0
    run_id, _ = drv.ref.open_trial(f"crm-{spec.key}", f"crm pretrain {spec.describe()}",
                                   crm_stage.CRM_KIND, int(time.time() * 1000) - spent_ms)
    tracking.log_params(drv.uri, run_id, {
        "crm": json.dumps(spec.crm, sort_keys=True), "redactions": len(spec.redactions),
        "redaction_kinds": ",".join(spec.redaction_kinds), "store_key": spec.key,
        **{f"pretrain.{k}": v for k, v in spec.settings.items()}})
    tracking.set_tags(drv.uri, run_id, {tracking.PHASE_TAG: "crm",
                                        "dejavu.crm_stored": str(directory),
                                        "dejavu.crm_reused": str(not trained_now).lower()})
    if 0 not in tracking.logged_steps(drv.uri, run_id, "reliance"):
        tracking.log_epoch(drv.uri, run_id, metrics, step=0)
    if 0 not in tracking.figure_steps(drv.uri, run_id):  # a resumed search found it
        tracking.log_figure(drv.uri, run_id, (directory / FIGURE_FILE).read_bytes(), 0)
    tracking.set_trial_status(drv.uri, run_id, "completed")
    return (f"{spec.describe()} ({'trained now' if trained_now else 'from the store'}, "
            f"{int(metrics.get('iterations', spec.settings['iterations']))} iterations, "
            f"reliance {metrics['reliance']:.2f})")


def _tune_baseline(drv: Driver, runs: RunPlan) -> tuple[dict[str, Any], dict[str, Any],
                                                         TrialRecord]:
    """(best shared values, how they were tuned, the best tuning trial)."""
    space, s = drv.space, drv.space.search
    tspace = space.shared_only()
    points = baseline_tuning.sobol_points(tspace.params, runs.tuning, s.seed)
    print(f"baseline tuning: {len(points)} baseline trials over "
          f"{', '.join(p.name for p in tspace.params)}", flush=True)
    drv.tune("tuning", tspace, drv.trials(tspace, num_samples=len(points), sampler="fixed",
                                          points=points, early_stopping=False))
    records = drv.records("tuning")
    chosen = baseline_tuning.best(records, s.mode)
    if chosen is None:
        raise RuntimeError("every baseline-tuning trial failed: " + "; ".join(
            f"{r.trial_id}: {r.reason}" for r in records))
    text = baseline_tuning.describe(records, chosen, s.metric,
                                    len(points) / runs.full_budget_runs)
    print(f"baseline tuning: {text}", flush=True)
    values = {p.name: chosen.config[p.name] for p in tspace.params}
    return values, {"params": values, "text": text, "trials": len(points),
                    "best_config": chosen.config}, chosen


def _confirm(drv: Driver, space: SearchSpace,
             seeds: list[int]) -> confirm.Confirmation | None:
    """The sequential paired confirmation (``search.confirm``); each look is a Tune
    experiment of its own (``confirm``, ``confirm-2``, ...), so a resumed driver reads the
    finished looks back and goes on where it was."""
    s = space.search
    records = drv.records("search")
    baseline = confirm.baseline_finals(records, seeds)
    chosen = confirm.candidates(records, s.mode, s.confirm_top, s.objectives)
    design = confirm.design_for(s, len(chosen))
    if design is None or not seeds:
        return None
    if len(baseline) < len(seeds):
        print(f"warning: the baseline finished on {len(baseline)} of its {len(seeds)} seeds; "
              "confirming against those", file=sys.stderr)
    if not baseline:
        return None
    sign = direction.sign(s.mode)
    by_id = {r.trial_id: r for r in chosen}
    values: dict[str, dict[int, float]] = {}

    def measure(k: int, names: list[str], new: list[int]) -> dict[str, dict[int, float]]:
        step = "confirm" if k == 0 else f"confirm-{k + 1}"
        print(f"confirmation, look {k + 1} of {len(design.looks)}: {len(names)} "
              f"configuration(s) on seed(s) {', '.join(map(str, new))}", flush=True)
        configs = confirm.confirm_configs([by_id[n] for n in names], new)
        # the first look pairs with the search's baseline replicates; later ones train
        # the baseline on their new seeds beside the candidates
        drv.tune(step, space, drv.trials(
            space, num_samples=len(configs), sampler="fixed", points=configs,
            early_stopping=False, baselines=confirm.baseline_points(new) if k else None))
        done = drv.records(step)
        if k:
            baseline.update(confirm.baseline_finals(done, new, phase=step))
        out: dict[str, dict[int, float]] = {}
        for name in names:
            key = confirm.config_key(by_id[name].config)
            got = {r.seed: r.heldout for r in done if not r.is_baseline
                   and r.heldout is not None and confirm.config_key(r.config) == key}
            values.setdefault(name, {}).update(got)
            out[name] = {seed: sign * (v - baseline[seed]) for seed, v in got.items()
                         if seed in baseline}
        return out

    result = sequential.confirm(design, list(by_id), confirm.seeds_for(seeds[0], design),
                                measure)
    confirmed = confirm.evaluate(chosen, values, baseline, s.metric, s.mode, result)
    best = result.winner()
    return confirm.Confirmation(result, confirmed,
                        next((c for c in confirmed if c.search_trial == best), None),
                        dict(baseline))


def _record_study(drv: Driver) -> None:
    """What Optuna was told about every trial, beside the search and in the parent run."""
    if not (drv.root / "search").is_dir():
        return
    trials = ray_adapter.optuna_trials(str(drv.root / "search"))
    (drv.root / STUDY_FILE).write_text(json.dumps(trials, indent=2))
    tracking.log_json(drv.uri, drv.parent, STUDY_FILE, trials)
    states = sorted({t["state"] for t in trials})
    print("optuna study: " + ", ".join(
        f"{sum(t['state'] == st for t in trials)} {st.lower()}" for st in states), flush=True)


def _log_gains(drv: Driver, outcome: Outcome, runs: dict[str, str]) -> None:
    """Each run's gain over the baseline on the same seed, per epoch, as its ``gain``
    metric (a baseline's is 0; the search's trials: over ``Outcome.gain_reference``,
    which carries no selection), and ``final_gain`` for the search's runs that trained the
    full budget only: sorting by it ranks at equal budget, trials ASHA stopped come last,
    and a confirmation replicate (one seed of a paired comparison) never tops the table. The
    baselines train beside the trials, so gains are known only now; steps a run already
    has are skipped, so a resumed driver logs nothing twice."""
    by_seed = {r.seed: r.curve for r in outcome.records if r.is_baseline
               and r.status == "completed"
               and (r.phase == "search" or r.phase.startswith("confirm"))}
    reference = outcome.gain_reference()
    if reference is not None:
        by_seed.setdefault(drv.seed, reference[1])
    for record in outcome.records:
        run_id = runs.get(record.trial_id)
        base = by_seed.get(record.seed)
        if run_id is None or base is None or record.phase == "tuning":
            continue
        gains = {e: v - base[e - 1] for e, v in enumerate(record.curve, start=1)
                 if e <= len(base)}
        tracking.log_series(drv.uri, run_id, "gain", gains)
        if record.final is not None and record.phase == "search" and drv.epochs in gains:
            tracking.log_series(drv.uri, run_id, FINAL_GAIN, {drv.epochs: gains[drv.epochs]})


# -- the parent run ---------------------------------------------------------------------
def _log_parent_setup(uri: str, parent: str, space: SearchSpace, root: Path,
                      warm: WarmStart | None) -> None:
    """Every search setting (each field of ``SearchSettings``, so a new one is logged
    without anyone listing it), the resources per trial and the budget."""
    settings = {f.name: getattr(space.search, f.name) for f in dataclasses.fields(space.search)}
    settings["objectives"] = ", ".join(f"{m} ({d})" for m, d in space.search.objectives)
    r = space.resources
    tracking.log_params(uri, parent, {
        "space_file": Path(space.path).name,
        **{k: v for k, v in settings.items() if v is not None and v != ""},
        "cpus_per_trial": r.cpu, "gpus_per_trial": r.gpu, "workers_per_trial": r.ranks,
        "epochs": space.base_config().optim.epochs,
        **({"warm_start": warm.source} if warm else {})})
    if warm is not None:
        tracking.set_tags(uri, parent, {"dejavu.warm_start": warm.describe()[:5000]})
    tracking.log_artifact_file(uri, parent, root / "space.yaml")


def _share_view(uri: str, exp_id: str, parent: str, space: SearchSpace) -> str:
    """The runs-table view this search prints: its trials ranked at equal budget, the
    metrics that say how each did, the parameters the space samples."""
    s = space.search
    metrics = [FINAL_GAIN, s.metric, "gain", *(m for m, _ in s.costs), "crm_reliance",
               "regen_grad_ratio"]
    return mlflow_views.share_runs_view(
        uri, exp_id, parent, FINAL_GAIN, ascending=s.mode == "min", metrics=metrics,
        params=[p.name for p in space.params],
        tags=[tracking.STATUS_TAG, tracking.PHASE_TAG, tracking.INERT_TAG])


def _parent_note(drv: Driver, outcome: Outcome, plots: list[str]) -> str:
    """The parent run's description: the summary (verdict and its forest plot first),
    then the plots."""
    def image(name: str) -> str:
        return mlflow_views.artifact_image(drv.parent, name, name.removesuffix(".png"))

    forest = image(forest_plot.PLOT_FILE) if forest_plot.PLOT_FILE in plots else None

    front = (f"{image(pareto.PLOT_FILE)}\n\nInteractive, each trial's configuration on "
             f"hover: the run's `{pareto.PLOT_HTML}`." if pareto.PLOT_FILE in plots else None)
    images = [image(name) for name in plots
              if name not in (pareto.PLOT_FILE, forest_plot.PLOT_FILE)]
    plots_md = (["", "## Optuna analysis", "", *images, "",
                 f"Interactive: the run's `{HTML_FILE}`."] if images else [])
    return (report_markdown(outcome, front_image=front, forest_image=forest)
            + "\n".join(plots_md) + "\n")


def _log_parent_results(drv: Driver, space: SearchSpace, outcome: Outcome,
                        wall: float) -> None:
    uri, parent, m = drv.uri, drv.parent, outcome.metric
    forest = _log_figure(drv, forest_plot.PLOT_FILE, forest_plot.plot(
        outcome.confirmation, m, outcome.noise)) if outcome.confirmed else []
    # summary.md sits beside the plot among the parent run's artifacts
    text = report_markdown(outcome, forest_image=f"![forest plot]({forest_plot.PLOT_FILE})"
                           if forest else None)
    tracking.log_artifact_text(uri, parent, SUMMARY_FILE, text)
    payload = result_payload(outcome, space.trial_config)
    (drv.root / RESULT_FILE).write_text(json.dumps(payload, indent=2, sort_keys=True))
    tracking.log_json(uri, parent, RESULT_FILE, payload)
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
    tracking.log_epoch(uri, parent, metrics, step=0)
    tracking.set_tags(uri, parent, {"dejavu.verdict": outcome.verdict})
    plots = forest + _log_front(drv, outcome) + log_optuna_plots(uri, parent, space, outcome,
                                                                 _study_order(drv))
    mlflow_views.set_run_note(uri, parent, _parent_note(drv, outcome, plots))
    mlflow_views.describe_experiment(uri, drv.exp_id, (
        f"[{drv.record.name}]({mlflow_views.run_url(uri, drv.exp_id, parent)}): "
        f"{outcome.verdict}"))
    tracking.set_trial_status(uri, parent, "completed")


def _log_front(drv: Driver, outcome: Outcome) -> list[str]:
    """The Pareto plot of a search with several objectives (PNG and interactive HTML)."""
    if len(outcome.objectives) < 2:
        return []
    candidates = pareto.points(outcome.records, outcome.objectives)
    members = outcome.front()
    title = (f"Pareto front: {len(members)} of {len(candidates)} full-budget DejaVu trials\n"
             f"({outcome.epochs} epochs, one seed each; the confirmation is in the summary)")
    _log_figure(drv, pareto.PLOT_FILE, pareto.plot_png(
        candidates, members, outcome.objectives, outcome.baseline_mean, title))
    tracking.log_artifact_text(drv.uri, drv.parent, pareto.PLOT_HTML, pareto.plot_html(
        candidates, members, outcome.objectives, outcome.baseline_mean, title,
        lambda p: trial_number(p.record.trial_id, p.record.trial_dir)))
    return [pareto.PLOT_FILE]


def _log_figure(drv: Driver, name: str, figure: Any) -> list[str]:
    """A matplotlib figure as the parent run's PNG artifact ``name``; returns [name]."""
    import matplotlib.pyplot as plt

    with tempfile.TemporaryDirectory() as tmp:
        figure.savefig(Path(tmp) / name, dpi=100)
        plt.close(figure)
        tracking.log_artifact_file(drv.uri, drv.parent, Path(tmp) / name)
    return [name]


def _study_order(drv: Driver) -> Callable[[str | None], int | None]:
    """Optuna's trial number of a Tune trial: the order the search sampled them in."""
    path = drv.root / STUDY_FILE
    numbers = ({t["trial_id"]: t["number"] for t in json.loads(path.read_text())}
               if path.is_file() else {})
    return numbers.get
