"""``python -m dejavu_tune.bench crm-usage``: does DejaVu reach the network, with a CRM from
scratch and with stored weights, and which stored weights work better?

One DejaVu configuration of the default space trains twice, side by side. ``stored``
starts its CRM from the default space's stored weights (pre-trained on the mixture of
every redaction the space samples, what a search uses); the other starts from scratch
(``--compare scratch``) or from weights pre-trained on the configuration's own
redaction only (``--compare matched``). Every epoch prints the two measurements of
``dejavu_tune.train.diagnostics`` on the same fixed batch: how much the CRM's regeneration
relies on the prediction, and the regeneration gradient's share of the task gradient
on the network, and both runs' validation metric. Stored weights come from (or go to)
``--crm-store``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dejavu_tune.bench.inputs import at_least, positive
from dejavu_tune.cli import check_output_dir, check_output_file

__all__ = ["add_parser", "run"]

_CONFIG = {"dejavu.crm.kind": "crm_f", "dejavu.crm.stages": 2,
           "dejavu.redaction.kind": "random_blocks", "dejavu.redaction.block_size": 8}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("crm-usage", help="regeneration reliance and gradient share: CRM from "
                                         "scratch vs stored weights")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--lr", type=float, default=0.035)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--crm-store", default="runs/crm_store")
    p.add_argument("--compare", choices=["scratch", "matched"], default="scratch",
                   help="what the default space's stored CRM (pre-trained on the mixture of "
                        "every redaction the space samples) is compared with: a CRM from "
                        "scratch, or one pre-trained on this configuration's redaction only")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="another DejaVu setting (default: CRM-F 2 stages, random blocks b=8)")
    p.add_argument("--json", help="also write the results to this file")


def run(args: argparse.Namespace) -> int:
    import torch

    from dejavu_tune.config import TrainConfig, parse_override
    from dejavu_tune.search.cli import DEFAULT_SPACE
    from dejavu_tune.search.crm_stage import plan_for
    from dejavu_tune.search.space_file import load_space
    from dejavu_tune.train.command import with_stored_crm
    from dejavu_tune.train.crm_pretrain import pretrain_into
    from dejavu_tune.train.diagnostics import crm_usage
    from dejavu_tune.train.trainer import Trainer

    at_least(1, epochs=args.epochs)
    at_least(0, seed=args.seed)
    positive(lr=args.lr)
    check_output_dir(args.crm_store, "--crm-store")
    if args.json:
        check_output_file(args.json, "--json")
    torch.set_num_threads(1)
    space = load_space(DEFAULT_SPACE)
    fixed = space.fixed
    overrides = {**_CONFIG, "optim.lr": args.lr, "optim.epochs": args.epochs,
                 "seed": args.seed, "device": "cpu",
                 **dict(parse_override(o) for o in args.set)}
    base = TrainConfig.from_dict(fixed).replace(**overrides)
    mixture = plan_for(space, args.crm_store)
    spec = mixture.spec(base)
    if not mixture.has(spec):
        print(f"pre-training the CRM ({spec.describe()}) into {mixture.directory(spec)}",
              flush=True)
        pretrain_into(spec, mixture.directory(spec))
    other = (Trainer(base.replace(**{"dejavu.crm.init": "scratch"})) if args.compare == "scratch"
             else Trainer(with_stored_crm(base, args.crm_store)))
    trainers = {args.compare: other, "stored": Trainer(mixture.attach(base))}
    batches = {k: t.first_batch(base.optim.batch_size) for k, t in trainers.items()}
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in trainers}
    c = args.compare
    print(f"stored: the default space's mixture ({len(spec.redactions)} redactions of "
          f"{len(spec.redaction_kinds)} kinds); {c}: "
          + ("a CRM from scratch" if c == "scratch" else "pre-trained on this redaction only"))
    print(f"crm-usage: {', '.join(f'{k}={v}' for k, v in _CONFIG.items())}, lr {args.lr}, "
          f"seed {args.seed}")
    print(f"{'epoch':>5}  {'reliance ' + c:>17} {'stored':>7}  "
          f"{'grad ratio ' + c:>19} {'stored':>8}  {'val_miou ' + c:>17} {'stored':>7}")
    for epoch in range(args.epochs + 1):
        for name, trainer in trainers.items():
            row = {"epoch": epoch, **crm_usage(trainer, batches[name])}
            if epoch > 0:
                trainer.train_epoch()
                row.update(trainer.evaluate())
                row.update(crm_usage(trainer, batches[name]))
            rows[name].append(row)
        a, b = rows[args.compare][-1], rows["stored"][-1]
        print(f"{epoch:>5}  {a['crm_reliance']:>17.3f} {b['crm_reliance']:>7.3f}  "
              f"{a['regen_grad_ratio']:>19.2e} {b['regen_grad_ratio']:>8.2e}  "
              f"{a.get('val_miou', float('nan')):>17.4f} {b.get('val_miou', float('nan')):>7.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0
