"""Depth and surface-normal metrics, accumulated exactly over a split.

Depth follows the standard Eigen et al. evaluation (abs-rel, sq-rel, RMSE, RMSE-log,
delta < 1.25^k); normals the usual angular-error statistics (mean, median, RMSE,
fraction within 11.25, 22.5, 30 degrees). Sums are kept in float64 with pixel counts,
so a split's result does not depend on how it was batched.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["DepthMeter", "NormalsMeter", "depth_metrics", "HISTOGRAM_BINS_PER_DEGREE"]

HISTOGRAM_BINS_PER_DEGREE = 100  # the normals median is exact to 0.01 degree
_THRESHOLDS = (11.25, 22.5, 30.0)


def _depth_sums(pred: torch.Tensor, target: torch.Tensor, min_depth: float,
                max_depth: float) -> torch.Tensor:
    """[count, abs_rel, sq_rel, sq_err, sq_log, d1, d2, d3] summed over valid pixels."""
    if pred.shape != target.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} and target {tuple(target.shape)}: "
                         "expected the same (B, 1, H, W) shape")
    target = target.double()
    valid = (target > min_depth) & (target <= max_depth)
    d = pred.double().clamp(min_depth, max_depth)[valid]
    t = target[valid]
    ratio = torch.maximum(d / t, t / d)
    return torch.stack([
        torch.tensor(float(t.numel()), dtype=torch.float64, device=t.device),
        ((d - t).abs() / t).sum(), ((d - t) ** 2 / t).sum(), ((d - t) ** 2).sum(),
        ((d.log() - t.log()) ** 2).sum(),
        *[(ratio < 1.25 ** k).double().sum() for k in (1, 2, 3)],
    ]).cpu()


def _depth_result(sums: torch.Tensor) -> dict[str, float]:
    n = float(sums[0])
    if n == 0:
        raise ValueError("no valid depth pixel was seen: expected targets inside "
                         "(min_depth, max_depth]")
    mean = (sums / n).tolist()
    return {"abs_rel": mean[1], "sq_rel": mean[2], "rmse": math.sqrt(mean[3]),
            "rmse_log": math.sqrt(mean[4]), "delta1": mean[5], "delta2": mean[6],
            "delta3": mean[7]}


def depth_metrics(pred: torch.Tensor, target: torch.Tensor, min_depth: float = 1e-3,
                  max_depth: float = 80.0) -> dict[str, float]:
    """Metrics of one batch; targets outside (min_depth, max_depth] (0 = no data) are
    skipped and predictions are clamped to [min_depth, max_depth]."""
    return _depth_result(_depth_sums(pred, target, min_depth, max_depth))


class DepthMeter:
    def __init__(self, min_depth: float = 1e-3, max_depth: float = 80.0) -> None:
        if not 0 < min_depth < max_depth:
            raise ValueError(f"min_depth={min_depth!r}, max_depth={max_depth!r} are not allowed: "
                             "expected 0 < min_depth < max_depth")
        self.min_depth, self.max_depth = min_depth, max_depth
        self.sums = torch.zeros(8, dtype=torch.float64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.sums += _depth_sums(pred, target, self.min_depth, self.max_depth)

    def compute(self) -> dict[str, float]:
        return _depth_result(self.sums)


class NormalsMeter:
    """Angular error between unit normals; targets with norm <= 0.5 (all zero) are skipped.

    The median comes from a histogram of 0.01-degree bins (the centre of the bin where
    the cumulative count reaches half), so memory does not grow with the split."""

    def __init__(self) -> None:
        self.histogram = torch.zeros(180 * HISTOGRAM_BINS_PER_DEGREE, dtype=torch.int64)
        # count, sum, sum of squares, then the count within each threshold
        self.sums = torch.zeros(3 + len(_THRESHOLDS), dtype=torch.float64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] != 3:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)}: "
                             "expected the same (B, 3, H, W) shape")
        target = target.double()
        valid = target.norm(dim=1) > 0.5
        cos = (F.normalize(pred.double(), dim=1, eps=1e-12)
               * F.normalize(target, dim=1, eps=1e-12)).sum(1)[valid]
        angle = torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))
        bins = (angle * HISTOGRAM_BINS_PER_DEGREE).long().clamp_max(len(self.histogram) - 1)
        self.histogram += torch.bincount(bins.cpu(), minlength=len(self.histogram))
        self.sums += torch.tensor([float(angle.numel()), float(angle.sum()),
                                   float((angle ** 2).sum())]
                                  + [float((angle < t).sum()) for t in _THRESHOLDS],
                                  dtype=torch.float64)

    def compute(self) -> dict[str, float]:
        n = float(self.sums[0])
        if n == 0:
            raise ValueError("no valid normal was seen: expected targets with non-zero vectors")
        half = (self.histogram.sum() + 1) // 2
        median_bin = int(torch.searchsorted(self.histogram.cumsum(0), half))
        result = {"mean": float(self.sums[1]) / n,
                  "median": (median_bin + 0.5) / HISTOGRAM_BINS_PER_DEGREE,
                  "rmse": math.sqrt(float(self.sums[2]) / n)}
        for t, count in zip(_THRESHOLDS, self.sums[3:].tolist(), strict=True):
            result[f"within_{str(t).replace('.', '_').removesuffix('_0')}"] = count / n
        return result
