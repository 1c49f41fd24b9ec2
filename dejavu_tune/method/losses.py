"""The DejaVu objective (METHOD.md, Losses).

``L = L_task + gamma * (gamma1 * LPIPS(I_hat, I) + gamma2 * MSE(I_hat, I))
+ cl_weight * L_CL + ts_weight * L_TS``

Every part is returned on its own so that trials can log the decomposition.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dejavu_tune.config import IGNORE_INDEX, LossConfig
from dejavu_tune.method.lpips import lpips_distance

__all__ = ["segmentation_loss", "regeneration_loss", "cyclic_consistency",
           "dejavu_objective"]



def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)


def regeneration_loss(regenerated: torch.Tensor, image: torch.Tensor, cfg: LossConfig,
                      lpips_net: nn.Module | None) -> dict[str, torch.Tensor]:
    """``gamma * (gamma1 * LPIPS + gamma2 * MSE)`` with both parts; images in [-1, 1].

    gamma1 weights LPIPS and gamma2 MSE, as the seed reads (C.3: with gamma1=1,
    gamma2=0.1, "As MSE loss has a lower weight, ... the dominance of LPIPS")."""
    regenerated = regenerated.float()
    mse = F.mse_loss(regenerated, image)
    if cfg.gamma1 > 0:
        if lpips_net is None:
            raise ValueError("loss.gamma1 > 0 needs an LPIPS network")
        perceptual = lpips_distance(lpips_net, regenerated, image).mean()
    else:
        perceptual = mse.new_zeros(())  # gamma1 = 0: skip AlexNet's cost entirely
    dejavu = cfg.gamma * (cfg.gamma1 * perceptual + cfg.gamma2 * mse)
    return {"dejavu_loss": dejavu, "mse": mse, "lpips": perceptual}


def cyclic_consistency(logits_regenerated: torch.Tensor, logits_image: torch.Tensor) -> torch.Tensor:
    """DejaVu-CL: KL(softmax h(I) || softmax h(I_hat)) per pixel, h(I) detached."""
    target = F.log_softmax(logits_image.detach().float(), dim=1)
    pred = F.log_softmax(logits_regenerated.float(), dim=1)
    return F.kl_div(pred, target, log_target=True, reduction="none").sum(1).mean()


def dejavu_objective(task: torch.Tensor, regen: dict[str, torch.Tensor] | None, cfg: LossConfig,
                     cl: torch.Tensor | None = None,
                     ts: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Total loss and its parts; ``regen`` None is the baseline (DejaVu off)."""
    parts = {"task_loss": task}
    total = task
    if regen is not None:
        parts.update(regen)
        total = total + regen["dejavu_loss"]
    if cl is not None:
        parts["cl_loss"] = cl
        total = total + cfg.cl_weight * cl
    if ts is not None:
        parts["ts_loss"] = ts
        total = total + cfg.ts_weight * ts
    parts["loss"] = total
    return parts
