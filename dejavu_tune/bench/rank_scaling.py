"""``python -m dejavu_tune.bench scaling``: what a trial gains from data-parallel ranks on
the CPU (gloo), and what their communication costs.

One global batch, the same total of CPU threads, three ways, each in fresh processes
(``torch.multiprocessing.spawn``, the trainer's DDP path of ``train.distributed``):

- **1 rank**: one process with every thread trains the global batch;
- **N ranks**: N processes of threads/N each train their rows of it, with DDP's
  gradient all-reduce and synchronised BatchNorm;
- **one rank's own work**: one process of threads/N trains one rank's rows with no peers,
  which is what each of the N ranks computes.

Images per second are the global batch over the median step time; the communication
share is what a rank spends beyond its own work, ``1 - own / N ranks`` (gradient
all-reduce, BatchNorm's and the loss's all-reduces, and waiting for the slower rank).
The three take turns round by round, so drifts of the machine hit each alike. Ray
Train's start of the ranks (seconds once per trial) is not in a step and not measured
here: ``bench search`` on a finished search shows a trial's whole overhead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from dejavu_tune.bench.inputs import BenchError, at_least

__all__ = ["add_parser", "run", "measure"]

# the small preset of ``bench overhead``: a network a CPU trains in a fraction of a second
BASE: dict[str, Any] = {"device": "cpu", "model": {"name": "small", "width": 16},
                        "data": {"image_size": 64, "num_classes": 5, "num_train": 64,
                                 "num_val": 8}}
# a rank that died must not hold the other in a collective for torch's 30 minutes
_TIMEOUT_S = 300
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"dejavu": {"enabled": False}},
    # what synchronised BatchNorm's all-reduces (two per layer, each way) cost of the share
    "baseline, BN per rank": {"dejavu": {"enabled": False},
                              "model": {"sync_batchnorm": False}},
    "crm_f2": {"dejavu": {"crm": {"kind": "crm_f", "stages": 2, "init": "scratch"}}},
}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("scaling", help="images per second of a trial with 1 and N "
                                       "data-parallel ranks on the CPU, and their "
                                       "communication share")
    p.add_argument("--ranks", type=int, default=2, help="data-parallel ranks to compare "
                                                        "with one process")
    p.add_argument("--threads", type=int, default=2,
                   help="CPU threads in all (one process holds them all; N ranks split them)")
    p.add_argument("--batch-size", type=int, default=16, help="the global batch")
    p.add_argument("--image-size", type=int, default=64,
                   help="pixels per side: the larger, the more compute per communication")
    p.add_argument("--iters", type=int, default=10, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the three setups")
    p.add_argument("--json", help="also write the results to this file")


def run(args: argparse.Namespace) -> int:
    at_least(2, ranks=args.ranks)
    at_least(1, threads=args.threads, batch_size=args.batch_size, iters=args.iters,
             rounds=args.rounds)
    at_least(16, image_size=args.image_size)
    at_least(0, warmup=args.warmup)
    if args.threads % args.ranks or args.batch_size % args.ranks:
        raise BenchError(f"--threads {args.threads} and --batch-size {args.batch_size} must "
                         f"split evenly over --ranks {args.ranks}: expected multiples of "
                         f"{args.ranks}")
    from dejavu_tune.config import TrainConfig

    for extra in VARIANTS.values():  # a bad setting is refused before anything spawns
        TrainConfig.from_dict(_config(extra, args.batch_size, args.image_size))
    n, local = args.ranks, args.batch_size // args.ranks
    setups = {"1 rank": (1, args.threads, args.batch_size),
              f"{n} ranks": (n, args.threads // n, args.batch_size),
              "one rank's own work": (1, args.threads // n, local)}
    results = {}
    for name, extra in VARIANTS.items():
        times: dict[str, list[float]] = {setup: [] for setup in setups}
        for _ in range(args.rounds):
            for setup, (world, threads, batch) in setups.items():
                raw = _config(extra, batch, args.image_size)
                times[setup].append(measure(raw, world, threads, args.iters, args.warmup))
        results[name] = {setup: statistics.median(t) for setup, t in times.items()}
    _print(results, args, n)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _config(extra: dict[str, Any], batch: int, size: int) -> dict[str, Any]:
    return {**BASE, "optim": {"batch_size": batch},
            "data": {**BASE["data"], "image_size": size},
            "model": {**BASE["model"], **extra.get("model", {})},
            "dejavu": {"enabled": True, **extra["dejavu"]}}


def _print(results: dict[str, dict[str, float]], args: argparse.Namespace, n: int) -> None:
    print(f"scaling: global batch {args.batch_size} of {args.image_size}x{args.image_size} "
          f"px, {args.threads} CPU thread(s) in all, gloo, median of {args.rounds} round(s) x {args.iters} step(s)")
    print(f"{'variant':<22} {'1 rank img/s':>13} {f'{n} ranks img/s':>15} {'speed-up':>9} "
          f"{'own work s':>11} {'comm share':>11}")
    for name, t in results.items():
        one, many, own = t["1 rank"], t[f"{n} ranks"], t["one rank's own work"]
        print(f"{name:<22} {args.batch_size / one:>13.1f} {args.batch_size / many:>15.1f} "
              f"{one / many:>8.2f}x {own:>11.4f} {1 - own / many:>10.1%}")


def measure(raw: dict[str, Any], world: int, threads: int, iters: int,
            warmup: int) -> float:
    """Median seconds of rank 0's training step, ``world`` processes of ``threads``
    threads, ``raw['optim']['batch_size']`` the global batch."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_rank, args=(world, threads, raw, iters, warmup, tmp), nprocs=world,
                 join=True)
        return json.loads((Path(tmp) / "rank0.json").read_text())["median_s"]


def _rank(rank: int, world: int, threads: int, raw: dict[str, Any], iters: int,
          warmup: int, tmp: str) -> None:
    import torch
    import torch.distributed as dist

    from dejavu_tune.config import TrainConfig
    from dejavu_tune.train.distributed import Ranks
    from dejavu_tune.train.trainer import Trainer

    torch.set_num_threads(threads)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank,
                                world_size=world, timeout=timedelta(seconds=_TIMEOUT_S))
    try:
        cfg = TrainConfig.from_dict(raw)
        trainer = Trainer(cfg, ranks=Ranks.current())
        batch = trainer.first_batch(cfg.optim.batch_size)
        rows = slice(rank * cfg.optim.batch_size // world,
                     (rank + 1) * cfg.optim.batch_size // world)
        batch = {k: v[rows] for k, v in batch.items()}
        times = []
        for step in range(warmup + iters):
            start = time.perf_counter()
            trainer.train_step(batch)
            if step >= warmup:
                times.append(time.perf_counter() - start)
        if rank == 0:
            (Path(tmp) / "rank0.json").write_text(
                json.dumps({"median_s": statistics.median(times)}))
        if world > 1:
            dist.barrier()  # no rank tears the group down under another's last collective
    finally:
        if world > 1:
            dist.destroy_process_group()
