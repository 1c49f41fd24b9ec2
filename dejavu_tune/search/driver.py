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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dejavu_tune.config import ENABLED_KEY
from dejavu_tune.outcome import direction, sequential
from dejavu_tune.raytune import ray_adapter
from dejavu_tune.raytune.tune_baseline import read_stops
from dejavu_tune.search import baseline_tuning, confirm, crm_stage, publish, seed_prior, settle
from dejavu_tune.search.record import SearchRecord
from dejavu_tune.search.run_plan import RunPlan, plan
from dejavu_tune.search.space import SearchSpace
from dejavu_tune.search.step_runner import StepRunner
from dejavu_tune.search.summary import Outcome, headline, report_markdown
from dejavu_tune.search.trial_records import FAILURES, TrialRecord
from dejavu_tune.search.warm_start import WarmStart
from dejavu_tune.tracking import mlflow_views
from dejavu_tune.tracking import runs as tracking
from dejavu_tune.tracking.delivery import DeliveryQueue
from dejavu_tune.tracking.run_log import RunLog
from dejavu_tune.tracking.run_names import trial_name
from dejavu_tune.train import crm_store, memory
from dejavu_tune.train.crm_store import PretrainSpec
from dejavu_tune.train.memory import OUT_OF_MEMORY

__all__ = ["run_search", "STUDY_JOURNAL"]

# The Optuna study of the search step, live: `optuna-dashboard <root>/optuna.log`. A
# journal file, not SQLite: a trial's suggestions took 38 ms instead of 63 ms in the
# driver that every trial's report waits on (bench peer's search, docs/benchmarks.md).
STUDY_JOURNAL = "optuna.log"
# Ranked trials printed at the end; the summary in the parent run has them all.
TERMINAL_ROWS = 20
# How long the driver retries a trial's status update, and waits for them after the
# trials: the runs are settled again after that, so this only bounds the wait.
_DRIVER_RETRY_S = 600.0



def run_search(space: SearchSpace, root: Path, record: SearchRecord,
               trainable: Callable[..., None], *, address: str | None = None,
               max_failures: int = 0, resume: bool = False,
               started: float | None = None, warm: WarmStart | None = None,
               verbose: bool = False) -> int:
    """Run the search with ``trainable`` as every trial's function; any failure of the
    driver ends its parent run as failed, with a one-line reason, and exits 1 (an
    interrupted search can be continued with --resume). Ray is joined, and a node that can
    hold a trial found, before anything is written: a wrong address or too large a trial
    is a ``DejavuError`` (exit 2) that leaves no directory and no run behind."""
    tracking.bound_http_waits()
    if not verbose:
        tracking.quiet_store_setup()
    ray_adapter.start_ray(address, verbose=verbose)
    if address:
        # a node for a CRM pre-training, or for one rank of a data-parallel trial
        ray_adapter.wait_for_resources(*space.resources.per_rank)
    try:
        return _run(space, root, record, trainable, max_failures, resume,
                    time.time() if started is None else started, warm, verbose)
    except KeyboardInterrupt:
        reason = "interrupted (continue with --resume)"
    except Exception as exc:  # noqa: BLE001 - reported in one line, recorded in MLflow
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
    if record.parent_run_id:
        RunLog(record.tracking_uri, record.parent_run_id).finish("failed", reason)
    print(f"error: the search stopped: {reason}", file=sys.stderr)
    return 1


