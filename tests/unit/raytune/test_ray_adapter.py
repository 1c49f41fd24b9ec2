"""What Tune keeps of an experiment for a resume, by the size of the experiment."""

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from dejavu_tune.raytune import snapshots


def test_small_experiments_snapshot_every_event_large_ones_on_tunes_own_period(monkeypatch):
    monkeypatch.setattr(snapshots, "_USER_PERIOD", None)
    monkeypatch.delenv("TUNE_GLOBAL_CHECKPOINT_S", raising=False)
    assert snapshots.apply(snapshots.EVERY_EVENT_TRIALS) == snapshots.KEEP
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "0"  # exact resume after a kill
    # a state written whole stays cheap; nothing deleted while a trial runs forces one
    assert snapshots.apply(snapshots.EVERY_EVENT_TRIALS + 1) is None
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "auto"
    # the next, smaller step of the same driver is exact again; a user's setting wins
    snapshots.apply(10)
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "0"
    monkeypatch.setattr(snapshots, "_USER_PERIOD", "30")
    snapshots.apply(10)
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "30"


def _epochs(config):
    """Four epochs with a checkpoint each; what its trial directory holds at each one."""
    import tempfile

    from ray import tune

    from dejavu_tune.raytune import ray_adapter

    trial_dir = Path(config["storage"]) / Path(ray_adapter.trial_dir()).name
    for epoch in range(1, 5):
        held = len(list(trial_dir.glob("checkpoint_*")))
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "state").write_text(str(epoch))
            tune.report({"epoch": epoch, "held": held},
                        checkpoint=tune.Checkpoint.from_directory(tmp))


@pytest.mark.integration
@pytest.mark.slow
def test_a_large_search_keeps_a_running_trials_checkpoints_and_an_ended_ones_newest(tmp_path):
    import ray
    from ray import tune

    # the workers import this module for the trainable
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}})
    try:
        tuner = tune.Tuner(
            _epochs, param_space={"storage": str(tmp_path / "exp"), "x": tune.grid_search([1, 2])},
            tune_config=tune.TuneConfig(metric="epoch", mode="max"),
            run_config=tune.RunConfig(
                name="exp", storage_path=str(tmp_path), verbose=0,
                callbacks=[snapshots.NewestCheckpointOnly()],
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None)))
        results = tuner.fit()
    finally:
        ray.shutdown()
    assert len(results) == 2 and not results.errors
    for result in results:
        # while it ran, every checkpoint it had written was still there
        assert list(result.metrics_dataframe["held"]) == [0, 1, 2, 3]
        left = sorted(p.name for p in Path(result.path).glob("checkpoint_*"))
        assert left == [Path(result.checkpoint.path).name] == ["checkpoint_000003"]
        assert (Path(result.checkpoint.path) / "state").read_text() == "4"


def test_storage_that_refuses_the_pruning_costs_disk_never_the_search(tmp_path, caplog):
    import pyarrow.fs

    not_a_dir = tmp_path / "trial"
    not_a_dir.write_text("")
    storage = SimpleNamespace(storage_filesystem=pyarrow.fs.LocalFileSystem(),
                              trial_fs_path=str(not_a_dir))
    trial = SimpleNamespace(trial_id="t1", storage=storage, checkpoint=None)
    with pytest.raises(OSError):
        snapshots.prune(trial)
    snapshots.NewestCheckpointOnly().on_trial_complete(0, [], trial)  # no exception
    assert "trial t1: its older checkpoints were not deleted" in caplog.text


def _slow_epochs(config):
    """Three epochs of 1 s with a checkpoint each: Tune's loop steps ten times an epoch."""
    import tempfile
    import time

    from ray import tune

    for epoch in range(1, 4):
        time.sleep(1.0)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "state").write_text(str(epoch))
            tune.report({"epoch": epoch}, checkpoint=tune.Checkpoint.from_directory(tmp))


@pytest.mark.integration
def test_every_event_snapshots_skip_the_steps_where_nothing_changed(tmp_path, monkeypatch):
    import json

    import ray
    from ray import tune
    from ray.tune.execution.tune_controller import TuneController

    monkeypatch.setattr(snapshots, "_USER_PERIOD", None)
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "")
    saved: list[list] = []  # each save: (trial status, epochs reported) per trial
    original = TuneController.save_to_dir

    def counted(self):
        saved.append([(t.status, t.last_result.get("training_iteration")) for t in self._trials])
        original(self)

    monkeypatch.setattr(TuneController, "save_to_dir", counted)
    steps: list[int] = []

    class Steps(tune.Callback):
        def on_step_end(self, iteration, trials, **info):
            steps.append(iteration)

    keep = snapshots.apply(1)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}})
    try:
        results = tune.Tuner(
            _slow_epochs, tune_config=tune.TuneConfig(metric="epoch", mode="max"),
            run_config=tune.RunConfig(name="exp", storage_path=str(tmp_path), verbose=0,
                                      callbacks=[Steps()],
                                      checkpoint_config=tune.CheckpointConfig(
                                          num_to_keep=keep))).fit()
    finally:
        ray.shutdown()
    assert not results.errors
    # a save after each change (added, running, each epoch, ended), none in between:
    # Tune's loop stepped ~30 times over the 3 s of epochs
    assert len(steps) >= 25, len(steps)
    assert 5 <= len(saved) <= 10, saved
    assert ("RUNNING", 1) in {tuple(s[0]) for s in saved}  # every epoch was saved as it came
    assert ("RUNNING", 2) in {tuple(s[0]) for s in saved}
    state = json.loads(max((tmp_path / "exp").glob("experiment_state-*.json")).read_text())
    assert len(state["trial_data"]) == 1 and '"TERMINATED"' in state["trial_data"][0][0]
