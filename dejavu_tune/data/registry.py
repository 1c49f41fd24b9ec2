"""Dataset name (``data.name`` in a config) -> reader class for the on-disk formats.

The table is explicit rather than discovered so that a config's spelling is checked
against exactly these names, and adding a format is a deliberate one-line change.
"""

from __future__ import annotations

from pathlib import Path

from dejavu_tune.data.ade20k import ADE20K
from dejavu_tune.data.cityscapes import Cityscapes
from dejavu_tune.data.coco_panoptic import COCOPanoptic
from dejavu_tune.data.files import DatasetError, FileDataset
from dejavu_tune.data.kitti import KITTIDepth
from dejavu_tune.data.nyud import NYUD

__all__ = ["DATASETS", "check_dataset", "dataset_class", "open_dataset"]

DATASETS: dict[str, type[FileDataset]] = {
    "cityscapes": Cityscapes,
    "ade20k": ADE20K,
    "nyud": NYUD,
    "kitti": KITTIDepth,
    "coco_panoptic": COCOPanoptic,
}


def dataset_class(name: str) -> type[FileDataset]:
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DatasetError(f"data.name={name!r} is not a known dataset: expected one of "
                           f"{', '.join(sorted(DATASETS))}") from None


def _check_root(name: str, root: str | Path | None) -> Path:
    if root is None or str(root) == "":
        raise DatasetError(f"{name}: data.root is not set: expected the directory holding the "
                           f"dataset ({DATASETS[name].layout})")
    return Path(root)


def open_dataset(name: str, root: str | Path | None, split: str, size: tuple[int, int],
                 limit: int = 0) -> FileDataset:
    """The ``split`` ("train" or "val") of dataset ``name`` under ``root``, every sample
    resized to ``size`` = (height, width); ``limit`` > 0 keeps the first ``limit``."""
    cls = dataset_class(name)
    return cls(_check_root(name, root), split, tuple(size), limit)


def check_dataset(name: str, root: str | Path | None, split: str) -> None:
    """Cheap layout check (directories and one complete sample); raises DatasetError."""
    cls = dataset_class(name)
    cls.check(_check_root(name, root), split)
