import numpy as np
import torch

from dejavu_tune.figures import palette, regeneration_figure
from dejavu_tune.tasks import DepthTask, SegmentationTask


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
    header = 14
    assert image.shape == (header + 2 * 8 * 2, 5 * 8 * 2, 3)
    body = image[header:]
    assert (body[:, :16] == 255).all()  # input column
    assert (body[:, 16:32] == (40, 40, 40)).all()  # ground truth = class 0
    assert (body[:, 32:48] == palette(3)[1]).all()  # prediction = class 1
    assert (body[:, 48:64] == 0).all()  # redacted column
    assert (body[:, 64:] == 128).all()  # 0 in [-1, 1] -> mid grey


def test_ignored_pixels_white_and_depth_near_is_bright():
    seg = SegmentationTask(3).visualise({"seg": torch.full((1, 2, 2), 255)})["seg"]
    assert torch.equal(seg, torch.ones(1, 3, 2, 2))
    depth = DepthTask(10.0).visualise({"depth": torch.tensor([[[[0.0, 5.0, 10.0]]]])})["depth"]
    # 0 m is "no data" (black); 5 m is half-way grey; 10 m (the far limit) is black too.
    assert depth[0, :, 0, :].tolist() == [[-1.0, 0.0, -1.0]] * 3


def test_baseline_figure_has_three_columns():
    columns = {"input": torch.zeros(1, 3, 4, 4), "seg truth": torch.zeros(1, 3, 4, 4),
               "seg prediction": torch.zeros(1, 3, 4, 4)}
    assert regeneration_figure(columns, scale=1).size == (12, 14 + 4)
