"""MLflow adapter: one parent run per search, one nested child run per trial.

Every call goes through an explicit ``MlflowClient(tracking_uri)``: workers on
other nodes get the URI from the trial's context, never from their
environment. A child run is found again by its ``dejavu.trial_id`` tag, so a
trial restarted from its checkpoint continues its own run instead of opening
a duplicate.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from PIL import Image

from dejavu_tune.tracking.run_names import readable
from dejavu_tune.train.memory import OUT_OF_MEMORY

__all__ = ["describe_ranks", "STATUS_TAG", "REASON_TAG", "TRIAL_TAG", "KIND_TAG", "NODE_TAG", "GPU_TAG",
           "RESUMED_TAG", "CHECKPOINT_SKIPPED_TAG", "PHASE_TAG", "CRM_TAG", "INERT_TAG", "STOP_TAG", "LATEST_FIGURE",
           "FIGURE_KEY", "MLFLOW_STATUS", "PAGE_SIZE", "SearchRef", "bound_http_waits", "client",
           "quiet_store_setup",
           "default_tracking_uri", "artifact_root", "redact", "open_parent_run",
           "find_trial_run", "open_trial_run", "log_epoch", "log_series", "logged_steps", "run_tags",
           "log_params", "set_tags", "set_trial_status", "log_artifact_text",
           "log_artifact_file", "log_figure", "figure_steps", "log_json", "log_datasets",
           "all_runs", "child_runs", "RunRow", "get_run", "metric_total",
           "experiment_id", "experiment_names", "read_artifact_text"]


PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag: the UI nests children under it
TRIAL_TAG = "dejavu.trial_id"
KIND_TAG = "dejavu.kind"  # "search", "baseline" or "trial"
STATUS_TAG = "dejavu.status"  # completed / stopped_early / failed / out_of_memory
REASON_TAG = "dejavu.failure_reason"
NODE_TAG = "dejavu.node_ip"  # the Ray node the trial (last) ran on
GPU_TAG = "dejavu.gpu_ids"  # the GPUs Ray gave the trial (its CUDA_VISIBLE_DEVICES)
# a data-parallel trial's ranks, each with its node and GPUs (the two above are rank 0's)
RANKS_TAG = "dejavu.ranks"
RESUMED_TAG = "dejavu.resumed_from_epoch"  # set when a restarted trial loaded a checkpoint
CHECKPOINT_SKIPPED_TAG = "dejavu.checkpoints_skipped"  # damaged ones it fell back from
PHASE_TAG = "dejavu.phase"  # crm / tuning / search / confirm: the step of the search
CRM_TAG = "dejavu.crm_init"  # stored:<key>, file:<path>, scratch or none (DejaVu off)
# why ASHA stopped a trial: its rung, the metric it decided on, the value, the cut-off
STOP_TAG = "dejavu.stopped_by"
INERT_TAG = "dejavu.inert"  # true: the CRM ignored the prediction (dejavu_tune.train.diagnostics)
FIGURE_KEY = "regeneration"  # the image key of every run's regeneration figure
LATEST_FIGURE = "regeneration.png"  # the newest epoch's figure, whole, linked from the note
# A trial ASHA stopped ends KILLED: MLflow's runs table then tells it from a completed
# one at a glance (its reason stays in STATUS_TAG).
MLFLOW_STATUS = {"completed": "FINISHED", "stopped_early": "KILLED", "failed": "FAILED",
                 OUT_OF_MEMORY: "FAILED"}


@dataclass(frozen=True)
class RunRow:
    """One MLflow run as the project reads it, from a listing or by its id: nothing
    outside ``tracking/`` reads MLflow's own entities."""

    run_id: str
    name: str
    status: str  # MLflow's: RUNNING, FINISHED, FAILED or KILLED (ours is tags[STATUS_TAG])
    start_ms: int | None
    end_ms: int | None
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]  # the latest value of each

    @property
    def seconds(self) -> float | None:
        """From the run's start to its end; None while it runs."""
        if self.start_ms is None or self.end_ms is None:
            return None
        return (self.end_ms - self.start_ms) / 1000


def _row(run: Any) -> RunRow:
    return RunRow(run_id=run.info.run_id, name=run.info.run_name or run.info.run_id,
                  status=run.info.status, start_ms=run.info.start_time,
                  end_ms=run.info.end_time, params=dict(run.data.params),
                  tags=dict(run.data.tags), metrics=dict(run.data.metrics))


def get_run(uri: str, run_id: str) -> RunRow:
    return _row(MlflowClient(uri).get_run(run_id))


def experiment_id(uri: str, name: str) -> str | None:
    """The id of the experiment ``name``; None when the store has none of that name."""
    experiment = MlflowClient(uri).get_experiment_by_name(name)
    return None if experiment is None else experiment.experiment_id


