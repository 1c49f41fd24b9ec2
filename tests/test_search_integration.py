"""Real searches end to end: local Ray, Optuna + ASHA, a SQLite MLflow store."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "optim.epochs=2", "--set", "data.num_train=64", "--set", "data.num_val=16",
         "--set", "model.width=8", "--set", "dejavu.crm.width=8", "--set", "device=cpu"]


def _search(*args, timeout=600, **kwargs):
    return subprocess.run([sys.executable, "-m", "dejavu_tune.search", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def _runs(storage: Path, name: str):
    meta = json.loads((storage / name / "search.json").read_text())
    client = MlflowClient(meta["tracking_uri"])
    children = client.search_runs(
        [meta["experiment_id"]],
        filter_string=f"tags.`mlflow.parentRunId` = '{meta['parent_run_id']}'")
    return client, meta, children


@pytest.mark.integration
@pytest.mark.slow
def test_search_end_to_end_logs_every_trial_to_mlflow(tmp_path):
    proc = _search("--num-samples", "3", "--storage-path", str(tmp_path), "--name", "s1",
                   *SMALL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "best configuration:" in proc.stdout and "mlflow ui --backend-store-uri" in proc.stdout
    client, meta, children = _runs(tmp_path, "s1")
    assert len(children) == 4  # the baseline + 3 sampled trials
    kinds = sorted(r.data.tags["dejavu.kind"] for r in children)
    assert kinds == ["baseline", "trial", "trial", "trial"]
    assert len({r.data.tags["dejavu.trial_id"] for r in children}) == 4
    for run in children:
        tags, params = run.data.tags, run.data.params
        assert tags["dejavu.status"] in ("completed", "stopped_early"), tags
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "val_miou")
        assert [m.step for m in history] == list(range(1, len(history) + 1))
        assert {"task_loss", "val_miou", "sec_per_iter"} <= set(run.data.metrics)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "regeneration.png" in artifacts
        if tags["dejavu.kind"] == "baseline":
            assert params == {"dejavu.enabled": "False"}
            continue
        assert {"dejavu_loss", "mse", "lpips", "gain"} <= set(run.data.metrics)
        kind = params["dejavu.redaction.kind"]
        # Only the parameters that apply to this trial are logged.
        assert ("dejavu.redaction.threshold" in params) == (kind == "random_blocks")
        assert ("dejavu.crm.stages" in params) == (params["dejavu.crm.kind"] == "crm_f")
        assert ("dejavu.crm.steps" in params) == (params["dejavu.crm.kind"] == "crm_r")
    parent = client.get_run(meta["parent_run_id"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"space.yaml", "summary.md", "best_config.json",
            "optimization_history.png"} <= artifacts
    assert "param_importances.png" in artifacts or "param_importances.txt" in artifacts
    assert "best_val_miou" in parent.data.metrics and "baseline_val_miou" in parent.data.metrics


@pytest.mark.integration
@pytest.mark.slow
def test_killed_driver_resumes_without_duplicate_runs(tmp_path):
    args = ["--num-samples", "4", "--max-concurrent", "1", "--storage-path", str(tmp_path),
            "--name", "r1", *SMALL, "--set", "optim.epochs=3"]
    driver = subprocess.Popen([sys.executable, "-m", "dejavu_tune.search", *args], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        deadline = time.time() + 300
        # Kill once the baseline is done and a sampled trial has a checkpoint.
        while time.time() < deadline:
            checkpoints = list((tmp_path / "r1" / "search").glob("*/checkpoint_*"))
            if checkpoints:
                break
            assert driver.poll() is None, driver.stdout.read()
            time.sleep(0.5)
        else:
            pytest.fail("no trial checkpoint appeared")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started
        driver.wait()
    proc = _search("--resume", "--storage-path", str(tmp_path), "--name", "r1")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    client, meta, children = _runs(tmp_path, "r1")
    trial_ids = [r.data.tags["dejavu.trial_id"] for r in children]
    assert len(trial_ids) == len(set(trial_ids)) == 5  # baseline + 4, none duplicated
    assert all(r.info.status == "FINISHED" for r in children)
    assert meta["finished"] is True


@pytest.mark.integration
def test_bad_space_exits_2_with_one_line_before_ray(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("params:\n  dejavu.crm.steps: {type: int, low: 30, high: 20}\n")
    start = time.time()
    proc = _search("--space", str(bad), "--storage-path", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith(f"error: {bad}: params.dejavu.crm.steps.low: 30 is above high")
    assert "Traceback" not in proc.stderr and time.time() - start < 30
    assert not list(tmp_path.glob("*/search.json"))  # nothing was started or recorded


@pytest.mark.integration
@pytest.mark.slow
def test_nan_trials_are_failed_with_reason_and_the_search_goes_on(tmp_path):
    # SGD with lr 10 and weight decay 1 multiplies the weights by -9 every step: the loss
    # overflows to inf/NaN within ~20 iterations. Weight decay 5e-4 trains normally.
    space = tmp_path / "nan.yaml"
    space.write_text(
        "fixed:\n"
        "  device: cpu\n"
        "  data: {num_train: 128, num_val: 16}\n"
        "  model: {width: 8}\n"
        "  optim: {epochs: 1, batch_size: 2, lr: 10.0, momentum: 0.0}\n"
        "  dejavu: {enabled: false}\n"
        "params:\n"
        "  optim.weight_decay: {type: categorical, choices: [0.0005, 1.0]}\n"
        "search: {num_samples: 4, max_concurrent: 2, baseline: false, seed: 1}\n")
    proc = _search("--space", str(space), "--storage-path", str(tmp_path), "--name", "n1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, _, children = _runs(tmp_path, "n1")
    assert len(children) == 4
    by_decay = {}
    for run in children:
        decay = float(run.data.params["optim.weight_decay"])
        by_decay.setdefault(decay, []).append(run)
    assert set(by_decay) == {0.0005, 1.0}, "seed 1 must sample both values"
    for run in by_decay[1.0]:
        assert run.data.tags["dejavu.status"] == "failed" and run.info.status == "FAILED"
        assert run.data.tags["dejavu.failure_reason"].startswith(
            "NonFiniteLossError: loss became")
    for run in by_decay[0.0005]:
        assert run.data.tags["dejavu.status"] == "completed"
