"""The presets hold exactly the supplement's settings (C.1-C.5, METHOD.md's table)."""

from pathlib import Path

import pytest
from dataset_fixtures import FIXTURES

from dejavu_tune.search.space_file import load_space

PRESETS = Path(__file__).resolve().parents[1] / "search_spaces" / "presets"

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
    "coco_panoptic": ("coco_panoptic", "segmentation", "checkerboard", 8, None, "crm_f", 2,
                      1.0, 1.0, 0.1, 0.0),
    "kitti_depth": ("kitti", "depth", "bandstop", 32, None, "crm_f", 2, 1.0, 0.3, 0.03, 0.0),
    "nyud_multitask": ("nyud", "multitask", "bandstop", 32, None, "crm_r", 20,
                       1.0, 1.0, 0.3, 0.0),
}


def test_every_preset_is_checked():
    assert sorted(p.stem for p in PRESETS.glob("*.yaml")) == sorted(SEED)


@pytest.mark.parametrize("name", sorted(SEED))
def test_preset_matches_the_supplement(name, tmp_path):
    dataset, task, kind, b, t, crm, depth, gamma, gamma1, gamma2, cl = SEED[name]
    root = FIXTURES[dataset](tmp_path)
    space = load_space(PRESETS / f"{name}.yaml", {"data.root": str(root)})
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
    assert space.search.baseline  # every comparison is "same network, with and without"


@pytest.mark.parametrize("name", ["cityscapes", "cityscapes_cl", "cityscapes_sa"])
def test_cityscapes_schedule_is_the_vanilla_strategy(name, tmp_path):
    space = load_space(PRESETS / f"{name}.yaml", {"data.root": str(FIXTURES["cityscapes"](tmp_path))})
    opt = space.base_config().optim
    assert (opt.name, opt.lr, opt.poly_power, opt.epochs) == ("sgd", 0.01, 2.0, 175)  # C.1


def test_nyud_runs_the_mtpsl_200_epochs(tmp_path):
    space = load_space(PRESETS / "nyud_multitask.yaml", {"data.root": str(FIXTURES["nyud"](tmp_path))})
    assert space.base_config().optim.epochs == 200  # C.5
    assert space.base_config().model.name == "segnet"


def test_sa_preset_grids_the_three_embedding_dims(tmp_path):
    space = load_space(PRESETS / "cityscapes_sa.yaml",
                       {"data.root": str(FIXTURES["cityscapes"](tmp_path))})
    assert space.grid_points() == [{"model.attention": d} for d in (32, 64, 128)]
    assert space.search.num_samples == 3


def test_a_preset_without_its_dataset_fails_before_ray(tmp_path):
    from dejavu_tune.search.space import SpaceError

    with pytest.raises(SpaceError, match="fixed.data.root: .* does not exist: expected a "
                                         "dataset directory"):
        load_space(PRESETS / "cityscapes.yaml", {"data.root": str(tmp_path / "nowhere")})
