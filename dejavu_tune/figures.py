"""A figure like the supplement's Figure D.1: input, ground truth, prediction,
redacted input and regenerated image, one row per validation image.

Drawn with PIL (tens of milliseconds), so a trial can log it every epoch.
"""

from __future__ import annotations

import colorsys

import numpy as np
import torch
from PIL import Image, ImageDraw

__all__ = ["palette", "regeneration_figure", "COLUMNS"]

COLUMNS = ("input", "ground_truth", "prediction", "redacted", "regenerated")
_HEADER = 14  # pixels of title text above the columns


def palette(num_classes: int) -> np.ndarray:
    """Distinct colours per class id (hues spread evenly; class 0 is dark grey)."""
    colours = [(40, 40, 40)]
    for k in range(1, max(num_classes, 1)):
        r, g, b = colorsys.hsv_to_rgb((k - 1) / max(num_classes - 1, 1), 0.75, 0.95)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return np.array(colours, dtype=np.uint8)


def _image(tensor: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    array = ((tensor.float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return array.permute(1, 2, 0).numpy()


def _labels(tensor: torch.Tensor, colours: np.ndarray) -> np.ndarray:
    ids = tensor.long().clamp(0, len(colours) - 1).numpy()
    out = colours[ids]
    out[tensor.numpy() == 255] = 255  # ignored pixels in white
    return out


def regeneration_figure(sample: dict[str, torch.Tensor], num_classes: int,
                        scale: int = 2) -> Image.Image:
    """Grid of the available ``COLUMNS`` (the baseline has no redacted/regenerated)."""
    columns = [c for c in COLUMNS if c in sample]
    colours = palette(num_classes)
    rows = []
    for i in range(sample["input"].shape[0]):
        tiles = [_labels(sample[c][i], colours) if c in ("ground_truth", "prediction")
                 else _image(sample[c][i]) for c in columns]
        rows.append(np.concatenate(tiles, axis=1))
    grid = Image.fromarray(np.concatenate(rows, axis=0))
    grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    canvas = Image.new("RGB", (grid.width, grid.height + _HEADER), "white")
    canvas.paste(grid, (0, _HEADER))
    draw = ImageDraw.Draw(canvas)
    width = grid.width // len(columns)
    for k, name in enumerate(columns):
        draw.text((k * width + 2, 1), name.replace("_", " "), fill="black")
    return canvas
