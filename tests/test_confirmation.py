"""The search's verdict against a planted truth: the real driver, Optuna, ASHA, the
baseline replicates and the paired confirmation, around a trainer whose metric is a
known function of the configuration (``dejavu_tune.train.landscape``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_helpers import assert_accounted_once, search_meta, trial_runs
from planted import EFFECT

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--set", "dejavu.crm.init=scratch", "--set", "optim.epochs=4",
        "--set", "search.grace_period=1", "--set", "device=cpu"]


def _search(storage: Path, name: str, trainer: str) -> tuple[str, dict]:
    """(what the search printed, its best_config.json) of a finished search."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-m", "dejavu_tune.search", "--storage-path",
                           str(storage), "--name", name, "--set", f"search.trainer={trainer}",
                           *FAST], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads((storage / name / "best_config.json").read_text())


@pytest.mark.integration
@pytest.mark.slow
def test_a_planted_gain_is_found_confirmed_and_called_significant(tmp_path):
    out, result = _search(tmp_path, "planted", "planted:gamma_effect")
    assert result["verdict"] == "significant gain" and result["confirmed"] is True
    winner = result["winner"]
    assert winner["config"]["dejavu.loss.gamma"] < 0.3  # where the effect was planted
    assert winner["seeds"] == [1, 2, 3]  # the replicate seeds, never the search's seed 0
    assert winner["ci_low"] > 0 and winner["ci_low"] < EFFECT < winner["ci_high"]
    assert result["config"]["dejavu"]["loss"]["gamma"] == winner["config"]["dejavu.loss.gamma"]
    # the printed lines and the parent run lead with it
    verdict_lines = out.split("\nresults:")[0].strip().splitlines()[-2:]  # before the addresses
    assert verdict_lines[0].startswith("winner:") and "significant gain" in verdict_lines[1]
    meta = search_meta(tmp_path, "planted")
    client, runs = trial_runs(meta)
    parent = client.get_run(meta["parent_run_id"])
    assert parent.data.tags["dejavu.verdict"] == "significant gain"
    assert parent.data.metrics["confirmed_ci_low"] > 0
    # every run accounted for once: 4 tuning + 3 replicates + 8 trials + 3 x 3 confirmation
    assert_accounted_once(tmp_path, "planted", trials=4 + 3 + 8 + len(result["confirmation"]) * 3)
    phases = sorted(r.data.tags["dejavu.phase"] for r in runs)
    assert phases.count("tuning") == 4
    # how many trials reach the full budget depends on the order results arrive in (ASHA
    # is asynchronous): one at least, the winner
    assert phases.count("confirm") == 3 * len(result["confirmation"]) >= 3


@pytest.mark.integration
@pytest.mark.slow
def test_no_effect_is_reported_within_noise(tmp_path):
    out, result = _search(tmp_path, "null", "dejavu_tune.train.landscape:trainer")
    assert result["verdict"] == "no gain found" and result["confirmed"] is False
    assert result["winner"] is None
    assert all(c["verdict"] == "within noise" for c in result["confirmation"])
    assert 1 <= len(result["confirmation"]) <= 3  # the full-budget trials, at most 3
    assert "no gain found" in out and "within noise" in out
