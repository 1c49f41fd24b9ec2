"""The driver's parts that need no Ray: what the parent run records of a search's setup."""

import dataclasses

from mlflow.tracking import MlflowClient

from dejavu_tune.search.publish import log_parent_setup
from dejavu_tune.search.space_file import load_space
from dejavu_tune.tracking import runs as tracking
from dejavu_tune.tracking.run_log import RunLog


def test_the_parent_run_logs_every_search_setting_without_a_list(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("fixed: {device: cpu, optim: {epochs: 3}}\n"
                    "search: {num_samples: 5, stop_metric: task_loss, stop_mode: min}\n"
                    "resources: {cpu: 2, workers: 2}\n")
    space = load_space(str(path))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _, parent = tracking.open_parent_run(uri, "e", "s")
    log_parent_setup(RunLog(uri, parent), space, tmp_path, None)
    params = MlflowClient(uri).get_run(parent).data.params
    unset = {f.name for f in dataclasses.fields(space.search)
             if getattr(space.search, f.name) in (None, ())}
    assert {f.name for f in dataclasses.fields(space.search)} - unset <= set(params)
    # the loader resolved the rest
    assert unset == {"noise_floor", "objectives", "register_model", "time_budget", "trainer",
                     "constraints", "startup_trials"}
    assert (params["num_samples"], params["stop_metric"], params["baseline"],
            params["metric"], params["min_effect"]) == ("5", "task_loss", "True", "val_miou",
                                                         "0.005")
    assert (params["cpus_per_trial"], params["workers_per_trial"], params["epochs"]) == (
        "2.0", "2", "3")
