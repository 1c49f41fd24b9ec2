"""What a run trained on and was scored on, for MLflow's dataset inputs: each split's
name, where it comes from, how many images, and a digest that changes when its images
do (a file dataset: its files' paths, relative to the root, in order; the synthetic
scenes: the generator's settings; a plug-in: its name, options and length).

Two runs with the same digest for a split read the same images; a search on Cityscapes
and one on ADE20K in one experiment tell apart in the runs table's *Datasets* column.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dejavu_tune.config import DataConfig
from dejavu_tune.data.files import FileDataset
from dejavu_tune.data.heldout import Carved

__all__ = ["DatasetInfo", "describe", "TRAINING", "SEARCH", "HELDOUT"]

# the splits' roles, as MLflow's dataset context tag shows them
TRAINING, SEARCH, HELDOUT = "training", "search", "held-out"
SYNTHETIC_SOURCE = "built-in synthetic scenes (dejavu_tune.data.synthetic)"


@dataclass(frozen=True)
class DatasetInfo:
    name: str  # "synthetic train", "cityscapes val"
    context: str  # TRAINING, SEARCH or HELDOUT
    source: str  # the dataset's root, or what generates it
    source_type: str  # "local" (files) or "code" (generated, a plug-in)
    digest: str  # 16 hex digits of a SHA-256
    images: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _synthetic(cfg: DataConfig, split: str, images: int, context: str) -> DatasetInfo:
    settings = {"generator": "synthetic", "split": split, "images": images,
                "image_size": cfg.image_size, "num_classes": cfg.num_classes,
                "seed": cfg.seed, "noise": cfg.noise}
    return DatasetInfo(f"synthetic {split}", context, SYNTHETIC_SOURCE, "code",
                       _digest(settings), images)


def _files(cfg: DataConfig, dataset: Any, context: str) -> DatasetInfo:
    """A file dataset's split, or the part of one a search split carved out."""
    base, indices = ((dataset.dataset, dataset.indices) if isinstance(dataset, Carved)
                     else (dataset, range(len(dataset))))
    if not isinstance(base, FileDataset):  # a plug-in's dataset: what it is, not its files
        payload: Any = {"name": cfg.name, "options": cfg.options, "context": context,
                        "images": len(dataset)}
        return DatasetInfo(f"{cfg.name} {context}", context, cfg.name, "code",
                           _digest(payload), len(dataset))
    root, split = Path(base.root), base.split
    # a sample's paths, relative to the root (COCO's also carry its segments' ids)
    paths = [[_relative(Path(p), root) if isinstance(p, (str, Path)) else p
              for p in base.samples[i]] for i in indices]
    # the training part and the search split are both carved from the train split: the
    # context and the digest tell them apart
    return DatasetInfo(f"{cfg.name} {split}", context, str(root), "local",
                       _digest(paths), len(dataset))


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def describe(cfg: DataConfig, train: Any, search: Any) -> list[DatasetInfo]:
    """The splits a run reads: the images it trains on (``train``), the search split
    every epoch is scored on (``search``) and, for a run the confirmation pairs
    (``data.heldout``), the held-out split."""
    if cfg.name == "synthetic":
        out = [_synthetic(cfg, "train", len(train), TRAINING),
               _synthetic(cfg, "val", len(search), SEARCH)]
        if cfg.heldout:
            out.append(_synthetic(cfg, "heldout", len(search), HELDOUT))
        return out
    out = [_files(cfg, train, TRAINING), _files(cfg, search, SEARCH)]
    if cfg.heldout:
        from dejavu_tune.data.factory import build_heldout  # cached: the run scores it too

        out.append(_files(cfg, build_heldout(cfg), HELDOUT))
    return out