def _run(space: SearchSpace, root: Path, record: SearchRecord, trainable: Callable[..., None],
         max_failures: int, resume: bool, started: float, warm: WarmStart | None,
         verbose: bool) -> int:
    root.mkdir(parents=True, exist_ok=True)
    if not resume:
        shutil.copyfile(space.path, root / "space.yaml")
    uri = record.tracking_uri or tracking.default_tracking_uri(root.parent)
    exp_id, parent = tracking.open_parent_run(uri, record.experiment, record.name,
                                              record.parent_run_id)
    record.tracking_uri, record.experiment_id, record.parent_run_id = uri, exp_id, parent
    record.save(root)
    if not resume:
        publish.log_parent_setup(RunLog(uri, parent), space, root, warm)
    if warm is not None:
        print(warm.describe(), flush=True)
    view = publish.share_view(uri, exp_id, parent, space)
    print(f"watch it in MLflow: {mlflow_views.runs_url(uri, exp_id, view)}\n"
          f"and its Optuna study: optuna-dashboard {(root / STUDY_JOURNAL).resolve()}",
          flush=True)
    drv = StepRunner(space, root, record, tracking.SearchRef(uri, exp_id, parent), trainable,
                     max_failures, resume,
                     DeliveryQueue.named("driver-status", retry_for_s=_DRIVER_RETRY_S),
                     started=started, verbose=verbose)
    s = space.search
    grid = s.algorithm == "grid"
    try:
        crm_lines = _crm_stage(drv, record.crm_store or str(root.parent / "crm_store"))
    except CRMShortfall as exc:
        return publish.end_without_verdict(drv, "CRM short of reliance", str(exc))
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
        seed=s.seed, sampler="tpe" if grid else s.algorithm,
        grace_period=s.grace_period, reduction_factor=s.reduction_factor,
        brackets=s.brackets, startup_trials=s.startup_trials, constraints=s.limits,
        stop_metric=s.stop_metric, stop_mode=s.stop_mode,
        points=dv_space.grid_points() if grid else _first_points(dv_space, warm),
        priors=warm.optuna_trials(dv_space.params) if warm else None,
        early_stopping=not grid, baselines=baselines, deadline=drv.deadline,
        study_storage=str((root / STUDY_JOURNAL).resolve()), objectives=s.objectives))
    cuts = [c for c in (drv.cut("tuning", runs.tuning) if runs.tuning else None,
                        drv.cut("search", s.num_samples)) if c]
    for cut in cuts:
        print(f"time budget: {cut}; the confirmation runs on what completed", flush=True)
    failed = _nothing_trained(drv)
    if failed:
        return failed
    if reference is None:
        reference = next((r for r in drv.records("search") if r.is_baseline
                          and r.seed == drv.seed and r.status == "completed"), None)
    confirmation = _confirm(drv, dv_space, replicate_seeds)
    stops = {trial: decision.text() for step in ("tuning", "search")
             for trial, decision in read_stops(drv.root / step).items()}
    runs = settle.settle(drv, _DRIVER_RETRY_S, stops)
    publish.record_study(drv)
    outcome = Outcome(metric=s.metric, mode=s.mode, epochs=drv.epochs, records=drv.records(),
                      replicate_seeds=replicate_seeds, confirmation=confirmation,
                      tuning=tuning, crm=crm_lines, reference=reference,
                      rung=0 if grid else min(s.grace_period, drv.epochs),
                      objectives=s.objectives, warm=warm.describe() if warm else None,
                      cuts=cuts, stops=stops, stop_metric=s.stop_metric,
                      stop_mode=s.stop_mode, min_effect=s.min_effect, limits=s.limits)
    outcome = dataclasses.replace(outcome, model=publish.log_winner(drv, dv_space, outcome,
                                                                     runs))
    publish.log_gains(drv, outcome, runs)
    publish.log_parent_results(drv, dv_space, outcome, wall=time.time() - started)
    print("\n" + report_markdown(outcome, top=TERMINAL_ROWS))
    print("\n".join(headline(outcome)))
    command = mlflow_views.ui_command(uri)
    # the command on a line of its own: it copies without the punctuation around it
    print(f"\nresults: {root}\nopen them in MLflow"
          + (f"; start its UI first:\n  {command}\nthen open" if command else "") + "\n"
          f"  the trials, ranked:  {mlflow_views.runs_url(uri, exp_id, view)}\n"
          f"  the outcome:         {mlflow_views.run_url(uri, exp_id, parent)}")
    record.finished = True
    record.save(root)
    return 0


def _first_points(space: SearchSpace, warm: Any) -> list[dict[str, Any]] | None:
    """What the sampler runs before it samples: the seed's settings (``search.prior:
    seed``), then a warm start's points."""
    first = seed_prior.points(space) if space.search.prior == "seed" else []
    first += warm.points if warm else []
    return first or None


def _nothing_trained(drv: StepRunner) -> int:
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
    return publish.end_without_verdict(drv, "nothing trained", text)


class CRMShortfall(Exception):
    """A stored CRM that does not rely on the prediction: no DejaVu trial starts."""


# -- the steps ---------------------------------------------------------------------------
def _crm_stage(drv: StepRunner, store: str) -> list[str]:
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
        lines.append(publish.record_pretraining(drv, spec, trained_now))

    crm_stage.prepare(plan, todo, ray_adapter.run_parallel, record,
                      space.resources.one_rank())
    short = [line for spec in todo if (line := crm_store.shortfall(
        spec.describe(), json.loads((plan.directory(spec) / crm_store.METRICS_FILE)
                                    .read_text()), plan.settings.min_reliance))]
    if short:
        raise CRMShortfall(short[0] + (f" ({len(short) - 1} other CRM(s) short too)"
                                       if len(short) > 1 else ""))
    return lines


def _tune_baseline(drv: StepRunner, runs: RunPlan) -> tuple[dict[str, Any], dict[str, Any],
                                                         TrialRecord]:
    """(best shared values, how they were tuned, the best tuning trial)."""
    space, s = drv.space, drv.space.search
    tspace = space.shared_only()
    points = baseline_tuning.sobol_points(tspace.params, runs.tuning, s.seed)
    print(f"baseline tuning: {len(points)} baseline trials over "
          f"{', '.join(p.name for p in tspace.params)}", flush=True)
    drv.tune("tuning", tspace, drv.trials(tspace, num_samples=len(points), sampler="fixed",
                                          points=points, early_stopping=False,
                                          deadline=drv.deadline))
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


def _confirm(drv: StepRunner, space: SearchSpace,
             seeds: list[int]) -> confirm.Confirmation | None:
    """The sequential paired confirmation (``search.confirm``); each look is a Tune
    experiment of its own (``confirm``, ``confirm-2``, ...), so a resumed driver reads the
    finished looks back and goes on where it was."""
    s = space.search
    records = drv.records("search")
    baseline = confirm.baseline_finals(records, seeds)
    chosen = confirm.candidates(records, s.mode, s.confirm_top, s.objectives, s.limits)
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
        of = {confirm.config_key(by_id[n].config): trial_name(n, by_id[n].trial_dir)
              for n in names}
        print(f"confirmation, look {k + 1} of {len(design.looks)}: {len(names)} "
              f"configuration(s) ({', '.join(of.values())}) on seed(s) "
              f"{', '.join(map(str, new))}", flush=True)
        configs = confirm.confirm_configs([by_id[n] for n in names], new)
        # the first look pairs with the search's baseline replicates; later ones train
        # the baseline on their new seeds beside the candidates
        drv.tune(step, space, drv.trials(
            space, num_samples=len(configs), sampler="fixed", points=configs,
            early_stopping=False, baselines=confirm.baseline_points(new) if k else None),
            confirms=of)
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

