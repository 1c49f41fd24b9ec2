"""Credentials never reach MLflow: a planted fake secret, in the environment and in the
tracking URI, is searched for in every param, tag, metric name and artifact of a search."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cluster import QUICK, mlflow_server, search_meta
from mlflow.tracking import MlflowClient

from dejavu_tune.tracking.runs import redact

ROOT = Path(__file__).resolve().parents[2]
SECRET = "FAKE-SECRET-5d41402abc4b2a76"


def test_redact_hides_only_the_password():
    assert redact(f"http://team:{SECRET}@10.0.0.5:5000/x") == "http://team:***@10.0.0.5:5000/x"
    assert redact("http://10.0.0.5:5000") == "http://10.0.0.5:5000"
    assert redact("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None):
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            yield from _artifacts(client, run_id, info.path)
        else:
            yield info.path


@pytest.mark.integration
@pytest.mark.slow
def test_a_planted_secret_is_never_logged(tmp_path):
    env = {**__import__("os").environ, "MLFLOW_TRACKING_TOKEN": SECRET,
           "AWS_SECRET_ACCESS_KEY": SECRET, "DEJAVU_API_KEY": SECRET}
    with mlflow_server(tmp_path) as uri:
        secret_uri = uri.replace("http://", f"http://team:{SECRET}@")
        proc = subprocess.run(
            [sys.executable, "-m", "dejavu_tune.search", "--tracking-uri", secret_uri,
             "--storage-path", str(tmp_path / "runs"), "--name", "sec", "--num-samples", "2",
             "--max-concurrent", "2", "--set", "optim.epochs=1", "--set", "data.num_train=32",
             "--set", "data.num_val=16", "--set", "model.width=8",
             "--set", "dejavu.crm.width=8", "--set", "device=cpu", *QUICK],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert SECRET not in proc.stdout + proc.stderr
        assert "team:***@" in proc.stdout  # the URI is shown, its password is not
        meta = search_meta(tmp_path / "runs", "sec")
        client = MlflowClient(uri)
        runs = client.search_runs([meta["experiment_id"]])
        # the parent, the baseline, 2 trials and the 6 CRM pre-trainings (their spec and
        # stored paths are searched for the secret too)
        assert len(runs) == 10
        downloads = tmp_path / "downloads"
        for run in runs:
            data = run.data
            logged = [*data.params, *data.params.values(), *data.tags, *data.tags.values(),
                      *data.metrics]
            assert not [item for item in logged if SECRET in str(item)], run.info.run_id
            paths = list(_artifacts(client, run.info.run_id))
            assert paths  # every run has artifacts to search
            for path in paths:
                local = client.download_artifacts(run.info.run_id, path, str(downloads))
                assert SECRET.encode() not in Path(local).read_bytes(), path
