"""Real searches end to end: local Ray, Optuna + ASHA, a SQLite MLflow store."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from helpers.cluster import QUICK, search_meta, trial_runs

from dejavu_tune.raytune.search_algorithms import study_storage
from dejavu_tune.search.driver import STUDY_JOURNAL
from dejavu_tune.tracking.runs import MLFLOW_STATUS, figure_steps

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "optim.epochs=2", "--set", "data.num_train=64", "--set", "data.num_val=16",
         "--set", "model.width=8", "--set", "dejavu.crm.width=8", "--set", "device=cpu", *QUICK]


def _search(*args, timeout=600, **kwargs):
    return subprocess.run([sys.executable, "-m", "dejavu_tune.search", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def _runs(storage: Path, name: str):
    meta = search_meta(storage, name)
    client, children = trial_runs(meta)
    return client, meta, children


@pytest.mark.integration
@pytest.mark.slow
def test_search_end_to_end_logs_every_trial_to_mlflow(tmp_path):
    # system metrics sampled often enough that every trial's run gets some
    proc = _search("--num-samples", "3", "--storage-path", str(tmp_path), "--name", "s1",
                   "--set", "search.system_metrics=on",
                   "--set", "search.system_metrics_interval=0.2", *SMALL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # without replicates and confirmation (QUICK) the search says its best is unconfirmed
    assert "not confirmed: " in proc.stdout
    assert "mlflow ui --backend-store-uri" in proc.stdout
    client, meta, children = _runs(tmp_path, "s1")
    assert len(children) == 4  # the baseline + 3 sampled trials
    kinds = sorted(r.data.tags["dejavu.kind"] for r in children)
    assert kinds == ["baseline", "trial", "trial", "trial"]
    assert len({r.data.tags["dejavu.trial_id"] for r in children}) == 4
    for run in children:
        tags, params = run.data.tags, run.data.params
        assert tags["dejavu.status"] in ("completed", "stopped_early"), tags
        # stopped trials show as killed, so the runs table tells them from completed ones
        assert run.info.status == MLFLOW_STATUS[tags["dejavu.status"]]
        history = client.get_metric_history(run.info.run_id, "val_miou")
        assert [m.step for m in history] == list(range(1, len(history) + 1))
        assert {"task_loss", "val_miou", "sec_per_iter"} <= set(run.data.metrics)
        # one figure per epoch, as MLflow images at their steps
        assert figure_steps(meta["tracking_uri"], run.info.run_id) == {m.step for m in history}
        # MLflow's system metrics, logged from the trial's Ray worker into the search's store
        assert {"system/cpu_utilization_percentage",
                "system/system_memory_usage_megabytes"} <= set(run.data.metrics)
        # the shared learning rate, fixed at the baseline's value, shown on every run
        assert float(params["optim.lr"]) > 0
        # its description: how it ended, its last figure whole (the artifact it links)
        assert tags["mlflow.note.content"].startswith(f"**{run.info.run_name}**: ")
        assert "regeneration.png" in {a.path for a in client.list_artifacts(run.info.run_id)}
        if tags["dejavu.kind"] == "baseline":
            assert params == {"dejavu.enabled": "False", "optim.lr": params["optim.lr"]}
            continue
        assert {"dejavu_loss", "mse", "lpips", "gain", "crm_reliance",
                "regen_grad_ratio", "gain_pts", "val_miou_pts", "baseline_pts"
                } <= set(run.data.metrics)
        # the display copies: the exact values in mIoU points, to a hundredth
        m = run.data.metrics
        assert m["val_miou_pts"] == round(100 * history[-1].value, 2)
        assert m["gain_pts"] == round(100 * m["gain"], 2) or abs(
            m["gain_pts"] - 100 * m["gain"]) <= 0.005 + 1e-9
        if tags["dejavu.status"] == "stopped_early":  # why, in its tag and description
            assert tags["dejavu.stopped_by"].startswith("ASHA at epoch "), tags
            assert f"Stopped by {tags['dejavu.stopped_by']}." in tags["mlflow.note.content"]
        else:
            assert "dejavu.stopped_by" not in tags and "final_gain_pts" in m
        assert run.data.tags["dejavu.inert"] in ("true", "false")
        kind = params["dejavu.redaction.kind"]
        # Only the parameters that apply to this trial are logged.
        assert ("dejavu.redaction.threshold" in params) == (kind == "random_blocks")
        assert ("dejavu.crm.stages" in params) == (params["dejavu.crm.kind"] == "crm_f")
        assert ("dejavu.crm.steps" in params) == (params["dejavu.crm.kind"] == "crm_r")
    parent = client.get_run(meta["parent_run_id"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"space.yaml", "summary.md", "best_config.json", "optimization_history.png",
            "optuna_analysis.html"} <= artifacts
    for plot in ("param_importances", "parallel_coordinate", "slice"):
        assert f"{plot}.png" in artifacts or f"{plot}.txt" in artifacts, artifacts
    assert parent.data.tags["dejavu.verdict"] == "not confirmed"
    assert "best_single_seed_val_miou" in parent.data.metrics
    # the CRM stage: one pre-training run per CRM architecture the trials used, each with
    # its figure, and every DejaVu trial started from stored weights
    _, everything = trial_runs(meta, pretrainings=True)
    stored = {r.data.tags["dejavu.crm_stored"].rsplit("/", 1)[-1] for r in everything
              if r.data.tags["dejavu.kind"] == "crm_pretrain"}
    for run in children:
        # "stored crm_f S=2 · 5 redaction kinds (1a2b3c4d)": the CRM by name, its store key
        origin = run.data.tags["dejavu.crm_init"]
        named = re.fullmatch(r"stored (crm_[fr] [SK]=\d+ · .+) \(([0-9a-f]{8})\)", origin)
        assert origin == "none" if run.data.tags["dejavu.kind"] == "baseline" else (
            named is not None and any(key.startswith(named[2]) for key in stored)), origin


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


# Real numerical faults, no injection: the parameter's bad value diverges within a few
# iterations, its good value trains normally.
DIVERGING = {
    # SGD with lr 10 and weight decay 1 multiplies the weights by -9 every step: the loss
    # overflows to inf/NaN within ~20 iterations.
    "exploding weights": ("optim: {epochs: 1, batch_size: 2, lr: 10.0, momentum: 0.0}\n"
                          "  dejavu: {enabled: false}\n",
                          "optim.weight_decay", [0.0005, 1.0],
                          # the gradients overflow first (the loss is still finite), or the loss
                          r"(NonFiniteGradientError: the network's gradient norm|"
                          r"NonFiniteLossError: loss) became (nan|inf)"),
    # A regeneration loss weighted 1000 at lr 0.3: the CRM's outputs diverge to inf/NaN
    # within a few iterations while the task loss is still finite (at lr 0.1 they can
    # stay finite at 1e15, which is no divergence the trainer can call one)
    "diverging CRM": ("optim: {epochs: 1, batch_size: 4, lr: 0.3}\n"
                      "  dejavu: {crm: {kind: crm_f, width: 8}, redaction: {kind: checkerboard}}\n",
                      "dejavu.loss.gamma1", [1.0, 1000.0],
                      r"(NonFiniteLossError: loss became (nan|inf) .*mse=(nan|inf)|"
                      r"NonFiniteGradientError: the CRM's gradient norm became)"),
}


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(DIVERGING))
def test_diverging_trials_are_failed_with_reason_and_optuna_is_told(tmp_path, fault):
    fixed, key, (good, bad), named = DIVERGING[fault]
    space = tmp_path / "diverge.yaml"
    space.write_text(
        "fixed:\n"
        "  device: cpu\n"
        "  data: {num_train: 128, num_val: 16}\n"
        "  model: {width: 8}\n"
        f"  {fixed}"
        "params:\n"
        f"  {key}: {{type: categorical, choices: [{good}, {bad}]}}\n"
        "search: {num_samples: 4, max_concurrent: 2, baseline: false, seed: 1}\n"
        "crm_pretrain: {iterations: 30, min_reliance: 0}\n")  # a stored CRM, in seconds
    proc = _search("--space", str(space), "--storage-path", str(tmp_path), "--name", "n1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, _, children = _runs(tmp_path, "n1")
    assert len(children) == 4
    by_value = {}
    for run in children:
        by_value.setdefault(float(run.data.params[key]), []).append(run)
    assert set(by_value) == {good, bad}, "seed 1 must sample both values"
    for run in by_value[bad]:
        assert run.data.tags["dejavu.status"] == "failed" and run.info.status == "FAILED"
        reason = run.data.tags["dejavu.failure_reason"]
        assert re.match(named, reason), reason
    for run in by_value[good]:
        assert run.data.tags["dejavu.status"] == "completed"
    # Optuna was told the truth: FAIL without a value, COMPLETE with the final one.
    study = json.loads((tmp_path / "n1" / "optuna_trials.json").read_text())
    told = {t["trial_id"]: t for t in study}
    assert len(study) == len(told) == 4
    for run in children:
        entry = told[run.data.tags["dejavu.trial_id"]]
        if run.data.tags["dejavu.status"] == "failed":
            assert entry["state"] == "FAIL" and entry["value"] is None, entry
        else:
            assert entry["state"] == "COMPLETE", entry
            assert entry["value"] == pytest.approx(run.data.metrics["val_miou"]), entry


@pytest.mark.integration
def test_a_trial_out_of_memory_has_its_own_status_numbers_and_count(tmp_path):
    # the DejaVu runs of this landscape ask the allocator for a petabyte in epoch 2
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    env.pop("RAY_ADDRESS", None)
    proc = _search("--storage-path", str(tmp_path), "--name", "oom", "--num-samples", "3",
                   "--set", "search.trainer=helpers.planted:too_large", "--set", "optim.epochs=2",
                   "--set", "dejavu.crm.init=scratch", "--set", "device=cpu", *QUICK, env=env)
    # every DejaVu trial failed: the search ends on their error, and it says which one
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "out of memory" in proc.stdout, proc.stdout[-3000:]
    _, meta, children = _runs(tmp_path, "oom")
    statuses = sorted(r.data.tags["dejavu.status"] for r in children)
    assert statuses == ["completed", "out_of_memory", "out_of_memory", "out_of_memory"]
    for run in children:
        if run.data.tags["dejavu.status"] == "out_of_memory":
            reason = run.data.tags["dejavu.failure_reason"]
            assert "can't allocate memory" in reason and run.info.status == "FAILED"
            assert re.search(r"\(cpu: peak resident set of the trial's process \d+ MiB\)$",
                             reason), reason
            assert run.data.metrics["compute_s"] >= 0  # its first epoch is kept
    assert "3 ran out of memory (status out_of_memory)" in proc.stderr
    study = optuna.load_study(study_name="search",
                              storage=study_storage(str(tmp_path / "oom" / STUDY_JOURNAL)))
    assert [t.state.name for t in study.trials] == ["FAIL"] * 3


@pytest.mark.integration
def test_a_crm_short_of_reliance_stops_the_search_before_any_trial(tmp_path):
    space = tmp_path / "short.yaml"
    space.write_text(
        "fixed:\n"
        "  device: cpu\n"
        "  data: {num_train: 32, num_val: 8, image_size: 32}\n"
        "  model: {width: 8}\n"
        "  dejavu: {crm: {kind: crm_f, width: 8}}\n"
        "params:\n"
        "  dejavu.loss.gamma: {type: float, low: 0.1, high: 1.0, log: true}\n"
        "search: {num_samples: 2, baseline_trials: 0, baseline_seeds: 0, confirm_top: 0}\n"
        # no 10-iteration CRM regenerates 99 % better from the labels than without them
        "crm_pretrain: {iterations: 5, max_iterations: 10, min_reliance: 0.99}\n")
    proc = _search("--space", str(space), "--storage-path", str(tmp_path), "--name", "short")
    assert proc.returncode == 1, proc.stderr[-3000:]
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert re.match(r"error: CRM short of reliance: the CRM crm_f S=\d .* reached a reliance "
                    r"of -?\d\.\d\d on the ground-truth conditioning after 10 iterations, "
                    r"below crm_pretrain.min_reliance=0.99: raise", line), line
    client, meta, children = _runs(tmp_path, "short")
    assert children == []  # no baseline, no trial
    parent = client.get_run(meta["parent_run_id"])
    assert parent.data.tags["dejavu.verdict"] == "CRM short of reliance"
    assert parent.data.tags["dejavu.status"] == "failed"
    # the CRM's own run says how far it got
    _, crm_runs = trial_runs(meta, pretrainings=True)
    (crm,) = [r for r in crm_runs if r.data.tags.get("dejavu.kind") == "crm_pretrain"]
    assert crm.data.metrics["iterations"] == 10 and crm.data.metrics["reliance"] < 0.99
