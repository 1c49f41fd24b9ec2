"""The delivery queue that keeps trials training while the tracking server is away."""

import pickle
import time

import pytest
from mlflow.tracking import MlflowClient

from dejavu_tune.tracking import runs as tracking
from dejavu_tune.tracking.delivery import DeliveryQueue, is_transient


class Flaky:
    """Fails its first ``failures`` calls, like a server that is down, then records."""

    def __init__(self, failures):
        self.failures = failures
        self.calls = []

    def __call__(self, value):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("connection refused")
        self.calls.append(value)


def test_calls_are_retried_and_delivered_in_order_without_blocking_the_caller():
    flaky = Flaky(failures=3)
    outbox = DeliveryQueue(first_backoff_s=0.3, max_backoff_s=0.3)
    start = time.monotonic()
    for value in range(5):
        outbox.put(flaky, value)
    assert time.monotonic() - start < 0.5  # put never waits for the server (backoff is longer)
    assert outbox.drain(timeout_s=10)
    assert flaky.calls == [0, 1, 2, 3, 4]
    assert outbox.retries == 3 and outbox.dropped == [] and outbox.pending() == 0


def test_a_call_is_given_up_after_its_retry_window_and_the_rest_still_go_through():
    flaky = Flaky(failures=10**6)
    outbox = DeliveryQueue(retry_for_s=0.05, first_backoff_s=0.01, max_backoff_s=0.01)
    outbox.put(flaky, "lost")
    assert outbox.drain(timeout_s=10)
    assert len(outbox.dropped) == 1 and "ConnectionError: connection refused" in outbox.dropped[0]
    flaky.failures = 0
    outbox.put(flaky, "kept")
    assert outbox.drain(timeout_s=10) and flaky.calls == ["kept"]


def test_drain_unless_failing_waits_for_a_slow_call_but_not_for_a_failing_one():
    outbox = DeliveryQueue(first_backoff_s=0.05, max_backoff_s=0.05)
    outbox.put(time.sleep, 0.3)  # a server that answers slowly
    assert outbox.drain(timeout_s=10, unless_failing=True) and outbox.pending() == 0
    outbox.put(Flaky(failures=10**6), 1)  # a server that is away
    start = time.monotonic()
    assert outbox.drain(timeout_s=10, unless_failing=True) is False
    assert time.monotonic() - start < 2 and outbox.pending() == 1


def test_drain_times_out_while_the_server_is_still_away():
    flaky = Flaky(failures=10**6)
    outbox = DeliveryQueue(first_backoff_s=0.01, max_backoff_s=0.01)
    outbox.put(flaky, 1)
    assert outbox.drain(timeout_s=0.1) is False
    assert outbox.pending() == 1


def test_a_rejected_request_is_not_retried_and_the_rest_still_go_through():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    def bad_param(value):
        raise MlflowException("Invalid value", error_code=INVALID_PARAMETER_VALUE)

    flaky = Flaky(failures=1)
    outbox = DeliveryQueue(first_backoff_s=0.01, max_backoff_s=0.01)
    outbox.put(bad_param, 1)
    outbox.put(flaky, 2)
    assert outbox.drain(timeout_s=10)
    assert len(outbox.dropped) == 1 and "MlflowException: Invalid value" in outbox.dropped[0]
    assert flaky.calls == [2] and outbox.retries == 1  # only the connection error was retried


def test_a_named_queue_unpickles_to_itself_and_close_ends_its_thread():
    outbox = DeliveryQueue.named("test-status", first_backoff_s=0.01)
    assert pickle.loads(pickle.dumps(outbox)) is outbox
    flaky = Flaky(failures=0)
    outbox.put(flaky, 1)
    outbox.close()
    outbox._thread.join(timeout=5)
    assert not outbox._thread.is_alive() and flaky.calls == [1]


def test_a_pickled_queue_starts_empty_with_the_same_settings():
    outbox = DeliveryQueue(retry_for_s=7.0, first_backoff_s=0.5, max_backoff_s=3.0)
    outbox.put(time.sleep, 0.2)
    copy = pickle.loads(pickle.dumps(outbox))
    assert (copy.retry_for_s, copy.first_backoff_s, copy.max_backoff_s) == (7.0, 0.5, 3.0)
    assert copy.pending() == 0 and copy.drain(timeout_s=1)


