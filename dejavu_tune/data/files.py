"""Shared pieces of the on-disk dataset readers: decoding files into the sample contract,
resizing, label checks, and the base class every reader derives from.

The contract (see ``factory``): ``"image"`` float32 (3, H, W) in [-1, 1], ``"seg"``
int64 (H, W) with 255 = ignore, ``"depth"`` float32 (1, H, W) metres with 0 = invalid,
``"normals"`` float32 (3, H, W) unit vectors with all-zero = invalid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from dejavu_tune.config import IGNORE_INDEX
from dejavu_tune.errors import DejavuError

__all__ = [
    "SPLITS",
    "DatasetError",
    "FileDataset",
    "array_to_image",
    "check_labels",
    "check_same_size",
    "map_labels",
    "read_depth_png",
    "read_image",
    "read_label",
    "read_rgb",
    "require_dir",
    "resize_image",
    "resize_nearest",
    "resize_normals",
]

SPLITS = ("train", "val")
# PIL's decoders raise a mix of these for truncated or corrupt files.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, UnidentifiedImageError,
                  Image.DecompressionBombError)


class DatasetError(DejavuError, ValueError):
    """A dataset on disk does not have the layout or contents its reader expects."""


def require_dir(name: str, path: Path, expected: str) -> Path:
    if not path.exists():
        raise DatasetError(f"{name}: {path} does not exist: expected {expected}")
    if not path.is_dir():
        raise DatasetError(f"{name}: {path} is not a directory: expected {expected}")
    return path


def _open(path: Path, what: str) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()  # Image.open is lazy: truncated data only fails here
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found: expected {what}") from None
    except _DECODE_ERRORS as exc:
        raise DatasetError(f"{path}: cannot be decoded ({exc}): expected {what}") from None
    return img


def array_to_image(rgb: np.ndarray, scale: float) -> torch.Tensor:
    """(H, W, 3) with values in [0, scale] -> float32 (3, H, W) in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)
    return (t / (scale / 2.0) - 1.0).clamp_(-1.0, 1.0).contiguous()


def read_rgb(path: Path, what: str = "an RGB image (PNG or JPEG)") -> np.ndarray:
    """An image file -> uint8 (H, W, 3); grey or palette images are expanded to RGB."""
    return np.asarray(_open(path, what).convert("RGB"))


def read_image(path: Path) -> torch.Tensor:
    """An RGB image file -> float32 (3, H, W) in [-1, 1] (x / 127.5 - 1)."""
    return array_to_image(read_rgb(path), 255.0)


def read_label(path: Path) -> np.ndarray:
    """A single-channel label PNG -> int64 (H, W) of raw ids (a palette PNG gives its indices)."""
    img = _open(path, "a single-channel label PNG")
    if img.mode not in ("L", "P", "I", "I;16"):
        raise DatasetError(f"{path}: label image has mode {img.mode!r}: expected a "
                           f"single-channel PNG (mode L, P, I or I;16)")
    return np.asarray(img).astype(np.int64)


def read_depth_png(path: Path, scale: float) -> torch.Tensor:
    """A 16-bit depth PNG -> float32 (1, H, W) metres (value / scale); 0 stays 0 = invalid."""
    img = _open(path, "a 16-bit depth PNG")
    # 8-bit depth would silently cap the range at 255 / scale metres
    if img.mode not in ("I", "I;16"):
        raise DatasetError(f"{path}: depth image has mode {img.mode!r}: expected a 16-bit "
                           f"single-channel PNG (mode I;16 or I)")
    depth = np.asarray(img).astype(np.float32) / scale
    return torch.from_numpy(depth)[None].contiguous()


def check_same_size(path: Path, shape: tuple[int, ...], image_path: Path,
                    image_shape: tuple[int, ...]) -> None:
    """A target must cover its image pixel for pixel before both are resized."""
    if shape != image_shape:
        raise DatasetError(f"{path}: is {shape} but its image {image_path.name} is {image_shape}: "
                           "expected the same height and width")


def check_labels(label: np.ndarray, num_classes: int, path: Path,
                 raw: np.ndarray | None = None) -> None:
    """Raise unless every id is in [0, num_classes) or 255; name the offending raw ids."""
    bad = (label != IGNORE_INDEX) & ((label < 0) | (label >= num_classes))
    if bad.any():
        ids = np.unique((raw if raw is not None else label)[bad])
        shown = ", ".join(str(int(v)) for v in ids[:10]) + (", ..." if len(ids) > 10 else "")
        raise DatasetError(f"{path}: label ids [{shown}] are out of range: expected ids that "
                           f"map to 0..{num_classes - 1} or {IGNORE_INDEX} (ignore)")


def map_labels(raw: np.ndarray, table: np.ndarray, num_classes: int, path: Path) -> torch.Tensor:
    """Map raw ids through ``table`` (entries -1 = not a valid raw id) and check the result."""
    inside = (raw >= 0) & (raw < len(table))
    mapped = np.where(inside, table[np.clip(raw, 0, len(table) - 1)], -1)
    check_labels(mapped, num_classes, path, raw=raw)
    return torch.from_numpy(mapped.astype(np.int64))


