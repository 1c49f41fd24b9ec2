"""``python -m dejavu_tune.bench efficiency``: how much compute each search strategy needs
on the default landscape, and how well ASHA's rungs predict the final metric.

Each strategy runs as a real search (``python -m dejavu_tune.search``) with several
search seeds, on the same budget of DejaVu trial-epochs: TPE with ASHA (twice the
trials, ASHA stops half of them) deciding on the space's ``stop_metric`` and on the
search metric itself, TPE without early stopping, and random search without early
stopping. The learning rate is fixed (``--lr``, the baseline's tuned
value) and the CRM store is shared, so the strategies differ only in what they sample
and stop. For each search: the DejaVu trial-epochs spent, in the order trials ended,
until a trial reached the target (the best value any strategy found, minus the noise
floor). From the trials that ran the full budget: Spearman's rank correlation of each
epoch's metric with the final one, the measure of whether ASHA's decisions at that
epoch follow the final ranking or the noise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from dejavu_tune.bench.inputs import at_least, positive
from dejavu_tune.cli import check_output_dir, check_output_file
from dejavu_tune.config import is_baseline
from dejavu_tune.outcome import direction
from dejavu_tune.outcome.paired import spearman
from dejavu_tune.raytune import trial_results
from dejavu_tune.search.record import SearchRecord

__all__ = ["STRATEGIES", "add_parser", "run", "run_search", "search_trials"]

# name -> (search.algorithm, early stopping, trials per full-budget slot, what ASHA
# compares: None for the space's stop_metric, else this metric)
STRATEGIES = {"tpe+asha": ("tpe", True, 2, None), "tpe+asha-val": ("tpe", True, 2, "metric"),
              "tpe": ("tpe", False, 1, None), "random": ("random", False, 1, None)}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("efficiency", help="search strategies: compute to reach the best; "
                                          "ASHA's rung correlation")
    p.add_argument("--space", default=None, help="space file (default: the default space)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="search seeds")
    p.add_argument("--full-trials", type=int, default=8,
                   help="the budget, in full-budget DejaVu trials (default 8)")
    p.add_argument("--lr", type=float, default=0.035, help="the fixed learning rate")
    p.add_argument("--noise", type=float, required=True,
                   help="the noise floor (the baseline's seed-to-seed std of the metric)")
    p.add_argument("--storage-path", default="runs/bench-efficiency")
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    p.add_argument("--json", help="also write the results to this file")


def _search(args: argparse.Namespace, strategy: str, seed: int, epochs: int) -> Path:
    algorithm, stopping, factor, stop_on = STRATEGIES[strategy]
    flags = ["--crm-store", str(Path(args.storage_path) / "crm_store"), "--seed", str(seed),
             "--num-samples", str(args.full_trials * factor),
             "--set", f"search.algorithm={algorithm}", "--set", f"optim.lr={args.lr}",
             "--set", "search.baseline_trials=0", "--set", "search.baseline_seeds=0",
             "--set", "search.confirm_top=0"]
    if args.space:
        flags += ["--space", args.space]
    if not stopping:
        flags += ["--grace-period", str(epochs)]
    if stop_on == "metric":  # ASHA on the search metric itself
        flags += ["--set", "search.stop_metric=null"]
    return run_search(Path(args.storage_path), f"{strategy}-s{seed}", flags, "efficiency")


def run_search(root: Path, name: str, flags: list[str], bench: str) -> Path:
    """A real search ``name`` in ``root`` with ``flags``, as its own process on a local Ray
    and store (its terminal output kept as ``<name>.terminal.txt``); a search this
    benchmark finished before is reused."""
    if SearchRecord.path(root / name).is_file() and SearchRecord.load(root / name).finished:
        return root / name
    cmd = [sys.executable, "-m", "dejavu_tune.search", "--storage-path", str(root),
           "--name", name, *flags]
    print(f"{bench}: {name}", flush=True)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"search {name} failed:\n{proc.stderr[-3000:]}")
    (root / f"{name}.terminal.txt").write_text(proc.stdout)  # what its user saw
    return root / name


def search_trials(search_dir: Path, metric: str, stop_metric: str) -> list[dict[str, Any]]:
    """DejaVu trials of a finished search: their curves and when they ended."""
    return [{"curve": list(r.curve(metric)), "ended": r.last["timestamp"],
             "stop": list(r.curve(stop_metric))}
            for r in trial_results.read_experiment(search_dir / "search")
            if not is_baseline(r.config)]


def check(args: argparse.Namespace) -> None:
    """The flags, before the first of many searches starts."""
    at_least(0, seeds=args.seeds, noise=args.noise)
    at_least(1, full_trials=args.full_trials)
    positive(lr=args.lr)
    check_output_dir(args.storage_path, "--storage-path")
    if args.json:
        check_output_file(args.json, "--json")


def run(args: argparse.Namespace) -> int:
    from dejavu_tune.search.cli import DEFAULT_SPACE
    from dejavu_tune.search.space_file import load_space

    check(args)
    space = load_space(args.space or DEFAULT_SPACE)
    epochs, metric = space.base_config().optim.epochs, space.search.metric
    sign = direction.sign(space.search.mode)
    budget = args.full_trials * epochs
    stop_metric = space.search.stop_metric
    runs = {(s, seed): search_trials(_search(args, s, seed, epochs), metric, stop_metric)
            for s in args.strategies for seed in args.seeds}
    finals = [t["curve"][-1] for trials in runs.values() for t in trials
              if len(t["curve"]) == epochs]
    best = max(finals, key=lambda v: sign * v)
    target = best - sign * args.noise
    rows: dict[str, list[int | None]] = {s: [] for s in args.strategies}
    for (strategy, _), trials in runs.items():
        spent, reached = 0, None
        for trial in sorted(trials, key=lambda t: t["ended"]):
            spent += len(trial["curve"])
            if len(trial["curve"]) == epochs and sign * trial["curve"][-1] >= sign * target:
                reached = spent
                break
        rows[strategy].append(reached if reached is not None and reached <= budget else None)
    print(f"\nefficiency: budget {budget} DejaVu trial-epochs per search; target {metric} "
          f"{'>=' if sign > 0 else '<='} {target:.4f} (best found {best:.4f} minus the noise "
          f"floor {args.noise:.4f}); seeds {args.seeds}")
    print(f"{'strategy':<10}{'reached':>9}  trial-epochs to the target, per seed")
    for strategy, spent in rows.items():
        done = [s for s in spent if s is not None]
        print(f"{strategy:<10}{len(done):>4}/{len(spent):<4}  "
              + ", ".join("not reached" if s is None else str(s) for s in spent)
              + (f"  (median {statistics.median(done):g})" if done else ""))
    full = [t for trials in runs.values() for t in trials if len(t["curve"]) == epochs]
    final = [t["curve"][-1] for t in full]
    correlation = {key: {e: spearman([t[key][e - 1] for t in full], final)
                         for e in range(1, epochs)} for key in ("curve", "stop")}
    print(f"\nrank correlation with the final {metric} ({len(full)} full-budget trials):")
    for key, name in (("curve", metric), ("stop", stop_metric)):
        print(f"  {name:<10}" + "  ".join(f"{e}: {r:+.2f}" for e, r in correlation[key].items()))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "budget": budget, "target": target, "best": best, "noise": args.noise,
            "seeds": args.seeds, "epochs_to_target": rows,
            "rank_correlation": {metric: correlation["curve"],
                                 stop_metric: correlation["stop"]}}, indent=2))
    return 0
