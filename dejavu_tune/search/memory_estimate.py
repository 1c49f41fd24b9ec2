"""``--dry-run``'s memory estimate: one probe step of the space's base configuration on
one rank's rows of the global batch, on the device a trial would use.

A GPU node measures the allocator's peak (what decides whether a trial fits, and how
many share a GPU); elsewhere the dry run stays quick and says it did not estimate. The
base configuration is the space's fixed settings: sampled parameters (a CRM-R's steps,
a larger CRM) change the figure, which the line says."""

from __future__ import annotations

from typing import Any

from dejavu_tune.config import TrainConfig
from dejavu_tune.search.space import Resources, SearchSpace

__all__ = ["estimate", "probe", "probe_config", "describe"]

_NOT_HERE = ("memory per trial: not estimated (the trials would train on the CPU here; "
             "on a GPU node the dry run measures one probe step)")


def estimate(space: SearchSpace) -> str:
    """The dry run's memory line for ``space`` on this machine."""
    from dejavu_tune.models.device import resolve_device

    cfg = space.base_config()
    if space.resources.gpu == 0 or resolve_device(cfg.device).type != "cuda":
        return _NOT_HERE
    return probe(cfg, space.resources)


def probe(cfg: TrainConfig, resources: Resources) -> str:
    """One warm-up and one measured step of ``cfg`` at one rank's rows, on ``cfg``'s
    device (CUDA: peak allocated against the trial's share of the GPU; CPU: the
    process's peak resident set); an allocation failure is the estimate too."""
    from dejavu_tune.train import memory
    from dejavu_tune.train.trainer import Trainer

    cfg = probe_config(cfg, resources.ranks)
    rows = cfg.optim.batch_size
    what = (f"one probe step of the base configuration ({describe(cfg)}, {rows} image(s) "
            f"per rank)")
    try:
        trainer = Trainer(cfg)
        peak = memory.step_peak(trainer, trainer.first_batch(rows), iters=1, warmup=1)
    except Exception as exc:  # noqa: BLE001 - an allocation failure is the answer
        if not memory.is_out_of_memory(exc):
            raise
        cuda = cfg.device != "cpu"
        memory.forget(exc)
        memory.release()
        return (f"memory per rank: {what} ran out of memory "
                f"({memory.allocator_report(cuda)}): {memory.ADVICE}")
    line = f"memory per rank: {peak['peak_mb']:.0f} MiB peak in {what}"
    if trainer.device.type == "cuda":
        line += _share(trainer.device, resources)
    else:
        line += " (the process's peak resident set)"
    del trainer
    memory.release()
    return line + "; sampled parameters change it"


def probe_config(cfg: TrainConfig, ranks: int) -> TrainConfig:
    """``cfg`` at one rank's rows of its batch, for a probe that trains nothing it keeps:
    no stored CRM to look up, no pre-training."""
    return cfg.replace(**{"optim.batch_size": max(1, cfg.optim.batch_size // ranks),
                          "dejavu.crm.init": "scratch", "dejavu.crm.weights": None})


def describe(cfg: TrainConfig) -> str:
    dv = cfg.dejavu
    if not dv.enabled:
        return f"{cfg.model.name}, DejaVu off"
    depth = f"{dv.crm.stages} stages" if dv.crm.kind == "crm_f" else f"{dv.crm.steps} steps"
    return f"{cfg.model.name}, {dv.crm.kind} {depth}"


def _share(device: Any, resources: Resources) -> str:
    import torch

    total = torch.cuda.get_device_properties(device).total_memory / 2**20
    gpu = resources.per_rank[1] if resources.ranks > 1 else resources.gpu
    share = f"{gpu:g} of" if gpu < 1 else "all of"
    return (f", allocated, of {gpu * total:.0f} MiB a rank holds ({share} "
            f"{torch.cuda.get_device_name(device)}'s {total:.0f} MiB)")
