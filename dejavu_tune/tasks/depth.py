"""Monocular depth: the network predicts depth in (0, max_depth) through a sigmoid.

Losses and conditioning work in units of ``max_depth`` so that their scale does
not depend on the dataset (10 m indoors, 80 m on KITTI); metrics are in metres.
"""

from __future__ import annotations

import torch

from dejavu_tune.tasks.base import Batch, Task
from dejavu_tune.tasks.geometry_metrics import DepthMeter

__all__ = ["DepthTask", "masked_l1"]


def masked_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean |pred - target| over the valid pixels of every channel; 0 when none is valid."""
    weight = valid.expand_as(pred).float()
    return ((pred - target).abs() * weight).sum() / weight.sum().clamp_min(1.0)


class _Meter:
    """Takes decoded predictions (metres), like every task's meter."""

    def __init__(self, max_depth: float) -> None:
        self._meter = DepthMeter(max_depth=max_depth)

    def update(self, preds: Batch, batch: Batch) -> None:
        self._meter.update(preds["depth"].float(), batch["depth"].float())

    def compute(self) -> dict[str, float]:
        return {f"val_{k}": v for k, v in self._meter.compute().items()}


class DepthTask(Task):
    targets = ("depth",)
    metrics = {"val_abs_rel": "min", "val_sq_rel": "min", "val_rmse": "min",
               "val_rmse_log": "min", "val_delta1": "max", "val_delta2": "max",
               "val_delta3": "max"}
    primary = "val_abs_rel"
    # about a tenth of the gaps between NYUD/KITTI methods' reported numbers
    min_effects = {"val_abs_rel": 0.002, "val_sq_rel": 0.005, "val_rmse": 0.01,
                   "val_rmse_log": 0.005, "val_delta1": 0.005, "val_delta2": 0.005,
                   "val_delta3": 0.005}

    def __init__(self, max_depth: float) -> None:
        if not max_depth > 0:
            raise ValueError(f"max_depth={max_depth!r} is not allowed: expected a positive "
                             "number of metres (the dataset's depth range)")
        self.max_depth = float(max_depth)

    def heads(self) -> dict[str, int]:
        return {"depth": 1}

    def depth(self, preds: Batch) -> torch.Tensor:
        """Metres, (B, 1, H, W); the sigmoid keeps every prediction positive and bounded."""
        return self.max_depth * torch.sigmoid(preds["depth"].float())

    def loss(self, preds: Batch, batch: Batch) -> dict[str, torch.Tensor]:
        target = batch["depth"].float()
        pred = self.depth(preds)
        return {"task_loss": masked_l1(pred / self.max_depth, target / self.max_depth,
                                       target > 0)}

    def condition(self, preds: Batch) -> torch.Tensor:
        return self.depth(preds) / self.max_depth

    def target_condition(self, batch: Batch) -> torch.Tensor:
        return (batch["depth"].float() / self.max_depth).clamp(0, 1)

    def consistency(self, preds_regenerated: Batch, preds: Batch) -> torch.Tensor:
        target = self.condition(preds).detach()
        return masked_l1(self.condition(preds_regenerated), target, torch.ones_like(target))

    def meter(self) -> _Meter:
        return _Meter(self.max_depth)

    def decode(self, preds: Batch) -> Batch:
        return {"depth": self.depth(preds)}

    def visualise(self, values: Batch) -> dict[str, torch.Tensor]:
        depth = values["depth"].float()
        near = 1 - (depth / self.max_depth).clamp(0, 1)  # near is bright, invalid (0 m) too
        near = torch.where(depth > 0, near, torch.zeros_like(near))
        return {"depth": (near * 2 - 1).expand(-1, 3, -1, -1).cpu()}
