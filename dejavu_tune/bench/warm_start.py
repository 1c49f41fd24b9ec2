"""``python -m dejavu_tune.bench warm-start``: compute to reach an earlier search's best,
cold against warm-started.

For each seed s: a *source* search (search seed s), then two searches with search seed
s + 100 on the same space, budget and data: one cold, one ``--warm-start`` from the
source. All three run the real pipeline (Ray, Optuna, ASHA, MLflow, baseline replicates,
paired confirmation) around a landscape with a small best region
(``dejavu_tune.train.landscape:narrow``: every trial trains on the same seed, so values
compare across searches). The target is the source's reported best (its confirmed
winner's value, else its best full-budget trial's; ``best_config.json``) minus
``--tolerance``; the measure is the DejaVu trial-epochs each search spent, in the order
its trials ended, until a full-budget trial reached it.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from dejavu_tune.bench.efficiency import run_search, search_trials
from dejavu_tune.bench.inputs import at_least, finished_search
from dejavu_tune.cli import check_output_dir, check_output_file
from dejavu_tune.search.finished import RESULT_FILE

__all__ = ["add_parser", "run", "epochs_to"]

LANDSCAPE = "dejavu_tune.train.landscape:narrow"
SETTINGS = ["--set", f"search.trainer={LANDSCAPE}", "--set", "dejavu.crm.init=scratch",
            "--set", "optim.epochs=4", "--set", "search.grace_period=1",
            "--set", "search.baseline_trials=0", "--set", "device=cpu"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("warm-start", help="trial-epochs to an earlier search's best, cold vs "
                                          "warm-started")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--num-samples", type=int, default=16, help="DejaVu trials per search")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="how close to the source's best counts as reaching it")
    p.add_argument("--storage-path", default="runs/bench-warm-start")
    p.add_argument("--json", help="also write the results to this file")


def _search(args: argparse.Namespace, name: str, seed: int, warm: str | None) -> Path:
    flags = ["--seed", str(seed), "--num-samples", str(args.num_samples), *SETTINGS,
             *(["--warm-start", warm] if warm else [])]
    return run_search(Path(args.storage_path), name, flags, "warm-start")


def epochs_to(trials: list[dict[str, Any]], target: float, epochs: int) -> int | None:
    """DejaVu trial-epochs spent, in the order trials ended, until a full-budget trial
    reached ``target`` (higher is better); None if none did."""
    spent = 0
    for trial in sorted(trials, key=lambda t: t["ended"]):
        spent += len(trial["curve"])
        if len(trial["curve"]) == epochs and trial["curve"][-1] >= target:
            return spent
    return None


def run(args: argparse.Namespace) -> int:
    at_least(0, seeds=args.seeds, tolerance=args.tolerance)
    at_least(1, num_samples=args.num_samples)
    check_output_dir(args.storage_path, "--storage-path")
    if args.json:
        check_output_file(args.json, "--json")
    epochs, metric = 4, "val_miou"
    rows = []
    for seed in args.seeds:
        source = _search(args, f"source-s{seed}", seed, None)
        finished_search(source)  # its best is the target: a source without one has none
        cold = _search(args, f"cold-s{seed}", seed + 100, None)
        warm = _search(args, f"warm-s{seed}", seed + 100, source.name)
        best = json.loads((source / RESULT_FILE).read_text())
        target = best[metric] - args.tolerance
        row = {"seed": seed, "source_best": best[metric], "source_verdict": best["verdict"],
               "target": target}
        for label, path in (("cold", cold), ("warm", warm)):
            trials = search_trials(path, metric, "task_loss")
            row[label] = epochs_to(trials, target, epochs)
            row[f"{label}_total"] = sum(len(t["curve"]) for t in trials)
        rows.append(row)
    print(f"\nwarm start: DejaVu trial-epochs until a full-budget trial reached the source "
          f"search's best {metric} minus {args.tolerance} ({args.num_samples} trials per "
          f"search, {epochs} epochs each)")
    print(f"{'seed':>4}{'source best':>13}  {'source verdict':<20}{'cold':>8}{'warm':>8}"
          f"{'cold total':>12}{'warm total':>12}")
    for r in rows:
        print(f"{r['seed']:>4}{r['source_best']:>13.4f}  {r['source_verdict']:<20}"
              f"{_cell(r['cold']):>8}{_cell(r['warm']):>8}{r['cold_total']:>12}"
              f"{r['warm_total']:>12}")
    for label in ("cold", "warm"):
        done = [r[label] for r in rows if r[label] is not None]
        print(f"{label}: reached in {len(done)}/{len(rows)}"
              + (f", median {statistics.median(done):g} trial-epochs" if done else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def _cell(value: int | None) -> str:
    return "never" if value is None else str(value)