def experiment_names(uri: str) -> list[str]:
    return sorted(e.name for e in MlflowClient(uri).search_experiments())


def read_artifact_text(uri: str, run_id: str, name: str) -> str | None:
    """The text of the run's artifact ``name`` (at the artifacts' top); None if absent."""
    client = MlflowClient(uri)
    if name not in {a.path for a in client.list_artifacts(run_id)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, name, tmp)).read_text()


def metric_total(uri: str, run_id: str, key: str) -> float:
    """The sum of every logged value of ``key`` (e.g. a trial's compute seconds)."""
    return sum(m.value for m in MlflowClient(uri).get_metric_history(run_id, key))


@dataclass(frozen=True)
class SearchRef:
    """Where a search records: its tracking URI, experiment and parent run. Plain values:
    it travels to Ray workers and into the callbacks Tune pickles."""

    uri: str
    experiment_id: str
    parent_run_id: str

    def children(self) -> list[RunRow]:
        return child_runs(self.uri, self.experiment_id, self.parent_run_id)

    def trial_run(self, trial_id: str) -> RunRow | None:
        return find_trial_run(self.uri, self.experiment_id, self.parent_run_id, trial_id)

    def open_trial(self, trial_id: str, name: str, kind: str = "trial",
                   start_ms: int | None = None) -> tuple[str, bool]:
        return open_trial_run(self.uri, self.experiment_id, self.parent_run_id, trial_id,
                              name, kind, start_ms)


def describe_ranks(placements: list[tuple[str, str]]) -> str:
    """``RANKS_TAG``'s value from each rank's (node IP, GPU ids): the count first, then
    the ranks by node, so that MLflow's cut-off tag chip still says how the trial ran
    (``4 ranks on 1 node: 10.0.0.5 [0 GPU 0, 1 GPU 1, 2 GPU 2, 3 GPU 3]``)."""
    nodes: dict[str, list[str]] = {}
    for rank, (ip, gpus) in enumerate(placements):
        nodes.setdefault(ip, []).append(f"{rank} GPU {gpus}" if gpus else str(rank))
    return (f"{len(placements)} ranks on {len(nodes)} node{'s' * (len(nodes) > 1)}: "
            + "; ".join(f"{ip} [{', '.join(ranks)}]" for ip, ranks in nodes.items()))

def quiet_store_setup() -> None:
    """No INFO lines when MLflow creates or migrates a local store's tables: the search
    prints its own progress (``--verbose`` keeps them)."""
    import logging

    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)


def bound_http_waits(retries: int = 2, timeout_s: int = 30) -> None:
    """MLflow's HTTP client retries a call 7 times with a growing backoff, minutes against
    a server that is away: each call here gives up after ``retries`` retries of
    ``timeout_s`` seconds at most, and the caller's own retries (``DeliveryQueue``) decide
    how long to go on. Values set in the environment are kept."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout_s))


def client(uri: str) -> MlflowClient:
    """The MLflow client of ``uri``, for readers of finished searches (report, bench),
    whose calls give up soon against a server that does not answer."""
    bound_http_waits(retries=1)
    return MlflowClient(uri)


def default_tracking_uri(storage_path: str | Path) -> str:
    """The embedded default store: a SQLite file beside the search's trial storage."""
    return f"sqlite:///{Path(storage_path).resolve() / 'mlflow.db'}"


def redact(uri: str) -> str:
    """The URI with any password in it replaced, for printing (``http://u:***@host``)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def artifact_root(uri: str) -> str | None:
    """Where a new experiment of a local SQLite store keeps its artifacts: beside the
    store. MLflow's default is ./mlruns of whatever directory the search ran from. A
    tracking server keeps its own artifact root (None)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "artifacts").resolve().as_uri()
    return None


def _experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifact_root(uri))


def open_parent_run(uri: str, experiment: str, search_name: str,
                    run_id: str | None = None) -> tuple[str, str]:
    """(experiment_id, run_id) of the search's parent run; reopened when ``run_id`` is given."""
    client = MlflowClient(uri)
    if run_id is not None:
        run = client.get_run(run_id)
        if run.info.status != "RUNNING":
            client.update_run(run_id, status="RUNNING")
        return run.info.experiment_id, run_id
    exp_id = _experiment_id(client, experiment, uri)
    run = client.create_run(exp_id, run_name=search_name, tags={KIND_TAG: "search"})
    return exp_id, run.info.run_id


def find_trial_run(uri: str, experiment_id: str, parent_run_id: str,
                   trial_id: str) -> RunRow | None:
    """The run of one trial of a search, by its tags (one run, not a listing)."""
    found = MlflowClient(uri).search_runs(
        [experiment_id],
        filter_string=f"tags.`{TRIAL_TAG}` = '{trial_id}' and "
                      f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
        max_results=1)
    return _row(found[0]) if found else None


