"""How the CRM sees a segmentation prediction (dejavu.crm.condition), and the per-epoch
probe of whether DejaVu reaches the network (dejavu_tune.train.diagnostics)."""

import pytest
import torch

from dejavu_tune.config import TrainConfig
from dejavu_tune.tasks import MultiTask, SegmentationTask
from dejavu_tune.tasks.depth import DepthTask
from dejavu_tune.train.diagnostics import crm_usage, is_inert
from dejavu_tune.train.trainer import Trainer


def _logits():
    # two pixels, three classes: class 2 wins the first pixel (2, 0, 3), class 1 the second
    # (0, 1, 0.5)
    return torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.5]]).view(1, 3, 1, 2)


def test_soft_sharpened_and_onehot_conditions_by_hand():
    task, logits = SegmentationTask(3), _logits()
    soft = task.condition_as({"seg": logits}, "soft")
    assert torch.allclose(soft, torch.softmax(logits, 1))
    sharp = task.condition_as({"seg": logits}, "sharpened", temperature=0.5)
    assert torch.allclose(sharp, torch.softmax(logits * 2, 1))  # softmax(logits / 0.5)
    hot = task.condition_as({"seg": logits}, "onehot")
    assert hot[0, :, 0, 0].tolist() == [0.0, 0.0, 1.0] and hot[0, :, 0, 1].tolist() == [0.0, 1.0, 0.0]


def test_onehot_is_straight_through_the_probabilities_gradient():
    task = SegmentationTask(3)
    weights = torch.tensor([0.3, -1.0, 2.0]).view(1, 3, 1, 1)
    grads = []
    for style in ("soft", "onehot"):
        logits = _logits().requires_grad_(True)
        (task.condition_as({"seg": logits}, style) * weights).sum().backward()
        grads.append(logits.grad)
    assert torch.allclose(grads[0], grads[1])  # the hard forward passes soft gradients


def test_tasks_without_classes_ignore_the_style_and_multitask_applies_it_to_segmentation():
    depth = DepthTask(max_depth=10.0)
    preds = {"seg": _logits(), "depth": torch.rand(1, 1, 1, 2)}
    assert torch.equal(depth.condition_as(preds, "onehot"), depth.condition(preds))
    both = MultiTask([SegmentationTask(3), depth], [1.0, 1.0]).condition_as(preds, "onehot")
    assert both.shape == (1, 4, 1, 2) and both[0, :3, 0, 0].tolist() == [0.0, 0.0, 1.0]


TINY = {"data": {"image_size": 32, "num_train": 16, "num_val": 8, "num_classes": 4},
        "model": {"width": 8}, "optim": {"epochs": 1, "batch_size": 8},
        "dejavu": {"crm": {"kind": "crm_f", "width": 8, "init": "scratch"}}}


def test_the_probe_of_an_untrained_crm_and_its_side_effects():
    trainer = Trainer(TrainConfig.from_dict(TINY))
    batch = trainer.first_batch(8)
    rng = trainer.redact_rng.get_state().clone()
    stats = {k: v.clone() for k, v in trainer.model.state_dict().items() if "running" in k}
    usage = crm_usage(trainer, batch)
    assert set(usage) == {"crm_mse", "crm_mse_zero_condition", "crm_reliance",
                          "regen_grad_ratio"}
    # a CRM from scratch starts as the identity on the redacted image: the prediction
    # changes nothing yet, and a CRM that ignores it is inert
    assert abs(usage["crm_reliance"]) < 0.05 and is_inert(usage)
    assert usage["regen_grad_ratio"] > 0
    assert torch.equal(trainer.redact_rng.get_state(), rng)  # the training stream is untouched
    for k, v in stats.items():
        assert torch.equal(trainer.model.state_dict()[k], v), k
    assert all(p.grad is None for p in trainer.model.parameters())  # no gradient left behind
    assert crm_usage(Trainer(TrainConfig.from_dict(TINY).replace(**{"dejavu.enabled": False})),
                     batch) == {}


@pytest.mark.parametrize("metrics, inert", [
    ({"crm_reliance": 0.6, "regen_grad_ratio": 0.2}, False),
    ({"crm_reliance": 0.01, "regen_grad_ratio": 0.2}, True),  # the CRM ignores the prediction
    ({"crm_reliance": 0.6, "regen_grad_ratio": 0.001}, True),  # nothing reaches the network
    ({"val_miou": 0.5}, False),  # a baseline: nothing to judge
])
def test_inert_thresholds(metrics, inert):
    assert is_inert(metrics) is inert
