"""The DejaVu training step as importable, side-effect-free code.

``Trainer`` owns one run's state (networks, optimiser, schedule, RNG) and exposes
``train_epoch``/``evaluate``/``state_dict``/``load_state_dict``; ``train`` is the
pure function a unit test, a local debug run and a Ray Tune trainable all call.
The baseline is the very same step with ``dejavu.enabled = false``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from dejavu_tune.config import TrainConfig
from dejavu_tune.crm import build_crm
from dejavu_tune.data import synthetic_splits
from dejavu_tune.losses import (
    cyclic_consistency,
    dejavu_objective,
    regeneration_loss,
    segmentation_loss,
)
from dejavu_tune.metrics import SegmentationMeter
from dejavu_tune.models import build_model
from dejavu_tune.redaction import build_redaction

__all__ = ["Trainer", "train", "NonFiniteLossError", "resolve_device"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the run cannot continue."""


@functools.lru_cache(maxsize=2)
def _splits(num_train: int, num_val: int, image_size: int, num_classes: int, seed: int,
            noise: float) -> tuple[Any, Any]:
    """The synthetic splits, generated once per process for trials that share a worker."""
    return synthetic_splits(num_train, num_val, image_size=image_size,
                            num_classes=num_classes, seed=seed, noise=noise)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} was asked for, but CUDA is not available here")
    return device


