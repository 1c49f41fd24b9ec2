"""Cluster set-ups for real: the cluster YAMLs against Ray's schema, a multi-node search
over a real `mlflow server` that loses a worker node, and the cluster launcher's
`ray up` -> `ray submit` -> `ray down` on two local nodes."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest
import yaml
from helpers.cluster import (
    QUICK,
    assert_accounted_once,
    best_config,
    free_port,
    kill,
    mlflow_server,
    ray_cluster,
    search_meta,
    trial_runs,
    undisturbed_best,
    wait_until,
)

from dejavu_tune.tracking.runs import figure_steps

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "data.num_train=48", "--set", "data.num_val=16", "--set", "model.width=8",
         "--set", "dejavu.crm.width=8", "--set", "device=cpu", *QUICK]
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


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.cluster
def test_multinode_search_logs_over_http_and_survives_a_lost_worker(tmp_path):
    shared = tmp_path / "shared"  # the directory every node reaches
    # The paced landscape: epochs of 1.5 s of wall time and no compute, so that the node is
    # lost in the middle of a trial without minutes of training (real training's resume
    # from a checkpoint: test_faults). Up to TPE's 10 random start-up trials the
    # configurations depend on the seed alone, and with grace period = epochs nothing
    # stops early: the best is fixed by the seed, and the unpaced landscape (the same
    # values at once) is the reference.
    epochs = 8
    args = ["--num-samples", "3", "--max-concurrent", "2", "--max-failures", "2",
            "--grace-period", str(epochs), "--set", f"optim.epochs={epochs}", *SMALL,
            "--set", "search.trainer=dejavu_tune.train.landscape:paced",
            "--set", "dejavu.crm.init=scratch"]  # the landscape trains no CRM
    reference = undisturbed_best(tmp_path / "calm", "calm", [
        *args, "--set", "search.trainer=dejavu_tune.train.landscape:trainer"])
    with mlflow_server(tmp_path) as uri, \
            ray_cluster(tmp_path, [("127.0.0.1", 1, 0), (WORKER_IP, 1, 0)]) as (address, nodes):
        driver = subprocess.Popen(
            [sys.executable, "-m", "dejavu_tune.search", "--address", address,
             "--tracking-uri", uri, "--storage-path", str(shared), "--name", "mn", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        try:
            def trial_on_worker_with_a_checkpoint():
                assert driver.poll() is None, driver.stdout.read()[-3000:]
                if not (shared / "mn" / "search.json").exists():
                    return None
                client, runs = trial_runs(search_meta(shared, "mn"), uri)
                for run in runs:
                    if (run.data.tags.get("dejavu.node_ip") == WORKER_IP
                            and run.info.status == "RUNNING"
                            and 1 <= len(client.get_metric_history(
                                run.info.run_id, "val_miou")) <= epochs // 2):
                        return run.data.tags["dejavu.trial_id"]
                return None

            victim = wait_until(trial_on_worker_with_a_checkpoint, 300, "a trial on the worker")
            kill(nodes[1])  # the worker node's raylet and its trial processes die
            killed_at = time.time()
            out, _ = driver.communicate(timeout=600)
        finally:
            kill(driver)
        assert driver.returncode == 0, out[-3000:]
        meta = search_meta(shared, "mn")
        assert meta["tracking_uri"] == uri  # every trial logged over HTTP
        client, runs = trial_runs(meta, uri)
        assert_accounted_once(shared, "mn", trials=4)  # baseline + 3, none duplicated
        assert best_config(shared, "mn") == reference
        assert all(r.info.status == "FINISHED" for r in runs), [r.info.status for r in runs]
        assert all(r.data.tags["dejavu.status"] == "completed" for r in runs)
        (lost,) = [r for r in runs if r.data.tags["dejavu.trial_id"] == victim]
        # It resumed from a checkpoint on the surviving node and finished every epoch.
        assert int(lost.data.tags.get("dejavu.resumed_from_epoch", 0)) >= 1, lost.data.tags
        assert lost.data.tags["dejavu.node_ip"] != WORKER_IP  # the head (its IP is Ray's pick)
        history = client.get_metric_history(lost.info.run_id, "val_miou")
        assert {m.step for m in history} == set(range(1, epochs + 1))
        print(f"lost worker node: the lost trial (resumed from epoch "
              f"{lost.data.tags['dejavu.resumed_from_epoch']} of {epochs}) finished on the head "
              f"{lost.info.end_time / 1000 - killed_at:.1f} s after the kill")
        # figures went through the server too
        assert epochs in figure_steps(uri, lost.info.run_id)
        assert {r.data.tags["dejavu.kind"] for r in runs} == {"baseline", "trial"}
        assert all("gain" in r.data.metrics for r in runs if r.data.tags["dejavu.kind"] == "trial")


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.cluster
def test_half_gpu_trials_share_one_gpu(tmp_path):
    with ray_cluster(tmp_path, [("127.0.0.1", 2, 1)]) as (address, _):
        proc = subprocess.run(
            [sys.executable, "-m", "dejavu_tune.search", "--address", address,
             "--storage-path", str(tmp_path / "runs"), "--name", "gpu", "--num-samples", "3",
             "--max-concurrent", "2", "--gpus-per-trial", "0.5", "--set", "optim.epochs=4",
             *SMALL, "--set", "search.grace_period=4",
             # wall time without compute: trials that overlap without minutes of training
             "--set", "search.trainer=dejavu_tune.train.landscape:paced",
             "--set", "dejavu.crm.init=scratch"],
            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = search_meta(tmp_path / "runs", "gpu")
    client, runs = trial_runs(meta)
    assert len(runs) == 4
    # Every trial got the node's one GPU (its CUDA_VISIBLE_DEVICES), two at a time.
    assert {r.data.tags["dejavu.gpu_ids"] for r in runs} == {"0"}
    spans = sorted((r.info.start_time, r.info.end_time) for r in runs)
    assert any(later[0] < earlier[1] for earlier, later in pairwise(spans)), spans
    params = client.get_run(meta["parent_run_id"]).data.params
    assert float(params["gpus_per_trial"]) == 0.5

# -- the cluster launcher: ray up -> ray submit -> ray down ------------------------------
LAUNCHER_TOOLS = ("/usr/sbin/sshd", "rsync", "ssh", "ssh-keygen")


def _need_launcher_tools() -> None:
    missing = [t for t in LAUNCHER_TOOLS if not shutil.which(t)]
    if missing:
        message = (f"needs {', '.join(missing)} (Debian: apt-get install openssh-server "
                   "rsync), as .ci/run installs them")
        if os.environ.get("DEJAVU_REQUIRE_LAUNCHER") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _onprem_config(tmp: Path, key: Path, marker: str, port: int) -> dict:
    """cluster-onprem.yaml, pointed at two nodes of this machine: 127.0.0.1 and 127.0.0.2."""
    config = yaml.safe_load((ROOT / "cluster-onprem.yaml").read_text())
    config["cluster_name"] = f"dejavu-test-{port}"
    config["provider"].update(head_ip="127.0.0.1", worker_ips=[WORKER_IP])
    config["auth"] = {"ssh_user": "root", "ssh_private_key": str(key)}
    venv = Path(sys.executable).parent
    config["setup_commands"] = [
        f"grep -qs {marker} ~/.bashrc || echo 'export PATH={venv}:$PATH  # {marker}' >> ~/.bashrc"]
    config["head_setup_commands"] = []
    # One host: no `ray stop` (it would end the head too), a port of our own, one CPU each.
    config["head_start_ray_commands"] = [
        f"RAY_AUTH_MODE=token ray start --head --port={port} --num-cpus=1 "
        "--autoscaling-config=~/ray_bootstrap_config.yaml --dashboard-host=127.0.0.1 "
        "--disable-usage-stats"]
    config["worker_start_ray_commands"] = [
        f"RAY_AUTH_MODE=token ray start --address=$RAY_HEAD_IP:{port} --num-cpus=1 "
        f"--node-ip-address={WORKER_IP} --disable-usage-stats"]
    _validated(config)
    return config


def _sshd(tmp: Path) -> tuple[subprocess.Popen, Path]:
    """An sshd of our own on port 22 of 127.0.0.1 and 127.0.0.2, trusting a fresh key."""
    for name in ("host_key", "id_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / name)],
                       check=True)
    (tmp / "authorized_keys").write_text((tmp / "id_ed25519.pub").read_text())
    (tmp / "sshd_config").write_text(
        "Port 22\nListenAddress 127.0.0.1\nListenAddress 127.0.0.2\n"
        f"HostKey {tmp / 'host_key'}\nAuthorizedKeysFile {tmp / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nStrictModes no\n"
        f"PidFile {tmp / 'sshd.pid'}\nUsePAM no\n")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation dir
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(tmp / "sshd_config")],
                            stdout=(tmp / "sshd.log").open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    return proc, tmp / "id_ed25519"


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.cluster
def test_ray_up_submit_down_on_two_local_nodes(tmp_path):
    _need_launcher_tools()
    if os.geteuid() != 0:
        pytest.skip("binds sshd to port 22: run as root (CI does)")
    marker = f"dejavu-test-venv-{os.getpid()}"
    token = Path.home() / ".ray" / "auth_token"
    made_token = not token.exists()
    env = {**os.environ, "RAY_UP_enable_autoscaler_v2": "0", "RAY_AUTH_MODE": "token"}
    ray = str(Path(sys.executable).parent / "ray")
    sshd, key = _sshd(tmp_path)
    config_file = tmp_path / "cluster.yaml"
    shared = tmp_path / "shared"
    try:
        if made_token:
            subprocess.run([ray, "get-auth-token", "--generate"], check=True, env=env,
                           capture_output=True)
        port = free_port()
        config_file.write_text(yaml.safe_dump(_onprem_config(tmp_path, key, marker, port)))
        up = subprocess.run([ray, "up", "-y", "--no-config-cache", str(config_file)], env=env,
                            capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        submit = subprocess.run(
            [ray, "submit", str(config_file), str(ROOT / "dejavu_tune" / "cluster_search.py"),
             "--", "--min-nodes", "2", "--wait-timeout", "300",
             "--storage-path", str(shared), "--name", "up", "--num-samples", "3",
             "--max-concurrent", "2", "--set", "optim.epochs=2", *SMALL],
            env=env, capture_output=True, text=True, timeout=900)
        assert submit.returncode == 0, submit.stdout[-4000:] + submit.stderr[-3000:]
        assert "2 Ray node(s) alive" in submit.stdout
        meta = search_meta(shared, "up")
        client, runs = trial_runs(meta)
        assert len({r.data.tags["dejavu.trial_id"] for r in runs}) == len(runs) == 4
        assert all(r.info.status == "FINISHED" for r in runs)
        nodes = {r.data.tags["dejavu.node_ip"] for r in runs}
        assert WORKER_IP in nodes and len(nodes) == 2, nodes  # trials ran on both nodes
    finally:
        down = subprocess.run([ray, "down", "-y", str(config_file)], env=env,
                              capture_output=True, text=True, timeout=300)
        kill(sshd)
        bashrc = Path.home() / ".bashrc"
        if bashrc.exists():
            bashrc.write_text("".join(line for line in bashrc.read_text().splitlines(True)
                                      if marker not in line))
        if made_token:
            token.unlink(missing_ok=True)
    assert down.returncode == 0, down.stdout[-2000:] + down.stderr[-2000:]
