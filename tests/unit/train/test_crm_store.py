"""Stored CRM weights: what makes two pre-trainings differ, which weights a trial starts
from, the checks on loading them, and a real pre-training into the store."""

import json

import pytest
import torch
from PIL import Image

from dejavu_tune.config import CRMConfig, TrainConfig
from dejavu_tune.method.crm import CRMWeightsError, build_crm, intended_use, save_crm
from dejavu_tune.search.crm_stage import MAX_SPECS, plan_for, specs
from dejavu_tune.search.space import SpaceError
from dejavu_tune.search.space_file import load_space, parse_space
from dejavu_tune.train.crm_store import CRMPlan, PretrainSettings

DEFAULT = "search_spaces/default.yaml"


def _cfg(**overrides):
    return TrainConfig().replace(**overrides)


def test_the_key_follows_what_changes_the_weights_and_nothing_else(tmp_path):
    plan = CRMPlan(store=str(tmp_path))
    key = plan.spec(_cfg()).key
    assert plan.spec(_cfg()).key == key  # stable
    # the trial's own seed, loss weights, learning rate and condition style: same weights
    for same in ({"seed": 7}, {"dejavu.loss.gamma": 0.1}, {"optim.lr": 0.1},
                 {"dejavu.crm.condition": "onehot"}):
        assert plan.spec(_cfg(**same)).key == key, same
    # the architecture, the data and the task: other weights
    for other in ({"dejavu.crm.steps": 4}, {"dejavu.crm.width": 16}, {"data.num_classes": 4},
                  {"data.image_size": 48}, {"task.name": "depth"}):
        assert plan.spec(_cfg(**other)).key != key, other
    # DejaVu off, a CRM from scratch, or weights given explicitly: no stored weights
    for none in ({"dejavu.enabled": False}, {"dejavu.crm.init": "scratch"},
                 {"dejavu.crm.weights": "given.pt"}):
        assert plan.spec(_cfg(**none)) is None, none


def test_a_mixture_covers_every_kind_and_per_kind_splits_them(tmp_path):
    pool = ({"kind": "checkerboard", "block_size": 8, "threshold": 0.4, "fill": 0.0,
             "cutoff": 0.25, "band_low": 0.1, "band_high": 0.5},
            {"kind": "random_blocks", "block_size": 8, "threshold": 0.4, "fill": 0.0,
             "cutoff": 0.25, "band_low": 0.1, "band_high": 0.5})
    mixture = CRMPlan(store=str(tmp_path), pool=pool)
    per_kind = CRMPlan(store=str(tmp_path), pool=pool,
                       settings=PretrainSettings(redactions="per_kind"))
    checker = _cfg(**{"dejavu.redaction.kind": "checkerboard"})
    blocks = _cfg(**{"dejavu.redaction.kind": "random_blocks"})
    assert mixture.spec(checker).key == mixture.spec(blocks).key
    assert mixture.spec(checker).redaction_kinds == ("checkerboard", "random_blocks")
    assert per_kind.spec(checker).key != per_kind.spec(blocks).key
    assert per_kind.spec(blocks).redaction_kinds == ("random_blocks",)


def test_attach_names_the_missing_weights_and_sets_the_stored_ones(tmp_path):
    plan = CRMPlan(store=str(tmp_path))
    spec = plan.spec(_cfg())
    with pytest.raises(FileNotFoundError, match="no stored CRM weights for crm_r K=20"):
        plan.attach(_cfg())
    plan.directory(spec).mkdir(parents=True)
    (plan.directory(spec) / "crm.pt").write_bytes(b"")
    (plan.directory(spec) / "metrics.json").write_text("{}")
    attached = plan.attach(_cfg(**{"seed": 3}))
    assert attached.dejavu.crm.weights == str(tmp_path / spec.key / "crm.pt")
    assert plan.attach(_cfg(**{"dejavu.enabled": False})).dejavu.crm.weights is None


def test_the_default_space_needs_one_pretraining_per_crm_architecture():
    space = load_space(DEFAULT)
    found = specs(space, plan_for(space, "unused"))
    assert [s.describe() for s in found] == [
        "crm_f S=1 · 5 redaction kinds", "crm_f S=2 · 5 redaction kinds",
        "crm_f S=3 · 5 redaction kinds", "crm_r K=2 · 5 redaction kinds",
        "crm_r K=4 · 5 redaction kinds", "crm_r K=8 · 5 redaction kinds"]
    scratch = load_space(DEFAULT, {"dejavu.crm.init": "scratch"})
    assert specs(scratch, plan_for(scratch, "unused")) == []


def test_a_space_needing_too_many_pretrainings_is_refused_before_anything_runs():
    raw = {"params": {"dejavu.crm.kind": {"type": "categorical", "choices": ["crm_r"]},
                      "dejavu.crm.steps": {"type": "int", "low": 1, "high": 30}}}
    with pytest.raises(SpaceError, match=f"30 differently pre-trained CRMs.*at most {MAX_SPECS}"):
        parse_space(raw, "s.yaml")
    raw["params"]["dejavu.crm.steps"]["high"] = 200
    with pytest.raises(SpaceError, match="params.dejavu.crm.steps: each value needs a CRM"):
        parse_space(raw, "s.yaml")


def test_init_pretrained_without_weights_says_how_to_get_them():
    with pytest.raises(CRMWeightsError, match="needs stored CRM weights.*init=scratch"):
        build_crm(CRMConfig(kind="crm_f"), 5)


