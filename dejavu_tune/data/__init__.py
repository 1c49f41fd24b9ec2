"""Datasets: the built-in synthetic scenes (everything trains offline) and readers for
real datasets in their own on-disk formats (nothing is downloaded)."""

from dejavu_tune.data.factory import (
    build_heldout,
    build_splits,
    check_batch_fits,
    check_data,
    training_images,
)
from dejavu_tune.data.synthetic import (
    MAX_CLASSES,
    SHAPE_NAMES,
    DenseSplit,
    make_synthetic_scenes,
    make_synthetic_segmentation,
    synthetic_splits,
)

__all__ = [
    "MAX_CLASSES",
    "SHAPE_NAMES",
    "DenseSplit",
    "build_heldout",
    "build_splits",
    "check_batch_fits",
    "check_data",
    "make_synthetic_scenes",
    "make_synthetic_segmentation",
    "synthetic_splits",
    "training_images",
]
