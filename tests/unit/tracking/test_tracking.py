from mlflow.tracking import MlflowClient

from dejavu_tune.tracking import runs as tracking


def test_trial_run_is_found_again_not_duplicated(tmp_path):
    uri = tracking.default_tracking_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    exp_id, parent = tracking.open_parent_run(uri, "exp", "search-1")
    first, reopened = tracking.open_trial_run(uri, exp_id, parent, "abc_00001", "trial 1")
    assert not reopened
    tracking.log_params(uri, first, {"dejavu.crm.kind": "crm_f", "dejavu.crm.stages": 2})
    tracking.log_epoch(uri, first, {"val_miou": 0.5}, step=1)
    tracking.set_trial_status(uri, first, "failed", "RuntimeError: worker died")
    # A restart of the same trial continues the same run, live again.
    again, reopened = tracking.open_trial_run(uri, exp_id, parent, "abc_00001", "trial 1")
    assert again == first and reopened
    tracking.log_params(uri, again, {"dejavu.crm.kind": "crm_f", "dejavu.crm.stages": 2})
    tracking.log_epoch(uri, again, {"val_miou": 0.6}, step=2)
    tracking.set_trial_status(uri, again, "completed")
    client = MlflowClient(uri)
    run = client.get_run(first)
    assert run.info.status == "FINISHED" and run.data.tags["dejavu.status"] == "completed"
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.params == {"dejavu.crm.kind": "crm_f", "dejavu.crm.stages": "2"}
    assert [m.value for m in client.get_metric_history(first, "val_miou")] == [0.5, 0.6]
    children = tracking.child_runs(uri, exp_id, parent)
    assert [r.run_id for r in children] == [first]


def test_failed_status_keeps_reason(tmp_path):
    uri = tracking.default_tracking_uri(tmp_path)
    exp_id, parent = tracking.open_parent_run(uri, "exp", "s")
    run_id, _ = tracking.open_trial_run(uri, exp_id, parent, "t1", "t1")
    tracking.set_trial_status(uri, run_id, "failed", "NonFiniteLossError: loss became nan")
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["dejavu.failure_reason"] == "NonFiniteLossError: loss became nan"


def test_a_run_never_ends_before_it_started(tmp_path):
    # Tune stamps a stopped trial's last result in whole seconds: up to 1 s before the run's
    # millisecond start, which MLflow would show as a negative duration.
    uri = tracking.default_tracking_uri(tmp_path)
    exp_id, parent = tracking.open_parent_run(uri, "exp", "s")
    run_id, _ = tracking.open_trial_run(uri, exp_id, parent, "t1", "t1", start_ms=1_000_700)
    tracking.set_trial_status(uri, run_id, "stopped_early", end_ms=1_000_000)
    info = MlflowClient(uri).get_run(run_id).info
    assert (info.start_time, info.end_time, info.status) == (1_000_700, 1_000_700, "KILLED")


def test_listings_page_through_every_run_and_one_trial_is_found_by_its_tag(tmp_path,
                                                                          monkeypatch):
    # MLflow caps one request; a search larger than a page must lose no run
    monkeypatch.setattr(tracking, "PAGE_SIZE", 2)
    uri = tracking.default_tracking_uri(tmp_path)
    exp_id, parent = tracking.open_parent_run(uri, "exp", "s")
    ids = {f"t{i}": tracking.open_trial_run(uri, exp_id, parent, f"t{i}", f"t{i}")[0]
           for i in range(5)}
    tracking.open_parent_run(uri, "exp", "another search")
    children = tracking.child_runs(uri, exp_id, parent)
    assert sorted(r.run_id for r in children) == sorted(ids.values())
    assert len(tracking.all_runs(uri, [exp_id])) == 7
    ref = tracking.SearchRef(uri, exp_id, parent)
    assert ref.trial_run("t3").run_id == ids["t3"]
    assert ref.trial_run("t9") is None


def test_a_data_parallel_trials_ranks_are_told_count_first_by_node():
    from dejavu_tune.tracking.runs import describe_ranks

    assert describe_ranks([("10.0.0.5", "0"), ("10.0.0.5", "1"), ("10.0.0.6", "0"),
                           ("10.0.0.6", "1")]) == (
        "4 ranks on 2 nodes: 10.0.0.5 [0 GPU 0, 1 GPU 1]; 10.0.0.6 [2 GPU 0, 3 GPU 1]")
    assert describe_ranks([("127.0.0.1", ""), ("127.0.0.1", "")]) == (
        "2 ranks on 1 node: 127.0.0.1 [0, 1]")
