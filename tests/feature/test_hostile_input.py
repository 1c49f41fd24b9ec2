"""The search under hostile input, by class (docs/reliability.md, "Bad input"): every case
ends with exit status 2 and one line within its time bound, before Ray starts, writing
nothing outside --storage-path and nothing inside it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from dejavu_tune.bench.bounds import refused_port, silent_port
from dejavu_tune.raytune import ray_adapter
from dejavu_tune.search import cli as search
from dejavu_tune.search.run_checks import PROBE_S

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = (ROOT / "search_spaces" / "default.yaml").read_text()
# imports, the space's checks (64 sampled combinations) and one probe's bound
IMPORT_S = 30.0


@pytest.fixture
def no_ray(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started for bad input")

    monkeypatch.setattr(ray_adapter, "start_ray", refuse)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _refused(capsys, argv, within=IMPORT_S) -> str:
    """The search run in this process: exit 2, one line, within ``within`` seconds."""
    capsys.readouterr()
    start = time.monotonic()
    try:
        code = search.main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    took = time.monotonic() - start
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert took < within, (took, err)
    return lines[0]


@pytest.fixture
def box(tmp_path):
    """A storage path inside a directory holding a file a bad --name must never touch."""
    (tmp_path / "space.yaml").write_text("precious: true\n")
    storage = tmp_path / "runs"
    storage.mkdir()
    before = _files(tmp_path)
    yield tmp_path, storage
    assert (tmp_path / "space.yaml").read_text() == "precious: true\n"
    assert _files(tmp_path) == before  # no directory, no store, no MLflow database


# -- names and paths that escape the storage path -----------------------------------
@pytest.mark.parametrize("name", ["..", "../escaped", "/tmp/absolute", "a/b", ".hidden",
                                  "x" * 300, "", "name with space", "new\nline"])
def test_a_name_that_leaves_the_storage_path_is_refused(box, capsys, no_ray, name):
    tmp, storage = box
    line = _refused(capsys, ["--name", name, "--storage-path", str(storage)])
    assert "--name" in line and "one directory inside --storage-path" in line
    assert len(line) < 400  # a 300-character name is shortened, not echoed


@pytest.mark.parametrize("make, flag, says", [
    (lambda t: (t / "file").write_text("x") and t / "file", "--storage-path", "is a file"),
    (lambda t: (t / "file").write_text("x") and t / "file" / "below", "--storage-path",
     "is a file, not a directory"),
    (lambda t: Path("/proc/no-such-dir/store"), "--crm-store", "is not writable"),
    (lambda t: (t / "file").write_text("x") and t / "file", "--crm-store", "is a file"),
])
def test_a_storage_path_or_store_that_cannot_be_written_is_refused(tmp_path, capsys, no_ray,
                                                                   make, flag, says):
    target = make(tmp_path)
    before = _files(tmp_path)
    storage = target if flag == "--storage-path" else tmp_path / "runs"
    argv = ["--storage-path", str(storage), "--dry-run"]
    if flag == "--crm-store":
        argv += ["--crm-store", str(target)]
    line = _refused(capsys, argv)
    assert flag in line and says in line
    assert _files(tmp_path) == before


# -- flags checked before anything runs -------------------------------------------------
@pytest.mark.parametrize("argv, says", [
    (["--experiment", ""], "--experiment '' is not allowed"),
    (["--experiment", "   "], "not blank"),
    (["--max-failures", "-3"], "expected 0 to 100"),
    (["--max-failures", "1000"], "expected 0 to 100"),
    (["--address", "not-an-address"], "expected auto, HOST:PORT"),
    (["--address", "http://host:6379"], "expected auto, HOST:PORT"),
    (["--address", "host:99999"], "expected auto, HOST:PORT"),
    (["--tracking-uri", "ftp://host/x"], "scheme 'ftp' is not allowed"),
    (["--set", "optim.epochs.x=1"], "optim.epochs is a value (12), not a section"),
    (["--set", "search.objectives=[step_time_ratio, val_miou]"], "is a cost, not allowed first"),
    (["--gpus-per-trial", "1"], "resources.gpu=1 is not allowed here"),
    (["--cpus-per-trial", "4096"], "resources.cpu=4096 is not allowed here"),
])
def test_a_flag_that_cannot_work_is_refused_before_anything_runs(box, capsys, no_ray, argv,
                                                                 says):
    if "--gpus-per-trial" in argv:
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    _, storage = box
    line = _refused(capsys, [*argv, "--storage-path", str(storage)])
    assert says in line, line


def _space(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


WHEN_ON_SHARED = DEFAULT.replace("when: {dejavu.redaction.kind: random_blocks}",
                                 "when: {optim.lr: 0.01}")


@pytest.mark.parametrize("text, says", [
    (DEFAULT.replace("\n  optim:", "\n  optim: {epochs: 3}\n  optim:", 1),
     "key 'optim' is given twice in one mapping"),
    (DEFAULT.replace("when: {dejavu.crm.kind: crm_f}", "when: {dejavu.crm.kind: []}"),
     "[] never holds"),
    (DEFAULT.replace("when: {dejavu.crm.kind: crm_f}", "when: {dejavu.crm.kind: crm_x}"),
     "'crm_x' is never sampled"),
    (WHEN_ON_SHARED, "names the shared parameter 'optim.lr'"),
])
def test_a_space_that_would_be_accepted_silently_is_refused(tmp_path, capsys, no_ray, text,
                                                            says):
    assert text != DEFAULT
    line = _refused(capsys, ["--space", _space(tmp_path, text), "--storage-path",
                             str(tmp_path / "runs"), "--dry-run"])
    assert says in line, line
    assert not (tmp_path / "runs").exists()


def test_a_when_on_a_value_outside_an_integer_range_is_refused(tmp_path, capsys, no_ray):
    text = DEFAULT.replace("when: {dejavu.crm.kind: crm_f}", "when: {dejavu.crm.kind: crm_f}\n"
                           "  dejavu.loss.cl_weight:\n    type: float\n    low: 0.1\n"
                           "    high: 1.0\n    when: {dejavu.crm.stages: 7}", 1)
    line = _refused(capsys, ["--space", _space(tmp_path, text), "--storage-path",
                             str(tmp_path), "--dry-run"])
    assert "7 is never sampled: expected int in [1, 3]" in line, line


# -- weights files and plug-ins, read before the baseline tuning ------------------------
@pytest.mark.parametrize("key", ["dejavu.crm.weights", "model.pretrained"])
def test_a_weights_file_that_is_not_one_is_refused_before_any_training(tmp_path, capsys,
                                                                         no_ray, key):
    fake = tmp_path / "weights.pt"
    fake.write_text("not a checkpoint\n")
    line = _refused(capsys, ["--set", f"{key}={fake}", "--storage-path", str(tmp_path / "r"),
                             "--dry-run"])
    assert key in line and "weights_only" not in line, line


def test_a_missing_plugin_module_is_refused_by_the_dry_run(tmp_path, capsys, no_ray):
    line = _refused(capsys, ["--set", "dejavu.loss.ts_encoder=no_such_module:encoder",
                             "--set", "dejavu.loss.ts_weight=0.3",
                             "--storage-path", str(tmp_path), "--dry-run"])
    assert "dejavu.loss.ts_encoder" in line and "cannot import 'no_such_module'" in line


# -- warm starts of the wrong shape or from other data ------------------------------------
@pytest.mark.parametrize("best, trials", [([1, 2], None), ({"confirmation": 3}, None),
                                          (None, {"a": 1}), (None, [1, 2])])
def test_a_warm_start_file_of_the_wrong_shape_is_one_line(tmp_path, capsys, no_ray, best,
                                                         trials):
    old = tmp_path / "runs" / "old"
    old.mkdir(parents=True)
    for name, payload in (("best_config.json", best), ("optuna_trials.json", trials)):
        if payload is not None:
            (old / name).write_text(json.dumps(payload))
    line = _refused(capsys, ["--warm-start", "old", "--storage-path", str(tmp_path / "runs"),
                             "--dry-run"])
    assert "is not what a search writes there" in line, line


def test_a_warm_start_from_other_data_gives_no_priors_and_says_so(tmp_path, capsys):
    old = tmp_path / "runs" / "old"
    old.mkdir(parents=True)
    (old / "best_config.json").write_text(json.dumps({
        "metric": "val_miou", "confirmation": [],
        "config": {"data": {"name": "cityscapes", "root": "/data/cs"},
                   "task": {"name": "segmentation"}}}))
    (old / "optuna_trials.json").write_text(json.dumps([]))
    assert search.main(["--warm-start", "old", "--storage-path", str(tmp_path / "runs"),
                        "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "its trials are not given to the sampler: it trained on data.name='cityscapes' " \
           "(this search: 'synthetic')" in out


def test_debug_shows_the_traceback_of_a_validation_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dejavu_tune.search", "--debug",
                           "--max-failures", "-1", "--storage-path", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" in proc.stderr, proc.stderr[-2000:]
    assert "RunCheckError" in proc.stderr


# -- servers that refuse, and servers that never answer: bounded ---------------------------
@pytest.fixture
def silent():
    """A loopback port that accepts connections and never says a byte (127.0.0.2: Ray
    rewrites 127.0.0.1 to the machine's own address, which a test must not reach)."""
    with silent_port() as port:
        yield port


def _search(tmp_path: Path, *argv: str, timeout: float = 120,
            env: dict[str, str] | None = None) -> tuple[int, str, float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "dejavu_tune.search", "--storage-path",
                           str(tmp_path / "runs"), "--set", "optim.epochs=1", *argv],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
                          env={**os.environ, "DEJAVU_RAY_CONNECT_S": "8", **(env or {})})
    return proc.returncode, proc.stderr, time.monotonic() - start