def test_a_repeated_epoch_delivery_leaves_one_point_per_metric(tmp_path):
    # A request whose reply was lost is sent again: MLflow must keep a single point.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("e")).info.run_id
    for _ in range(2):
        tracking.log_epoch(uri, run_id, {"val_miou": 0.25}, step=1, timestamp_ms=1000)
    history = client.get_metric_history(run_id, "val_miou")
    assert [(m.step, m.value, m.timestamp) for m in history] == [(1, 0.25, 1000)]


def test_a_trial_restarted_from_scratch_keeps_the_epochs_its_first_attempt_logged(tmp_path):
    # A driver killed right after a trial checkpointed, before Tune registered that
    # checkpoint: on resume the trial starts again at epoch 1 with no checkpoint, and its
    # run, found again, already holds epoch 1 (and its figure).
    import io

    from PIL import Image

    from dejavu_tune.tracking.trial_recorder import TrialRecorder

    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, format="PNG")
    uri = tracking.default_tracking_uri(tmp_path)
    ref = tracking.SearchRef(uri, *tracking.open_parent_run(uri, "exp", "search"))
    first = TrialRecorder(ref, "t1", "t01", "trial", retry_for_s=5)
    first.epoch({"val_miou": 0.5, "compute_s": 1.0}, 1, png.getvalue())
    first.close()
    again = TrialRecorder(ref, "t1", "t01", "trial", retry_for_s=5)
    for step, value in [(1, 0.51), (2, 0.6)]:
        again.epoch({"val_miou": value, "compute_s": 1.0}, step, png.getvalue())
    again.close()
    assert again.reopened and not first.reopened and again.run_id == first.run_id
    history = MlflowClient(uri).get_metric_history(again.run_id, "val_miou")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.6)]
    assert tracking.figure_steps(uri, again.run_id) == {1, 2}


def test_only_network_and_server_failures_are_retried():
    import requests
    from mlflow.exceptions import MlflowException
    from PIL import UnidentifiedImageError

    assert is_transient(ConnectionRefusedError("refused"))
    assert is_transient(TimeoutError("timed out"))
    assert is_transient(requests.ConnectionError("reset"))
    assert is_transient(MlflowException("503 from the server"))  # INTERNAL_ERROR
    # OSErrors of the call itself: retrying cannot fix them
    assert not is_transient(UnidentifiedImageError("not a PNG"))
    assert not is_transient(FileNotFoundError("figure.png"))
    assert not is_transient(ValueError("bug"))


def test_call_retries_in_the_caller_and_raises_once_the_window_has_passed():
    flaky = Flaky(failures=2)
    outbox = DeliveryQueue(retry_for_s=5, first_backoff_s=0.01, max_backoff_s=0.01)
    assert outbox.call(lambda v: flaky(v) or "run-id", 7) == "run-id"
    assert flaky.calls == [7] and outbox.retries == 2
    gone = Flaky(failures=10**6)
    outbox = DeliveryQueue(retry_for_s=0.05, first_backoff_s=0.01, max_backoff_s=0.01)
    with pytest.raises(ConnectionError, match="connection refused"):
        outbox.call(gone, 1)


