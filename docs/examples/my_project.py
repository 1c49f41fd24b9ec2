"""Bring your own network, dataset and task: the example of docs/byo.md.

Each function is named in a search space as ``my_project:<function>``; put this
file's directory on PYTHONPATH so that the search and its Ray workers import it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from dejavu_tune.tasks import SegmentationTask


def lraspp_network(heads: dict[str, int], width: int, pretrained: str | None) -> nn.Module:
    """torchvision's LR-ASPP MobileNetV3: an existing model whose forward returns
    ``{"out": logits}``, adapted to dejavu-tune's ``{head: output}`` contract."""
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    class Network(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            (self.head,) = heads  # one task head
            self.net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                 num_classes=heads[self.head])
            if pretrained:
                self.net.backbone.load_state_dict(torch.load(pretrained, weights_only=True))

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {self.head: self.net(x)["out"]}

    return Network()


class FolderPairs(torch.utils.data.Dataset):
    """``root/<split>/images/<name>.png`` with ``root/<split>/masks/<name>.png`` class ids."""

    targets = ("seg",)
    max_depth = 0.0

    def __init__(self, root: str, split: str, size: tuple[int, int], num_classes: int) -> None:
        self.images = sorted((Path(root) / split / "images").glob("*.png"))
        if not self.images:
            raise ValueError(f"{Path(root) / split / 'images'} has no .png images")
        self.size, self.num_classes = size, num_classes
        self.class_names = tuple(f"class_{k}" for k in range(num_classes))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        path = self.images[i]
        image = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy())
        mask = Image.open(path.parent.parent / "masks" / path.name)
        labels = torch.from_numpy(np.asarray(mask, dtype=np.int64).copy())
        image = image.permute(2, 0, 1).float().div(127.5).sub(1).unsqueeze(0)
        image = F.interpolate(image, size=self.size, mode="bilinear", antialias=True)[0]
        labels = F.interpolate(labels[None, None].float(), size=self.size, mode="nearest")
        return {"image": image, "seg": labels[0, 0].long()}


def folder_dataset(split: str, cfg) -> FolderPairs | None:
    """``data.name: my_project:folder_dataset``: called once per split with the DataConfig;
    ``root/heldout`` is the held-out split when there is one (else None: the search
    carves its search split out of train, and val is held out)."""
    if split == "heldout" and not (Path(cfg.root) / "heldout").is_dir():
        return None
    return FolderPairs(cfg.root, split, cfg.size, cfg.num_classes)


class DiceSegmentation(SegmentationTask):
    """Segmentation whose loss adds a soft Dice term to the cross-entropy: a task of
    your own only overrides what differs."""

    def loss(self, preds, batch):
        parts = super().loss(preds, batch)
        probs = torch.softmax(preds["seg"].float(), 1)
        valid = (batch["seg"] != 255).unsqueeze(1)
        hot = F.one_hot(batch["seg"].where(valid[:, 0], 0), self.num_classes)
        hot = hot.permute(0, 3, 1, 2) * valid
        inter = (probs * hot).sum((0, 2, 3))
        dice = 1 - (2 * inter + 1) / (probs.mul(valid).sum((0, 2, 3)) + hot.sum((0, 2, 3)) + 1)
        parts["dice_loss"] = dice.mean()
        parts["task_loss"] = parts["task_loss"] + parts["dice_loss"]
        return parts


def dice_task(cfg, dataset) -> DiceSegmentation:
    """``task.name: my_project:dice_task``: called with the TaskConfig and the train split."""
    return DiceSegmentation(dataset.num_classes)