@pytest.mark.slow  # waits out the bounds themselves (about 30 s)
@pytest.mark.parametrize("kind", ["refused", "silent"])
@pytest.mark.parametrize("flag", ["--tracking-uri", "--address"])
def test_a_server_that_refuses_or_never_answers_fails_within_its_bound(tmp_path, silent,
                                                                       kind, flag):
    host = "127.0.0.2" if kind == "silent" else "127.0.0.1"
    port = silent if kind == "silent" else refused_port()
    value = f"http://{host}:{port}" if flag == "--tracking-uri" else f"{host}:{port}"
    code, err, took = _search(tmp_path, flag, value)
    last = err.strip().splitlines()[-1]
    assert code == 2, err[-2000:]
    assert last.startswith(f"error: {flag} ") and "Traceback" not in err, err[-2000:]
    assert ("no answer within" if kind == "silent" else "refused") in last, last
    # the probe's bound plus the command's start-up, never Ray's or MLflow's minutes
    assert took < IMPORT_S + PROBE_S, took
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlruns").exists()


@pytest.mark.slow  # waits out Ray's connection bound (about 11 s each)
@pytest.mark.parametrize("token", [True, False])
def test_joining_a_port_that_speaks_no_ray_is_bounded(tmp_path, token):
    """A port that answers the probe but is not Ray's: the join's own bound ends it. Without
    a Ray token on this machine the message names that too: a token-authenticated head
    refuses such a client in silence (tried by hand with `RAY_AUTH_MODE=token ray start
    --head`), which looks the same from here."""
    path = tmp_path / "auth_token"
    if token:
        path.write_text("0" * 64)
    server = socket.socket()
    server.bind(("127.0.0.2", 0))
    server.listen(16)
    port = server.getsockname()[1]
    stop = threading.Event()

    def answer_garbage():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn = server.accept()[0]
            except OSError:
                continue
            conn.sendall(b"not grpc")  # a reply to the probe, then silence

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    try:
        code, err, took = _search(tmp_path, "--address", f"127.0.0.2:{port}",
                                  env={"RAY_AUTH_TOKEN_PATH": str(path)})
    finally:
        stop.set()
        thread.join(2)
        server.close()
    last = err.strip().splitlines()[-1]
    assert code == 2 and "no Ray cluster answered within 8 s" in last, err[-2000:]
    assert ("this machine has no Ray auth token" in last) != token, last
    assert took < IMPORT_S + 8 + 20, took
    assert not (tmp_path / "runs").exists()



