"""Real services for the cluster tests: Ray nodes from `ray start`, an `mlflow server`.

Each helper starts its processes in a session of their own and kills exactly that
session on exit, so a test never touches Ray or MLflow processes it did not start.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from dejavu_tune.raytune.search_algorithms import study_storage
from dejavu_tune.search.driver import STUDY_JOURNAL
from dejavu_tune.tracking.runs import MLFLOW_STATUS, figure_steps

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
# Ray's token authentication, which `ray start` clusters use by default, for every process
# that starts or joins one (the token is generated into ~/.ray/auth_token once).
TOKEN_ENV = {**os.environ, "RAY_AUTH_MODE": "token"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the process's whole session (a no-op once it has ended and been reaped)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def wait_until(predicate, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def start_node(log: Path, *, head_port: int | None = None, address: str | None = None,
               ip: str = "127.0.0.1", cpus: int = 1, gpus: int = 0) -> subprocess.Popen:
    """One Ray node in the foreground (``--block``), so killing its session kills the node.

    ``gpus`` are declared, not detected: Ray schedules and assigns them (setting each
    trial's CUDA_VISIBLE_DEVICES) without a physical GPU, which tests the resource path."""
    args = [str(BIN / "ray"), "start", "--block", f"--num-cpus={cpus}", f"--num-gpus={gpus}",
            f"--node-ip-address={ip}", "--disable-usage-stats"]
    if head_port is not None:
        args += ["--head", f"--port={head_port}", "--include-dashboard=false"]
    else:
        args += [f"--address={address}"]
    return subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True, env=TOKEN_ENV)


def alive_nodes(address: str) -> int:
    """Alive nodes, asked from a separate process (this one never joins the cluster)."""
    code = (f"import ray; ray.init(address={address!r}, log_to_driver=False); "
            "print(sum(n['Alive'] for n in ray.nodes()))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=TOKEN_ENV)
    return int(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else 0


@contextlib.contextmanager
def ray_cluster(tmp: Path, nodes: list[tuple[str, int, int]]) -> Iterator[tuple[str, list]]:
    """A Ray cluster of ``nodes`` = [(ip, cpus, gpus), ...], the first the head:
    (address, procs)."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    procs = []
    try:
        (head_ip, head_cpus, head_gpus), *workers = nodes
        procs.append(start_node(tmp / "ray-head.log", head_port=port, ip=head_ip,
                                cpus=head_cpus, gpus=head_gpus))
        wait_until(lambda: alive_nodes(address) >= 1, 120, "the Ray head", poll=2)
        for i, (ip, cpus, gpus) in enumerate(workers):
            procs.append(start_node(tmp / f"ray-worker{i}.log", address=address, ip=ip,
                                    cpus=cpus, gpus=gpus))
        wait_until(lambda: alive_nodes(address) >= len(nodes), 120, "the Ray workers", poll=2)
        yield address, procs
    finally:
        for proc in reversed(procs):
            kill(proc)


class MlflowServer:
    """A real ``mlflow server`` on loopback (SQLite backend, proxied artifacts) that can be
    stopped and started again on the same port and store, like a restarted service."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = (self.tmp / "mlflow-server.log").open("a")
        self.proc = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--backend-store-uri", f"sqlite:///{self.tmp / 'server.db'}",
             "--artifacts-destination", str(self.tmp / "server-artifacts"), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._healthy, 120, "mlflow server")

    def stop(self) -> None:
        if self.proc is not None:
            kill(self.proc)
            self.proc = None

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, (self.tmp / "mlflow-server.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False


@contextlib.contextmanager
def mlflow_server(tmp: Path) -> Iterator[str]:
    """A running ``MlflowServer``'s URI for the length of the block."""
    server = MlflowServer(tmp)
    try:
        server.start()
        yield server.uri
    finally:
        server.stop()


def search_meta(storage: Path, name: str) -> dict:
    return json.loads((storage / name / "search.json").read_text())


# the search's Tune experiments, in order (the confirmation's later looks: confirm-2, ...)
STEPS = ("tuning", "search", "confirm", *(f"confirm-{k}" for k in range(2, 60)))
# The search's mechanics without its statistics: no baseline tuning, no replicates, no
# confirmation, and CRM pre-trainings of a few iterations (one baseline + the trials).
QUICK = ["--set", "search.baseline_trials=0", "--set", "search.baseline_seeds=0",
         "--set", "search.confirm_top=0", "--set", "crm_pretrain.iterations=5",
         "--set", "crm_pretrain.min_reliance=0"]


def trial_runs(meta: dict, uri: str | None = None,
               pretrainings: bool = False) -> tuple[MlflowClient, list]:
    """(client, the child runs of the search's Tune trials; with ``pretrainings``, its CRM
    pre-training runs too), through ``uri`` or the search's own store."""
    client = MlflowClient(uri or meta["tracking_uri"])
    runs = client.search_runs(
        [meta["experiment_id"]],
        filter_string=f"tags.`mlflow.parentRunId` = '{meta['parent_run_id']}'")
    return client, [r for r in runs
                    if pretrainings or r.data.tags.get("dejavu.kind") != "crm_pretrain"]


def tune_last_results(storage: Path, name: str) -> dict[str, dict]:
    """Each trial's last result as Tune keeps it on disk (the result file of its trial)."""
    last: dict[str, dict] = {}
    paths = [p for step in STEPS for p in (storage / name / step).glob("*/result.json")]
    for path in paths:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            seen = last.get(row["trial_id"])
            if seen is None or row["training_iteration"] >= seen["training_iteration"]:
                last[row["trial_id"]] = row
    return last


def tune_epochs(storage: Path, name: str) -> dict[str, int]:
    """Epochs each trial reported to Tune."""
    return {trial: row["training_iteration"]
            for trial, row in tune_last_results(storage, name).items()}


_OPTUNA_STATE = {"completed": "COMPLETE", "stopped_early": "PRUNED", "failed": "FAIL",
                 "out_of_memory": "FAIL"}


def assert_accounted_once(storage: Path, name: str, trials: int) -> list:
    """Every trial once in MLflow, in Tune's results and in the Optuna study: one child
    run per trial, none duplicated, none still RUNNING, every epoch Tune has logged once
    per step, and Optuna told each trial's real outcome."""
    meta = search_meta(storage, name)
    assert meta.get("finished") is True
    client, runs = trial_runs(meta)
    ids = [r.data.tags["dejavu.trial_id"] for r in runs]
    assert len(ids) == len(set(ids)) == trials, ids
    assert all(r.info.status == MLFLOW_STATUS[r.data.tags["dejavu.status"]] for r in runs)
    epochs = tune_epochs(storage, name)
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "compute_s")]
        expected = epochs.get(run.data.tags["dejavu.trial_id"], 0)
        assert sorted(steps) == list(range(1, expected + 1)), (run.info.run_id, steps, expected)
    study = json.loads((storage / name / "optuna_trials.json").read_text())
    # A trial Optuna gave out after the driver's last snapshot, before it was killed, never
    # ran: FAIL, with no Tune trial.
    orphans = [t for t in study if t["trial_id"] is None]
    assert all(t["state"] == "FAIL" and t["value"] is None for t in orphans), orphans
    told = {t["trial_id"]: t["state"] for t in study if t["trial_id"] is not None}
    assert len(told) == len(study) - len(orphans), study
    # optuna-dashboard's view, the live study in the search's directory, agrees
    live = optuna.load_study(study_name="search",
                             storage=study_storage(str(storage / name / STUDY_JOURNAL)))
    assert {t.number: t.state.name for t in live.trials} == {
        t["number"]: t["state"] for t in study}
    sampled = {r.data.tags["dejavu.trial_id"]: r for r in runs
               if r.data.tags["dejavu.kind"] == "trial"
               and r.data.tags.get("dejavu.phase", "search") == "search"}
    assert set(told) == set(sampled), (told, list(sampled))
    for trial_id, state in told.items():
        assert state == _OPTUNA_STATE[sampled[trial_id].data.tags["dejavu.status"]], (
            trial_id, state, sampled[trial_id].data.tags)
    # a trial ASHA stopped: Optuna's last intermediate value is the one it was stopped on
    metric = meta.get("metric", "val_miou")
    last = tune_last_results(storage, name)
    numbers = {t["number"]: t["trial_id"] for t in study}
    for trial in live.trials:
        row = last.get(numbers.get(trial.number))
        if trial.state.name == "PRUNED" and row is not None and metric in row:
            step = max(trial.intermediate_values, default=None)
            assert step == row["training_iteration"], (trial.number, step, row)
            assert trial.intermediate_values[step] == pytest.approx(row[metric]), trial.number
    return runs


