"""Seed Table B.2's controls: redaction as input augmentation (``dejavu.mode: augment``)
and MAE-style pre-training (``model.mae``), their checks, and how searches, names and
reports tell them from the baseline and from DejaVu."""

import io
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dejavu_tune.config import ConfigError, TrainConfig, is_baseline
from dejavu_tune.method.crm import intended_use
from dejavu_tune.method.mim import PixelDecoder, masked_count, masked_mse, patch_mask
from dejavu_tune.report import Trial, ablation_table
from dejavu_tune.search.crm_stage import plan_for, specs
from dejavu_tune.search.space_file import load_space, parse_space
from dejavu_tune.search.trial_records import TrialRecord
from dejavu_tune.tracking.run_names import run_name
from dejavu_tune.train.crm_store import CRMPlan, redaction_pool
from dejavu_tune.train.diagnostics import crm_usage, is_inert
from dejavu_tune.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
B2 = ROOT / "search_spaces" / "ablations" / "b2_augmentation_mae.yaml"
TINY = {
    "data": {"image_size": 32, "num_train": 16, "num_val": 8, "num_classes": 4},
    "model": {"width": 8, "mae": {"patch": 8}},
    "optim": {"epochs": 2, "batch_size": 8},
    "dejavu": {"crm": {"kind": "crm_f", "stages": 2, "width": 8, "init": "scratch"},
               "redaction": {"block_size": 8}},
}
AUGMENT = {"dejavu.mode": "augment"}
MAE = {"dejavu.enabled": False, "model.mae.epochs": 1}


def _cfg(**overrides):
    return TrainConfig.from_dict(TINY).replace(**overrides)


