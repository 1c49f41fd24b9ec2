"""Each run's datasets for MLflow: names, roles, sizes and digests that change exactly
when the images do."""

from helpers.datasets import write_cityscapes

from dejavu_tune.config import DataConfig
from dejavu_tune.data import lineage
from dejavu_tune.data.factory import build_splits


def test_the_synthetic_splits_are_named_by_their_role_and_digested_by_their_settings():
    cfg = DataConfig(num_train=8, num_val=4, image_size=32)
    train, search = build_splits(cfg)
    infos = lineage.describe(cfg, train, search)
    assert [(d.name, d.context, d.images, d.source_type) for d in infos] == [
        ("synthetic train", "training", 8, "code"), ("synthetic val", "search", 4, "code")]
    # the confirmation's runs read the held-out split too
    held = lineage.describe(DataConfig(num_train=8, num_val=4, image_size=32, heldout=True),
                            train, search)
    assert [d.context for d in held] == ["training", "search", "held-out"]
    assert held[:2] == infos
    # another seed is other images: another digest; the same settings, the same digest
    other = lineage.describe(DataConfig(num_train=8, num_val=4, image_size=32, seed=1),
                             train, search)
    assert all(a.digest != b.digest for a, b in zip(infos, other, strict=True))
    assert lineage.describe(cfg, train, search) == infos
    assert all(len(d.digest) == 16 for d in infos)


def test_a_file_dataset_is_digested_by_the_files_each_split_holds(tmp_path):
    root = write_cityscapes(tmp_path / "city")
    cfg = DataConfig(name="cityscapes", root=str(root), image_size=16, num_classes=19,
                     heldout=True)
    train, search = build_splits(cfg)
    infos = lineage.describe(cfg, train, search)
    # 3 train images: 2 to train on, 1 carved out as the search split; val is held out
    assert [(d.name, d.context, d.images, d.source) for d in infos] == [
        ("cityscapes train", "training", 2, str(root)),
        ("cityscapes train", "search", 1, str(root)),
        ("cityscapes val", "held-out", 1, str(root))]
    assert len({d.digest for d in infos}) == 3
    # the same files under another root: the same digests (paths relative to the root)
    moved = write_cityscapes(tmp_path / "copy")
    cfg2 = DataConfig(name="cityscapes", root=str(moved), image_size=16, num_classes=19,
                      heldout=True)
    assert [d.digest for d in lineage.describe(cfg2, *build_splits(cfg2))] == [
        d.digest for d in infos]
