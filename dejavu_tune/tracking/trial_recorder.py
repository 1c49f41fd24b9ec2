"""Everything a trial records in MLflow, through its own delivery queue: the trial only
says what happened, and an unreachable tracking server delays the records, never the
training (``dejavu_tune.tracking.delivery``).

The run is opened by the first call in the queue, before anything else can fail, so
every trial is accounted for; a trial that starts while the server is away trains
meanwhile and every later call finds the run's id once it is open.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from dejavu_tune.tracking import runs as tracking
from dejavu_tune.tracking.delivery import DeliveryQueue
from dejavu_tune.tracking.system_metrics import STOP_WAIT_S, SystemMetrics

__all__ = ["TrialRecorder", "DRAIN_S"]

# How long a trial waits for its queue before each report and at its end, while the
# server answers. Tune ends a trial that a scheduler stops (ASHA at a rung or at max_t)
# inside its report; the driver then logs every epoch Tune has and the run lacks, and
# settles the run's status, after fit.
DRAIN_S = 30.0


def now_ms() -> int:
    return int(time.time() * 1000)


class TrialRecorder:
    def __init__(self, ref: tracking.SearchRef, trial_id: str, name: str, kind: str,
                 retry_for_s: float, backoff_s: tuple[float, float] = (1.0, 10.0),
                 system_metrics_s: float | None = None):
        # The queue's retries, not MLflow's growing backoff, decide how soon a call goes
        # through once the server is back (see dejavu_tune.tracking.delivery).
        tracking.bound_http_waits()
        self.uri = ref.uri
        self.run_id: str | None = None
        # a run that existed when this trial opened it belongs to an earlier attempt of
        # the trial (a restart from scratch when Tune had not yet registered its
        # checkpoint, or from a checkpoint): any epoch may be logged already
        self.reopened = False
        self.rerun_epoch: int | None = None
        # the trial's own queue (its retries, what it dropped): delivery in order, in the
        # background
        self.queue = DeliveryQueue(retry_for_s=retry_for_s, first_backoff_s=backoff_s[0],
                                   max_backoff_s=backoff_s[1])
        self.queue.put(self._open, ref, trial_id, name, kind, now_ms())
        # MLflow's system-metrics monitor, every ``system_metrics_s`` seconds (None: off),
        # from when the run is open: a reopened run's system metrics continue its steps
        self.system = None if system_metrics_s is None else SystemMetrics(system_metrics_s)
        if self.system is not None:
            self.queue.put(self._start_system_metrics)

    # -- what a trial says ------------------------------------------------------------
    def params(self, params: dict[str, Any]) -> None:
        self._put(tracking.log_params, params)

    def tags(self, tags: dict[str, Any]) -> None:
        self._put(tracking.set_tags, tags)

    def json(self, name: str, payload: Any) -> None:
        """A JSON artifact (the resolved configuration, ``config.json``)."""
        self._put(tracking.log_json, name, payload)

    def datasets(self, datasets: list[dict[str, Any]]) -> None:
        """What the trial trains and is scored on, as MLflow dataset inputs."""
        self._put(tracking.log_datasets, datasets)

    def resumed(self, epoch: int, skipped: list[str]) -> None:
        """The trial continues from a checkpoint of ``epoch``: the next epoch may have been
        logged already by the worker that died after logging it."""
        self.rerun_epoch = epoch + 1
        tags: dict[str, Any] = {tracking.RESUMED_TAG: epoch}
        if skipped:
            tags[tracking.CHECKPOINT_SKIPPED_TAG] = "; ".join(skipped)
        self.tags(tags)

    def epoch(self, metrics: dict[str, float], step: int, figure: bytes | None,
              timestamp_ms: int | None = None) -> None:
        """One epoch's metrics (a copy: Tune adds its own keys to the dict it is given)
        and figure; waits while the server answers until they are delivered, so Tune may
        stop the trial in its next report without losing them. ``timestamp_ms`` (default
        now) is the points' time; the trial reports it to Tune with the epoch
        (``ray_adapter.RECORDED_MS_KEY``) so that a backfill repeats the same points."""
        rerun = step == self.rerun_epoch
        stamp = now_ms() if timestamp_ms is None else timestamp_ms
        self._put(self._log_epoch, rerun, dict(metrics), step, stamp)
        if figure is not None:
            self._put(self._log_figure, rerun, figure, step)
        self.queue.drain(DRAIN_S, unless_failing=True)

    def finished(self, status: str, reason: str | None = None) -> None:
        if self.system is not None:  # its last points before the run's end
            self.system.stop()
        self._put(tracking.set_trial_status, status, reason, now_ms())

    def close(self) -> None:
        """The queue's thread ends once what is queued is delivered, so a reused worker
        does not collect one idle thread per trial. On Tune's stop (SystemExit inside a
        report) nothing waits: Tune gives the thread 2 s, and the driver backfills."""
        stopped_by_tune = isinstance(sys.exc_info()[1], SystemExit)
        if self.system is not None:
            self.system.stop(0.0 if stopped_by_tune else STOP_WAIT_S)
        self.queue.close()
        if not stopped_by_tune:
            self.queue.drain(DRAIN_S, unless_failing=True)

    # -- the run ----------------------------------------------------------------------
    def _open(self, ref: tracking.SearchRef, *args: Any) -> None:
        self.run_id, self.reopened = ref.open_trial(*args)

    def _start_system_metrics(self) -> None:
        if self.system is not None and self.run_id is not None:
            self.system.start(self.uri, self.run_id, resumed=self.reopened)

    # Whether a run is reopened is known only once the queue has opened it, so these
    # decide at delivery.
    def _log_epoch(self, uri: str, run_id: str, rerun: bool, *args: Any) -> None:
        (tracking.log_new_epoch if rerun or self.reopened else tracking.log_epoch)(uri, run_id, *args)

    def _log_figure(self, uri: str, run_id: str, rerun: bool, *args: Any) -> None:
        (tracking.log_new_figure if rerun or self.reopened else tracking.log_figure)(uri, run_id, *args)

    def _put(self, fn: Callable[..., Any], *args: Any) -> None:
        self.queue.put(self._log, fn, *args)

    def _log(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.run_id is None:
            raise RuntimeError(f"{fn.__name__}: the trial's MLflow run could not be opened")
        fn(self.uri, self.run_id, *args)


class RankRecorder:
    """What a rank other than 0 of a data-parallel trial records: nothing. The trial's
    run is rank 0's alone (one writer per run); the other ranks train the same weights."""

    def params(self, params: dict[str, Any]) -> None:
        del params

    def tags(self, tags: dict[str, Any]) -> None:
        del tags

    def json(self, name: str, payload: Any) -> None:
        del name, payload

    def datasets(self, datasets: list[dict[str, Any]]) -> None:
        del datasets

    def resumed(self, epoch: int, skipped: list[str]) -> None:
        del epoch, skipped

    def epoch(self, metrics: dict[str, float], step: int, figure: bytes | None,
              timestamp_ms: int | None = None) -> None:
        del metrics, step, figure, timestamp_ms

    def finished(self, status: str, reason: str | None = None) -> None:
        del status, reason

    def close(self) -> None:
        pass
