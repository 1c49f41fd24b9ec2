"""Pre-train a CRM before DejaVu training (seed C.1: "We initialize the CRM module with
stored weights").

The CRM learns to regenerate redacted images conditioned on the *ground truth*
(one-hot labels, depth, normals: ``Task.target_condition``), the prediction an
ideal base network would make; any task and dataset of the training config work.
Each iteration draws its redaction from ``redactions`` (a search passes every
redaction it can sample), so one CRM learns them all. A search runs this for every
CRM architecture it samples (``dejavu_tune.train.crm_store``); by hand it writes a
``dejavu-crm/1`` file for ``dejavu.crm.weights``::

    python -m dejavu_tune.train.crm_pretrain --out crm.pt --iterations 300 \\
        --set dejavu.crm.kind=crm_f --set dejavu.crm.stages=2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import default_collate

from dejavu_tune.cli import OneLineParser, check_output_file, run
from dejavu_tune.config import ConfigError, RedactionConfig, TrainConfig, parse_override
from dejavu_tune.data import build_splits
from dejavu_tune.method.crm import build_crm, intended_use, save_crm
from dejavu_tune.method.losses import regeneration_loss
from dejavu_tune.method.redaction import build_redaction
from dejavu_tune.models.device import resolve_device
from dejavu_tune.tasks import build_task
from dejavu_tune.train.crm_store import CHECK_EVERY, PretrainSettings

__all__ = ["PretrainResult", "pretrain_crm", "pretrain_into", "main"]


@dataclass
class PretrainResult:
    metrics: dict[str, float]
    columns: dict[str, torch.Tensor]  # figure columns (dejavu_tune.train.figures)


def _batch(dataset: object, indices: list[int], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in default_collate([dataset[i] for i in indices]).items()}


def pretrain_crm(cfg: TrainConfig, iterations: int, out: str | Path,
                 lpips_net: nn.Module | None = None, lr: float = 1e-3,
                 redactions: Sequence[RedactionConfig] | None = None, *,
                 min_reliance: float = 0.0, max_iterations: int | None = None,
                 condition_dropout: float = 0.0) -> PretrainResult:
    """Train ``cfg.dejavu.crm`` alone on ground-truth conditioning; save it to ``out``.

    ``iterations`` first; while ``reliance`` is below ``min_reliance``, ``CHECK_EVERY``
    more at a time, up to ``max_iterations`` in all. ``condition_dropout``: the share of
    training images whose conditioning is zeroed, so that the CRM has seen the zeroed
    condition that ``reliance`` measures against.

    Metrics on the first validation batch (images the CRM never trains on), averaged over
    up to 8 of the redactions: the regeneration's MSE and LPIPS, the MSE with the
    conditioning zeroed, ``reliance`` = 1 - MSE / MSE without it (0: the CRM ignores the
    conditioning), and ``iterations``, how many it trained."""
    device = resolve_device(cfg.device)
    crm_cfg = dataclasses.replace(cfg.dejavu.crm, init="scratch", weights=None)
    loss_cfg = cfg.dejavu.loss
    redactions = list(redactions or [cfg.dejavu.redaction])
    train, val = build_splits(cfg.data)
    task = build_task(cfg.task, train, f"data.name={cfg.data.name!r}")
    channels = task.condition_channels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        crm = build_crm(crm_cfg, channels).to(device)
    if lpips_net is None and loss_cfg.gamma1 > 0:
        from dejavu_tune.method.lpips import load_lpips

        lpips_net = load_lpips(device)
    redacts = [build_redaction(r) for r in redactions]
    # Adam: the CRM is a plain regression network and has no schedule to match here.
    optimizer = torch.optim.Adam(crm.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    redact_gen = torch.Generator(device).manual_seed(cfg.seed + 1)
    bs = min(cfg.optim.batch_size, len(train))

    def train_for(count: int) -> None:
        crm.train()
        for _ in range(count):
            batch = _batch(train, torch.randint(0, len(train), (bs,), generator=gen).tolist(),
                           device)
            redact = redacts[int(torch.randint(0, len(redacts), (1,), generator=gen))]
            images, cond = batch["image"], task.target_condition(batch)
            if condition_dropout > 0:
                kept = (torch.rand(len(cond), generator=gen) >= condition_dropout).to(device)
                cond = cond * kept.view(-1, *([1] * (cond.dim() - 1))).to(cond.dtype)
            regenerated = crm(redact(images, redact_gen), cond)
            loss = regeneration_loss(regenerated, images, loss_cfg, lpips_net)["dejavu_loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    batch = _batch(val, list(range(min(bs, len(val)))), device)
    shown = redacts[:: max(1, len(redacts) // 8)][:8]  # spread over the pool's kinds
    train_for(iterations)
    done = iterations
    measured = _measure(crm, task, batch, shown, loss_cfg, lpips_net)
    cap = max(iterations, max_iterations or iterations)
    while min_reliance > 0 and measured[0]["reliance"] < min_reliance and done < cap:
        step = min(CHECK_EVERY, cap - done)
        train_for(step)
        done += step
        measured = _measure(crm, task, batch, shown, loss_cfg, lpips_net)
    metrics, (images, redacted, regenerated, blind) = measured
    metrics["iterations"] = float(done)
    trained_for = {**intended_use(cfg), "redaction_kinds": sorted({r.kind for r in redactions})}
    trained_for.pop("redaction_kind")
    save_crm(crm, out, crm_cfg, channels, trained_for)
    first = slice(0, 4)
    truth = task.visualise(batch)
    columns = {"input": images[first]}
    columns.update({f"{k} truth": v[first] for k, v in truth.items()})
    columns.update({"redacted": redacted[first], "regenerated": regenerated[first],
                    "without condition": blind[first]})
    return PretrainResult(metrics, {k: v.detach().float().clamp(-1, 1).cpu()
                                    for k, v in columns.items()})


def _measure(crm: nn.Module, task: object, batch: dict[str, torch.Tensor],
             redacts: list, loss_cfg: object, lpips_net: nn.Module | None
             ) -> tuple[dict[str, float], tuple[torch.Tensor, ...]]:
    """(the metrics of ``pretrain_crm`` on ``batch``, the last redaction's images for the
    figure). Each redaction draws from its own fixed seed: every measurement sees the
    same redacted images."""
    crm.eval()
    sums = {"val_mse": 0.0, "val_lpips": 0.0, "val_mse_zero_condition": 0.0,
            "val_mse_of_redacted": 0.0}
    device = batch["image"].device
    with torch.no_grad():
        images, cond = batch["image"], task.target_condition(batch)
        for i, redact in enumerate(redacts):
            redacted = redact(images, torch.Generator(device).manual_seed(i))
            regenerated = crm(redacted, cond)
            blind = crm(redacted, torch.zeros_like(cond))
            parts = regeneration_loss(regenerated, images, loss_cfg, lpips_net)
            sums["val_mse"] += float(parts["mse"]) / len(redacts)
            sums["val_lpips"] += float(parts["lpips"]) / len(redacts)
            sums["val_mse_zero_condition"] += float(F.mse_loss(blind, images)) / len(redacts)
            sums["val_mse_of_redacted"] += float(F.mse_loss(redacted, images)) / len(redacts)
    sums["reliance"] = (1.0 - sums["val_mse"] / sums["val_mse_zero_condition"]
                        if sums["val_mse_zero_condition"] > 0 else 0.0)
    return sums, (images, redacted, regenerated, blind)


def pretrain_into(spec: object, directory: str | Path,
                  lpips_net: nn.Module | None = None) -> dict[str, float]:
    """Pre-train for a ``crm_store.PretrainSpec`` into the store's ``directory``: weights,
    spec, metrics and figure appear together (a rename), or not at all."""
    from dejavu_tune.train import crm_store
    from dejavu_tune.train.figures import FIGURE_FILE, regeneration_figure

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        start = time.perf_counter()
        settings = spec.settings
        result = pretrain_crm(spec.train_config(), settings["iterations"],
                              tmp / crm_store.WEIGHTS_FILE, lpips_net, lr=settings["lr"],
                              redactions=spec.redaction_configs(),
                              min_reliance=settings.get("min_reliance", 0.0),
                              max_iterations=crm_store.iteration_cap(
                                  settings["iterations"], settings.get("max_iterations")),
                              condition_dropout=settings.get("condition_dropout", 0.0))
        result.metrics["train_s"] = time.perf_counter() - start
        regeneration_figure(result.columns).save(tmp / FIGURE_FILE)
        (tmp / crm_store.SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2))
        (tmp / crm_store.METRICS_FILE).write_text(json.dumps(result.metrics, indent=2))
        try:
            tmp.rename(directory)
        except OSError:  # another search stored the same spec meanwhile: same content
            if not (directory / crm_store.METRICS_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result.metrics


def main(argv: list[str] | None = None) -> int:
    """The command; a user error is one line and exit 2 (``--debug``: its traceback)."""
    return run(_main, argv)


def _main(argv: list[str]) -> int:
    parser = OneLineParser(prog="python -m dejavu_tune.train.crm_pretrain",
                           description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="where to write the CRM weights")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--min-reliance", type=float, default=0.0,
                        help="go on past --iterations until the reliance reaches this")
    parser.add_argument("--max-iterations", type=int, default=None,
                        help="the most iterations in all (default: 4 x --iterations)")
    parser.add_argument("--condition-dropout", type=float, default=0.1,
                        help="the share of training images whose conditioning is zeroed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a training-config key, e.g. dejavu.crm.kind=crm_f")
    args = parser.parse_args(argv)
    try:  # the space file's checks, named as the flags
        settings = PretrainSettings(iterations=args.iterations, min_reliance=args.min_reliance,
                                    max_iterations=args.max_iterations,
                                    condition_dropout=args.condition_dropout)
    except ValueError as exc:
        raise ConfigError(str(exc).replace("crm_pretrain.", "--").replace("_", "-")) from None
    cfg = TrainConfig().replace(**dict(parse_override(o) for o in args.set))
    if cfg.dejavu.crm.weights:
        raise ConfigError("dejavu.crm.weights must be unset when pre-training a CRM")
    check_output_file(args.out, "--out")
    result = pretrain_crm(cfg, settings.iterations, args.out, min_reliance=settings.min_reliance,
                          max_iterations=settings.cap,
                          condition_dropout=settings.condition_dropout)
    print(f"wrote {args.out}: " + ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
