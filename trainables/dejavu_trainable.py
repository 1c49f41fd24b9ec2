"""The Ray Tune function trainable: one trial = one ``dejavu_tune.train.trainer.Trainer`` run,
its records kept by a ``dejavu_tune.tracking.trial_recorder.TrialRecorder``.

Per epoch it trains, evaluates, queues its metrics and a Figure-D.1-style image for
the trial's MLflow child run (``dejavu_tune.tracking.delivery``: delivered in the background,
retried while the tracking server is away), and reports to Tune with a checkpoint of
the whole trainer state (networks, optimiser, schedule, epoch, RNG). A restarted trial
resumes exactly from ``tune.get_checkpoint()`` and continues its own MLflow run.

A trial of several data-parallel ranks (``resources.workers``, or ``resources.gpu`` above
1) runs the same body on every rank of a Ray Train run inside the Tune trial
(``ray_adapter.fit_ranks``): every rank trains, evaluates its shard and reports; rank 0
alone writes the MLflow run and the checkpoint.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from dejavu_tune.config import ConfigError, TrainConfig, is_baseline, trial_config
from dejavu_tune.data import lineage
from dejavu_tune.plugins import load_object
from dejavu_tune.raytune import ray_adapter
from dejavu_tune.search.trial_context import TrialContext
from dejavu_tune.tracking import runs as tracking
from dejavu_tune.tracking.run_names import run_name
from dejavu_tune.tracking.trial_recorder import RankRecorder, TrialRecorder, now_ms
from dejavu_tune.train import cost_probe, memory
from dejavu_tune.train.crm_store import WEIGHTS_FILE
from dejavu_tune.train.diagnostics import crm_usage
from dejavu_tune.train.distributed import Ranks, gather
from dejavu_tune.train.figures import FIGURE_FILE, regeneration_figure
from dejavu_tune.train.trainer import Trainer

__all__ = ["dejavu_trainable", "CONFIG_FILE"]

CONFIG_FILE = "config.json"  # a trial run's whole resolved configuration


def dejavu_trainable(config: dict[str, Any], context: TrialContext) -> None:
    if context.ranks > 1:
        ray_adapter.fit_ranks(_rank, {"config": config, "context": context}, context.ranks,
                              context.cpus, context.rank_gpu, context.ranks_storage)
    else:
        _trial(config, context)


def _rank(loop_config: dict[str, Any]) -> None:
    """One rank of a data-parallel trial, in its Train worker."""
    ray_adapter.enter_rank(loop_config)
    _trial(loop_config["config"], loop_config["context"])


def _trial(config: dict[str, Any], context: TrialContext) -> None:
    torch.set_num_threads(max(1, int(context.cpus)))
    trial_id = ray_adapter.trial_id()
    kind = "baseline" if is_baseline(config) else "trial"
    # built once: a configuration that does not build fails the trial, under a plain name
    try:
        cfg: TrainConfig | ConfigError = trial_config(context.fixed, config)
    except ConfigError as exc:
        cfg = exc
    record: TrialRecorder | RankRecorder = RankRecorder()
    if ray_adapter.rank() == 0:
        name = (f"{kind}-{trial_id}" if isinstance(cfg, ConfigError) else
                run_name(cfg, config, trial_id, context.phase, ray_adapter.trial_dir(),
                         context.confirmed_trial(config)))
        record = TrialRecorder(context.ref, trial_id, name, kind, context.delivery_retry_s,
                               system_metrics_s=context.system_metrics_s)
    try:
        _train(cfg, config, context, record)
        record.finished("completed")
    except Exception as exc:
        record.finished(*_failure(exc))
        memory.forget(exc)  # Tune keeps the error: not the trial's tensors with it
        raise
    finally:
        record.close()
        memory.release()  # a reused worker's next trial starts from a clean device


def _train(cfg: TrainConfig | ConfigError, config: dict[str, Any], context: TrialContext,
           record: TrialRecorder | RankRecorder) -> None:
    """The trial's epochs; what it allocates lives in this frame only, so it is gone
    when the trial ends, however it ends."""
    record.params(config)
    ranks = Ranks.current()
    node_ip, gpu_ids = ray_adapter.placement()
    record.tags({tracking.NODE_TAG: node_ip, tracking.GPU_TAG: gpu_ids})
    if ranks is not None:
        record.tags({tracking.RANKS_TAG: tracking.describe_ranks(gather((node_ip, gpu_ids)))})
    if isinstance(cfg, ConfigError):
        raise cfg  # after the params and placement: the failed run says what it was
    if context.shared:  # the runs table's column of a shared setting shows what it used
        record.params(_values(cfg, context.shared, skip=config))
    if ranks is not None and context.rank_gpu > 0:
        cfg = cfg.replace(device=ray_adapter.rank_device())  # not every rank's cuda:0
    spec = context.crm_plan.spec(cfg) if context.crm_plan is not None else None
    if context.crm_plan is not None:
        cfg = context.crm_plan.attach(cfg)
    record.tags({tracking.PHASE_TAG: context.phase,
                 tracking.CRM_TAG: _crm_origin(cfg, spec.describe() if spec else None)})
    trainer = (load_object(context.trainer, "search.trainer")(cfg) if context.trainer
               else Trainer(cfg, ranks=ranks))
    # the whole resolved configuration and the datasets: a trial says what it trained
    # even in an experiment that holds several searches
    record.json(CONFIG_FILE, cfg.to_dict())
    if hasattr(trainer, "train_set") and hasattr(trainer, "val_set"):  # a trainer of one's
        # own (search.trainer) that reads no data says nothing about it
        record.datasets([d.to_dict() for d in lineage.describe(
            cfg.data, trainer.train_set, trainer.val_set)])
    probe = trainer.first_batch(cfg.optim.batch_size) if trainer.crm is not None else None
    cost = _cost(trainer, cfg, probe, context.measure_cost)
    state, skipped = ray_adapter.restore_state()
    if state is not None:
        trainer.load_state_dict(state)
        record.resumed(trainer.epoch, skipped)
    del state
    start = time.perf_counter()
    for metrics in trainer.epochs():
        # the compute is the epoch's training and evaluation; the diagnostics below are
        # the service's own cost
        metrics.update(cost, compute_s=time.perf_counter() - start)
        if probe is not None and context.diagnoses(trainer.epoch):
            metrics.update(crm_usage(trainer, probe))
        figure = (_png(regeneration_figure(trainer.sample(context.figure_images),
                                           legend=trainer.legend()))
                  if context.figure_images > 0 and ray_adapter.rank() == 0 else None)
        stamp = now_ms()
        record.epoch(metrics, trainer.epoch, figure, stamp)
        # The figure, the placement and the record's time go to Tune with the epoch
        # too: the driver delivers them from there if this trial's queue dies with it.
        ray_adapter.report({**metrics, ray_adapter.GPU_IDS_KEY: gpu_ids,
                            ray_adapter.RECORDED_MS_KEY: stamp}, trainer.state_dict(),
                           {FIGURE_FILE: figure} if figure else {})
        start = time.perf_counter()


def _failure(exc: Exception) -> tuple[str, str]:
    """(status, reason) of a trial that raised; an allocation failure says how much
    memory there was, the numbers a user sizes the trial by."""
    reason = f"{type(exc).__name__}: {exc}"
    if memory.is_out_of_memory(exc):
        cuda = isinstance(exc, torch.OutOfMemoryError)
        return memory.OUT_OF_MEMORY, f"{reason} ({memory.allocator_report(cuda)})"[:4000]
    return "failed", reason


def _cost(trainer: Any, cfg: TrainConfig, batch: dict[str, Any] | None,
          measure: bool) -> dict[str, float]:
    """The step's cost next to the baseline's (``cost_probe.COST_METRICS``), once per
    trial process, where the search reads it (``measure``: its extra steps are not free). A
    trainer of one's own (``search.trainer``) may state its own with a ``cost_ratios()``
    method, always reported; without one its cost is not measured ({})."""
    stated = getattr(trainer, "cost_ratios", None)
    if stated is not None:
        return stated()
    if not measure or not isinstance(trainer, Trainer):
        return {}
    if batch is None:  # the CRM diagnostics' batch serves both when there is one
        batch = trainer.first_batch(cfg.optim.batch_size)
    return cost_probe.measure(trainer, batch)


def _crm_origin(cfg: TrainConfig, stored: str | None = None) -> str:
    """Where the trial's CRM starts: stored weights (what they are, ``stored``, and their
    store key), a file, scratch."""
    crm = cfg.dejavu.crm
    if not cfg.dejavu.uses_crm:  # DejaVu off, or dejavu.mode: augment
        return "none"
    if crm.weights:
        path = Path(crm.weights)
        if path.name != WEIGHTS_FILE:
            return f"file:{path}"
        return (f"stored {stored} ({path.parent.name[:8]})" if stored
                else f"stored:{path.parent.name}")
    return "scratch"


def _values(cfg: TrainConfig, keys: tuple[str, ...], skip: dict[str, Any]) -> dict[str, Any]:
    """The dotted ``keys``' values in ``cfg``, but those in ``skip`` (logged already)."""
    out, whole = {}, cfg.to_dict()
    for key in keys:
        if key in skip:
            continue
        value: Any = whole
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            out[key] = value
    return out


def _png(figure: Image.Image) -> bytes:
    buffer = io.BytesIO()
    figure.save(buffer, format="PNG")
    return buffer.getvalue()
