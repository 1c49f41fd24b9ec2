"""The confirmed winner's network as an MLflow model: the network its checkpoint holds,
its configuration and metrics, registered under a name; loaded back, it predicts as the
trained network did."""

import pytest
import torch
from mlflow.tracking import MlflowClient

from dejavu_tune.config import trial_config
from dejavu_tune.tracking import runs as tracking
from dejavu_tune.tracking import winner_model
from dejavu_tune.train import checkpoint_io
from dejavu_tune.train.trainer import Trainer

FIXED = {"device": "cpu", "data": {"image_size": 32, "num_train": 8, "num_val": 4},
         "optim": {"epochs": 1, "batch_size": 4}, "dejavu": {"crm": {"init": "scratch"}}}
SAMPLED = {"dejavu.loss.gamma": 0.2, "seed": 3, "data.heldout": True}


@pytest.mark.slow
def test_the_winners_network_is_logged_registered_and_loads_back(tmp_path, monkeypatch):
    import mlflow
    import mlflow.pytorch

    trainer = Trainer(trial_config(FIXED, SAMPLED))
    trainer.train_epoch()
    (tmp_path / "ckpt").mkdir()
    checkpoint_io.save(trainer.state_dict(), tmp_path / "ckpt")
    uri = tracking.default_tracking_uri(tmp_path)
    exp_id, parent = tracking.open_parent_run(uri, "exp", "search-1")
    run_id, _ = tracking.open_trial_run(uri, exp_id, parent, "ab_1", "confirm of t04 · seed 3")
    import os

    before = (mlflow.get_tracking_uri(), dict(os.environ))
    model = winner_model.log_network(uri, run_id, str(tmp_path / "ckpt"), FIXED, SAMPLED,
                                     {"heldout_val_miou": 0.5, "paired_gain_val_miou": 0.01},
                                     "dejavu-winner")
    assert (mlflow.get_tracking_uri(), dict(os.environ)) == before  # the process as it was
    assert model["run_id"] == run_id and model["registered_name"] == "dejavu-winner"
    assert str(model["registered_version"]) == "1"
    client = MlflowClient(uri)
    logged = client.get_logged_model(model["model_id"])
    assert logged.source_run_id == run_id and logged.name == winner_model.MODEL_NAME
    assert logged.params["dejavu.loss.gamma"] == "0.2" and logged.params["seed"] == "3"
    assert {m.key: m.value for m in logged.metrics} == {"heldout_val_miou": 0.5,
                                                        "paired_gain_val_miou": 0.01}
    # the base network only, with the trained weights: the same prediction
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # where a user's load_model looks
    loaded = mlflow.pytorch.load_model("models:/dejavu-winner/1")
    images = trainer.first_batch(2, "val")["image"]
    trainer.model.eval()
    with torch.no_grad():
        want, got = trainer.model(images), loaded(images)
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)


def test_a_checkpoint_without_a_network_is_said_not_logged(tmp_path):
    (tmp_path / "ckpt").mkdir()
    checkpoint_io.save({"epoch": 1}, tmp_path / "ckpt")  # the landscape trainer's state
    with pytest.raises(ValueError, match="keeps no network in its checkpoint"):
        winner_model.log_network("sqlite:///unused.db", "r", str(tmp_path / "ckpt"), FIXED,
                                 SAMPLED, {}, None)
