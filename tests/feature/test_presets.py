"""The presets hold exactly the supplement's settings (C.1-C.5, METHOD.md's table) on the
baseline's own strategy: its initialisation, its schedule and its budget."""

import math
import re
from pathlib import Path

import pytest
import torch
from helpers.datasets import FIXTURES

from dejavu_tune.config import ConfigError, TrainConfig
from dejavu_tune.search.space import SpaceError
from dejavu_tune.search.space_file import load_space
from dejavu_tune.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ROOT / "search_spaces" / "presets"

# preset: (dataset, task, redaction kind, b, t or None, CRM kind, stages/steps, gamma, gamma1,
#          gamma2, cl weight); from the supplement's C.1-C.5
SEED = {
    "cityscapes": ("cityscapes", "segmentation", "random_blocks", 32, 0.4, "crm_r", 20,
                   1.0, 1.0, 0.3, 0.0),
    "cityscapes_cl": ("cityscapes", "segmentation", "random_blocks", 32, 0.4, "crm_r", 20,
                      1.0, 1.0, 0.3, 0.1),
    "cityscapes_sa": ("cityscapes", "segmentation", "bandstop", 32, None, "crm_r", 20,
                      1.0, 1.0, 0.3, 0.0),
    "ade20k": ("ade20k", "segmentation", "random_blocks", 32, 0.4, "crm_r", 20,
               1.0, 1.0, 0.3, 0.0),
    "ade20k_vit": ("ade20k", "segmentation", "random_blocks", 32, 0.4, "crm_r", 20,
                   1.0, 1.0, 0.3, 0.0),
    "coco_panoptic": ("coco_panoptic", "segmentation", "checkerboard", 8, None, "crm_f", 2,
                      1.0, 1.0, 0.1, 0.0),
    "kitti_depth": ("kitti", "depth", "bandstop", 32, None, "crm_f", 2, 1.0, 0.3, 0.03, 0.0),
    "nyud_multitask": ("nyud", "multitask", "bandstop", 32, None, "crm_r", 20,
                       1.0, 1.0, 0.3, 0.0),
}
# the baseline recipes that start from ImageNet weights (C.1 enhanced strategy, the
# mmsegmentation/Mask2Former configs, monodepth2's default): the preset names a file
DATASET_OF = {name: row[0] for name, row in SEED.items()}
PRETRAINED = {"cityscapes", "cityscapes_sa", "ade20k", "ade20k_vit", "coco_panoptic",
              "kitti_depth"}
# preset: (seed's iterations, batch size, training images of the full dataset)
ITERATION_BUDGETS = {"ade20k": (40_000, 32, 20_210), "ade20k_vit": (80_000, 16, 20_210),
                     "coco_panoptic": (160_000, 16, 118_287)}


def _load(name: str, tmp_path: Path, weights: bool = True, **overrides):
    root = FIXTURES[DATASET_OF[name]](tmp_path / "data")
    overrides = {"data.root": str(root), **overrides}
    if weights and name in PRETRAINED:
        path = tmp_path / "imagenet.pth"
        torch.save({}, path)  # only its existence is checked before Ray starts
        overrides["model.pretrained"] = str(path)
    return load_space(PRESETS / f"{name}.yaml", overrides)


def test_every_preset_is_checked():
    assert sorted(p.stem for p in PRESETS.glob("*.yaml")) == sorted(SEED)


@pytest.mark.parametrize("name", sorted(SEED))
def test_preset_matches_the_supplement(name, tmp_path):
    dataset, task, kind, b, t, crm, depth, gamma, gamma1, gamma2, cl = SEED[name]
    space = _load(name, tmp_path)
    cfg = space.base_config()
    dv = cfg.dejavu
    assert (cfg.data.name, cfg.task.name) == (dataset, task)
    assert (dv.redaction.kind, dv.redaction.block_size) == (kind, b)
    if t is not None:
        assert dv.redaction.threshold == t
    assert dv.crm.kind == crm
    assert (dv.crm.stages if crm == "crm_f" else dv.crm.steps) == depth
    assert (dv.loss.gamma, dv.loss.gamma1, dv.loss.gamma2, dv.loss.cl_weight) == (
        gamma, gamma1, gamma2, cl)
    # every comparison is "same network, with and without": a baseline run, or grid rows
    grid_rows = space.search.algorithm == "grid" and any(
        p.get("dejavu.enabled") is False for p in space.grid_points())
    assert space.search.baseline or grid_rows


