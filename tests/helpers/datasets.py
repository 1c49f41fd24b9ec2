"""Tiny datasets written in each real on-disk format, shared by the reader and preset tests."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 8, 16


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def rgb(value: int) -> np.ndarray:
    return np.full((H, W, 3), value, dtype=np.uint8)


def columns(values) -> np.ndarray:
    """(H, W) map whose columns 2k and 2k+1 hold values[k]: halving the width keeps one each."""
    return np.tile(np.repeat(np.asarray(values, dtype=np.uint8), 2), (H, 1))


CITY_IDS = [7, 26, 0, 24, 33, 9, 11, 23]  # road, car, unlabeled, person, bicycle, parking, ...


CITY_TRAIN_IDS = [0, 13, 255, 11, 18, 255, 2, 10]


def write_cityscapes(root: Path) -> Path:
    for split, city, stem, value in [("train", "bochum", "bochum_000000_000313", 255),
                                     ("train", "aachen", "aachen_000001_000019", 51),
                                     ("train", "aachen", "aachen_000000_000019", 0),
                                     ("val", "frankfurt", "frankfurt_000000_000294", 0)]:
        write_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rgb(value))
        write_png(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png",
               columns(CITY_IDS))
    return root


def write_ade20k(root: Path) -> Path:
    base = root / "ADEChallengeData2016"
    for split, stem in [("training", "ADE_train_00000002"), ("training", "ADE_train_00000001"),
                        ("validation", "ADE_val_00000001")]:
        write_png(base / "images" / split / f"{stem}.jpg", rgb(128))
        write_png(base / "annotations" / split / f"{stem}.png", columns([0, 1, 150, 2, 0, 0, 0, 0]))
    return root


def nyud_sample(split_dir: Path, index: int, label_value: float) -> None:
    image = np.zeros((H, W, 3), dtype=np.float32)
    image[:, W // 2:] = 1.0
    label = np.full((H, W), label_value, dtype=np.float32)
    label[:, :2] = -1
    depth = np.full((H, W, 1), 3.25, dtype=np.float32)
    depth[:, :2] = 0.0
    normal = np.zeros((H, W, 3), dtype=np.float32)
    normal[:, 2:] = (0.0, 0.0, 2.0)  # not unit length: the reader normalises
    for kind, array in [("image", image), ("label", label), ("depth", depth),
                        ("normal", normal)]:
        (split_dir / kind).mkdir(parents=True, exist_ok=True)
        np.save(split_dir / kind / f"{index}.npy", array)


def write_nyud(root: Path) -> Path:
    for index, value in [(0, 0.0), (1, 12.0), (10, 5.0)]:
        nyud_sample(root / "train", index, value)
    nyud_sample(root / "val", 0, 3.0)
    return root


DRIVE = "2011_09_26_drive_0001_sync"


def write_kitti(root: Path) -> Path:
    for split, frame in [("train", "0000000006"), ("train", "0000000005"), ("val", "0000000005")]:
        depth = np.zeros((H, W), dtype=np.uint16)
        depth[:, W // 2:] = int(256 * 5.5)
        depth[0, -1] = 65535
        gt = root / "data_depth_annotated" / split / DRIVE / "proj_depth/groundtruth/image_02"
        write_png(gt / f"{frame}.png", depth)
        write_png(root / "raw" / DRIVE[:10] / DRIVE / "image_02/data" / f"{frame}.png", rgb(0))
    return root


CATEGORIES = [{"id": 1, "name": "person", "isthing": 1}, {"id": 17, "name": "cat", "isthing": 1},
              {"id": 184, "name": "tree-merged", "isthing": 0}]


def write_coco(root: Path, extra_segment: int = 0) -> Path:
    for split in ("train", "val"):
        annotations, images = [], []
        for image_id in (2, 1):
            png = np.zeros((H, W, 3), dtype=np.uint8)
            png[:, 2:4] = (1, 2, 0)   # segment 1 + 256 * 2 = 513: a cat
            png[:, 4:6] = (5, 0, 0)   # segment 5: a tree
            png[:, 6:8] = (1, 0, 0)   # segment 1: a person
            png[:, 8:10] = (extra_segment, 0, 0)
            name = f"{image_id:012d}"
            write_png(root / "annotations" / f"panoptic_{split}2017" / f"{name}.png", png)
            write_png(root / f"{split}2017" / f"{name}.jpg", rgb(255))
            images.append({"id": image_id, "file_name": f"{name}.jpg"})
            annotations.append({"image_id": image_id, "file_name": f"{name}.png",
                                "segments_info": [{"id": 513, "category_id": 17},
                                                  {"id": 5, "category_id": 184},
                                                  {"id": 1, "category_id": 1}]})
        (root / "annotations" / f"panoptic_{split}2017.json").write_text(json.dumps(
            {"images": images, "annotations": annotations, "categories": CATEGORIES}))
    return root


FIXTURES = {"cityscapes": write_cityscapes, "ade20k": write_ade20k, "nyud": write_nyud,
            "kitti": write_kitti, "coco_panoptic": write_coco}
