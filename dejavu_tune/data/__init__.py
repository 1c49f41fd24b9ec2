"""Built-in datasets: everything trains offline, with nothing to download."""

from dejavu_tune.data.synthetic import (
    MAX_CLASSES,
    SHAPE_NAMES,
    SegmentationSplit,
    make_synthetic_segmentation,
    synthetic_splits,
)

__all__ = [
    "MAX_CLASSES",
    "SHAPE_NAMES",
    "SegmentationSplit",
    "make_synthetic_segmentation",
    "synthetic_splits",
]
