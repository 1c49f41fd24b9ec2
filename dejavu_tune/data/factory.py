"""``DataConfig`` -> (train, search split) datasets and the held-out split
(``data.heldout``): the synthetic scenes, a dataset in its on-disk format, or a user's
``module:function``. Which images each split holds: ``dejavu_tune.data.heldout``.

Every dataset follows one contract: ``ds[i]`` is a dict with ``"image"`` (3, H, W) in
[-1, 1] and its targets (``"seg"`` (H, W) int64 with 255 = ignore, ``"depth"`` (1, H, W)
metres with 0 = no data, ``"normals"`` (3, H, W) unit vectors with 0 = no data), and
the attributes ``targets``, ``num_classes``, ``class_names`` and ``max_depth``.
"""

from __future__ import annotations

import functools
from typing import Any

from dejavu_tune.config import ConfigError, DataConfig
from dejavu_tune.data.files import DatasetError
from dejavu_tune.data.heldout import carve
from dejavu_tune.data.registry import check_dataset, open_dataset
from dejavu_tune.data.synthetic import synthetic_heldout, synthetic_splits
from dejavu_tune.plugins import call_plugin, check_call, is_plugin, wrong_return

__all__ = ["build_splits", "build_heldout", "check_data", "check_batch_fits",
           "training_images", "SYNTHETIC_TRAIN", "SYNTHETIC_VAL"]

SYNTHETIC_TRAIN, SYNTHETIC_VAL = 384, 96  # split sizes when data.num_train/num_val are null
# what a plug-in dataset's function is (docs/byo.md)
_PLUGIN_CONTRACT = ("function(split, data_config) returning a map-style Dataset with the "
                    "attributes targets, num_classes, class_names and max_depth (for split "
                    "'heldout': one, or None when it has none)")


@functools.lru_cache(maxsize=2)
def _synthetic(num_train: int, num_val: int, image_size: int, num_classes: int, seed: int,
               noise: float) -> tuple[Any, Any]:
    """Generated once per process: trials that share a worker share the tensors (read-only)."""
    return synthetic_splits(num_train, num_val, image_size=image_size,
                            num_classes=num_classes, seed=seed, noise=noise)


@functools.lru_cache(maxsize=2)
def _plugin(cfg: DataConfig) -> tuple[Any, Any, Any]:
    """A plug-in's (train, search, held-out) splits, built once per process and
    configuration like the built-in data: trials that share a worker share them."""
    heldout = _plugin_split(cfg, "heldout", optional=True)
    train, val = _plugin_split(cfg, "train"), _plugin_split(cfg, "val")
    if heldout is not None:
        return train, val, heldout
    return (*_carve(train, cfg), val)


def _carve(train: Any, cfg: DataConfig) -> tuple[Any, Any]:
    try:
        return carve(train, cfg.seed)
    except ValueError as exc:
        raise DatasetError(f"data.name={cfg.name!r}: {exc} (data.num_train: at least 2, or "
                           "a plug-in's own held-out split, docs/datasets.md)") from None


@functools.lru_cache(maxsize=2)
def _files(cfg: DataConfig) -> tuple[Any, Any, Any]:
    train = open_dataset(cfg.name, cfg.root, "train", cfg.size, cfg.num_train or 0)
    return (*_carve(train, cfg),
            open_dataset(cfg.name, cfg.root, "val", cfg.size, cfg.num_val or 0))


def _plugin_split(cfg: DataConfig, split: str, optional: bool = False) -> Any:
    dataset = call_plugin(cfg.name, "data.name", _PLUGIN_CONTRACT, split, cfg)
    if dataset is None and optional:
        return None
    # map-style: the loaders index it; the task reads its targets
    if not all(hasattr(dataset, a) for a in ("__getitem__", "__len__", "targets")):
        raise wrong_return(cfg.name, "data.name", dataset, _PLUGIN_CONTRACT)
    return dataset


def build_splits(cfg: DataConfig) -> tuple[Any, Any]:
    """(the images the network trains on, the search split every trial is scored on)."""
    if cfg.name == "synthetic":
        return _synthetic(cfg.num_train or SYNTHETIC_TRAIN, cfg.num_val or SYNTHETIC_VAL,
                          cfg.image_size, cfg.num_classes, cfg.seed, cfg.noise)
    return (_plugin(cfg) if is_plugin(cfg.name) else _files(cfg))[:2]


def build_heldout(cfg: DataConfig) -> Any:
    """The held-out split: only the confirmation's verdict reads it."""
    if cfg.name == "synthetic":
        return synthetic_heldout(cfg.num_val or SYNTHETIC_VAL, cfg.image_size,
                                 cfg.num_classes, cfg.seed, cfg.noise)
    return (_plugin(cfg) if is_plugin(cfg.name) else _files(cfg))[2]


def training_images(cfg: DataConfig) -> int | None:
    """How many images the training split holds, cheaply: the synthetic split counted,
    not rendered; a built-in reader's file index; None for a plugin (whose dataset may
    be costly to build: its trials check it)."""
    if cfg.name == "synthetic":
        return cfg.num_train or SYNTHETIC_TRAIN
    if is_plugin(cfg.name):
        return None
    return len(_files(cfg)[0])


def check_batch_fits(batch_size: int, cfg: DataConfig, train_images: int) -> None:
    """A global batch larger than the training split would train no step at all (the
    last partial batch is dropped): refused, naming both."""
    if train_images < batch_size:
        raise ConfigError(
            f"optim.batch_size={batch_size} is more than the {train_images} training "
            f"image(s) of data.name={cfg.name}: expected at most {train_images}, or more "
            "training images")

def check_data(cfg: DataConfig) -> None:
    """Cheap checks a search runs before Ray starts: the layout is there, the plugin imports
    and takes a dataset function's arguments."""
    if cfg.name == "synthetic":
        return
    if is_plugin(cfg.name):
        check_call(cfg.name, "data.name", _PLUGIN_CONTRACT, "train", cfg)
        return
    for split in ("train", "val"):
        check_dataset(cfg.name, cfg.root, split)
