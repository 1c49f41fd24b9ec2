"""Settling a search's MLflow runs, while its trials run and after them, at a cost per
trial that does not grow with the search.

While Tune runs, each ended trial's status goes to its run, found by its trial tag (one
run, never a listing of the search's runs). After the trials, one paged listing gives
every run with its params and tags; from it each trial's run gets what Tune has and
the run lacks (``backfill``: the trial's own queue died with it, or gave up while the
server was away), then its final status; a run still RUNNING whose trial never
reported failed.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

from dejavu_tune.raytune import ray_adapter
from dejavu_tune.raytune.trial_results import TrialResult
from dejavu_tune.search.space import SearchSpace
from dejavu_tune.search.trial_records import FAILURES, TrialRecord, from_result
from dejavu_tune.tracking import mlflow_views
from dejavu_tune.tracking import runs as tracking
from dejavu_tune.tracking.delivery import DeliveryQueue
from dejavu_tune.tracking.run_log import RunLog
from dejavu_tune.tracking.run_names import run_name
from dejavu_tune.train.figures import FIGURE_FILE

__all__ = ["Search", "ended_ms", "set_status", "settle"]


class Search(Protocol):
    """What settling reads of a search (the driver is one): no import of the driver,
    which calls settling."""

    space: SearchSpace
    ref: tracking.SearchRef
    outbox: DeliveryQueue
    results: list[tuple[str, TrialResult]]  # (step, trial)

    @property
    def uri(self) -> str: ...

    @property
    def metric(self) -> str: ...

    @property
    def epochs(self) -> int: ...

    @property
    def seed(self) -> int: ...

    def records(self, step: str | None = None) -> list[TrialRecord]: ...

    def confirmed_trial(self, step: str, config: dict[str, Any]) -> str | None: ...

ORPHAN_REASON = "the trial's process ended before it reported a result"


def ended_ms(last: dict[str, Any]) -> int | None:
    """When a trial reported its last result (Tune stamps each result, in seconds)."""
    stamp = last.get("timestamp")
    return int(stamp * 1000) if isinstance(stamp, (int, float)) else None


def set_status(ref: tracking.SearchRef, trial_id: str, status: str,
               reason: str | None = None, end_ms: int | None = None) -> None:
    """A trial's status as Tune ended it (from Tune's callbacks, through the driver's
    queue); a trial whose run is not open yet gets it when the runs are settled."""
    run = ref.trial_run(trial_id)
    if run is not None:
        _settle_run(ref.uri, run, status, reason, end_ms)


def settle(drv: Search, wait_s: float, stops: dict[str, str] | None = None) -> dict[str, str]:
    """Every trial's run complete and ended, a trial ASHA stopped tagged with why
    (``stops``: trial id → the decision's text); returns trial id → run id."""
    if not drv.outbox.drain(wait_s):
        print(f"warning: the tracking server took no status updates for {wait_s:.0f} s; "
              "settling the trials' runs now", file=sys.stderr)
    runs = {r.tags.get(tracking.TRIAL_TAG): r for r in drv.ref.children()}
    for step, result in drv.results:
        _backfill(drv, runs, step, result)
    settled = set()
    for record in drv.records():
        run = runs.get(record.trial_id)
        if run is not None:  # a trial that never reported has no run to settle
            _settle_run(drv.uri, run, record.status, record.reason,
                        ended_ms(record.last) if not record.errored else None,
                        inert=record.inert, stop=(stops or {}).get(record.trial_id)
                        if record.status == "stopped_early" else None,
                        figure=bool(record.curve))
            settled.add(run.run_id)
    for run in runs.values():
        # Tune has ended every trial: a run still RUNNING lost its process before it
        # reported anything (a killed worker or driver)
        if run.status == "RUNNING" and run.run_id not in settled:
            RunLog(drv.uri, run.run_id).finish("failed", ORPHAN_REASON, row=run)
    return {trial_id: run.run_id for trial_id, run in runs.items()}


def _backfill(drv: Search, runs: dict[str, tracking.RunRow], step: str, result: TrialResult) -> None:
    """Record what Tune has from a trial that its run lacks: params, epochs, placement
    tags and the newest figure (Tune stops a trial inside its report, so a queue still
    catching up after an outage loses what it holds). A trial that reported but whose
    run was never opened gets its run here, starting when the trial started."""
    last, config = result.last, result.config  # no config: a trial failed at its start
    trial_id = result.trial_id
    if trial_id is None:  # never reported: nothing to log
        return
    run = runs.get(trial_id)
    if run is None:
        record = from_result(result, step, drv.metric, drv.epochs, drv.seed)
        ended = ended_ms(last)
        started = ended - int(last.get("time_total_s", 0) * 1000) if ended is not None else None
        name = run_name(drv.space.trial_config(config), config, trial_id, step, result.path,
                        drv.confirmed_trial(step, config))
        run_id, _ = drv.ref.open_trial(trial_id, name,
                                       "baseline" if record.is_baseline else "trial", started)
        RunLog(drv.uri, run_id).tags({tracking.PHASE_TAG: step})
        run = runs[trial_id] = RunLog(drv.uri, run_id).read()
    log, tags = RunLog(drv.uri, run.run_id), run.tags
    log.params(config, existing=run.params)
    for epoch, (metrics, stamp) in sorted(result.epochs().items()):
        if log.new_epoch(metrics, epoch, stamp):
            print(f"  trial {trial_id}: epoch {epoch} logged from Tune's results", flush=True)
    placement = {tracking.NODE_TAG: last.get("node_ip"),
                 tracking.GPU_TAG: last.get(ray_adapter.GPU_IDS_KEY)}
    missing = {k: v for k, v in placement.items() if k not in tags and v is not None}
    if missing:
        log.tags(missing)
    figure = result.checkpoint_file(FIGURE_FILE)
    epoch = last.get("training_iteration")
    if figure is not None and epoch and log.new_figure(figure.read_bytes(), epoch):
        print(f"  trial {trial_id}: figure of epoch {epoch} logged from its last checkpoint",
              flush=True)


def _settle_run(uri: str, run: tracking.RunRow, status: str, reason: str | None,
                end_ms: int | None, inert: bool | None = None,
                stop: str | None = None, figure: bool = False) -> None:
    tags, log = run.tags, RunLog(uri, run.run_id)
    wanted = {tracking.STOP_TAG: stop} if stop else {}
    if inert is not None and tags.get(tracking.KIND_TAG) == "trial":
        wanted[tracking.INERT_TAG] = str(inert).lower()
    if tags.get(tracking.KIND_TAG) in ("trial", "baseline"):
        wanted[mlflow_views.NOTE_TAG] = mlflow_views.trial_note(run.run_id, run.name, status,
                                                                 stop, figure)
    changed = {k: v for k, v in wanted.items() if tags.get(k) != v}
    if changed:
        log.tags(changed)
    if tags.get(tracking.STATUS_TAG) in FAILURES and status in FAILURES:
        return  # the trial's own, more precise status and reason stay
    log.finish(status, reason, end_ms, row=run)
