"""What a dense-prediction task must define for DejaVu (METHOD.md): its loss, its
metrics, how its prediction conditions the CRM and its DejaVu-CL consistency term.

Predictions and targets travel as dicts keyed by the task's ``key`` ("seg",
"depth", "normals"): the base network has one head per key, and a batch from a
dataset carries one target per key next to its ``"image"``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

import torch

from dejavu_tune.errors import DejavuError

__all__ = ["Batch", "Meter", "Task", "TaskError"]

Batch = dict[str, torch.Tensor]


class TaskError(DejavuError, ValueError):
    """A task cannot run on the configured dataset or network."""


class Meter(Protocol):
    """Accumulates a validation split exactly, batch by batch."""

    def update(self, preds: Batch, batch: Batch) -> None: ...

    def compute(self) -> dict[str, float]: ...


class Task(ABC):
    """One task (or several, see ``MultiTask``); subclass it to bring your own."""

    #: batch keys the task reads besides "image"
    targets: tuple[str, ...] = ()
    #: every validation metric the meter returns -> "max" or "min" (which is better)
    metrics: dict[str, str] = {}
    #: the metric a search optimises unless the space says otherwise
    primary: str = ""
    #: the smallest difference of each metric that matters, in its own units: the default
    #: of ``search.min_effect`` (the confirmation's δ)
    min_effects: dict[str, float] = {}

    @abstractmethod
    def heads(self) -> dict[str, int]:
        """Output channels of the base network per prediction key."""

    @property
    def condition_channels(self) -> int:
        return sum(self.heads().values())

    @abstractmethod
    def loss(self, preds: Batch, batch: Batch) -> dict[str, torch.Tensor]:
        """Loss parts; ``"task_loss"`` is the one that is optimised."""

    @abstractmethod
    def condition(self, preds: Batch) -> torch.Tensor:
        """The CRM's conditioning C from the network's raw outputs, (B, channels, H, W)."""

    def condition_as(self, preds: Batch, style: str = "soft",
                     temperature: float = 1.0) -> torch.Tensor:
        """The conditioning in ``style`` (``dejavu.crm.condition``: soft, sharpened or
        onehot). Only class probabilities have a sharpened or one-hot form: a task without
        them conditions the CRM with ``condition`` whatever the style."""
        return self.condition(preds)

    @abstractmethod
    def target_condition(self, batch: Batch) -> torch.Tensor:
        """The conditioning an ideal network would give: used to pre-train a CRM."""

    @abstractmethod
    def consistency(self, preds_regenerated: Batch, preds: Batch) -> torch.Tensor:
        """DejaVu-CL: disagreement of h(I_hat) with h(I), h(I) detached."""

    @abstractmethod
    def meter(self) -> Meter:
        """A fresh accumulator of this task's validation metrics."""

    @abstractmethod
    def decode(self, preds: Batch) -> Batch:
        """Raw network outputs -> values in the targets' form (class ids, metres, unit vectors)."""

    @abstractmethod
    def visualise(self, values: Batch) -> dict[str, torch.Tensor]:
        """RGB pictures in [-1, 1], (B, 3, H, W), per key, of targets or decoded predictions."""

    def legend(self) -> list[tuple[str, tuple[int, int, int]]]:
        """(label, RGB) of the colours ``visualise`` gives classes; none for a task whose
        pictures read by themselves (depth: near is bright; normals: xyz as RGB)."""
        return []
