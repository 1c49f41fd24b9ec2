"""``python -m dejavu_tune.train``: one configuration trained locally, optionally beside
its baseline; a user error is one line and exit 2 (``--debug``: its traceback).

The command lives apart from the training step (``trainer``): it pre-trains a CRM into
the store first when the store lacks it, and the step module imports nothing of that."""

from __future__ import annotations

import argparse
import json

from dejavu_tune.cli import check_output_dir, command_parser, run
from dejavu_tune.config import ConfigError, TrainConfig
from dejavu_tune.data import check_batch_fits, training_images
from dejavu_tune.errors import DejavuError
from dejavu_tune.models.device import resolve_device
from dejavu_tune.train.trainer import NonFiniteGradientError, NonFiniteLossError, train

__all__ = ["DivergedError", "main", "with_stored_crm"]


class DivergedError(DejavuError, FloatingPointError):
    """A run of ``python -m dejavu_tune.train`` whose loss or gradients stopped being
    finite: its settings (the learning rate, the precision) are the user's to change."""


def _format(metrics: dict[str, float]) -> str:
    keys = ("epoch", "loss", "task_loss", "dejavu_loss", "mse", "lpips", "sec_per_iter")
    shown = [k for k in keys if k in metrics] + [k for k in metrics if k.startswith("val_")]
    return "  ".join(f"{k}={metrics[k]:.4g}" for k in shown)


def with_stored_crm(cfg: TrainConfig, store: str) -> TrainConfig:
    """``cfg`` starting from stored CRM weights, pre-trained first if the store lacks them
    (what a search's CRM stage does for every architecture it samples)."""
    from dejavu_tune.train import crm_store
    from dejavu_tune.train.crm_pretrain import pretrain_into
    from dejavu_tune.train.crm_store import CRMPlan

    loss = cfg.dejavu.loss
    plan = CRMPlan(store=store, device=cfg.device,
                   loss={"gamma1": loss.gamma1, "gamma2": loss.gamma2})
    spec = plan.spec(cfg)
    if spec is None:
        return cfg
    if not plan.has(spec):
        print(f"pre-training the CRM ({spec.describe()}, {spec.settings['iterations']} "
              f"iterations) into {plan.directory(spec)}", flush=True)
        metrics = pretrain_into(spec, plan.directory(spec))
        print(f"  reliance on the conditioning: {metrics['reliance']:.2f} after "
              f"{int(metrics['iterations'])} iterations", flush=True)
    metrics = json.loads((plan.directory(spec) / crm_store.METRICS_FILE).read_text())
    short = crm_store.shortfall(spec.describe(), metrics, plan.settings.min_reliance)
    if short:
        raise ConfigError(short)
    return plan.attach(cfg)


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m dejavu_tune.train",
                            "Train one configuration on the built-in data.")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. dejavu.crm.kind=crm_f (repeatable)")
    parser.add_argument("--compare", action="store_true",
                        help="also train the baseline (DejaVu off) and print the gain")
    parser.add_argument("--crm-store", default="runs/crm_store",
                        help="stored CRM weights (dejavu.crm.init=pretrained): found here, "
                             "else pre-trained and stored here first")
    return parser


def _preflight(cfg: TrainConfig, store: str) -> None:
    """What fails at once, checked before a CRM is pre-trained for minutes: the device,
    the plug-ins, the dataset's layout, the weights files, the store."""
    from dejavu_tune.data import check_data
    from dejavu_tune.method.crm import read_crm_checkpoint
    from dejavu_tune.method.text_supervision import check_text_encoder
    from dejavu_tune.models import check_network
    from dejavu_tune.tasks import check_task

    resolve_device(cfg.device)
    check_data(cfg.data)
    if (images := training_images(cfg.data)) is not None:  # not after a CRM's pre-training
        check_batch_fits(cfg.optim.batch_size, cfg.data, images)
    check_task(cfg.task)
    check_network(cfg.model)
    if cfg.dejavu.loss.ts_encoder:
        check_text_encoder(cfg.dejavu.loss.ts_encoder)
    if cfg.dejavu.uses_crm and cfg.dejavu.crm.weights:
        read_crm_checkpoint(cfg.dejavu.crm.weights)
    # read-only is fine for a store that holds the weights already
    check_output_dir(store, "--crm-store", writable=False)


def main(argv: list[str] | None = None) -> int:
    """Local debug run: ``python -m dejavu_tune.train [--set KEY=VALUE ...] [--compare]``;
    a user error is one line and exit 2 (``--debug``: its traceback)."""
    return run(_main, argv)


def _main(argv: list[str]) -> int:
    from dejavu_tune.config import parse_override

    args = _parser().parse_args(argv)
    cfg = TrainConfig().replace(**dict(parse_override(o) for o in args.set))
    _preflight(cfg, args.crm_store)
    cfg = with_stored_crm(cfg, args.crm_store)
    runs = {"dejavu": cfg}
    if args.compare:
        runs = {"baseline": cfg.replace(**{"dejavu.enabled": False}), **runs}
    final = {}
    for name, run_cfg in runs.items():
        print(f"[{name}]")
        try:
            history = train(run_cfg, on_epoch=lambda m: print("  " + _format(m), flush=True))
        except (NonFiniteLossError, NonFiniteGradientError) as exc:
            raise DivergedError(f"{name}: {exc}: the run diverged; expected settings it "
                                "trains with (a lower optim.lr, optim.grad_clip > 0 or "
                                "precision=fp32)") from exc
        final[name] = {k: v for k, v in history[-1].items() if k.startswith("val_")}
    if args.compare:
        for key, base in final["baseline"].items():
            value = final["dejavu"][key]
            print(f"{key} baseline={base:.4f} dejavu={value:.4f} gain={value - base:+.4f}")
    return 0
