"""Fault injection with real processes: each test ends with the same invariants, every
trial accounted for exactly once in Ray's results and in MLflow, none left RUNNING."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cluster_helpers import free_port, kill, search_meta, trial_runs, wait_until

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "data.num_train=256", "--set", "data.num_val=16", "--set", "model.width=8",
         "--set", "dejavu.crm.width=8", "--set", "device=cpu"]


def _trial_pids() -> list[int]:
    """Processes running a function trainable (Ray titles them ray::ImplicitFunc)."""
    out = subprocess.run(["pgrep", "-f", "ray::ImplicitFunc"], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def assert_accounted_once(storage: Path, name: str, trials: int) -> list:
    """One MLflow child run per trial, none duplicated, none still RUNNING, and every
    per-epoch metric logged once per step."""
    meta = search_meta(storage, name)
    assert meta.get("finished") is True
    client, runs = trial_runs(meta)
    ids = [r.data.tags["dejavu.trial_id"] for r in runs]
    assert len(ids) == len(set(ids)) == trials, ids
    assert all(r.info.status in ("FINISHED", "FAILED") for r in runs)
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "compute_s")]
        assert sorted(steps) == list(range(1, len(steps) + 1)), (run.info.run_id, steps)
    return runs


@pytest.mark.integration
@pytest.mark.slow
def test_killed_trial_worker_resumes_from_its_last_intact_checkpoint(tmp_path):
    storage = tmp_path / "runs"
    driver = subprocess.Popen(
        [sys.executable, "-m", "dejavu_tune.search", "--storage-path", str(storage),
         "--name", "kw", "--num-samples", "1", "--max-failures", "2",
         "--set", "search.baseline=false", "--set", "optim.epochs=4", *SMALL],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        def two_checkpoints():
            assert driver.poll() is None, driver.stdout.read()[-3000:]
            found = sorted((storage / "kw" / "search").glob("*/checkpoint_*/trainer.pt"))
            return found if len(found) >= 2 else None

        newest = wait_until(two_checkpoints, 300, "two checkpoints", poll=0.1)[-1]
        # The newest checkpoint is damaged on disk, then the trial's worker dies mid-epoch.
        newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
        pids = _trial_pids()
        assert pids, subprocess.run(["ps", "aux"], capture_output=True, text=True).stdout
        killed_at = time.monotonic()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        out, _ = driver.communicate(timeout=600)
        recovered_s = time.monotonic() - killed_at
    finally:
        kill(driver)
    assert driver.returncode == 0, out[-3000:]
    (run,) = assert_accounted_once(storage, "kw", trials=1)
    tags = run.data.tags
    assert tags["dejavu.status"] == "completed" and run.info.status == "FINISHED"
    # It fell back past the damaged checkpoint (epoch 2) to the intact one (epoch 1).
    assert tags["dejavu.resumed_from_epoch"] == "1", tags
    assert f"{newest.parent.name}/trainer.pt: damaged checkpoint" in \
        tags["dejavu.checkpoints_skipped"]
    print(f"killed worker: trial finished {recovered_s:.1f} s after the kill")


@pytest.mark.integration
@pytest.mark.slow
def test_a_dead_cluster_remembered_on_this_machine_does_not_hang_a_local_search(tmp_path):
    # A `ray start` head that was killed leaves its address in /tmp/ray; plain ray.init()
    # would keep trying to join it.
    remembered = Path("/tmp/ray/ray_current_cluster")
    saved = remembered.read_text() if remembered.exists() else None
    remembered.parent.mkdir(parents=True, exist_ok=True)
    remembered.write_text(f"127.0.0.1:{free_port()}")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "dejavu_tune.search", "--storage-path",
             str(tmp_path / "runs"), "--name", "dead", "--num-samples", "1",
             "--set", "optim.epochs=1", *SMALL, "--set", "data.num_train=32"],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
            env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    finally:
        if saved is None:
            remembered.unlink(missing_ok=True)
        else:
            remembered.write_text(saved)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_accounted_once(tmp_path / "runs", "dead", trials=2)