# -- a search whose every DejaVu trial failed ------------------------------------------
FAILING_TRAINER = '''
from dejavu_tune.train.landscape import LandscapeTrainer


def trainer(cfg):
    if cfg.dejavu.enabled:
        raise ValueError("the CRM weights do not fit this network (planted by the test)")
    return LandscapeTrainer(cfg)
'''


@pytest.mark.integration
@pytest.mark.slow
def test_a_search_whose_dejavu_trials_all_failed_says_so_and_fails(tmp_path):
    (tmp_path / "failing_trainer.py").write_text(FAILING_TRAINER)
    proc = subprocess.run(
        [sys.executable, "-m", "dejavu_tune.search", "--storage-path", str(tmp_path / "runs"),
         "--name", "s", "--num-samples", "2", "--set", "optim.epochs=2",
         "--set", "search.trainer=failing_trainer:trainer", "--set", "search.baseline_trials=0",
         "--set", "search.baseline_seeds=0", "--set", "search.confirm_top=0",
         "--set", "crm_pretrain.iterations=5",
         "--set", "crm_pretrain.min_reliance=0"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(tmp_path), os.environ.get("PYTHONPATH", "")])})
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: nothing trained: every DejaVu trial failed (2 of 2); all "
                           "with: ") and "planted by the test" in last, last
    assert "no gain found" not in proc.stdout
    record = json.loads((tmp_path / "runs" / "s" / "search.json").read_text())
    from mlflow.tracking import MlflowClient

    parent = MlflowClient(record["tracking_uri"]).get_run(record["parent_run_id"])
    assert parent.info.status == "FAILED"
    assert parent.data.tags["dejavu.verdict"] == "nothing trained"
    assert "planted by the test" in parent.data.tags["mlflow.note.content"]
    assert yaml.safe_load((tmp_path / "runs" / "s" / "space.yaml").read_text())


@pytest.mark.cluster
def test_a_trial_no_node_of_the_cluster_can_hold_is_refused_after_a_bounded_wait(tmp_path):
    from helpers.cluster import TOKEN_ENV, ray_cluster

    with ray_cluster(tmp_path, [("127.0.0.1", 1, 0)]) as (address, _):
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "dejavu_tune.search", "--address", address,
             "--storage-path", str(tmp_path / "runs"), "--gpus-per-trial", "1"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
            env={**TOKEN_ENV, "DEJAVU_RESOURCE_WAIT_S": "6"})
        took = time.monotonic() - start
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert last.startswith("error: no Ray node can hold a trial of 1 CPU, 1 GPU after 6 s"), last
    assert "the cluster's nodes have: 1 CPU, 0 GPU" in last, last
    assert "waiting up to 6 s for a Ray node" in proc.stdout
    assert took < IMPORT_S + 6 + 30, took
    assert not (tmp_path / "runs").exists()
