"""The team tracking server of ``docker/docker-compose.yml``, for real: its exact mlflow
command and environment against a real PostgreSQL (no Docker engine needed), a search
logging through it, and the database going away mid-search."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers.cluster import (
    QUICK,
    assert_accounted_once,
    assert_records_complete,
    kill,
    search_meta,
    trial_runs,
    tune_epochs,
    wait_until,
)
from helpers.postgres import ComposeTrackingServer, postgres_bindir
from PIL import Image

from dejavu_tune.tracking.runs import figure_steps

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "data.num_val=16", "--set", "model.width=8", "--set", "dejavu.crm.width=8",
         "--set", "device=cpu", *QUICK]

if postgres_bindir() is None and os.environ.get("DEJAVU_REQUIRE_POSTGRES") != "1":
    pytest.skip("PostgreSQL's server is not installed (apt-get install postgresql; .ci/run "
                "installs it and sets DEJAVU_REQUIRE_POSTGRES=1)", allow_module_level=True)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def server(tmp_path):
    server = ComposeTrackingServer(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.close()


def _search(server: ComposeTrackingServer, storage: Path, name: str, *args: str,
            **popen: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dejavu_tune.search", "--tracking-uri", server.uri,
         "--storage-path", str(storage), "--name", name, *args, *SMALL],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, env={k: v for k, v in os.environ.items()
                                     if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")},
        **popen)


def test_the_compose_server_starts_on_postgres_and_a_search_logs_through_it(server, tmp_path):
    # The password reaches the server through its environment, never a command line.
    lines = server.command_lines()
    assert any(" server " in line for line in lines), lines
    assert not [line for line in lines if server.password in line]

    storage = tmp_path / "runs"
    driver = _search(server, storage, "pg", "--num-samples", "2", "--set", "optim.epochs=2",
                     "--set", "data.num_train=64")
    try:
        out, _ = driver.communicate(timeout=600)
    finally:
        kill(driver)
    assert driver.returncode == 0, out[-3000:]
    assert server.password not in out
    meta = search_meta(storage, "pg")
    assert meta["tracking_uri"] == server.uri
    assert not (storage / "mlflow.db").exists()  # nothing went to the embedded store

    # Everything read back through the server: one child per trial, every epoch once.
    runs = assert_accounted_once(storage, "pg", trials=3)
    assert_records_complete(storage, "pg")
    client, _ = trial_runs(meta, server.uri)
    epochs = tune_epochs(storage, "pg")
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            trial = run.data.tags["dejavu.trial_id"]
            history = client.get_metric_history(run.info.run_id, "val_miou")
            assert sorted(m.step for m in history) == list(range(1, epochs[trial] + 1))
            key = ("dejavu.enabled" if run.data.tags["dejavu.kind"] == "baseline"
                   else "dejavu.redaction.kind")
            assert key in run.data.params, run.data.params
            assert not [v for v in {**run.data.params, **run.data.tags}.values()
                        if server.password in v]
            # Figures come back through the server's proxied artifact store.
            assert figure_steps(server.uri, run.info.run_id)
            first = next(a.path for a in client.list_artifacts(run.info.run_id, "images")
                         if a.path.endswith(".png"))
            png = client.download_artifacts(run.info.run_id, first, f"{tmp}/{trial}")
            with Image.open(png) as figure:
                assert figure.format == "PNG" and figure.width > 100
        best = json.loads(Path(client.download_artifacts(
            meta["parent_run_id"], "best_config.json", tmp)).read_text())
    # confirmation off: nothing recommended; the best trial is named, unconfirmed
    assert best["config"] is None and best["recommended"] is False
    assert best["unconfirmed"]["config"]["dejavu"]["enabled"] is True
    parent = client.get_run(meta["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["dejavu.status"] == "completed"
    # The artifacts are in the server's volume, not on the client's side.
    assert any((tmp_path / "volumes" / "mlartifacts").rglob("regeneration+step+*.png"))


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_the_database_away_for_30_s_loses_and_duplicates_nothing(server, tmp_path, mode):
    storage = tmp_path / "runs"
    # Trials of a few seconds an epoch, started throughout the outage; ASHA stops some of
    # them right after the database is back, while their queues are still catching up.
    # The paced landscape: 1.5 s of wall time an epoch and no compute, no CRM stage (what
    # is tested is the record, not the training: real trials log through it above).
    driver = _search(server, storage, "blink", "--num-samples", "6", "--max-concurrent", "2",
                     "--grace-period", "1", "--set", "optim.epochs=6",
                     "--set", "search.trainer=dejavu_tune.train.landscape:paced",
                     "--set", "dejavu.crm.init=scratch")
    try:
        def first_sampled_trial_logging():
            assert driver.poll() is None, driver.stdout.read()[-3000:]
            if not (storage / "blink" / "search.json").exists():
                return False
            runs = trial_runs(search_meta(storage, "blink"), server.uri)[1]
            return any("compute_s" in r.data.metrics for r in runs
                       if r.data.tags.get("dejavu.kind") == "trial")

        wait_until(first_sampled_trial_logging, 300, "a sampled trial's first epoch", poll=0.5)
        server.postgres.stop(mode)
        stopped_at = time.monotonic()
        reported_before = sum(tune_epochs(storage, "blink").values())
        time.sleep(30)
        reported_during = sum(tune_epochs(storage, "blink").values()) - reported_before
        server.postgres.start()
        restarted_at = time.monotonic()
        out, _ = driver.communicate(timeout=900)
        finished_s = time.monotonic() - restarted_at
    finally:
        kill(driver)
    assert driver.returncode == 0, out[-3000:]
    assert reported_during >= 2, reported_during  # training went on without the database
    runs = assert_accounted_once(storage, "blink", trials=7)
    assert_records_complete(storage, "blink")
    assert all(r.data.tags["dejavu.status"] in ("completed", "stopped_early") for r in runs)
    backfilled = out.count("logged from Tune's results")
    figures = out.count("logged from its last checkpoint")
    print(f"database stopped ({mode}) for 30 s: {reported_during} epochs reported meanwhile; "
          f"{backfilled} epochs and {figures} figures delivered by the driver's backfill; "
          f"the search finished {finished_s:.1f} s after the restart "
          f"({time.monotonic() - stopped_at:.0f} s after the stop)")