@pytest.mark.parametrize("name", sorted(SEED))
def test_imagenet_initialisation_where_the_baseline_has_it(name, tmp_path):
    if name not in PRETRAINED:  # vanilla strategy (B.1) and MTPSL's SegNet: random init
        assert _load(name, tmp_path, weights=False).base_config().model.pretrained is None
        return
    with pytest.raises(SpaceError, match=r"fixed.model.pretrained: 'weights/.*\.pth' does not "
                                         "exist: expected a weights file"):
        _load(name, tmp_path, weights=False)
    # the vanilla strategy stays one override away
    assert _load(name, tmp_path, weights=False, **{"model.pretrained": None}
                 ).base_config().model.pretrained is None


@pytest.mark.parametrize("name", ["cityscapes", "cityscapes_cl", "cityscapes_sa"])
def test_cityscapes_schedule_is_c1s(name, tmp_path):
    opt = _load(name, tmp_path).base_config().optim
    assert (opt.name, opt.lr, opt.poly_power, opt.epochs) == ("sgd", 0.01, 2.0, 175)  # C.1
    assert opt.iterations is None


@pytest.mark.parametrize("name", sorted(ITERATION_BUDGETS))
def test_iteration_budgets_are_the_seeds(name, tmp_path):
    iterations, batch, images = ITERATION_BUDGETS[name]
    opt = _load(name, tmp_path).base_config().optim
    assert (opt.iterations, opt.batch_size) == (iterations, batch)
    per_epoch = images // batch  # the trainer drops the last partial batch
    assert opt.epochs == math.ceil(iterations / per_epoch)
    assert opt.total_iterations(per_epoch) == iterations
    assert {"ade20k": 64, "ade20k_vit": 64, "coco_panoptic": 22}[name] == opt.epochs


# preset: GPUs per trial (the seed's A100s of C.1-C.3; one GPU where it names none)
SEED_GPUS = {"cityscapes": 4, "cityscapes_cl": 4, "cityscapes_sa": 4, "coco_panoptic": 4,
             "ade20k": 2, "ade20k_vit": 2, "kitti_depth": 1, "nyud_multitask": 1}


@pytest.mark.parametrize("name", sorted(SEED))
def test_a_trial_runs_on_the_seeds_gpus_with_its_global_batch(name, tmp_path):
    space = _load(name, tmp_path)
    resources, batch = space.resources, space.base_config().optim.batch_size
    assert (resources.gpu, resources.ranks) == (SEED_GPUS[name], SEED_GPUS[name])
    assert batch % resources.ranks == 0 and resources.per_rank[1] == 1
    assert resources.one_rank().gpu == 1  # the CRM stage's pre-training: one GPU
    # --gpus-per-trial 1: one process trains the same global batch
    one = _load(name, tmp_path, **{"resources.gpu": 1})
    assert one.resources.ranks == 1 and one.base_config().optim.batch_size == batch


def test_the_dry_run_says_how_a_trial_splits_into_ranks(tmp_path):
    from dejavu_tune.search.cli import describe

    text = describe(_load("cityscapes", tmp_path))
    assert ("resources per trial: 16 CPU, 4 GPU, as 4 data-parallel ranks of 4 CPU, 1 GPU "
            "each (global batch 8, 2 per rank; CRM pre-training on one rank's share)") in text
    assert "data-parallel" not in describe(_load("kitti_depth", tmp_path))