def assert_records_complete(storage: Path, name: str) -> list:
    """Every trial that reported has what it records besides its metrics: its figure,
    where it ran (node and GPU tags), and a run whose start and end span the trial's
    training as Tune timed it (within Tune's whole-second timestamps)."""
    meta = search_meta(storage, name)
    client, runs = trial_runs(meta)
    last = tune_last_results(storage, name)
    for run in runs:
        row = last.get(run.data.tags["dejavu.trial_id"])
        if row is None:  # never reported: nothing to record
            continue
        where = (run.info.run_name, run.data.tags)
        assert {"dejavu.node_ip", "dejavu.gpu_ids"} <= set(run.data.tags), where
        # the newest epoch's figure, as an MLflow image at its step
        assert row["training_iteration"] in figure_steps(meta["tracking_uri"],
                                                         run.info.run_id), where
        span_s = (run.info.end_time - run.info.start_time) / 1000
        assert span_s >= row["time_total_s"] - 1.5, (where, span_s, row["time_total_s"])
    return runs


def best_config(storage: Path, name: str) -> dict:
    """The best configuration the search recorded in its parent run: the confirmed
    winner, else (nothing recommended) the best unconfirmed trial; never None, so that
    two searches that both recorded nothing do not compare equal."""
    meta = search_meta(storage, name)
    client = MlflowClient(meta["tracking_uri"])
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(meta["parent_run_id"], "best_config.json", tmp)
        result = json.loads(Path(path).read_text())
    chosen = result["config"] or (result.get("unconfirmed") or {}).get("config")
    assert isinstance(chosen, dict), result
    return chosen


def undisturbed_best(storage: Path, name: str, args: list[str]) -> dict:
    """The best configuration of the same search run locally with no fault: the reference
    a disturbed run must reproduce."""
    proc = subprocess.run(
        [sys.executable, "-m", "dejavu_tune.search", *args, "--storage-path", str(storage),
         "--name", name], cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={k: v for k, v in os.environ.items()
             if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return best_config(storage, name)
