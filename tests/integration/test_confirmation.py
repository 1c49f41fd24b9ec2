"""The search's verdict against a planted truth: the real driver, Optuna, ASHA, the
baseline replicates and the paired confirmation, around a trainer whose metric is a
known function of the configuration (``dejavu_tune.train.landscape``)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cluster import assert_accounted_once, search_meta, trial_runs
from helpers.planted import EFFECT

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--set", "dejavu.crm.init=scratch", "--set", "optim.epochs=4",
        "--set", "search.grace_period=1", "--set", "device=cpu"]


def _search(storage: Path, name: str, trainer: str, *flags: str) -> tuple[str, dict]:
    """(what the search printed, its best_config.json) of a finished search."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-m", "dejavu_tune.search", "--storage-path",
                           str(storage), "--name", name, "--set", f"search.trainer={trainer}",
                           *FAST, *flags], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads((storage / name / "best_config.json").read_text())


@pytest.mark.integration
@pytest.mark.slow
def test_the_confirmed_winners_network_is_logged_as_a_model_and_registered(tmp_path,
                                                                           monkeypatch):
    import mlflow.pytorch
    from mlflow.tracking import MlflowClient

    out, result = _search(tmp_path, "model", "helpers.planted:gamma_effect_network",
                          "--register", "dejavu-winner")
    assert result["verdict"] == "significant gain"
    model = result["model"]
    assert model["registered_name"] == "dejavu-winner" and str(model["registered_version"]) == "1"
    meta = search_meta(tmp_path, "model")
    client = MlflowClient(meta["tracking_uri"])
    logged = client.get_logged_model(model["model_id"])
    # from the winner's confirmation run on the lowest seed, with its configuration
    source = client.get_run(logged.source_run_id)
    assert source.data.tags["dejavu.phase"] == "confirm" and model["run_id"] == source.info.run_id
    assert source.data.params["seed"] == str(min(result["winner"]["seeds"]))
    # (the run's own params, at the precision its page shows; config.json is exact)
    assert abs(float(logged.params["dejavu.loss.gamma"]) - result["winner"]["config"][
        "dejavu.loss.gamma"]) < 1e-3
    assert {m.key for m in logged.metrics} >= {"heldout_miou", "paired_gain_val_miou"}
    assert "- Model: the winner's network" in out and model["model_uri"] in out
    monkeypatch.setenv("MLFLOW_TRACKING_URI", meta["tracking_uri"])
    network = mlflow.pytorch.load_model(f"models:/{model['registered_name']}/1")
    assert sum(p.numel() for p in network.parameters()) > 0
    # every run says what it trained: its whole configuration (its datasets: a trainer
    # that reads data, tests/feature/test_browser.py; the landscape reads none)
    config = json.loads(Path(client.download_artifacts(source.info.run_id, "config.json",
                                                       str(tmp_path))).read_text())
    assert config["seed"] == int(source.data.params["seed"]) and config["data"]["heldout"]


@pytest.mark.integration
@pytest.mark.slow
def test_a_planted_gain_is_found_confirmed_and_called_significant(tmp_path):
    out, result = _search(tmp_path, "planted", "helpers.planted:gamma_effect")
    assert result["verdict"] == "significant gain" and result["confirmed"] is True
    winner = result["winner"]
    assert winner["config"]["dejavu.loss.gamma"] < 0.3  # where the effect was planted
    # the replicate seeds first, then 2 more per look; never the search's seed 0
    assert winner["seeds"] == list(range(1, len(winner["seeds"]) + 1))
    assert len(winner["seeds"]) in result["design"]["looks"][1:]  # decided after a look
    # the landscape's metric after 4 epochs is its ceiling times 1 - exp(-4 / tau), tau 2:
    # the planted 0.05 is 0.0432 there, and the interval holds it
    at_budget = EFFECT * (1 - math.exp(-4 / 2.0))
    assert winner["sequential"] is True and winner["ci_low"] < at_budget < winner["ci_high"]
    assert winner["ci_low"] > 0 and result["recommended"] is True
    assert result["config"]["dejavu"]["loss"]["gamma"] == winner["config"]["dejavu.loss.gamma"]
    # the printed lines and the parent run lead with it
    verdict_lines = out.split("\nresults:")[0].strip().splitlines()[-2:]  # before the addresses
    assert verdict_lines[0].startswith("winner:") and "significant gain" in verdict_lines[1]
    meta = search_meta(tmp_path, "planted")
    client, runs = trial_runs(meta)
    parent = client.get_run(meta["parent_run_id"])
    assert parent.data.tags["dejavu.verdict"] == "significant gain"
    assert parent.data.metrics["confirmed_ci_low"] > 0
    # every run accounted for once: 4 tuning + 3 replicates + 8 trials + the confirmation's
    runs_confirming = result["design"]["runs"]
    assert_accounted_once(tmp_path, "planted", trials=4 + 3 + 8 + runs_confirming)
    phases = sorted(r.data.tags["dejavu.phase"] for r in runs)
    assert phases.count("tuning") == 4
    # how many trials reach the full budget depends on the order results arrive in (ASHA
    # is asynchronous): one at least, the winner; after the first look only the best
    # goes on, with the baseline on the new seeds
    first = 3 * len(result["confirmation"])
    later = len(winner["seeds"]) - 3
    assert phases.count("confirm") == first and runs_confirming == first + 2 * later
    assert sum(p.startswith("confirm-") for p in phases) == 2 * later
    # the held-out split: scored by the confirmation's runs and the baseline replicates
    # they pair with, never by a run any selection read (tuning, the search's trials)
    for run in runs:
        scored = "heldout_miou" in run.data.metrics
        tags = run.data.tags
        paired = tags["dejavu.phase"].startswith("confirm") or (
            tags["dejavu.phase"] == "search" and tags["dejavu.kind"] == "baseline"
            and run.data.params.get("seed") not in (None, "0"))
        assert scored == paired, (run.info.run_name, tags["dejavu.phase"])


@pytest.mark.integration
@pytest.mark.slow
def test_no_effect_is_never_a_winner_and_nothing_is_recommended(tmp_path):
    out, result = _search(tmp_path, "null", "dejavu_tune.train.landscape:trainer")
    # the landscape's paired spread (0.0042) against δ = 0.005: decided within 8 seeds, or
    # inconclusive with the seeds a decision would take; never a gain
    assert result["verdict"] in ("no gain of δ or more", "inconclusive")
    assert result["confirmed"] is False and result["recommended"] is False
    assert result["winner"] is None and result["config"] is None
    assert result["unconfirmed"]["config"]["dejavu"]["enabled"] is True
    verdicts = [c["verdict"] for c in result["confirmation"]]
    assert 1 <= len(verdicts) <= 3  # the full-budget trials, at most 3
    assert verdicts.count("dropped") == len(verdicts) - 1  # only the best went on
    assert result["verdict"] in out and "detects a gain of" in out
    # no winner, no model: the summary says so
    assert result["model"] is None and "- Model: none logged; nothing was confirmed" in out
