"""How often Tune's experiment state is saved, by the size of the experiment."""

import os

from dejavu_tune.raytune import ray_adapter


def test_small_experiments_snapshot_every_event_large_ones_on_tunes_own_period(monkeypatch):
    monkeypatch.setattr(ray_adapter, "_USER_PERIOD", None)
    monkeypatch.delenv("TUNE_GLOBAL_CHECKPOINT_S", raising=False)
    ray_adapter._snapshot_policy(ray_adapter.EVERY_EVENT_TRIALS)
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "0"  # exact resume after a kill
    ray_adapter._snapshot_policy(ray_adapter.EVERY_EVENT_TRIALS + 1)
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "auto"  # a state written whole stays cheap
    # the next, smaller step of the same driver is exact again; a user's setting wins
    ray_adapter._snapshot_policy(10)
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "0"
    monkeypatch.setattr(ray_adapter, "_USER_PERIOD", "30")
    ray_adapter._snapshot_policy(10)
    assert os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "30"
