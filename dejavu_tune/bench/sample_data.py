"""Datasets of a few images in a real on-disk layout, at a real dataset's size, for the step
benchmarks: the step then runs the dataset's own reader, class count and resolution
(Cityscapes' 19 classes at 1024x2048, ADE20K's 150 at 512x512) without the dataset.
Pixels and labels are random: a step's time and memory do not depend on their content.
Two training images: one trains, one is the search split carved out of train
(dejavu_tune.data.heldout); one validation image, the held-out split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["LAYOUTS", "write_sample"]


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _cityscapes(root: Path, rng: np.random.Generator, h: int, w: int) -> None:
    from dejavu_tune.data.cityscapes import LABEL_TO_TRAIN_ID

    ids = np.flatnonzero(LABEL_TO_TRAIN_ID >= 0)  # every label id a labelIds map may hold
    for split, count in (("train", 2), ("val", 1)):
        for i in range(count):
            stem = root / "leftImg8bit" / split / "bench" / f"bench_000000_{i:06d}"
            _png(Path(f"{stem}_leftImg8bit.png"),
                 rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            label = root / "gtFine" / split / "bench" / f"bench_000000_{i:06d}_gtFine_labelIds.png"
            _png(label, rng.choice(ids, (h, w)).astype(np.uint8))


def _ade20k(root: Path, rng: np.random.Generator, h: int, w: int) -> None:
    base = root / "ADEChallengeData2016"
    for split, count in (("training", 2), ("validation", 1)):
        for i in range(1, count + 1):
            _png(base / "images" / split / f"ADE_bench_{i:08d}.jpg",
                 rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            _png(base / "annotations" / split / f"ADE_bench_{i:08d}.png",
                 rng.integers(0, 151, (h, w), dtype=np.uint8))


LAYOUTS = {"cityscapes": _cityscapes, "ade20k": _ade20k}


def write_sample(name: str, root: Path, height: int, width: int, seed: int = 0) -> Path:
    """A two-image train and one-image val split of dataset ``name`` under ``root``."""
    LAYOUTS[name](root, np.random.default_rng(seed), height, width)
    return root
