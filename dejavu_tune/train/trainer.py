"""The DejaVu training step as importable, side-effect-free code.

``Trainer`` owns one run's state (networks, optimiser, schedule, RNG) and exposes
``train_epoch``/``evaluate``/``state_dict``/``load_state_dict``; ``train`` is the
pure function a unit test, a local debug run and a Ray Tune trainable all call.
The baseline is the very same step with ``dejavu.enabled = false``; seed Table B.2's
controls are ``dejavu.mode = augment`` (the redacted images as extra inputs, no CRM) and
``model.mae`` (MAE-style pre-training before the first epoch, ``mim_pretrain``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from dejavu_tune.config import TrainConfig
from dejavu_tune.data import build_heldout, build_splits, check_batch_fits
from dejavu_tune.method.crm import build_crm, intended_use
from dejavu_tune.method.losses import dejavu_objective, regeneration_loss
from dejavu_tune.method.redaction import build_redaction
from dejavu_tune.method.text_supervision import (
    describe_scene,
    load_text_encoder,
    text_supervision_loss,
)
from dejavu_tune.models import build_model
from dejavu_tune.models.device import resolve_device
from dejavu_tune.tasks import Batch, TaskError, build_task
from dejavu_tune.train.distributed import (
    JointModule,
    Ranks,
    ShardedBatches,
    mean_across,
    shard_redaction,
    sum_meter,
    sync_batchnorm,
)
from dejavu_tune.train.figures import CHANGE_COLUMN, change_map

__all__ = ["OPTIMIZERS", "Trainer", "train", "NonFiniteLossError", "NonFiniteGradientError",
           "frozen_norm_stats", "resolve_device", "heldout_name"]


# name -> optimiser builder (parameters, OptimConfig); the names are config.OPTIMIZERS
OPTIMIZERS: dict[str, Callable[[Any, Any], torch.optim.Optimizer]] = {
    "sgd": lambda params, opt: torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum,
                                               weight_decay=opt.weight_decay),
    "adamw": lambda params, opt: torch.optim.AdamW(params, lr=opt.lr,
                                                   weight_decay=opt.weight_decay),
}


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the run cannot continue."""


class NonFiniteGradientError(FloatingPointError):
    """Gradients became NaN or infinite (exploding gradients, a diverging CRM)."""


@contextlib.contextmanager
def frozen_norm_stats(model: nn.Module) -> Iterator[None]:
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


def heldout_name(metric: str) -> str:
    """The held-out split's name of a search-split metric: val_miou -> heldout_miou."""
    return "heldout_" + metric.removeprefix("val_")


