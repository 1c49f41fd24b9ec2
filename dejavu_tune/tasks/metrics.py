"""Segmentation metrics from a confusion matrix: per-class IoU, mean IoU, pixel accuracy.

Everything is derived from one integer confusion matrix (rows = target, columns =
prediction) so that batches can be accumulated exactly and the metrics of a whole
split do not depend on how it was batched.
"""

from __future__ import annotations

import torch

from dejavu_tune.config import IGNORE_INDEX

__all__ = [
    "confusion_matrix",
    "iou_per_class",
    "mean_iou",
    "pixel_accuracy",
    "SegmentationMeter",
]


def _check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r} is not allowed: "
                         "expected an integer of 1 or more")


def _check_square(cm: torch.Tensor) -> None:
    if cm.dim() != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm has shape {tuple(cm.shape)}: expected a square (C, C) matrix")


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """(C, C) int64 counts, rows = target class, columns = predicted class.

    ``ignore_index`` defaults to the label the task loss ignores, so loss and metrics
    skip the same pixels. Only the target is checked against it: a prediction is never
    "ignore". The result stays on the inputs' device.
    """
    _check_num_classes(num_classes)
    if pred.shape != target.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but target has shape "
                         f"{tuple(target.shape)}: expected equal shapes")
    if pred.is_floating_point() or target.is_floating_point():
        raise ValueError(f"pred ({pred.dtype}) and target ({target.dtype}) must hold integer "
                         "class ids; take the argmax of logits first")
    keep = target != ignore_index
    t = target[keep].long()
    p = pred[keep].long()
    # An out-of-range id would land in another cell of the flattened bincount and
    # silently corrupt the counts, so it is an error; one reduction = one device sync.
    if t.numel() and bool(((t < 0) | (t >= num_classes) | (p < 0) | (p >= num_classes)).any()):
        raise ValueError(f"class ids must lie in [0, {num_classes}) (or equal ignore_index="
                         f"{ignore_index} in target); got target in [{int(t.min())}, "
                         f"{int(t.max())}], pred in [{int(p.min())}, {int(p.max())}]")
    counts = torch.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(cm: torch.Tensor) -> torch.Tensor:
    """float64 IoU = TP / (TP + FP + FN) per class; NaN where a class is in neither
    target nor prediction (no evidence either way, so it must not count as 0 or 1)."""
    _check_square(cm)
    cm = cm.double()
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))


def mean_iou(cm: torch.Tensor) -> float:
    """Mean of the classes' IoU, skipping NaN (absent) classes.

    A matrix with no counted pixel has only NaN classes; it gives 0.0 rather than NaN,
    because searches compare and maximise this number and NaN would poison that.
    """
    iou = iou_per_class(cm)
    present = ~iou.isnan()
    if not bool(present.any()):
        return 0.0
    return float(iou[present].mean())


def pixel_accuracy(cm: torch.Tensor) -> float:
    """Correct pixels / counted pixels; 0.0 for an empty matrix (same reason as mean_iou)."""
    _check_square(cm)
    total = int(cm.sum())
    if total == 0:
        return 0.0
    return float(cm.diagonal().sum()) / total


class SegmentationMeter:
    """Accumulates a confusion matrix over batches; ``compute`` gives the split's metrics."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        # ignore_index default: the same label the task loss skips.
        _check_num_classes(num_classes)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def reset(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)

    @torch.no_grad()
    def update(self, logits_or_pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch: (B, C, H, W) logits (argmax taken) or (B, H, W) class ids."""
        pred = logits_or_pred
        if pred.dim() == target.dim() + 1:
            if pred.shape[1] != self.num_classes:
                raise ValueError(f"logits have {pred.shape[1]} channels: expected "
                                 f"num_classes={self.num_classes}")
            pred = pred.argmax(1)
        cm = confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        # Counts live on the CPU: a (C, C) add is trivial, and it keeps compute() and
        # the meter's state independent of where the batches came from.
        self.confusion += cm.cpu()

    def compute(self) -> dict[str, float]:
        return {"miou": mean_iou(self.confusion), "pixel_acc": pixel_accuracy(self.confusion)}
