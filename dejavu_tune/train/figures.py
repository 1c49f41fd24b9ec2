"""A figure like the supplement's Figure D.1: input, ground truth, prediction,
redacted input, regenerated image and what the CRM changed, one row per validation image.

The trainer turns every target and prediction into an RGB picture first (the task
knows how: class colours, near-is-bright depth, normals as RGB), so this module
only tiles pictures, titles the columns and adds the class legend. Drawn with PIL
(tens of milliseconds): a trial logs it every epoch. Labels are 16 px high at full
size, which is how MLflow shows an image when it is opened.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

__all__ = ["regeneration_figure", "change_map", "FIGURE_FILE", "CHANGE_COLUMN", "HEADER_PX",
           "LEGEND_SLOT_PX"]

FIGURE_FILE = "regeneration.png"  # a figure's file: in a checkpoint, in the CRM store
CHANGE_COLUMN = "CRM change"
_FONT_PX = 16
_PAD = 6
HEADER_PX = _FONT_PX + 2 * _PAD  # the column titles above the grid
LEGEND_SLOT_PX = 120  # the width of one legend entry
# |regenerated - redacted| of this much (in [-1, 1] units, mean over RGB) is full scale
_CHANGE_FULL = 0.5


def change_map(regenerated: torch.Tensor, redacted: torch.Tensor) -> torch.Tensor:
    """How much the CRM changed each pixel of the redacted image, as a black-to-yellow
    heat map (B, 3, H, W) in [-1, 1]: black where it copied the input, bright where it
    painted something in."""
    amount = ((regenerated.float() - redacted.float()).abs().mean(1, keepdim=True)
              / _CHANGE_FULL).clamp(0, 1)
    heat = torch.cat([amount.clamp(max=0.5) * 2, amount, (amount - 0.5).clamp(min=0) * 2], 1)
    return heat * 2 - 1


def _image(tensor: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    array = ((tensor.float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return array.permute(1, 2, 0).numpy()


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default(size=_FONT_PX)


def regeneration_figure(columns: dict[str, torch.Tensor], scale: int = 2,
                        legend: list[tuple[str, tuple[int, int, int]]] | None = None,
                        ) -> Image.Image:
    """Grid of ``columns`` (name -> (B, 3, H, W) RGB in [-1, 1]), in their order, with
    ``legend`` (label, colour) swatches below it."""
    names = list(columns)
    rows = [np.concatenate([_image(columns[c][i]) for c in names], axis=1)
            for i in range(columns[names[0]].shape[0])]
    grid = Image.fromarray(np.concatenate(rows, axis=0))
    # each column at least as wide as its title
    scale = max(scale, -(-(max(len(n) for n in names) * _FONT_PX * 6 // 10 + 2 * _PAD)
                         // (grid.width // len(names))))
    width = grid.width // len(names) * scale
    grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    font = _font()
    swatches = legend or []
    per_line = max(1, grid.width // LEGEND_SLOT_PX)
    footer = (-(-len(swatches) // per_line)) * (_FONT_PX + _PAD) + _PAD if swatches else 0
    canvas = Image.new("RGB", (grid.width, grid.height + HEADER_PX + footer), "white")
    canvas.paste(grid, (0, HEADER_PX))
    draw = ImageDraw.Draw(canvas)
    for k, name in enumerate(names):
        draw.text((k * width + _PAD, _PAD), name.replace("_", " "), fill="black", font=font)
    top = HEADER_PX + grid.height + _PAD
    for k, (label, colour) in enumerate(swatches):
        x, y = (k % per_line) * LEGEND_SLOT_PX + _PAD, top + (k // per_line) * (_FONT_PX + _PAD)
        draw.rectangle((x, y, x + _FONT_PX, y + _FONT_PX), fill=tuple(colour), outline="black")
        draw.text((x + _FONT_PX + 4, y), label, fill="black", font=font)
    return canvas
