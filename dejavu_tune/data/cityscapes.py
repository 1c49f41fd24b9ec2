"""Cityscapes semantic segmentation in its release layout:

    root/leftImg8bit/{train,val}/<city>/<stem>_leftImg8bit.png
    root/gtFine/{train,val}/<city>/<stem>_gtFine_labelIds.png

The ``labelIds`` maps hold the 34 full label ids; training uses the 19 evaluated classes,
so ids are mapped to train ids with the benchmark's table and everything else to 255.
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

__all__ = ["CITYSCAPES_CLASSES", "LABEL_TO_TRAIN_ID", "Cityscapes"]

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
    "bus", "train", "motorcycle", "bicycle",
)

# label id -> train id, the benchmark's definition; ids not listed (void, ego vehicle,
# parking, rail track, guard rail, bridge, tunnel, polegroup, caravan, trailer, ...) -> 255
_TRAIN_IDS = {
    7: 0,    # road
    8: 1,    # sidewalk
    11: 2,   # building
    12: 3,   # wall
    13: 4,   # fence
    17: 5,   # pole
    19: 6,   # traffic light
    20: 7,   # traffic sign
    21: 8,   # vegetation
    22: 9,   # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
}
_NUM_LABEL_IDS = 34  # ids 0..33 exist; anything larger means the file is not a labelIds map

LABEL_TO_TRAIN_ID = np.full(256, -1, dtype=np.int64)
LABEL_TO_TRAIN_ID[:_NUM_LABEL_IDS] = IGNORE_INDEX
for _label_id, _train_id in _TRAIN_IDS.items():
    LABEL_TO_TRAIN_ID[_label_id] = _train_id

_IMAGE_SUFFIX = "_leftImg8bit.png"
_LABEL_SUFFIX = "_gtFine_labelIds.png"


class Cityscapes(FileDataset):
    name = "cityscapes"
    layout = "root to contain leftImg8bit/ and gtFine/ (Cityscapes layout)"
    targets = ("seg",)
    num_classes = len(CITYSCAPES_CLASSES)
    class_names = CITYSCAPES_CLASSES

    @classmethod
    def index(cls, root: Path, split: str) -> Iterator[tuple[Path, Path]]:
        image_root = require_dir(cls.name, root / "leftImg8bit" / split, cls.layout)
        label_root = require_dir(cls.name, root / "gtFine" / split, cls.layout)
        for city in sorted(p for p in image_root.iterdir() if p.is_dir()):
            for image in sorted(city.glob("*" + _IMAGE_SUFFIX)):
                stem = image.name[: -len(_IMAGE_SUFFIX)]
                label = label_root / city.name / (stem + _LABEL_SUFFIX)
                if not label.is_file():
                    raise DatasetError(f"{cls.name}: {image} has no label: expected {label} "
                                       f"(gtFine/{split}/<city>/<stem>{_LABEL_SUFFIX})")
                yield image, label

    def load(self, sample: tuple[Path, Path]) -> dict[str, torch.Tensor]:
        return self.load_segmentation(*sample, LABEL_TO_TRAIN_ID)
