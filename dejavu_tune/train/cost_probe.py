"""What a trial's training step costs next to the baseline's, measured in the trial itself.

``step_time_ratio``: median seconds of the trial's step (forward, every loss, backward)
over the median of the baseline's step (the network and its task loss only) on the same
batch, the two taking turns on the same worker; ``mem_ratio``: the step's memory over the
baseline step's. Ratios, not seconds, so the fronts of searches on different machines
compare, and each trial measures its own where it runs (a cluster's nodes differ).

Memory: on CUDA the allocator's peak during the step (weights, gradients, activations);
on a CPU, where the process's peak RSS is shared with everything else it runs, the bytes
the step holds for the backward pass plus its weights and their gradients (distinct
storages counted once), which is what grows with DejaVu (the CRM's activations, the
second forward pass of augmentation).

The probe leaves no trace: no optimiser step, gradients cleared, batch-norm statistics
frozen, the redaction generator and the global RNG restored.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

import torch

__all__ = ["STEP_TIME_RATIO", "MEM_RATIO", "COST_METRICS", "measure"]

STEP_TIME_RATIO = "step_time_ratio"
MEM_RATIO = "mem_ratio"
COST_METRICS = (STEP_TIME_RATIO, MEM_RATIO)  # lower is better: a search may minimise them
_REPEATS = 3  # timed steps per variant, after one warm-up each


def _tensor_bytes(tensors: list[torch.Tensor]) -> int:
    seen: dict[tuple[Any, int], int] = {}
    for t in tensors:
        if t.device.type == "meta":
            continue
        storage = t.untyped_storage()
        seen[(t.device, storage.data_ptr())] = storage.nbytes()
    return sum(seen.values())


def _step(trainer: Any, batch: dict[str, torch.Tensor], full: bool) -> tuple[float, float]:
    """(seconds, bytes) of one forward and backward pass, the full objective or the
    baseline's task loss."""
    cuda = trainer.device.type == "cuda"
    saved: list[torch.Tensor] = []

    def keep(t: torch.Tensor) -> torch.Tensor:
        saved.append(t)
        return t

    if cuda:
        torch.cuda.synchronize(trainer.device)
        torch.cuda.reset_peak_memory_stats(trainer.device)
    start = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        if full:
            loss = trainer.forward_losses(batch)[0]["loss"]
        else:
            with trainer._autocast():
                loss = trainer.task.loss(trainer.model(batch["image"]), batch)["task_loss"]
    loss.backward()
    if cuda:
        torch.cuda.synchronize(trainer.device)
    seconds = time.perf_counter() - start
    params = [p for g in trainer.optimizer.param_groups for p in g["params"]]
    if cuda:
        memory = float(torch.cuda.max_memory_allocated(trainer.device))
    else:
        grads = [p.grad for p in params if p.grad is not None]
        memory = float(_tensor_bytes(saved) + _tensor_bytes(params) + _tensor_bytes(grads))
    trainer.optimizer.zero_grad(set_to_none=True)
    return seconds, memory


def measure(trainer: Any, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """The trial's cost ratios (``COST_METRICS``) on ``batch``; 1.0 for a run that trains
    exactly like the baseline (DejaVu off)."""
    from dejavu_tune.train.trainer import frozen_norm_stats

    if not trainer.cfg.dejavu.enabled:
        return {STEP_TIME_RATIO: 1.0, MEM_RATIO: 1.0}
    modules = [m for m in (trainer.model, trainer.crm) if m is not None]
    modes = [m.training for m in modules]
    rng = trainer.redact_rng.get_state()
    devices = [trainer.device] if trainer.device.type == "cuda" else []
    runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    try:
        with torch.random.fork_rng(devices=devices):
            for m in modules:
                m.train()
            with contextlib.ExitStack() as stack:
                for m in modules:
                    stack.enter_context(frozen_norm_stats(m))
                for _ in range(_REPEATS + 1):
                    for full in (False, True):
                        runs[full].append(_step(trainer, batch, full))
    finally:
        trainer.redact_rng.set_state(rng)
        trainer.optimizer.zero_grad(set_to_none=True)
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)
    base, full = runs[False][1:], runs[True][1:]  # the first of each warms up
    seconds = statistics.median(s for s, _ in full) / statistics.median(s for s, _ in base)
    memory = max(b for _, b in full) / max(b for _, b in base)
    return {STEP_TIME_RATIO: round(seconds, 4), MEM_RATIO: round(memory, 4)}

