"""ADE20K (the SceneParsing / ADEChallengeData2016 release) in its own layout:

    root/ADEChallengeData2016/images/{training,validation}/<stem>.jpg
    root/ADEChallengeData2016/annotations/{training,validation}/<stem>.png

``root`` may also be the ``ADEChallengeData2016`` directory itself. Annotations hold
0 = "other" (not evaluated) and 1..150 for the classes; they become 255 and 0..149.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from dejavu_tune.config import IGNORE_INDEX
from dejavu_tune.data.files import (
    DatasetError,
    FileDataset,
    require_dir,
)

__all__ = ["ADE20K", "ADE20K_CLASSES"]

# index = train id (annotation value - 1), the benchmark's 150 classes, short names
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant",
    "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea",
    "mirror", "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe",
    "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace",
    "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table",
    "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind",
    "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine",
    "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel",
    "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike",
    "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot",
    "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen",
    "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)

# annotation value -> train id; values above 150 are not ADE20K labels (-1 = reject)
ANNOTATION_TO_TRAIN_ID = np.full(256, -1, dtype=np.int64)
ANNOTATION_TO_TRAIN_ID[0] = IGNORE_INDEX
ANNOTATION_TO_TRAIN_ID[1:151] = np.arange(150)

_SPLITS = {"train": "training", "val": "validation"}
_RELEASE_DIR = "ADEChallengeData2016"


class ADE20K(FileDataset):
    name = "ade20k"
    layout = (f"root to be {_RELEASE_DIR}/ or to contain it, with images/ and annotations/ "
              f"(ADE20K SceneParsing layout)")
    targets = ("seg",)
    num_classes = len(ADE20K_CLASSES)
    class_names = ADE20K_CLASSES

    @classmethod
    def resolve_root(cls, root: str | Path) -> Path:
        path = super().resolve_root(root)
        nested = path / _RELEASE_DIR
        if nested.is_dir():
            return nested
        if (path / "images").is_dir() or path.name == _RELEASE_DIR:
            return path
        raise DatasetError(f"{cls.name}: {nested} does not exist: expected {cls.layout}")

    @classmethod
    def index(cls, root: Path, split: str) -> Iterator[tuple[Path, Path]]:
        own = _SPLITS[split]
        image_dir = require_dir(cls.name, root / "images" / own, cls.layout)
        label_dir = require_dir(cls.name, root / "annotations" / own, cls.layout)
        for image in sorted(image_dir.glob("*.jpg")):
            label = label_dir / (image.stem + ".png")
            if not label.is_file():
                raise DatasetError(f"{cls.name}: {image} has no annotation: expected {label} "
                                   f"(annotations/{own}/<stem>.png)")
            yield image, label

    def load(self, sample: tuple[Path, Path]) -> dict[str, torch.Tensor]:
        return self.load_segmentation(*sample, ANNOTATION_TO_TRAIN_ID)