def open_trial_run(uri: str, experiment_id: str, parent_run_id: str, trial_id: str,
                   trial_name: str, kind: str = "trial",
                   start_ms: int | None = None) -> tuple[str, bool]:
    """The child run of ``trial_id`` and whether it existed: the existing one after a
    restart (whose epochs may be logged already), else a new one.

    ``start_ms``: when the trial started. A run opened late (the server was away, or
    the driver opens it after the trial) still spans the trial's real time."""
    client = MlflowClient(uri)
    run = find_trial_run(uri, experiment_id, parent_run_id, trial_id)
    if run is not None:
        if run.status != "RUNNING":  # a retried trial: its run is live again
            client.update_run(run.run_id, status="RUNNING")
        return run.run_id, True
    run = client.create_run(experiment_id, run_name=trial_name, start_time=start_ms,
                            tags={PARENT_TAG: parent_run_id, TRIAL_TAG: trial_id, KIND_TAG: kind})
    return run.info.run_id, False


def log_params(uri: str, run_id: str, params: dict[str, Any],
               existing: dict[str, str] | None = None) -> None:
    """Params are write-once in MLflow; a resumed trial re-logs identical values, which is fine.
    Floats are rounded for reading (``run_names.readable``). ``existing``: the run's
    params when the caller has them already (from a listing), saving a request."""
    client = MlflowClient(uri)
    if existing is None:
        existing = client.get_run(run_id).data.params
    fresh = [Param(k, readable(v)) for k, v in params.items() if k not in existing]
    for i in range(0, len(fresh), 100):  # MLflow's batch limit is 100 params
        client.log_batch(run_id, params=fresh[i:i + 100])


def log_epoch(uri: str, run_id: str, metrics: dict[str, float], step: int,
              timestamp_ms: int | None = None) -> None:
    """Log one epoch's metrics; non-finite values are logged too (MLflow stores NaN).

    A fixed ``timestamp_ms`` makes the call safe to repeat: MLflow keeps one copy of
    identical points."""
    now = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    batch = [Metric(k, float(v), now, step) for k, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)]
    MlflowClient(uri).log_batch(run_id, metrics=batch)


def set_tags(uri: str, run_id: str, tags: dict[str, str]) -> None:
    # MLflow keeps at most 8000 characters of a run tag
    MlflowClient(uri).log_batch(run_id, tags=[RunTag(k, str(v)[:8000]) for k, v in tags.items()])


def run_tags(uri: str, run_id: str) -> dict[str, str]:
    return get_run(uri, run_id).tags


def log_series(uri: str, run_id: str, key: str, values: dict[int, float],
               more: dict[str, dict[int, float]] | None = None) -> None:
    """Log ``key`` at each step of ``values`` that the run does not have yet, and the
    series in ``more`` at those steps too, in one request: they were logged with ``key``
    or not at all, so one history read serves them all."""
    have = logged_steps(uri, run_id, key)
    now = int(time.time() * 1000)
    batch = [Metric(name, float(v), now, step)
             for name, series in {key: values, **(more or {})}.items()
             for step, v in sorted(series.items()) if step not in have]
    if batch:
        MlflowClient(uri).log_batch(run_id, metrics=batch)


def logged_steps(uri: str, run_id: str, key: str) -> set[int]:
    return {m.step for m in MlflowClient(uri).get_metric_history(run_id, key)}


def log_new_epoch(uri: str, run_id: str, metrics: dict[str, float], step: int,
                  timestamp_ms: int | None = None, key: str = "compute_s") -> bool:
    """Log one epoch unless the run has it (``key``: a metric every epoch logs), so the
    writers that may repeat an epoch (a trial run again after a restart, the driver's
    backfill from Tune's results) keep its first point; True when it was logged."""
    if step in logged_steps(uri, run_id, key):
        return False
    log_epoch(uri, run_id, metrics, step=step, timestamp_ms=timestamp_ms)
    return True


def log_new_figure(uri: str, run_id: str, png: bytes, step: int) -> bool:
    """``log_figure`` unless the run has a figure at ``step``; True when it was logged."""
    if step in figure_steps(uri, run_id):
        return False
    log_figure(uri, run_id, png, step)
    return True


