"""A search on quality and cost, and a search warm-started from it: the real driver,
Optuna (multi-objective TPE), ASHA, MLflow and the paired confirmation, around the
landscape trainer (a known metric and a stated cost per configuration)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cluster import search_meta, trial_runs

ROOT = Path(__file__).resolve().parents[2]
LANDSCAPE = ["--set", "search.trainer=dejavu_tune.train.landscape:planted",
             "--set", "dejavu.crm.init=scratch", "--set", "optim.epochs=4",
             "--set", "search.grace_period=1", "--set", "search.baseline_trials=0",
             # two looks: the front's members confirmed and judged, not the seed budget
             "--set", "search.max_seeds=5", "--set", "device=cpu"]
TWO_OBJECTIVES = "search.objectives=[val_miou, step_time_ratio]"


def _search(storage: Path, name: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    proc = subprocess.run([sys.executable, "-m", "dejavu_tune.search", "--storage-path",
                           str(storage), "--name", name, *LANDSCAPE, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.integration
@pytest.mark.slow
def test_a_two_objective_search_reports_its_front_and_a_warm_start_reuses_it(tmp_path):
    out = _search(tmp_path, "front", "--num-samples", "12", "--set", TWO_OBJECTIVES)
    assert "## Pareto front: val_miou vs step_time_ratio" in out
    result = json.loads((tmp_path / "front" / "best_config.json").read_text())
    rows = result["pareto_front"]
    assert result["objectives"] == [{"metric": "val_miou", "mode": "max"},
                                    {"metric": "step_time_ratio", "mode": "min"}]
    assert rows and all(r["step_time_ratio"] >= 1.0 for r in rows)
    # the front: no member dominates another, best quality first, cheaper as quality falls
    assert [r["val_miou"] for r in rows] == sorted((r["val_miou"] for r in rows), reverse=True)
    costs = [r["step_time_ratio"] for r in rows]
    assert costs == sorted(costs, reverse=True) and len(set(costs)) == len(costs)
    # paired confirmation of the front's members (up to confirm_top), every one of them
    # going on until its interval decides (not only the best quality)
    confirmed = [r for r in rows if r["confirmed"]]
    assert len(confirmed) == min(3, len(rows)) and all(
        r["confirmed"]["seeds"][:3] == [1, 2, 3] for r in confirmed)
    assert "dropped" not in {r["confirmed"]["verdict"] for r in confirmed}
    meta = search_meta(tmp_path, "front")
    client, _ = trial_runs(meta)
    parent = meta["parent_run_id"]
    artifacts = {a.path for a in client.list_artifacts(parent)}
    assert {"pareto_front.png", "pareto_front.html", "summary.md"} <= artifacts
    note = client.get_run(parent).data.tags["mlflow.note.content"]
    front_section = note.split("## Pareto front")[1].split("## Search trials")[0]
    assert "pareto_front.png" in front_section and "pareto_front.html" in front_section
    assert client.get_run(parent).data.params["objectives"] == (
        "val_miou (max), step_time_ratio (min)")
    # every DejaVu trial logged its cost ratios
    _, runs = trial_runs(meta)
    search = [r for r in runs if r.data.tags.get("dejavu.phase") == "search"
              and r.data.params.get("dejavu.enabled") != "False"]
    assert search and all(r.data.metrics["step_time_ratio"] > 1.0 for r in search)

    # python -m dejavu_tune.report lays the front out too, from MLflow alone
    report = subprocess.run([sys.executable, "-m", "dejavu_tune.report", "--storage-path",
                             str(tmp_path), "--search", "front"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    table = report.stdout.split("## Pareto front: val_miou vs step_time_ratio")[1]
    assert table.count("| yes") == len(rows)

    out = _search(tmp_path, "warm", "--seed", "5", "--num-samples", "4",
                  "--warm-start", "front", "--set", TWO_OBJECTIVES)
    assert "warm start from" in out and "Warm start: from" in out
    study = json.loads((tmp_path / "warm" / "optuna_trials.json").read_text())
    earlier = json.loads((tmp_path / "front" / "optuna_trials.json").read_text())
    priors = [t for t in study if t["trial_id"] is None]
    assert len(priors) == sum(t["state"] == "COMPLETE" for t in earlier)
    # the first trials this search ran are the earlier search's best configurations
    ran = sorted((t for t in study if t["trial_id"] is not None), key=lambda t: t["number"])
    best_first = [t["params"] for t in sorted(
        (t for t in earlier if t["state"] == "COMPLETE"), key=lambda t: -t["value"][0])]
    confirmed_first = [r["config"] for r in rows if r["confirmed"]]
    assert ran[0]["params"] in confirmed_first + best_first
    warm_meta = search_meta(tmp_path, "warm")
    assert warm_meta["warm_start"] == str((tmp_path / "front").resolve())
    warm_parent = client.get_run(warm_meta["parent_run_id"])
    assert warm_parent.data.params["warm_start"] == warm_meta["warm_start"]
    assert "dejavu.warm_start" in warm_parent.data.tags


def _landscape_cost(config: dict) -> float:
    """The landscape trainer's stated step_time_ratio (train.landscape.cost_ratios)."""
    crm = (0.05 * config["dejavu.crm.steps"] if config["dejavu.crm.kind"] == "crm_r"
           else 0.15 * config["dejavu.crm.stages"])
    return round(1.0 + crm + 0.2, 4)  # gamma1 > 0 everywhere in the default space


@pytest.mark.integration
@pytest.mark.slow
def test_a_hard_cost_limit_keeps_every_violator_from_the_confirmation_and_the_winner(tmp_path):
    # crm_f with 1 stage (1.35) and crm_r with 2 or 4 steps (1.30, 1.40) are within it;
    # crm_f with 2-3 stages and crm_r with 8 steps are not
    out = _search(tmp_path, "limited", "--num-samples", "10",
                  "--set", "search.constraints=[step_time_ratio <= 1.4]")
    assert "## Hard limits" in out and "step_time_ratio <= 1.4:" in out
    result = json.loads((tmp_path / "limited" / "best_config.json").read_text())
    chosen = [c["config"] for c in result["confirmation"]]
    if result["unconfirmed"]:
        chosen.append({k: v for k, v in _flat(result["unconfirmed"]["config"]).items()
                       if k.startswith("dejavu.crm.")})
    assert all(_landscape_cost(c) <= 1.4 for c in chosen)
    meta = search_meta(tmp_path, "limited")
    client, runs = trial_runs(meta)
    assert client.get_run(meta["parent_run_id"]).data.params["constraints"] == (
        "step_time_ratio <= 1.4")
    # measured because a limit names it; the winner's, if any, is within it
    search = [r for r in runs if r.data.tags.get("dejavu.phase") == "search"
              and r.data.params.get("dejavu.enabled") != "False"]
    assert all("step_time_ratio" in r.data.metrics for r in search)
    if result["winner"]:
        assert _landscape_cost(result["winner"]["config"]) <= 1.4


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