@pytest.mark.integration
def test_a_trial_run_opened_while_the_server_is_away_arrives_once_it_is_back(tmp_path,
                                                                            monkeypatch):
    from helpers.cluster import MlflowServer

    from dejavu_tune.tracking.runs import SearchRef
    from dejavu_tune.tracking.trial_recorder import TrialRecorder

    server = MlflowServer(tmp_path)
    try:
        server.start()
        client = MlflowClient(server.uri)
        exp_id = client.create_experiment("away")
        parent = client.create_run(exp_id).info.run_id
        server.stop()
        # as in a trial: the queue retries, not MLflow's client (see dejavu_tune.tracking.delivery)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        start = time.monotonic()
        record = TrialRecorder(SearchRef(server.uri, exp_id, parent), "t1", "trial-t1",
                               "trial", retry_for_s=3600, backoff_s=(0.2, 0.5))
        record.resumed(0, [])  # a restarted worker: its epoch 1 may be logged already
        record.epoch({"val_miou": 0.5, "compute_s": 1.0}, 1, None)
        record.epoch({"val_miou": 0.6, "compute_s": 1.0}, 1, None)  # that epoch run again
        assert time.monotonic() - start < 1.0  # the trial went on training
        time.sleep(2)
        # the run's opening, the resumed tag and both epochs wait in the queue
        assert record.run_id is None and record.queue.pending() == 4
        server.start()
        assert record.queue.drain(timeout_s=60)
        (child,) = client.search_runs([exp_id], filter_string="tags.`dejavu.trial_id` = 't1'")
        history = client.get_metric_history(child.info.run_id, "val_miou")
        assert [(m.step, m.value) for m in history] == [(1, 0.5)]  # the first point stays
        assert child.data.tags["dejavu.resumed_from_epoch"] == "0"
        assert record.queue.retries >= 1 and record.queue.dropped == []
    finally:
        server.stop()


def test_a_new_experiment_keeps_its_artifacts_beside_the_sqlite_store(tmp_path, monkeypatch):
    # MLflow's default is ./mlruns of the working directory: runs from a checkout would
    # litter it (and a search run from elsewhere would scatter its figures).
    monkeypatch.chdir(tmp_path)
    uri = tracking.default_tracking_uri(tmp_path / "runs")
    exp_id, run_id = tracking.open_parent_run(uri, "exp", "s1")
    tracking.log_artifact_text(uri, run_id, "summary.md", "hello\n")
    location = MlflowClient(uri).get_experiment(exp_id).artifact_location
    assert location == (tmp_path / "runs" / "artifacts").as_uri()
    assert list((tmp_path / "runs" / "artifacts").rglob("summary.md"))
    assert not (tmp_path / "mlruns").exists()


def test_an_epoch_backfilled_while_the_trials_own_record_is_on_its_way_is_kept_once(tmp_path):
    # After an outage the driver backfills from Tune's results what a run lacks, while the
    # trial's queue (or a request the server finishes late) may still deliver the same
    # epoch. The trial stamps each epoch's record and reports the stamp to Tune, so both
    # write the identical point.
    import json
    from types import SimpleNamespace

    import pandas as pd
    from ray.tune import Result

    from dejavu_tune.raytune.ray_adapter import RECORDED_MS_KEY
    from dejavu_tune.raytune.trial_results import from_tune
    from dejavu_tune.search.settle import _backfill
    from dejavu_tune.tracking.trial_recorder import TrialRecorder

    uri = tracking.default_tracking_uri(tmp_path)
    ref = tracking.SearchRef(uri, *tracking.open_parent_run(uri, "exp", "search"))
    record = TrialRecorder(ref, "t1", "t01", "trial", retry_for_s=5)
    epochs = [({"val_miou": 0.1 + 0.2, "compute_s": 1 / 3}, 1, 1_000),
              ({"val_miou": 0.7, "compute_s": 2 / 3}, 2, 2_000)]
    record.epoch(*epochs[0][:2], None, epochs[0][2])
    assert record.queue.drain(timeout_s=30)
    # what Tune wrote for both epochs (its result.json, read back as the driver reads it)
    rows = [json.loads(json.dumps({**m, RECORDED_MS_KEY: ms, "training_iteration": step,
                                   "trial_id": "t1", "time_total_s": 1.0 * step}))
            for m, step, ms in epochs]
    result = Result(metrics={**rows[-1], "config": {}}, checkpoint=None, error=None,
                    path=str(tmp_path), metrics_dataframe=pd.json_normalize(rows, sep="/"))
    client = MlflowClient(uri)
    _backfill(SimpleNamespace(uri=uri), {"t1": tracking.get_run(uri, record.run_id)}, "search",
              from_tune(result))
    record.epoch(*epochs[1][:2], None, epochs[1][2])  # the trial's own record, late
    record.close()
    for key in ("val_miou", "compute_s"):
        history = client.get_metric_history(record.run_id, key)
        assert sorted((m.step, m.value, m.timestamp) for m in history) == [
            (1, epochs[0][0][key], 1_000), (2, epochs[1][0][key], 2_000)], key
