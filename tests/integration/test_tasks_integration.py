"""Every task, an ablation grid with its report, and a bring-your-own project, each through
the real search driver (local Ray, Optuna, a SQLite MLflow store)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.cluster import QUICK
from PIL import Image
from test_search_integration import SMALL, _runs, _search

from dejavu_tune.tracking.runs import figure_steps

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("task,metric", [("depth", "val_abs_rel"),
                                         ("normals", "val_normal_mean"),
                                         ("multitask", "val_miou")])
def test_each_task_trains_through_the_search(task, metric, tmp_path):
    proc = _search("--num-samples", "1", "--storage-path", str(tmp_path), "--name", task,
                   "--set", f"task.name={task}", *SMALL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, meta, children = _runs(tmp_path, task)
    assert sorted(r.data.tags["dejavu.kind"] for r in children) == ["baseline", "trial"]
    for run in children:
        assert run.data.tags["dejavu.status"] in ("completed", "stopped_early")
        assert metric in run.data.metrics
    trial = next(r for r in children if r.data.tags["dejavu.kind"] == "trial")
    if task == "multitask":  # every task's metrics and loss, from one network
        assert {"val_abs_rel", "val_normal_mean", "seg_loss", "depth_loss",
                "normals_loss"} <= set(trial.data.metrics)
    if task == "depth":  # lower is better: the summary ranks by it
        assert "val_abs_rel" in proc.stdout
    assert figure_steps(meta["tracking_uri"], trial.info.run_id)


@pytest.mark.integration
@pytest.mark.slow
def test_ablation_grid_gives_a_supplement_style_table(tmp_path):
    space = ROOT / "search_spaces" / "ablations" / "b3_crm_stages.yaml"
    proc = _search("--space", str(space), "--storage-path", str(tmp_path), "--name", "b3",
                   "--set", "optim.epochs=1", "--set", "data.num_train=32",
                   "--set", "data.num_val=16", "--set", "model.width=8",
                   "--set", "dejavu.crm.width=8", "--set", "device=cpu",
                   "--set", "dejavu.loss.gamma1=0.0", "--set", "crm_pretrain.iterations=5",
                   "--set", "crm_pretrain.min_reliance=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, meta, children = _runs(tmp_path, "b3")
    assert len(children) == (1 + 4) * 3  # (baseline + 4 stage counts) x 3 seeds
    seeds = sorted(r.data.params["seed"] for r in children)
    assert seeds == sorted(["0", "1", "2"] * 5)
    report = subprocess.run(
        [sys.executable, "-m", "dejavu_tune.report", "--experiment", meta["experiment"],
         "--search", "b3", "--tracking-uri", meta["tracking_uri"]],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    table = report.stdout
    assert "Table B.3" in table and "baseline" in table
    for stages in (1, 2, 3, 4):
        assert f"stages={stages}" in table
    assert "±" in table  # mean ± std over the three seeds


def _folder_pairs(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 4)):
        for i in range(count):
            mask = np.zeros((32, 32), dtype=np.uint8)
            mask[8:24, 4 + i:20 + i] = 1 + i % 2
            image = (rng.random((32, 32, 3)) * 60 + mask[..., None] * 80).astype(np.uint8)
            for kind, array in (("images", image), ("masks", mask)):
                (root / split / kind).mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(root / split / kind / f"{i}.png")


@pytest.mark.integration
@pytest.mark.slow
def test_bring_your_own_network_dataset_and_task(tmp_path):
    _folder_pairs(tmp_path / "pairs")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "docs" / "examples")}
    space = ROOT / "search_spaces" / "examples" / "byo.yaml"
    proc = _search("--space", str(space), "--storage-path", str(tmp_path / "runs"),
                   "--name", "byo", "--set", f"data.root={tmp_path / 'pairs'}",
                   "--set", "optim.epochs=1", "--set", "device=cpu",
                   "--set", "dejavu.loss.gamma1=0.0", "--set", "dejavu.crm.width=8", *QUICK,
                   env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, _, children = _runs(tmp_path / "runs", "byo")
    assert len(children) == 3  # baseline + 2 trials
    for run in children:
        assert run.data.tags["dejavu.status"] == "completed", run.data.tags
        assert {"val_miou", "dice_loss"} <= set(run.data.metrics)  # the plugin task's parts
    missing = _search("--space", str(space), "--storage-path", str(tmp_path / "runs"),
                      "--set", f"data.root={tmp_path / 'pairs'}", "--dry-run")  # no PYTHONPATH
    assert missing.returncode == 2
    assert "cannot import 'my_project'" in missing.stderr and "PYTHONPATH" in missing.stderr
