"""MLflow's own system-metrics monitor on a trial's run, in a real SQLite store."""

import threading
import time

import psutil
import pytest
from mlflow.tracking import MlflowClient

from dejavu_tune.tracking import runs as tracking
from dejavu_tune.tracking.system_metrics import STOP_WAIT_S, SystemMetrics, interval
from dejavu_tune.tracking.trial_recorder import TrialRecorder

CPU = "system/cpu_utilization_percentage"
MEMORY_MB = "system/system_memory_usage_megabytes"
MEMORY_PCT = "system/system_memory_usage_percentage"
EVERY_S = 0.2  # a sampling interval that fills a run within a test's second
WITHIN_S = 20.0  # how long a test waits for the first samples on a loaded 2-core machine


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for the module (setting up its tables takes seconds); each test its own
    search in it."""
    return tracking.default_tracking_uri(tmp_path_factory.mktemp("store"))


def _search(uri):
    experiment, parent = tracking.open_parent_run(uri, "exp", "search")
    return uri, tracking.SearchRef(uri, experiment, parent)


def _wait_for(client, run_id, key, count=1):
    deadline = time.monotonic() + WITHIN_S
    while time.monotonic() < deadline:
        history = client.get_metric_history(run_id, key)
        if len(history) >= count:
            return history
        time.sleep(0.1)
    raise AssertionError(f"{key}: fewer than {count} points within {WITHIN_S} s")


def _monitor_threads():
    return [t for t in threading.enumerate() if t.name == "SystemMetricsMonitor"]


def test_a_monitored_run_gets_cpu_and_memory_in_its_own_store(store, tmp_path, monkeypatch):
    # the fluent client's URI points elsewhere, as a Ray worker's environment may: the
    # points go to the trial's store all the same, and nothing to the other one or to
    # ./mlruns of the working directory
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{elsewhere / 'fluent.db'}")
    monkeypatch.chdir(elsewhere)
    uri, ref = _search(store)
    run_id, _ = ref.open_trial("t1", "t1")
    monitor = SystemMetrics(EVERY_S)
    monitor.start(uri, run_id, resumed=False)
    client = MlflowClient(uri)
    _wait_for(client, run_id, CPU, count=2)
    start = time.monotonic()
    assert monitor.stop()
    assert time.monotonic() - start < STOP_WAIT_S and not monitor.running
    metrics = client.get_run(run_id).data.metrics
    assert {CPU, MEMORY_MB, MEMORY_PCT} <= set(metrics)
    assert all(0 <= m.value <= 100 for m in client.get_metric_history(run_id, CPU))
    # the node's memory as psutil reads it now, within what a test run allocates meanwhile
    used = psutil.virtual_memory()
    assert abs(metrics[MEMORY_MB] - used.used / 1e6) < 0.25 * used.total / 1e6
    assert abs(metrics[MEMORY_PCT] - metrics[MEMORY_MB] / (used.total / 1e6) * 100) < 1.0
    assert list(elsewhere.iterdir()) == []
    deadline = time.monotonic() + STOP_WAIT_S  # its thread ends with the stop
    while _monitor_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _monitor_threads()


def test_a_trial_with_system_metrics_on_logs_them_and_off_logs_none(store):
    uri, ref = _search(store)
    on = TrialRecorder(ref, "t1", "t1", "trial", retry_for_s=5, system_metrics_s=EVERY_S)
    off = TrialRecorder(ref, "t2", "t2", "trial", retry_for_s=5, system_metrics_s=None)
    for record in (on, off):
        record.epoch({"loss": 1.0}, 1, None)  # waits for the run to be open
    client = MlflowClient(uri)
    _wait_for(client, on.run_id, CPU, count=3)  # off had as long: three intervals
    for record in (on, off):
        record.finished("completed")
        record.close()
    assert any(k.startswith("system/") for k in client.get_run(on.run_id).data.metrics)
    assert not [k for k in client.get_run(off.run_id).data.metrics if k.startswith("system/")]
    assert client.get_run(on.run_id).info.status == "FINISHED"
    assert on.system is not None and not on.system.running and off.system is None


def test_a_resumed_trial_continues_its_runs_system_metric_steps(store):
    uri, ref = _search(store)
    client = MlflowClient(uri)
    first = TrialRecorder(ref, "t1", "t1", "trial", retry_for_s=5, system_metrics_s=EVERY_S)
    first.epoch({"loss": 1.0}, 1, None)
    _wait_for(client, first.run_id, CPU, count=2)
    first.finished("failed", "RuntimeError: the node went away")
    first.close()
    before = [m.step for m in client.get_metric_history(first.run_id, CPU)]
    again = TrialRecorder(ref, "t1", "t1", "trial", retry_for_s=5, system_metrics_s=EVERY_S)
    again.resumed(1, [])
    again.epoch({"loss": 0.9}, 2, None)
    assert again.run_id == first.run_id and again.reopened
    _wait_for(client, again.run_id, CPU, count=len(before) + 2)
    again.finished("completed")
    again.close()
    steps = [m.step for m in client.get_metric_history(again.run_id, CPU)]
    assert steps[:len(before)] == before == list(range(len(before)))
    assert steps[len(before):] == list(range(len(before), len(steps)))  # no step twice
    assert client.get_run(again.run_id).info.status == "FINISHED"


def test_a_monitor_that_cannot_start_is_a_warning_and_one_stopped_first_never_starts(
        store, caplog):
    _, ref = _search(store)
    run_id, _ = ref.open_trial("t1", "t1")
    broken = SystemMetrics(EVERY_S)
    broken.start("nosuchscheme://store", run_id, resumed=True)
    assert not broken.running
    assert "system metrics are not logged for run" in caplog.text
    assert broken.stop()
    late = SystemMetrics(EVERY_S)
    assert late.stop()  # the trial ended before its queue opened the run
    late.start(ref.uri, run_id, resumed=False)
    assert not late.running and not _monitor_threads()


def test_auto_is_on_where_the_monitor_is_installed_and_off_is_off():
    assert interval("on", 10.0) == 10.0
    assert interval("off", 10.0) is None
    assert interval("auto", 5.0) == 5.0  # psutil is installed here (the test extra)
