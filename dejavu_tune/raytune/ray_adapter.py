"""Every Ray call dejavu-tune depends on, in one place (Ray's API moves between releases).

Trainable side: ``trial_id``, ``report`` (metrics + a checkpoint directory
holding the trainer state), ``restore_state``. Driver side: ``start_ray``,
``make_tuner`` / ``restore_tuner`` / ``can_restore`` (OptunaSearch + ASHA),
``make_status_callback``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dejavu_tune.errors import DejavuError
from dejavu_tune.raytune import ray_train
from dejavu_tune.raytune.trial_results import RECORDED_MS_KEY, state_of
from dejavu_tune.raytune.tune_settings import Run, Trials

__all__ = ["GPU_IDS_KEY", "RECORDED_MS_KEY", "trial_id", "trial_dir", "rank", "rank_device", "fit_ranks", "enter_rank", "placement", "report", "restore_state",
           "use_cluster_auth", "start_ray", "make_tuner", "run_parallel", "restore_tuner",
           "can_restore", "make_status_callback", "make_progress_callback", "trial_error",
           "optuna_trials", "wait_for_nodes", "wait_for_resources",
           "RayWaitError", "join_abandoned", "CONNECT_S", "RESOURCE_WAIT_S", "TASK_S"]

# The bounds of every wait on Ray, in seconds (each can be set in the environment): joining
# a running cluster; a node that can hold one trial (an autoscaling cluster may add one);
# one CRM pre-training task, from submission to its result.
CONNECT_S = float(os.environ.get("DEJAVU_RAY_CONNECT_S", "30"))
RESOURCE_WAIT_S = float(os.environ.get("DEJAVU_RESOURCE_WAIT_S", "300"))
TASK_S = float(os.environ.get("DEJAVU_TASK_TIMEOUT_S", "86400"))


class RayWaitError(DejavuError, TimeoutError):
    """A wait on Ray ran past its bound; the message says what was waited for."""

# -- inside a trial ----------------------------------------------------------------
# (A rank of a data-parallel trial runs in a Train worker, where Tune's session is not:
# these read the trial from the rank's session, ``ray_train.session()``.)
def trial_id() -> str:
    from ray import tune

    ranks = ray_train.session()
    return ranks.trial_id if ranks is not None else tune.get_context().get_trial_id()


def trial_dir() -> str | None:
    from ray import tune

    ranks = ray_train.session()
    return ranks.trial_dir if ranks is not None else tune.get_context().get_trial_dir()


def rank() -> int:
    """This process's rank in its trial (0 for a trial of one process)."""
    return ray_train.world_rank() if ray_train.session() is not None else 0


# The GPUs of a trial, in every result it reports (Tune adds the node's IP itself), so the
# driver can tag its run from Tune's results when the trial's own records were lost.
GPU_IDS_KEY = "gpu_ids"


def placement() -> tuple[str, str]:
    """Where the trial runs: its node's IP and the GPUs Ray assigned it ("" for none)."""
    import ray

    return ray.util.get_node_ip_address(), ",".join(str(g) for g in ray.get_gpu_ids())


def report(metrics: dict[str, Any], state: dict[str, Any],
           files: dict[str, bytes] | None = None) -> None:
    """Report one epoch with a checkpoint of ``state`` (tensors and plain values only).

    ``files`` are written beside the state: records of the epoch (its figure) that the
    driver can deliver from the storage path if the trial's own delivery dies with it.
    The checkpoint is complete in a private directory before Tune persists it, so a
    worker that dies mid-write never leaves a half-written checkpoint registered. In a
    data-parallel trial every rank reports, and rank 0's checkpoint is the trial's."""
    from ray import tune

    from dejavu_tune.train import checkpoint_io

    ranked = ray_train.session() is not None
    if ranked and rank() != 0:
        ray_train.report(metrics, None)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in (files or {}).items():
            (Path(tmp) / name).write_bytes(data)
        checkpoint_io.save(state, tmp)
        if ranked:
            ray_train.report(metrics, tmp)
        else:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def fit_ranks(loop: Callable[[dict[str, Any]], None], loop_config: dict[str, Any],
              ranks: int, cpu: float, gpu: float, storage: str | None) -> None:
    """The trial as ``ranks`` data-parallel processes running ``loop(loop_config)``
    (``ray_train.fit_ranks``); ``loop`` starts with ``enter_rank(loop_config)``."""
    if storage is None:
        raise ValueError("a data-parallel trial needs its ranks' storage directory")
    ray_train.fit_ranks(loop, loop_config, ranks=ranks, cpu=cpu, gpu=gpu, storage=storage,
                        wait_s=TASK_S)


