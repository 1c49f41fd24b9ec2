"""The driver's steps on the landscape trainer (the real driver, Ray Tune, Optuna, ASHA
and MLflow; no training): each step runs what the one plan of the run budget
(``search.run_plan``) says it runs, the parent run's summary counts the same, and the
terminal shows the search's own progress lines instead of Ray's."""

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
from dejavu_tune.tracking.runs import get_run

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
    assert metrics["trials"] == runs.trials
    assert len(confirm) == metrics["confirmation_runs"] <= runs.confirmation
