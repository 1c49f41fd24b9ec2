"""Cluster set-ups for real: the cluster YAMLs against Ray's schema, a multi-node search
over a real `mlflow server` that loses a worker node, and the cluster launcher's
`ray up` -> `ray submit` -> `ray down` on two local nodes."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cluster_helpers import kill, mlflow_server, ray_cluster, search_meta, wait_until
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "data.num_train=48", "--set", "data.num_val=16", "--set", "model.width=8",
         "--set", "dejavu.crm.width=8", "--set", "device=cpu"]
WORKER_IP = "127.0.0.2"


def _validated(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-onprem.yaml"])
def test_cluster_configs_pass_rays_schema(name):
    config = yaml.safe_load((ROOT / name).read_text())
    prepared = _validated(config)
    types = prepared["available_node_types"]
    head = prepared["head_node_type"]
    if config["provider"]["type"] == "aws":
        assert head == "head.cpu" and "GPU" not in types[head]["resources"]
        assert {"worker.gpu1", "worker.gpu4"} <= set(types)
        assert all(types[t]["min_workers"] == 0 for t in ("worker.gpu1", "worker.gpu4"))
        options = " ".join(prepared["docker"]["run_options"])
        assert "MLFLOW_TRACKING_URI=" in options and "DEJAVU_STORAGE_PATH=" in options
    else:
        # The local provider turns the IP list into one node type of exactly that many.
        workers = config["provider"]["worker_ips"]
        assert types["local.cluster.node"]["min_workers"] == len(workers)
    start = " ".join(prepared["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start  # never on a public interface
    # A typo is caught by the same check, so the test above can fail.
    broken = copy.deepcopy(config)
    broken["head_start_ray_comands"] = broken.pop("head_start_ray_commands")
    with pytest.raises(Exception, match="head_start_ray_comands"):
        _validated(broken)


def _trial_runs(uri: str, meta: dict):
    client = MlflowClient(uri)
    return client, client.search_runs(
        [meta["experiment_id"]],
        filter_string=f"tags.`mlflow.parentRunId` = '{meta['parent_run_id']}'")


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.cluster
def test_multinode_search_logs_over_http_and_survives_a_lost_worker(tmp_path):
    shared = tmp_path / "shared"  # the directory every node reaches
    with mlflow_server(tmp_path) as uri, \
            ray_cluster(tmp_path, [("127.0.0.1", 1), (WORKER_IP, 1)]) as (address, nodes):
        driver = subprocess.Popen(
            [sys.executable, "-m", "dejavu_tune.search", "--address", address,
             "--tracking-uri", uri, "--storage-path", str(shared), "--name", "mn",
             "--num-samples", "3", "--max-concurrent", "2", "--max-failures", "2",
             "--grace-period", "4", "--set", "optim.epochs=4", *SMALL,
             # epochs of a few seconds, so that the node is lost in the middle of a trial
             "--set", "data.num_train=256"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        try:
            def trial_on_worker_with_a_checkpoint():
                assert driver.poll() is None, driver.stdout.read()[-3000:]
                if not (shared / "mn" / "search.json").exists():
                    return None
                client, runs = _trial_runs(uri, search_meta(shared, "mn"))
                for run in runs:
                    if (run.data.tags.get("dejavu.node_ip") == WORKER_IP
                            and run.info.status == "RUNNING"
                            and len(client.get_metric_history(run.info.run_id,
                                                              "val_miou")) in (1, 2)):
                        return run.data.tags["dejavu.trial_id"]
                return None

            victim = wait_until(trial_on_worker_with_a_checkpoint, 300, "a trial on the worker")
            kill(nodes[1])  # the worker node's raylet and its trial processes die
            out, _ = driver.communicate(timeout=600)
        finally:
            kill(driver)
        assert driver.returncode == 0, out[-3000:]
        meta = search_meta(shared, "mn")
        assert meta["tracking_uri"] == uri  # every trial logged over HTTP
        client, runs = _trial_runs(uri, meta)
        trial_ids = [r.data.tags["dejavu.trial_id"] for r in runs]
        assert len(trial_ids) == len(set(trial_ids)) == 4  # baseline + 3, none duplicated
        assert all(r.info.status == "FINISHED" for r in runs), [r.info.status for r in runs]
        assert all(r.data.tags["dejavu.status"] == "completed" for r in runs)
        (lost,) = [r for r in runs if r.data.tags["dejavu.trial_id"] == victim]
        # It resumed from a checkpoint on the surviving node and finished all 4 epochs.
        assert int(lost.data.tags.get("dejavu.resumed_from_epoch", 0)) >= 1, lost.data.tags
        assert lost.data.tags["dejavu.node_ip"] != WORKER_IP  # the head (its IP is Ray's pick)
        steps = {m.step for m in client.get_metric_history(lost.info.run_id, "val_miou")}
        assert steps == {1, 2, 3, 4}
        artifacts = {a.path for a in client.list_artifacts(lost.info.run_id)}
        assert "regeneration.png" in artifacts  # artifacts went through the server too
        assert {r.data.tags["dejavu.kind"] for r in runs} == {"baseline", "trial"}
        assert all("gain" in r.data.metrics for r in runs if r.data.tags["dejavu.kind"] == "trial")