def rank_device() -> str:
    """The GPU of this rank (Ray Train shows a rank every GPU of its node, for NCCL)."""
    return str(ray_train.device())


def enter_rank(loop_config: dict[str, Any]) -> None:
    """Inside a rank: the trial calls above read its trial from here on."""
    ray_train.enter(loop_config["rank_session"])


def restore_state() -> tuple[dict[str, Any] | None, list[str]]:
    """(state of the trial's newest intact checkpoint or None on a fresh start, reasons
    newer checkpoints were skipped). Raises CheckpointError when none is intact."""
    from ray import tune

    from dejavu_tune.train import checkpoint_io

    ranks = ray_train.session()
    if ranks is not None:
        newest = Path(ranks.resume) if ranks.resume else None
    else:
        checkpoint = tune.get_checkpoint()
        newest = Path(checkpoint.path) if checkpoint is not None else None
    if newest is None:
        return None, []
    # Tune keeps the newest few (CheckpointConfig.num_to_keep) beside each other.
    older = sorted((p for p in newest.parent.glob("checkpoint_*")
                    if p.is_dir() and p.name < newest.name), reverse=True)
    state, _, skipped = checkpoint_io.load_first_good([newest, *older])
    return state, skipped


# -- the driver --------------------------------------------------------------------
def use_cluster_auth() -> None:
    """Send Ray's auth token when joining a running cluster. Call before Ray is imported.

    Clusters from `ray start` (and so `ray up`) require the token in ~/.ray/auth_token by
    default, but a client sends it only in token mode, which Ray reads at import; a
    cluster without authentication accepts such a client as well. Without a token on this
    machine token mode would fail every join at once, also to a cluster that needs none:
    then Ray's own default stands, and a cluster that wants a token says so."""
    if _has_token():
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def _has_token() -> bool:
    """Whether this machine has a Ray auth token where Ray looks for one."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or os.path.isfile(path)


def start_ray(address: str | None = None, verbose: bool = True) -> None:
    """Join ``address``, or start a Ray of this process's own; ``verbose``: Ray's own
    INFO lines too (the search prints its own progress)."""
    import ray

    if ray.is_initialized():
        return
    if address:
        _join_cluster(ray, address)
    else:
        # "local": a Ray of our own, never a `ray start` cluster that happens to run on this
        # machine (nor a dead one whose address Ray remembers in /tmp/ray, which would hang
        # the search). The dashboard is a web server: a local search does not need one.
        ray.init(address="local", include_dashboard=False, log_to_driver=False,
                 logging_level=logging.INFO if verbose else logging.WARNING)


def _join_cluster(ray: Any, address: str) -> None:
    """``ray.init(address)`` within ``CONNECT_S``: a port that accepts and never speaks
    Ray's protocol would otherwise hold the driver for minutes. (Joining from a thread
    works; starting a local Ray from one does not, and that needs no bound.)"""
    import threading

    failed: list[BaseException] = []

    def join() -> None:
        try:
            ray.init(address=address, log_to_driver=False)
        except BaseException as exc:  # noqa: BLE001 - raised again in the driver's thread
            failed.append(exc)

    thread = threading.Thread(target=join, name="ray-connect", daemon=True)
    thread.start()
    thread.join(CONNECT_S)
    if thread.is_alive():
        _ABANDONED.append(thread)
        raise RayWaitError(f"--address {address}: no Ray cluster answered within "
                           f"{CONNECT_S:g} s (DEJAVU_RAY_CONNECT_S): check the head's address "
                           "and port (`ray status` on the head) and that this machine can "
                           "reach it" + ("" if _has_token() else
                                         "; this machine has no Ray auth token "
                                         "(~/.ray/auth_token, RAY_AUTH_TOKEN or "
                                         "RAY_AUTH_TOKEN_PATH), and a cluster with token "
                                         "authentication (`ray start`'s default) never "
                                         "answers a client without one: copy the head's "
                                         "~/.ray/auth_token here"))
    if failed:
        raise failed[0]


_ABANDONED: list[Any] = []  # joins that ran past CONNECT_S: still inside Ray's connect


def join_abandoned() -> bool:
    """Whether a join ran past its bound: its thread cannot be cancelled, and Ray's
    teardown at interpreter exit aborts on it, so the command must end with ``os._exit``."""
    return bool(_ABANDONED)


def wait_for_resources(cpu: float, gpu: float, timeout: float = RESOURCE_WAIT_S,
                       poll: float = 5.0) -> None:
    """Until one alive node can hold a trial of ``cpu`` CPUs and ``gpu`` GPUs (a trial and
    a CRM pre-training run on one node), at most ``timeout`` seconds; an autoscaling
    cluster may add such a node meanwhile. Ray itself would wait forever, silently."""
    import ray

    deadline, said = time.monotonic() + timeout, False
    while True:
        nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
        if any(n.get("CPU", 0) >= cpu and n.get("GPU", 0) >= gpu for n in nodes):
            return
        have = "; ".join(sorted({f"{n.get('CPU', 0):g} CPU, {n.get('GPU', 0):g} GPU"
                                 for n in nodes})) or "no alive node"
        if time.monotonic() > deadline:
            raise RayWaitError(f"no Ray node can hold a trial of {cpu:g} CPU, {gpu:g} GPU "
                               f"after {timeout:g} s (DEJAVU_RESOURCE_WAIT_S); the cluster's "
                               f"nodes have: {have}: lower --cpus-per-trial/--gpus-per-trial "
                               "or add such a node")
        if not said:
            print(f"waiting up to {timeout:g} s for a Ray node with {cpu:g} CPU, {gpu:g} GPU "
                  f"(the cluster's nodes have: {have})", flush=True)
            said = True
        time.sleep(poll)


def _trainable(fn: Callable[..., None], resources: Any, **constants: Any) -> Any:
    """``fn`` holding ``resources``; a data-parallel trial holds only what its driving
    needs, and its Train run places the ranks (Train reserves their resources itself)."""
    from ray import tune

    held = ({"cpu": ray_train.DRIVER_CPU, "gpu": 0} if resources.ranks > 1
            else {"cpu": resources.cpu, "gpu": resources.gpu})
    return tune.with_resources(tune.with_parameters(fn, **constants), held)


def _ranks_capacity(resources: Any) -> int:
    """How many data-parallel trials the cluster holds at once (at least 1). Tune does not
    see what their Train runs reserve: past this, a trial's ranks would wait for others'
    resources (or two trials each hold a part and neither starts). An autoscaling cluster
    is counted as it is now."""
    import ray

    total = ray.cluster_resources()
    fits = [total.get("CPU", 0.0) // resources.cpu]
    if resources.gpu:
        fits.append(total.get("GPU", 0.0) // resources.gpu)
    return max(1, int(min(fits)))


def make_tuner(fn: Callable[..., None], constants: dict[str, Any], resources: Any,
               trials: Trials, run: Run) -> Any:
    """A Tuner of ``trials`` (``tune_settings.Trials``), each holding ``resources``
    (``cpu`` and ``gpu``: a ``search.space.Resources``), kept and retried as ``run`` says."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from dejavu_tune.raytune import snapshots
    from dejavu_tune.raytune.search_algorithms import make_scheduler, make_searcher

    callbacks = list(run.callbacks)
    keep = snapshots.apply(trials.total)
    if keep is None:
        callbacks.append(snapshots.NewestCheckpointOnly())
    max_concurrent = trials.max_concurrent
    if resources.ranks > 1:
        max_concurrent = min(max_concurrent, _ranks_capacity(resources))
    search_alg = ConcurrencyLimiter(make_searcher(trials), max_concurrent=max_concurrent)
    scheduler = make_scheduler(trials, Path(run.storage_path) / run.name)
    # metric and mode live on the searcher and the scheduler, which may differ: Tune
    # refuses them in TuneConfig then.
    tune_config = tune.TuneConfig(
        num_samples=trials.total, search_alg=search_alg, scheduler=scheduler,
        # Actor start-up dominates short trials: reuse the worker processes between trials
        # (not a data-parallel trial's: each starts its own Train run, which a reused
        # actor would not end)
        reuse_actors=resources.ranks == 1,
        trial_name_creator=ByNumber(run.names) if run.names else None,
        trial_dirname_creator=ByNumber(run.names) if run.names else None)
    if not run.verbose:
        # Ray's experiment box, its TensorBoard hint, its tables and its notes on saving
        # the experiment: the search prints its own progress (Tune's new output engine
        # prints the box even at verbose=0)
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        logging.getLogger("ray.tune").setLevel(logging.WARNING)
    run_config = tune.RunConfig(
        name=run.name, storage_path=run.storage_path, callbacks=callbacks,
        verbose=2 if run.verbose else 0,
        failure_config=tune.FailureConfig(max_failures=run.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=keep))
    return tune.Tuner(_trainable(fn, resources, **constants), tune_config=tune_config,
                      run_config=run_config)


