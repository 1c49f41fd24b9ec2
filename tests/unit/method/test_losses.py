import math

import pytest
import torch

from dejavu_tune.config import LossConfig
from dejavu_tune.method.losses import (
    cyclic_consistency,
    dejavu_objective,
    regeneration_loss,
    segmentation_loss,
)
from dejavu_tune.method.lpips import LPIPSWeightsError, load_lpips, lpips_distance


@pytest.fixture(scope="module")
def lpips_net():
    try:
        return load_lpips()
    except LPIPSWeightsError as exc:  # pragma: no cover - CI installs the weights
        pytest.skip(str(exc))


def test_mse_part_by_hand():
    # gamma2 weights MSE; gamma1 = 0 skips LPIPS (no network needed)
    image = torch.zeros(1, 3, 32, 32)
    regenerated = torch.full((1, 3, 32, 32), 0.5)
    parts = regeneration_loss(regenerated, image, LossConfig(gamma=2.0, gamma1=0.0, gamma2=3.0),
                              None)
    assert parts["mse"].item() == pytest.approx(0.25)
    assert parts["lpips"].item() == 0.0
    assert parts["dejavu_loss"].item() == pytest.approx(2.0 * 3.0 * 0.25)


def test_loss_decomposes_into_weighted_parts(lpips_net):
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1
    regenerated = (image + 0.3 * torch.randn(2, 3, 64, 64, generator=gen)).clamp(-1, 1)
    cfg = LossConfig(gamma=0.5, gamma1=2.0, gamma2=0.3, cl_weight=0.1)
    regen = regeneration_loss(regenerated, image, cfg, lpips_net)
    mse = (regenerated - image).square().mean().item()
    lp = lpips_distance(lpips_net, regenerated, image).mean().item()
    assert regen["mse"].item() == pytest.approx(mse, rel=1e-6)
    assert regen["lpips"].item() == pytest.approx(lp, rel=1e-6) and lp > 0.01
    # gamma1 (2.0) weights LPIPS, gamma2 (0.3) MSE: seed C.3
    assert regen["dejavu_loss"].item() == pytest.approx(0.5 * (2.0 * lp + 0.3 * mse), rel=1e-6)
    task, cl = torch.tensor(1.25), torch.tensor(0.4)
    parts = dejavu_objective(task, regen, cfg, cl)
    expected = 1.25 + 0.5 * (2.0 * lp + 0.3 * mse) + 0.1 * 0.4
    assert parts["loss"].item() == pytest.approx(expected, rel=1e-6)
    assert set(parts) == {"loss", "task_loss", "dejavu_loss", "mse", "lpips", "cl_loss"}


def test_baseline_objective_is_the_task_loss():
    parts = dejavu_objective(torch.tensor(0.7), None, LossConfig())
    assert parts == {"task_loss": torch.tensor(0.7), "loss": torch.tensor(0.7)}


def test_gradient_of_regeneration_reaches_the_conditioning(lpips_net):
    # The point of DejaVu: regeneration gradients flow back into the prediction.
    logits = torch.randn(1, 4, 32, 32, requires_grad=True)
    cond = torch.softmax(logits, 1)
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    regenerated = image * 0.5 + cond[:, :3]
    regeneration_loss(regenerated, image, LossConfig(), lpips_net)["dejavu_loss"].backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_cyclic_consistency_kl_by_hand():
    # One pixel, two classes: p = softmax(h(I)) = (0.5, 0.5), q = softmax(h(I_hat)) = (0.8, 0.2).
    logits_image = torch.zeros(1, 2, 1, 1)
    logits_regen = torch.tensor([math.log(0.8), math.log(0.2)]).view(1, 2, 1, 1)
    expected = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)
    assert cyclic_consistency(logits_regen, logits_image).item() == pytest.approx(expected)
    assert cyclic_consistency(logits_image, logits_image).item() == pytest.approx(0.0, abs=1e-7)


def test_cyclic_consistency_detaches_the_clean_prediction():
    clean = torch.randn(1, 3, 4, 4, requires_grad=True)
    regen = torch.randn(1, 3, 4, 4, requires_grad=True)
    cyclic_consistency(regen, clean).backward()
    assert clean.grad is None and regen.grad.abs().sum() > 0


def test_segmentation_loss_ignores_255():
    logits = torch.zeros(1, 2, 1, 2)
    labels = torch.tensor([[[0, 255]]])
    assert segmentation_loss(logits, labels).item() == pytest.approx(math.log(2))
