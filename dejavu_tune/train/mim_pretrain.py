"""MAE-style pre-training of the base network (``model.mae``, seed Table B.2): before its
task training, the network learns to reconstruct masked patches of the training images.

Each step masks ``mask_ratio`` of the ``patch`` x ``patch`` patches of every image (the
masked pixels set to 0, the mean grey of [-1, 1] images), passes the masked batch through
the network's trunk (its aggregated features, the ones the task heads read) and a light
``PixelDecoder``, and minimises the MSE on the masked pixels only. The decoder is then
dropped; the task heads are untouched (they never see the pre-training).

Deterministic per run seed: the decoder's initialisation, the batch order and the masks
draw from their own seeded generators, the global RNG is left as it was, and the task
training's own data order is not consumed, so it runs exactly as the baseline's would
from the pre-trained weights. The trainer runs this once, before its first epoch, and
its checkpoint records that it did (``Trainer.pretrain``).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import nn

from dejavu_tune.config import ConfigError, TrainConfig
from dejavu_tune.method.mim import PixelDecoder, masked_mse, patch_mask

__all__ = ["mim_pretrain", "WEIGHT_DECAY"]

WEIGHT_DECAY = 0.05  # MAE's pre-training AdamW weight decay
# Offsets from the run seed: the pre-training's streams differ from the task training's
# (data_rng = seed, redact_rng = seed + 1) while following the same seed.
_DECODER_SEED, _DATA_SEED, _MASK_SEED = 1_000, 1_001, 1_002


def mim_pretrain(model: nn.Module, dataset: Any, cfg: TrainConfig,
                 device: torch.device) -> dict[str, float]:
    """Pre-train ``model`` in place; returns ``mae_loss`` (the last pass's mean masked
    MSE) and ``mae_pretrain_s`` (its wall time). A NaN or infinite loss raises
    ``FloatingPointError`` (the trainer reports it as its ``NonFiniteLossError``)."""
    mae, batch_size = cfg.model.mae, cfg.optim.batch_size
    trunk = getattr(model, "trunk", None)
    if trunk is None:
        raise ConfigError(f"model.mae.epochs={mae.epochs} is not allowed for "
                          f"model.name={cfg.model.name!r}: expected 0 (the pre-training "
                          "decodes a built-in network's trunk features)")
    start = time.perf_counter()
    iters = max(len(dataset) // batch_size, 1)
    total = mae.epochs * iters
    forked = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked):
        torch.manual_seed(cfg.seed + _DECODER_SEED)
        decoder = PixelDecoder(trunk.out_channels).to(device)
        data_rng = torch.Generator().manual_seed(cfg.seed + _DATA_SEED)
        mask_rng = torch.Generator(device).manual_seed(cfg.seed + _MASK_SEED)
        params = list(model.parameters()) + list(decoder.parameters())
        optimizer = torch.optim.AdamW(params, lr=mae.lr, weight_decay=WEIGHT_DECAY)
        # MAE's cosine decay to 0 (without its warm-up: a few epochs here, not 800)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda it: 0.5 * (1.0 + math.cos(math.pi * min(it / total, 1.0))))
        model.train()
        decoder.train()
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, drop_last=len(dataset) >= batch_size,
            sampler=torch.utils.data.RandomSampler(dataset, generator=data_rng),
            num_workers=cfg.data.num_workers, generator=data_rng)
        for epoch in range(1, mae.epochs + 1):
            losses = []
            for _, batch in zip(range(iters), loader, strict=False):
                images = batch["image"].to(device)
                mask = patch_mask(images.shape, mae.patch, mae.mask_ratio, mask_rng, device)
                features = trunk(images * (1.0 - mask), getattr(model, "attention", None))
                loss = masked_mse(decoder(features, images.shape[-2:]), images, mask)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(f"the MAE-style pre-training's loss became "
                                             f"{value} in its pass {epoch} of {mae.epochs}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(value)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {"mae_loss": sum(losses) / len(losses),
            "mae_pretrain_s": time.perf_counter() - start}