def test_nyud_runs_the_mtpsl_200_epochs(tmp_path):
    cfg = _load("nyud_multitask", tmp_path).base_config()
    assert cfg.optim.epochs == 200  # C.5
    assert cfg.model.name == "segnet"


def test_sa_preset_grids_figure_8_with_capacity_matched_baselines(tmp_path):
    space = _load("cityscapes_sa", tmp_path)
    points = space.grid_points()
    assert points == [{"dejavu.enabled": False, "model.name": n}
                      for n in ("hrnet_w18", "hrnet_w19", "hrnet_w20")] + [
                     {"dejavu.enabled": True, "model.attention": d} for d in (32, 64, 128)]
    assert space.search.num_samples == 6 and space.search.baseline is False
    for point in points:
        cfg = space.trial_config(point)
        if point["dejavu.enabled"]:  # HRNet18-DejaVu-SA
            assert (cfg.model.name, cfg.dejavu.redaction.kind) == ("hrnet_w18", "bandstop")
            assert cfg.model.attention == point["model.attention"]
        else:  # a base network: no SA block, no DejaVu
            assert cfg.model.attention == 0 and not cfg.dejavu.enabled
        assert cfg.model.pretrained == str(tmp_path / "imagenet.pth")  # enhanced: every point


def test_a_preset_without_its_dataset_fails_before_ray(tmp_path):
    with pytest.raises(SpaceError, match="fixed.data.root: .* does not exist: expected a "
                                         "dataset directory"):
        load_space(PRESETS / "cityscapes.yaml", {"data.root": str(tmp_path / "nowhere")})


def _tiny(**optim) -> TrainConfig:
    # 40 images at batch 8: 5 iterations per epoch
    return TrainConfig.from_dict({
        "data": {"image_size": 32, "num_train": 40, "num_val": 8},
        "model": {"width": 4}, "dejavu": {"enabled": False},
        "optim": {"batch_size": 8, "lr": 0.01, "poly_power": 2.0, **optim}})


def test_an_iteration_budget_trains_exactly_n_iterations():
    trainer = Trainer(_tiny(iterations=12, epochs=3))
    assert (trainer.iters_per_epoch, trainer.total_iterations) == (5, 12)
    seen = []
    for metrics in trainer.epochs():
        seen.append((trainer.iteration, metrics["lr"]))
    # lr after k steps = 0.01 * (1 - k / 12) ** 2: the poly schedule spans the 12 iterations
    assert [k for k, _ in seen] == [5, 10, 12]  # the last epoch stops after 2
    assert [lr for _, lr in seen] == pytest.approx([0.01 * (7 / 12) ** 2, 0.01 * (2 / 12) ** 2,
                                                    0.0], abs=1e-12)
    assert trainer.scheduler.last_epoch == 12


def test_without_a_budget_every_epoch_runs_in_full():
    trainer = Trainer(_tiny(epochs=2))
    assert trainer.total_iterations == 10
    assert [m["lr"] for m in trainer.epochs()] == pytest.approx([0.01 * 0.5 ** 2, 0.0])
    assert trainer.iteration == 10


def test_an_iteration_budget_names_the_epochs_it_takes():
    with pytest.raises(ConfigError, match=r"optim.epochs=4 is not allowed: expected 3 with "
                                          r"optim.iterations=12 at 5 iterations per epoch"):
        Trainer(_tiny(iterations=12, epochs=4))
    with pytest.raises(ConfigError, match="optim.iterations=0 is not allowed: expected an "
                                          "integer of 1 or more"):
        _tiny(iterations=0)


def test_readme_says_where_every_preset_differs_from_the_seed():
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Presets and where they differ from the seed\n(.*?)(?=^## )", text,
                      flags=re.S | re.M)
    assert match, "README.md has no section 'Presets and where they differ from the seed'"
    section = match.group(1)
    missing = [p.stem for p in sorted(PRESETS.glob("*.yaml"))
               if not re.search(rf"^\| `{p.stem}` \|", section, flags=re.M)]
    assert not missing, f"README.md's preset table has no row for {missing}"
