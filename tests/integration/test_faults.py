"""Fault injection with real processes: each test ends with the same invariants
(``helpers.cluster.assert_accounted_once``): every trial accounted for exactly once in
Tune's results, in MLflow and in the Optuna study, none left RUNNING."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.cluster import (
    QUICK,
    MlflowServer,
    assert_accounted_once,
    best_config,
    free_port,
    kill,
    search_meta,
    trial_runs,
    tune_epochs,
    undisturbed_best,
    wait_until,
)
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "data.num_train=256", "--set", "data.num_val=16", "--set", "model.width=8",
         "--set", "dejavu.crm.width=8", "--set", "device=cpu", *QUICK]


def _saved_state(search_dir: Path, number: int) -> tuple[str, int] | None:
    """(status, last reported epoch) of trial ``number`` in the driver's saved experiment
    state, None before it has one. Tune registers a checkpoint in a task after the result
    that carries it and holds the trial's next epoch until then, so a saved state at
    epoch 2 holds the checkpoint of epoch 1; a checkpoint directory alone is not enough
    (a driver killed before registering it restarts the trial from scratch)."""
    for state in search_dir.glob("experiment_state-*.json"):
        try:
            trials = json.loads(state.read_text())["trial_data"]
        except (OSError, ValueError, KeyError):  # being written
            continue
        for trial, runtime in trials:
            last = json.loads(runtime).get("last_result") or {}
            if str(last.get("experiment_tag", "")).startswith(f"{number}_"):
                return json.loads(trial)["status"], int(last.get("training_iteration", 0))
    return None


def _trial_pids(driver: subprocess.Popen) -> list[int]:
    """Processes running a function trainable (Ray titles them ray::ImplicitFunc) of this
    test's driver: its own session only, never another search's on the same machine."""
    out = subprocess.run(["pgrep", "-s", str(os.getsid(driver.pid)), "-f", "ray::ImplicitFunc"],
                         capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


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
            # and Tune has taken both results in (it registers a checkpoint with its
            # result: a file on disk alone may not be the trial's newest yet, and on a
            # busy machine it then restored the intact one with nothing to skip)
            results = [line for path in (storage / "kw" / "search").glob("*/result.json")
                       for line in path.read_text().splitlines()]
            return found if len(found) >= 2 and len(results) >= 2 else None

        newest = wait_until(two_checkpoints, 300, "two checkpoints", poll=0.1)[-1]
        # The newest checkpoint is damaged on disk, then the trial's worker dies mid-epoch.
        newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
        pids = _trial_pids(driver)
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
             "--set", "optim.epochs=1", *SMALL,
             # what is tested is joining Ray, not training: the landscape, no CRM stage
             "--set", "search.trainer=dejavu_tune.train.landscape:trainer",
             "--set", "dejavu.crm.init=scratch"],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
            env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    finally:
        if saved is None:
            remembered.unlink(missing_ok=True)
        else:
            remembered.write_text(saved)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_accounted_once(tmp_path / "runs", "dead", trials=2)


@pytest.mark.integration
@pytest.mark.slow
def test_tracking_server_away_for_60_s_stalls_no_trial_and_loses_no_metric(tmp_path):
    server = MlflowServer(tmp_path)
    storage = tmp_path / "runs"
    # Long enough that the trials outlive the outage: the epochs they trained meanwhile go
    # through their own queues once the server is back. The paced landscape takes 1.5 s
    # an epoch and no compute (105 s a trial): the real driver, Ray, queues and server
    # without 6 minutes of training per search (15 min for the test before)
    epochs = 70
    args = ["--num-samples", "2", "--max-concurrent", "3", "--set", f"optim.epochs={epochs}",
            "--set", f"search.grace_period={epochs}", *SMALL,
            "--set", "search.trainer=dejavu_tune.train.landscape:paced",
            "--set", "dejavu.crm.init=scratch",  # the landscape trains no CRM
            "--set", "resources.cpu=0.5"]  # no compute: all 3 trials at once on 2 cores
    # The same landscape unpaced: the same values in seconds, so the reference costs no
    # 105 s of waiting
    reference = undisturbed_best(tmp_path / "calm", "calm", [
        *args, "--set", "search.trainer=dejavu_tune.train.landscape:trainer"])
    try:
        server.start()
        driver = subprocess.Popen(
            [sys.executable, "-m", "dejavu_tune.search", "--storage-path", str(storage),
             "--tracking-uri", server.uri, "--name", "away", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        try:
            def every_trial_logging():
                assert driver.poll() is None, driver.stdout.read()[-3000:]
                if not (storage / "away" / "search.json").exists():
                    return False
                runs = trial_runs(search_meta(storage, "away"))[1]
                return len(runs) == 3 and all("compute_s" in r.data.metrics for r in runs)

            wait_until(every_trial_logging, 300, "every trial's first epoch in MLflow", poll=0.5)
            server.stop()
            stopped_at = time.monotonic()
            reported_before = sum(tune_epochs(storage, "away").values())
            time.sleep(60)
            reported_during = sum(tune_epochs(storage, "away").values()) - reported_before
            server.start()
            restarted_at = time.monotonic()
            out, _ = driver.communicate(timeout=900)
            finished_s = time.monotonic() - restarted_at
        finally:
            kill(driver)
        (tmp_path / "driver.log").write_text(out)  # kept by pytest for a failure's reading
        assert driver.returncode == 0, out[-3000:]
        # The trials kept training while the server was away.
        assert reported_during >= 3, reported_during
        runs = assert_accounted_once(storage, "away", trials=3)
        # Epochs a trial's queue had not delivered when Tune stopped it (ASHA ends every trial
        # at max_t) come from the driver's backfill; either way each step is there once. The
        # trials' own queues delivered most of what was trained during the outage.
        backfilled = out.count("logged from Tune's results")
        assert backfilled < reported_during, (backfilled, reported_during)
        assert all(r.data.tags["dejavu.status"] == "completed" for r in runs)
        assert best_config(storage, "away") == reference
        client = MlflowClient(server.uri)
        for run in runs:
            history = client.get_metric_history(run.info.run_id, "val_miou")
            assert sorted(m.step for m in history) == list(range(1, epochs + 1))
    finally:
        server.stop()
    print(f"tracking server away 60 s: {reported_during} epochs reported meanwhile, "
          f"{backfilled} of {3 * epochs} logged by the driver's backfill; the search finished "
          f"{finished_s:.1f} s after the restart ({time.monotonic() - stopped_at:.0f} s after "
          "the stop)")


def _search(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dejavu_tune.search", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.integration
@pytest.mark.slow
def test_killed_driver_resumes_to_the_same_best_configuration_as_an_undisturbed_run(tmp_path):
    # One trial at a time and a seeded TPE: the undisturbed run is the reference. The
    # paced landscape (1.5 s an epoch, no compute) keeps a trial running while the driver
    # dies, the unpaced one gives the reference the same values at once (real training's
    # resume from a checkpoint: the killed-worker test above).
    args = ["--num-samples", "4", "--max-concurrent", "1", "--seed", "3",
            "--storage-path", str(tmp_path), *SMALL, "--set", "optim.epochs=8",
            "--grace-period", "4",  # ASHA's rungs at 4 and 8: its state resumes too
            "--set", "dejavu.crm.init=scratch"]  # the landscape trains no CRM
    start = time.monotonic()
    calm = _search(*args, "--set", "search.trainer=dejavu_tune.train.landscape:trainer",
                   "--name", "calm")
    calm_s = time.monotonic() - start
    assert calm.returncode == 0, calm.stderr[-3000:]
    driver = subprocess.Popen(
        [sys.executable, "-m", "dejavu_tune.search", *args,
         "--set", "search.trainer=dejavu_tune.train.landscape:paced", "--name", "killed"],
        cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        def sampled_trial_checkpointed():
            assert driver.poll() is None, driver.stdout.read()[-3000:]
            # The baseline is trial 1; kill while the second (the first trial ASHA sees:
            # never stopped) runs with a registered checkpoint.
            state = _saved_state(tmp_path / "killed" / "search", 2)
            assert state is None or state[0] in ("PENDING", "RUNNING"), state
            return state is not None and state[1] >= 2

        wait_until(sampled_trial_checkpointed, 300, "a sampled trial's checkpoint", poll=0.2)
    finally:
        kill(driver)  # SIGKILL to the driver and the Ray it started
    start = time.monotonic()
    resumed = _search("--resume", "--storage-path", str(tmp_path), "--name", "killed")
    resumed_s = time.monotonic() - start
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert_accounted_once(tmp_path, "calm", trials=5)
    runs = assert_accounted_once(tmp_path, "killed", trials=5)  # baseline + 4, none twice
    assert any("dejavu.resumed_from_epoch" in r.data.tags for r in runs)
    assert best_config(tmp_path, "killed") == best_config(tmp_path, "calm")
    print(f"killed driver: undisturbed search {calm_s:.1f} s, resumed search {resumed_s:.1f} s")


def _running_in(step_dir: Path) -> bool:
    """Whether the driver's saved state of one step holds a trial running past its first
    epoch (so the kill lands inside that look, with a checkpoint registered)."""
    for state in step_dir.glob("experiment_state-*.json"):
        try:
            trials = json.loads(state.read_text())["trial_data"]
        except (OSError, ValueError, KeyError):  # being written
            continue
        if any(json.loads(trial)["status"] == "RUNNING"
               and (json.loads(runtime).get("last_result") or {}).get(
                   "training_iteration", 0) >= 1 for trial, runtime in trials):
            return True
    return False


@pytest.mark.integration
@pytest.mark.slow
def test_killed_driver_resumes_a_sequential_confirmation_in_its_second_look(tmp_path):
    # Every DejaVu configuration gains 0.05 on the landscape, so the confirmation goes on
    # to a second look; the driver dies while that look trains and the resumed one must
    # reach the undisturbed run's verdict with each look's runs once (the first look is
    # read back, not trained again).
    args = ["--num-samples", "4", "--max-concurrent", "1", "--seed", "3",
            "--storage-path", str(tmp_path), "--set", "search.baseline_trials=0",
            "--set", "search.trainer=dejavu_tune.train.landscape:from_env",
            "--set", "dejavu.crm.init=scratch", "--set", "optim.epochs=4",
            "--set", "search.grace_period=1", "--set", "device=cpu"]
    landscape = {"effect": 0.05}
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",
                                                            "MLFLOW_TRACKING_URI")}
    calm = subprocess.run([sys.executable, "-m", "dejavu_tune.search", *args, "--name", "calm"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**env, "DEJAVU_TUNE_LANDSCAPE": json.dumps(landscape)})
    assert calm.returncode == 0, calm.stderr[-3000:]
    paced = {**env, "DEJAVU_TUNE_LANDSCAPE": json.dumps({**landscape, "epoch_s": 1.0})}
    driver = subprocess.Popen([sys.executable, "-m", "dejavu_tune.search", *args,
                               "--name", "killed"], cwd=ROOT, env=paced,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    try:
        def second_look_running():
            assert driver.poll() is None, driver.stdout.read()[-3000:]
            return _running_in(tmp_path / "killed" / "confirm-2")

        wait_until(second_look_running, 420, "the confirmation's second look", poll=0.2)
    finally:
        kill(driver)
    resumed = subprocess.run([sys.executable, "-m", "dejavu_tune.search", "--resume",
                              "--storage-path", str(tmp_path), "--name", "killed"],
                             cwd=ROOT, capture_output=True, text=True, timeout=600, env=paced)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    results = {name: json.loads((tmp_path / name / "best_config.json").read_text())
               for name in ("calm", "killed")}
    for key in ("verdict", "design", "config"):
        assert results["killed"][key] == results["calm"][key], key
    assert results["killed"]["winner"]["seeds"] == results["calm"]["winner"]["seeds"]
    assert results["killed"]["verdict"] == "significant gain"
    # the baseline and its 3 replicates, 4 trials and the confirmation's runs, each once
    runs = 4 + 4 + results["calm"]["design"]["runs"]
    assert_accounted_once(tmp_path, "calm", trials=runs)
    assert_accounted_once(tmp_path, "killed", trials=runs)
