"""Semantic segmentation: cross-entropy with an ignore index, mIoU, softmax conditioning."""

from __future__ import annotations

import colorsys

import numpy as np
import torch
import torch.nn.functional as F

from dejavu_tune.config import IGNORE_INDEX
from dejavu_tune.method.losses import cyclic_consistency, segmentation_loss
from dejavu_tune.tasks.base import Batch, Task
from dejavu_tune.tasks.metrics import SegmentationMeter

_LEGEND_MAX = 24  # classes named in a figure's legend; ADE20K's 150 would bury the figure

__all__ = ["SegmentationTask", "palette"]



def palette(num_classes: int) -> np.ndarray:
    """Distinct colours per class id (hues spread evenly; class 0 is dark grey)."""
    colours = [(40, 40, 40)]
    for k in range(1, max(num_classes, 1)):
        r, g, b = colorsys.hsv_to_rgb((k - 1) / max(num_classes - 1, 1), 0.75, 0.95)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return np.array(colours, dtype=np.uint8)

class _Meter:
    def __init__(self, num_classes: int) -> None:
        self._meter = SegmentationMeter(num_classes)

    def update(self, preds: Batch, batch: Batch) -> None:
        self._meter.update(preds["seg"], batch["seg"])  # decoded class ids

    def compute(self) -> dict[str, float]:
        result = self._meter.compute()
        return {"val_miou": result["miou"], "val_pixel_acc": result["pixel_acc"]}


class SegmentationTask(Task):
    targets = ("seg",)
    metrics = {"val_miou": "max", "val_pixel_acc": "max"}
    primary = "val_miou"
    # half a point: Tables B.3/B.4 of the supplement separate settings by 0.3-0.5 points
    min_effects = {"val_miou": 0.005, "val_pixel_acc": 0.005}

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes

    def heads(self) -> dict[str, int]:
        return {"seg": self.num_classes}

    def loss(self, preds: Batch, batch: Batch) -> dict[str, torch.Tensor]:
        return {"task_loss": segmentation_loss(preds["seg"], batch["seg"])}

    def condition(self, preds: Batch) -> torch.Tensor:
        return torch.softmax(preds["seg"].float(), dim=1)

    def condition_as(self, preds: Batch, style: str = "soft",
                     temperature: float = 1.0) -> torch.Tensor:
        logits = preds["seg"].float()
        if style == "sharpened":
            return torch.softmax(logits / temperature, dim=1)
        probs = torch.softmax(logits, dim=1)
        if style == "onehot":
            # Straight-through: the CRM sees the hard decision, the network gets the
            # probabilities' gradient.
            hard = F.one_hot(logits.argmax(1), self.num_classes).permute(0, 3, 1, 2).float()
            return hard + probs - probs.detach()
        return probs

    def target_condition(self, batch: Batch) -> torch.Tensor:
        labels = batch["seg"]
        valid = labels != IGNORE_INDEX
        hot = F.one_hot(labels.where(valid, 0), self.num_classes).permute(0, 3, 1, 2).float()
        return hot * valid.unsqueeze(1)  # ignored pixels: no class is asserted

    def consistency(self, preds_regenerated: Batch, preds: Batch) -> torch.Tensor:
        return cyclic_consistency(preds_regenerated["seg"], preds["seg"])

    def meter(self) -> _Meter:
        return _Meter(self.num_classes)

    def decode(self, preds: Batch) -> Batch:
        return {"seg": preds["seg"].argmax(1)}

    def visualise(self, values: Batch) -> dict[str, torch.Tensor]:
        ids = values["seg"]
        colours = torch.as_tensor(palette(self.num_classes), dtype=torch.float32)
        rgb = colours[ids.long().clamp(0, self.num_classes - 1).cpu()]
        rgb[(ids == IGNORE_INDEX).cpu()] = 255.0  # ignored pixels in white
        return {"seg": rgb.permute(0, 3, 1, 2) / 127.5 - 1}

    def legend(self) -> list[tuple[str, tuple[int, int, int]]]:
        colours = palette(self.num_classes)
        shown = [(f"class {k}", tuple(int(c) for c in colours[k]))
                 for k in range(min(self.num_classes, _LEGEND_MAX))]
        more = self.num_classes - len(shown)
        return shown + ([(f"+{more} more", (255, 255, 255))] if more > 0 else []) + [
            ("ignored", (255, 255, 255))]
