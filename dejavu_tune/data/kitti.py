"""KITTI depth prediction (the official benchmark's annotated depth maps) with the RGB
frames from KITTI raw:

    root/data_depth_annotated/{train,val}/<drive>/proj_depth/groundtruth/image_02/<frame>.png
    root/raw/<date>/<drive>/image_02/data/<frame>.png      (<date> = <drive>[:10])

Depth maps are uint16 PNGs: metres = value / 256, 0 = no measurement. The annotated maps
are sparse, so most pixels are 0; the reader keeps them that way (0 = invalid).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from dejavu_tune.data.files import (
    DatasetError,
    FileDataset,
    check_same_size,
    read_depth_png,
    read_image,
    require_dir,
    resize_image,
    resize_nearest,
)

__all__ = ["DEPTH_SCALE", "KITTIDepth"]

DEPTH_SCALE = 256.0  # the benchmark's encoding: uint16 value = metres * 256
_GT_SUBDIR = Path("proj_depth", "groundtruth", "image_02")
_RGB_SUBDIR = Path("image_02", "data")


class KITTIDepth(FileDataset):
    name = "kitti"
    layout = ("root to contain data_depth_annotated/{train,val}/<drive>/proj_depth/groundtruth/"
              "image_02/ and raw/<date>/<drive>/image_02/data/ (KITTI depth + raw layout)")
    targets = ("depth",)
    max_depth = 80.0  # the usual evaluation cap; the LiDAR reaches little further

    @classmethod
    def index(cls, root: Path, split: str) -> Iterator[tuple[Path, Path]]:
        gt_root = require_dir(cls.name, root / "data_depth_annotated" / split, cls.layout)
        raw_root = require_dir(cls.name, root / "raw", cls.layout)
        for drive in sorted(p for p in gt_root.iterdir() if p.is_dir()):
            gt_dir = drive / _GT_SUBDIR
            if not gt_dir.is_dir():
                raise DatasetError(f"{cls.name}: {gt_dir} does not exist: expected every drive "
                                   f"in {gt_root} to hold {_GT_SUBDIR}/<frame>.png")
            rgb_dir = raw_root / drive.name[:10] / drive.name / _RGB_SUBDIR
            for depth in sorted(gt_dir.glob("*.png")):
                rgb = rgb_dir / depth.name
                if not rgb.is_file():
                    raise DatasetError(f"{cls.name}: {depth} has no RGB frame: expected {rgb} "
                                       f"(raw/<date>/<drive>/image_02/data/<frame>.png)")
                yield rgb, depth

    def load(self, sample: tuple[Path, Path]) -> dict[str, torch.Tensor]:
        rgb_path, depth_path = sample
        image = read_image(rgb_path)
        depth = read_depth_png(depth_path, DEPTH_SCALE)
        check_same_size(depth_path, tuple(depth.shape[1:]), rgb_path, tuple(image.shape[1:]))
        return {"image": resize_image(image, self.size),
                "depth": resize_nearest(depth, self.size)}
