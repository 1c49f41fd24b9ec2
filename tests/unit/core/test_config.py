import sys
import types

import pytest

from dejavu_tune.config import ConfigError, TrainConfig


def test_defaults_are_valid_and_round_trip():
    cfg = TrainConfig()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.optim.lr == 0.01 and cfg.optim.poly_power == 2.0  # seed C.1 vanilla strategy
    assert (cfg.dejavu.loss.gamma, cfg.dejavu.loss.gamma1, cfg.dejavu.loss.gamma2) == (1, 1, 0.3)


def test_nested_dict_builds_sections():
    cfg = TrainConfig.from_dict({"dejavu": {"crm": {"kind": "crm_f", "stages": 3}},
                                 "optim": {"epochs": 2}})
    assert cfg.dejavu.crm.kind == "crm_f" and cfg.dejavu.crm.stages == 3
    assert cfg.optim.epochs == 2


@pytest.mark.parametrize("raw, message", [
    ({"dejavu": {"crm": {"stagse": 2}}},
     "dejavu.crm.stagse is not a known key: expected one of kind, stages, steps"),
    ({"dejavu": {"crm": {"stages": 5}}},
     "dejavu.crm.stages=5 is not allowed: expected an integer between 1 and 4"),
    ({"dejavu": {"redaction": {"kind": "blur"}}},
     "dejavu.redaction.kind='blur' is not allowed: expected one of random_blocks, checkerboard"),
    ({"dejavu": {"redaction": {"threshold": 1.5}}},
     "dejavu.redaction.threshold=1.5 is not allowed: expected a finite number in [0.0, 1.0]"),
    ({"optim": {"lr": 0}}, "optim.lr=0 is not allowed: expected a finite number in (0.0, 10.0]"),
    ({"optim": {"epochs": 2.5}}, "optim.epochs=2.5 is not allowed: expected an integer of 1"),
    ({"dejavu": {"loss": {"gamma": float("nan")}}}, "dejavu.loss.gamma=nan is not allowed"),
    ({"dejavu": {"redaction": {"kind": "bandstop", "band_low": 0.6, "band_high": 0.5}}},
     "dejavu.redaction.band_low=0.6 is not allowed: expected a value below "
     "dejavu.redaction.band_high=0.5"),
    ({"model": {"name": "resnet9000"}}, "model.name='resnet9000' is not allowed: expected one of small"),
    ({"device": "tpu"}, "device='tpu' is not allowed"),
    ({"dejavu": "yes"}, "dejavu='yes' is not allowed: expected a mapping"),
    ({"bogus": 1}, "bogus is not a known key"),
])
def test_bad_values_name_key_value_and_allowed(raw, message):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict(raw)
    assert message in str(err.value)


def test_replace_with_dotted_keys():
    cfg = TrainConfig().replace(**{"dejavu.crm.steps": 5, "seed": 3})
    assert cfg.dejavu.crm.steps == 5 and cfg.seed == 3
    with pytest.raises(ConfigError, match="dejavu.crm.nope is not a configuration key"):
        TrainConfig().replace(**{"dejavu.crm.nope": 1})


@pytest.mark.parametrize("override, message", [
    ({"task.name": "panoptic"}, "task.name='panoptic' is not allowed: expected one of "
                                "segmentation, depth, normals, multitask, or 'package.module:"),
    ({"data.name": "cityscapes"}, "data.root=None is not allowed: expected a file or directory"),
    ({"data.name": "voc", "data.root": "/x"}, "data.name='voc' is not allowed: expected one of "
                                              "synthetic, cityscapes, ade20k, nyud, kitti"),
    ({"data.image_width": 96}, "data.image_width=96 is not allowed: expected 0 for the synthetic"),
    ({"model.attention": 48}, "model.attention=48 is not allowed: expected one of 0, 32, 64, 128"),
    ({"optim.name": "lamb"}, "optim.name='lamb' is not allowed: expected one of sgd, adamw"),
    ({"dejavu.loss.ts_encoder": "clip"}, "dejavu.loss.ts_encoder='clip' is not allowed: "
                                         "expected 'package.module:function'"),
])
def test_task_data_model_and_optimiser_keys_are_checked(override, message):
    with pytest.raises(ConfigError) as err:
        TrainConfig().replace(**override)
    assert message in str(err.value)


def test_real_dataset_sizes_and_plugins_validate():
    cfg = TrainConfig().replace(**{"data.name": "kitti", "data.root": "/data/kitti",
                                   "data.image_size": 192, "data.image_width": 640,
                                   "task.name": "depth", "model.name": "pkg.mod:build"})
    assert cfg.data.size == (192, 640) and cfg.model.name == "pkg.mod:build"


