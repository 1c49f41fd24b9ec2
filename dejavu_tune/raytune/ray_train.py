"""One Tune trial as several data-parallel ranks: a Ray Train ``TorchTrainer`` run inside
the trial (Ray's pattern for Train in Tune, Train V2).

The Tune trial itself only drives (a hundredth of a CPU): it starts the TorchTrainer,
whose workers hold the trial's CPUs and GPUs wherever Ray places them, and forwards every
report of rank 0 to Tune with its checkpoint (``ForwardReports``). Ray's own
``TuneReportCallback`` forwards the metrics only, and the search relies on Tune's
checkpoints (resume, the driver's backfill, the checkpoint kept per trial), so the
checkpoint travels too: Train writes it under the trial's storage, ``tune.report``
persists it as any trial's, and Train's copy is then removed.

A restarted trial (``--max-failures``; a rank that died fails the whole TorchTrainer)
hands Tune's newest checkpoint to the new ranks in their loop configuration: Train V2
refuses ``resume_from_checkpoint``, and each attempt is a new Train run, so nothing of a
dead attempt is picked up by accident.

Inside a rank, ``session()`` tells ``ray_adapter``'s trial calls (id, directory, report,
restore) where they run."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["DRIVER_CPU", "RankSession", "session", "enter", "fit_ranks", "report"]

# what the Tune trial holds for itself: it only waits on the ranks and forwards reports
DRIVER_CPU = 0.01
# how long one rank waits for the others in a collective before the trial fails (a rank
# that died or hangs must not hold the others for torch's default of 30 minutes)
COLLECTIVE_TIMEOUT_S = 600.0
_POLL_S = 0.5


@dataclass(frozen=True)
class RankSession:
    """What a rank knows of the Tune trial it belongs to."""

    trial_id: str
    trial_dir: str | None
    resume: str | None  # the trial's newest Tune checkpoint when it restarted


_SESSION: list[RankSession] = []


def session() -> RankSession | None:
    """This process's rank session; None outside the ranks of a data-parallel trial."""
    return _SESSION[0] if _SESSION else None


def enter(rank_session: RankSession) -> None:
    _SESSION[:] = [rank_session]


def world_rank() -> int:
    import ray.train

    return ray.train.get_context().get_world_rank()


def device() -> Any:
    import ray.train.torch

    return ray.train.torch.get_device()


def report(metrics: dict[str, Any], directory: str | None) -> None:
    """Every rank reports each epoch (Train waits for all of them); rank 0's checkpoint
    ``directory`` is the trial's."""
    import ray.train

    checkpoint = ray.train.Checkpoint.from_directory(directory) if directory else None
    ray.train.report(metrics, checkpoint=checkpoint)


def fit_ranks(loop: Callable[[dict[str, Any]], None], loop_config: dict[str, Any], *,
              ranks: int, cpu: float, gpu: float, storage: str, wait_s: float) -> None:
    """Run ``loop`` on ``ranks`` Train workers of ``cpu``/``gpu`` each, from inside a Tune
    trial; returns when they finish, raises when one fails. ``storage``: a directory of
    the search's storage (every node of a cluster reaches it) for Train's own files.
    ``wait_s``: how long the ranks may wait for their resources. Tune does not see what
    Train reserves, so a trial may start while the ranks of others hold the CPUs or
    GPUs; its ranks then wait for them (Train's own bound, 60 s, would fail it)."""
    import os

    import ray.train
    from ray import tune
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.train.v2.api.callback import UserCallback
    from ray.util.queue import Empty, Queue

    context = tune.get_context()
    checkpoint = tune.get_checkpoint()
    loop_config = {**loop_config, "rank_session": RankSession(
        context.get_trial_id(), context.get_trial_dir(),
        checkpoint.path if checkpoint is not None else None)}
    reports = Queue(maxsize=1, actor_options={"num_cpus": 0})
    # Train hands its RAY_TRAIN_* settings from this process to its controller
    os.environ["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] = str(int(wait_s))

    class ForwardReports(UserCallback):
        def after_report(self, run_context: Any, metrics: list[dict[str, Any]],
                         checkpoint: Any) -> None:
            # blocks while the trial has not taken the last one: Train's copy of a
            # checkpoint is never removed before Tune persisted it
            reports.put((metrics[0], checkpoint.path if checkpoint is not None else None))

    trainer = TorchTrainer(
        loop, train_loop_config=loop_config,
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo",
                                 timeout_s=int(COLLECTIVE_TIMEOUT_S)),
        scaling_config=ray.train.ScalingConfig(
            num_workers=ranks, use_gpu=gpu > 0,
            # the trial's driving share comes out of the ranks': a trial holds what it asks
            resources_per_worker={"CPU": cpu - DRIVER_CPU / ranks,
                                  **({"GPU": gpu} if gpu else {})}),
        run_config=ray.train.RunConfig(
            name=f"{context.get_trial_id()}-{uuid.uuid4().hex[:8]}", storage_path=storage,
            callbacks=[ForwardReports()],
            failure_config=ray.train.FailureConfig(max_failures=0)))
    failed: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as exc:  # noqa: BLE001 - raised again in the trial's thread
            failed.append(exc)

    thread = threading.Thread(target=fit, name="ranks", daemon=True)
    thread.start()
    try:
        while thread.is_alive() or not reports.empty():
            try:
                metrics, path = reports.get(timeout=_POLL_S)
            except Empty:
                continue
            if path is None:
                tune.report(metrics)
                continue
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(path))
            shutil.rmtree(path, ignore_errors=True)  # Tune holds its own copy now
        thread.join()
    finally:
        reports.shutdown(force=True)
    if failed:
        raise _cause(failed[0])


def _cause(exc: BaseException) -> BaseException:
    """The ranks' own error where Train wraps them (``WorkerGroupError``): one that ran
    out of memory first (the others then fail in a collective, and the trial keeps its
    out-of-memory status), else the lowest rank's."""
    from dejavu_tune.train.memory import names_out_of_memory

    failures = getattr(exc, "worker_failures", None)
    if not isinstance(failures, dict) or not failures:
        return exc
    errors = [getattr(failures[rank], "cause", None) or failures[rank]
              for rank in sorted(failures)]
    return next((e for e in errors if names_out_of_memory(f"{type(e).__name__}: {e}")),
                errors[0])
