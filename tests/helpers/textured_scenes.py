"""A plug-in dataset unlike the built-in one (``data.name=helpers.textured_scenes:scenes``):
Voronoi scenes of up to 11 classes at 64 px whose classes differ only by texture
(a class-dependent stripe period and angle on one shared colour) under strong pixel
noise, where the built-in data's classes differ by colour and shape."""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

SEEDS = {"train": 0, "val": 1, "heldout": 2}
COUNTS = {"train": 512, "val": 64, "heldout": 64}


class Scenes(Dataset):
    targets = ("seg",)
    max_depth = 0.0

    def __init__(self, split: str, cfg) -> None:
        self.num_classes = cfg.num_classes
        self.class_names = [f"texture {i}" for i in range(self.num_classes)]
        self.size = tuple(cfg.size)
        self.seed = 1000 * SEEDS[split]
        self.count = COUNTS[split]
        self.noise = float(cfg.options.get("noise", 0.3))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed + index)
        h, w = self.size
        centres = torch.rand(6, 2, generator=gen) * torch.tensor([h, w])
        labels = torch.randint(0, self.num_classes, (6,), generator=gen)
        ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
        dist = (ys[None] - centres[:, 0, None, None]) ** 2 + (xs[None] - centres[:, 1, None, None]) ** 2
        seg = labels[dist.argmin(0)]
        angle = seg.float() * math.pi / self.num_classes
        period = 3.0 + (seg.float() % 4)
        stripes = torch.sin((xs * torch.cos(angle) + ys * torch.sin(angle)) * 2 * math.pi / period)
        grey = 0.5 * stripes + self.noise * torch.randn(h, w, generator=gen)
        image = torch.stack([grey, 0.8 * grey, 0.6 * grey]).clamp(-1, 1)
        return {"image": image.float(), "seg": seg.long()}


def scenes(split: str, cfg) -> Scenes:
    return Scenes(split, cfg)