@dataclasses.dataclass(frozen=True)
class ByNumber:
    """Tune's ``trial_name_creator`` / ``trial_dirname_creator`` from ``name(number,
    config)``: Tune numbers a trial only in its experiment tag (``7_<params>``)."""

    name: Callable[[int, dict[str, Any]], str]

    def __call__(self, trial: Any) -> str:
        return self.name(int(str(trial.experiment_tag).partition("_")[0]), trial.config)


def run_parallel(fn: Callable[..., Any], calls: list[tuple], resources: Any
                 ) -> list[Any]:
    """``fn(*args)`` for every ``args`` in ``calls``, as Ray tasks with ``resources`` each
    (on a cluster they spread over the nodes); raises the first failure, named."""
    import ray

    remote = ray.remote(num_cpus=resources.cpu, num_gpus=resources.gpu,
                        max_retries=1)(fn)
    refs = [remote.remote(*args) for args in calls]
    results = []
    deadline = time.monotonic() + TASK_S
    for args, ref in zip(calls, refs, strict=True):
        try:
            results.append(ray.get(ref, timeout=max(1.0, deadline - time.monotonic())))
        except ray.exceptions.GetTimeoutError:
            raise RayWaitError(f"{getattr(fn, '__name__', fn)}{args[:1]!r} did not finish "
                               f"within {TASK_S:g} s (DEJAVU_TASK_TIMEOUT_S)") from None
        except Exception as exc:  # noqa: BLE001 - reported with the task it belongs to
            cause = getattr(exc, "cause", None) or exc
            raise RuntimeError(f"{getattr(fn, '__name__', fn)}{args[:1]!r} failed: "
                               f"{type(cause).__name__}: {cause}".splitlines()[0]) from None
    return results


