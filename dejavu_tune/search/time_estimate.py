"""``--dry-run``'s time estimate: the plan in hours as well as trial-epochs.

Probes on the device a trial would use, with the threads a trial gets: the baseline (the
first sampled configuration with DejaVu off) and the dearest DejaVu configuration among
the space's samples (the deepest CRM of each kind
sampled, the slower of them), each built once (its setup: network and data) and timed
over ``PROBE_STEPS`` training steps after a warm-up step and one evaluation batch. An
epoch is the training split's steps plus the search split's evaluation batches; the plan
is every run at the full budget (ASHA only shortens it), baselines at the baseline's
epoch, DejaVu trials and every confirmation run at the dearest DejaVu epoch, divided by
the trials that run at once. Not in it: the CRM stage's pre-trainings (stored ones are
reused), Ray's and MLflow's own cost per trial and the per-epoch CRM diagnostics; the
error of the whole against a measured search is in docs/benchmarks.md
(``python -m dejavu_tune.bench time-estimate``).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

from dejavu_tune.config import ENABLED_KEY, TrainConfig
from dejavu_tune.search.run_plan import RunPlan
from dejavu_tune.search.space import SearchSpace

__all__ = ["PROBE_STEPS", "Probe", "Estimate", "dearest", "probe", "estimate", "slots"]

PROBE_STEPS = 3


@dataclass(frozen=True)
class Probe:
    """One configuration's measured costs (seconds) and its epoch's shape."""

    what: str
    setup_s: float  # building its trainer: network, data
    step_s: float  # one training step (one rank's rows)
    eval_s: float  # one evaluation batch
    steps: int  # training steps an epoch
    evals: int  # evaluation batches an epoch

    @property
    def epoch_s(self) -> float:
        return self.steps * self.step_s + self.evals * self.eval_s

    def run_s(self, epochs: int) -> float:
        return self.setup_s + epochs * self.epoch_s


@dataclass(frozen=True)
class Estimate:
    baseline: Probe
    dejavu: Probe | None  # None: the space samples no DejaVu configuration
    baseline_runs: int
    dejavu_runs: int  # DejaVu search trials and every confirmation run
    epochs: int
    slots: int  # trials at once

    @property
    def total_s(self) -> float:
        dejavu = self.dejavu or self.baseline
        return (self.baseline_runs * self.baseline.run_s(self.epochs)
                + self.dejavu_runs * dejavu.run_s(self.epochs)) / self.slots

    def line(self) -> str:
        from dejavu_tune.search.progress import duration

        probes = f"baseline {self.baseline.epoch_s:.3g} s/epoch"
        if self.dejavu is not None:
            probes += (f", dearest DejaVu ({self.dejavu.what}) {self.dejavu.epoch_s:.3g} "
                       f"s/epoch ({self.dejavu.epoch_s / self.baseline.epoch_s:.2f}×)")
        return (f"time: at most about {duration(self.total_s)} after the CRM stage, "
                f"{self.slots} trial(s) at once ({probes}; {self.baseline_runs} baseline + "
                f"{self.dejavu_runs} DejaVu runs × {self.epochs} epochs, measured in "
                f"{PROBE_STEPS} probe steps each; ASHA's stops shorten it; Ray's and MLflow's "
                "own cost per trial is not in it)")


def dearest(space: SearchSpace) -> list[TrainConfig]:
    """The deepest CRM of each kind among the space's sampled DejaVu configurations
    (CRM-F: the most stages; CRM-R: the most steps)."""
    def depth(cfg: TrainConfig) -> int:
        crm = cfg.dejavu.crm
        return crm.stages if crm.kind == "crm_f" else crm.steps

    deepest: dict[str, TrainConfig] = {}
    for cfg in space.sampled_configs:
        if not cfg.dejavu.uses_crm:
            continue
        kind = cfg.dejavu.crm.kind
        if kind not in deepest or depth(cfg) > depth(deepest[kind]):
            deepest[kind] = cfg
    return [deepest[k] for k in sorted(deepest)]


def probe(cfg: TrainConfig, ranks: int = 1, threads: int = 1) -> Probe:
    """``cfg``'s costs, measured here (see the module's docstring)."""
    import torch

    from dejavu_tune.search.memory_estimate import describe, probe_config
    from dejavu_tune.train.trainer import Trainer

    cfg = probe_config(cfg, ranks)
    rows = cfg.optim.batch_size
    held = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        start = time.perf_counter()
        trainer = Trainer(cfg)
        batch = trainer.first_batch(rows)
        setup = time.perf_counter() - start
        trainer.train_step(batch)  # warm-up: allocations, kernel selection
        step = _timed(trainer, lambda: [trainer.train_step(batch)
                                        for _ in range(PROBE_STEPS)]) / PROBE_STEPS
        one = torch.utils.data.Subset(trainer.val_set, range(min(rows, len(trainer.val_set))))
        evaluation = _timed(trainer, lambda: trainer.evaluate(one))
        evals = math.ceil(len(trainer.val_set) / ranks / rows)
        return Probe(describe(cfg), setup, step, evaluation, trainer.iters_per_epoch, evals)
    finally:
        torch.set_num_threads(held)


def _timed(trainer: Any, work: Any) -> float:
    import torch

    start = time.perf_counter()
    work()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)
    return time.perf_counter() - start


def slots(space: SearchSpace, local: bool) -> int:
    """Trials at once: ``search.max_concurrent``, and on this machine what its cores and
    GPUs hold."""
    s, r = space.search, space.resources
    at_once = s.max_concurrent
    if local:
        at_once = min(at_once, max(1, int((os.cpu_count() or 1) // max(r.cpu, 1e-9))))
        if r.gpu > 0:
            import torch

            at_once = min(at_once, max(1, int(torch.cuda.device_count() // r.gpu)))
    return max(1, at_once)


def estimate(space: SearchSpace, runs: RunPlan, local: bool = True) -> Estimate:
    """The plan's time, probed on this machine."""
    ranks, (cpus, _) = space.resources.ranks, space.resources.per_rank
    threads = max(1, int(cpus))
    base = space.base_config()
    # a sampled configuration, not the fixed settings alone: a sampled batch size may be
    # the only one the data holds
    first = space.sampled_configs[0] if space.sampled_configs else base
    baseline = probe(first.replace(**{ENABLED_KEY: False}), ranks, threads)
    dejavu = max((probe(cfg, ranks, threads) for cfg in dearest(space)),
                 key=lambda p: p.epoch_s, default=None)
    return Estimate(baseline=baseline, dejavu=dejavu,
                    baseline_runs=runs.tuning + runs.baselines,
                    dejavu_runs=runs.trials + runs.confirmation,
                    epochs=base.optim.epochs, slots=slots(space, local))


def dry_run_line(space: SearchSpace, runs: RunPlan, local: bool) -> str:
    """The dry run's time line: measured where the trials would train, else why not."""
    from dejavu_tune.models.device import resolve_device

    wants_gpu = space.resources.gpu > 0
    on_gpu = resolve_device(space.base_config().device).type == "cuda"
    if wants_gpu and not on_gpu:
        return ("time: not estimated (the trials would train on a GPU and this machine has "
                "none; a dry run on a GPU node measures probe steps)")
    return estimate(space, runs, local).line()