@contextlib.contextmanager
def _frozen_norm_stats(model: nn.Module) -> Iterator[None]:
    """Batch-norm layers keep their running statistics during the CL pass: regenerated
    images must not shift the normalisation that evaluation uses."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats and m.training]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


class Trainer:
    """One training run of a base network, with or without DejaVu."""

    def __init__(self, cfg: TrainConfig, lpips_net: nn.Module | None = None) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        data = cfg.data
        train_split, val_split = _splits(data.num_train, data.num_val, data.image_size,
                                         data.num_classes, data.seed, data.noise)
        # Copies: the cached splits are shared by every trial of this process.
        self.train_images = train_split.images.to(self.device, copy=True)
        self.train_labels = train_split.labels.to(self.device, copy=True)
        self.val_images = val_split.images.to(self.device, copy=True)
        self.val_labels = val_split.labels.to(self.device, copy=True)

        dv = cfg.dejavu
        # Weight init draws from the global RNG; fork it so a run leaves no trace behind.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.model = build_model(cfg.model.name, data.num_classes, cfg.model.width)
            self.crm = build_crm(dv.crm, data.num_classes) if dv.enabled else None
        self.model.to(self.device)
        params = list(self.model.parameters())
        if self.crm is not None:
            self.crm.to(self.device)
            params += list(self.crm.parameters())
        self.redact = build_redaction(dv.redaction) if dv.enabled else None
        self.lpips = None
        if dv.enabled and dv.loss.gamma2 > 0:
            if lpips_net is None:
                from dejavu_tune.lpips import shared_lpips

                lpips_net = shared_lpips(self.device)
            self.lpips = lpips_net.to(self.device)

        opt = cfg.optim
        self.optimizer = torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum,
                                         weight_decay=opt.weight_decay)
        self.iters_per_epoch = max(data.num_train // opt.batch_size, 1)
        total = opt.epochs * self.iters_per_epoch
        # Polynomial decay (seed C.1): lr * (1 - it / total) ** power, reaching 0 at the end.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda it: max(1.0 - it / total, 0.0) ** opt.poly_power)
        self.data_rng = torch.Generator().manual_seed(cfg.seed)
        self.redact_rng = torch.Generator(self.device).manual_seed(cfg.seed + 1)
        self.epoch = 0
        self.iteration = 0
        autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
        self._autocast_dtype = autocast_dtype
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")

    # -- one step ---------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast_dtype)

    def forward_losses(self, images: torch.Tensor,
                       labels: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Loss parts of one batch, plus the intermediate images for figures."""
        dv = self.cfg.dejavu
        with self._autocast():
            logits = self.model(images)
            task = segmentation_loss(logits, labels)
            regen_parts, cl, extras = None, None, {"logits": logits}
            if self.crm is not None:
                with torch.autocast(self.device.type, enabled=False):
                    redacted = self.redact(images, self.redact_rng)
                cond = torch.softmax(logits.float(), dim=1)
                regenerated = self.crm(redacted, cond)
                regen_parts = regeneration_loss(regenerated, images, dv.loss, self.lpips)
                if dv.loss.cl_weight > 0:
                    with _frozen_norm_stats(self.model):
                        cl = cyclic_consistency(self.model(regenerated), logits)
                extras.update(redacted=redacted, regenerated=regenerated)
        return dejavu_objective(task, regen_parts, dv.loss, cl), extras

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        self.model.train()
        if self.crm is not None:
            self.crm.train()
        parts, _ = self.forward_losses(images, labels)
        loss = parts["loss"]
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"loss became {value} at epoch {self.epoch + 1}, iteration {self.iteration + 1} "
                f"(parts: {', '.join(f'{k}={float(v.detach()):.4g}' for k, v in parts.items())})")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(
                [p for g in self.optimizer.param_groups for p in g["params"]],
                self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.iteration += 1
        return {k: float(v.detach()) for k, v in parts.items()}

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, bs = len(self.train_images), self.cfg.optim.batch_size
        order = torch.randperm(n, generator=self.data_rng).to(self.device)
        for i in range(self.iters_per_epoch):
            idx = order[i * bs:(i + 1) * bs]
            yield self.train_images[idx], self.train_labels[idx]

    def train_epoch(self) -> dict[str, float]:
        """One pass over the training split; returns mean losses and seconds per iteration."""
        sums: dict[str, float] = {}
        start = time.perf_counter()
        for images, labels in self._batches():
            for key, value in self.train_step(images, labels).items():
                sums[key] = sums.get(key, 0.0) + value
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - start
        self.epoch += 1
        metrics = {k: v / self.iters_per_epoch for k, v in sums.items()}
        metrics.update(epoch=float(self.epoch), sec_per_iter=elapsed / self.iters_per_epoch,
                       lr=self.optimizer.param_groups[0]["lr"])
        return metrics

    # -- evaluation ---------------------------------------------------------------
    def _val_inputs(self) -> torch.Tensor:
        sigma = self.cfg.data.input_noise
        if sigma == 0:
            return self.val_images
        # A fixed generator: every evaluation of every trial sees the same noisy inputs.
        gen = torch.Generator().manual_seed(self.cfg.data.seed + 7)
        noise = torch.randn(self.val_images.shape, generator=gen).to(self.device)
        return (self.val_images + sigma * noise).clamp(-1, 1)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        meter = SegmentationMeter(self.cfg.data.num_classes)
        images, bs = self._val_inputs(), self.cfg.optim.batch_size
        for i in range(0, len(images), bs):
            with self._autocast():
                logits = self.model(images[i:i + bs])
            meter.update(logits.float(), self.val_labels[i:i + bs])
        result = meter.compute()
        return {"val_miou": result["miou"], "val_pixel_acc": result["pixel_acc"]}

    @torch.no_grad()
    def sample(self, count: int = 4) -> dict[str, torch.Tensor]:
        """Validation images for a figure: input, ground truth, prediction, redacted, regenerated."""
        self.model.eval()
        if self.crm is not None:
            self.crm.eval()
        images, labels = self.val_images[:count], self.val_labels[:count]
        rng_state = self.redact_rng.get_state()
        parts, extras = self.forward_losses(images, labels)
        self.redact_rng.set_state(rng_state)  # figures must not change the training stream
        out = {"input": images, "ground_truth": labels,
               "prediction": extras["logits"].argmax(1)}
        for key in ("redacted", "regenerated"):
            if key in extras:
                out[key] = extras[key].float().clamp(-1, 1)
        return {k: v.detach().cpu() for k, v in out.items()}

    # -- checkpointing --------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "crm": self.crm.state_dict() if self.crm is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "iteration": self.iteration,
            "data_rng": self.data_rng.get_state(),
            "redact_rng": self.redact_rng.get_state().cpu(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.crm is not None:
            self.crm.load_state_dict(state["crm"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.iteration = int(state["iteration"])
        self.data_rng.set_state(state["data_rng"])
        self.redact_rng.set_state(state["redact_rng"])


def train(cfg: TrainConfig | dict[str, Any],
          on_epoch: Callable[[dict[str, float]], None] | None = None,
          lpips_net: nn.Module | None = None) -> list[dict[str, float]]:
    """Train for ``cfg.optim.epochs`` epochs; returns one metrics dict per epoch."""
    if not isinstance(cfg, TrainConfig):
        cfg = TrainConfig.from_dict(cfg)
    trainer = Trainer(cfg, lpips_net=lpips_net)
    history = []
    for _ in range(cfg.optim.epochs):
        metrics = trainer.train_epoch()
        metrics.update(trainer.evaluate())
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
    return history


def _format(metrics: dict[str, float]) -> str:
    keys = ("epoch", "loss", "task_loss", "dejavu_loss", "mse", "lpips", "val_miou",
            "sec_per_iter")
    return "  ".join(f"{k}={metrics[k]:.4g}" for k in keys if k in metrics)


def main(argv: list[str] | None = None) -> int:
    """Local debug run: ``python -m dejavu_tune.train [--set KEY=VALUE ...] [--compare]``."""
    import argparse
    import sys

    from dejavu_tune.config import ConfigError, parse_override
    from dejavu_tune.crm import CRMWeightsError
    from dejavu_tune.lpips import LPIPSWeightsError

    parser = argparse.ArgumentParser(prog="python -m dejavu_tune.train",
                                     description="Train one configuration on the built-in data.")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. dejavu.crm.kind=crm_f (repeatable)")
    parser.add_argument("--compare", action="store_true",
                        help="also train the baseline (DejaVu off) and print the gain")
    args = parser.parse_args(argv)
    try:
        cfg = TrainConfig().replace(**dict(parse_override(o) for o in args.set))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    runs = {"dejavu": cfg}
    if args.compare:
        runs = {"baseline": cfg.replace(**{"dejavu.enabled": False}), **runs}
    final = {}
    for name, run_cfg in runs.items():
        print(f"[{name}]")
        try:
            history = train(run_cfg, on_epoch=lambda m: print("  " + _format(m), flush=True))
        except (NonFiniteLossError, CRMWeightsError, LPIPSWeightsError) as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            return 1
        final[name] = history[-1]["val_miou"]
    if args.compare:
        print(f"val_miou baseline={final['baseline']:.4f} dejavu={final['dejavu']:.4f} "
              f"gain={final['dejavu'] - final['baseline']:+.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
