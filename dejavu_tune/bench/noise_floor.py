"""``python -m dejavu_tune.bench noise-floor``: how far a space's baseline moves from seed to
seed at its fixed settings, the noise floor every verdict of a search on it must beat.

The space's baseline (DejaVu off, its ``fixed`` settings plus ``--set``) trains once on each
of ``--seeds`` seeds at each ``--lr`` (the space tunes the rate; the benchmark takes it
given), ``--workers`` runs at a time with one thread each, as a search's trials run. It
prints every seed's final metric on the search split, then per rate the mean, the sample
std with its 95% interval (the chi-square interval of a normal variance: Casella and
Berger, Statistical Inference, 2nd ed., 2002, chapter 9; exact only for normal values, and
a stalled-seed mode is what makes them not normal), the worst seed and the seconds a run.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from multiprocessing import TimeoutError as PoolTimeout
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from dejavu_tune.bench.inputs import BenchError, at_least, positive
from dejavu_tune.cli import check_output_file

__all__ = ["add_parser", "run", "std_interval"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("noise-floor", help="a space's baseline over seeds: mean, std with "
                                           "its interval, worst seed, seconds a run")
    p.add_argument("--space", help="search-space YAML (default: the embedded default)")
    p.add_argument("--seeds", type=int, default=8, help="seeds 1..N (default 8)")
    p.add_argument("--lr", type=float, nargs="+", default=[0.035, 0.1],
                   help="learning rates, each over every seed (default 0.035 0.1)")
    p.add_argument("--workers", type=int, default=2, help="runs at a time (default 2)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting over the space's fixed ones (e.g. model.width=16)")
    p.add_argument("--run-timeout", type=float, default=1800.0,
                   help="seconds one run may take before the benchmark stops (default 1800)")
    p.add_argument("--json", help="also write every run's value to this file")


def std_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(sample std, lower, upper): the chi-square interval of a normal std, n - 1 degrees
    of freedom."""
    from scipy.stats import chi2

    from dejavu_tune.outcome.sequential import mean_sd

    n = len(values)
    _, sd = mean_sd(values)
    alpha = 1 - level
    return (sd, sd * math.sqrt((n - 1) / chi2.ppf(1 - alpha / 2, n - 1)),
            sd * math.sqrt((n - 1) / chi2.ppf(alpha / 2, n - 1)))


def _train_one(config: dict[str, Any], metric: str) -> tuple[float, float]:
    import torch

    from dejavu_tune.train.trainer import train

    torch.set_num_threads(1)  # one core a run, as a trial with resources.cpu 1 gets
    start = time.perf_counter()
    history = train(config)
    return float(history[-1][metric]), time.perf_counter() - start


def run(args: argparse.Namespace) -> int:
    from dejavu_tune.config import parse_override
    from dejavu_tune.outcome import direction
    from dejavu_tune.outcome.sequential import mean_sd
    from dejavu_tune.search.cli import DEFAULT_SPACE
    from dejavu_tune.search.space_file import load_space

    at_least(2, seeds=args.seeds)
    at_least(1, workers=args.workers)
    positive(lr=args.lr, run_timeout=args.run_timeout)
    if args.json:
        check_output_file(args.json, "--json")
    space = load_space(args.space or DEFAULT_SPACE)
    metric = space.search.metric
    base = space.base_config().replace(**{"dejavu.enabled": False, "device": "cpu",
                                          **dict(parse_override(o) for o in args.set)})
    configs = {(lr, seed): base.replace(**{"optim.lr": lr, "seed": seed}).to_dict()
               for lr in args.lr for seed in range(1, args.seeds + 1)}
    d, o = base.data, base.optim
    print(f"noise-floor: {space.path}, baseline ({base.model.name} width {base.model.width}, "
          f"{d.image_size} px, {d.num_train} images, batch {o.batch_size}, {o.epochs} "
          f"epochs), {metric} on the search split, seeds 1-{args.seeds}, "
          f"{args.workers} at a time", flush=True)
    results: dict[tuple[float, int], tuple[float, float]] = {}
    # every wait has a bound: the runs queued before one, and its own, each within
    # --run-timeout; a hung run stops the benchmark (terminate() ends its process)
    pool = get_context("spawn").Pool(args.workers)
    try:
        pending = {key: pool.apply_async(_train_one, (cfg, metric))
                   for key, cfg in configs.items()}
        deadline = time.monotonic()
        for i, ((lr, seed), job) in enumerate(pending.items()):
            if i % args.workers == 0:
                deadline += args.run_timeout
            try:
                results[(lr, seed)] = job.get(timeout=max(0.0, deadline - time.monotonic()))
            except PoolTimeout:
                raise BenchError(f"the run at lr {lr:g}, seed {seed} did not finish within "
                                 f"--run-timeout={args.run_timeout:g} s a run; raise it for a "
                                 "larger space") from None
            value, seconds = results[(lr, seed)]
            print(f"  lr {lr:g} seed {seed}: {value:.4f} ({seconds:.0f} s)", flush=True)
    finally:
        pool.terminate()
        pool.join()
    print(f"{'lr':>7}  {'mean':>7}  {'std [95% interval]':<25}  {'worst':>7}  {'s a run':>7}")
    for lr in args.lr:
        values = [results[(lr, s)][0] for s in range(1, args.seeds + 1)]
        secs = [results[(lr, s)][1] for s in range(1, args.seeds + 1)]
        mean, _ = mean_sd(values)
        sd, low, high = std_interval(values)
        worst = direction.worst(values, space.search.mode)
        print(f"{lr:>7g}  {mean:>7.4f}  {sd:.4f} [{low:.4f}, {high:.4f}]   {worst:>7.4f}  "
              f"{sum(secs) / len(secs):>7.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"lr": lr, "seed": s, metric: v, "seconds": t}
             for (lr, s), (v, t) in results.items()], indent=2))
    return 0
