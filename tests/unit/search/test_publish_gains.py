"""Each run's gain over the baseline, and the display copies the runs table shows, in a
real MLflow store: exact values as logged, points (× 100, two decimals) beside them."""

from mlflow.tracking import MlflowClient

from dejavu_tune.search.publish import log_gains
from dejavu_tune.search.summary import Outcome
from dejavu_tune.search.trial_records import TrialRecord
from dejavu_tune.tracking import runs as tracking
from dejavu_tune.tracking.run_log import RunLog


class _Driver:
    """What log_gains reads of the driver: the search's seed and budget, a run to log to."""

    seed, epochs = 0, 2

    def __init__(self, uri):
        self.uri = uri

    def run_log(self, run_id):
        return RunLog(self.uri, run_id)


def _record(trial_id, phase, curve, status="completed", baseline=False):
    config = {"dejavu.enabled": False} if baseline else {"dejavu.loss.gamma": 0.1}
    return TrialRecord(trial_id, phase, config, 0, status, None, tuple(curve), {})


def test_gains_and_their_display_copies_per_run(tmp_path):
    uri = tracking.default_tracking_uri(tmp_path)
    exp_id, parent = tracking.open_parent_run(uri, "exp", "s1")
    records = [_record("base", "search", (0.40, 0.50), baseline=True),
               _record("full", "search", (0.41, 0.523)),
               _record("stopped", "search", (0.39,), status="stopped_early"),
               _record("tune", "tuning", (0.30, 0.35), baseline=True)]
    runs = {r.trial_id: tracking.open_trial_run(uri, exp_id, parent, r.trial_id, r.trial_id)[0]
            for r in records}
    outcome = Outcome("val_miou", "max", 2, records, replicate_seeds=[], reference=records[0])
    log_gains(_Driver(uri), outcome, runs)
    log_gains(_Driver(uri), outcome, runs)  # a resumed driver logs nothing twice
    client = MlflowClient(uri)

    def logged(trial_id):
        run_id = runs[trial_id]
        return {k: [(m.step, round(m.value, 6)) for m in client.get_metric_history(run_id, k)]
                for k in client.get_run(run_id).data.metrics}

    assert logged("full") == {"gain": [(1, 0.01), (2, 0.023)], "final_gain": [(2, 0.023)],
                              "final_gain_pts": [(2, 2.3)], "gain_pts": [(2, 2.3)],
                              "val_miou_pts": [(2, 52.3)], "baseline_pts": [(2, 50.0)]}
    # stopped early: no gain at the full budget, so it ranks after the full-budget trials
    assert logged("stopped") == {"gain": [(1, -0.01)], "gain_pts": [(1, -1.0)],
                                 "val_miou_pts": [(1, 39.0)], "baseline_pts": [(1, 40.0)]}
    # the baseline: gain 0 against itself, never a final_gain above the trials
    assert logged("base") == {"gain": [(1, 0.0), (2, 0.0)], "gain_pts": [(2, 0.0)],
                              "val_miou_pts": [(2, 50.0)]}
    assert logged("tune") == {"val_miou_pts": [(2, 35.0)]}
