"""The Ray Tune function trainable: one trial = one ``dejavu_tune.train.Trainer`` run.

Per epoch it trains, evaluates, queues its metrics and a Figure-D.1-style image for
the trial's MLflow child run (``dejavu_tune.delivery``: delivered in the background,
retried while the tracking server is away), and reports to Tune with a checkpoint of
the whole trainer state (networks, optimiser, schedule, epoch, RNG). A restarted trial
resumes exactly from ``tune.get_checkpoint()`` and continues its own MLflow run.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from dejavu_tune import ray_adapter, tracking
from dejavu_tune.config import ConfigError, TrainConfig
from dejavu_tune.crm_store import WEIGHTS_FILE, CRMPlan
from dejavu_tune.delivery import DeliveryQueue
from dejavu_tune.diagnostics import crm_usage
from dejavu_tune.figures import regeneration_figure
from dejavu_tune.plugins import load_object
from dejavu_tune.run_names import run_name
from dejavu_tune.train import Trainer
from dejavu_tune.tune_baseline import is_baseline

__all__ = ["TrialContext", "dejavu_trainable", "trial_config", "FIGURE_FILE",
           "GPU_IDS_KEY"]

FIGURE_FILE = "regeneration.png"
# The GPUs of the trial, in every result it reports to Tune (Tune adds the node's IP itself).
GPU_IDS_KEY = "gpu_ids"
# How long a trial waits for its queue before each report and at its end, while the
# server answers. Tune ends a trial that a scheduler stops (ASHA at a rung or at max_t)
# inside its report; the driver then logs every epoch Tune has and the run lacks, and
# settles the run's status, after fit.
_DRAIN_S = 30.0


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one search shares; shipped to workers through Ray, so a
    worker on another node never reads the tracking URI from its own environment."""

    fixed: dict[str, Any]
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    cpus: float = 1.0
    figure_images: int = 4
    delivery_retry_s: float = 3600.0  # how long a trial keeps retrying one tracking call
    crm_plan: CRMPlan | None = None  # the stored CRM weights DejaVu trials start from
    trainer: str | None = None  # 'module:function' building the trainer; None: Trainer
    phase: str = "search"  # which step of the search the trial belongs to (a run tag)