def restore_tuner(path: str, fn: Callable[..., None], constants: dict[str, Any],
                  resources: Any, trials: int) -> Any:
    """Continue an interrupted experiment of ``trials`` trials: finished trials are kept,
    unfinished ones resume from their checkpoints, errored ones stay errored, and the
    searcher keeps its history."""
    from ray import tune

    from dejavu_tune.raytune import snapshots

    snapshots.apply(trials)  # the period; what to keep is in the restored run config
    trainable = _trainable(fn, resources, **constants)
    # Unpickling the saved trials checks that their trainable is registered, before
    # Tuner.restore registers the one passed in: register it under its old name first.
    tune.register_trainable(fn.__name__, trainable)
    return tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True,
                              resume_errored=False)


def can_restore(path: str) -> bool:
    from ray import tune

    return tune.Tuner.can_restore(path)


def trial_error(trial: Any) -> str:
    """A one-line reason for a failed trial, from the error file Ray wrote."""
    path = getattr(trial, "error_file", None)
    if path and os.path.exists(path):
        lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
        for line in reversed(lines):
            if "Error" in line or "Exception" in line:
                return line
        return lines[-1] if lines else "unknown error"
    return "unknown error"


def make_status_callback(
        on_complete: Callable[[str, dict[str, Any], str | None, dict[str, Any]], None],
        on_error: Callable[[str, str, str | None, dict[str, Any]], None]) -> Any:
    """A Tune callback that forwards each trial's end (id, last result / reason, its
    directory, its configuration)."""
    from ray import tune

    class _Status(tune.Callback):
        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any):
            on_complete(trial.trial_id, dict(trial.last_result or {}),
                        getattr(trial, "local_path", None), dict(trial.config or {}))

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any):
            on_error(trial.trial_id, trial_error(trial), getattr(trial, "local_path", None),
                     dict(trial.config or {}))

    return _Status()


