"""The real-format readers on tiny fixtures written in each dataset's own layout."""


import numpy as np
import pytest
import torch
from helpers.datasets import (
    CITY_TRAIN_IDS,
    DRIVE,
    FIXTURES,
    H,
    W,
    columns,
    write_ade20k,
    write_cityscapes,
    write_coco,
    write_kitti,
    write_nyud,
    write_png,
)

from dejavu_tune.data.ade20k import ADE20K, ADE20K_CLASSES
from dejavu_tune.data.cityscapes import Cityscapes
from dejavu_tune.data.coco_panoptic import COCOPanoptic
from dejavu_tune.data.files import DatasetError
from dejavu_tune.data.kitti import KITTIDepth
from dejavu_tune.data.nyud import NYUD
from dejavu_tune.data.registry import DATASETS, check_dataset, open_dataset

# ---------------------------------------------------------------- Cityscapes





def test_cityscapes_reads_sorted_samples_and_maps_label_ids(tmp_path):
    ds = Cityscapes(write_cityscapes(tmp_path), "train", (H, W))
    assert len(ds) == 3 and ds.targets == ("seg",) and ds.num_classes == 19
    assert ds.class_names[0] == "road" and ds.class_names[13] == "car" and ds.max_depth == 0
    assert [s[0].name[:20] for s in ds.samples] == [
        "aachen_000000_000019", "aachen_000001_000019", "bochum_000000_000313"]
    first, second = ds[0], ds[1]
    assert set(first) == {"image", "seg"}
    assert first["image"].shape == (3, H, W) and first["image"].dtype == torch.float32
    assert torch.all(first["image"] == -1.0) and torch.all(ds[2]["image"] == 1.0)
    assert torch.allclose(second["image"], torch.full((3, H, W), 51 / 127.5 - 1))
    assert first["seg"].dtype == torch.int64
    assert first["seg"][0].tolist() == list(np.repeat(CITY_TRAIN_IDS, 2))


def test_cityscapes_resize_and_limit(tmp_path):
    ds = Cityscapes(write_cityscapes(tmp_path), "train", (4, 8), limit=2)
    assert len(ds) == 2
    sample = ds[1]
    assert sample["image"].shape == (3, 4, 8) and sample["seg"].shape == (4, 8)
    assert torch.allclose(sample["image"], torch.full((3, 4, 8), 51 / 127.5 - 1), atol=1e-6)
    assert sample["seg"][3].tolist() == CITY_TRAIN_IDS  # nearest: no blended ids
    assert len(Cityscapes(tmp_path, "val", (4, 8))) == 1


def test_cityscapes_layout_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"cityscapes: .*leftImg8bit/train does not exist: "
                       r"expected root to contain leftImg8bit/ and gtFine/ \(Cityscapes"):
        check_dataset("cityscapes", tmp_path, "train")
    with pytest.raises(DatasetError, match=r"nowhere does not exist"):
        check_dataset("cityscapes", tmp_path / "nowhere", "train")
    write_cityscapes(tmp_path)
    check_dataset("cityscapes", tmp_path, "val")
    (tmp_path / "gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_labelIds.png").unlink()
    with pytest.raises(DatasetError, match=r"frankfurt_000000_000294_leftImg8bit.png has no "
                       r"label: expected .*frankfurt_000000_000294_gtFine_labelIds.png"):
        check_dataset("cityscapes", tmp_path, "val")
    (tmp_path / "leftImg8bit/val/frankfurt/frankfurt_000000_000294_leftImg8bit.png").unlink()
    with pytest.raises(DatasetError, match=r"no val samples found under"):
        Cityscapes(tmp_path, "val", (H, W))
    with pytest.raises(DatasetError, match=r"split='test' is not allowed"):
        Cityscapes(tmp_path, "test", (H, W))


def test_cityscapes_undecodable_image_and_bad_label(tmp_path):
    write_cityscapes(tmp_path)
    image = tmp_path / "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png"
    image.write_bytes(b"not a png at all")
    label = tmp_path / "gtFine/train/aachen/aachen_000001_000019_gtFine_labelIds.png"
    write_png(label, columns([7, 40, 7, 34, 7, 7, 7, 7]))
    ds = Cityscapes(tmp_path, "train", (H, W))  # indexing does not decode
    with pytest.raises(DatasetError, match=r"aachen_000000_000019_leftImg8bit.png: cannot be "
                       r"decoded .*expected an RGB image"):
        ds[0]
    with pytest.raises(DatasetError, match=r"aachen_000001_000019_gtFine_labelIds.png: label "
                       r"ids \[34, 40\] are out of range: expected ids that map to 0..18 or 255"):
        ds[1]
    with pytest.raises(IndexError):
        ds[3]


# ---------------------------------------------------------------- ADE20K



