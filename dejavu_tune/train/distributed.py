"""One training run over several data-parallel ranks, with the single-process maths.

``Trainer(cfg, ranks=Ranks.current())`` inside an initialised process group (Ray Train's
workers, ``torchrun``, a test's spawned processes) trains the network and the CRM as one
``DistributedDataParallel`` module. What keeps the result the single-process one:

- ``optim.batch_size`` is the *global* batch: every rank draws the same permutation from
  the trial's data generator, as one process would, and takes its contiguous slice of each
  global batch (``ShardedBatches``). torch's ``DistributedSampler`` is not used because
  its order (a rank takes every W-th index) is not the single process's batches.
- every rank draws the whole global batch's redaction from the same trial-seeded
  generator and keeps its own rows (``shard_redaction``), so the masks are the ones one
  process would draw and the generators stay in step for the checkpoint.
- BatchNorm statistics are the global batch's (``sync_batchnorm``; ``model.sync_batchnorm``
  switches it off).
- evaluation: each rank scores a contiguous shard of the split and the meters' additive
  state (confusion matrices, depth and normal sums and histograms) is summed across ranks.

Losses that are means over samples with equal weights (MSE, LPIPS, cross-entropy without
ignored pixels) then give exactly the single-process gradient; with ignored pixels each
rank's cross-entropy is the mean over its own labelled pixels, as in every DDP
segmentation codebase.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import BatchSampler, RandomSampler, Sampler

from dejavu_tune.config import ConfigError

__all__ = ["Ranks", "ShardedBatches", "shard_redaction", "GlooSyncBatchNorm",
           "sync_batchnorm", "sum_meter", "mean_across", "gather", "JointModule"]


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process's place among the trial's data-parallel ranks."""

    rank: int
    world: int

    @classmethod
    def current(cls) -> Ranks | None:
        """The initialised default process group's ranks; None for a single process."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return None
        return cls(dist.get_rank(), dist.get_world_size())

    def local_batch(self, batch_size: int) -> int:
        """This rank's rows of a global batch; a global batch that does not split evenly
        is refused before anything trains."""
        if batch_size % self.world:
            raise ConfigError(f"optim.batch_size={batch_size} is the global batch of the "
                              f"trial's {self.world} data-parallel workers: expected a "
                              f"multiple of {self.world}")
        return batch_size // self.world

    def shard(self, total: int) -> range:
        """This rank's contiguous part of ``total`` evaluation samples (sizes differ by at
        most one; no sample is scored twice, unlike a padded sampler)."""
        return range(total * self.rank // self.world, total * (self.rank + 1) // self.world)


class ShardedBatches(Sampler[list[int]]):
    """This rank's slice of each global batch the single process would draw."""

    def __init__(self, dataset: Any, batch_size: int, generator: torch.Generator,
                 ranks: Ranks) -> None:
        self._global = BatchSampler(RandomSampler(dataset, generator=generator), batch_size,
                                    drop_last=True)
        self._rows = ranks.local_batch(batch_size)
        self._start = ranks.rank * self._rows

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self._global:
            yield batch[self._start:self._start + self._rows]

    def __len__(self) -> int:
        return len(self._global)


def shard_redaction(redact: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor],
                    ranks: Ranks) -> Callable[[torch.Tensor, torch.Generator | None],
                                              torch.Tensor]:
    """``redact`` applied as to the whole global batch, this rank's rows kept: a random
    redaction draws per image, so drawing for the global batch keeps every rank's masks
    (and its generator) the single process's. Costs one redaction of the global batch,
    a mask and a ``where`` per pixel, against a network's forward and backward."""

    def sharded(images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        rows = images.shape[0]
        start = ranks.rank * rows
        full = images.new_zeros((rows * ranks.world, *images.shape[1:]))
        full[start:start + rows] = images
        return redact(full, generator)[start:start + rows]

    return sharded


class GlooSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm over the global batch for CPU ranks (gloo), which ``nn.SyncBatchNorm``
    refuses; the statistics travel through differentiable all-reduces, so the gradient is
    the single process's. Two passes (mean, then the squared deviations) as the kernel
    does, not E[x^2] - E[x]^2, which cancels badly in float32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = (0, 2, 3)
        count = torch.tensor([float(x.numel() // x.shape[1])], dtype=x.dtype, device=x.device)
        total = all_reduce(torch.cat([x.sum(dims), count]))
        n = total[-1]
        mean = total[:-1] / n
        centred = x - mean.view(1, -1, 1, 1)
        var = all_reduce((centred * centred).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                          else self.momentum)
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(var.detach() * n / (n - 1),
                                                       alpha=factor)
        out = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every BatchNorm2d normalising over the global batch: torch's
    ``SyncBatchNorm`` on accelerators, ``GlooSyncBatchNorm`` on the CPU. Parameters and
    buffers are moved, not copied: the optimiser keeps the same tensors."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            synced = GlooSyncBatchNorm(child.num_features, child.eps, child.momentum,
                                       child.affine, child.track_running_stats)
            if child.affine:
                synced.weight, synced.bias = child.weight, child.bias
            if child.track_running_stats:
                synced.running_mean, synced.running_var = child.running_mean, child.running_var
                synced.num_batches_tracked = child.num_batches_tracked
            synced.train(child.training)
            setattr(module, name, synced)
        else:
            sync_batchnorm(child, device)
    return module


def _accumulators(obj: Any, seen: set[int]) -> Iterator[tuple[Any, str, torch.Tensor]]:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    items = enumerate(obj) if isinstance(obj, list) else vars(obj).items()
    for key, value in items:
        if isinstance(value, torch.Tensor):
            yield obj, key, value
        elif isinstance(value, list) or hasattr(value, "update") and hasattr(value, "compute"):
            yield from _accumulators(value, seen)


def sum_meter(meter: Any) -> None:
    """Sum a meter's additive state across ranks in place: every tensor it (or a meter
    it holds) keeps is an accumulator (``tasks.base.Meter``)."""
    backend_device = torch.device("cuda") if dist.get_backend() == "nccl" else None
    for owner, key, value in _accumulators(meter, set()):
        moved = value.to(backend_device) if backend_device is not None else value.clone()
        dist.all_reduce(moved)
        summed = moved.to(value.device)
        if isinstance(owner, list):
            owner[key] = summed
        else:
            setattr(owner, key, summed)


def mean_across(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Each value averaged over the ranks (the same keys on every rank)."""
    if not values:
        return values
    keys = sorted(values)
    stacked = torch.tensor([values[k] for k in keys], dtype=torch.float64,
                           device=device if dist.get_backend() == "nccl" else None)
    dist.all_reduce(stacked)
    stacked /= dist.get_world_size()
    return dict(zip(keys, stacked.tolist(), strict=True))


def gather(value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order, on every rank."""
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


class JointModule(nn.Module):
    """The network and the CRM as the one module DDP wraps, so the regeneration loss's
    gradient reaches the network through the same all-reduce as the task loss's; its
    forward is the trainer's ``forward_losses``. LPIPS and a text encoder stay outside:
    frozen, identical on every rank, nothing to reduce."""

    def __init__(self, model: nn.Module, crm: nn.Module | None,
                 forward: Callable[[Any], Any]) -> None:
        super().__init__()
        self.model = model
        self.crm = crm
        self._forward = forward

    def forward(self, batch: Any) -> Any:
        return self._forward(batch)
