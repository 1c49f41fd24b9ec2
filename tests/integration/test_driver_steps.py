"""The driver's steps on the landscape trainer (the real driver, Ray Tune, Optuna, ASHA
and MLflow; no training): each step runs what the one plan of the run budget
(``search.run_plan``) says it runs, the parent run's summary counts the same, and the
terminal shows the search's own progress lines instead of Ray's."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cluster import search_meta

from dejavu_tune.config import is_baseline
from dejavu_tune.raytune.trial_results import read_experiment
from dejavu_tune.search.run_plan import plan
from dejavu_tune.search.space_file import load_space
from dejavu_tune.tracking.runs import child_runs, get_run

ROOT = Path(__file__).resolve().parents[2]
SPACE = """fixed:
  seed: 3
  device: cpu
  data: {image_size: 32, num_train: 16, num_val: 8}
  optim: {epochs: 2}
  dejavu: {crm: {init: scratch}}
params:
  optim.lr: {type: float, low: 0.001, high: 0.1, log: true, shared: true}
  dejavu.loss.gamma: {type: float, low: 0.1, high: 2.0}
search:
  trainer: dejavu_tune.train.landscape:planted
  num_samples: 3
  max_concurrent: 2
  grace_period: 1
  baseline_trials: 2
  baseline_seeds: 2
  confirm_top: 1
  max_seeds: 4
"""


@pytest.mark.integration
@pytest.mark.slow
def test_each_step_runs_what_the_plan_says(tmp_path):
    space_file = tmp_path / "space.yaml"
    space_file.write_text(SPACE)
    runs = plan(load_space(str(space_file)))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    proc = subprocess.run([sys.executable, "-m", "dejavu_tune.search", "--space",
                           str(space_file), "--storage-path", str(tmp_path), "--name", "s"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = tmp_path / "s"
    tuning = read_experiment(root / "tuning")
    search = read_experiment(root / "search")
    assert len(tuning) == runs.tuning == 2
    assert all(not t.config or is_baseline(t.config) or "optim.lr" in t.config for t in tuning)
    baselines = [t for t in search if is_baseline(t.config)]
    assert len(baselines) == runs.baselines == 2  # the replicates; tuning's best is the third
    assert {t.config["seed"] for t in baselines} == set(runs.replicate_seeds) == {4, 5}
    assert len(search) - len(baselines) == runs.trials == 3
    confirm = [t for step in sorted(root.glob("confirm*")) for t in read_experiment(step)]
    candidates = [t for t in confirm if not is_baseline(t.config)]
    assert 0 < len(candidates) <= runs.confirmation
    # the parent run's summary counts what ran
    # the search's own progress, not Ray's: a line as each trial ends, with the counts
    out = proc.stdout
    assert "baseline tuning: 2/2 trials done, 0 running · 4/4 trial-epochs" in out, out
    assert "search: 5/5 trials done, 0 running · 10/10 trial-epochs · best val_miou" in out
    assert "Number of trials" not in out and "tensorboard" not in out.lower()
    meta = search_meta(tmp_path, "s")
    parent = get_run(meta["tracking_uri"], meta["parent_run_id"])
    assert parent.tags["dejavu.progress"].startswith("confirmation look ")
    metrics = parent.metrics
    # a confirmation run is named after the search trial it re-trains, in MLflow and here
    names = [r.name for r in child_runs(meta["tracking_uri"], meta["experiment_id"],
                                        meta["parent_run_id"])]
    assert any(n.startswith("confirm of t0") for n in names), names
    assert "confirm baseline seed 6" in names, names
    assert "  confirm of t0" in out and "(t0" in out.split("confirmation, look 1 of 2")[1]
    assert metrics["trials"] == runs.trials
    assert len(confirm) == metrics["confirmation_runs"] <= runs.confirmation
    # one name per trial: Tune's directories (and trial names) are what MLflow, the
    # terminal, optuna_trials.json and best_config.json say
    dirs = sorted(Path(t.path).name for t in search)
    assert dirs == [f"t{n:02d}" for n in range(1, 6)], dirs
    assert {f"{d} " for d in dirs} <= {n[:4] for n in names}, names
    shown = {Path(t.path).name: (f" baseline seed {t.config['seed']}"
                                  if is_baseline(t.config) else "") for t in search}
    assert all(f"  {d}{shown[d]}: completed" in out for d in dirs), out
    assert all(t.trial_id not in out for t in search)  # Ray's hex ids stay in Ray
    study = json.loads((root / "optuna_trials.json").read_text())
    dejavu = sorted(Path(t.path).name for t in search if not is_baseline(t.config))
    assert sorted(t["trial"] for t in study) == dejavu, study
    chosen = json.loads((root / "best_config.json").read_text())
    assert chosen["trial_name"] in dejavu
    retrained = {Path(t.path).name for t in confirm}
    assert "baseline_seed6" in retrained and all(
        d.startswith("baseline_seed") or d.split("_seed")[0] in dejavu for d in retrained)


@pytest.mark.integration
@pytest.mark.slow
def test_past_the_time_budget_no_trial_starts_and_the_confirmation_runs_on_the_rest(tmp_path):
    # 40 trials of 2 paced epochs (1.5 s each), 2 at once, need well over a minute: the
    # budget of 60 s (from the command's start) cuts the search, never its baselines
    space_file = tmp_path / "space.yaml"
    space_file.write_text(SPACE.replace("dejavu_tune.train.landscape:planted",
                                        "dejavu_tune.train.landscape:paced")
                          .replace("num_samples: 3", "num_samples: 40")
                          .replace("baseline_trials: 2", "baseline_trials: 0")
                          .replace("max_seeds: 4", "max_seeds: 2"))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    proc = subprocess.run([sys.executable, "-m", "dejavu_tune.search", "--space",
                           str(space_file), "--storage-path", str(tmp_path), "--name", "b",
                           "--time-budget", "60s"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    search = read_experiment(tmp_path / "b" / "search")
    baselines = [t for t in search if is_baseline(t.config)]
    ran = len(search) - len(baselines)
    assert len(baselines) == 3 and 0 < ran < 40, (len(baselines), ran)
    assert (f"time budget: search.time_budget 60s ran out in the search: {ran} of its 40 "
            f"planned trials started, {40 - ran} never did") in proc.stdout
    result = json.loads((tmp_path / "b" / "best_config.json").read_text())
    assert len(result["time_budget_cuts"]) == 1
    assert "- Time budget: search.time_budget 60s ran out in the search" in proc.stdout
    # the confirmation still ran, on the trials that completed
    assert read_experiment(tmp_path / "b" / "confirm")