def _weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- configuration ------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, message", [
    ({"dejavu.mode": "regen"},
     "dejavu.mode='regen' is not allowed: expected one of regenerate, augment"),
    ({**AUGMENT, "dejavu.loss.cl_weight": 0.1},
     "dejavu.loss.cl_weight=0.1 is not allowed: expected 0 when dejavu.mode=augment"),
    ({**AUGMENT, "dejavu.loss.ts_weight": 0.3, "dejavu.loss.ts_encoder": "m:f"},
     "dejavu.loss.ts_weight=0.3 is not allowed: expected 0 when dejavu.mode=augment"),
    ({"model.mae.epochs": -1},
     "model.mae.epochs=-1 is not allowed: expected an integer between 0 and 10000"),
    ({"model.mae.mask_ratio": 1.0},
     r"model.mae.mask_ratio=1.0 is not allowed: expected a number in \(0, 1\)"),
    ({"model.mae.mask_ratio": "high"},
     r"model.mae.mask_ratio='high' is not allowed: expected a number in \(0, 1\)"),
    ({"model.mae.patch": 0},
     "model.mae.patch=0 is not allowed: expected an integer between 1 and 1024"),
    # 32 px images in 32 px patches: one patch, which cannot be both masked and visible
    ({"model.mae.epochs": 1, "model.mae.patch": 32},
     "model.mae.patch=32 is not allowed: expected a patch size that leaves at least one "
     r"masked and one visible patch of 32x32 images at model.mae.mask_ratio=0.75 \(1 "
     r"patches now\)"),
    ({"model.mae.epochs": 1, "model.name": "my_nets:build"},
     "model.mae.epochs=1 is not allowed: expected 0 for a plug-in network"),
])
def test_bad_b2_settings_name_key_value_and_what_is_allowed(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(**overrides)


def test_defaults_are_the_method_and_no_pretraining():
    cfg = TrainConfig()
    assert cfg.dejavu.mode == "regenerate" and cfg.dejavu.uses_crm
    assert cfg.model.mae.epochs == 0 and cfg.model.mae.mask_ratio == 0.75
    # augment runs no LPIPS, so its 31 px minimum does not apply
    small = _cfg(**{**AUGMENT, "data.image_size": 16, "model.mae.patch": 4})
    assert not small.dejavu.uses_crm


def test_an_mae_row_is_not_the_baseline():
    assert is_baseline({"dejavu.enabled": False, "seed": 1})
    assert is_baseline({"dejavu.enabled": False, "model.mae.epochs": 0})
    assert not is_baseline({"dejavu.enabled": False, "model.mae.epochs": 8})
    assert not is_baseline({"dejavu.enabled": True, "dejavu.mode": "augment"})


# -- redaction as augmentation --------------------------------------------------------------
def test_augment_builds_the_redaction_but_no_crm_and_no_lpips():
    trainer = Trainer(_cfg(**{**AUGMENT, "dejavu.crm.init": "pretrained"}))  # nothing to load
    assert trainer.crm is None and trainer.lpips is None and trainer.redact is not None
    with pytest.raises(ConfigError, match="uses no CRM"):
        intended_use(trainer.cfg)


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_augment_loss_is_the_mean_of_the_clean_and_redacted_task_losses(threshold):
    trainer = Trainer(_cfg(**{**AUGMENT, "dejavu.redaction.threshold": threshold}))
    trainer.model.eval()  # per-image outputs: the two halves can be checked one by one
    batch = trainer.first_batch(4)
    images, labels = batch["image"], batch["seg"]
    with torch.no_grad():
        parts, extras = trainer.forward_losses(batch)
        # threshold 0 redacts nothing, threshold 1 every block (all pixels become fill = 0)
        redacted = images if threshold == 0.0 else torch.zeros_like(images)
        clean = F.cross_entropy(trainer.model(images)["seg"], labels, ignore_index=255)
        other = F.cross_entropy(trainer.model(redacted)["seg"], labels, ignore_index=255)
    assert torch.equal(extras["redacted"], redacted)
    assert parts["task_loss"].item() == pytest.approx(clean.item(), rel=1e-6)
    assert parts["augment_loss"].item() == pytest.approx(other.item(), rel=1e-6)
    assert parts["loss"].item() == pytest.approx((clean.item() + other.item()) / 2, rel=1e-6)
    if threshold == 0.0:  # nothing redacted: the mean is the clean loss itself
        assert parts["loss"].item() == pytest.approx(clean.item(), rel=1e-6)
    assert "dejavu_loss" not in parts and "regenerated" not in extras


def test_augment_loss_is_the_task_loss_of_the_doubled_batch_in_training_mode():
    trainer = Trainer(_cfg(**AUGMENT))
    trainer.model.train()
    batch = trainer.first_batch(4)
    state = trainer.redact_rng.get_state()
    with torch.no_grad():
        parts, _ = trainer.forward_losses(batch)
        trainer.redact_rng.set_state(state)
        redacted = trainer.redact(batch["image"], trainer.redact_rng)
        out = trainer.model(torch.cat([batch["image"], redacted]))["seg"]
        doubled = F.cross_entropy(out, torch.cat([batch["seg"], batch["seg"]]), ignore_index=255)
    assert parts["loss"].item() == pytest.approx(doubled.item(), rel=1e-5)


def test_an_augment_trial_is_never_inert_and_its_probe_measures_nothing():
    trainer = Trainer(_cfg(**AUGMENT))
    metrics = trainer.train_epoch()
    assert {"task_loss", "augment_loss", "loss"} <= set(metrics)
    assert crm_usage(trainer, trainer.first_batch(4)) == {}
    assert not is_inert(metrics)
    record = TrialRecord(trial_id="a", phase="search", config={"dejavu.mode": "augment"},
                         seed=0, status="completed", reason=None, curve=(0.5,), last=metrics)
    assert not record.is_baseline and not record.inert


# -- masked image modelling -------------------------------------------------------------------
def test_masked_count_rounds_and_keeps_one_of_each():
    assert masked_count(16, 0.75) == 12  # 4 x 4 patches, MAE's 75 %
    assert masked_count(9, 0.75) == 7  # 6.75 rounds to 7
    assert masked_count(4, 0.1) == 1 and masked_count(4, 0.99) == 3


@pytest.mark.parametrize("size, patch, per_image", [(32, 8, 12), (20, 8, 7)])
def test_the_mask_covers_the_stated_fraction_of_whole_patches(size, patch, per_image):
    generator = torch.Generator().manual_seed(0)
    mask = patch_mask((3, 3, size, size), patch, 0.75, generator)
    assert mask.shape == (3, 1, size, size)
    grid = -(-size // patch)
    for image in mask[:, 0]:
        tiles = [image[i * patch:(i + 1) * patch, j * patch:(j + 1) * patch]
                 for i in range(grid) for j in range(grid)]
        assert all(bool((t == t[0, 0]).all()) for t in tiles)  # whole patches, edges clipped
        assert sum(int(t[0, 0]) for t in tiles) == per_image
    if size == 32:  # 12 of 16 patches of 64 pixels each
        assert mask.sum(dim=(1, 2, 3)).tolist() == [768.0] * 3
    again = patch_mask((3, 3, size, size), patch, 0.75, torch.Generator().manual_seed(0))
    assert torch.equal(mask, again)


def test_the_loss_counts_only_masked_pixels():
    image = torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :, :2] = 1  # the left half is masked
    guess = torch.full((1, 3, 4, 4), 100.0)  # visible pixels: way off, and they do not count
    guess[..., :, :2] = 2.0  # masked pixels: off by 2 in each channel
    assert masked_mse(guess, image, mask).item() == 4.0
    guess[..., :, :2] = 0.0
    assert masked_mse(guess, image, mask).item() == 0.0


def test_the_decoder_returns_images_of_the_input_size():
    out = PixelDecoder(8)(torch.zeros(2, 8, 8, 8), torch.Size((32, 32)))
    assert out.shape == (2, 3, 32, 32)


# -- MAE-style pre-training in the trainer ---------------------------------------------------
def test_mae_pretraining_changes_the_start_deterministically_per_seed():
    state = torch.get_rng_state()
    plain = Trainer(_cfg(**{"dejavu.enabled": False}))
    first, second = Trainer(_cfg(**MAE)), Trainer(_cfg(**MAE))
    assert _same(_weights(first.model), _weights(plain.model))  # the same network at build
    data_before = first.data_rng.get_state()
    metrics = first.pretrain()
    assert metrics["mae_pretrain_s"] > 0 and metrics["mae_loss"] > 0
    second.pretrain()
    assert not _same(_weights(first.model.trunk), _weights(plain.model.trunk))
    assert _same(_weights(first.model), _weights(second.model))  # same seed: same weights
    # the heads never see the pre-training; the task training's data order is untouched
    assert _same(_weights(first.model.heads), _weights(plain.model.heads))
    assert torch.equal(first.data_rng.get_state(), data_before)
    assert torch.equal(torch.get_rng_state(), state)
    other = Trainer(_cfg(**{**MAE, "seed": 1}))
    other.pretrain()
    fresh = Trainer(_cfg(**{"dejavu.enabled": False, "seed": 1}))
    assert not _same(_weights(other.model.trunk), _weights(fresh.model.trunk))
    assert not _same(_weights(other.model), _weights(first.model))


def test_mae_pretraining_runs_once_is_reported_and_survives_a_resume():
    trainer = Trainer(_cfg(**MAE))
    epoch1 = trainer.train_epoch()
    assert {"mae_pretrain_s", "mae_loss"} <= set(epoch1)
    buffer = io.BytesIO()
    torch.save(trainer.state_dict(), buffer)
    buffer.seek(0)
    resumed = Trainer(_cfg(**MAE))
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.pretrain() == {}  # its result is the checkpoint's weights
    assert _same(_weights(resumed.model), _weights(trainer.model))
    epoch2 = trainer.train_epoch()
    assert "mae_pretrain_s" not in epoch2
    assert resumed.train_epoch()["loss"] == epoch2["loss"]  # exactly where it left off


def test_a_checkpoint_without_mae_state_counts_trained_epochs_as_pretrained():
    trainer = Trainer(_cfg(**MAE))
    trainer.train_epoch()
    state = trainer.state_dict()
    del state["mae"]  # written before model.mae existed
    resumed = Trainer(_cfg(**MAE))
    resumed.load_state_dict(state)
    assert resumed.pretrain() == {}


# -- searches, names, reports ---------------------------------------------------------------
def test_the_crm_stage_plans_no_crm_for_augment_trials(tmp_path):
    plan = CRMPlan(store=str(tmp_path))
    assert plan.spec(_cfg(**{**AUGMENT, "dejavu.crm.init": "pretrained"})) is None
    assert plan.attach(_cfg(**AUGMENT)).dejavu.crm.weights is None
    # an augment trial's redaction is not in the mixture a CRM learns
    assert redaction_pool([_cfg(**{**AUGMENT, "dejavu.redaction.kind": "checkerboard"}),
                           _cfg()])[0]["kind"] == "random_blocks"
    space = load_space(B2)
    found = specs(space, plan_for(space, tmp_path))
    assert [s.describe() for s in found] == ["crm_r K=20 · random_blocks"]  # DejaVu's only
    only_augment = parse_space({"params": {
        "dejavu.mode": {"type": "categorical", "choices": ["augment"]}}}, "s.yaml")
    assert specs(only_augment, plan_for(only_augment, tmp_path)) == []


def test_the_b2_grid_has_four_rows_over_three_seeds():
    points = load_space(B2).grid_points()
    rows = {tuple(sorted((k, v) for k, v in p.items() if k != "seed")) for p in points}
    assert len(points) == 12 and len(rows) == 4
    assert {"dejavu.enabled": False, "model.mae.epochs": 0, "seed": 0} in points
    assert {"dejavu.enabled": False, "model.mae.epochs": 8, "seed": 2} in points
    assert {"dejavu.enabled": True, "dejavu.mode": "augment", "seed": 1} in points
    assert {"dejavu.enabled": True, "dejavu.mode": "regenerate", "seed": 1} in points


def test_run_names_say_augment_and_mae_instead_of_a_crm():
    cfg = TrainConfig().replace(**{"dejavu.mode": "augment", "dejavu.redaction.block_size": 8})
    assert run_name(cfg, {}, "ab", "search", "f_ab_5_x") == "t05 augment · random_blocks b8"
    mae = TrainConfig().replace(**{"dejavu.enabled": False, "model.mae.epochs": 4, "seed": 1})
    sampled = {"dejavu.enabled": False, "model.mae.epochs": 4, "seed": 1}
    assert run_name(mae, sampled, "ab", "search", "f_ab_2_x") == "t02 MAE pre-train 4 ep seed 1"


def _b2_trials():
    # row -> (sampled params, val_miou of seeds 0, 1, 2)
    rows = {"base": ({"dejavu.enabled": False, "model.mae.epochs": 0}, (0.70, 0.72, 0.74)),
            "mae": ({"dejavu.enabled": False, "model.mae.epochs": 8}, (0.71, 0.74, 0.74)),
            "aug": ({"dejavu.enabled": True, "dejavu.mode": "augment"}, (0.72, 0.72, 0.77)),
            "dv": ({"dejavu.enabled": True, "dejavu.mode": "regenerate"}, (0.74, 0.75, 0.77))}
    trials = []
    for name, (params, values) in rows.items():
        for seed, value in enumerate(values):
            logged = {k: str(v) for k, v in {**params, "seed": seed}.items()}
            kind = "baseline" if is_baseline({**params}) else "trial"
            trials.append(Trial(f"{name}{seed}", f"{name}{seed}", kind, logged,
                                {"val_miou": value}))
    return trials


def test_the_report_keeps_the_mae_row_apart_from_the_baseline():
    trials = _b2_trials()
    assert [t.is_baseline for t in trials[:6]] == [True] * 3 + [False] * 3
    # a grid's MAE cell logged as kind=baseline by an older search is still no baseline
    old = Trial("x", "x", "baseline", {"dejavu.enabled": "False", "model.mae.epochs": "8"}, {})
    assert not old.is_baseline
    table = ablation_table(trials, "val_miou")
    lines = table.splitlines()
    body = [line for line in lines if line.startswith("| ") and "setting" not in line
            and not line.startswith("| -")]
    # per-seed differences from the baseline (72.0 ± 2.0): MAE +1, +2, 0 (mean 1.0, std
    # 1.0); augmentation +2, 0, +3 (1.7 ± 1.5); DejaVu +4, +3, +3 (3.3 ± 0.6, sig.)
    assert [line.split("|")[1].strip() for line in body] == [
        "baseline, epochs=0", "MAE pre-training, epochs=8", "redaction as augmentation, mode=augment",
        "DejaVu, mode=regenerate"]
    cells = [[c.strip() for c in line.split("|")[2:4]] for line in body]
    assert cells == [["72.0 ± 2.0", "—"], ["73.0 ± 1.7", "+1.0 ± 1.0 n.s."],
                     ["73.7 ± 2.9", "+1.7 ± 1.5 n.s."], ["75.3 ± 1.5", "+3.3 ± 0.6 sig."]]


# -- end to end -------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.slow
def test_a_tiny_b2_grid_reports_all_four_rows_with_paired_deltas(tmp_path):
    import re
    import subprocess
    import sys

    from helpers.cluster import search_meta, trial_runs

    proc = subprocess.run(
        [sys.executable, "-m", "dejavu_tune.search", "--space", str(B2),
         "--storage-path", str(tmp_path), "--name", "b2", "--set", "optim.epochs=1",
         "--set", "data.num_train=32", "--set", "data.num_val=16", "--set", "model.width=8",
         "--set", "dejavu.crm.width=8", "--set", "device=cpu",
         "--set", "dejavu.loss.gamma1=0.0", "--set", "crm_pretrain.iterations=5",
         "--set", "crm_pretrain.min_reliance=0"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = search_meta(tmp_path, "b2")
    client, everything = trial_runs(meta, pretrainings=True)
    kinds = sorted(r.data.tags["dejavu.kind"] for r in everything)
    # one CRM pre-training (DejaVu's), three baseline runs, nine others
    assert kinds == ["baseline"] * 3 + ["crm_pretrain"] + ["trial"] * 9
    for run in everything:
        params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
        if params.get("model.mae.epochs") == "8":
            assert tags["dejavu.kind"] == "trial" and "mae_pretrain_s" in metrics
            assert run.info.run_name.endswith("MAE pre-train 8 ep seed " + params["seed"])
        if params.get("dejavu.mode") == "augment":
            assert tags["dejavu.crm_init"] == "none" and tags["dejavu.inert"] == "false"
            assert "augment_loss" in metrics and "crm_reliance" not in metrics
    report = subprocess.run(
        [sys.executable, "-m", "dejavu_tune.report", "--experiment", meta["experiment"],
         "--search", "b2", "--tracking-uri", meta["tracking_uri"]],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    rows = {line.split("|")[1].strip(): line for line in report.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| -")}
    assert set(rows) == {"setting", "baseline, epochs=0", "MAE pre-training, epochs=8",
                         "redaction as augmentation, mode=augment", "DejaVu, mode=regenerate"}
    paired = re.compile(r"[+-]\d+\.\d ± \d+\.\d (sig\.|n\.s\.)")
    for name, line in rows.items():
        if name not in ("setting", "baseline, epochs=0"):
            assert paired.search(line), line  # paired by seed with the baseline
    assert "over 3 seeds per cell" in report.stdout
