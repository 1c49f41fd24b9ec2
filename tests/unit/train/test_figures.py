import numpy as np
import torch

from dejavu_tune.tasks import DepthTask, SegmentationTask
from dejavu_tune.tasks.segmentation import palette
from dejavu_tune.train.figures import (
    HEADER_PX,
    LEGEND_SLOT_PX,
    change_map,
    regeneration_figure,
)


def test_palette_is_distinct_and_background_dark():
    colours = palette(5)
    assert colours.shape == (5, 3) and tuple(colours[0]) == (40, 40, 40)
    assert len({tuple(c) for c in colours}) == 5


def test_figure_layout_and_pixels():
    seg = SegmentationTask(3)
    columns = {
        "input": torch.full((2, 3, 8, 8), 1.0),  # white
        "seg truth": seg.visualise({"seg": torch.zeros(2, 8, 8, dtype=torch.long)})["seg"],
        "seg prediction": seg.visualise({"seg": torch.ones(2, 8, 8, dtype=torch.long)})["seg"],
        "redacted": torch.full((2, 3, 8, 8), -1.0),  # black
        "regenerated": torch.zeros(2, 3, 8, 8),
    }
    image = np.asarray(regeneration_figure(columns, scale=2))
    # "seg prediction" in 16 px type needs 146 px: every 8 px image is scaled 19 times
    col = 8 * 19
    assert image.shape == (HEADER_PX + 2 * col, 5 * col, 3)
    body = image[HEADER_PX:]
    assert (body[:, :col] == 255).all()  # input column
    assert (body[:, col:2 * col] == (40, 40, 40)).all()  # ground truth = class 0
    assert (body[:, 2 * col:3 * col] == palette(3)[1]).all()  # prediction = class 1
    assert (body[:, 3 * col:4 * col] == 0).all()  # redacted column
    assert (body[:, 4 * col:] == 128).all()  # 0 in [-1, 1] -> mid grey
    assert (image[:HEADER_PX, :col] < 128).any()  # a title is written above the input


def test_legend_swatches_below_the_grid():
    seg = SegmentationTask(3)
    columns = {"seg truth": seg.visualise({"seg": torch.zeros(1, 64, 64, dtype=torch.long)})["seg"]}
    image = np.asarray(regeneration_figure(columns, scale=4, legend=seg.legend()))
    labels = [label for label, _ in seg.legend()]
    assert labels == ["class 0", "class 1", "class 2", "ignored"]
    # 256 px wide: two entries a line, two lines of 16 px swatches with 6 px gaps
    assert image.shape == (HEADER_PX + 256 + 2 * 22 + 6, 256, 3)
    top = HEADER_PX + 256 + 6
    assert tuple(image[top + 8, 6 + 8]) == tuple(palette(3)[0])  # class 0's swatch
    assert tuple(image[top + 8, LEGEND_SLOT_PX + 6 + 8]) == tuple(palette(3)[1])
    assert tuple(image[top + 22 + 8, 6 + 8]) == tuple(palette(3)[2])  # second line


def test_change_map_is_black_where_the_crm_copied_and_bright_where_it_painted():
    redacted = torch.zeros(1, 3, 1, 3)
    regenerated = torch.tensor([0.0, 0.25, 0.5]).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    heat = change_map(regenerated, redacted)
    # unchanged: black; half of full scale (0.25 of 0.5): orange; full scale: white
    assert heat[0, :, 0, 0].tolist() == [-1.0, -1.0, -1.0]
    assert heat[0, :, 0, 1].tolist() == [1.0, 0.0, -1.0]
    assert heat[0, :, 0, 2].tolist() == [1.0, 1.0, 1.0]


def test_ignored_pixels_white_and_depth_near_is_bright():
    seg = SegmentationTask(3).visualise({"seg": torch.full((1, 2, 2), 255)})["seg"]
    assert torch.equal(seg, torch.ones(1, 3, 2, 2))
    depth = DepthTask(10.0).visualise({"depth": torch.tensor([[[[0.0, 5.0, 10.0]]]])})["depth"]
    # 0 m is "no data" (black); 5 m is half-way grey; 10 m (the far limit) is black too.
    assert depth[0, :, 0, :].tolist() == [[-1.0, 0.0, -1.0]] * 3


def test_baseline_figure_has_three_columns():
    columns = {"input": torch.zeros(1, 3, 4, 4), "seg truth": torch.zeros(1, 3, 4, 4),
               "seg prediction": torch.zeros(1, 3, 4, 4)}
    figure = regeneration_figure(columns, scale=1)
    assert figure.width % 3 == 0 and figure.height == HEADER_PX + figure.width // 3
