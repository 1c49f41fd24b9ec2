"""MLflow's system-metrics monitor for a trial's run (the *System metrics* tab).

MLflow starts its monitor only for fluent runs (``mlflow.start_run(log_system_metrics=...)``);
a trial's run is opened by ``MlflowClient``, so the trial starts one itself. What MLflow's
``SystemMetricsMonitor`` (mlflow 3.17/3.18) does that this module works around:

- Without ``tracking_uri`` it logs to the fluent client's URI (``MLFLOW_TRACKING_URI`` or
  ./mlruns of the worker's directory), never the search's store: the trial's URI is
  passed.
- ``finish()`` joins its thread without a timeout, and the thread may be inside a
  tracking call to a server that is away: the stop waits ``STOP_WAIT_S`` at most. The
  thread is a daemon and ends by itself once it sees the stop or the run's end, so it
  never keeps a Ray worker alive.
- Samples taken since the last logging are dropped when it stops: a trial shorter than
  one interval logs none.
- Its CPU and memory numbers are the node's (psutil's system-wide ones) and its GPUs are
  every GPU of the node in NVML's order: the trial's own are its ``dejavu.gpu_ids`` tag.
- ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` and ``..._SAMPLES_BEFORE_LOGGING`` set in a
  worker's environment override the interval given here.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from typing import Any

__all__ = ["MODES", "EXTRA", "PREFIX", "STOP_WAIT_S", "missing", "interval",
           "SystemMetrics", "sample_seconds"]

log = logging.getLogger(__name__)

MODES = ("auto", "on", "off")  # search.system_metrics
EXTRA = "pip install 'dejavu-tune[system-metrics]'"
PREFIX = "system/"  # MLflow's prefix of every system metric
# Long enough for a last tracking call to a local store; a server that is away is the
# monitor's own business (its daemon thread ends at its next look at the run).
STOP_WAIT_S = 5.0

# module -> the package that provides it
_NEEDS = {"psutil": "psutil", "pynvml": "nvidia-ml-py"}


def missing(gpu: bool) -> list[str]:
    """The packages the monitor lacks here: psutil (CPU, memory) always, nvidia-ml-py
    (pynvml) for GPU metrics when ``gpu``."""
    modules = ["psutil", "pynvml"] if gpu else ["psutil"]
    return [_NEEDS[m] for m in modules if importlib.util.find_spec(m) is None]


def interval(mode: str, interval_s: float) -> float | None:
    """Seconds between a trial's samples (``search.system_metrics`` ``mode`` at
    ``search.system_metrics_interval``); None: the trial logs none.

    ``auto`` is on wherever psutil is installed, for CPU trials as for GPU ones: a sample
    takes 10-13 ms of CPU (the store's read and write of the run; reading the system
    is 0.3 ms), about 0.1 % of one core at the default 10 s, below what timing CPU trials
    with the monitor on and off can tell apart (``python -m dejavu_tune.bench
    system-metrics``)."""
    if mode == "auto":
        return None if missing(gpu=False) else interval_s
    return interval_s if mode == "on" else None


class SystemMetrics:
    """One run's monitor, started once the run is open and stopped when the trial ends.
    Whatever fails in it is a warning: it never raises into training."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._monitor: Any = None
        self._stopped = False
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._monitor is not None

    def start(self, uri: str, run_id: str, resumed: bool) -> None:
        """Monitors the run at ``uri``; ``resumed``: the run has system metrics of an
        earlier attempt of the trial, whose steps the new ones continue."""
        with self._lock:
            if self._stopped or self._monitor is not None:  # the trial ended first
                return
            try:
                from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

                monitor = SystemMetricsMonitor(run_id, sampling_interval=self.interval_s,
                                               resume_logging=resumed, tracking_uri=uri)
                monitor.start()
            except Exception as exc:  # noqa: BLE001 - no system metrics is not the trial's end
                log.warning("system metrics are not logged for run %s: %s: %s", run_id,
                            type(exc).__name__, exc)
                return
            self._monitor = monitor

    def stop(self, wait_s: float = STOP_WAIT_S) -> bool:
        """Stops the monitor, waiting ``wait_s`` at most; False if it was still busy then."""
        with self._lock:
            self._stopped = True
            monitor, self._monitor = self._monitor, None
        if monitor is None:
            return True
        finishing = threading.Thread(target=_finish, args=(monitor,), daemon=True,
                                     name="system-metrics-stop")
        finishing.start()
        finishing.join(wait_s)
        if finishing.is_alive():
            log.warning("the system-metrics monitor did not stop within %.0f s; it ends by "
                        "itself at its next look at the run", wait_s)
            return False
        return True


def _finish(monitor: Any) -> None:
    try:
        monitor.finish()
    except Exception as exc:  # noqa: BLE001 - MLflow logs its own; nothing to undo
        log.warning("stopping the system-metrics monitor: %s: %s", type(exc).__name__, exc)


def sample_seconds(uri: str, run_id: str, samples: int) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each of ``samples`` rounds of what the monitor does per
    interval, in the calling thread: read the system, look at the run's status, log the
    sample to the run at ``uri``. The CPU seconds are the thread's own, what a sample
    takes from the training beside it however loaded the machine is."""
    import time

    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    from mlflow.tracking import MlflowClient

    monitor = SystemMetricsMonitor(run_id, tracking_uri=uri)
    seconds = []
    for _ in range(samples):
        wall, cpu = time.perf_counter(), time.thread_time()
        monitor.collect_metrics()
        MlflowClient(uri).get_run(run_id)
        monitor.publish_metrics(monitor.aggregate_metrics())
        monitor.mlflow_logger.flush()
        seconds.append((time.perf_counter() - wall, time.thread_time() - cpu))
    return seconds
