"""A search whose trials are two data-parallel ranks each (Ray Train inside Tune, gloo on
the CPU), end to end: one MLflow run per trial, written by rank 0, every epoch once; on two
nodes, one rank killed mid-epoch and the trial resumed from its checkpoint."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.cluster import (
    QUICK,
    assert_accounted_once,
    kill,
    ray_cluster,
    search_meta,
    trial_runs,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "optim.epochs=2", "--set", "data.num_train=64", "--set", "data.num_val=16",
         "--set", "model.width=8", "--set", "dejavu.crm.width=8", "--set", "device=cpu", *QUICK]


@pytest.mark.integration
@pytest.mark.slow
def test_a_search_of_two_rank_trials_records_each_trial_once(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dejavu_tune.search", "--num-samples", "1", "--storage-path",
         str(tmp_path), "--name", "ddp", "--workers-per-trial", "2", "--cpus-per-trial", "2",
         *SMALL], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    meta = search_meta(tmp_path, "ddp")
    client, children = trial_runs(meta)
    assert sorted(r.data.tags["dejavu.kind"] for r in children) == ["baseline", "trial"]
    for run in children:
        tags = run.data.tags
        assert tags["dejavu.status"] in ("completed", "stopped_early"), tags
        assert re.fullmatch(r"2 ranks on 1 node: [\d.]+ \[0, 1\]", tags["dejavu.ranks"]), tags
        history = client.get_metric_history(run.info.run_id, "val_miou")
        assert [m.step for m in history] == list(range(1, len(history) + 1))
        assert 0.0 <= history[-1].value <= 1.0


WORKER_IP = "127.0.0.2"


def _rank_pids(node: subprocess.Popen) -> list[int]:
    """The Ray Train workers (the ranks) that run under ``node``'s `ray start` session."""
    out = subprocess.run(["pgrep", "-f", "RayTrainWorker"], capture_output=True, text=True)
    pids = []
    for pid in map(int, out.stdout.split()):
        try:
            if os.getsid(pid) == node.pid:
                pids.append(pid)
        except ProcessLookupError:
            continue
    return pids


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.cluster
def test_a_rank_killed_mid_epoch_on_a_two_node_cluster_resumes_its_trial(tmp_path):
    # Two nodes of 2 CPUs and a trial of 3 CPUs as 2 ranks: a rank needs 1.495, so each
    # node holds exactly one (the trial's own 0.01 fits beside either).
    storage, epochs = tmp_path / "runs", 4
    with ray_cluster(tmp_path, [("127.0.0.1", 2, 0), (WORKER_IP, 2, 0)]) as (address, nodes):
        driver = subprocess.Popen(
            [sys.executable, "-m", "dejavu_tune.search", "--address", address,
             "--storage-path", str(storage), "--name", "kr", "--num-samples", "1",
             "--max-failures", "2", "--workers-per-trial", "2", "--cpus-per-trial", "3",
             "--set", "search.baseline=false", "--grace-period", str(epochs),
             *SMALL, "--set", f"optim.epochs={epochs}", "--set", "data.num_train=256"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        try:
            def a_checkpoint_and_the_worker_nodes_rank():
                assert driver.poll() is None, driver.stdout.read()[-3000:]
                if not list((storage / "kr" / "search").glob("*/checkpoint_*/trainer.pt")):
                    return None
                return _rank_pids(nodes[1])

            (victim,) = wait_until(a_checkpoint_and_the_worker_nodes_rank, 600,
                                   "a checkpoint of the two-rank trial", poll=0.2)
            os.kill(victim, signal.SIGKILL)  # the worker node's rank, mid-epoch
            killed_at = time.monotonic()
            out, _ = driver.communicate(timeout=900)
            recovered_s = time.monotonic() - killed_at
        finally:
            kill(driver)
    assert driver.returncode == 0, out[-4000:]
    (run,) = assert_accounted_once(storage, "kr", trials=1)  # one run, every epoch once
    tags = run.data.tags
    assert tags["dejavu.status"] == "completed" and run.info.status == "FINISHED", tags
    assert int(tags["dejavu.resumed_from_epoch"]) >= 1, tags
    client = trial_runs(search_meta(storage, "kr"))[0]
    history = client.get_metric_history(run.info.run_id, "val_miou")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(
        range(1, epochs + 1))
    # the restarted ranks ran on both nodes again (the head's IP is Ray's pick)
    placed = re.fullmatch(r"2 ranks on 2 nodes: ([\d.]+) \[(\d)\]; ([\d.]+) \[(\d)\]",
                          tags["dejavu.ranks"])
    assert placed and WORKER_IP in placed.group(1, 3), tags["dejavu.ranks"]
    assert sorted(placed.group(2, 4)) == ["0", "1"], tags["dejavu.ranks"]
    print(f"killed rank: the trial resumed from epoch {tags['dejavu.resumed_from_epoch']} of "
          f"{epochs} and finished {recovered_s:.1f} s after the kill")

def _space(tmp_path, text):
    from dejavu_tune.search.space_file import load_space

    path = tmp_path / "space.yaml"
    path.write_text(text)
    return load_space(str(path))


def test_a_trial_is_one_rank_per_gpu_above_one_or_as_many_workers_as_asked(tmp_path):
    from dejavu_tune.search.space import Resources

    assert Resources(cpu=8, gpu=4).ranks == 4 and Resources(cpu=8, gpu=4).per_rank == (2, 1)
    assert Resources(cpu=2, workers=2).per_rank == (1, 0) and Resources(gpu=0.5).ranks == 1
    # a CRM pre-training holds one rank's share: one process, one GPU
    assert Resources(cpu=8, gpu=4).one_rank() == Resources(cpu=2, gpu=1)
    assert Resources(cpu=2, gpu=0.5).one_rank() == Resources(cpu=2, gpu=0.5)
    space = _space(tmp_path, "resources: {cpu: 2, workers: 2}\n")
    assert space.resources.ranks == 2


@pytest.mark.parametrize("text, message", [
    ("resources: {workers: 1.5}\n", r"resources.workers: 1.5 is not allowed: expected an "
                                    "integer"),
    ("resources: {gpu: 3, workers: 2}\n", r"resources.gpu: 3 is not allowed with 2 "
                                          r"data-parallel workers: expected 0 \(CPU ranks\) "
                                          r"or 2 \(one GPU per worker\)"),
    ("fixed: {optim: {batch_size: 9}}\nresources: {workers: 2}\n",
     r"fixed.optim.batch_size: 9 is not allowed with 2 data-parallel workers per trial: it "
     "is the global batch, expected a multiple of 2"),
])
def test_a_data_parallel_trial_that_cannot_run_is_refused_before_ray(tmp_path, text, message):
    from dejavu_tune.search.space import SpaceError

    with pytest.raises(SpaceError, match=message):
        _space(tmp_path, text)
