"""Pre-train a CRM before DejaVu training (seed C.1: "We initialize the CRM module with
stored weights").

The CRM learns to regenerate redacted images conditioned on the *ground truth*
(one-hot labels, depth, normals: ``Task.target_condition``), the prediction an
ideal base network would make; any task and dataset of the training config work. The
result is a ``dejavu-crm/1`` file for ``dejavu.crm.weights``::

    python -m dejavu_tune.crm_pretrain --out crm.pt --iterations 300 \\
        --set dejavu.crm.kind=crm_f --set dejavu.crm.stages=2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import default_collate

from dejavu_tune.config import ConfigError, TrainConfig, parse_override
from dejavu_tune.crm import build_crm, save_crm
from dejavu_tune.data import build_splits
from dejavu_tune.losses import regeneration_loss
from dejavu_tune.lpips import LPIPSWeightsError
from dejavu_tune.redaction import build_redaction
from dejavu_tune.tasks import build_task
from dejavu_tune.train import resolve_device

__all__ = ["pretrain_crm", "main"]


def _batch(dataset: object, indices: list[int], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in default_collate([dataset[i] for i in indices]).items()}


def pretrain_crm(cfg: TrainConfig, iterations: int, out: str | Path,
                 lpips_net: nn.Module | None = None, lr: float = 1e-3) -> dict[str, float]:
    """Train ``cfg.dejavu.crm`` alone on ground-truth conditioning; save it to ``out``."""
    device = resolve_device(cfg.device)
    crm_cfg, loss_cfg = cfg.dejavu.crm, cfg.dejavu.loss
    train, val = build_splits(cfg.data)
    task = build_task(cfg.task, train, f"data.name={cfg.data.name!r}")
    channels = task.condition_channels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        crm = build_crm(crm_cfg, channels).to(device)
    if lpips_net is None and loss_cfg.gamma2 > 0:
        from dejavu_tune.lpips import load_lpips

        lpips_net = load_lpips(device)
    redact = build_redaction(cfg.dejavu.redaction)
    # Adam: the CRM is a plain regression network and has no schedule to match here.
    optimizer = torch.optim.Adam(crm.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    redact_gen = torch.Generator(device).manual_seed(cfg.seed + 1)
    bs = min(cfg.optim.batch_size, len(train))
    crm.train()
    for _ in range(iterations):
        batch = _batch(train, torch.randint(0, len(train), (bs,), generator=gen).tolist(), device)
        images, cond = batch["image"], task.target_condition(batch)
        regenerated = crm(redact(images, redact_gen), cond)
        loss = regeneration_loss(regenerated, images, loss_cfg, lpips_net)["dejavu_loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    crm.eval()
    with torch.no_grad():
        batch = _batch(val, list(range(min(bs, len(val)))), device)
        images, cond = batch["image"], task.target_condition(batch)
        redacted = redact(images, torch.Generator(device).manual_seed(0))
        parts = regeneration_loss(crm(redacted, cond), images, loss_cfg, lpips_net)
        identity = F.mse_loss(redacted, images)
    save_crm(crm, out, crm_cfg, channels)
    return {"val_mse": float(parts["mse"]), "val_lpips": float(parts["lpips"]),
            "val_mse_of_redacted": float(identity)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dejavu_tune.crm_pretrain",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="where to write the CRM weights")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a training-config key, e.g. dejavu.crm.kind=crm_f")
    args = parser.parse_args(argv)
    try:
        if args.iterations < 1:
            raise ConfigError(f"--iterations={args.iterations} is not allowed: expected 1 or more")
        cfg = TrainConfig().replace(**dict(parse_override(o) for o in args.set))
        if cfg.dejavu.crm.weights:
            raise ConfigError("dejavu.crm.weights must be unset when pre-training a CRM")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = pretrain_crm(cfg, args.iterations, args.out)
    except LPIPSWeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: " + ", ".join(f"{k}={v:.4f}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