class Trainer:
    """One training run of a base network, with or without DejaVu; with ``ranks`` (inside
    an initialised process group) one of its data-parallel ranks (``train.distributed``)."""

    def __init__(self, cfg: TrainConfig, lpips_net: nn.Module | None = None,
                 ranks: Ranks | None = None) -> None:
        self.cfg = cfg
        self.ranks = ranks
        if ranks is not None:
            ranks.local_batch(cfg.optim.batch_size)  # refused before anything is built
        self.device = resolve_device(cfg.device)
        self.train_set, self.val_set = build_splits(cfg.data)
        self.task = build_task(cfg.task, self.train_set, f"data.name={cfg.data.name!r}")

        dv, model_cfg = cfg.dejavu, cfg.model
        # Weight init draws from the global RNG; fork it so a run leaves no trace behind.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.model = build_model(model_cfg.name, self.task.heads(), width=model_cfg.width,
                                     pretrained=model_cfg.pretrained,
                                     attention=model_cfg.attention, options=model_cfg.options)
            self.crm = (build_crm(dv.crm, self.task.condition_channels, use=intended_use(cfg))
                        if dv.uses_crm else None)
        self.model.to(self.device)
        if ranks is not None and model_cfg.sync_batchnorm:
            self.model = sync_batchnorm(self.model, self.device)
        params = list(self.model.parameters())
        if self.crm is not None:
            self.crm.to(self.device)
            params += list(self.crm.parameters())
        # ``redact`` draws for the images it is given (figures, diagnostics: the same batch
        # on every rank); training batches are a rank's rows of the global batch
        self.redact = build_redaction(dv.redaction) if dv.enabled else None
        self._redact_rows = (shard_redaction(self.redact, ranks)
                             if ranks is not None and self.redact is not None else self.redact)
        self.lpips = None
        if dv.uses_crm and dv.loss.gamma1 > 0:
            if lpips_net is None:
                from dejavu_tune.method.lpips import shared_lpips

                lpips_net = shared_lpips(self.device)
            self.lpips = lpips_net.to(self.device)
        self.text_encoder = None
        if dv.uses_crm and dv.loss.ts_weight > 0:
            if "seg" not in self.task.targets:
                raise TaskError("dejavu.loss.ts_weight > 0 describes scenes by their "
                                "segmentation classes: expected a task with seg targets")
            self.text_encoder = load_text_encoder(dv.loss.ts_encoder, self.device)

        opt = cfg.optim
        self.optimizer: torch.optim.Optimizer = OPTIMIZERS[opt.name](params, opt)
        check_batch_fits(opt.batch_size, cfg.data, len(self.train_set))
        self.iters_per_epoch = len(self.train_set) // opt.batch_size
        # optim.iterations (the seed's iteration budgets) ends the last epoch early
        self.total_iterations = total = opt.total_iterations(self.iters_per_epoch)
        # Polynomial decay (seed C.1): lr * (1 - it / total) ** power, reaching 0 at the end.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda it: max(1.0 - it / total, 0.0) ** opt.poly_power)
        self.data_rng = torch.Generator().manual_seed(cfg.seed)
        self.redact_rng = torch.Generator(self.device).manual_seed(cfg.seed + 1)
        self.epoch = 0
        self.iteration = 0
        # model.mae: whether the MAE-style pre-training has run (the checkpoint keeps it, so
        # a resumed trial never runs it twice), and what it measured
        self.mae_state: dict[str, Any] = {"done": cfg.model.mae.epochs == 0}
        autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
        self._autocast_dtype = autocast_dtype
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")
        self._ddp: nn.Module | None = None
        if ranks is not None:
            self._ddp = nn.parallel.DistributedDataParallel(
                JointModule(self.model, self.crm, self.forward_losses),
                device_ids=[self.device.index] if self.device.type == "cuda" else None)

    # -- one step ---------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast_dtype)

    def forward_losses(self, batch: Batch) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Loss parts of one batch, plus the predictions and images for figures."""
        dv, task, images = self.cfg.dejavu, self.task, batch["image"]
        if dv.enabled and not dv.uses_crm:
            return self._augment_losses(batch)
        with self._autocast():
            preds = self.model(images)
            task_parts = task.loss(preds, batch)
            regen_parts, cl, ts, extras = None, None, None, {"preds": preds}
            if self.crm is not None:
                with torch.autocast(self.device.type, enabled=False):
                    redacted = self._redact_rows(images, self.redact_rng)
                regenerated = self.crm(redacted, self.condition(preds))
                regen_parts = regeneration_loss(regenerated, images, dv.loss, self.lpips)
                if dv.loss.cl_weight > 0:
                    with frozen_norm_stats(self.model):
                        cl = task.consistency(self.model(regenerated), preds)
                if self.text_encoder is not None:
                    texts = describe_scene(batch["seg"], self.train_set.class_names)
                    ts = text_supervision_loss(self.text_encoder, regenerated, texts)
                extras.update(redacted=redacted, regenerated=regenerated)
        parts = dejavu_objective(task_parts.pop("task_loss"), regen_parts, dv.loss, cl, ts)
        return {**task_parts, **parts}, extras

    def _augment_losses(self, batch: Batch) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """``dejavu.mode: augment``: the clean and the redacted images in one batch of 2B
        with the same labels; ``loss`` is the mean of their task losses, which is the task
        loss of that doubled batch (equal label counts in both halves), so the gradient's
        scale and the learning rate stay the baseline's."""
        images, size = batch["image"], batch["image"].shape[0]
        with torch.autocast(self.device.type, enabled=False):
            redacted = self._redact_rows(images, self.redact_rng)
        with self._autocast():
            both = self.model(torch.cat([images, redacted]))
            preds = {k: v[:size] for k, v in both.items()}
            clean = self.task.loss(preds, batch)
            augmented = self.task.loss({k: v[size:] for k, v in both.items()}, batch)
        task_loss, augment_loss = clean.pop("task_loss"), augmented["task_loss"]
        parts = {**clean, "task_loss": task_loss, "augment_loss": augment_loss,
                 "loss": (task_loss + augment_loss) / 2}
        return parts, {"preds": preds, "redacted": redacted}

    def pretrain(self) -> dict[str, float]:
        """The MAE-style pre-training (``model.mae``), once per run: its metrics the first
        time, {} after it ran or when it is off."""
        if self.mae_state["done"]:
            return {}
        from dejavu_tune.train.mim_pretrain import mim_pretrain

        try:
            metrics = mim_pretrain(self.model, self.train_set, self.cfg, self.device)
        except FloatingPointError as exc:
            raise NonFiniteLossError(str(exc)) from None
        self.mae_state = {"done": True, **metrics}
        return metrics

    def condition(self, preds: Batch) -> torch.Tensor:
        """The CRM's conditioning from the network's raw outputs (dejavu.crm.condition)."""
        crm = self.cfg.dejavu.crm
        return self.task.condition_as(preds, crm.condition, crm.temperature)

    def train_step(self, batch: Batch) -> dict[str, float]:
        self.model.train()
        if self.crm is not None:
            self.crm.train()
        parts, _ = (self._ddp if self._ddp is not None else self.forward_losses)(batch)
        loss = parts["loss"]
        values = {k: float(v.detach()) for k, v in parts.items()}
        if self.ranks is not None:
            # every rank judges the same (mean) loss: one rank raising alone would leave
            # the others waiting in the gradients' all-reduce
            values = mean_across(values, self.device)
        value = values["loss"]
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"loss became {value} at epoch {self.epoch + 1}, iteration {self.iteration + 1} "
                f"(parts: {', '.join(f'{k}={v:.4g}' for k, v in values.items())})")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # a no-op without fp16 loss scaling
        if not self.scaler.is_enabled():
            # A finite loss can still have inf/NaN gradients (a square root or a norm at
            # zero); one such step would silently wreck the weights.
            self._check_gradients()
        if self.cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(
                [p for g in self.optimizer.param_groups for p in g["params"]],
                self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        # fp16 scaling skips steps whose gradients overflow and halves its scale each time;
        # a scale below 1 means every recent step overflowed: the run has diverged.
        if self.scaler.is_enabled() and self.scaler.get_scale() < 1.0:
            raise NonFiniteGradientError(
                f"fp16 loss scale fell to {self.scaler.get_scale():.3g} at epoch "
                f"{self.epoch + 1}, iteration {self.iteration + 1}: the gradients overflow "
                "at every step")
        self.scheduler.step()
        self.iteration += 1
        return values

    def _check_gradients(self) -> None:
        for name, module in (("network", self.model), ("CRM", self.crm)):
            grads = [p.grad for p in (module.parameters() if module is not None else ())
                     if p.grad is not None]
            if not grads:
                continue
            norm = float(nn.utils.get_total_norm(grads))
            if not math.isfinite(norm):
                raise NonFiniteGradientError(
                    f"the {name}'s gradient norm became {norm} at epoch {self.epoch + 1}, "
                    f"iteration {self.iteration + 1} (the loss was finite)")

    def _loader(self, dataset: Any, shuffle: bool) -> torch.utils.data.DataLoader:
        workers, batch_size = self.cfg.data.num_workers, self.cfg.optim.batch_size
        # The loader draws its workers' base seed from ``generator``: without one it would
        # consume the global RNG, which a run must leave alone.
        generator = self.data_rng if shuffle else torch.Generator().manual_seed(0)
        common = {"num_workers": workers, "pin_memory": self.device.type == "cuda",
                  "generator": generator}
        if shuffle and self.ranks is not None:
            return torch.utils.data.DataLoader(dataset, batch_sampler=ShardedBatches(
                dataset, batch_size, self.data_rng, self.ranks), **common)
        if self.ranks is not None:
            dataset = torch.utils.data.Subset(dataset, self.ranks.shard(len(dataset)))
        # The sampler draws from data_rng, which the checkpoint saves: a resumed run sees
        # the same batches as an uninterrupted one.
        sampler = (torch.utils.data.RandomSampler(dataset, generator=self.data_rng) if shuffle
                   else torch.utils.data.SequentialSampler(dataset))
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                                           drop_last=shuffle, **common)

    def _to_device(self, batch: Batch) -> Batch:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def first_batch(self, count: int, split: str = "train") -> Batch:
        """The split's first ``count`` samples as one batch on the device, as a copy (the
        splits may be shared by every trial of the process)."""
        dataset = self.train_set if split == "train" else self.val_set
        samples = [dataset[i] for i in range(min(count, len(dataset)))]
        batch = torch.utils.data.default_collate(samples)
        return self._to_device({k: v.clone() for k, v in batch.items()})

    def _batches(self) -> Iterator[Batch]:
        loader = self._loader(self.train_set, shuffle=True)
        steps = min(self.iters_per_epoch, self.total_iterations - self.iteration)
        for _, batch in zip(range(steps), loader, strict=False):
            yield self._to_device(batch)

    def epochs(self) -> Iterator[dict[str, float]]:
        """Train and evaluate every epoch still to run (after a restored one, the next);
        yields each epoch's metrics: the loop of ``train()`` and of a search's trial.
        With ``data.heldout`` the last epoch also scores the held-out split."""
        while self.epoch < self.cfg.optim.epochs:
            metrics = self.train_epoch()
            metrics.update(self.evaluate())
            if self.cfg.data.heldout and self.epoch == self.cfg.optim.epochs:
                metrics.update(self.evaluate_heldout())
            yield metrics

    def train_epoch(self) -> dict[str, float]:
        """One pass over the training split; returns mean losses and seconds per iteration
        (the first also runs and reports the MAE-style pre-training, timed apart)."""
        pretrained = self.pretrain()
        sums: dict[str, float] = {}
        steps = 0  # below iters_per_epoch in an iteration budget's last epoch
        start = time.perf_counter()
        for batch in self._batches():
            steps += 1
            for key, value in self.train_step(batch).items():
                sums[key] = sums.get(key, 0.0) + value
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - start
        self.epoch += 1
        metrics = {k: v / steps for k, v in sums.items()}
        metrics.update(epoch=float(self.epoch), sec_per_iter=elapsed / steps,
                       lr=self.optimizer.param_groups[0]["lr"], **pretrained)
        return metrics

    # -- evaluation ---------------------------------------------------------------
    def _noisy(self, images: torch.Tensor, first: int) -> torch.Tensor:
        """Validation inputs with seed Table B.1's Gaussian noise; image ``first`` onwards."""
        sigma = self.cfg.data.input_noise
        if sigma == 0:
            return images
        # Seeded per image index: every evaluation of every trial sees the same noisy inputs,
        # however the split is batched.
        noise = torch.stack([
            torch.randn(images.shape[1:], generator=torch.Generator().manual_seed(
                self.cfg.data.seed * 1_000_003 + first + i + 7))
            for i in range(images.shape[0])]).to(images.device)
        return (images + sigma * noise).clamp(-1, 1)

    @torch.no_grad()
    def evaluate(self, dataset: Any = None) -> dict[str, float]:
        """The task's metrics on ``dataset`` (default: the search split); every rank scores
        its shard and the meters are summed, so all ranks return the whole split's."""
        self.model.eval()
        meter = self.task.meter()
        dataset = self.val_set if dataset is None else dataset
        seen = self.ranks.shard(len(dataset)).start if self.ranks is not None else 0
        for batch in self._loader(dataset, shuffle=False):
            batch = self._to_device(batch)
            images = self._noisy(batch["image"], seen)
            seen += images.shape[0]
            with self._autocast():
                preds = self.model(images)
            meter.update(self.task.decode({k: v.float() for k, v in preds.items()}), batch)
        if self.ranks is not None:
            sum_meter(meter)
        return meter.compute()

    def evaluate_heldout(self) -> dict[str, float]:
        """The metrics on the held-out split, named ``heldout_*``."""
        return {heldout_name(k): v for k, v in self.evaluate(build_heldout(self.cfg.data)).items()}

    def legend(self) -> list[tuple[str, tuple[int, int, int]]]:
        """The class colours of ``sample``'s pictures (``Task.legend``)."""
        return self.task.legend()

    @torch.no_grad()
    def sample(self, count: int = 4) -> dict[str, torch.Tensor]:
        """Figure columns (RGB in [-1, 1]): input, each target and prediction, redacted,
        regenerated and what the CRM changed, for the first ``count`` validation images."""
        self.model.eval()
        if self.crm is not None:
            self.crm.eval()
        batch = self.first_batch(count, "val")
        rng_state = self.redact_rng.get_state()
        _, extras = self.forward_losses(batch)
        self.redact_rng.set_state(rng_state)  # figures must not change the training stream
        truth = self.task.visualise(batch)
        pred = self.task.visualise(self.task.decode(extras["preds"]))
        out = {"input": batch["image"]}
        for key in truth:
            out[f"{key} truth"] = truth[key]
            out[f"{key} prediction"] = pred[key]
        for key in ("redacted", "regenerated"):
            if key in extras:
                out[key] = extras[key].float().clamp(-1, 1)
        if "regenerated" in out:
            out[CHANGE_COLUMN] = change_map(out["regenerated"], out["redacted"])
        return {k: v.detach().float().cpu() for k, v in out.items()}

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
            "mae": dict(self.mae_state),
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
        # a checkpoint from before model.mae existed: any trained epoch means it is done
        self.mae_state = dict(state.get("mae") or {"done": self.mae_state["done"]
                                                   or self.epoch > 0})


def train(cfg: TrainConfig | dict[str, Any],
          on_epoch: Callable[[dict[str, float]], None] | None = None,
          lpips_net: nn.Module | None = None) -> list[dict[str, float]]:
    """Train for ``cfg.optim.epochs`` epochs; returns one metrics dict per epoch."""
    if not isinstance(cfg, TrainConfig):
        cfg = TrainConfig.from_dict(cfg)
    trainer = Trainer(cfg, lpips_net=lpips_net)
    history = []
    for metrics in trainer.epochs():
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
    return history