def set_trial_status(uri: str, run_id: str, status: str, reason: str | None = None,
                     end_ms: int | None = None, run: RunRow | None = None) -> None:
    """Tag the trial's outcome and end its run; a repeated identical call changes nothing.

    ``end_ms``: when the trial ended (default: now), so a status delivered late does not
    stretch the run. ``run``: the run as the caller has just read it, saving a request."""
    # MLflow prints "View run ... at: <tracking URI>" whenever an HTTP run ends: noise for
    # every trial, and it would print a password embedded in the URI. Set where runs end
    # (the search's processes and its workers), not when the package is imported.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    client = MlflowClient(uri)
    run = get_run(uri, run_id) if run is None else run
    if run.status != "RUNNING" and run.tags.get(STATUS_TAG) == status:
        return  # keeps the end time of the first call
    tags = [RunTag(STATUS_TAG, status)]
    if reason:
        tags.append(RunTag(REASON_TAG, reason[:4000]))
    elif REASON_TAG in run.tags:
        client.delete_tag(run_id, REASON_TAG)  # a retried trial that then succeeded
    client.log_batch(run_id, tags=tags)
    if end_ms is not None and run.start_ms is not None:
        # Tune stamps results in whole seconds: never end a run before it started
        end_ms = max(end_ms, run.start_ms)
    client.set_terminated(run_id, status=MLFLOW_STATUS[status], end_time=end_ms)


def log_artifact_text(uri: str, run_id: str, name: str, text: str) -> None:
    MlflowClient(uri).log_text(run_id, text, name)


def log_artifact_file(uri: str, run_id: str, path: str | Path) -> None:
    MlflowClient(uri).log_artifact(run_id, str(path))


def log_plot(uri: str, run_id: str, name: str, figure: Any, dpi: float) -> None:
    """A matplotlib figure as the PNG artifact ``name`` (MLflow's ``log_figure``)."""
    MlflowClient(uri).log_figure(run_id, figure, name, save_kwargs={"dpi": dpi})


def log_figure(uri: str, run_id: str, png: bytes, step: int) -> None:
    """A figure as an MLflow image (key ``FIGURE_KEY``) at ``step``: the run's image grid
    and Compare show it by epoch. MLflow names every image afresh, so a caller that may
    repeat a step asks ``figure_steps`` first."""
    client, image = MlflowClient(uri), Image.open(io.BytesIO(png))
    client.log_image(run_id, image, key=FIGURE_KEY, step=step, synchronous=True)
    # the newest epoch's figure whole, under a name the run's note links to: MLflow's
    # image card shows a 256-px thumbnail, and the epochs' files have generated names.
    # Every writer logs epochs in order (the trial; a backfill, the newest one only).
    # The bytes as they came: no second encoding of the same pixels.
    with tempfile.TemporaryDirectory() as tmp:
        latest = Path(tmp) / LATEST_FIGURE
        latest.write_bytes(png)
        client.log_artifact(run_id, str(latest))


def figure_steps(uri: str, run_id: str) -> set[int]:
    """The steps at which the run has a figure (MLflow's image file names carry them:
    ``images/<key>+step+<n>+timestamp+<ms>+<uuid>.png``)."""
    steps = set()
    for artifact in MlflowClient(uri).list_artifacts(run_id, "images"):
        name = artifact.path.rsplit("/", 1)[-1]
        parts = name.split("+")
        if (len(parts) >= 4 and parts[0] == FIGURE_KEY and parts[1] == "step"
                and name.endswith(".png")):
            steps.add(int(parts[2]))
    return steps


def log_json(uri: str, run_id: str, name: str, payload: Any) -> None:
    log_artifact_text(uri, run_id, name, json.dumps(payload, indent=2, sort_keys=True))


def log_datasets(uri: str, run_id: str, datasets: list[dict[str, Any]]) -> None:
    """The run's datasets as MLflow dataset inputs (``data.lineage.DatasetInfo`` as
    dicts): the runs table's *Datasets* column, with each one's role as its context."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    MlflowClient(uri).log_inputs(run_id, datasets=[DatasetInput(
        Dataset(name=d["name"], digest=d["digest"], source_type=d["source_type"],
                source=json.dumps({"uri": d["source"]}),
                profile=json.dumps({"num_images": d["images"]})),
        tags=[InputTag(MLFLOW_DATASET_CONTEXT, d["context"])]) for d in datasets])


# Runs per request when listing: MLflow caps one request (50,000 on a server), so every
# listing pages through them all rather than silently ending at the cap.
PAGE_SIZE = 1000


def all_runs(uri: str, experiment_ids: list[str], filter_string: str = "",
             order_by: list[str] | None = None) -> list[RunRow]:
    """Every run the filter matches, page by page."""
    client, runs, token = MlflowClient(uri), [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string,
                                  order_by=order_by, max_results=PAGE_SIZE, page_token=token)
        runs.extend(_row(run) for run in page)
        token = page.token
        if not token:
            return runs


def child_runs(uri: str, experiment_id: str, parent_run_id: str) -> list[RunRow]:
    """Every run of a search, with its params, tags and latest metrics."""
    return all_runs(uri, [experiment_id], f"tags.`{PARENT_TAG}` = '{parent_run_id}'")