def make_progress_callback(emit: Callable[[list[Any], bool], None],
                           every_s: float = 60.0, min_gap_s: float = 1.0) -> Any:
    """A Tune callback that hands ``emit`` every trial's state (``TrialState``) when a
    trial ends (``True``; at most once per ``min_gap_s``, so that a search of thousands of
    short trials does not spend its loop on its own progress), at least every ``every_s``
    seconds while the experiment runs (``False``), and once when it ends (``True``). The
    loop itself calls it, so ``emit`` must not block."""
    from ray import tune

    class _Progress(tune.Callback):
        def __init__(self) -> None:
            self.last = time.monotonic()
            self.missed = False  # a trial's end went unreported (the gap): say it at the end

        def _emit(self, trials: list, ended: Any = None, status: str = "") -> None:
            self.last, self.missed = time.monotonic(), False
            states = [state_of(t) for t in trials]
            # Tune calls these before it sets the ending trial's status
            states = [dataclasses.replace(s, status=status) if ended is not None
                      and s.trial_id == ended.trial_id else s for s in states]
            emit(states, ended is not None)

        def _ended(self, trials: list, trial: Any, status: str) -> None:
            if time.monotonic() - self.last >= min_gap_s:
                self._emit(trials, trial, status)
            else:
                self.missed = True

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any):
            self._ended(trials, trial, "TERMINATED")

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any):
            self._ended(trials, trial, "ERROR")

        def on_step_end(self, iteration: int, trials: list, **info: Any):
            if time.monotonic() - self.last >= every_s:
                self._emit(trials)

        def on_experiment_end(self, trials: list, **info: Any):
            if self.missed:
                self.missed = False
                emit([state_of(t) for t in trials], True)

    return _Progress()


def optuna_trials(experiment_path: str) -> list[dict[str, Any]]:
    """The Optuna study of a finished Tune run, from the searcher state Tune saved in
    the experiment directory: one entry per Optuna trial, with the Tune trial it ran as."""
    from ray.tune.search.optuna import OptunaSearch

    from dejavu_tune.raytune.tune_outcomes import optuna_internals

    searcher = OptunaSearch()
    searcher.restore_from_dir(experiment_path)
    study, trials = optuna_internals(searcher)
    tune_ids = {trial.number: tid for tid, trial in trials.items()}
    # several objectives: "value" is the list of values, in the objectives' order
    return [{"number": t.number, "trial_id": tune_ids.get(t.number), "state": t.state.name,
             "value": t.values[0] if t.values and len(t.values) == 1 else t.values,
             "params": t.params}
            for t in study.get_trials(deepcopy=False)]


def wait_for_nodes(count: int, timeout: float, poll: float = 2.0) -> int:
    """Connect to the running cluster and wait until ``count`` nodes are alive."""
    use_cluster_auth()
    import ray

    start_ray("auto")
    deadline = time.monotonic() + timeout
    while True:
        alive = sum(1 for node in ray.nodes() if node["Alive"])
        if alive >= count:
            return alive
        if time.monotonic() > deadline:
            raise RayWaitError(f"{alive} of --min-nodes {count} Ray nodes alive after "
                               f"{timeout:g} s; check `ray monitor` on the cluster config")
        time.sleep(poll)
