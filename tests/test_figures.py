import numpy as np
import torch

from dejavu_tune.figures import palette, regeneration_figure


def test_palette_is_distinct_and_background_dark():
    colours = palette(5)
    assert colours.shape == (5, 3) and tuple(colours[0]) == (40, 40, 40)
    assert len({tuple(c) for c in colours}) == 5


def test_figure_layout_and_pixels():
    sample = {
        "input": torch.full((2, 3, 8, 8), 1.0),  # white
        "ground_truth": torch.zeros(2, 8, 8, dtype=torch.long),
        "prediction": torch.ones(2, 8, 8, dtype=torch.long),
        "redacted": torch.full((2, 3, 8, 8), -1.0),  # black
        "regenerated": torch.zeros(2, 3, 8, 8),
    }
    image = np.asarray(regeneration_figure(sample, num_classes=3, scale=2))
    header = 14
    assert image.shape == (header + 2 * 8 * 2, 5 * 8 * 2, 3)
    body = image[header:]
    assert (body[:, :16] == 255).all()  # input column
    assert (body[:, 16:32] == (40, 40, 40)).all()  # ground truth = class 0
    assert (body[:, 32:48] == palette(3)[1]).all()  # prediction = class 1
    assert (body[:, 48:64] == 0).all()  # redacted column
    assert (body[:, 64:] == 128).all()  # 0 in [-1, 1] -> mid grey


def test_baseline_figure_has_three_columns():
    sample = {"input": torch.zeros(1, 3, 4, 4), "ground_truth": torch.zeros(1, 4, 4),
              "prediction": torch.zeros(1, 4, 4)}
    assert regeneration_figure(sample, 2, scale=1).size == (12, 14 + 4)
