import math

import pytest
import torch

from dejavu_tune.data import (
    MAX_CLASSES,
    DenseSplit,
    make_synthetic_segmentation,
    synthetic_splits,
)
from dejavu_tune.data.synthetic import MAX_DEPTH, MIN_BG_DEPTH, make_synthetic_scenes


def test_shapes_dtypes_and_ranges():
    images, labels = make_synthetic_segmentation(6, image_size=48, num_classes=5, seed=3)
    assert images.shape == (6, 3, 48, 48) and images.dtype == torch.float32
    assert labels.shape == (6, 48, 48) and labels.dtype == torch.int64
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert labels.min() >= 0 and labels.max() < 5


def test_same_seed_is_bit_identical_and_independent_of_global_rng():
    torch.manual_seed(1)
    a = make_synthetic_segmentation(8, image_size=32, seed=5)
    torch.manual_seed(12345)
    torch.rand(100)  # move the global stream somewhere else entirely
    b = make_synthetic_segmentation(8, image_size=32, seed=5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_generation_leaves_global_rng_untouched():
    state = torch.get_rng_state()
    make_synthetic_segmentation(2, image_size=32)
    assert torch.equal(torch.get_rng_state(), state)


def test_different_seed_differs():
    a_img, a_lab = make_synthetic_segmentation(4, image_size=32, seed=0)
    b_img, b_lab = make_synthetic_segmentation(4, image_size=32, seed=1)
    assert not torch.equal(a_img, b_img)
    assert not torch.equal(a_lab, b_lab)


def test_every_class_appears_in_a_64_image_sample():
    _, labels = make_synthetic_segmentation(64, image_size=64, num_classes=5)
    assert torch.bincount(labels.flatten(), minlength=5).min() > 0


@pytest.mark.parametrize("num_classes", range(2, MAX_CLASSES + 1))
def test_all_supported_class_counts(num_classes):
    images, labels = make_synthetic_segmentation(32, image_size=32, num_classes=num_classes)
    counts = torch.bincount(labels.flatten(), minlength=num_classes)
    assert len(counts) == num_classes and counts.min() > 0
    assert images.min() >= -1.0 and images.max() <= 1.0


def test_noise_is_gaussian_with_the_given_std_and_leaves_labels_alone():
    clean, clean_labels = make_synthetic_segmentation(8, image_size=32, noise=0.0)
    noisy, noisy_labels = make_synthetic_segmentation(8, image_size=32, noise=0.1)
    assert torch.equal(clean_labels, noisy_labels)
    inside = clean.abs() < 0.6  # far from the clamp at +-1
    diff = (noisy - clean)[inside]
    assert diff.std().item() == pytest.approx(0.1, rel=0.05)
    assert abs(diff.mean().item()) < 0.01


def test_splits_are_deterministic_and_val_never_repeats_train():
    train, val = synthetic_splits(32, 16, image_size=32, seed=0)
    assert isinstance(train, DenseSplit) and len(train) == 32 and len(val) == 16
    again_train, again_val = synthetic_splits(32, 16, image_size=32, seed=0)
    assert torch.equal(train.images, again_train.images)
    assert torch.equal(val.labels, again_val.labels)
    same = (val.images[:, None] == train.images[None]).flatten(2).all(-1)  # (val, train)
    assert not same.any()
    # The next seed's train split is not this seed's val split (derived seeds are mixed).
    next_train, _ = synthetic_splits(16, 1, image_size=32, seed=1)
    assert not torch.equal(next_train.images, val.images)


def test_split_is_frozen():
    train, _ = synthetic_splits(2, 1, image_size=16)
    with pytest.raises(AttributeError):
        train.images = torch.zeros(1)  # type: ignore[misc]


@pytest.mark.parametrize("kwargs, message", [
    ({"num_classes": 1}, "num_classes=1 is not allowed: expected an integer between 2 and 8"),
    ({"num_classes": 9}, "num_classes=9 is not allowed: expected an integer between 2 and 8"),
    ({"num_classes": True}, "num_classes=True is not allowed"),
    ({"num_images": 0}, "num_images=0 is not allowed: expected an integer of 1 or more"),
    ({"num_images": 2.5}, "num_images=2.5 is not allowed: expected an integer of 1 or more"),
    ({"image_size": 8}, "image_size=8 is not allowed: expected an integer between 16 and 4096"),
    ({"seed": -1}, "seed=-1 is not allowed: expected an integer between 0 and "),
    ({"noise": -0.1}, "noise=-0.1 is not allowed: expected a finite number in [0.0, 2.0]"),
    ({"noise": math.nan}, "noise=nan is not allowed: expected a finite number in [0.0, 2.0]"),
])
def test_bad_arguments_name_argument_value_and_allowed(kwargs, message):
    args = {"num_images": 2, **kwargs}
    with pytest.raises(ValueError) as info:
        make_synthetic_segmentation(**args)
    assert message in str(info.value)


@pytest.mark.parametrize("num_train, num_val, message", [
    (0, 4, "num_train=0 is not allowed: expected an integer of 1 or more"),
    (4, 0, "num_val=0 is not allowed: expected an integer of 1 or more"),
])
def test_bad_split_sizes(num_train, num_val, message):
    with pytest.raises(ValueError) as info:
        synthetic_splits(num_train, num_val)
    assert message in str(info.value)


def test_scenes_have_metric_depth_and_unit_normals():
    scenes = make_synthetic_scenes(16, image_size=32, seed=4)
    depth, normals, seg = scenes["depth"], scenes["normals"], scenes["seg"]
    assert depth.shape == (16, 1, 32, 32) and normals.shape == (16, 3, 32, 32)
    assert depth.min() > 1.0 and depth.max() <= MAX_DEPTH
    assert torch.allclose(normals.norm(dim=1), torch.ones(16, 32, 32), atol=1e-6)
    assert normals[:, 2].min() > 0  # every surface faces the camera
    # Every shape is in front of the background, which starts at MIN_BG_DEPTH.
    shapes = (seg > 0).unsqueeze(1)
    assert depth[shapes].max() < MIN_BG_DEPTH <= depth[~shapes].min()
    again = make_synthetic_scenes(16, image_size=32, seed=4)
    assert all(torch.equal(scenes[k], again[k]) for k in scenes)


def test_background_normal_follows_its_depth_gradient():
    size = 32
    scenes = make_synthetic_scenes(4, image_size=size, seed=1)
    depth, normals, seg = scenes["depth"][:, 0], scenes["normals"], scenes["seg"]
    for i in range(4):
        # two vertically adjacent background pixels: dz/dy in image units = -slope, and the
        # normal is normalise(-dz/dx, -dz/dy, 1) = normalise(0, slope, 1)
        rows, cols = torch.nonzero((seg[i, :-1] == 0) & (seg[i, 1:] == 0), as_tuple=True)
        y, x = int(rows[0]), int(cols[0])
        dz_dy = float(depth[i, y + 1, x] - depth[i, y, x]) * size
        n = normals[i, :, y, x]
        assert float(n[0]) == 0.0
        assert float(n[1] / n[2]) == pytest.approx(-dz_dy, rel=1e-4)
