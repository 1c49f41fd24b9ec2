"""Does DejaVu do anything in this run? Two measurements on one fixed batch, per epoch.

- ``crm_reliance``: 1 - MSE(CRM(I_R, C)) / MSE(CRM(I_R, 0)), the regeneration error with
  the network's prediction against a zeroed condition. Near 0, the CRM regenerates from
  the redacted image alone and ignores the prediction.
- ``regen_grad_ratio``: the norm of the regeneration loss's gradient (γ included) on the
  base network's weights over the norm of the task loss's gradient. Near 0, DejaVu adds
  nothing to what the network learns.

Neither applies to a run without a CRM (DejaVu off, or ``dejavu.mode: augment``, which
trains on redacted images without regenerating them): ``crm_usage`` measures nothing for
it and ``is_inert`` never calls it inert.

Either near 0 makes a run with a CRM ``inert`` (``INERT_RELIANCE``, ``INERT_GRAD_RATIO``): whatever
its metric says, it is not a DejaVu effect. A CRM trained from scratch beside the network
measured 0.00 and 9e-5 to 5e-3 here; one pre-trained on ground truth 0.6-0.8 and ~0.2
(docs/benchmarks.md). The probe leaves no trace: the redaction generator is restored and
batch-norm statistics are frozen.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["INERT_RELIANCE", "INERT_GRAD_RATIO", "crm_usage", "is_inert"]

INERT_RELIANCE = 0.05
INERT_GRAD_RATIO = 0.01


def _grad_norm(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    squares = [g.float().square().sum() for g in grads if g is not None]
    return float(torch.stack(squares).sum().sqrt()) if squares else 0.0


def crm_usage(trainer: Any, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """The two measurements for ``trainer`` (a ``dejavu_tune.train.trainer.Trainer`` with a CRM)
    on ``batch``; {} for a run without a CRM (DejaVu off, or ``dejavu.mode: augment``)."""
    from dejavu_tune.method.losses import regeneration_loss
    from dejavu_tune.train.trainer import frozen_norm_stats

    if trainer.crm is None:
        return {}
    model, crm, task = trainer.model, trainer.crm, trainer.task
    was_training = (model.training, crm.training)
    model.train()
    crm.train()
    rng = trainer.redact_rng.get_state()
    try:
        with frozen_norm_stats(model), frozen_norm_stats(crm):
            preds = model(batch["image"])
            task_loss = task.loss(preds, batch)["task_loss"]
            with torch.autocast(trainer.device.type, enabled=False):
                redacted = trainer.redact(batch["image"], trainer.redact_rng)
            cond = trainer.condition(preds)
            regenerated = crm(redacted, cond)
            regen = regeneration_loss(regenerated, batch["image"], trainer.cfg.dejavu.loss,
                                      trainer.lpips)["dejavu_loss"]
            params = [p for p in model.parameters() if p.requires_grad]
            task_norm = _grad_norm(task_loss, params)
            regen_norm = _grad_norm(regen, params)
            with torch.no_grad():
                mse = float(F.mse_loss(regenerated.float(), batch["image"]))
                blind = float(F.mse_loss(crm(redacted, torch.zeros_like(cond)).float(),
                                         batch["image"]))
    finally:
        trainer.redact_rng.set_state(rng)
        model.train(was_training[0])
        crm.train(was_training[1])
    return {"crm_mse": mse, "crm_mse_zero_condition": blind,
            "crm_reliance": 1.0 - mse / blind if blind > 0 else 0.0,
            "regen_grad_ratio": regen_norm / task_norm if task_norm > 0 else math.inf}


def is_inert(metrics: dict[str, float]) -> bool:
    """A DejaVu run whose CRM ignores the prediction or whose gradient does not reach
    the network (at the epoch ``metrics`` are from); False for metrics without the two
    measurements (a run without a CRM cannot be inert in this sense)."""
    reliance = metrics.get("crm_reliance")
    ratio = metrics.get("regen_grad_ratio")
    if reliance is None or ratio is None:
        return False
    return reliance < INERT_RELIANCE or ratio < INERT_GRAD_RATIO