def test_ade20k_maps_other_to_ignore_and_shifts_ids(tmp_path):
    write_ade20k(tmp_path)
    assert len(ADE20K_CLASSES) == 150 and ADE20K_CLASSES[0] == "wall"
    for root in (tmp_path, tmp_path / "ADEChallengeData2016"):
        ds = ADE20K(root, "train", (4, 8))
        assert len(ds) == 2 and ds.num_classes == 150 and ds.targets == ("seg",)
        assert ds.samples[0][0].name == "ADE_train_00000001.jpg"
        sample = ds[0]
        assert sample["image"].shape == (3, 4, 8)
        assert (sample["image"] - (128 / 127.5 - 1)).abs().max() < 0.03  # JPEG is lossy
        assert sample["seg"][0].tolist() == [255, 0, 149, 1, 255, 255, 255, 255]
    assert len(ADE20K(tmp_path, "val", (H, W))) == 1
    check_dataset("ade20k", tmp_path, "val")


def test_ade20k_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"ade20k: .*ADEChallengeData2016 does not exist"):
        ADE20K(tmp_path, "train", (H, W))
    write_ade20k(tmp_path)
    write_png(tmp_path / "ADEChallengeData2016/annotations/training/ADE_train_00000001.png",
           columns([0, 151, 1, 1, 1, 1, 1, 200]))
    with pytest.raises(DatasetError, match=r"ADE_train_00000001.png: label ids \[151, 200\] "
                       r"are out of range: expected ids that map to 0..149 or 255"):
        ADE20K(tmp_path, "train", (H, W))[0]
    (tmp_path / "ADEChallengeData2016/annotations/validation/ADE_val_00000001.png").unlink()
    with pytest.raises(DatasetError, match=r"ADE_val_00000001.jpg has no annotation"):
        check_dataset("ade20k", tmp_path, "val")


# ---------------------------------------------------------------- NYUD-v2





def test_nyud_reads_all_targets_in_numeric_order(tmp_path):
    ds = NYUD(write_nyud(tmp_path), "train", (H, W))
    assert ds.targets == ("seg", "depth", "normals") and ds.num_classes == 13
    assert ds.max_depth == 10.0 and ds.class_names[-1] == "window"
    assert [s[0].name for s in ds.samples] == ["0.npy", "1.npy", "10.npy"]
    sample = ds[1]
    assert sample["image"][:, :, 0].unique().tolist() == [-1.0]
    assert sample["image"][:, :, -1].unique().tolist() == [1.0]
    assert sample["seg"][0, :3].tolist() == [255, 255, 12] and sample["seg"].dtype == torch.int64
    assert sample["depth"].shape == (1, H, W) and sample["depth"][0, 0, :3].tolist() == [0, 0, 3.25]
    assert sample["normals"][:, 0, 1].tolist() == [0, 0, 0]
    assert sample["normals"][:, 0, 2].tolist() == [0, 0, 1.0]
    assert ds[2]["seg"][0, 5].item() == 5


def test_nyud_resize(tmp_path):
    sample = NYUD(write_nyud(tmp_path), "val", (4, 8))[0]
    assert sample["image"].shape == (3, 4, 8) and sample["seg"].shape == (4, 8)
    assert sample["depth"].shape == (1, 4, 8) and sample["normals"].shape == (3, 4, 8)
    assert sample["seg"][0].tolist() == [255] + [3] * 7
    assert sample["depth"][0, 0].tolist() == [0.0] + [3.25] * 7
    assert sample["normals"][:, 0, 0].tolist() == [0, 0, 0]
    assert torch.allclose(sample["normals"][:, :, 1:].norm(dim=0), torch.ones(4, 7))


def test_nyud_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"nyud: .*train does not exist: expected root to "
                       r"contain train/ and val/"):
        check_dataset("nyud", tmp_path, "train")
    write_nyud(tmp_path)
    np.save(tmp_path / "train/label/0.npy", np.full((H, W), 13.0, dtype=np.float32))
    with pytest.raises(DatasetError, match=r"0.npy: label ids \[13\] are out of range"):
        NYUD(tmp_path, "train", (H, W))[0]
    (tmp_path / "train/image/1.npy").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"1.npy: cannot be read as a NumPy array"):
        NYUD(tmp_path, "train", (H, W))[1]
    (tmp_path / "val/depth/0.npy").unlink()
    with pytest.raises(DatasetError, match=r"image/0.npy has no depth: expected .*depth/0.npy"):
        check_dataset("nyud", tmp_path, "val")


# ---------------------------------------------------------------- KITTI depth