def test_a_plug_in_dataset_says_its_class_count_and_gets_its_own_options():
    cfg = TrainConfig.from_dict({"data": {"name": "my.data:splits", "root": "/d",
                                          "num_classes": 11, "options": {"fold": 2}}})
    assert cfg.data.num_classes == 11 and cfg.data.options == {"fold": 2}
    assert cfg.replace(**{"data.options.fold": 3}).data.options == {"fold": 3}
    assert cfg.to_dict()["data"]["options"] == {"fold": 2}  # logged with the configuration
    with pytest.raises(ConfigError, match=r"data.num_classes=11 is not allowed: expected an "
                                          r"integer between 2 and 8"):
        TrainConfig().replace(**{"data.num_classes": 11})  # the synthetic scenes
    with pytest.raises(ConfigError, match=r"data.options=\{'fold': 2\} is not allowed: expected "
                                          r"options only for a plug-in dataset"):
        TrainConfig().replace(**{"data.options": {"fold": 2}})


class _Split(list):
    """The least a plug-in's split must be: indexable, sized, with its targets."""

    targets = ("seg",)
    num_classes = 3


def test_a_plug_in_dataset_is_built_once_per_process_and_configuration(monkeypatch):
    from dejavu_tune.data import factory

    calls = []

    def splits(split, cfg):
        calls.append(split)
        return _Split([split])

    monkeypatch.setitem(sys.modules, "my_data", types.SimpleNamespace(splits=splits))
    factory._plugin.cache_clear()
    cfg = TrainConfig.from_dict({"data": {"name": "my_data:splits", "root": "/d",
                                          "options": {"fold": 1}}}).data
    # it has a held-out split of its own: its val is the search split
    assert factory.build_splits(cfg) == (["train"], ["val"])
    assert factory.build_splits(cfg) == (["train"], ["val"])
    assert factory.build_heldout(cfg) == ["heldout"]
    assert calls == ["heldout", "train", "val"]
    factory.build_splits(TrainConfig.from_dict({"data": {"name": "my_data:splits", "root": "/d",
                                                         "options": {"fold": 2}}}).data)
    assert calls == ["heldout", "train", "val"] * 2  # other options: built again
    factory._plugin.cache_clear()


def test_a_plug_in_without_a_held_out_split_gets_a_search_split_carved_from_train(monkeypatch):
    from dejavu_tune.data import factory

    def splits(split, cfg):
        return None if split == "heldout" else _Split([f"{split}{i}" for i in range(20)])

    monkeypatch.setitem(sys.modules, "my_data", types.SimpleNamespace(splits=splits))
    factory._plugin.cache_clear()
    cfg = TrainConfig.from_dict({"data": {"name": "my_data:splits", "root": "/d"}}).data
    train, search = factory.build_splits(cfg)
    # 10% of 20 training images, chosen by a permutation seeded with data.seed
    assert len(search) == 2 and len(train) == 18
    names = [train[i] for i in range(18)] + [search[i] for i in range(2)]
    assert sorted(names) == sorted(f"train{i}" for i in range(20))  # disjoint, complete
    assert search.num_classes == train.num_classes  # the dataset's own attributes
    assert list(factory.build_heldout(cfg)) == [f"val{i}" for i in range(20)]
    factory._plugin.cache_clear()


def test_every_name_config_allows_has_exactly_one_builder():
    # config owns the names (it validates without importing torch); each layer's table
    # builds them: no name allowed without a builder, no builder unreachable
    from dejavu_tune import config
    from dejavu_tune.data.registry import DATASETS
    from dejavu_tune.models import MODELS
    from dejavu_tune.tasks import TASK_CLASSES, TASKS
    from dejavu_tune.train.trainer import OPTIMIZERS

    assert set(MODELS) == set(config.MODEL_NAMES)
    assert set(OPTIMIZERS) == set(config.OPTIMIZERS)
    assert set(TASKS) == set(TASK_CLASSES) == set(config.TASK_NAMES)
    assert set(DATASETS) | {"synthetic"} == set(config.DATASET_NAMES)  # synthetic: built in


@pytest.mark.parametrize("section,what", [("model", "network"), ("task", "task")])
def test_a_plug_in_network_or_task_gets_its_own_options(section, what):
    cfg = TrainConfig.from_dict({section: {"name": "my.pkg:build", "options": {"depth": 3}}})
    assert getattr(cfg, section).options == {"depth": 3}
    assert cfg.replace(**{f"{section}.options.depth": 5}).to_dict()[section]["options"] == {
        "depth": 5}  # searchable, and logged with the configuration
    with pytest.raises(ConfigError, match=rf"{section}.options=\{{'depth': 3\}} is not allowed: "
                                          rf"expected options only for a plug-in {what} "
                                          rf"\({section}.name: module:function\)"):
        TrainConfig().replace(**{f"{section}.options": {"depth": 3}})
    with pytest.raises(ConfigError, match=rf"{section}.options=3 is not allowed: expected a "
                                          "mapping of names to values"):
        TrainConfig.from_dict({section: {"name": "my.pkg:build", "options": 3}})
