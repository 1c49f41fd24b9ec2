"""NYUD-v2 (13 classes, depth, surface normals) as preprocessed for multi-task learning
(the MTAN release, also read by MTPSL): one NumPy file per sample and target,

    root/{train,val}/image/<index>.npy    (288, 384, 3) float, RGB in [0, 1]
    root/{train,val}/label/<index>.npy    (288, 384) float, class 0..12, -1 = ignore
    root/{train,val}/depth/<index>.npy    (288, 384, 1) float metres, 0 = invalid
    root/{train,val}/normal/<index>.npy   (288, 384, 3) float in [-1, 1], all-zero = invalid
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
    array_to_image,
    check_labels,
    require_dir,
    resize_image,
    resize_nearest,
    resize_normals,
)

__all__ = ["NYUD", "NYUD_CLASSES"]

# the 13-class NYUv2 grouping, index = class id in the label files (alphabetical order)
NYUD_CLASSES = (
    "bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa",
    "table", "tv", "wall", "window",
)

_KINDS = ("image", "label", "depth", "normal")
# trailing channel count each kind must have; None = no channel axis
_CHANNELS = {"image": 3, "label": None, "depth": 1, "normal": 3}


def _index_key(path: Path) -> tuple[int, int, str]:
    # files are named 0.npy, 1.npy, ...: numeric order, so 10 comes after 9
    stem = path.stem
    return (0, int(stem), stem) if stem.isdigit() else (1, 0, stem)


def _load(path: Path, kind: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found: expected a NumPy {kind} array") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot be read as a NumPy array ({exc}): expected a "
                           f".npy {kind} array") from None
    channels = _CHANNELS[kind]
    if kind == "depth" and array.ndim == 2:
        array = array[..., None]  # tolerate depth saved without its channel axis
    ok = array.ndim == 2 if channels is None else array.ndim == 3 and array.shape[2] == channels
    if not ok:
        want = "(H, W)" if channels is None else f"(H, W, {channels})"
        raise DatasetError(f"{path}: {kind} array has shape {array.shape}: expected {want}")
    return array


class NYUD(FileDataset):
    name = "nyud"
    layout = ("root to contain train/ and val/, each with image/, label/, depth/ and normal/ "
              "holding <index>.npy (NYUD-v2 preprocessed layout of MTAN/MTPSL)")
    targets = ("seg", "depth", "normals")
    num_classes = len(NYUD_CLASSES)
    class_names = NYUD_CLASSES
    max_depth = 10.0

    @classmethod
    def index(cls, root: Path, split: str) -> Iterator[tuple[Path, ...]]:
        split_dir = require_dir(cls.name, root / split, cls.layout)
        dirs = [require_dir(cls.name, split_dir / kind, cls.layout) for kind in _KINDS]
        for image in sorted(dirs[0].glob("*.npy"), key=_index_key):
            sample = (image, *(d / image.name for d in dirs[1:]))
            for kind, path in zip(_KINDS[1:], sample[1:], strict=True):
                if not path.is_file():
                    raise DatasetError(f"{cls.name}: {image} has no {kind}: expected {path}")
            yield sample

    def load(self, sample: tuple[Path, ...]) -> dict[str, torch.Tensor]:
        arrays = {kind: _load(path, kind) for kind, path in zip(_KINDS, sample, strict=True)}
        shape = arrays["image"].shape[:2]
        for kind, path in zip(_KINDS[1:], sample[1:], strict=True):
            if arrays[kind].shape[:2] != shape:
                raise DatasetError(f"{path}: {kind} is {arrays[kind].shape[:2]} but its image "
                                   f"is {shape}: expected the same height and width")

        raw = arrays["label"]
        if not np.array_equal(raw, np.round(raw)):
            raise DatasetError(f"{sample[1]}: label array holds non-integer values: expected "
                               f"class ids 0..{self.num_classes - 1} or -1 (ignore)")
        raw = raw.astype(np.int64)
        label = np.where(raw == -1, IGNORE_INDEX, raw)
        # 255 is this reader's ignore value, not the file's: reject it like any other bad id
        check_labels(np.where(raw == IGNORE_INDEX, -1, label), self.num_classes, sample[1], raw=raw)

        image = array_to_image(arrays["image"], 1.0)
        depth = arrays["depth"].astype(np.float32)
        # NaN/negative depth has no metric meaning: treat it as "no data" like 0
        depth = torch.from_numpy(np.where(np.isfinite(depth) & (depth > 0), depth, 0.0))
        normals = torch.from_numpy(np.ascontiguousarray(arrays["normal"], dtype=np.float32))
        return {
            "image": resize_image(image, self.size),
            "seg": resize_nearest(torch.from_numpy(label), self.size),
            "depth": resize_nearest(depth.permute(2, 0, 1).contiguous(), self.size),
            "normals": resize_normals(normals.permute(2, 0, 1).contiguous(), self.size),
        }
