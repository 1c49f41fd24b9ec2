"""A figure like the supplement's Figure D.1: input, ground truth, prediction,
redacted input and regenerated image, one row per validation image.

The trainer turns every target and prediction into an RGB picture first (the task
knows how: class colours, near-is-bright depth, normals as RGB), so this module
only tiles pictures. Drawn with PIL (tens of milliseconds): a trial logs it every epoch.
"""

from __future__ import annotations

import colorsys

import numpy as np
import torch
from PIL import Image, ImageDraw

__all__ = ["palette", "regeneration_figure"]

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


def regeneration_figure(columns: dict[str, torch.Tensor], scale: int = 2) -> Image.Image:
    """Grid of ``columns`` (name -> (B, 3, H, W) RGB in [-1, 1]), in their order."""
    names = list(columns)
    rows = [np.concatenate([_image(columns[c][i]) for c in names], axis=1)
            for i in range(columns[names[0]].shape[0])]
    grid = Image.fromarray(np.concatenate(rows, axis=0))
    grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    canvas = Image.new("RGB", (grid.width, grid.height + _HEADER), "white")
    canvas.paste(grid, (0, _HEADER))
    draw = ImageDraw.Draw(canvas)
    width = grid.width // len(names)
    for k, name in enumerate(names):
        draw.text((k * width + 2, 1), name.replace("_", " "), fill="black")
    return canvas
