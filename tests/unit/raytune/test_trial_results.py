"""A finished trial in the project's terms (``raytune.trial_results``), from Tune's own
``Result`` and from a finished experiment's files."""

import json
import math

import pandas as pd
from ray.tune import Checkpoint, Result

from dejavu_tune.raytune.ray_adapter import RECORDED_MS_KEY
from dejavu_tune.raytune.trial_results import error_reason, from_tune, read_experiment


def _rows():
    # reported out of order, as a restored trial's result.json can hold them
    return [{"val_miou": 0.5, "task_loss": 1.0, "training_iteration": 2, "trial_id": "t1",
             "time_total_s": 2.0, RECORDED_MS_KEY: 2_000, "config/seed": 0},
            {"val_miou": 0.25, "training_iteration": 1, "trial_id": "t1",
             "time_total_s": 1.0, RECORDED_MS_KEY: 1_000, "config/seed": 0}]


def test_a_tune_result_becomes_rows_epochs_a_curve_and_a_checkpoint(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "figure.png").write_bytes(b"png")
    rows = _rows()
    result = Result(metrics={**rows[0], "config": {"dejavu.loss.gamma": 0.1}},
                    checkpoint=Checkpoint.from_directory(tmp_path / "ckpt"), error=None,
                    path=str(tmp_path), metrics_dataframe=pd.DataFrame(rows))
    trial = from_tune(result)
    assert trial.trial_id == "t1" and trial.error is None and trial.path == str(tmp_path)
    assert trial.config == {"dejavu.loss.gamma": 0.1}
    assert [r["training_iteration"] for r in trial.rows] == [1, 2]
    # epoch 1 lacks task_loss: NaN there, as Tune's frame has it
    assert trial.curve("val_miou") == (0.25, 0.5) and math.isnan(trial.curve("task_loss")[0])
    assert trial.curve("val_loss") == ()
    epochs = trial.epochs()
    assert epochs[2] == ({"val_miou": 0.5, "task_loss": 1.0}, 2_000)
    assert epochs[1][1] == 1_000 and set(epochs[1][0]) == {"val_miou", "task_loss"}
    assert trial.checkpoint_file("figure.png") == tmp_path / "ckpt" / "figure.png"
    assert trial.checkpoint_file("missing.png") is None


def test_a_failed_trial_keeps_its_own_error_in_one_line():
    result = Result(metrics={}, checkpoint=None, error=ValueError("band_low >= band_high\nmore"),
                    path=None, metrics_dataframe=None)
    trial = from_tune(result)
    assert trial.error == "ValueError: band_low >= band_high"
    assert trial.rows == () and trial.trial_id is None and trial.checkpoint_file("x") is None


def test_the_error_under_rays_wrappers_is_the_reason():
    class RayTaskError(Exception):
        pass

    inner = RayTaskError("ray::ImplicitFunc.train() (pid=1, ip=10.0.0.1)\n"
                         "  File \"x.py\", line 3\nRuntimeError: CUDA out of memory")
    outer = Exception("wrapper")
    outer.cause = inner
    assert error_reason(outer) == "RuntimeError: CUDA out of memory"


def test_a_finished_experiment_is_read_from_its_files(tmp_path):
    for name, rows in (("t_a", _rows()), ("t_b", None)):
        trial_dir = tmp_path / name
        trial_dir.mkdir()
        (trial_dir / "params.json").write_text(json.dumps({"seed": 1}))
        if rows is not None:  # t_b never reported: no result.json
            (trial_dir / "result.json").write_text(
                "\n".join(json.dumps(r) for r in rows) + "\n")
    trials = read_experiment(tmp_path)
    assert len(trials) == 1
    assert trials[0].config == {"seed": 1} and trials[0].curve("val_miou") == (0.25, 0.5)
    assert trials[0].last["training_iteration"] == 2 and trials[0].trial_id == "t1"
