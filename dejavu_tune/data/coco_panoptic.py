"""COCO panoptic (2017) read as semantic segmentation:

    root/annotations/panoptic_{train,val}2017.json
    root/annotations/panoptic_{train,val}2017/<file>.png   segment id = R + 256 G + 256^2 B
    root/{train,val}2017/<file>.jpg

Each pixel's segment id is looked up in the JSON's ``segments_info`` and replaced by its
category, numbered 0.. in the order the JSON lists ``categories`` (133 for the official
release, things and stuff alike). Segment id 0 (unlabelled) becomes 255.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dejavu_tune.config import IGNORE_INDEX
from dejavu_tune.data.files import (
    DatasetError,
    FileDataset,
    read_image,
    read_rgb,
    require_dir,
    resize_image,
    resize_nearest,
)

__all__ = ["COCOPanoptic", "read_panoptic_json"]

_VOID = 0  # the segment id of unlabelled pixels


def _paths(root: Path, split: str) -> tuple[Path, Path, Path]:
    name = f"{split}2017"
    return (root / "annotations" / f"panoptic_{name}.json",
            root / "annotations" / f"panoptic_{name}", root / name)


def _get(obj: Any, key: str, path: Path, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise DatasetError(f"{path}: {where} has no {key!r}: expected the COCO panoptic "
                           f"format (images, annotations, categories)")
    return obj[key]


def read_panoptic_json(path: Path) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """-> (category names in file order, annotations with a ``segments`` id -> class dict
    and the ``image`` file name); a malformed file raises DatasetError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found: expected the panoptic annotation "
                           f"JSON") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot be read as JSON ({exc}): expected the COCO "
                           f"panoptic annotation file") from None
    categories = _get(data, "categories", path, "the file")
    if not 0 < len(categories) < IGNORE_INDEX:
        raise DatasetError(f"{path}: lists {len(categories)} categories: expected 1..{IGNORE_INDEX - 1} "
                           f"({IGNORE_INDEX} is the ignore id)")
    contiguous = {_get(c, "id", path, "a category"): i for i, c in enumerate(categories)}
    names = tuple(str(_get(c, "name", path, "a category")) for c in categories)
    # images are optional: without them the JPEG is assumed to share the PNG's stem
    images = {_get(im, "id", path, "an image"): _get(im, "file_name", path, "an image")
              for im in data.get("images", [])}
    annotations = []
    for ann in _get(data, "annotations", path, "the file"):
        png = _get(ann, "file_name", path, "an annotation")
        segments = {}
        for seg in _get(ann, "segments_info", path, f"annotation {png}"):
            category = _get(seg, "category_id", path, f"a segment of {png}")
            if category not in contiguous:
                raise DatasetError(f"{path}: annotation {png} uses category_id {category}: "
                                   f"expected one of the {len(contiguous)} ids in categories")
            segments[int(_get(seg, "id", path, f"a segment of {png}"))] = contiguous[category]
        image = images.get(ann.get("image_id"), Path(png).stem + ".jpg")
        annotations.append({"png": png, "image": image, "segments": segments})
    return names, annotations


class COCOPanoptic(FileDataset):
    name = "coco_panoptic"
    layout = ("root to contain annotations/panoptic_{train,val}2017.json, "
              "annotations/panoptic_{train,val}2017/ and {train,val}2017/ (COCO panoptic layout)")
    targets = ("seg",)
    num_classes = 133  # the official release; replaced per instance by the JSON's list
    class_names: tuple[str, ...] = ()

    def __init__(self, root: str | Path, split: str, size: tuple[int, int],
                 limit: int = 0) -> None:
        self._json_names: tuple[str, ...] | None = None
        super().__init__(root, split, size, limit)
        self.class_names = self._json_names or ()
        self.num_classes = len(self.class_names)

    @classmethod
    def _dirs(cls, root: Path, split: str) -> tuple[Path, Path, Path]:
        json_path, png_dir, image_dir = _paths(root, split)
        if not json_path.is_file():
            raise DatasetError(f"{cls.name}: {json_path} does not exist: expected {cls.layout}")
        return json_path, require_dir(cls.name, png_dir, cls.layout), \
            require_dir(cls.name, image_dir, cls.layout)

    @classmethod
    def check(cls, root: str | Path, split: str) -> None:
        # cheap on purpose: the training JSON is hundreds of MB, so it is not parsed here
        cls.check_split(split)
        json_path, png_dir, image_dir = cls._dirs(cls.resolve_root(root), split)
        png = next((p for p in png_dir.iterdir() if p.suffix == ".png"), None)
        if png is None:
            raise DatasetError(f"{cls.name}: no {split} samples found in {png_dir}: expected "
                               f"<file>.png panoptic maps")
        image = image_dir / (png.stem + ".jpg")
        if not image.is_file():
            raise DatasetError(f"{cls.name}: {png} has no image: expected {image}")

    def index(self, root: Path, split: str) -> Iterator[tuple[Any, ...]]:
        json_path, png_dir, image_dir = self._dirs(root, split)
        names, annotations = read_panoptic_json(json_path)
        self._json_names = names
        for ann in sorted(annotations, key=lambda a: a["png"]):
            png, image = png_dir / ann["png"], image_dir / ann["image"]
            for path, what in ((png, "panoptic PNG"), (image, "image")):
                if not path.is_file():
                    raise DatasetError(f"{self.name}: annotation {ann['png']} in {json_path} "
                                       f"has no {what}: expected {path}")
            ids = np.array(sorted(ann["segments"]), dtype=np.int64)
            classes = np.array([ann["segments"][i] for i in ids], dtype=np.int64)
            yield image, png, ids, classes

    def load(self, sample: tuple[Any, ...]) -> dict[str, torch.Tensor]:
        image_path, png_path, ids, classes = sample
        image = read_image(image_path)
        rgb = read_rgb(png_path, "an RGB panoptic PNG").astype(np.int64)
        segment = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
        present, inverse = np.unique(segment, return_inverse=True)
        pos = np.clip(np.searchsorted(ids, present), 0, max(len(ids) - 1, 0))
        known = (ids[pos] == present) if len(ids) else np.zeros(len(present), dtype=bool)
        unknown = present[~known & (present != _VOID)]
        if len(unknown):
            shown = ", ".join(str(int(v)) for v in unknown[:10])
            raise DatasetError(f"{png_path}: segment ids [{shown}] are not in its segments_info: "
                               f"expected {_VOID} (unlabelled) or the ids the JSON lists")
        lut = np.where(known, classes[pos] if len(ids) else IGNORE_INDEX, IGNORE_INDEX)
        seg = torch.from_numpy(lut[inverse.reshape(segment.shape)].astype(np.int64))
        if seg.shape != image.shape[1:]:
            raise DatasetError(f"{png_path}: panoptic map is {tuple(seg.shape)} but its image "
                               f"is {tuple(image.shape[1:])}: expected the same height and width")
        return {"image": resize_image(image, self.size), "seg": resize_nearest(seg, self.size)}
