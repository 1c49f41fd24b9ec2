import io

import pytest
import torch

from dejavu_tune.config import TrainConfig
from dejavu_tune.train.trainer import NonFiniteGradientError, NonFiniteLossError, Trainer, train

TINY = {
    "data": {"image_size": 32, "num_train": 32, "num_val": 16, "num_classes": 4},
    "model": {"width": 8},
    "optim": {"epochs": 2, "batch_size": 8},
    # the mechanics of the step; stored CRM weights are tested in test_crm_store.py
    "dejavu": {"crm": {"kind": "crm_f", "stages": 2, "width": 8, "init": "scratch"},
               "redaction": {"block_size": 8}},
}


def _cfg(**overrides):
    return TrainConfig.from_dict(TINY).replace(**overrides)


def test_train_is_deterministic_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    first = train(_cfg())
    assert torch.equal(torch.get_rng_state(), state)
    second = train(_cfg())
    strip = [{k: v for k, v in m.items() if k != "sec_per_iter"} for m in first]
    assert strip == [{k: v for k, v in m.items() if k != "sec_per_iter"} for m in second]
    assert [m["epoch"] for m in first] == [1.0, 2.0]
    assert {"loss", "task_loss", "dejavu_loss", "mse", "lpips", "val_miou", "sec_per_iter",
            "lr"} <= set(first[0])


def test_baseline_is_the_same_step_with_dejavu_off():
    # With every DejaVu weight at 0 the regeneration adds nothing: the base network must follow
    # exactly the baseline's trajectory (same init, same data order, same schedule).
    base = train(_cfg(**{"dejavu.enabled": False}))
    zero = train(_cfg(**{"dejavu.loss.gamma": 0.0, "dejavu.loss.gamma1": 0.0}))
    assert [m["task_loss"] for m in base] == [m["task_loss"] for m in zero]
    assert [m["val_miou"] for m in base] == [m["val_miou"] for m in zero]
    assert "dejavu_loss" not in base[0] and zero[0]["dejavu_loss"] == 0.0


def test_resume_from_a_saved_state_is_exact():
    full = Trainer(_cfg())
    full_metrics = [full.train_epoch() for _ in range(2)]

    first = Trainer(_cfg())
    first.train_epoch()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = Trainer(_cfg())
    resumed.load_state_dict(torch.load(buffer, weights_only=True))  # no pickled code needed
    second = resumed.train_epoch()
    assert second["loss"] == full_metrics[1]["loss"]
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    assert resumed.epoch == 2 and resumed.iteration == full.iteration


def test_polynomial_schedule_by_hand():
    trainer = Trainer(_cfg(**{"dejavu.enabled": False}))
    assert trainer.iters_per_epoch == 4  # 32 images / batch 8
    trainer.train_epoch()
    # After 4 of 8 iterations: 0.01 * (1 - 4/8) ** 2.
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0025)


def test_non_finite_loss_names_where_it_happened():
    trainer = Trainer(_cfg())
    batch = trainer.first_batch(8)
    batch["image"][:] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 1, iteration 1 "
                                                 r"\(parts: task_loss=nan"):
        trainer.train_step(batch)


def test_non_finite_crm_gradients_fail_the_step_before_it_changes_a_weight():
    trainer = Trainer(_cfg())
    batch = trainer.first_batch(8)
    weight = next(trainer.crm.parameters())
    # The CRM's gradient explodes while the loss stays finite.
    weight.register_hook(lambda grad: grad * float("inf"))
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    crm_before = weight.detach().clone()
    with pytest.raises(NonFiniteGradientError, match=r"the CRM's gradient norm became (inf|nan) "
                                                     r"at epoch 1, iteration 1 \(the loss was"):
        trainer.train_step(batch)
    assert torch.equal(weight.detach(), crm_before)
    assert all(torch.equal(before[k], v.detach()) for k, v in trainer.model.named_parameters())
    assert trainer.iteration == 0


def test_sample_gives_the_figure_tensors_without_moving_the_rng():
    trainer = Trainer(_cfg())
    before = trainer.redact_rng.get_state()
    sample = trainer.sample(3)
    assert torch.equal(trainer.redact_rng.get_state(), before)
    assert list(sample) == ["input", "seg truth", "seg prediction", "redacted", "regenerated",
                            "CRM change"]
    assert all(v.shape == (3, 3, 32, 32) for v in sample.values())  # RGB pictures


def test_cl_term_is_logged_when_weighted():
    metrics = train(_cfg(**{"dejavu.loss.cl_weight": 0.1, "optim.epochs": 1}))[0]
    assert metrics["cl_loss"] >= 0.0


@pytest.mark.slow
@pytest.mark.parametrize("dejavu", [False, True], ids=["baseline", "dejavu"])
def test_short_training_clearly_learns(dejavu):
    # 5 classes; predicting background everywhere scores about 0.12 mIoU. 128 iterations:
    # about 30 s (baseline) and 45 s (DejaVu, CRM-F) on two CPU cores.
    cfg = TrainConfig().replace(**{"dejavu.enabled": dejavu, "dejavu.crm.kind": "crm_f",
                                   "dejavu.crm.init": "scratch",
                                   "data.num_train": 256, "optim.epochs": 8})
    history = train(cfg)
    assert history[-1]["val_miou"] > 0.6
    assert history[-1]["task_loss"] < history[0]["task_loss"]


def test_cl_pass_leaves_batch_norm_statistics_alone():
    # The CL forward on regenerated images must not move BN's running statistics.
    with_cl = Trainer(_cfg(**{"dejavu.loss.cl_weight": 0.1}))
    without = Trainer(_cfg())
    batch = with_cl.first_batch(8)
    with_cl.forward_losses(batch)
    without.forward_losses(batch)
    for (name, a), b in zip(with_cl.model.state_dict().items(),
                            without.model.state_dict().values(), strict=True):
        if "running" in name or "num_batches" in name:
            assert torch.equal(a, b), name