def test_kitti_reads_depth_in_metres(tmp_path):
    ds = KITTIDepth(write_kitti(tmp_path), "train", (H, W))
    assert ds.targets == ("depth",) and ds.num_classes == 0 and ds.max_depth == 80.0
    assert [s[1].name for s in ds.samples] == ["0000000005.png", "0000000006.png"]
    sample = ds[0]
    assert set(sample) == {"image", "depth"}
    assert sample["depth"].shape == (1, H, W) and sample["depth"].dtype == torch.float32
    assert sample["depth"][0, 1, 0].item() == 0.0 and sample["depth"][0, 1, -1].item() == 5.5
    assert sample["depth"][0, 0, -1].item() == 65535 / 256
    small = KITTIDepth(tmp_path, "val", (4, 8))[0]
    assert small["image"].shape == (3, 4, 8)
    assert small["depth"][0, 1].tolist() == [0.0] * 4 + [5.5] * 4


def test_kitti_errors(tmp_path):
    write_kitti(tmp_path)
    gt = (tmp_path / "data_depth_annotated/train" / DRIVE /
          "proj_depth/groundtruth/image_02/0000000005.png")
    write_png(gt, np.zeros((H, W), dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"0000000005.png: depth image has mode 'L': "
                       r"expected a 16-bit"):
        KITTIDepth(tmp_path, "train", (H, W))[0]
    (tmp_path / "raw" / DRIVE[:10] / DRIVE / "image_02/data/0000000005.png").unlink()
    with pytest.raises(DatasetError, match=r"0000000005.png has no RGB frame: expected "
                       r".*raw/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/"):
        check_dataset("kitti", tmp_path, "val")


# ---------------------------------------------------------------- COCO panoptic





def test_coco_panoptic_maps_segments_to_contiguous_categories(tmp_path):
    ds = COCOPanoptic(write_coco(tmp_path), "val", (H, W))
    assert len(ds) == 2 and ds.num_classes == 3
    assert ds.class_names == ("person", "cat", "tree-merged")
    assert ds.samples[0][1].name == "000000000001.png"
    sample = ds[0]
    assert sample["seg"][0].tolist() == [255, 255, 1, 1, 2, 2, 0, 0] + [255] * 8
    assert (sample["image"] - 1.0).abs().max() < 0.03
    assert COCOPanoptic(tmp_path, "train", (4, 8), limit=1)[0]["seg"].shape == (4, 8)
    check_dataset("coco_panoptic", tmp_path, "train")


def test_coco_panoptic_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"panoptic_val2017.json does not exist"):
        check_dataset("coco_panoptic", tmp_path, "val")
    write_coco(tmp_path, extra_segment=9)
    with pytest.raises(DatasetError, match=r"000000000002.png: segment ids \[9\] are not in "
                       r"its segments_info"):
        COCOPanoptic(tmp_path, "val", (H, W))[1]
    (tmp_path / "annotations/panoptic_val2017.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"panoptic_val2017.json: cannot be read as JSON"):
        COCOPanoptic(tmp_path, "val", (H, W))


# ---------------------------------------------------------------- registry

def test_registry_opens_every_format(tmp_path):
    builders = FIXTURES
    assert set(DATASETS) == set(builders)
    for name, build in builders.items():
        root = build(tmp_path / name)
        check_dataset(name, root, "train")
        ds = open_dataset(name, str(root), "val", (4, 8), limit=1)
        assert isinstance(ds, DATASETS[name]) and len(ds) == 1
        sample = ds[0]
        assert sample["image"].shape == (3, 4, 8)
        assert set(sample) == {"image", *ds.targets}


def test_registry_rejects_unknown_names_and_missing_root(tmp_path):
    with pytest.raises(DatasetError, match=r"data.name='voc' is not a known dataset: expected "
                       r"one of ade20k, cityscapes, coco_panoptic, kitti, nyud"):
        open_dataset("voc", tmp_path, "train", (4, 8))
    with pytest.raises(DatasetError, match=r"kitti: data.root is not set"):
        check_dataset("kitti", None, "train")
    with pytest.raises(DatasetError, match=r"size=\(4,\) is not allowed"):
        open_dataset("kitti", write_kitti(tmp_path), "train", (4,))


def test_the_synthetic_held_out_split_is_a_third_stream_of_the_same_seed():
    from dejavu_tune.data import synthetic_splits
    from dejavu_tune.data.synthetic import synthetic_heldout

    train, val = synthetic_splits(16, 8, image_size=32, seed=3)
    heldout = synthetic_heldout(8, image_size=32, seed=3)
    assert len(heldout) == 8 and heldout.num_classes == val.num_classes
    # its own scenes: no image equals a training or validation (search split) image
    for other in (train.images, val.images):
        assert not (heldout.images[:, None] == other[None]).flatten(2).all(-1).any()
    again = synthetic_heldout.__wrapped__(8, image_size=32, seed=3)  # not from the cache
    assert torch.equal(again.images, heldout.images)  # deterministic