def _size_differs(t: torch.Tensor, size: tuple[int, int]) -> bool:
    return tuple(t.shape[-2:]) != tuple(size)


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, H, W) float -> (C, *size), bilinear with antialiasing (downscaling must not alias)."""
    if not _size_differs(image, size):
        return image
    out = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False,
                        antialias=True)[0]
    return out.clamp_(-1.0, 1.0)


def resize_nearest(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Labels (H, W) or depth (C, H, W) -> nearest-neighbour resize, keeping the dtype:
    blending class ids or depth across an object edge would invent values."""
    if not _size_differs(t, size):
        return t
    x = t[None, None] if t.dim() == 2 else t[None]
    # "nearest-exact" samples pixel centres (as PIL does); plain "nearest" is shifted
    out = F.interpolate(x.to(torch.float32), size=size, mode="nearest-exact")
    out = out[0, 0] if t.dim() == 2 else out[0]
    return out.to(t.dtype)


def resize_normals(normals: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(3, H, W) normals -> unit vectors at ``size``; all-zero (invalid) pixels stay zero."""
    valid = normals.abs().sum(0, keepdim=True) > 0
    if _size_differs(normals, size):
        normals = F.interpolate(normals[None], size=size, mode="bilinear",
                                align_corners=False, antialias=True)[0]
        valid = resize_nearest(valid, size)
    norm = normals.norm(dim=0, keepdim=True)
    # a blend of opposite normals has no direction: call it invalid rather than guess
    valid = valid & (norm > 1e-6)
    return torch.where(valid, normals / norm.clamp_min(1e-6), torch.zeros_like(normals))


def _check_args(name: str, split: str, size: Any, limit: Any) -> tuple[int, int]:
    if split not in SPLITS:
        raise DatasetError(f"{name}: split={split!r} is not allowed: expected one of {SPLITS}")
    if (not isinstance(size, Sequence) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise DatasetError(f"{name}: size={size!r} is not allowed: expected (height, width), "
                           f"two positive ints")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise DatasetError(f"{name}: limit={limit!r} is not allowed: expected an int >= 0 "
                           f"(0 = all samples)")
    return int(size[0]), int(size[1])


class FileDataset(Dataset):
    """Base of the readers: validates the arguments, indexes the files once (listing only,
    decoding waits for ``__getitem__``) and applies ``limit`` to the sorted index."""

    name: ClassVar[str] = ""
    layout: ClassVar[str] = ""  # what root should contain, for error messages
    targets: ClassVar[tuple[str, ...]] = ()
    num_classes: ClassVar[int] = 0
    class_names: ClassVar[tuple[str, ...]] = ()
    max_depth: ClassVar[float] = 0.0

    def __init__(self, root: str | Path, split: str, size: tuple[int, int],
                 limit: int = 0) -> None:
        self.size = _check_args(self.name, split, size, limit)
        self.split = split
        self.root = self.resolve_root(root)
        samples = list(self.index(self.root, split))
        if not samples:
            raise DatasetError(f"{self.name}: no {split} samples found under {self.root}: "
                               f"expected {self.layout}")
        self.samples = samples[:limit] if limit else samples

    @classmethod
    def check_split(cls, split: str) -> None:
        _check_args(cls.name, split, (1, 1), 0)

    @classmethod
    def resolve_root(cls, root: str | Path) -> Path:
        path = Path(root).expanduser()
        return require_dir(cls.name, path, f"the dataset root, containing {cls.layout}")

    @classmethod
    def index(cls, root: Path, split: str) -> Iterable[tuple]:
        """Yield the samples (tuples of paths) in sorted order, lazily (``check`` takes only
        the first); raise DatasetError on a broken layout or an image without its targets."""
        raise NotImplementedError

    @classmethod
    def check(cls, root: str | Path, split: str) -> None:
        """Cheap: the directories exist and the first sample is complete."""
        cls.check_split(split)
        resolved = cls.resolve_root(root)
        if next(iter(cls.index(resolved, split)), None) is None:
            raise DatasetError(f"{cls.name}: no {split} samples found under {resolved}: "
                               f"expected {cls.layout}")

    def load(self, sample: tuple) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_segmentation(self, image_path: Path, label_path: Path,
                          table: np.ndarray) -> dict[str, torch.Tensor]:
        """An image and its label map, ids mapped through ``table``, both resized."""
        image = read_image(image_path)
        seg = map_labels(read_label(label_path), table, self.num_classes, label_path)
        check_same_size(label_path, tuple(seg.shape), image_path, tuple(image.shape[1:]))
        return {"image": resize_image(image, self.size), "seg": resize_nearest(seg, self.size)}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.name}: index {i} out of range for {len(self)} samples")
        return self.load(self.samples[i])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, "
                f"size={self.size}, samples={len(self)})")