def test_loading_checks_what_the_weights_were_trained_for(tmp_path):
    cfg = _cfg(**{"dejavu.crm.kind": "crm_f", "dejavu.crm.width": 8,
                  "dejavu.redaction.kind": "checkerboard"})
    crm_cfg = CRMConfig(kind="crm_f", width=8, init="scratch")
    path = tmp_path / "crm.pt"
    use = intended_use(cfg)
    trained_for = {"task": use["task"], "data": use["data"], "redaction_kinds": ["checkerboard"]}
    save_crm(build_crm(crm_cfg, 5), path, crm_cfg, 5, trained_for)
    weights = CRMConfig(kind="crm_f", width=8, weights=str(path))
    build_crm(weights, 5, use=use)  # what it was trained for: loads
    with pytest.raises(CRMWeightsError, match="learnt to undo checkerboard redaction, not "
                                              "'random_blocks'"):
        build_crm(weights, 5, use={**use, "redaction_kind": "random_blocks"})
    with pytest.raises(CRMWeightsError, match=r"other data: data.image_size=64 \(this run: 48\)"):
        build_crm(weights, 5, use={**use, "data": {**use["data"], "image_size": 48}})
    with pytest.raises(CRMWeightsError, match="trained for task 'segmentation'.*'depth'"):
        build_crm(weights, 5, use={**use, "task": "depth"})


def test_a_real_pretraining_lands_in_the_store_and_relies_on_the_conditioning(tmp_path):
    from dejavu_tune.train.crm_pretrain import pretrain_into

    small = {"data.image_size": 32, "data.num_train": 32, "data.num_val": 8,
             "dejavu.crm.kind": "crm_f", "dejavu.crm.width": 8,
             "dejavu.redaction.kind": "random_blocks", "dejavu.redaction.block_size": 8}
    plan = CRMPlan(store=str(tmp_path / "store"), settings=PretrainSettings(iterations=60))
    cfg = _cfg(**small)
    spec = plan.spec(cfg)
    metrics = pretrain_into(spec, plan.directory(spec))
    assert plan.has(spec)
    files = {p.name for p in plan.directory(spec).iterdir()}
    assert files == {"crm.pt", "spec.json", "metrics.json", "regeneration.png"}
    assert json.loads((plan.directory(spec) / "spec.json").read_text())["key"] == spec.key
    with Image.open(plan.directory(spec) / "regeneration.png") as figure:
        assert figure.width > 200
    # the ground-truth conditioning carries what the redaction removed: without it the
    # regeneration is clearly worse
    assert metrics["val_mse"] < metrics["val_mse_zero_condition"]
    assert metrics["reliance"] > 0.1, metrics
    # a trial of that architecture starts from these weights
    attached = plan.attach(cfg)
    crm = build_crm(attached.dejavu.crm, 5, use=intended_use(attached))
    stored = torch.load(plan.weights(spec), weights_only=True)["state_dict"]
    assert all(torch.equal(crm.state_dict()[k], v) for k, v in stored.items())


SMALL = {"data.image_size": 32, "data.num_train": 32, "data.num_val": 8,
         "dejavu.crm.kind": "crm_f", "dejavu.crm.width": 8,
         "dejavu.redaction.kind": "random_blocks", "dejavu.redaction.block_size": 8}


@pytest.mark.parametrize(("settings", "iterations"), [
    # no threshold: the given iterations and no more
    ({"iterations": 10, "min_reliance": 0.0}, 10),
    # a threshold no 10-iteration CRM reaches: rounds of CHECK_EVERY up to the cap
    ({"iterations": 10, "min_reliance": 0.99, "max_iterations": 70}, 70),
])
def test_a_pretraining_goes_on_until_the_threshold_or_the_cap(tmp_path, settings, iterations):
    from dejavu_tune.train.crm_pretrain import pretrain_into
    from dejavu_tune.train.crm_store import shortfall

    plan = CRMPlan(store=str(tmp_path), settings=PretrainSettings(**settings))
    spec = plan.spec(_cfg(**SMALL))
    metrics = pretrain_into(spec, plan.directory(spec))
    assert metrics["iterations"] == iterations
    line = shortfall(spec.describe(), metrics, plan.settings.min_reliance)
    if settings["min_reliance"] == 0:  # no check, even for a CRM that relies on nothing
        assert line is None
        assert shortfall(spec.describe(), {**metrics, "reliance": -0.01}, 0.0) is None
    else:  # one line: the CRM, its reliance, the iterations, what to try
        assert line.startswith(f"the CRM {spec.describe()} reached a reliance of "
                               f"{metrics['reliance']:.2f}") and "after 70 iterations" in line
        assert "crm_pretrain.max_iterations" in line and "\n" not in line


def test_the_reliance_settings_are_checked_with_what_is_allowed():
    assert PretrainSettings(iterations=200).cap == 800  # 4 x iterations unless given
    assert PretrainSettings(iterations=200, max_iterations=300).cap == 300
    for bad, allowed in (({"max_iterations": 100}, "an integer of 300 or more"),
                         ({"min_reliance": 1.0}, r"a finite number in \[0.0, 0.99\]"),
                         ({"condition_dropout": -0.1}, r"a finite number in \[0.0, 0.9\]")):
        with pytest.raises(ValueError, match=f"crm_pretrain.{next(iter(bad))}.*{allowed}"):
            PretrainSettings(**bad)
