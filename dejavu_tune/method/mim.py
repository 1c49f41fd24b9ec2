"""Masked image modelling (MIM) pieces for the MAE-style pre-training of seed Table B.2:
which patches are masked, the loss on them, and the light pixel decoder.

The image is tiled in ``patch`` x ``patch`` patches (edge patches clipped to the image,
as ``random_blocks`` redaction does); every image gets exactly
``masked_count(patches, ratio)`` masked patches, drawn from the generator passed in,
as He et al.'s MAE draws them (a random permutation per image, the first ones masked).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["masked_count", "patch_mask", "masked_mse", "PixelDecoder"]


def masked_count(patches: int, ratio: float) -> int:
    """Patches masked per image: the nearest whole number to ``ratio`` of them, and never
    all or none (TrainConfig refuses a patch size for which that cannot hold)."""
    return min(max(round(patches * ratio), 1), patches - 1)


def patch_mask(shape: torch.Size | tuple[int, ...], patch: int, ratio: float,
               generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """A (B, 1, H, W) float mask of images of ``shape`` (B, C, H, W): 1 on masked pixels."""
    batch, height, width = shape[0], shape[-2], shape[-1]
    rows, cols = -(-height // patch), -(-width // patch)
    count = masked_count(rows * cols, ratio)
    # argsort of uniform noise is a uniform random permutation (MAE's random_masking)
    order = torch.rand(batch, rows * cols, generator=generator, device=device).argsort(dim=1)
    grid = torch.zeros(batch, rows * cols, device=device)
    grid.scatter_(1, order[:, :count], 1.0)
    grid = grid.view(batch, 1, rows, cols)
    pixels = grid.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)
    return pixels[..., :height, :width]


def masked_mse(reconstruction: torch.Tensor, image: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked pixels only (MAE's loss: visible patches count
    for nothing), averaged over every channel of those pixels."""
    squared = (reconstruction.float() - image.float()).square() * mask
    return squared.sum() / (mask.sum() * image.shape[1]).clamp_min(1.0)


class PixelDecoder(nn.Module):
    """A light decoder from the network's aggregated features to pixels: one 3x3 conv, a
    ReLU and a 1x1 conv to RGB, upsampled to the image size. Dropped after pre-training,
    like MAE's decoder; kept small so the network's own features must carry the image."""

    def __init__(self, in_channels: int, hidden: int = 64, out_channels: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1),
                                  nn.ReLU(inplace=True), nn.Conv2d(hidden, out_channels, 1))

    def forward(self, features: torch.Tensor, size: torch.Size) -> torch.Tensor:
        out = self.body(features)
        if out.shape[-2:] != size:
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out
