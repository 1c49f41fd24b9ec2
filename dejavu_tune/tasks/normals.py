"""Surface normals: unit vectors, loss 1 - cosine on valid pixels (as in MTPSL)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dejavu_tune.tasks.base import Batch, Task
from dejavu_tune.tasks.depth import masked_l1
from dejavu_tune.tasks.geometry_metrics import NormalsMeter

__all__ = ["NormalsTask"]


def _valid(target: torch.Tensor) -> torch.Tensor:
    return target.float().norm(dim=1, keepdim=True) > 0.5  # all-zero vectors mark no data


class _Meter:
    def __init__(self) -> None:
        self._meter = NormalsMeter()

    def update(self, preds: Batch, batch: Batch) -> None:
        self._meter.update(preds["normals"].float(), batch["normals"].float())

    def compute(self) -> dict[str, float]:
        names = {"mean": "val_normal_mean", "median": "val_normal_median",
                 "rmse": "val_normal_rmse", "within_11_25": "val_normal_11_25",
                 "within_22_5": "val_normal_22_5", "within_30": "val_normal_30"}
        return {names[k]: v for k, v in self._meter.compute().items()}


class NormalsTask(Task):
    targets = ("normals",)
    metrics = {"val_normal_mean": "min", "val_normal_median": "min", "val_normal_rmse": "min",
               "val_normal_11_25": "max", "val_normal_22_5": "max", "val_normal_30": "max"}
    primary = "val_normal_mean"
    # angles in degrees; the within-threshold shares are fractions
    min_effects = {"val_normal_mean": 0.1, "val_normal_median": 0.1, "val_normal_rmse": 0.1,
                   "val_normal_11_25": 0.005, "val_normal_22_5": 0.005, "val_normal_30": 0.005}

    def heads(self) -> dict[str, int]:
        return {"normals": 3}

    def decode(self, preds: Batch) -> Batch:
        return {"normals": F.normalize(preds["normals"].float(), dim=1, eps=1e-6)}

    def loss(self, preds: Batch, batch: Batch) -> dict[str, torch.Tensor]:
        target = batch["normals"].float()
        valid = _valid(target).squeeze(1)
        cos = (self.decode(preds)["normals"] * target).sum(1)
        return {"task_loss": (1 - cos)[valid].sum() / valid.sum().clamp_min(1)}

    def condition(self, preds: Batch) -> torch.Tensor:
        return self.decode(preds)["normals"]

    def target_condition(self, batch: Batch) -> torch.Tensor:
        return batch["normals"].float()

    def consistency(self, preds_regenerated: Batch, preds: Batch) -> torch.Tensor:
        target = self.condition(preds).detach()
        return masked_l1(self.condition(preds_regenerated), target, torch.ones_like(target))

    def meter(self) -> _Meter:
        return _Meter()

    def visualise(self, values: Batch) -> dict[str, torch.Tensor]:
        return {"normals": values["normals"].float().clamp(-1, 1).cpu()}