class _TrialRun:
    """The trial's MLflow run, opened by the first call in the trial's queue: a trial
    that starts while the tracking server is away trains meanwhile, and every later
    call in the queue finds the run's id here."""

    def __init__(self, uri: str):
        self.uri = uri
        self.id: str | None = None

    def open(self, *args: Any) -> None:
        self.id = tracking.open_trial_run(self.uri, *args)

    def log(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if self.id is None:
            raise RuntimeError(f"{fn.__name__}: the trial's MLflow run could not be opened")
        fn(self.uri, self.id, *args, **kwargs)


def dejavu_trainable(config: dict[str, Any], context: TrialContext) -> None:
    torch.set_num_threads(max(1, int(context.cpus)))
    started_ms = _now_ms()
    trial_id = ray_adapter.trial_id()
    kind = "baseline" if is_baseline(config) else "trial"
    # The queue's retries, not MLflow's growing backoff, decide how soon a call goes
    # through once the server is back (see dejavu_tune.delivery).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    # Every tracking call goes through the queue: an unreachable tracking server delays
    # the records, never the training. The run is opened first, before anything else
    # can fail, so every trial is accounted for.
    outbox = DeliveryQueue(retry_for_s=context.delivery_retry_s)
    run = _TrialRun(context.tracking_uri)
    outbox.put(run.open, context.experiment_id, context.parent_run_id, trial_id,
               _run_name(context, config, trial_id, kind), kind, started_ms)
    try:
        outbox.put(run.log, tracking.log_params, config)
        node_ip, gpu_ids = ray_adapter.placement()
        outbox.put(run.log, tracking.set_tags,
                   {tracking.NODE_TAG: node_ip, tracking.GPU_TAG: gpu_ids})
        cfg = trial_config(context.fixed, config)
        if context.crm_plan is not None:
            cfg = context.crm_plan.attach(cfg)
        outbox.put(run.log, tracking.set_tags, {tracking.PHASE_TAG: context.phase,
                                                tracking.CRM_TAG: _crm_origin(cfg)})
        trainer = (load_object(context.trainer, "search.trainer") if context.trainer
                   else Trainer)(cfg)
        probe = trainer.first_batch(cfg.optim.batch_size) if trainer.crm is not None else None
        state, skipped = ray_adapter.restore_state()
        if state is not None:
            trainer.load_state_dict(state)
            tags = {tracking.RESUMED_TAG: trainer.epoch}
            if skipped:
                tags[tracking.CHECKPOINT_SKIPPED_TAG] = "; ".join(skipped)
            outbox.put(run.log, tracking.set_tags, tags)
        # Only the first epoch after a restore can have been logged already.
        rerun_epoch = trainer.epoch + 1 if state is not None else None
        while trainer.epoch < cfg.optim.epochs:
            start = time.perf_counter()
            metrics = trainer.train_epoch()
            metrics.update(trainer.evaluate())
            if probe is not None:
                metrics.update(crm_usage(trainer, probe))
            metrics["compute_s"] = time.perf_counter() - start
            # a copy: Tune adds its own keys to the dict it is given
            log_epoch = _log_new_epoch if trainer.epoch == rerun_epoch else tracking.log_epoch
            outbox.put(run.log, log_epoch, dict(metrics), trainer.epoch, _now_ms())
            files = {}
            if context.figure_images > 0:
                files[FIGURE_FILE] = _png(regeneration_figure(
                    trainer.sample(context.figure_images), legend=trainer.legend()))
                outbox.put(run.log, tracking.log_figure, files[FIGURE_FILE], trainer.epoch)
            # While the server answers, the epoch's records go through before Tune may stop
            # the trial in its report (a stopped trial's queue dies with it); while it is
            # away, training goes on and the driver backfills the metrics.
            outbox.drain(_DRAIN_S, unless_failing=True)
            # The figure and the placement go to Tune with the epoch too: the driver
            # delivers them from there if this trial's queue dies with it.
            ray_adapter.report({**metrics, GPU_IDS_KEY: gpu_ids}, trainer.state_dict(), files)
        outbox.put(run.log, tracking.set_trial_status, "completed", None, _now_ms())
    except Exception as exc:
        outbox.put(run.log, tracking.set_trial_status, "failed",
                   f"{type(exc).__name__}: {exc}", _now_ms())
        raise
    finally:
        # The thread ends once what is queued is delivered, so a reused worker does not
        # collect one idle thread per trial. On Tune's stop (SystemExit inside report)
        # nothing waits: Tune gives the thread 2 s, and the driver backfills after fit.
        outbox.close()
        if not isinstance(sys.exc_info()[1], SystemExit):
            outbox.drain(_DRAIN_S, unless_failing=True)


def _log_new_epoch(uri: str, run_id: str, metrics: dict[str, float], step: int,
                   timestamp_ms: int) -> None:
    """A worker that died after logging an epoch but before checkpointing it runs that
    epoch again after its restart (same state and RNG): the first point stays."""
    if step not in tracking.logged_steps(uri, run_id, "compute_s"):
        tracking.log_epoch(uri, run_id, metrics, step=step, timestamp_ms=timestamp_ms)


def trial_config(fixed: dict[str, Any], sampled: dict[str, Any]) -> TrainConfig:
    """A trial's configuration: the space's fixed keys with its sampled (dotted) ones."""
    return TrainConfig.from_dict(fixed).replace(**sampled)


def _crm_origin(cfg: TrainConfig) -> str:
    """Where the trial's CRM starts: stored weights (their store key), a file, scratch."""
    crm = cfg.dejavu.crm
    if not cfg.dejavu.enabled:
        return "none"
    if crm.weights:
        path = Path(crm.weights)
        return f"stored:{path.parent.name}" if path.name == WEIGHTS_FILE else f"file:{path}"
    return "scratch"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _png(figure: Image.Image) -> bytes:
    buffer = io.BytesIO()
    figure.save(buffer, format="PNG")
    return buffer.getvalue()


def _run_name(context: TrialContext, config: dict[str, Any], trial_id: str, kind: str) -> str:
    """The readable name of the trial's run; a configuration that does not build (the
    trial fails on it at once) keeps the plain one."""
    try:
        return run_name(trial_config(context.fixed, config), config, trial_id, context.phase,
                        ray_adapter.trial_dir())
    except ConfigError:
        return f"{kind}-{trial_id}"
